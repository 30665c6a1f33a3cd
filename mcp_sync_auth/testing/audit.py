"""Audit trail of the strict reference server.

The recorder is mutated only by :class:`~mcp_sync_auth.testing.state.AuthState`
while it holds its lock; tests read immutable :class:`Audit` snapshots.
Details never contain full tokens, only :func:`fingerprint` values.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Generic, List, Mapping, Optional, Protocol, Tuple, TypeVar

from .device_audit import DeviceAudit, DeviceCounters
from .dpop_audit import DpopAudit, DpopCounters

__all__ = [
    "Audit",
    "AuditEvent",
    "AuditRecorder",
    "AuditSource",
    "AuditedState",
    "EventKind",
    "fingerprint",
]

MAX_EVENTS = 200_000
MISSING_GRANT_TYPE = "(invalid)"


def fingerprint(token: str) -> str:
    """Short, non-reversible token fingerprint safe to put in logs and audit details."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


_Snapshot = TypeVar("_Snapshot")
_Snapshot_co = TypeVar("_Snapshot_co", covariant=True)


class AuditSource(Protocol[_Snapshot_co]):
    """An audit recorder: immutable snapshots of what it recorded, and a reset."""

    def snapshot(self) -> _Snapshot_co: ...

    def reset(self) -> None: ...


