"""Who we are to an authorization server: pre-registered, a client ID metadata document, or registered
dynamically (RFC 7591), in that order of preference (MCP 2025-11-25 "Client Registration").

Dynamic registrations are stored per authorization server issuer and never used with another one.
Concurrent first uses register once: an in-process flight, then the store's lock, then a re-read.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import requests

from .._chain.keys import RegistrationKey
from .._refresh.singleflight import SingleFlight
from .._stores.protocol import TokenStore
from .._util.checks import is_finite_number
from .._util.logs import cause_of, warn_limited
from .._util.redact import clean_server_text
from .._util.sessions import SessionSource
from .._util.timeouts import TimeoutLike, Timeouts
from .._util.untrusted import json_object, read_at_most
from .._util.urls import require_secure
from ..errors import CorruptTokenCache, RegistrationConnectionError, RegistrationFailed
from .client_auth import choose_auth_method

log = logging.getLogger(__name__)

PRE_REGISTERED = "pre-registered"
METADATA_DOCUMENT = "metadata-document"
# A workload presenting its own token with no client at all (the JWT bearer grant without client_id).
WORKLOAD = "workload"
DYNAMIC = "dynamic"
MAX_RESPONSE_BYTES = 64 * 1024
CODE_FLOW_GRANTS = ("authorization_code", "refresh_token")

_flights: SingleFlight[ClientRegistration] = SingleFlight()


@dataclasses.dataclass(frozen=True, repr=False)
class ClientRegistration:
    issuer: str
    client_id: str
    client_secret: Optional[str]
    auth_method: str
    redirect_uris: tuple[str, ...]
    source: str
    secret_expires_at: Optional[float] = None
    # The grant types registered (dynamic registrations); empty for registrations stored before
    # this was kept, which were all for the code flow.
    grant_types: tuple[str, ...] = ()

    def __repr__(self) -> str:
        secret = "set" if self.client_secret else "none"
        return (
            f"ClientRegistration({self.source}, issuer={self.issuer!r}, client_id={self.client_id!r}, "
            f"auth={self.auth_method}, secret={secret})"
        )

    def usable(self, now: float) -> bool:
        return self.secret_expires_at is None or self.secret_expires_at == 0 or now < self.secret_expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientRegistration:
        def text(name: str, optional: bool = False) -> Any:
            value = data.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name!r} is not a string")
            return value

        uris = data.get("redirect_uris")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ValueError("'redirect_uris' is not a list of strings")
        expires = data.get("secret_expires_at")
        if expires is not None and not is_finite_number(expires):
            raise ValueError("'secret_expires_at' is not a number")
        grants = data.get("grant_types", [])
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
            raise ValueError("'grant_types' is not a list of strings")
        return cls(
            issuer=text("issuer"),
            client_id=text("client_id"),
            client_secret=text("client_secret", optional=True),
            auth_method=text("auth_method"),
            redirect_uris=tuple(uris),
            source=text("source"),
            secret_expires_at=None if expires is None else float(expires),
            grant_types=tuple(grants),
        )

    def allows(self, grant_types: Sequence[str]) -> bool:
        """Whether the registration covers ``grant_types`` (an old record: the code flow's)."""
        registered = self.grant_types or CODE_FLOW_GRANTS
        return all(grant in registered for grant in grant_types)


class Registrar:
    """Finds or creates the client registration for an authorization server."""

    def __init__(
        self,
        store: TokenStore,
        *,
        session: Optional[requests.Session] = None,
        http: Optional[SessionSource] = None,
        timeout: TimeoutLike = 30.0,
        lock_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        client_name: str = "mcp-sync-auth",
    ) -> None:
        self._store = store
        self._sessions = http if http is not None else SessionSource(session)
        self._timeout = Timeouts.of(timeout)
        self._lock_timeout = lock_timeout
        self._clock = clock
        self._client_name = client_name

    def stored(self, issuer: str) -> Optional[ClientRegistration]:
        """The dynamic registration kept for this issuer, if any (no network).

        A corrupt registration counts as none: a new one costs nothing but a registration, and under
        the lock (in :meth:`register`) the store moves the broken file aside first. A registration
        written by a newer version, or a file we must not trust, raises: registering anew would write
        over it."""
        try:
            raw = self._store.load_registration(RegistrationKey(issuer))
        except CorruptTokenCache as exc:
            warn_limited(
                log, issuer, cause_of(exc), "ignoring an unreadable client registration for %s: %s", issuer, exc
            )
            return None
        if raw is None:
            return None
        try:
            registration = ClientRegistration.from_json(raw)
        except ValueError as exc:
            warn_limited(log, issuer, "malformed", "ignoring a malformed client registration for %s: %s", issuer, exc)
            return None
        # Keyed by issuer, and checked again: a registration is never used with another server.
        return registration if registration.issuer == issuer else None

    def register(
        self,
        *,
        issuer: str,
        registration_endpoint: str,
        redirect_uri: str,
        scopes: Optional[Sequence[str]],
        supported_auth_methods: Optional[Sequence[str]],
        extra_grant_types: Sequence[str] = (),
    ) -> ClientRegistration:
        """A dynamic registration usable with ``redirect_uri`` (and ``extra_grant_types`` besides the
        code flow's, the device grant): the stored one, or a new one (once, however many threads and
        processes ask at the same time)."""
        key = RegistrationKey(issuer)
        grants = (*CODE_FLOW_GRANTS, *extra_grant_types)

        def lead() -> ClientRegistration:
            existing = self._reusable(issuer, redirect_uri, grants)
            if existing is not None:
                return existing
            with self._store.lock(key, self._lock_timeout):
                existing = self._reusable(issuer, redirect_uri, grants)
                if existing is not None:
                    return existing
                fresh = self._post_registration(
                    issuer, registration_endpoint, redirect_uri, scopes, supported_auth_methods, grants=grants
                )
                self._store.save_registration(key, fresh.to_json())
                log.info("registered client %s with %s", fresh.client_id, issuer)
                return fresh

        return _flights.run((self._store.identity, issuer, redirect_uri, grants), lead)

    def _reusable(self, issuer: str, redirect_uri: str, grants: Sequence[str]) -> Optional[ClientRegistration]:
        existing = self.stored(issuer)
        if existing is None or not existing.usable(self._clock()) or not existing.allows(grants):
            return None
        return existing if redirect_uri in existing.redirect_uris else None

    def _post_registration(
        self,
        issuer: str,
        endpoint: str,
        redirect_uri: str,
        scopes: Optional[Sequence[str]],
        supported_auth_methods: Optional[Sequence[str]],
        *,
        grants: Sequence[str] = (),
    ) -> ClientRegistration:
        endpoint = require_secure(endpoint, "the registration endpoint")
        grants = tuple(grants) or CODE_FLOW_GRANTS
        request: dict[str, Any] = {
            "client_name": self._client_name,
            "redirect_uris": [redirect_uri],
            "grant_types": list(grants),
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            # MCP 2026-07-28: required; "native" for programs that receive the redirect on loopback.
            "application_type": "native",
        }
        if scopes:
            request["scope"] = " ".join(scopes)
        try:
            response = self._sessions.request(
                "POST",
                endpoint,
                failure=RegistrationConnectionError,
                json=request,
                headers={"Accept": "application/json"},
                timeout=self._timeout.for_requests,
                allow_redirects=False,
                stream=True,
            )
            with response:
                raw = read_at_most(response, MAX_RESPONSE_BYTES)
        except RegistrationConnectionError:
            raise
        except requests.exceptions.RequestException as exc:
            raise RegistrationFailed(f"registration at {endpoint} failed: {type(exc).__name__}") from None
        body = json_object(raw)
        if response.status_code not in (200, 201) or body is None:
            detail = ""
            if body is not None and isinstance(body.get("error"), str):
                detail = f": {clean_server_text(body['error'])} {clean_server_text(body.get('error_description', ''))}"
            raise RegistrationFailed(f"registration at {endpoint} was refused (HTTP {response.status_code}){detail}")
        client_id = body.get("client_id")
        secret = body.get("client_secret")
        if not isinstance(client_id, str) or not client_id:
            raise RegistrationFailed(f"registration at {endpoint} returned no client_id")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise RegistrationFailed(f"registration at {endpoint} returned an unusable client_secret")
        registered_method = body.get("token_endpoint_auth_method")
        method = choose_auth_method(
            bool(secret), supported_auth_methods, registered_method if isinstance(registered_method, str) else None
        )
        if method != "none" and not secret:
            raise RegistrationFailed(f"registration at {endpoint} asks for {method} but gave no secret")
        uris = body.get("redirect_uris")
        redirect_uris = tuple(uris) if isinstance(uris, list) and all(isinstance(u, str) for u in uris) else ()
        expires = body.get("client_secret_expires_at")
        return ClientRegistration(
            issuer=issuer,
            client_id=client_id,
            client_secret=secret,
            auth_method=method,
            redirect_uris=redirect_uris or (redirect_uri,),
            source=DYNAMIC,
            secret_expires_at=_positive_number(expires),
            grant_types=_registered_grants(body.get("grant_types"), grants),
        )


def _registered_grants(echoed: object, asked: tuple[str, ...]) -> tuple[str, ...]:
    """The grant types the server says it registered (RFC 7591 §3.2.1), else those asked for."""
    if isinstance(echoed, list) and echoed and all(isinstance(g, str) for g in echoed):
        return tuple(echoed)
    return asked


def _positive_number(value: object) -> Optional[float]:
    if not is_finite_number(value):
        return None
    number = float(value)
    return number if number > 0 else None
