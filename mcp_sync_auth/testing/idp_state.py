"""State of the test identity provider: its clients (and which client id each has at which
authorization server), its replay cache and its audit. No HTTP here.

Every read and write happens under one lock; a condition variable on that lock is notified after
each change so tests can wait for an audit predicate instead of sleeping. Audit details never hold a
token, only :func:`~mcp_sync_auth.testing.fingerprint` values.
"""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Mapping, Optional, Tuple

from .assertions import ReplayCache, ReplayGuardedState
from .audit import MAX_EVENTS, AuditedState, AuditEvent
from .errors import OAuthError
from .models import ClientInfo

__all__ = ["IDP_AUTH_METHODS", "IdentityProviderAudit", "IdpEventKind", "IdpState"]

IDP_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
"""How clients authenticate at the identity provider's token endpoint (no public clients: the draft
has ID-JAGs for confidential clients only)."""


class IdpEventKind:
    """String constants used as :attr:`AuditEvent.kind` in :class:`IdentityProviderAudit`."""

    CLIENT_REGISTERED = "client_registered"
    ID_TOKEN_ISSUED = "id_token_issued"
    ID_JAG_ISSUED = "id_jag_issued"
    EXCHANGE_REFUSED = "exchange_refused"
    ASSERTION_REPLAYED = "assertion_replayed"


@dataclass(frozen=True)
class IdentityProviderAudit:
    """Immutable snapshot of the identity provider's counters and events.

    ``exchanges_requested`` counts every ``POST /token``; ``exchanges_issued`` those answered with an
    ID-JAG and ``exchanges_refused`` the rest, also counted by error code in ``refusals``.
    ``id_tokens_issued`` counts :meth:`IdentityProvider.issue_id_token` calls, ``assertion_replays``
    client assertions refused for a ``jti`` already used, ``metadata_requests`` requests per
    well-known path. Events (kinds in :class:`IdpEventKind`): ``client_registered``,
    ``id_token_issued``, ``id_jag_issued`` (subject, audience, client id at the authorization server,
    resource, scope and the ``jti``'s fingerprint), ``exchange_refused`` (the error and its
    description) and ``assertion_replayed``.
    """

    exchanges_requested: int
    exchanges_issued: int
    exchanges_refused: int
    refusals: Dict[str, int]
    id_tokens_issued: int
    assertion_replays: int
    metadata_requests: Dict[str, int]
    events: Tuple[AuditEvent, ...]

    def events_of(self, kind: str) -> Tuple[AuditEvent, ...]:
        """Events of one :class:`IdpEventKind`, in order."""
        return tuple(event for event in self.events if event.kind == kind)


class _Recorder:
    """Mutable counters; NOT thread-safe on its own (the state lock guards it)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.exchanges_requested = 0
        self.exchanges_issued = 0
        self.exchanges_refused = 0
        self.refusals: Dict[str, int] = {}
        self.id_tokens_issued = 0
        self.assertion_replays = 0
        self.metadata_requests: Dict[str, int] = {}
        self.events: Deque[AuditEvent] = collections.deque(maxlen=MAX_EVENTS)

    def event(self, time: float, kind: str, client_id: Optional[str], detail: str) -> None:
        self.events.append(AuditEvent(time=time, kind=kind, client_id=client_id, detail=detail))

    def snapshot(self) -> IdentityProviderAudit:
        return IdentityProviderAudit(
            exchanges_requested=self.exchanges_requested,
            exchanges_issued=self.exchanges_issued,
            exchanges_refused=self.exchanges_refused,
            refusals=dict(self.refusals),
            id_tokens_issued=self.id_tokens_issued,
            assertion_replays=self.assertion_replays,
            metadata_requests=dict(self.metadata_requests),
            events=tuple(self.events),
        )


@dataclass(frozen=True)
class IdpClient:
    """A client of the identity provider and its client ids at authorization servers (by issuer)."""

    info: ClientInfo
    as_client_ids: Mapping[str, str]


class IdpState(ReplayGuardedState, AuditedState[IdentityProviderAudit]):
    """Thread-safe state shared by the identity provider's request handler threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._clients: Dict[str, IdpClient] = {}
        self._replays = ReplayCache()
        self._audit: _Recorder = _Recorder()

    def now(self) -> float:
        return self._clock()

    # ----------------------------------------------------------------- clients

    def register_client(self, info: ClientInfo, as_client_ids: Mapping[str, str]) -> None:
        with self._lock:
            if info.client_id in self._clients:
                raise ValueError(f"client {info.client_id!r} is already registered")
            self._clients[info.client_id] = IdpClient(info, dict(as_client_ids))
            detail = f"{info.token_endpoint_auth_method} at {', '.join(sorted(as_client_ids)) or 'no audience'}"
            self._audit.event(self._clock(), IdpEventKind.CLIENT_REGISTERED, info.client_id, detail)
            self._changed.notify_all()

    def new_client_id(self) -> str:
        return "idp-client-" + secrets.token_hex(8)

    def get_client(self, client_id: str) -> Optional[ClientInfo]:
        with self._lock:
            client = self._clients.get(client_id)
            return client.info if client is not None else None

    def as_client_id(self, client_id: str, audience: str) -> Optional[str]:
        """The client's id at the authorization server whose issuer is ``audience``, if it has one."""
        with self._lock:
            client = self._clients.get(client_id)
            return client.as_client_ids.get(audience) if client is not None else None

    # ------------------------------------------------------------------- audit

    def record_exchange_request(self) -> None:
        with self._lock:
            self._audit.exchanges_requested += 1
            self._changed.notify_all()

    def record_exchange_issued(self, client_id: str, detail: str) -> None:
        with self._lock:
            self._audit.exchanges_issued += 1
            self._audit.event(self._clock(), IdpEventKind.ID_JAG_ISSUED, client_id, detail)
            self._changed.notify_all()

    def record_exchange_refused(self, client_id: Optional[str], error: OAuthError) -> None:
        with self._lock:
            self._audit.exchanges_refused += 1
            self._audit.refusals[error.error] = self._audit.refusals.get(error.error, 0) + 1
            detail = f"{error.error}: {error.description}"
            self._audit.event(self._clock(), IdpEventKind.EXCHANGE_REFUSED, client_id, detail)
            self._changed.notify_all()

    def record_id_token(self, audience: str, detail: str) -> None:
        with self._lock:
            self._audit.id_tokens_issued += 1
            self._audit.event(self._clock(), IdpEventKind.ID_TOKEN_ISSUED, audience, detail)
            self._changed.notify_all()

    def record_metadata_request(self, path: str) -> None:
        with self._lock:
            counter = self._audit.metadata_requests
            counter[path] = counter.get(path, 0) + 1
            self._changed.notify_all()
