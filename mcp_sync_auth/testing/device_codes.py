"""Device codes of the strict server (RFC 8628): issued, decided by a test, polled, spent once.

Pure bookkeeping with no lock and no HTTP: :class:`~mcp_sync_auth.testing.state.AuthState` calls it
under its own lock, and issues the chain itself once a poll finds its code approved.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .errors import OAuthError

__all__ = ["APPROVED", "DENIED", "PENDING", "SPENT", "DeviceCodeBook", "DeviceCodeRecord", "PendingDeviceCode"]

PENDING, APPROVED, DENIED, SPENT = "pending", "approved", "denied", "spent"
SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5: a slow_down adds five seconds to the client's interval
# RFC 8628 §6.1: consonants only (no vowels, so no words), in two groups of four.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


@dataclass
class DeviceCodeRecord:
    device_code: str
    user_code: str
    client_id: str
    resource: str
    scope: Tuple[str, ...]
    expires_at: float
    interval: float
    last_request: float
    """When the client last asked (the authorization, then each poll): the interval counts from it."""
    status: str = PENDING


@dataclass(frozen=True)
class PendingDeviceCode:
    """A device code waiting for the person, as tests see it (no device code, only the user code)."""

    user_code: str
    client_id: str
    scope: str
    resource: str
    expires_at: float
    interval: float


def normalize_user_code(user_code: str) -> str:
    """How a person may type the code: any case, with or without the dash or spaces."""
    return "".join(ch for ch in user_code.upper() if ch.isalnum())


def new_user_code() -> str:
    letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


class DeviceCodeBook:
    """Every device code issued, by device code and by user code."""

    def __init__(self) -> None:
        self._by_device: Dict[str, DeviceCodeRecord] = {}
        self._by_user: Dict[str, DeviceCodeRecord] = {}

    def add(self, record: DeviceCodeRecord) -> None:
        self._by_device[record.device_code] = record
        self._by_user[normalize_user_code(record.user_code)] = record

    def fresh_user_code(self) -> str:
        while True:
            code = new_user_code()
            if normalize_user_code(code) not in self._by_user:
                return code

    def decide(self, user_code: str, status: str, now: float) -> DeviceCodeRecord:
        """The person's answer for a pending, unexpired code (KeyError otherwise)."""
        record = self._by_user.get(normalize_user_code(user_code))
        if record is None:
            raise KeyError(f"unknown user code {user_code!r}")
        if record.status != PENDING or now >= record.expires_at:
            raise KeyError(f"the user code {user_code!r} is no longer pending ({self._state_of(record, now)})")
        record.status = status
        return record

    def pending(self, now: float) -> List[PendingDeviceCode]:
        return [
            PendingDeviceCode(r.user_code, r.client_id, " ".join(r.scope), r.resource, r.expires_at, r.interval)
            for r in self._by_device.values()
            if r.status == PENDING and now < r.expires_at
        ]

    def poll(self, device_code: str, client_id: str, now: float) -> Tuple[Optional[DeviceCodeRecord], str]:
        """The record a poll may redeem, or the error it is answered with: (record, "tokens") when
        approved (the caller spends it), else (record or None, error) for the caller to raise."""
        record = self._by_device.get(device_code)
        if record is None:
            return None, "invalid_grant"
        if record.client_id != client_id:
            # Not counted against the code: a client cannot disturb another client's login by guessing.
            return None, "invalid_grant"
        if record.status == SPENT:
            return record, "invalid_grant"
        if now >= record.expires_at:
            return record, "expired_token"
        early = now - record.last_request < record.interval
        record.last_request = now
        if early:
            record.interval += SLOW_DOWN_STEP
            return record, "slow_down"
        if record.status == DENIED:
            return record, "access_denied"
        if record.status == PENDING:
            return record, "authorization_pending"
        return record, "tokens"

    @staticmethod
    def _state_of(record: DeviceCodeRecord, now: float) -> str:
        return "expired" if record.status == PENDING and now >= record.expires_at else record.status


POLL_DESCRIPTIONS = {
    "invalid_grant": "unknown or already used device code",
    "expired_token": "the device code has expired",
    "slow_down": "polled faster than the interval; the interval is now five seconds longer",
    "access_denied": "the person declined the authorization",
    "authorization_pending": "the person has not decided yet",
}


def poll_error(answer: str, record: Optional[DeviceCodeRecord]) -> OAuthError:
    description = POLL_DESCRIPTIONS[answer]
    if answer == "invalid_grant" and record is not None:
        description = "the device code was already used"
    return OAuthError(answer, description)