class AuditedState(Generic[_Snapshot]):
    """Mixin of a server state whose recorder ``_audit`` changes under the lock of ``_changed``
    (notified on every change): its audit snapshots, a reset, and a wait for an audit."""

    _changed: threading.Condition
    _audit: AuditSource[_Snapshot]

    def audit(self) -> _Snapshot:
        with self._changed:
            return self._audit.snapshot()

    def reset_audit(self) -> None:
        with self._changed:
            self._audit.reset()
            self._changed.notify_all()

    def wait_for_audit(self, predicate: Callable[[_Snapshot], bool], timeout: float) -> _Snapshot:
        """Block until ``predicate(audit)`` holds; raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                snapshot = self._audit.snapshot()
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("audit predicate not satisfied in time")
                self._changed.wait(remaining)


class EventKind:
    """String constants used as :attr:`AuditEvent.kind`."""

    CLIENT_REGISTERED = "client_registered"
    REGISTRATION_FAILED = "registration_failed"
    AUTHORIZATION_CODE_ISSUED = "authorization_code_issued"
    AUTHORIZATION_FAILED = "authorization_failed"
    CODE_REUSE_DETECTED = "code_reuse_detected"
    TOKENS_MINTED = "tokens_minted"
    FAULT = "fault"
    GRANT_OK = "grant_ok"
    GRANT_FAILED = "grant_failed"
    REUSE_DETECTED = "reuse_detected"
    CHAIN_REVOKED = "chain_revoked"
    ACCESS_TOKENS_REVOKED = "access_tokens_revoked"
    ACCESS_TOKENS_EXPIRED = "access_tokens_expired"
    MCP_OK = "mcp_ok"
    MCP_UNAUTHORIZED = "mcp_unauthorized"
    ASSERTION_REPLAYED = "assertion_replayed"
    # DPoP (RFC 9449): details name the place ("token", "resource") and thumbprints, never a proof.
    DPOP_PROOF_ACCEPTED = "dpop_proof_accepted"
    DPOP_PROOF_REFUSED = "dpop_proof_refused"
    DPOP_REPLAYED = "dpop_replayed"
    DPOP_NONCE_CHALLENGE = "dpop_nonce_challenge"
    DPOP_KEY_MISMATCH = "dpop_key_mismatch"
    DPOP_BOUND_AS_BEARER = "dpop_bound_as_bearer"
    # Device grant (RFC 8628): details name the user code and a device code's fingerprint.
    DEVICE_CODE_ISSUED = "device_code_issued"
    DEVICE_AUTHORIZATION_FAILED = "device_authorization_failed"
    DEVICE_APPROVED = "device_approved"
    DEVICE_DENIED = "device_denied"


@dataclass(frozen=True)
class AuditEvent:
    """One audited occurrence. ``detail`` never holds a full token."""

    time: float
    kind: str
    client_id: Optional[str]
    detail: str


@dataclass(frozen=True)
class Audit:
    """Immutable snapshot of the server's counters and events.

    ``grants`` counts every token request whose form was parsed, keyed by
    ``grant_type`` (``"(invalid)"`` when the form could not be parsed or had no
    grant_type); ``grants_ok``/``grants_failed`` split the same requests by outcome.
    Requests answered by a ``*_BEFORE`` fault are counted only in
    ``token_requests`` and ``faults_injected``. ``presented_refresh_tokens``
    holds full tokens (for assertions) and is therefore left out of ``repr``.

    ``registration_requests`` counts every ``POST /register`` (also while
    registration is disabled); ``registrations``/``registrations_failed`` split
    the ones that were processed. Clients made with ``register_client()`` are
    not counted there (they only leave a ``client_registered`` event).
    ``authorization_requests`` counts every ``GET /authorize``;
    ``authorization_codes_issued`` the successful ones and
    ``authorization_errors`` the rest by error code; those answered with a 400
    page instead of a redirect count as ``invalid_request`` (malformed query,
    missing or repeated client_id/redirect_uri), ``invalid_client`` (unknown
    client) or ``invalid_redirect_uri`` (not registered for the client).
    ``last_authorization_params`` is the query of the latest ``GET /authorize``
    (first value of each name). ``code_reuse_detections`` counts presentations
    of an authorization code that was already presented. ``metadata_requests``
    counts requests per well-known path, served or not. ``assertion_replays`` counts JWT
    assertions refused because their ``jti`` was already used: client assertions
    (``private_key_jwt``) and JWT bearer grants alike (each leaves an ``assertion_replayed`` event
    saying which). ``id_jag_grants`` counts the JWT bearer grants that were ID-JAGs (counted under
    the JWT bearer grant type in ``grants`` and ``grants_ok`` as well).
    saying which). ``dpop`` holds the DPoP counters (:class:`~mcp_sync_auth.testing.dpop_audit.DpopAudit`),
    ``device`` those of the device grant (:class:`~mcp_sync_auth.testing.device_audit.DeviceAudit`).
    """

    token_requests: int
    grants: Dict[str, int]
    grants_ok: Dict[str, int]
    grants_failed: Dict[str, int]
    refresh_ok: int
    refresh_failed: int
    reuse_detections: int
    revocations: int
    access_token_revocations: int
    faults_injected: int
    faults: Dict[str, int]
    mcp_ok: int
    mcp_unauthorized: int
    mcp_methods: Dict[str, int]
    registration_requests: int
    registrations: int
    registrations_failed: int
    authorization_requests: int
    authorization_codes_issued: int
    authorization_errors: Dict[str, int]
    last_authorization_params: Dict[str, str]
    code_reuse_detections: int
    metadata_requests: Dict[str, int]
    assertion_replays: int
    id_jag_grants: int
    dpop: DpopAudit
    device: DeviceAudit
    presented_refresh_tokens: Tuple[str, ...] = field(repr=False)
    events: Tuple[AuditEvent, ...]

    def events_of(self, kind: str) -> Tuple[AuditEvent, ...]:
        """Events of one :class:`EventKind`, in order."""
        return tuple(event for event in self.events if event.kind == kind)


def _bump(counter: Dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


class AuditRecorder:
    """Mutable counters; NOT thread-safe on its own (the state lock guards it)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every counter and forget every event."""
        self.token_requests = 0
        self.grants: Dict[str, int] = {}
        self.grants_ok: Dict[str, int] = {}
        self.grants_failed: Dict[str, int] = {}
        self.reuse_detections = 0
        self.revocations = 0
        self.access_token_revocations = 0
        self.faults_injected = 0
        self.faults: Dict[str, int] = {}
        self.mcp_ok = 0
        self.mcp_unauthorized = 0
        self.mcp_methods: Dict[str, int] = {}
        self.registration_requests = 0
        self.registrations = 0
        self.registrations_failed = 0
        self.authorization_requests = 0
        self.authorization_codes_issued = 0
        self.authorization_errors: Dict[str, int] = {}
        self.last_authorization_params: Dict[str, str] = {}
        self.code_reuse_detections = 0
        self.metadata_requests: Dict[str, int] = {}
        self.assertion_replays = 0
        self.id_jag_grants = 0
        self.dpop = DpopCounters()
        self.device = DeviceCounters()
        self.presented_refresh_tokens: List[str] = []
        self.events: Deque[AuditEvent] = collections.deque(maxlen=MAX_EVENTS)

    def event(self, time: float, kind: str, client_id: Optional[str], detail: str = "") -> None:
        self.events.append(AuditEvent(time=time, kind=kind, client_id=client_id, detail=detail))

    def token_request(self) -> None:
        self.token_requests += 1

    def fault(self, time: float, name: str) -> None:
        self.faults_injected += 1
        _bump(self.faults, name)
        self.event(time, EventKind.FAULT, None, name)

    def grant_request(self, grant_type: str, presented_refresh_token: Optional[str]) -> None:
        _bump(self.grants, grant_type)
        if presented_refresh_token is not None:
            self.presented_refresh_tokens.append(presented_refresh_token)

    def grant_ok(self, time: float, grant_type: str, client_id: Optional[str], detail: str) -> None:
        _bump(self.grants_ok, grant_type)
        self.event(time, EventKind.GRANT_OK, client_id, f"{grant_type}: {detail}")

    def grant_failed(self, time: float, grant_type: str, client_id: Optional[str], detail: str) -> None:
        _bump(self.grants_failed, grant_type)
        self.event(time, EventKind.GRANT_FAILED, client_id, f"{grant_type}: {detail}")

    def mcp(self, time: float, ok: bool, client_id: Optional[str], detail: str) -> None:
        if ok:
            self.mcp_ok += 1
            _bump(self.mcp_methods, detail)
            self.event(time, EventKind.MCP_OK, client_id, detail)
        else:
            self.mcp_unauthorized += 1
            self.event(time, EventKind.MCP_UNAUTHORIZED, client_id, detail)

    def registration_request(self) -> None:
        self.registration_requests += 1

    def registration_failed(self, time: float, detail: str) -> None:
        self.registrations_failed += 1
        self.event(time, EventKind.REGISTRATION_FAILED, None, detail)

    def authorization_request(self, params: Mapping[str, str]) -> None:
        self.authorization_requests += 1
        self.last_authorization_params = dict(params)

    def authorization_ok(self, time: float, client_id: str, detail: str) -> None:
        self.authorization_codes_issued += 1
        self.event(time, EventKind.AUTHORIZATION_CODE_ISSUED, client_id, detail)

    def authorization_failed(self, time: float, client_id: Optional[str], error: str, detail: str) -> None:
        _bump(self.authorization_errors, error)
        self.event(time, EventKind.AUTHORIZATION_FAILED, client_id, f"{error}: {detail}")

    def metadata_request(self, path: str) -> None:
        _bump(self.metadata_requests, path)

    def snapshot(self) -> Audit:
        return Audit(
            token_requests=self.token_requests,
            grants=dict(self.grants),
            grants_ok=dict(self.grants_ok),
            grants_failed=dict(self.grants_failed),
            refresh_ok=self.grants_ok.get("refresh_token", 0),
            refresh_failed=self.grants_failed.get("refresh_token", 0),
            reuse_detections=self.reuse_detections,
            revocations=self.revocations,
            access_token_revocations=self.access_token_revocations,
            faults_injected=self.faults_injected,
            faults=dict(self.faults),
            mcp_ok=self.mcp_ok,
            mcp_unauthorized=self.mcp_unauthorized,
            mcp_methods=dict(self.mcp_methods),
            registration_requests=self.registration_requests,
            registrations=self.registrations,
            registrations_failed=self.registrations_failed,
            authorization_requests=self.authorization_requests,
            authorization_codes_issued=self.authorization_codes_issued,
            authorization_errors=dict(self.authorization_errors),
            last_authorization_params=dict(self.last_authorization_params),
            code_reuse_detections=self.code_reuse_detections,
            metadata_requests=dict(self.metadata_requests),
            assertion_replays=self.assertion_replays,
            id_jag_grants=self.id_jag_grants,
            dpop=self.dpop.snapshot(),
            device=self.device.snapshot(),
            presented_refresh_tokens=tuple(self.presented_refresh_tokens),
            events=tuple(self.events),
        )
