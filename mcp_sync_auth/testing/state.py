"""Authorization server state: clients, refresh chains, tokens, faults and audit.

Pure logic, no HTTP. Every read and write happens under one lock; a condition
variable on that lock is notified after each change so tests can wait for an
audit predicate instead of sleeping.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

from .audit import MISSING_GRANT_TYPE, Audit, AuditRecorder, EventKind, fingerprint
from .errors import OAuthError
from .faults import Fault, FaultQueue
from .models import (
    TOKEN_ENDPOINT_AUTH_METHODS,
    AccessCheck,
    AccessTokenRecord,
    ChainRecord,
    ChainSummary,
    ClientInfo,
    RefreshTokenRecord,
    TokenGrant,
)

__all__ = ["AuthState", "parse_scope"]

Clock = Callable[[], float]

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 NQCHAR
_MARKER = re.compile(r"[A-Za-z0-9._~-]*")


def parse_scope(value: str) -> Tuple[str, ...]:
    """Parse an RFC 6749 §3.3 scope string strictly (single spaces, NQCHARs, not empty)."""
    parts = value.split(" ")
    if not value or any(not _SCOPE_TOKEN.fullmatch(part) for part in parts):
        raise OAuthError("invalid_scope", "malformed scope")
    return tuple(dict.fromkeys(parts))


def _check_ttl(ttl: float) -> float:
    ttl = float(ttl)
    if not math.isfinite(ttl):
        raise ValueError("access_token_ttl must be finite")
    return ttl


class AuthState:
    """Thread-safe OAuth state shared by all request handler threads."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        access_token_ttl: float = 300.0,
        require_resource: bool = True,
        rotate_refresh_tokens: bool = True,
        token_marker: str = "",
    ) -> None:
        if not _MARKER.fullmatch(token_marker):
            raise ValueError("token_marker may only contain [A-Za-z0-9._~-]")
        self._clock = clock
        self._ttl = _check_ttl(access_token_ttl)
        self._require_resource = bool(require_resource)
        self._rotate = bool(rotate_refresh_tokens)
        self._marker = token_marker
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._clients: Dict[str, ClientInfo] = {}
        self._chains: Dict[int, ChainRecord] = {}
        self._refresh: Dict[str, RefreshTokenRecord] = {}
        self._access: Dict[str, AccessTokenRecord] = {}
        self._sessions: Set[str] = set()
        self._next_chain_id = 1
        self._holding = False
        self._held = 0
        self._faults = FaultQueue()
        self._audit = AuditRecorder()

    # ------------------------------------------------------------------ config

    @property
    def access_token_ttl(self) -> float:
        with self._lock:
            return self._ttl

    @access_token_ttl.setter
    def access_token_ttl(self, value: float) -> None:
        ttl = _check_ttl(value)
        with self._lock:
            self._ttl = ttl

    @property
    def require_resource(self) -> bool:
        with self._lock:
            return self._require_resource

    @require_resource.setter
    def require_resource(self, value: bool) -> None:
        with self._lock:
            self._require_resource = bool(value)

    @property
    def rotate_refresh_tokens(self) -> bool:
        with self._lock:
            return self._rotate

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, value: bool) -> None:
        with self._lock:
            self._rotate = bool(value)

    # ----------------------------------------------------------------- clients

    def register_client(
        self,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint_auth_method: str = "none",
    ) -> ClientInfo:
        if token_endpoint_auth_method not in TOKEN_ENDPOINT_AUTH_METHODS:
            raise ValueError(f"unsupported token_endpoint_auth_method {token_endpoint_auth_method!r}")
        if token_endpoint_auth_method == "none":
            if client_secret is not None:
                raise ValueError("a client with token_endpoint_auth_method 'none' has no secret")
        elif client_secret is None:
            client_secret = secrets.token_urlsafe(24)
        elif not client_secret:
            raise ValueError("client_secret must not be empty")
        if client_id is not None and not client_id:
            raise ValueError("client_id must not be empty")
        with self._lock:
            if client_id is None:
                client_id = "client-" + secrets.token_hex(8)
            if client_id in self._clients:
                raise ValueError(f"client {client_id!r} is already registered")
            info = ClientInfo(client_id, client_secret, token_endpoint_auth_method)
            self._clients[client_id] = info
            method = token_endpoint_auth_method
            self._audit.event(self._clock(), EventKind.CLIENT_REGISTERED, client_id, method)
            self._changed.notify_all()
            return info

    def get_client(self, client_id: str) -> Optional[ClientInfo]:
        with self._lock:
            return self._clients.get(client_id)

    # ------------------------------------------------------------ token issue

    def _new_token(self) -> str:
        return self._marker + secrets.token_urlsafe(32)

    def _issue_access(self, chain: ChainRecord, scope: Tuple[str, ...], now: float) -> TokenGrant:
        token = self._new_token()
        ttl = self._ttl
        self._access[token] = AccessTokenRecord(
            token=token,
            client_id=chain.client_id,
            chain_id=chain.chain_id,
            resource=chain.resource,
            scope=scope,
            expires_at=now + ttl,
        )
        chain.access_tokens.append(token)
        return TokenGrant(access_token=token, ttl=ttl, scope=" ".join(scope), refresh_token=None)

    def _issue_refresh(self, chain: ChainRecord) -> str:
        token = self._new_token()
        self._refresh[token] = RefreshTokenRecord(token, chain.chain_id, chain.generation)
        chain.refresh_tokens.append(token)
        chain.current_refresh_token = token
        return token

    def mint(self, client_id: str, *, scope: str, resource: str) -> TokenGrant:
        """Start a new refresh chain for ``client_id`` (as if the user had consented)."""
        scopes = parse_scope(scope)
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client {client_id!r}")
            now = self._clock()
            chain = ChainRecord(self._next_chain_id, client_id, resource, scopes)
            self._next_chain_id += 1
            self._chains[chain.chain_id] = chain
            refresh_token = self._issue_refresh(chain)
            grant = self._issue_access(chain, scopes, now)
            detail = f"chain={chain.chain_id} rt={fingerprint(refresh_token)}"
            self._audit.event(now, EventKind.TOKENS_MINTED, client_id, detail)
            self._changed.notify_all()
            return TokenGrant(grant.access_token, grant.ttl, grant.scope, refresh_token)

    # ---------------------------------------------------------- token endpoint

    def hold_token_requests(self) -> None:
        """Make token requests wait at the door until :meth:`release_token_requests`."""
        with self._lock:
            self._holding = True

    def release_token_requests(self) -> None:
        with self._lock:
            self._holding = False
            self._changed.notify_all()

    @property
    def held_token_requests(self) -> int:
        """How many token requests are waiting at the door right now."""
        with self._lock:
            return self._held

    def wait_for_held(self, count: int, timeout: float) -> None:
        """Block until at least ``count`` token requests are held; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._held < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._held} token request(s) held, expected {count}")
                self._changed.wait(remaining)

    def wait_at_door(self) -> None:
        """Called first by every token request: blocks while requests are held."""
        with self._lock:
            if not self._holding:
                return
            self._held += 1
            self._changed.notify_all()
            try:
                while self._holding:
                    self._changed.wait()
            finally:
                self._held -= 1

    def begin_token_request(self) -> Optional[Fault]:
        """Count one POST /token and take the next pending fault, if any."""
        with self._lock:
            self._audit.token_request()
            fault = self._faults.pop()
            if fault is not None:
                self._audit.fault(self._clock(), fault.name)
            self._changed.notify_all()
            return fault

    def record_grant_request(self, grant_type: Optional[str], presented_refresh_token: Optional[str]) -> None:
        with self._lock:
            self._audit.grant_request(grant_type or MISSING_GRANT_TYPE, presented_refresh_token)
            self._changed.notify_all()

    def record_grant_failure(
        self,
        grant_type: Optional[str],
        client_id: Optional[str],
        error: OAuthError,
    ) -> None:
        with self._lock:
            detail = f"{error.error}: {error.description}"
            self._audit.grant_failed(self._clock(), grant_type or MISSING_GRANT_TYPE, client_id, detail)
            self._changed.notify_all()
        error.audited = True

    def refresh(
        self, *, client_id: str, refresh_token: str, resource: Optional[str], scope: Optional[str]
    ) -> TokenGrant:
        """The refresh_token grant (RFC 6749 §6) with rotation and reuse detection."""
        with self._lock:
            now = self._clock()
            try:
                grant = self._refresh_locked(now, client_id, refresh_token, resource, scope)
            except OAuthError as exc:
                detail = f"{exc.error}: {exc.description} rt={fingerprint(refresh_token)}"
                self._audit.grant_failed(now, "refresh_token", client_id, detail)
                exc.audited = True
                self._changed.notify_all()
                raise
            detail = f"rt={fingerprint(refresh_token)}"
            if grant.refresh_token is not None:
                detail += f" -> rt={fingerprint(grant.refresh_token)}"
            self._audit.grant_ok(now, "refresh_token", client_id, detail)
            self._changed.notify_all()
            return grant

    def _refresh_locked(
        self, now: float, client_id: str, refresh_token: str, resource: Optional[str], scope: Optional[str]
    ) -> TokenGrant:
        record = self._refresh.get(refresh_token)
        if record is None:
            raise OAuthError("invalid_grant", "unknown refresh token")
        chain = self._chains[record.chain_id]
        if chain.client_id != client_id:
            raise OAuthError("invalid_grant", "refresh token was not issued to this client")
        if not chain.alive:
            raise OAuthError("invalid_grant", "refresh token revoked")
        if record.used:
            self._revoke_chain_locked(now, chain, "refresh token reuse")
            self._audit.reuse_detections += 1
            detail = f"chain={chain.chain_id} rt={fingerprint(refresh_token)}"
            self._audit.event(now, EventKind.REUSE_DETECTED, client_id, detail)
            raise OAuthError("invalid_grant", "refresh token reuse detected; chain revoked")
        if resource is None:
            if self._require_resource:
                raise OAuthError("invalid_target", "the resource parameter is required")
        elif resource != chain.resource:
            raise OAuthError("invalid_target", "resource does not match the original grant")
        granted = chain.scope
        if scope is not None:
            requested = parse_scope(scope)
            if not set(requested) <= set(chain.scope):
                raise OAuthError("invalid_scope", "requested scope exceeds the original grant")
            granted = requested
        new_refresh: Optional[str] = None
        if self._rotate:
            record.used = True
            chain.generation += 1
            new_refresh = self._issue_refresh(chain)
        grant = self._issue_access(chain, granted, now)
        return TokenGrant(grant.access_token, grant.ttl, grant.scope, new_refresh)

    def _revoke_chain_locked(self, now: float, chain: ChainRecord, reason: str) -> bool:
        if not chain.alive:
            return False
        chain.alive = False
        chain.revoked_reason = reason
        for token in chain.access_tokens:
            self._access[token].revoked = True
        self._audit.revocations += 1
        detail = f"chain={chain.chain_id} reason={reason}"
        self._audit.event(now, EventKind.CHAIN_REVOKED, chain.client_id, detail)
        return True

    # ------------------------------------------------------------ test levers

    def revoke_chain_of(self, refresh_token: str) -> bool:
        """Revoke the chain ``refresh_token`` belongs to; False if it was already dead."""
        with self._lock:
            chain = self._chain_of_locked(refresh_token)
            revoked = self._revoke_chain_locked(self._clock(), chain, "revoked by test")
            self._changed.notify_all()
            return revoked

    def is_chain_alive(self, refresh_token: str) -> bool:
        with self._lock:
            return self._chain_of_locked(refresh_token).alive

    def _chain_of_locked(self, refresh_token: str) -> ChainRecord:
        record = self._refresh.get(refresh_token)
        if record is None:
            raise KeyError("unknown refresh token")
        return self._chains[record.chain_id]

    def _live_access_locked(self, now: float, client_id: Optional[str]) -> Iterator[AccessTokenRecord]:
        for record in self._access.values():
            if record.revoked or now >= record.expires_at:
                continue
            if client_id is None or record.client_id == client_id:
                yield record

    def revoke_access_tokens(self, client_id: Optional[str] = None) -> int:
        """Revoke every currently valid access token (refresh chains stay alive)."""
        with self._lock:
            now = self._clock()
            live = list(self._live_access_locked(now, client_id))
            for record in live:
                record.revoked = True
            self._audit.access_token_revocations += len(live)
            self._audit.event(now, EventKind.ACCESS_TOKENS_REVOKED, client_id, f"count={len(live)}")
            self._changed.notify_all()
            return len(live)

    def expire_access_tokens(self, client_id: Optional[str] = None) -> int:
        """Make every currently valid access token expire now (per the clock)."""
        with self._lock:
            now = self._clock()
            live = list(self._live_access_locked(now, client_id))
            for record in live:
                record.expires_at = now
            self._audit.event(now, EventKind.ACCESS_TOKENS_EXPIRED, client_id, f"count={len(live)}")
            self._changed.notify_all()
            return len(live)

    def chains(self) -> List[ChainSummary]:
        with self._lock:
            return [
                ChainSummary(
                    chain_id=chain.chain_id,
                    client_id=chain.client_id,
                    resource=chain.resource,
                    scope=" ".join(chain.scope),
                    alive=chain.alive,
                    generation=chain.generation,
                    current_refresh_fingerprint=fingerprint(chain.current_refresh_token),
                    revoked_reason=chain.revoked_reason,
                )
                for chain in self._chains.values()
            ]

    # -------------------------------------------------------- resource server

    def check_access_token(self, token: str, audience: str) -> AccessCheck:
        with self._lock:
            record = self._access.get(token)
            if record is None:
                return AccessCheck(False, None, "unknown access token")
            reason = record.failure(self._clock(), audience)
            if reason is not None:
                return AccessCheck(False, record.client_id, reason)
            return AccessCheck(True, record.client_id, "ok", record.scope)

    def record_mcp(self, ok: bool, client_id: Optional[str], detail: str) -> None:
        """Count one MCP request: ``detail`` is the JSON-RPC method (ok) or the 401 reason."""
        with self._lock:
            self._audit.mcp(self._clock(), ok, client_id, detail)
            self._changed.notify_all()

    def new_session(self) -> str:
        with self._lock:
            session_id = secrets.token_hex(16)
            self._sessions.add(session_id)
            return session_id

    # ----------------------------------------------------------- faults/audit

    def inject_fault(self, fault: Fault, count: int = 1) -> None:
        with self._lock:
            self._faults.push(fault, count)

    def clear_faults(self) -> int:
        with self._lock:
            return self._faults.clear()

    def pending_faults(self) -> Tuple[Fault, ...]:
        with self._lock:
            return self._faults.pending()

    def audit(self) -> Audit:
        with self._lock:
            return self._audit.snapshot()

    def reset_audit(self) -> None:
        with self._lock:
            self._audit.reset()
            self._changed.notify_all()

    def wait_for_audit(self, predicate: Callable[[Audit], bool], timeout: float) -> Audit:
        """Block until ``predicate(audit)`` holds; raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                snapshot = self._audit.snapshot()
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("audit predicate not satisfied in time")
                self._changed.wait(remaining)
