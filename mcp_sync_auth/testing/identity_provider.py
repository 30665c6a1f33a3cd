"""An enterprise identity provider for tests of enterprise-managed authorization (the MCP extension
that profiles draft-ietf-oauth-identity-assertion-authz-grant): it issues OpenID ID tokens, and its
token endpoint exchanges them (RFC 8693) for Identity Assertion JWT Authorization Grants (ID-JAGs)
that a :class:`~mcp_sync_auth.testing.StrictAuthServer` trusting it trades for access tokens::

    with IdentityProvider(clock=clock) as idp, StrictAuthServer(clock=clock) as server:
        server.trust_identity_provider(idp)
        as_client = server.register_client(token_endpoint_auth_method="client_secret_basic",
                                           grant_types=[JWT_BEARER_GRANT])
        idp_client = idp.register_client(as_client_ids={server.issuer: as_client})
        id_token = idp.issue_id_token("alice", audience=idp_client)

Its own HTTP server on ``127.0.0.1`` (a free port: another origin, another issuer). Needs the ``jwt``
extra (PyJWT with cryptography).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from .http_types import RouteTable
from .id_jag import ID_JAG_TYP
from .idp_state import IDP_AUTH_METHODS, IdentityProviderAudit, IdpState
from .idp_token import IdpEndpoints, IdpUrls, id_jag_claims
from .jwt_keys import KeySource, load_public_key
from .jwt_signer import JwtSigner, SignerKeys, subject_claims, with_extra_claims
from .models import ClientInfo
from .scopes import parse_scope
from .serving import ServerTLS, ThreadedHttpServing

__all__ = ["IdentityProvider"]

AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
TOKEN_PATH = "/token"
JWKS_PATH = "/jwks"


def _check_lifetime(value: float, name: str) -> float:
    lifetime = float(value)
    if not lifetime > 0 or lifetime == float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds")
    return lifetime


class IdentityProvider(SignerKeys, ThreadedHttpServing):
    """A test identity provider: ID tokens, and RFC 8693 token exchange of them for ID-JAGs.

    Serves on ``host`` (a free port) from a daemon thread between :meth:`start` and :meth:`stop` (or
    as a context manager): RFC 8414 metadata at ``/.well-known/oauth-authorization-server`` (and the
    same document at ``/.well-known/openid-configuration``), its JWK Set at ``/jwks`` and the token
    endpoint at ``/token``, which serves only ``grant_type`` :data:`TOKEN_EXCHANGE_GRANT`.

    ``clock`` gives the time of every token issued and checked (pass the strict server's);
    ``id_jag_lifetime`` is how long an ID-JAG lives (``expires_in``). The signing key (EC P-256, ES256)
    is made per instance and never leaves it. ``tls``: serve HTTPS (as :class:`StrictAuthServer`).
    """

    _server_name = "IdentityProvider"
    _not_started_message = "the identity provider is not started"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        id_jag_lifetime: float = 300.0,
        key_id: Optional[str] = None,
        tls: Optional[ServerTLS] = None,
    ) -> None:
        super().__init__(host, tls)
        self._signer = JwtSigner("an IdentityProvider", "idp-" + secrets.token_hex(4) if key_id is None else key_id)
        self._key = load_public_key(self._signer.public_key)
        self._clock = clock
        self._id_jag_lifetime = _check_lifetime(id_jag_lifetime, "id_jag_lifetime")
        self._state = IdpState(clock)

    def __repr__(self) -> str:
        return f"IdentityProvider({self._base_url or 'not started'}, key_id={self.key_id!r})"

    # ------------------------------------------------------------- lifecycle

    def _endpoints(self) -> IdpEndpoints:
        urls = IdpUrls(issuer=self.issuer, token_endpoint=self.token_endpoint, jwks_uri=self.jwks_uri)
        return IdpEndpoints(
            self._state, urls, signer=self._signer, key=self._key, id_jag_lifetime=self._id_jag_lifetime
        )

    def _build_routes(self) -> RouteTable:
        endpoints = self._endpoints()
        return {
            AS_WELL_KNOWN: {"GET": endpoints.metadata},
            OIDC_WELL_KNOWN: {"GET": endpoints.metadata},
            JWKS_PATH: {"GET": endpoints.jwks},
            TOKEN_PATH: {"POST": endpoints.token},
        }

    # ------------------------------------------------------------------ URLs

    @property
    def issuer(self) -> str:
        """The ``iss`` of every token it issues: the base URL, no trailing slash."""
        return self.base_url

    @property
    def token_endpoint(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def jwks_uri(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def metadata_url(self) -> str:
        return self.base_url + AS_WELL_KNOWN

    def metadata(self) -> Dict[str, Any]:
        """The metadata document as served."""
        return self._endpoints().metadata_document()

    # ------------------------------------------------------------------ keys

    @property
    def key_id(self) -> str:
        return self._signer.key_id

    @property
    def id_jag_lifetime(self) -> float:
        return self._id_jag_lifetime

    # --------------------------------------------------------------- clients

    def register_client(
        self,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        *,
        as_client_ids: Optional[Mapping[str, str]] = None,
        token_endpoint_auth_method: str = "client_secret_basic",
        public_key: Optional[KeySource] = None,
    ) -> str:
        """Register a client of the identity provider; returns its id (generated when not given).

        ``as_client_ids`` maps the issuer of each authorization server the client may get ID-JAGs for
        to the client's id *there*: that id is the ID-JAG's ``client_id`` claim, which the
        authorization server matches against the client that authenticates (draft §7: the identity
        provider keeps that record, obtained out of band). An exchange whose ``audience`` is not a key
        of it is refused (``invalid_target``).

        The client authenticates with ``client_secret_basic`` (default) or ``client_secret_post`` (a
        random secret unless given; see :meth:`get_client`), or ``private_key_jwt`` with
        ``public_key``.
        """
        method = token_endpoint_auth_method
        if method not in IDP_AUTH_METHODS:
            raise ValueError(f"token_endpoint_auth_method must be one of {IDP_AUTH_METHODS}, not {method!r}")
        links = dict(as_client_ids or {})
        for audience, as_client_id in links.items():
            if not isinstance(audience, str) or not audience or not isinstance(as_client_id, str) or not as_client_id:
                raise ValueError("as_client_ids must map issuers to client ids (non-empty strings)")
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError("client_id must be a non-empty string")
        key = None
        if method == "private_key_jwt":
            if client_secret is not None or public_key is None:
                raise ValueError("a private_key_jwt client has a public_key and no client_secret")
            key = load_public_key(public_key)
        elif public_key is not None:
            raise ValueError(f"a {method} client has no public_key")
        elif client_secret is None:
            client_secret = secrets.token_urlsafe(32)
        elif not client_secret:
            raise ValueError("client_secret must not be empty")
        info = ClientInfo(
            client_id=client_id if client_id is not None else self._state.new_client_id(),
            client_secret=client_secret,
            token_endpoint_auth_method=method,
            grant_types=(),
            response_types=(),
            client_id_issued_at=int(self._clock()),
            public_key=key,
        )
        self._state.register_client(info, links)
        return info.client_id

    def get_client(self, client_id: str) -> ClientInfo:
        info = self._state.get_client(client_id)
        if info is None:
            raise KeyError(f"unknown client {client_id!r}")
        return info

    # ---------------------------------------------------------------- tokens

    def issue_id_token(
        self,
        subject: str,
        *,
        audience: Union[str, Sequence[str]],
        lifetime: float = 300.0,
        now: Optional[float] = None,
        jti: Optional[str] = None,
        extra_claims: Optional[Mapping[str, Any]] = None,
        algorithm: str = "ES256",
    ) -> str:
        """An OpenID ID token for ``subject``, as a login at this provider would give the client whose
        id (at this provider) is ``audience``: ``iss`` (this issuer), ``sub``, ``aud``, ``iat`` (``now``,
        else the clock), ``exp`` (``lifetime`` later), ``auth_time`` and ``jti``. ``extra_claims`` adds
        or replaces claims (map one to :data:`REMOVE` to leave it out); ``algorithm`` is ES256 or
        ``none``. Counted in ``audit.id_tokens_issued``."""
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        issued_at = int(self._clock() if now is None else now)
        claims = subject_claims(
            self.issuer, subject, audience, issued_at=issued_at, lifetime=lifetime, jti=jti, auth_time=issued_at
        )
        token = self._signer.sign(with_extra_claims(claims, extra_claims), algorithm=algorithm, headers={"typ": "JWT"})
        shown = audience if isinstance(audience, str) else " ".join(audience)
        self._state.record_id_token(shown, f"sub={subject} aud={shown}")
        return token

    def mint_id_jag(
        self,
        subject: str,
        *,
        audience: str,
        client_id: str,
        resource: str,
        scope: Optional[str] = None,
        lifetime: Optional[float] = None,
        now: Optional[float] = None,
        jti: Optional[str] = None,
        extra_claims: Optional[Mapping[str, Any]] = None,
        typ: Optional[str] = ID_JAG_TYP,
        algorithm: str = "ES256",
    ) -> str:
        """An ID-JAG signed with this provider's key, made directly (no exchange, no audit): for tests
        of what the authorization server refuses. The claims are those an exchange puts in
        (``client_id`` is the id at the authorization server ``audience``), ``lifetime`` defaults to
        ``id_jag_lifetime``; ``extra_claims`` adds, replaces or (with :data:`REMOVE`) drops claims;
        ``typ=None`` leaves the ``typ`` header out."""
        if scope is not None:
            scope = " ".join(parse_scope(scope))
        claims = id_jag_claims(
            issuer=self.issuer,
            subject=subject,
            audience=audience,
            client_id=client_id,
            resource=resource,
            scope=scope,
            issued_at=int(self._clock() if now is None else now),
            lifetime=self._id_jag_lifetime if lifetime is None else lifetime,
            jti=jti,
        )
        headers = {"typ": typ}  # PyJWT leaves out a typ of None
        return self._signer.sign(with_extra_claims(claims, extra_claims), algorithm=algorithm, headers=headers)

    # ----------------------------------------------------------------- audit

    @property
    def audit(self) -> IdentityProviderAudit:
        return self._state.audit()

    def reset_audit(self) -> None:
        self._state.reset_audit()

    def wait_for_audit(
        self, predicate: Callable[[IdentityProviderAudit], bool], timeout: float = 5.0
    ) -> IdentityProviderAudit:
        """Block until ``predicate(audit)`` is true (no polling); TimeoutError otherwise."""
        return self._state.wait_for_audit(predicate, timeout)
