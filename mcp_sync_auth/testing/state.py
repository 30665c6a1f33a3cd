"""Authorization server state: clients, codes, refresh chains, tokens, knobs, faults and audit.

Pure logic, no HTTP. Every read and write happens under one lock; a condition
variable on that lock is notified after each change so tests can wait for an
audit predicate instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from .assertions import ReplayCache, ReplayGuardedState, VerifiedAssertion
from .audit import MISSING_GRANT_TYPE, Audit, AuditedState, AuditRecorder, EventKind, fingerprint
from .client_metadata import ClientMetadata, check_client_metadata
from .device_codes import APPROVED, DENIED, SPENT, DeviceCodeBook, DeviceCodeRecord, PendingDeviceCode, poll_error
from .dpop import PLACES, DpopProof
from .errors import OAuthError
from .faults import Fault, FaultQueue
from .jwt_keys import PublicKey
from .models import (
    DEVICE_CODE_GRANT,
    JWT_BEARER_GRANT,
    AccessCheck,
    AccessTokenRecord,
    AuthorizationCodeRecord,
    ChainRecord,
    ChainSummary,
    ClientInfo,
    RefreshTokenRecord,
    TokenGrant,
)
from .options import ServerOptions
from .pkce import verifier_matches
from .scopes import parse_scope

__all__ = ["AuthState", "parse_scope"]

Clock = Callable[[], float]
GrantFunction = Callable[[float], Tuple[TokenGrant, str]]
"""now -> (grant, audit detail); runs under the lock."""

_MARKER = re.compile(r"[A-Za-z0-9._~-]*")
SECRETLESS = ("none", "private_key_jwt")
"""Client authentication methods without a client secret."""


def _check_ttl(ttl: float) -> float:
    ttl = float(ttl)
    if not math.isfinite(ttl):
        raise ValueError("access_token_ttl must be finite")
    return ttl


class AuthState(ReplayGuardedState, AuditedState[Audit]):
    """Thread-safe OAuth state shared by all request handler threads."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        access_token_ttl: float = 300.0,
        require_resource: bool = True,
        rotate_refresh_tokens: bool = True,
        token_marker: str = "",
        options: Optional[ServerOptions] = None,
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
        self._codes: Dict[str, AuthorizationCodeRecord] = {}
        self._options = options if options is not None else ServerOptions()
        self._access: Dict[str, AccessTokenRecord] = {}
        self._sessions: Set[str] = set()
        self._next_chain_id = 1
        self._holding = False
        self._held = 0
        self._faults = FaultQueue()
        self._audit: AuditRecorder = AuditRecorder()
        self._workload_issuers: Dict[str, PublicKey] = {}
        self._identity_providers: Dict[str, PublicKey] = {}
        self._replays = ReplayCache()
        self._dpop_nonces = {place: secrets.token_urlsafe(16) for place in PLACES}
        self._dpop_jtis = ReplayCache()
        self._device_codes = DeviceCodeBook()

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

    @property
    def options(self) -> ServerOptions:
        """The current knobs, as one consistent snapshot."""
        with self._lock:
            return self._options

    def update_options(self, **changes: Any) -> ServerOptions:
        """Replace some knobs (validated before anything changes)."""
        with self._lock:
            self._options = dataclasses.replace(self._options, **changes)
            return self._options

    # ----------------------------------------------------------------- clients

    def register_client(
        self,
        metadata: ClientMetadata,
        *,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        dynamic: bool = False,
    ) -> ClientInfo:
        """Register a client; ``ClientMetadataError`` (a ValueError) if the metadata is refused.

        ``dynamic`` registrations (``POST /register``) must list redirect URIs for the code grant
        and are counted in the audit; the test helper's are not.
        """
        method = metadata.token_endpoint_auth_method
        if method in SECRETLESS:
            if client_secret is not None:
                raise ValueError(f"a client with token_endpoint_auth_method {method!r} has no secret")
        elif client_secret is not None and not client_secret:
            raise ValueError("client_secret must not be empty")
        if client_id is not None and not client_id:
            raise ValueError("client_id must not be empty")
        with self._lock:
            check_client_metadata(metadata, self._options.scopes_supported, require_redirect_uris=dynamic)
            if client_id is None:
                client_id = "client-" + secrets.token_hex(8)
            if client_id in self._clients:
                raise ValueError(f"client {client_id!r} is already registered")
            if method not in SECRETLESS and client_secret is None:
                client_secret = self._new_token()
            now = self._clock()
            info = ClientInfo(
                client_id=client_id,
                client_secret=client_secret,
                token_endpoint_auth_method=method,
                redirect_uris=metadata.redirect_uris,
                grant_types=metadata.grant_types,
                response_types=metadata.response_types,
                scope=metadata.scope,
                client_name=metadata.client_name,
                application_type=metadata.application_type,
                client_id_issued_at=int(now),
                dynamic=dynamic,
                public_key=metadata.public_key,
            )
            self._clients[client_id] = info
            if dynamic:
                self._audit.registrations += 1
            detail = method + (" (dynamic)" if dynamic else "")
            self._audit.event(now, EventKind.CLIENT_REGISTERED, client_id, detail)
            self._changed.notify_all()
            return info

    def record_registration_request(self) -> None:
        with self._lock:
            self._audit.registration_request()
            self._changed.notify_all()

    def record_registration_failure(self, error: str, description: str) -> None:
        with self._lock:
            self._audit.registration_failed(self._clock(), f"{error}: {description}")
            self._changed.notify_all()

    def get_client(self, client_id: str) -> Optional[ClientInfo]:
        with self._lock:
            return self._clients.get(client_id)

    # ------------------------------------------------------------ token issue

    def _new_token(self) -> str:
        return self._marker + secrets.token_urlsafe(32)

    def _issue_access(self, chain: ChainRecord, scope: Tuple[str, ...], now: float) -> TokenGrant:
        grant = self._issue_unchained_access(
            chain.client_id, chain.resource, scope, now, chain.chain_id, dpop_jkt=chain.dpop_jkt
        )
        chain.access_tokens.append(grant.access_token)
        return grant

    def _issue_unchained_access(
        self,
        client_id: Optional[str],
        resource: str,
        scope: Tuple[str, ...],
        now: float,
        chain_id: Optional[int] = None,
        *,
        dpop_jkt: Optional[str] = None,
    ) -> TokenGrant:
        """An access token; bound to the key ``dpop_jkt`` (token_type DPoP) when given."""
        token = self._new_token()
        ttl = self._ttl
        self._access[token] = AccessTokenRecord(
            token=token,
            client_id=client_id,
            chain_id=chain_id,
            resource=resource,
            scope=scope,
            expires_at=now + ttl,
            dpop_jkt=dpop_jkt,
        )
        token_type = "Bearer" if dpop_jkt is None else "DPoP"
        return TokenGrant(token, ttl, " ".join(scope), None, token_type=token_type, dpop_jkt=dpop_jkt)

    def _issue_refresh(self, chain: ChainRecord) -> str:
        token = self._new_token()
        self._refresh[token] = RefreshTokenRecord(token, chain.chain_id, chain.generation)
        chain.refresh_tokens.append(token)
        chain.current_refresh_token = token
        return token

    def mint(self, client_id: str, *, scope: str, resource: str, dpop_jkt: Optional[str] = None) -> TokenGrant:
        """Start a new refresh chain for ``client_id`` (as if the user had consented), bound to the
        key ``dpop_jkt`` (a JWK thumbprint) when given."""
        scopes = parse_scope(scope)
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client {client_id!r}")
            now = self._clock()
            chain = self._new_chain_locked(client_id, resource, scopes)
            chain.dpop_jkt = dpop_jkt
            refresh_token = self._issue_refresh(chain)
            grant = self._issue_access(chain, scopes, now)
            detail = f"chain={chain.chain_id} rt={fingerprint(refresh_token)}"
            if dpop_jkt is not None:
                detail += f" jkt={dpop_jkt}"
            self._audit.event(now, EventKind.TOKENS_MINTED, client_id, detail)
            self._changed.notify_all()
            return dataclasses.replace(grant, refresh_token=refresh_token)

    def _new_chain_locked(self, client_id: str, resource: str, scope: Tuple[str, ...]) -> ChainRecord:
        chain = ChainRecord(self._next_chain_id, client_id, resource, scope)
        self._next_chain_id += 1
        self._chains[chain.chain_id] = chain
        return chain

    # ------------------------------------------------------- authorization

    def record_authorization_request(self, params: Mapping[str, str]) -> None:
        with self._lock:
            self._audit.authorization_request(params)
            self._changed.notify_all()

    def record_authorization_failure(self, client_id: Optional[str], error: OAuthError) -> None:
        with self._lock:
            self._audit.authorization_failed(self._clock(), client_id, error.error, error.description)
            self._changed.notify_all()

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        resource: str,
        scope: Tuple[str, ...],
        dpop_jkt: Optional[str] = None,
    ) -> str:
        """Record a consented authorization request and return its single-use code (bound to the key
        ``dpop_jkt`` when the request named one, RFC 9449 §10)."""
        with self._lock:
            now = self._clock()
            code = self._new_token()
            self._codes[code] = AuthorizationCodeRecord(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                resource=resource,
                scope=scope,
                expires_at=now + self._options.authorization_code_ttl,
                dpop_jkt=dpop_jkt,
            )
            detail = f"code={fingerprint(code)} scope={' '.join(scope)}"
            if dpop_jkt is not None:
                detail += f" dpop_jkt={dpop_jkt}"
            self._audit.authorization_ok(now, client_id, detail)
            self._changed.notify_all()
            return code

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

    def _run_grant(self, grant_type: str, client_id: Optional[str], label: str, grant: GrantFunction) -> TokenGrant:
        """Run ``grant`` under the lock and audit its outcome; ``label`` names what was presented."""
        with self._lock:
            now = self._clock()
            try:
                result, detail = grant(now)
            except OAuthError as exc:
                detail = f"{exc.error}: {exc.description}" + (f" {label}" if label else "")
                self._audit.grant_failed(now, grant_type, client_id, detail)
                exc.audited = True
                self._changed.notify_all()
                raise
            if result.dpop_jkt is not None:
                detail += f" jkt={result.dpop_jkt}"
            self._audit.grant_ok(now, grant_type, client_id, detail)
            self._changed.notify_all()
            return result

    def refresh(
        self,
        *,
        client_id: str,
        refresh_token: str,
        resource: Optional[str],
        scope: Optional[str],
        dpop_jkt: Optional[str] = None,
    ) -> TokenGrant:
        """The refresh_token grant (RFC 6749 §6) with rotation and reuse detection. ``dpop_jkt``: the
        thumbprint of the request's DPoP proof key, which a bound chain's must equal."""

        def grant(now: float) -> Tuple[TokenGrant, str]:
            result = self._refresh_locked(now, client_id, refresh_token, resource, scope, dpop_jkt=dpop_jkt)
            detail = f"rt={fingerprint(refresh_token)}"
            if result.refresh_token is not None:
                detail += f" -> rt={fingerprint(result.refresh_token)}"
            return result, detail

        return self._run_grant("refresh_token", client_id, f"rt={fingerprint(refresh_token)}", grant)

    def exchange_code(
        self,
        *,
        client: ClientInfo,
        code: str,
        redirect_uri: Optional[str],
        code_verifier: Optional[str],
        resource: Optional[str],
        dpop_jkt: Optional[str] = None,
    ) -> TokenGrant:
        """The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 8707). With ``dpop_jkt``
        (the request's DPoP proof key) the new chain is bound to that key."""

        def grant(now: float) -> Tuple[TokenGrant, str]:
            result = self._exchange_code_locked(
                now,
                client=client,
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                resource=resource,
                dpop_jkt=dpop_jkt,
            )
            detail = f"code={fingerprint(code)}"
            if result.refresh_token is not None:
                detail += f" -> rt={fingerprint(result.refresh_token)}"
            return result, detail

        return self._run_grant("authorization_code", client.client_id, f"code={fingerprint(code)}", grant)

    def _exchange_code_locked(
        self,
        now: float,
        *,
        client: ClientInfo,
        code: str,
        redirect_uri: Optional[str],
        code_verifier: Optional[str],
        resource: Optional[str],
        dpop_jkt: Optional[str],
    ) -> TokenGrant:
        record = self._codes.get(code)
        if record is None:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if record.client_id != client.client_id:
            # Not spent: a client cannot burn another client's code by guessing it.
            raise OAuthError("invalid_grant", "authorization code was not issued to this client")
        if record.dpop_jkt is not None and dpop_jkt != record.dpop_jkt:
            # Not spent either (RFC 9449 §10): a presentation without the key proves nothing.
            what = f"code={fingerprint(code)}"
            self._dpop_key_mismatch_locked(now, client.client_id, what, record.dpop_jkt, dpop_jkt)
            raise OAuthError("invalid_grant", "the DPoP proof's key is not the one the authorization request named")
        if record.used:
            self._code_reused_locked(now, record)
            raise OAuthError("invalid_grant", "authorization code already used")
        # Spent by its first presentation, whatever the outcome (as Keycloak does): a wrong
        # verifier cannot be retried, and the code is never good twice.
        record.used = True
        if now >= record.expires_at:
            raise OAuthError("invalid_grant", "authorization code expired")
        if redirect_uri != record.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if code_verifier is None:
            raise OAuthError("invalid_grant", "code_verifier is required")
        if not verifier_matches(code_verifier, record.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        if resource is None:
            if self._require_resource:
                raise OAuthError("invalid_target", "the resource parameter is required")
        elif resource != record.resource:
            raise OAuthError("invalid_target", "resource does not match the authorization request")
        chain = self._new_chain_locked(client.client_id, record.resource, record.scope)
        chain.dpop_jkt = dpop_jkt
        record.chain_id = chain.chain_id
        refresh_token: Optional[str] = None
        if self._options.issue_refresh_tokens and "refresh_token" in client.grant_types:
            refresh_token = self._issue_refresh(chain)
        access = self._issue_access(chain, record.scope, now)
        return dataclasses.replace(access, refresh_token=refresh_token)

    def _code_reused_locked(self, now: float, record: AuthorizationCodeRecord) -> None:
        """RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for."""
        self._audit.code_reuse_detections += 1
        detail = f"code={fingerprint(record.code)} chain={record.chain_id}"
        self._audit.event(now, EventKind.CODE_REUSE_DETECTED, record.client_id, detail)
        if record.chain_id is not None:
            self._revoke_chain_locked(now, self._chains[record.chain_id], "authorization code reuse")

    def client_credentials(
        self, *, client: ClientInfo, resource: str, scope: Tuple[str, ...], dpop_jkt: Optional[str] = None
    ) -> TokenGrant:
        """The client_credentials grant (RFC 6749 §4.4): an access token only (bound to ``dpop_jkt``
        when given), no chain."""

        def grant(now: float) -> Tuple[TokenGrant, str]:
            result = self._issue_unchained_access(client.client_id, resource, scope, now, dpop_jkt=dpop_jkt)
            return result, f"scope={result.scope}"

        return self._run_grant("client_credentials", client.client_id, "", grant)

    def jwt_bearer(
        self,
        *,
        client_id: Optional[str],
        assertion: VerifiedAssertion,
        resource: str,
        scope: Tuple[str, ...],
        id_jag: bool = False,
        dpop_jkt: Optional[str] = None,
    ) -> TokenGrant:
        """The JWT bearer grant (RFC 7523 §2.1): an access token for a verified (and spent) assertion
        (bound to ``dpop_jkt`` when given), no refresh token, no chain. ``client_id`` is None when the
        request authenticated no client; ``id_jag`` says the assertion was an ID-JAG (counted in
        ``audit.id_jag_grants`` too)."""

        def grant(now: float) -> Tuple[TokenGrant, str]:
            result = self._issue_unchained_access(client_id, resource, scope, now, dpop_jkt=dpop_jkt)
            detail = f"iss={assertion.issuer} sub={assertion.subject} jti={fingerprint(assertion.jti)}"
            if id_jag:
                self._audit.id_jag_grants += 1
                detail = "ID-JAG " + detail
            return result, f"{detail} scope={result.scope}"

        return self._run_grant(JWT_BEARER_GRANT, client_id, "", grant)

    def _refresh_locked(
        self,
        now: float,
        client_id: str,
        refresh_token: str,
        resource: Optional[str],
        scope: Optional[str],
        *,
        dpop_jkt: Optional[str],
    ) -> TokenGrant:
        record = self._refresh.get(refresh_token)
        if record is None:
            raise OAuthError("invalid_grant", "unknown refresh token")
        chain = self._chains[record.chain_id]
        if chain.client_id != client_id:
            raise OAuthError("invalid_grant", "refresh token was not issued to this client")
        if not chain.alive:
            raise OAuthError("invalid_grant", "refresh token revoked")
        self._check_chain_binding_locked(now, chain, refresh_token, dpop_jkt)
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
        return dataclasses.replace(grant, refresh_token=new_refresh)

    def _check_chain_binding_locked(
        self, now: float, chain: ChainRecord, refresh_token: str, dpop_jkt: Optional[str]
    ) -> None:
        """RFC 9449 §5: a bound refresh token needs a proof of its key. Checked before reuse detection
        and before anything rotates: a presentation without the key proves nothing and changes nothing.
        A Bearer chain stays Bearer (a proof is ignored for binding), except that with DPoP required it
        is refused: its access tokens would not be accepted anyway."""
        if chain.dpop_jkt is None:
            if self._options.dpop == "required":
                raise OAuthError("invalid_grant", "the refresh token is not DPoP-bound and DPoP is required")
            return
        if dpop_jkt != chain.dpop_jkt:
            what = f"chain={chain.chain_id} rt={fingerprint(refresh_token)}"
            self._dpop_key_mismatch_locked(now, chain.client_id, what, chain.dpop_jkt, dpop_jkt)
            if dpop_jkt is None:
                raise OAuthError("invalid_grant", "the refresh token is DPoP-bound: a DPoP proof of its key is needed")
            raise OAuthError("invalid_grant", "the DPoP proof's key is not the one the refresh token is bound to")

    def _dpop_key_mismatch_locked(
        self, now: float, client_id: Optional[str], what: str, expected: str, presented: Optional[str]
    ) -> None:
        self._audit.dpop.key_mismatches += 1
        detail = f"{what} bound to jkt={expected}, proof jkt={presented or '(no proof)'}"
        self._audit.event(now, EventKind.DPOP_KEY_MISMATCH, client_id, detail)

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

    # ------------------------------------------------------------- device grant

    def record_device_request(self, params: Mapping[str, str]) -> None:
        with self._lock:
            self._audit.device.request(params)
            self._changed.notify_all()

    def record_device_refusal(self, client_id: Optional[str], error: OAuthError) -> None:
        with self._lock:
            self._audit.device.refused(error.error)
            detail = f"{error.error}: {error.description}"
            self._audit.event(self._clock(), EventKind.DEVICE_AUTHORIZATION_FAILED, client_id, detail)
            self._changed.notify_all()

    def issue_device_code(
        self, *, client: ClientInfo, resource: str, scope: Tuple[str, ...], verification_uri: str
    ) -> Dict[str, Any]:
        """A device authorization (RFC 8628 §3.2) for ``client``: its answer, as sent."""
        with self._lock:
            now = self._clock()
            options = self._options
            record = DeviceCodeRecord(
                device_code=self._new_token(),
                user_code=self._device_codes.fresh_user_code(),
                client_id=client.client_id,
                resource=resource,
                scope=scope,
                expires_at=now + options.device_code_ttl,
                interval=options.device_interval,
                last_request=now,
            )
            self._device_codes.add(record)
            self._audit.device.authorizations_issued += 1
            code = fingerprint(record.device_code)
            detail = f"device code={code} user_code={record.user_code} scope={' '.join(scope)}"
            self._audit.event(now, EventKind.DEVICE_CODE_ISSUED, client.client_id, detail)
            self._changed.notify_all()
            return {
                "device_code": record.device_code,
                "user_code": record.user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": f"{verification_uri}?user_code={record.user_code}",
                "expires_in": max(1, math.ceil(options.device_code_ttl)),
                "interval": math.ceil(options.device_interval),
            }

    def decide_device_code(self, user_code: str, approve: bool) -> None:
        """The person's answer for a pending code (KeyError for an unknown or decided one)."""
        with self._lock:
            now = self._clock()
            record = self._device_codes.decide(user_code, APPROVED if approve else DENIED, now)
            if approve:
                self._audit.device.approvals += 1
            else:
                self._audit.device.denials += 1
            kind = EventKind.DEVICE_APPROVED if approve else EventKind.DEVICE_DENIED
            self._audit.event(now, kind, record.client_id, f"user_code={record.user_code}")
            self._changed.notify_all()

    def pending_device_codes(self) -> List[PendingDeviceCode]:
        with self._lock:
            return self._device_codes.pending(self._clock())

    def wait_for_pending_device_code(self, timeout: float) -> PendingDeviceCode:
        """The oldest pending device code, once there is one; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                pending = self._device_codes.pending(self._clock())
                if pending:
                    return pending[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no device code is pending")
                self._changed.wait(remaining)

    def device_code_grant(
        self, *, client: ClientInfo, device_code: str, resource: Optional[str], dpop_jkt: Optional[str] = None
    ) -> TokenGrant:
        """One poll of the device grant (RFC 8628 §3.4, §3.5): the chain once the person approved,
        else the error the poll is answered with. A code gives tokens once."""

        def grant(now: float) -> Tuple[TokenGrant, str]:
            record, answer = self._device_codes.poll(device_code, client.client_id, now)
            if record is None or answer != "tokens":
                if record is not None:
                    self._audit.device.poll(answer)
                raise poll_error(answer, record)
            problem = None
            if resource is None:
                if self._require_resource:
                    problem = "the resource parameter is required"
            elif resource != record.resource:
                problem = "resource does not match the device authorization request"
            if problem is not None:  # the code is not spent: the client may poll again, rightly
                self._audit.device.poll("invalid_target")
                raise OAuthError("invalid_target", problem)
            self._audit.device.poll("tokens")
            record.status = SPENT
            chain = self._new_chain_locked(client.client_id, record.resource, record.scope)
            chain.dpop_jkt = dpop_jkt
            refresh_token: Optional[str] = None
            if self._options.issue_refresh_tokens and "refresh_token" in client.grant_types:
                refresh_token = self._issue_refresh(chain)
            access = self._issue_access(chain, record.scope, now)
            detail = f"device code={fingerprint(device_code)} user_code={record.user_code}"
            if refresh_token is not None:
                detail += f" -> rt={fingerprint(refresh_token)}"
            return dataclasses.replace(access, refresh_token=refresh_token), detail

        return self._run_grant(DEVICE_CODE_GRANT, client.client_id, f"device code={fingerprint(device_code)}", grant)

    # -------------------------------------------------------------- assertions

    def now(self) -> float:
        """The server's clock."""
        return self._clock()

    def trust_workload_issuer(self, issuer: str, key: PublicKey) -> None:
        """Accept JWT bearer grants whose ``iss`` is ``issuer``, signed with ``key`` (replaces a key)."""
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("a workload issuer must be a non-empty string")
        with self._lock:
            self._workload_issuers[issuer] = key

    def workload_issuer_key(self, issuer: str) -> Optional[PublicKey]:
        with self._lock:
            return self._workload_issuers.get(issuer)

    def trust_identity_provider(self, issuer: str, key: PublicKey) -> None:
        """Accept ID-JAGs whose ``iss`` is ``issuer``, signed with ``key`` (replaces a key)."""
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("an identity provider's issuer must be a non-empty string")
        with self._lock:
            self._identity_providers[issuer] = key

    def identity_provider_key(self, issuer: str) -> Optional[PublicKey]:
        with self._lock:
            return self._identity_providers.get(issuer)

    def trusts_identity_providers(self) -> bool:
        with self._lock:
            return bool(self._identity_providers)

    # -------------------------------------------------------------------- DPoP

    def dpop_nonce(self, place: str) -> str:
        """The nonce a proof at ``place`` ("token" or "resource") must carry while nonces are on."""
        with self._lock:
            return self._dpop_nonces[place]

    def rotate_dpop_nonces(self) -> Dict[str, str]:
        """New nonces for both places: proofs with the old ones are answered ``use_dpop_nonce``."""
        with self._lock:
            self._dpop_nonces = {place: secrets.token_urlsafe(16) for place in PLACES}
            return dict(self._dpop_nonces)

    def spend_dpop_proof(self, place: str, proof: DpopProof, client_id: Optional[str]) -> bool:
        """Remember a verified proof's ``jti`` (one cache for every client, key and place) and count it;
        False (audited as a replay) if it was accepted before."""
        with self._lock:
            now = self._clock()
            detail = f"{place}: jkt={proof.jkt} jti={fingerprint(proof.jti)}"
            accepted = self._dpop_jtis.spend((proof.jti,), proof.keep_until, now)
            if accepted:
                self._audit.dpop.accepted(place, proof.jkt)
                self._audit.event(now, EventKind.DPOP_PROOF_ACCEPTED, client_id, detail)
            else:
                self._audit.dpop.replays += 1
                self._audit.event(now, EventKind.DPOP_REPLAYED, client_id, detail)
            self._changed.notify_all()
            return accepted

    def record_dpop_refusal(
        self, place: str, kind: str, client_id: Optional[str], detail: str, *, missing: bool = False
    ) -> None:
        """Count, at ``place``, a proof refused (``EventKind.DPOP_PROOF_REFUSED``; ``missing``: there
        was none), a nonce challenge, a key mismatch or a bound access token sent as Bearer."""
        with self._lock:
            counters = self._audit.dpop
            if kind == EventKind.DPOP_NONCE_CHALLENGE:
                counters.nonce_challenge(place)
            elif kind == EventKind.DPOP_KEY_MISMATCH:
                counters.key_mismatches += 1
            elif kind == EventKind.DPOP_BOUND_AS_BEARER:
                counters.bound_as_bearer += 1
            elif missing:
                counters.proofs_missing += 1
            else:
                counters.proofs_refused += 1
            self._audit.event(self._clock(), kind, client_id, f"{place}: {detail}")
            self._changed.notify_all()

    # ------------------------------------------------------------ revocation (RFC 7009)

    def revoke_token(self, token: str, client_id: Optional[str], hint: Optional[str]) -> str:
        """Revoke ``token`` for the authenticated ``client_id``: what it was ("refresh_token",
        "access_token"), "unknown" (nothing to do: RFC 7009 §2.2 still answers 200), or "not_owned"
        (issued to another client; left alone). A refresh token ends its whole chain: every later
        refresh is ``invalid_grant`` and its access tokens are refused. ``hint`` only orders the lookup."""
        with self._lock:
            now = self._clock()
            order = ("access_token", "refresh_token") if hint == "access_token" else ("refresh_token", "access_token")
            for kind in order:
                if kind == "refresh_token" and token in self._refresh:
                    chain = self._chains[self._refresh[token].chain_id]
                    if chain.client_id != client_id:
                        return "not_owned"
                    self._revoke_chain_locked(now, chain, "refresh token revoked by the client")
                    self._changed.notify_all()
                    return kind
                if kind == "access_token" and token in self._access:
                    record = self._access[token]
                    if record.client_id != client_id:
                        return "not_owned"
                    record.revoked = True
                    self._audit.access_token_revocations += 1
                    self._audit.event(
                        now, EventKind.ACCESS_TOKENS_REVOKED, client_id, "count=1 (revoked by the client)"
                    )
                    self._changed.notify_all()
                    return kind
            return "unknown"

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
                    current_refresh_fingerprint=(
                        fingerprint(chain.current_refresh_token) if chain.current_refresh_token else ""
                    ),
                    revoked_reason=chain.revoked_reason,
                    dpop_jkt=chain.dpop_jkt,
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
                return AccessCheck(False, record.client_id, reason, dpop_jkt=record.dpop_jkt)
            return AccessCheck(True, record.client_id, "ok", record.scope, dpop_jkt=record.dpop_jkt)

    def record_mcp(self, ok: bool, client_id: Optional[str], detail: str) -> None:
        """Count one MCP request: ``detail`` is the JSON-RPC method (ok) or the 401 reason."""
        with self._lock:
            self._audit.mcp(self._clock(), ok, client_id, detail)
            self._changed.notify_all()

    def record_metadata_request(self, path: str) -> None:
        with self._lock:
            self._audit.metadata_request(path)
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
