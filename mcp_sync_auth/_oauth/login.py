"""From "this MCP server wants a token" to a token set: discovery, registration, then the grant.

The grant is the authorization code flow with PKCE (a person logs in, through a browser, a pasted
redirect, or an injected handler), or the client credentials grant (no person: worker pools).
Nothing here is on the request fast path; :mod:`auth` calls it when no usable chain exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import sys
import threading
from typing import Callable, Optional, Sequence
from urllib.parse import urlsplit

import requests

from .._chain.tokens import TokenSet
from .._util.credential_files import read_credential
from .._util.sessions import SessionSource
from .._util.timeouts import Timeouts
from ..errors import (
    AuthorizationRequired,
    ConfigurationError,
    RegistrationFailed,
    TokenEndpointError,
    login_needed,
)
from .assertions import ClientAssertions
from .browser import Browser
from .challenge import BearerChallenge
from .client_auth import choose_auth_method
from .device import DeviceLogin
from .discovery import (
    AuthorizationServerMetadata,
    Discovery,
    ProtectedResourceMetadata,
    protected_resource_metadata_urls,
)
from .dpop import DPoPKey
from .identity_assertion import IdentityAssertions
from .loopback import CALLBACK_PATH, BrowserNotStarted, LoopbackReceiver
from .paste import read_pasted_redirect
from .pkce import build_authorization_request, code_from_redirect
from .probe import not_a_resource, probe
from .registration import METADATA_DOCUMENT, PRE_REGISTERED, WORKLOAD, ClientRegistration, Registrar
from .settings import AuthorizationHandler, ClientSettings, LoginOptions
from .signing import SigningKey
from .token_client import DEVICE_CODE_GRANT, TokenEndpointClient
from .workload import WorkloadToken

log = logging.getLogger(__name__)

OFFLINE_ACCESS = "offline_access"
# How a login reaches the person (AuthorizationFlow._mode).
_HANDLER, _PASTE, _BROWSER = "handler", "paste", "browser"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where to get tokens for the resource: its metadata and its authorization server's."""

    resource: str
    protected_resource: Optional[ProtectedResourceMetadata]
    server: AuthorizationServerMetadata

    @property
    def issuer(self) -> str:
        return self.server.issuer

    @property
    def resource_indicator(self) -> str:
        """The RFC 8707 ``resource`` to ask for: the identifier the protected resource metadata
        publishes, exactly as published (RFC 9728 §3.3, §7.3), which discovery has checked to be the
        MCP server URL or, for the root document, its origin; without metadata, the MCP server URL."""
        if self.protected_resource is not None:
            return self.protected_resource.resource
        return self.resource


