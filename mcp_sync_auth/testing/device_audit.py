"""The device grant part of the audit (RFC 8628), read as ``server.audit.device``.

Held by the :class:`~mcp_sync_auth.testing.audit.AuditRecorder` (so ``reset_audit`` zeroes it) and
changed only under the state's lock. No device code is kept, only counts and the last request's
non-secret parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

__all__ = ["SECRET_PARAMETERS", "DeviceAudit", "DeviceCounters"]

SECRET_PARAMETERS = frozenset({"client_secret", "client_assertion"})
"""Parameters of a device authorization request that are never recorded."""


@dataclass(frozen=True)
class DeviceAudit:
    """Device grant counters.

    ``requests`` counts every ``POST /device_authorization``; ``authorizations_issued`` the ones
    answered with a device code, ``authorization_errors`` the others by error code.
    ``last_request_params`` is the latest request's form (first value of each name, secrets left
    out): its ``scope`` and ``resource`` are what the client asked for. ``polls`` counts token
    requests of the device grant that reached a known device code of their client, split by answer
    into ``pending`` (``authorization_pending``), ``slow_downs``, ``denied`` (``access_denied``),
    ``expired`` (``expired_token``) and ``tokens_issued``; ``approvals`` and ``denials`` count the test
    hooks' decisions."""

    requests: int
    authorizations_issued: int
    authorization_errors: Dict[str, int]
    last_request_params: Dict[str, str]
    polls: int
    pending: int
    slow_downs: int
    denied: int
    expired: int
    tokens_issued: int
    approvals: int
    denials: int


class DeviceCounters:
    """Mutable counters; NOT thread-safe on its own (the state lock guards it)."""

    def __init__(self) -> None:
        self.requests = 0
        self.authorizations_issued = 0
        self.authorization_errors: Dict[str, int] = {}
        self.last_request_params: Dict[str, str] = {}
        self.polls = 0
        self.answers: Dict[str, int] = {}
        self.approvals = 0
        self.denials = 0

    def request(self, params: Mapping[str, str]) -> None:
        self.requests += 1
        self.last_request_params = {name: value for name, value in params.items() if name not in SECRET_PARAMETERS}

    def refused(self, error: str) -> None:
        self.authorization_errors[error] = self.authorization_errors.get(error, 0) + 1

    def poll(self, answer: str) -> None:
        """One poll of a known code, answered ``answer`` (an error code, or "tokens")."""
        self.polls += 1
        self.answers[answer] = self.answers.get(answer, 0) + 1

    def snapshot(self) -> DeviceAudit:
        answers = self.answers
        return DeviceAudit(
            requests=self.requests,
            authorizations_issued=self.authorizations_issued,
            authorization_errors=dict(self.authorization_errors),
            last_request_params=dict(self.last_request_params),
            polls=self.polls,
            pending=answers.get("authorization_pending", 0),
            slow_downs=answers.get("slow_down", 0),
            denied=answers.get("access_denied", 0),
            expired=answers.get("expired_token", 0),
            tokens_issued=answers.get("tokens", 0),
            approvals=self.approvals,
            denials=self.denials,
        )
