"""The :class:`StrictAuthServer` context manager used by the test-suite."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .._util.jwt_extra import jwt_module
from .audit import Audit
from .authorize import WRONG_ISSUER_SUFFIX, AuthorizationEndpoint
from .client_metadata import ClientMetadata
from .consent_page import CONSENT_PATH, ConsentEndpoint, PendingAuthorizations
from .device import DeviceAuthorizationEndpoint
from .device_codes import PendingDeviceCode
from .dpop import PLACES, is_thumbprint
from .faults import Fault
from .http_types import RouteTable
from .identity_provider import IdentityProvider
from .jwt_keys import KeySource, load_public_key
from .mcp import McpEndpoint
from .mcp_controls import McpControls
from .metadata import MetadataEndpoints, ServerUrls
from .models import ChainSummary, ClientInfo
from .options import ServerOptions
from .overrides import freeze_overrides
from .registration import RegistrationEndpoint
from .revocation import Revocation, RevocationEndpoint
from .serving import ServerTLS, ThreadedHttpServing
from .state import AuthState
from .token_endpoint import TokenEndpoint
from .workload import WorkloadIssuer

PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"
AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"

__all__ = ["StrictAuthServer"]


def _dpop_needs_pyjwt(mode: Optional[str]) -> None:
    if mode is not None:
        jwt_module("DPoP (RFC 9449) proofs")


def _scope_tuple(scopes: Sequence[str]) -> Tuple[str, ...]:
    if isinstance(scopes, str):  # tuple("mcp") would quietly be ("m", "c", "p")
        raise ValueError("scopes_supported must be a sequence of scopes, not a string")
    return tuple(scopes)


class StrictAuthServer(ThreadedHttpServing):
    """A strict OAuth 2.1 authorization server plus an MCP resource server.

    Serves on ``127.0.0.1`` (free port) from a daemon thread between
    :meth:`start` and :meth:`stop` (or as a context manager).

    Endpoints: RFC 9728 metadata at ``/.well-known/oauth-protected-resource/mcp``, RFC 8414
    metadata at ``/.well-known/oauth-authorization-server``, ``POST /register`` (RFC 7591),
    ``GET /authorize`` (code + PKCE S256 + resource, automatic consent), ``POST /token``
    (authorization_code, refresh_token, client_credentials and the RFC 7523 JWT bearer grant; clients
    authenticate with a secret or with ``private_key_jwt``; the JWT bearer grant also takes ID-JAGs
    from a trusted :class:`IdentityProvider`), ``POST /revoke`` (RFC 7009, the client authenticated
    as at ``/token``; a refresh token ends its chain; ``revocation=False`` turns it off, and
    :meth:`revocations`, :meth:`fail_revocations` are its audit and fault switch) and ``/mcp``.

    Knobs (constructor keywords, also settable at run time): ``scopes_supported``,
    ``serve_metadata``, ``path_metadata`` (False: no document at the path-inserted URL),
    ``root_metadata`` (the same protected resource metadata at the root well-known URL too),
    ``allow_registration``, ``auto_consent``, ``consent`` ("auto", the default: no page; "page": an
    HTML consent page with Allow and Deny, posted to ``/authorize/consent``), ``loopback_any_port``
    (False: a registered loopback redirect URI must match exactly, port included), ``iss_mode``,
    ``issue_refresh_tokens``, ``authorization_code_ttl``, ``prm_overrides``,
    ``as_metadata_overrides`` (documents only; map a field to :data:`REMOVE` to delete it) and
    ``anonymous_jwt_bearer`` (the JWT bearer grant without client authentication, default True).

    The resource tokens are granted for is :attr:`resource_identifier`: whatever ``resource`` the
    protected resource metadata publishes (``prm_overrides={"resource": server.base_url}`` with
    ``path_metadata=False, root_metadata=True`` makes an origin-wide resource), else the MCP URL.

    JWT assertions (RFC 7523) need the ``jwt`` extra (PyJWT): without it the server still runs, and
    a request that presents one is answered ``500 server_error`` naming the extra.

    DPoP (RFC 9449), off by default: ``dpop="optional"`` (DPoP-bound or Bearer tokens, as the token
    request asks) or ``"required"`` (proofs at the token endpoint, DPoP-bound tokens only at /mcp);
    ``dpop_nonce_at_token`` / ``dpop_nonce_at_resource`` make proofs carry the server's nonce there
    (``use_dpop_nonce`` otherwise, and every answer there carries ``DPoP-Nonce``; the two places have
    nonces of their own), ``dpop_proof_window`` is how far a proof's ``iat`` may be from the clock.
    All four are settable at run time; turning DPoP on needs the ``jwt`` extra (MissingExtra).

    The device authorization grant (RFC 8628), off by default: ``device_authorization=True`` serves
    ``POST /device_authorization`` and the device grant at ``/token`` (for clients registered for
    it), with ``device_code_ttl`` and ``device_interval``; tests answer for the person with
    :meth:`approve_device` / :meth:`deny_device` and see what waits with :meth:`pending_device_codes`.
    ``tls``: serve HTTPS, from an :class:`ssl.SSLContext` or a ``(certfile, keyfile)`` pair; the issuer
    and every URL are then ``https://HOST:PORT`` (``host="localhost"`` for a certificate naming it).
    :meth:`request_log` lists every request served (method, path, peer) and every connection.
    """

    _server_name = "StrictAuthServer"

    def __init__(
        self,
        *,
        access_token_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        require_resource: bool = True,
        rotate_refresh_tokens: bool = True,
        token_marker: str = "",
        fault_delay: float = 2.0,
        strict_accept: bool = False,
        host: str = "127.0.0.1",
        scopes_supported: Sequence[str] = ("mcp",),
        serve_metadata: bool = True,
        path_metadata: bool = True,
        root_metadata: bool = False,
        allow_registration: bool = True,
        auto_consent: bool = True,
        consent: str = "auto",
        loopback_any_port: bool = True,
        iss_mode: str = "correct",
        issue_refresh_tokens: bool = True,
        authorization_code_ttl: float = 60.0,
        prm_overrides: Optional[Mapping[str, Any]] = None,
        as_metadata_overrides: Optional[Mapping[str, Any]] = None,
        mcp_response_mode: str = "json",
        require_session: bool = False,
        tools_page_size: Optional[int] = None,
        required_scopes: Optional[Mapping[str, Sequence[str]]] = None,
        anonymous_jwt_bearer: bool = True,
        dpop: Optional[str] = None,
        dpop_nonce_at_token: bool = False,
        dpop_nonce_at_resource: bool = False,
        dpop_proof_window: float = 60.0,
        device_authorization: bool = False,
        device_code_ttl: float = 600.0,
        device_interval: float = 5.0,
        revocation: bool = True,
        tls: Optional[ServerTLS] = None,
    ) -> None:
        _dpop_needs_pyjwt(dpop)
        super().__init__(host, tls)
        options = ServerOptions(
            scopes_supported=_scope_tuple(scopes_supported),
            serve_metadata=serve_metadata,
            path_metadata=path_metadata,
            root_metadata=root_metadata,
            allow_registration=allow_registration,
            auto_consent=auto_consent,
            consent=consent,
            loopback_any_port=loopback_any_port,
            iss_mode=iss_mode,
            issue_refresh_tokens=issue_refresh_tokens,
            authorization_code_ttl=authorization_code_ttl,
            prm_overrides=freeze_overrides(prm_overrides),
            as_metadata_overrides=freeze_overrides(as_metadata_overrides),
            anonymous_jwt_bearer=anonymous_jwt_bearer,
            dpop=dpop,
            dpop_nonce_at_token=dpop_nonce_at_token,
            dpop_nonce_at_resource=dpop_nonce_at_resource,
            dpop_proof_window=dpop_proof_window,
            device_authorization=device_authorization,
            device_code_ttl=device_code_ttl,
            device_interval=device_interval,
            revocation=revocation,
        )
        self._state = AuthState(
            clock=clock,
            access_token_ttl=access_token_ttl,
            require_resource=require_resource,
            rotate_refresh_tokens=rotate_refresh_tokens,
            token_marker=token_marker,
            options=options,
        )
        self._pending_consents = PendingAuthorizations(self._state.now)
        self._fault_delay = float(fault_delay)
        self._strict_accept = strict_accept
        self._token_marker = token_marker
        # MCP endpoint knobs and sessions, changeable at run time: server.mcp.response_mode = "sse",
        # server.mcp.expire_sessions() ... (see McpOptions).
        self.mcp = McpControls(
            response_mode=mcp_response_mode,
            require_session=require_session,
            tools_page_size=tools_page_size,
            required_scopes=required_scopes or {},
        )
        self._revocation = RevocationEndpoint(self._state, audiences=lambda: self.assertion_audiences)

    # ------------------------------------------------------------- lifecycle

    def _on_stopping(self) -> None:
        """Wake delayed answers (token requests held by a fault) before the connections are cut."""
        self._state.release_token_requests()

    def _urls(self) -> ServerUrls:
        return ServerUrls(
            issuer=self.issuer,
            resource=self.mcp_url,
            authorization_endpoint=self.authorization_endpoint,
            token_endpoint=self.token_endpoint,
            registration_endpoint=self.registration_endpoint,
            device_authorization_endpoint=self.device_authorization_endpoint,
            revocation_endpoint=self.revocation_endpoint,
        )

    def _build_routes(self) -> RouteTable:
        """path -> method -> endpoint."""
        metadata = MetadataEndpoints(self._state, self._urls())
        resource = metadata.resource_identifier
        token = TokenEndpoint(
            self._state,
            fault_delay=self._fault_delay,
            resource=resource,
            audiences=self.assertion_audiences,
            id_jag_audiences=self.id_jag_audiences,
            url=self.token_endpoint,
        )
        mcp = McpEndpoint(
            self._state,
            resource=resource,
            url=self.mcp_url,
            resource_metadata_url=self.resource_metadata_url,
            root_metadata_url=self.root_resource_metadata_url,
            strict_accept=self._strict_accept,
            controls=self.mcp,
        )
        authorize = AuthorizationEndpoint(
            self._state, issuer=self.issuer, resource=resource, pending=self._pending_consents
        )
        device = DeviceAuthorizationEndpoint(
            self._state, resource=resource, audiences=self.assertion_audiences, verification_uri=self.verification_uri
        )
        return {
            PRM_WELL_KNOWN + "/mcp": {"GET": metadata.protected_resource},
            PRM_WELL_KNOWN: {"GET": metadata.root_protected_resource},
            AS_WELL_KNOWN: {"GET": metadata.authorization_server},
            "/register": {"POST": RegistrationEndpoint(self._state)},
            "/authorize": {"GET": authorize},
            CONSENT_PATH: {"POST": ConsentEndpoint(self._pending_consents, authorize.decide)},
            "/token": {"POST": token},
            "/device_authorization": {"POST": device},
            "/revoke": {"POST": self._revocation},
            "/mcp": {"POST": mcp.post, "GET": mcp.not_allowed, "DELETE": mcp.not_allowed},
        }

    # ------------------------------------------------------------------- URLs

    @property
    def issuer(self) -> str:
        """The RFC 8414 issuer: the base URL, no trailing slash."""
        return self.base_url

    @property
    def wrong_issuer(self) -> str:
        """The ``iss`` sent when ``iss_mode == "wrong"``: same origin, different path."""
        return self.issuer + WRONG_ISSUER_SUFFIX

    @property
    def authorization_endpoint(self) -> str:
        return self.base_url + "/authorize"

    @property
    def registration_endpoint(self) -> str:
        return self.base_url + "/register"

    @property
    def device_authorization_endpoint(self) -> str:
        """RFC 8628 §3.1; served (and advertised) with ``device_authorization``."""
        return self.base_url + "/device_authorization"

    @property
    def verification_uri(self) -> str:
        """Where device authorizations send the person (tests decide with :meth:`approve_device`)."""
        return self.base_url + "/device"

    @property
    def authorization_server_metadata_url(self) -> str:
        return self.base_url + AS_WELL_KNOWN

    @property
    def token_endpoint(self) -> str:
        return self.base_url + "/token"

    @property
    def revocation_endpoint(self) -> str:
        """RFC 7009 ``/revoke``, advertised while :attr:`revocation` is on."""
        return self.base_url + "/revoke"

    @property
    def revocation(self) -> bool:
        """False: no ``revocation_endpoint`` in the metadata, and ``/revoke`` answers 404."""
        return self._state.options.revocation

    @revocation.setter
    def revocation(self, value: bool) -> None:
        self._state.update_options(revocation=value)

    def revocations(self) -> Tuple[Revocation, ...]:
        """Every revocation answered 200, in order: what the token was, which client, its hint."""
        return self._revocation.log

    @property
    def refused_revocations(self) -> int:
        """Revocation requests answered with an error (a fault, failed client authentication...)."""
        return self._revocation.refused

    def fail_revocations(self, count: int = 1) -> None:
        """Answer the next ``count`` revocation requests 503 (nothing is revoked)."""
        self._revocation.fail_next(count)

    @property
    def assertion_audiences(self) -> Tuple[str, ...]:
        """The ``aud`` values a JWT assertion may name (RFC 7523 §3): the issuer, the issuer with a
        trailing slash, and the token endpoint URL."""
        return (self.issuer, self.issuer + "/", self.token_endpoint)

    @property
    def id_jag_audiences(self) -> Tuple[str, ...]:
        """The ``aud`` values an ID-JAG may name: the issuer, with or without a trailing slash (not the
        token endpoint: the draft names the issuer)."""
        return (self.issuer, self.issuer + "/")

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 metadata URL advertised in 401 challenges (path-inserted, RFC 9728 §3.1)."""
        return self.base_url + PRM_WELL_KNOWN + "/mcp"

    @property
    def root_resource_metadata_url(self) -> str:
        """The root well-known metadata URL: served with ``root_metadata``, and named by 401
        challenges when it is the only one served (``path_metadata=False``)."""
        return self.base_url + PRM_WELL_KNOWN

    @property
    def resource_identifier(self) -> str:
        """The resource tokens are granted for and accepted at: the ``resource`` the protected
        resource metadata publishes now (``prm_overrides`` applied), else :attr:`mcp_url`.
        ``/authorize`` and ``/token`` refuse any other ``resource`` (``invalid_target``), and
        ``/mcp`` refuses tokens granted for another one."""
        return MetadataEndpoints(self._state, self._urls()).resource_identifier(self._state.options)

    def protected_resource_metadata(self) -> Dict[str, Any]:
        """The RFC 9728 document as it would be served now (overrides applied)."""
        return MetadataEndpoints(self._state, self._urls()).protected_resource_document(self._state.options)

    def authorization_server_metadata(self) -> Dict[str, Any]:
        """The RFC 8414 document as it would be served now (overrides applied)."""
        return MetadataEndpoints(self._state, self._urls()).authorization_server_document(self._state.options)

    # ---------------------------------------------------------------- config

    @property
    def token_marker(self) -> str:
        """String embedded in every access and refresh token this server issues."""
        return self._token_marker

    @property
    def fault_delay(self) -> float:
        return self._fault_delay

    @property
    def access_token_ttl(self) -> float:
        return self._state.access_token_ttl

    @access_token_ttl.setter
    def access_token_ttl(self, value: float) -> None:
        self._state.access_token_ttl = value

    @property
    def require_resource(self) -> bool:
        return self._state.require_resource

    @require_resource.setter
    def require_resource(self, value: bool) -> None:
        self._state.require_resource = value

    @property
    def rotate_refresh_tokens(self) -> bool:
        return self._state.rotate_refresh_tokens

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, value: bool) -> None:
        self._state.rotate_refresh_tokens = value

    # Authorization-surface knobs: each request reads one consistent snapshot of them.

    @property
    def scopes_supported(self) -> Tuple[str, ...]:
        return self._state.options.scopes_supported

    @scopes_supported.setter
    def scopes_supported(self, value: Sequence[str]) -> None:
        self._state.update_options(scopes_supported=_scope_tuple(value))

    @property
    def serve_metadata(self) -> bool:
        """False: both well-known documents answer 404 (2025-03-26 fallback tests)."""
        return self._state.options.serve_metadata

    @serve_metadata.setter
    def serve_metadata(self, value: bool) -> None:
        self._state.update_options(serve_metadata=value)

    @property
    def path_metadata(self) -> bool:
        """False: the path-inserted well-known URL answers 404, so with ``root_metadata`` the
        document is only at the root (and challenges name that one)."""
        return self._state.options.path_metadata

    @path_metadata.setter
    def path_metadata(self, value: bool) -> None:
        self._state.update_options(path_metadata=value)

    @property
    def root_metadata(self) -> bool:
        """True: the protected resource metadata is also at the root well-known URL (default False:
        only at the path-inserted one, which clients must try first)."""
        return self._state.options.root_metadata

    @root_metadata.setter
    def root_metadata(self, value: bool) -> None:
        self._state.update_options(root_metadata=value)

    @property
    def allow_registration(self) -> bool:
        """False: ``POST /register`` answers 404 and the AS metadata has no registration_endpoint."""
        return self._state.options.allow_registration

    @allow_registration.setter
    def allow_registration(self, value: bool) -> None:
        self._state.update_options(allow_registration=value)

    @property
    def auto_consent(self) -> bool:
        """False: every otherwise valid authorization request is answered with access_denied."""
        return self._state.options.auto_consent

    @auto_consent.setter
    def auto_consent(self, value: bool) -> None:
        self._state.update_options(auto_consent=value)

    @property
    def consent(self) -> str:
        """ "auto": ``/authorize`` answers by itself (see :attr:`auto_consent`); "page": it shows a
        consent page with Allow and Deny, for a person or a browser driven by a test."""
        return self._state.options.consent

    @consent.setter
    def consent(self, value: str) -> None:
        self._state.update_options(consent=value)

    @property
    def pending_consents(self) -> int:
        """Consent pages shown and not answered yet."""
        return len(self._pending_consents)

    @property
    def loopback_any_port(self) -> bool:
        """True (RFC 8252 §7.3): a registered loopback redirect URI matches on any port; False: only
        exactly, so a client registered by hand must come back to its one registered port."""
        return self._state.options.loopback_any_port

    @loopback_any_port.setter
    def loopback_any_port(self, value: bool) -> None:
        self._state.update_options(loopback_any_port=value)

    @property
    def iss_mode(self) -> str:
        """``iss`` in authorization responses: "correct", "missing", "wrong" or "trailing-slash"."""
        return self._state.options.iss_mode

    @iss_mode.setter
    def iss_mode(self, value: str) -> None:
        self._state.update_options(iss_mode=value)

    @property
    def issue_refresh_tokens(self) -> bool:
        """False: the authorization_code grant returns no refresh token."""
        return self._state.options.issue_refresh_tokens

    @issue_refresh_tokens.setter
    def issue_refresh_tokens(self, value: bool) -> None:
        self._state.update_options(issue_refresh_tokens=value)

    @property
    def authorization_code_ttl(self) -> float:
        return self._state.options.authorization_code_ttl

    @authorization_code_ttl.setter
    def authorization_code_ttl(self, value: float) -> None:
        self._state.update_options(authorization_code_ttl=value)

    @property
    def prm_overrides(self) -> Mapping[str, Any]:
        """Read-only view; assign a new mapping to change it."""
        return self._state.options.prm_overrides

    @prm_overrides.setter
    def prm_overrides(self, value: Optional[Mapping[str, Any]]) -> None:
        self._state.update_options(prm_overrides=freeze_overrides(value))

    @property
    def as_metadata_overrides(self) -> Mapping[str, Any]:
        """Read-only view; assign a new mapping to change it."""
        return self._state.options.as_metadata_overrides

    @as_metadata_overrides.setter
    def as_metadata_overrides(self, value: Optional[Mapping[str, Any]]) -> None:
        self._state.update_options(as_metadata_overrides=freeze_overrides(value))

    @property
    def anonymous_jwt_bearer(self) -> bool:
        """True: the JWT bearer grant may come with no client authentication at all (a workload has
        no client_id). A client that does authenticate must be registered for the grant either way."""
        return self._state.options.anonymous_jwt_bearer

    @anonymous_jwt_bearer.setter
    def anonymous_jwt_bearer(self, value: bool) -> None:
        self._state.update_options(anonymous_jwt_bearer=value)

    # ---------------------------------------------------------- device grant

    @property
    def device_authorization(self) -> bool:
        """True: the device authorization grant (RFC 8628) is served and advertised
        (``device_authorization_endpoint``, and the grant in ``grant_types_supported``). Off by default."""
        return self._state.options.device_authorization

    @device_authorization.setter
    def device_authorization(self, value: bool) -> None:
        self._state.update_options(device_authorization=value)

    @property
    def device_code_ttl(self) -> float:
        """Seconds a device code lives (its ``expires_in``), by the server's clock."""
        return self._state.options.device_code_ttl

    @device_code_ttl.setter
    def device_code_ttl(self, value: float) -> None:
        self._state.update_options(device_code_ttl=value)

    @property
    def device_interval(self) -> float:
        """The polling ``interval`` new device codes name; a poll sooner than it after the last
        request is answered ``slow_down``, and the code's interval grows by five seconds."""
        return self._state.options.device_interval

    @device_interval.setter
    def device_interval(self, value: float) -> None:
        self._state.update_options(device_interval=value)

    def pending_device_codes(self) -> List[PendingDeviceCode]:
        """Device codes waiting for the person's answer (unexpired, undecided)."""
        return self._state.pending_device_codes()

    def wait_for_device_code(self, timeout: float = 10.0) -> PendingDeviceCode:
        """Block (no polling) until a device code is pending and return the oldest; TimeoutError otherwise."""
        return self._state.wait_for_pending_device_code(timeout)

    def approve_device(self, user_code: str) -> None:
        """The person approves the device login of ``user_code`` (any case, dash optional): the next
        poll in time gets a new chain. KeyError for a code that is unknown, decided or expired."""
        self._state.decide_device_code(user_code, approve=True)

    def deny_device(self, user_code: str) -> None:
        """The person declines: polls are answered ``access_denied``. KeyError as for :meth:`approve_device`."""
        self._state.decide_device_code(user_code, approve=False)

    # ------------------------------------------------------------------ DPoP

    @property
    def dpop(self) -> Optional[str]:
        """DPoP (RFC 9449): None (off: a DPoP header is ignored, DPoP-bound tokens are refused),
        "optional" or "required"."""
        return self._state.options.dpop

    @dpop.setter
    def dpop(self, value: Optional[str]) -> None:
        _dpop_needs_pyjwt(value)
        self._state.update_options(dpop=value)

    @property
    def dpop_nonce_at_token(self) -> bool:
        """True: token requests' proofs must carry the token endpoint's current nonce."""
        return self._state.options.dpop_nonce_at_token

    @dpop_nonce_at_token.setter
    def dpop_nonce_at_token(self, value: bool) -> None:
        self._state.update_options(dpop_nonce_at_token=value)

    @property
    def dpop_nonce_at_resource(self) -> bool:
        """True: proofs at /mcp must carry the resource's current nonce (not the token endpoint's)."""
        return self._state.options.dpop_nonce_at_resource

    @dpop_nonce_at_resource.setter
    def dpop_nonce_at_resource(self, value: bool) -> None:
        self._state.update_options(dpop_nonce_at_resource=value)

    @property
    def dpop_proof_window(self) -> float:
        """Seconds a proof's ``iat`` may be behind or ahead of the server's clock."""
        return self._state.options.dpop_proof_window

    @dpop_proof_window.setter
    def dpop_proof_window(self, value: float) -> None:
        self._state.update_options(dpop_proof_window=value)

    def dpop_nonce(self, place: str = "token") -> str:
        """The nonce proofs at ``place`` ("token" or "resource") must carry while nonces are on there
        (clients learn it from the ``DPoP-Nonce`` header)."""
        if place not in PLACES:
            raise ValueError(f"place must be one of {PLACES}, not {place!r}")
        return self._state.dpop_nonce(place)

    def rotate_dpop_nonce(self) -> None:
        """New nonces at both places: a proof with an old one is answered ``use_dpop_nonce``."""
        self._state.rotate_dpop_nonces()

    # --------------------------------------------------------------- clients

    def register_client(
        self,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint_auth_method: str = "none",
        *,
        redirect_uris: Sequence[str] = (),
        grant_types: Optional[Sequence[str]] = None,
        scope: Optional[str] = None,
        client_name: Optional[str] = None,
        application_type: Optional[str] = None,
        public_key: Optional[KeySource] = None,
    ) -> str:
        """Register a client as a test fixture (not over HTTP); returns its id (generated when not given).

        Confidential clients without an explicit secret get a random one (see :meth:`get_client`).
        ``grant_types`` defaults to authorization_code + refresh_token, plus client_credentials
        for confidential clients. The same rules as ``POST /register`` apply (ValueError), except
        that ``redirect_uris`` may be empty (such a client cannot use ``/authorize``).

        A ``private_key_jwt`` client has no secret and needs ``public_key``: PEM text or bytes, a JWK,
        a JWK Set of one key, or a cryptography public key (EC P-256, RSA of 2048 bits or more,
        Ed25519/Ed448). It authenticates with client assertions signed by the matching private key
        (ES256; RS256 or PS256; EdDSA). Needs the ``jwt`` extra (MissingExtra without it).
        """
        if isinstance(redirect_uris, str):
            raise TypeError("redirect_uris must be a sequence of strings, not a string")
        if grant_types is None:
            grant_types = ["authorization_code", "refresh_token"]
            if token_endpoint_auth_method != "none":
                grant_types.append("client_credentials")
        grants = tuple(dict.fromkeys(grant_types))
        key = load_public_key(public_key) if public_key is not None else None
        metadata = ClientMetadata(
            token_endpoint_auth_method=token_endpoint_auth_method,
            redirect_uris=tuple(dict.fromkeys(redirect_uris)),
            grant_types=grants,
            response_types=("code",) if "authorization_code" in grants else (),
            scope=scope,
            client_name=client_name,
            application_type=application_type,
            public_key=key,
        )
        return self._state.register_client(metadata, client_id=client_id, client_secret=client_secret).client_id

    def trust_workload_issuer(
        self,
        issuer: Union[WorkloadIssuer, str, Tuple[str, KeySource]],
        public_key: Optional[KeySource] = None,
    ) -> None:
        """Accept JWT bearer grants (RFC 7523 §2.1) from ``issuer``: a :class:`WorkloadIssuer`, or an
        ``iss`` value with its ``public_key`` (given here or as an ``(iss, key)`` pair; any form
        :meth:`register_client` takes). Trusting an issuer again replaces its key. Needs the ``jwt``
        extra (MissingExtra without it)."""
        if isinstance(issuer, WorkloadIssuer):
            if public_key is not None:
                raise TypeError("a WorkloadIssuer brings its own key")
            name, source = issuer.issuer, issuer.public_key
        elif isinstance(issuer, tuple):
            if public_key is not None or len(issuer) != 2:
                raise TypeError("pass (iss, public_key) or iss and public_key, not both")
            name, source = issuer
        else:
            if public_key is None:
                raise TypeError("an issuer given by name needs its public_key")
            name, source = issuer, public_key
        self._state.trust_workload_issuer(name, load_public_key(source))

    def trust_identity_provider(
        self, identity_provider: Union[IdentityProvider, str], public_key: Optional[KeySource] = None
    ) -> None:
        """Accept ID-JAGs (enterprise-managed authorization) from ``identity_provider``: a started
        :class:`IdentityProvider`, or an issuer URL with its ``public_key`` (any form
        :meth:`register_client` takes). The JWT bearer grant then verifies an assertion whose ``typ``
        is ``oauth-id-jag+jwt`` as an ID-JAG; the AS metadata lists the ID-JAG grant profile.
        Trusting an issuer again replaces its key. Needs the ``jwt`` extra (MissingExtra without it)."""
        if isinstance(identity_provider, IdentityProvider):
            if public_key is not None:
                raise TypeError("an IdentityProvider brings its own key")
            name, source = identity_provider.issuer, identity_provider.public_key
        else:
            if public_key is None:
                raise TypeError("an identity provider given by its issuer needs its public_key")
            name, source = identity_provider, public_key
        self._state.trust_identity_provider(name, load_public_key(source))

    def get_client(self, client_id: str) -> ClientInfo:
        info = self._state.get_client(client_id)
        if info is None:
            raise KeyError(f"unknown client {client_id!r}")
        return info

    def mint_tokens(
        self,
        client_id: str,
        *,
        scope: str = "mcp",
        resource: Optional[str] = None,
        dpop_jkt: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Start a new refresh chain (no browser) and return a token response dict. With ``dpop_jkt``
        (the RFC 7638 thumbprint of a key) the chain is DPoP-bound to that key (token_type DPoP)."""
        if dpop_jkt is not None and not is_thumbprint(dpop_jkt):
            raise ValueError("dpop_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)")
        grant = self._state.mint(
            client_id, scope=scope, resource=resource or self.resource_identifier, dpop_jkt=dpop_jkt
        )
        return grant.to_response()

    # ------------------------------------------------------------ test levers

    def revoke_access_tokens(self, client_id: Optional[str] = None) -> int:
        """Revoke all currently valid access tokens (refresh chains stay alive)."""
        return self._state.revoke_access_tokens(client_id)

    def expire_access_tokens(self, client_id: Optional[str] = None) -> int:
        """Expire all currently valid access tokens now (per the clock)."""
        return self._state.expire_access_tokens(client_id)

    def revoke_chain_of(self, refresh_token: str) -> bool:
        """Revoke the refresh chain of ``refresh_token``; False if already revoked.

        Raises KeyError for a refresh token this server never issued."""
        return self._state.revoke_chain_of(refresh_token)

    def is_chain_alive(self, refresh_token: str) -> bool:
        """Whether the chain of any refresh token ever issued is alive (KeyError if unknown)."""
        return self._state.is_chain_alive(refresh_token)

    def chains(self) -> List[ChainSummary]:
        return self._state.chains()

    def hold_token_requests(self) -> None:
        """Park every new token request before it is counted or processed, until released."""
        self._state.hold_token_requests()

    def release_token_requests(self) -> None:
        """Let held (and future) token requests through. ``stop`` releases them too."""
        self._state.release_token_requests()

    @property
    def held_token_requests(self) -> int:
        """Number of token requests currently parked by :meth:`hold_token_requests`."""
        return self._state.held_token_requests

    def wait_for_held_token_requests(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block (no polling) until ``count`` token requests are parked; TimeoutError otherwise."""
        self._state.wait_for_held(count, timeout)

    def inject_fault(self, fault: Fault, count: int = 1) -> None:
        """Queue ``fault`` for the next ``count`` token requests."""
        self._state.inject_fault(fault, count)

    def clear_faults(self) -> int:
        return self._state.clear_faults()

    def pending_faults(self) -> Tuple[Fault, ...]:
        return self._state.pending_faults()

    # ------------------------------------------------------------------ audit

    @property
    def audit(self) -> Audit:
        return self._state.audit()

    def reset_audit(self) -> None:
        self._state.reset_audit()

    def wait_for_audit(self, predicate: Callable[[Audit], bool], timeout: float = 5.0) -> Audit:
        """Block until ``predicate(audit)`` is true (no polling); TimeoutError otherwise."""
        return self._state.wait_for_audit(predicate, timeout)