class AuthorizationFlow:
    def __init__(
        self,
        resource: str,
        settings: ClientSettings,
        *,
        discovery: Discovery,
        registrar: Registrar,
        session: Optional[requests.Session],
        timeout: Timeouts,
        http: Optional[SessionSource] = None,
        clock: Callable[[], float],
        login: LoginOptions,
        browser: Optional[Browser] = None,
    ) -> None:
        self.resource = resource
        self.settings = settings
        self._discovery = discovery
        self._registrar = registrar
        # Every request of the login (the probe, the grants, the identity provider's exchange) takes
        # this one path: the caller's session, verify= and proxies=.
        self._sessions = http if http is not None else SessionSource(session)
        self._timeout = timeout
        self._clock = clock
        self._handler = login.authorization_handler
        self._method = login.login_method
        self._headless = self._method == "headless"
        self._login_timeout = login.timeout
        self._device_prompt = login.device_prompt
        self._sleep = login.sleep
        self._browser = browser if browser is not None else Browser()
        # What the last login asked for: the held scopes on step-up when the server does not echo them.
        self.last_requested_scopes: tuple[str, ...] = ()
        # Loaded now, so that a missing file or a wrong key type is said when the auth is made.
        self._assertions = client_assertions(settings, clock)
        self._workload = workload_token(settings, clock)
        self._identity = (
            IdentityAssertions(settings.identity_provider, http=self._sessions, timeout=timeout, clock=clock)
            if settings.grant_type == "id_jag" and settings.identity_provider is not None
            else None
        )

    # -- discovery -------------------------------------------------------------------------------

    def plan(self, challenge: Optional[BearerChallenge], *, fresh: bool = False) -> Plan:
        """Where to log in. Every check that can refuse the URL (the resource named by its metadata,
        that it is a protected resource at all) runs here, before any registration or browser."""
        if fresh:
            self._discovery.invalidate(self.resource)
        prm = self._discovery.protected_resource(self.resource, challenge)
        if prm is None and challenge is None:
            prm = self._confirm_protected()
        if prm is None:
            # A 2025-03-26 server: authorization server metadata (or default endpoints) at its origin.
            return Plan(self.resource, None, self._discovery.legacy_authorization_server(self.resource))
        issuer = prm.authorization_servers[0]
        return Plan(self.resource, prm, self._discovery.authorization_server(issuer))

    def _confirm_protected(self) -> Optional[ProtectedResourceMetadata]:
        """No metadata at the well-known URLs, and no 401 of this URL started the login: ask the URL.
        Its 401 may name the metadata (checked against the URL like any other); a plain 401 is a
        2025-03-26 server (None); anything else means the URL is wrong, and nothing is spent on it."""
        answer = probe(self._sessions, self.resource, self._timeout)
        if not answer.protected:
            raise not_a_resource(self.resource, answer, protected_resource_metadata_urls(self.resource))
        if answer.challenge is not None and answer.challenge.resource_metadata:
            return self._discovery.protected_resource(self.resource, answer.challenge)
        return None

    # -- who we are --------------------------------------------------------------------------------

    def registration(
        self, plan: Plan, redirect_uri: str, scopes: Optional[Sequence[str]], *, device: bool = False
    ) -> ClientRegistration:
        """Who this client is at the planned server. ``device``: a dynamic registration must include
        the device grant (one registered for the code flow only is registered again)."""
        server = plan.server
        settings = self.settings
        if settings.client_id:
            method = choose_auth_method(
                bool(settings.client_secret),
                server.token_endpoint_auth_methods_supported,
                settings.auth_method,
                has_key=settings.has_private_key,
            )
            return ClientRegistration(
                issuer=server.issuer,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                auth_method=method,
                redirect_uris=(redirect_uri,),
                source=PRE_REGISTERED,
            )
        if settings.client_metadata_url and server.client_id_metadata_document_supported:
            return ClientRegistration(
                issuer=server.issuer,
                client_id=settings.client_metadata_url,
                client_secret=None,
                auth_method="none",
                redirect_uris=(redirect_uri,),
                source=METADATA_DOCUMENT,
            )
        if server.registration_endpoint:
            return self._registrar.register(
                issuer=server.issuer,
                registration_endpoint=server.registration_endpoint,
                redirect_uri=redirect_uri,
                scopes=scopes,
                supported_auth_methods=server.token_endpoint_auth_methods_supported,
                extra_grant_types=(DEVICE_CODE_GRANT,) if device else (),
            )
        raise RegistrationFailed(
            f"the authorization server {server.issuer} offers no way for this client to register "
            "(no client ID metadata document support, no registration endpoint): pass client_id "
            "(and client_secret) of a client registered there by hand"
        )

    def known_registration(self, issuer: str, client_id: str) -> ClientRegistration:
        """The registration behind a stored chain, to refresh it without discovery."""
        settings = self.settings
        if settings.client_id == client_id:
            return ClientRegistration(
                issuer=issuer,
                client_id=client_id,
                client_secret=settings.client_secret,
                auth_method=choose_auth_method(
                    bool(settings.client_secret), registered=settings.auth_method, has_key=settings.has_private_key
                ),
                redirect_uris=(),
                source=PRE_REGISTERED,
            )
        stored = self._registrar.stored(issuer)
        if stored is not None and stored.client_id == client_id:
            return stored
        return ClientRegistration(issuer, client_id, None, "none", (), METADATA_DOCUMENT)

    # -- scopes ----------------------------------------------------------------------------------

    def scopes_for(self, plan: Plan, challenge: Optional[BearerChallenge], held: Sequence[str] = ()) -> list[str]:
        """MCP scope selection: the challenge's scopes, else every scope the resource lists, else none;
        on step-up, the union with what we held; ``offline_access`` when the server offers it."""
        if self.settings.scope_list is not None and challenge is None:
            chosen = list(self.settings.scope_list)
        elif challenge is not None and challenge.scopes:
            chosen = list(challenge.scopes)
        elif plan.protected_resource is not None and plan.protected_resource.scopes_supported:
            chosen = list(plan.protected_resource.scopes_supported)
        else:
            chosen = []
        for scope in held:
            if scope not in chosen:
                chosen.append(scope)
        offered = plan.server.scopes_supported or ()
        if (
            self.settings.grant_type == "authorization_code"
            and OFFLINE_ACCESS in offered
            and OFFLINE_ACCESS not in chosen
        ):
            chosen.append(OFFLINE_ACCESS)
        return chosen

    # -- the grants --------------------------------------------------------------------------------

    def token_client(
        self, token_endpoint: str, registration: ClientRegistration, resource: Optional[str] = None
    ) -> TokenEndpointClient:
        """A client for the token endpoint, authenticating as registered, with ``resource`` (by
        default the MCP server URL) on every request."""
        return TokenEndpointClient(
            token_endpoint,
            registration.client_id,
            client_secret=registration.client_secret,
            auth_method=registration.auth_method,
            assertions=self._assertions if registration.auth_method == "private_key_jwt" else None,
            audience=registration.issuer,
            resource=resource if resource is not None else self.resource,
            http=self._sessions,
            timeout=self._timeout,
            clock=self._clock,
        )

    def obtain_tokens(
        self, plan: Plan, challenge: Optional[BearerChallenge], held_scopes: Sequence[str], generation: int
    ) -> tuple[ClientRegistration, TokenSet]:
        """Run the configured grant against the planned server. Blocks for the login if a person is needed."""
        scopes = self.scopes_for(plan, challenge, held_scopes)
        self.last_requested_scopes = tuple(scopes)
        if self.settings.grant_type == "client_credentials":
            registration = self.registration(plan, self.settings.redirect_uri or "", scopes)
            if registration.auth_method == "none":
                raise ConfigurationError(
                    "the client credentials grant needs client_id and client_secret (or a private key)"
                )
            client = self.token_client(plan.server.token_endpoint, registration, plan.resource_indicator)
            return registration, client.client_credentials(
                scopes=scopes or None, generation=generation, dpop=self.dpop_key_for(plan.server)
            )
        if self.settings.grant_type == "jwt_bearer":
            return self._jwt_bearer(plan, scopes, generation)
        if self.settings.grant_type == "id_jag":
            return self._id_jag(plan, scopes, generation)
        if self._method == "device":
            return self._device(plan, scopes, generation)
        return self._authorization_code(plan, scopes, generation)

    def _device(self, plan: Plan, scopes: Sequence[str], generation: int) -> tuple[ClientRegistration, TokenSet]:
        """RFC 8628: the code and URI are shown, the token endpoint polled. Refused before anything
        is sent (registration included) when the server offers no device authorization endpoint."""
        server = plan.server
        endpoint = server.device_authorization_endpoint
        if endpoint is None:
            # Discovery drops a malformed one (not https, not a URL): say which of the two it was.
            offered = server.document.get("device_authorization_endpoint") is not None
            what = "advertises no usable" if offered else "does not advertise a"
            raise ConfigurationError(
                f"the authorization server {server.issuer} {what} device_authorization_endpoint, "
                f"so the device login (login='device', --device) cannot be used with {self.resource}: "
                "log in with the browser or --headless instead"
            )
        redirect_uri = self.settings.redirect_uri or self._default_redirect_uri(plan)
        registration = self.registration(plan, redirect_uri, scopes, device=True)
        client = self.token_client(server.token_endpoint, registration, plan.resource_indicator)
        login = DeviceLogin(
            client,
            endpoint,
            prompt=self._device_prompt,
            sleep=self._sleep,
            clock=self._clock,
            timeout=self._login_timeout,
            retry_hint=f"Start again: `mcp-sync-auth login --device {self.resource}`.",
        )
        return registration, login.run(scopes=scopes, generation=generation, dpop=self.dpop_key_for(server))

    def _id_jag(self, plan: Plan, scopes: Sequence[str], generation: int) -> tuple[ClientRegistration, TokenSet]:
        """Leg 1 at the identity provider, leg 2 here: a fresh ID-JAG for every new chain."""
        assert self._identity is not None
        server = plan.server
        registration = self.registration(plan, "", None)
        if registration.auth_method == "none":
            raise ConfigurationError("an ID-JAG is presented with the client's own secret or key")
        assertion = self._identity.exchange(
            audience=server.issuer, resource=plan.resource_indicator, scopes=scopes or None
        )
        client = self.token_client(server.token_endpoint, registration, plan.resource_indicator)
        return registration, client.jwt_bearer(
            assertion, scopes=scopes or None, generation=generation, dpop=self.dpop_key_for(server)
        )

    def _jwt_bearer(self, plan: Plan, scopes: Sequence[str], generation: int) -> tuple[ClientRegistration, TokenSet]:
        """The workload's token for tokens: read afresh, sent once. A refusal is the answer (no
        retry, and no other grant)."""
        assert self._workload is not None
        server = plan.server
        if self.settings.client_id:
            registration = self.registration(plan, "", None)
        else:
            registration = ClientRegistration(server.issuer, WORKLOAD, None, "none", (), WORKLOAD)
        client = self.token_client(server.token_endpoint, registration, plan.resource_indicator)
        assertion = self._workload.read(server.token_endpoint)
        try:
            tokens = client.jwt_bearer(
                assertion,
                scopes=scopes or None,
                generation=generation,
                send_client_id=registration.source != WORKLOAD,
                dpop=self.dpop_key_for(server),
            )
        except TokenEndpointError as exc:
            if exc.error_code not in ("invalid_grant", "invalid_client", "unauthorized_client"):
                raise
            raise TokenEndpointError(
                f"{exc}. {self._workload.describe()} was refused: check that its audience is what the server "
                f"expects (its issuer {server.issuer} or its token endpoint), and its issuer and subject",
                status_code=exc.status_code,
                error_code=exc.error_code,
            ) from None
        return registration, tokens

    def _authorization_code(
        self, plan: Plan, scopes: Sequence[str], generation: int
    ) -> tuple[ClientRegistration, TokenSet]:
        mode = self._mode(plan)  # before the registration and the receiver: fails at once if nobody can log in
        receiver: Optional[LoopbackReceiver] = None
        redirect_uri = self.settings.redirect_uri
        if mode == _BROWSER:
            if redirect_uri:  # registered by hand: its own port and path, sent as given
                receiver = LoopbackReceiver(redirect_uri=redirect_uri, resource=self.resource)
            else:
                receiver = LoopbackReceiver(self._registered_port(plan), resource=self.resource)
            redirect_uri = receiver.redirect_uri
        elif redirect_uri is None:
            redirect_uri = self._default_redirect_uri(plan)
        with contextlib.ExitStack() as stack:
            if receiver is not None:
                # Listening before the URL is shown; closed however we leave, after telling the
                # browser how the login ended.
                stack.enter_context(receiver)
            registration = self.registration(plan, redirect_uri, scopes)
            server = plan.server
            request = build_authorization_request(
                authorization_endpoint=server.authorization_endpoint,
                issuer=server.issuer,
                code_challenge_methods=server.code_challenge_methods_supported,
                iss_parameter_supported=server.authorization_response_iss_parameter_supported,
                client_id=registration.client_id,
                redirect_uri=redirect_uri,
                resource=plan.resource_indicator,
                scopes=scopes,
            )
            if receiver is not None:
                receiver.expect(request.state)
            redirect = self._follow(request.url, mode, receiver, plan)
            code = code_from_redirect(request, redirect)
            client = self.token_client(plan.server.token_endpoint, registration, plan.resource_indicator)
            tokens = client.exchange_code(
                code,
                redirect_uri=request.redirect_uri,
                code_verifier=request.code_verifier,
                generation=generation,
                dpop=self.dpop_key_for(plan.server),
            )
        return registration, tokens

    def dpop_key_for(self, server: AuthorizationServerMetadata) -> Optional[DPoPKey]:
        """A new chain's own DPoP key, when this client uses DPoP with this server: always with
        ``dpop=True``; with ``"auto"``, when the server advertises ES256 for DPoP."""
        mode = self.settings.dpop
        offered = server.dpop_signing_alg_values_supported or ()
        if mode is True or (mode == "auto" and "ES256" in offered):
            return DPoPKey.generate()
        return None

    def _mode(self, plan: Plan) -> str:
        """How the person is reached: the handler, the headless paste, or a browser and the loopback
        receiver. Without a browser it is the paste at a terminal, else AuthorizationRequired."""
        if self._handler is not None:
            return _HANDLER
        if self._headless:
            return _PASTE
        if self._browser.available():
            return _BROWSER
        if self._browser.terminal():
            print("No browser can be opened here (no display): log in with the URL below instead.", file=sys.stderr)
            return _PASTE
        raise self._nobody_to_log_in("no browser can be opened here (no DISPLAY, WAYLAND_DISPLAY or BROWSER)", plan)

    def _follow(self, url: str, mode: str, receiver: Optional[LoopbackReceiver], plan: Plan) -> str:
        if mode == _HANDLER and self._handler is not None:
            return self._handler(url)
        if mode == _PASTE or receiver is None:
            return paste_handler(url)
        print(f"Opening the browser to log in. If it does not open, visit:\n  {url}", file=sys.stderr)
        # Opened from a thread of its own: a browser command that runs until the browser is closed
        # (one named by $BROWSER, a text browser) must not keep the receiver's page waiting for the
        # outcome, which comes only once the redirect is taken here.
        threading.Thread(
            target=_open_browser, args=(self._browser, url, receiver), name="mcp-sync-auth-browser", daemon=True
        ).start()
        try:
            return receiver.wait(self._login_timeout)
        except BrowserNotStarted:
            if not self._browser.terminal():
                raise self._nobody_to_log_in("no browser could be started", plan) from None
            log.info("no browser could be opened; reading the redirect from the terminal")
            return paste_handler(url)

    def _nobody_to_log_in(self, why: str, plan: Plan) -> AuthorizationRequired:
        hint = (
            f"Log in from a terminal with `mcp-sync-auth login --headless {self.resource}` (it prints the URL "
            "to open in any browser and reads back the address you land on), or give MCPAuth headless=True "
            "or an authorization_handler"
        )
        if plan.server.device_authorization_endpoint is not None:
            hint += (
                f"; this server also offers `mcp-sync-auth login --device {self.resource}` (or login='device'), "
                "which shows a code to enter on any other device"
            )
        return login_needed(
            AuthorizationRequired,
            f"cannot log in to {self.resource}: {why}, and stdin and stderr are not a terminal to paste into",
            hint,
        )

    def _registered_port(self, plan: Plan) -> int:
        stored = self._registrar.stored(plan.issuer)
        if stored is not None and stored.redirect_uris:
            return _port_of(stored.redirect_uris[0])
        return 0

    def _default_redirect_uri(self, plan: Plan) -> str:
        stored = self._registrar.stored(plan.issuer)
        if stored is not None and stored.redirect_uris:
            return stored.redirect_uris[0]
        return f"http://127.0.0.1:{_free_port()}{CALLBACK_PATH}"


def client_assertions(settings: ClientSettings, clock: Callable[[], float]) -> Optional[ClientAssertions]:
    """The assertions of a ``private_key_jwt`` client, from the key (or provider) it was given."""
    if not settings.has_private_key:
        return None
    assert settings.client_id is not None  # ClientSettings checks it
    if settings.client_assertion_provider is not None:
        return ClientAssertions(settings.client_id, provider=settings.client_assertion_provider, clock=clock)
    pem = settings.private_key
    what = "the private key"
    if settings.private_key_file is not None:
        what = f"the private key in {settings.private_key_file}"
        pem_bytes = read_credential(settings.private_key_file, what)
        key = SigningKey.from_pem(pem_bytes, settings.signing_algorithm, what=what)
    else:
        assert pem is not None
        key = SigningKey.from_pem(pem, settings.signing_algorithm, what=what)
    return ClientAssertions(settings.client_id, key=key, clock=clock)


def workload_token(settings: ClientSettings, clock: Callable[[], float]) -> Optional[WorkloadToken]:
    """Where a ``jwt_bearer`` client's workload token comes from."""
    if settings.grant_type != "jwt_bearer":
        return None
    return WorkloadToken(
        file=settings.workload_token_file,
        env=settings.workload_token_env,
        provider=settings.workload_token_provider,
        clock=clock,
    )


def _open_browser(browser: Browser, url: str, receiver: LoopbackReceiver) -> None:
    try:
        started = browser.open(url)
    except Exception:  # webbrowser.Error, OSError from a browser command: no browser, as with False
        log.debug("opening the browser failed", exc_info=True)
        started = False
    if not started:
        receiver.no_browser()


def paste_handler(url: str) -> str:
    """Headless login: print the URL, read back the address the browser ended on (the whole URL,
    the URL without its scheme, or its query: :mod:`.paste`)."""
    return read_pasted_redirect(url)


def _port_of(uri: str) -> int:
    try:
        return urlsplit(uri).port or 0
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


__all__ = ["AuthorizationFlow", "AuthorizationHandler", "ClientSettings", "LoginOptions", "Plan", "paste_handler"]
