"""``MCPAuth``: a ``requests`` auth object that attaches a valid token and survives rotation.

One ``MCPAuth`` may be shared by every thread of a program; several ``MCPAuth`` objects for the same
chain and store share one refresh flight. On a 401 the request is sent again once with a new token;
a second 401 goes back to the caller. With nothing configured but the URL, the first 401 leads to
discovery, registration and a login (or, for ``interactive=False``, to :class:`AuthorizationRequired`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Optional, Sequence, Union

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.utils import rewind_body

from ._chain.keys import DEFAULT_ACCOUNT, ChainKey, ChainRecord, LoginKey
from ._chain.tokens import TokenSet
from ._oauth.challenge import BearerChallenge, bearer_challenge
from ._oauth.discovery import Discovery
from ._oauth.login import AuthorizationFlow, AuthorizationHandler, ClientSettings
from ._oauth.registration import ClientRegistration, Registrar
from ._oauth.token_client import Timeout
from ._refresh.manager import Clock, TokenManager
from ._refresh.singleflight import SingleFlight
from ._stores.file import FileTokenStore, TokenStore
from ._util.redact import clean_server_text
from ._util.urls import canonical_resource, origin, require_secure
from .errors import AuthorizationRequired, ChallengeError, ConfigurationError, DiscoveryError, InsufficientScope

log = logging.getLogger(__name__)

_RESENT = "_mcp_sync_auth_resent"
_LOGINS = "_mcp_sync_auth_logins"
# At most this many authorizations (the first login and step-ups) for one request: a server that
# keeps asking for scopes we cannot get must not keep a person clicking through consent screens.
MAX_LOGINS_PER_REQUEST = 3
NOT_REPLAYABLE_HINT = (
    "mcp_sync_auth: the access token was refused and has been refreshed, but this request's body "
    "is a stream that cannot be sent twice; send the request again"
)

_login_flights: SingleFlight[TokenSet] = SingleFlight()
_shared_discovery: Optional[Discovery] = None
_shared_discovery_guard = threading.Lock()


def _default_discovery(timeout: Timeout) -> Discovery:
    """One metadata cache per process, shared by every MCPAuth that brings no session of its own."""
    global _shared_discovery  # noqa: PLW0603 - a per-process cache is the point
    with _shared_discovery_guard:
        if _shared_discovery is None:
            _shared_discovery = Discovery(timeout=timeout if isinstance(timeout, (int, float)) else timeout[1])
        return _shared_discovery


@dataclasses.dataclass(frozen=True)
class _Chain:
    """The chain this auth currently uses; replaced whole after a login."""

    manager: TokenManager
    registration: ClientRegistration
    token_endpoint: Optional[str]


class MCPAuth(AuthBase):
    """Bearer authorization for one MCP server, with rotation-safe refresh.

    ``server_url`` is the MCP endpoint; it is also the OAuth resource indicator sent on every token
    request. With ``client_id`` and ``token_endpoint`` the client is configured by hand and needs no
    discovery to refresh. ``store`` defaults to a :class:`FileTokenStore` in the user's cache folder,
    shared by every process of the user.
    """

    def __init__(
        self,
        server_url: str,
        *,
        store: Optional[TokenStore] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint: Optional[str] = None,
        scopes: Union[str, Sequence[str], None] = None,
        refresh_skew: float = 60.0,
        timeout: Timeout = 30.0,
        session: Optional[requests.Session] = None,
        token_endpoint_auth_method: Optional[str] = None,
        issuer: Optional[str] = None,
        account: str = DEFAULT_ACCOUNT,
        lock_timeout: Optional[float] = None,
        clock: Clock = time.time,
        interactive: Optional[bool] = None,
        authorization_handler: Optional[AuthorizationHandler] = None,
        headless: bool = False,
        client_metadata_url: Optional[str] = None,
        redirect_uri: Optional[str] = None,
        grant_type: str = "authorization_code",
        client_name: str = "mcp-sync-auth",
        login_timeout: float = 300.0,
        discovery: Optional[Discovery] = None,
    ) -> None:
        self.server_url = require_secure(canonical_resource(server_url), "the MCP server URL")
        if refresh_skew < 0:
            raise ConfigurationError("refresh_skew must not be negative")
        if grant_type not in ("authorization_code", "client_credentials"):
            raise ConfigurationError(f"unsupported grant_type {grant_type!r}")
        if grant_type == "client_credentials" and not (client_id and client_secret):
            raise ConfigurationError("the client credentials grant needs client_id and client_secret")
        scope_list = tuple(scopes.split()) if isinstance(scopes, str) else (tuple(scopes) if scopes else None)
        self.store: TokenStore = store if store is not None else FileTokenStore()
        self.account = account
        # A client configured by hand (token_endpoint given) gets its tokens elsewhere (save_token):
        # it logs in by itself only when asked to.
        self.interactive = interactive if interactive is not None else token_endpoint is None
        self._origin = origin(self.server_url)
        self._clock = clock
        self._timeout = timeout
        self._skew = refresh_skew
        read_timeout = timeout if isinstance(timeout, (int, float)) else sum(timeout)
        self._lock_timeout = lock_timeout if lock_timeout is not None else 2 * read_timeout + 10
        # None: each component makes its own session, renewed after fork() so that a child never
        # shares pooled connections with its parent.
        self._session = session
        self._settings = ClientSettings(
            client_id=client_id,
            client_secret=client_secret,
            auth_method=token_endpoint_auth_method,
            client_metadata_url=client_metadata_url,
            redirect_uri=redirect_uri,
            scopes=scope_list,
            grant_type=grant_type,
            client_name=client_name,
        )
        if discovery is None:
            discovery = Discovery(session=session, timeout=read_timeout) if session else _default_discovery(timeout)
        registrar = Registrar(
            self.store,
            session=self._session,
            timeout=read_timeout,
            lock_timeout=self._lock_timeout,
            clock=clock,
            client_name=client_name,
        )
        self._flow = AuthorizationFlow(
            self.server_url,
            self._settings,
            discovery=discovery,
            registrar=registrar,
            session=self._session,
            timeout=timeout,
            clock=clock,
            authorization_handler=authorization_handler,
            headless=headless,
            login_timeout=login_timeout,
        )
        self._login_timeout = login_timeout
        self._resolve_guard = threading.Lock()
        self._chain: Optional[_Chain] = None
        if token_endpoint is not None:
            if not client_id:
                raise ConfigurationError("token_endpoint needs a client_id")
            # The token endpoint client built here refuses an insecure endpoint.
            registration = self._flow.known_registration(issuer or token_endpoint, client_id)
            self._chain = self._build_chain(
                ChainKey(self.server_url, issuer or token_endpoint, client_id, account), registration, token_endpoint
            )

    def __repr__(self) -> str:
        chain = self._chain
        client = chain.manager.key.client_id if chain is not None else None
        return f"MCPAuth({self.server_url!r}, client_id={client!r}, store={self.store!r})"

    # -- chains ----------------------------------------------------------------------------------

    @property
    def key(self) -> ChainKey:
        """The chain this auth uses now (after a login, the new one)."""
        chain = self._current_chain()
        if chain is None:
            raise self._login_required("no chain is stored yet")
        return chain.manager.key

    def _login_hint(self) -> str:
        if self._settings.grant_type == "client_credentials":
            return "Check the client credentials."
        return f"Log in again: run `mcp-sync-auth login {self.server_url}` (or MCPAuth.save_token() with new tokens)."

    def _login_required(self, why: str) -> AuthorizationRequired:
        hint = self._login_hint()
        return AuthorizationRequired(f"{why} for {self.server_url}. {hint}", login_hint=hint)

    def _build_chain(self, key: ChainKey, registration: ClientRegistration, token_endpoint: Optional[str]) -> _Chain:
        refresher = None
        if token_endpoint is not None:
            refresher = self._flow.token_client(token_endpoint, registration).refresh
        manager = TokenManager(
            key,
            self.store,
            refresher,
            refresh_skew=self._skew,
            lock_timeout=self._lock_timeout,
            clock=self._clock,
            login_hint=self._login_hint(),
        )
        return _Chain(manager, registration, token_endpoint)

    def _current_chain(self) -> Optional[_Chain]:
        chain = self._chain
        return chain if chain is not None else self._resolve(force=False)

    def _resolve(self, *, force: bool) -> Optional[_Chain]:
        """Find this server's chain in the store: after a restart, or after another thread or process
        logged in. The newest live chain for this server and account wins."""
        with self._resolve_guard:
            if self._chain is not None and not force:
                return self._chain
            candidates = [r for r in self.store.records() if self._is_ours(r)]
            if not candidates:
                return self._chain
            best = max(candidates, key=lambda r: (not r.is_dead, r.updated_at))
            current = self._chain
            if current is not None and current.manager.key == best.key:
                return current
            registration = self._flow.known_registration(best.key.issuer, best.key.client_id)
            self._chain = self._build_chain(best.key, registration, best.token_endpoint)
            return self._chain

    def _is_ours(self, record: ChainRecord) -> bool:
        key = record.key
        if key.resource != self.server_url or key.account != self.account:
            return False
        wanted = self._settings.client_id
        return wanted is None or key.client_id == wanted

    # -- tokens ----------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, refreshed (or obtained) first if it must be, coalesced with every
        other caller."""
        return self._token().access_token

    def _may_obtain(self) -> bool:
        return self.interactive or self._settings.grant_type == "client_credentials"

    def _token(self) -> TokenSet:
        return self._token_for(self._current_chain())

    def _token_for(self, chain: Optional[_Chain]) -> TokenSet:
        if chain is not None:
            try:
                return chain.manager.token()
            except AuthorizationRequired as exc:
                if not self._may_obtain():
                    raise
                return self._login_after(exc, None)
        if not self._may_obtain():
            raise self._login_required("no tokens are stored")
        return self.login()

    def _login_after(self, lost: AuthorizationRequired, challenge: Optional[BearerChallenge]) -> TokenSet:
        """Log in again after the chain was lost. If the login cannot even start (no metadata: a
        client configured by hand), the loss is the clearer error to show."""
        try:
            return self.login(challenge)
        except DiscoveryError as exc:
            raise lost from exc

    def login(self, challenge: Optional[BearerChallenge] = None, held_scopes: Sequence[str] = ()) -> TokenSet:
        """Obtain a new chain now: discovery, registration, then the login (or the client credentials
        grant). One login per server and account runs at a time across threads and processes; the
        others wait and use its result."""
        login_key = LoginKey(self.server_url, self.account)
        before = self._chain

        def lead() -> TokenSet:
            with self.store.lock(login_key, self._login_timeout + self._lock_timeout):
                # Somebody may have logged in while we waited for the lock.
                newer = self._resolve(force=True)
                if newer is not None and newer is not before and not held_scopes:
                    try:
                        return newer.manager.token()
                    except AuthorizationRequired:
                        pass
                plan = self._flow.plan(challenge, fresh=True)
                registration, tokens = self._flow.obtain_tokens(plan, challenge, held_scopes, generation=0)
                key = ChainKey(self.server_url, plan.issuer, registration.client_id, self.account)
                chain = self._build_chain(key, registration, plan.server.token_endpoint)
                saved = chain.manager.save_tokens(tokens, plan.server.token_endpoint)
                with self._resolve_guard:
                    self._chain = chain
                return saved

        tokens = _login_flights.run((self.store.identity, login_key), lead)
        if self._chain is before:
            self._resolve(force=True)  # we waited on another MCPAuth's login: pick up its chain
        return tokens

    def save_token(self, token_response: dict[str, Any]) -> None:
        """Store a token endpoint response (``access_token``, ``expires_in``, ``refresh_token``...)
        as this auth's chain, replacing whatever was there, dead or alive."""
        chain = self._chain
        if chain is None:
            raise ConfigurationError("save_token needs a configured client: pass client_id and token_endpoint")
        # The endpoint goes into the store too: a process that knows only the URL can then refresh.
        chain.manager.save_response(token_response, token_endpoint=chain.token_endpoint)

    def logout(self) -> None:
        """Forget this chain's tokens, here and in the store."""
        chain = self._current_chain()
        if chain is not None:
            chain.manager.forget()

    # -- requests hooks --------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not request.url or origin(request.url) != self._origin:
            # The token is only for the MCP server's origin: a redirect elsewhere gets nothing.
            request.headers.pop("Authorization", None)
            return request
        chain = self._current_chain()
        if chain is None and self._may_obtain() and self._settings.grant_type == "authorization_code":
            # Nothing stored yet: let the server's 401 say where to log in and which scopes it wants.
            request.headers.pop("Authorization", None)
        else:
            request.headers["Authorization"] = f"Bearer {self._token_for(chain).access_token}"
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        url = response.request.url if response.request is not None else None
        if not url or origin(url) != self._origin:
            return response  # an answer from elsewhere (after a redirect) never earns a token
        if response.status_code == 401:
            return self._after_401(response, **kwargs)
        if response.status_code == 403:
            return self._after_403(response, **kwargs)
        return response

    def _after_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if getattr(request, _RESENT, False):
            return response  # the fresh token was refused too: the caller decides, we do not loop
        rejected = _bearer_of(request)
        fresh: Optional[TokenSet] = None
        lost: Optional[AuthorizationRequired] = None
        chain = self._chain
        if rejected is not None and chain is not None:
            try:
                fresh = chain.manager.token_after_rejection(rejected)
            except AuthorizationRequired as exc:
                if not self._may_obtain():
                    raise
                lost = exc
        logins = getattr(request, _LOGINS, 0)
        if fresh is None:
            if not self._may_obtain():
                raise self._login_required("the server asks for authorization")
            challenge = _challenge_of(response)
            fresh = self.login(challenge) if lost is None else self._login_after(lost, challenge)
            logins += 1
        return self._resend(response, fresh, kwargs, logins=logins)

    def _after_403(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        challenge = _challenge_of(response)
        if challenge is None or challenge.error != "insufficient_scope":
            return response
        request = response.request
        logins = getattr(request, _LOGINS, 0)
        if logins >= MAX_LOGINS_PER_REQUEST:
            return response  # give up: the server keeps asking for more than we can get
        wanted = tuple(clean_server_text(scope, self._secrets()) for scope in challenge.scopes or ())
        if not self.interactive and self._settings.grant_type != "client_credentials":
            raise InsufficientScope(
                f"{self.server_url} needs the scope(s) {' '.join(wanted) or '(unspecified)'}, which the "
                f"current tokens lack. {self._login_hint()}",
                scopes=tuple(wanted),
                login_hint=self._login_hint(),
            )
        held = self._held_scopes()
        fresh = self.login(challenge, held_scopes=held)
        return self._resend(response, fresh, kwargs, logins=logins + 1)

    def _secrets(self) -> tuple[Optional[str], ...]:
        chain = self._chain
        current = chain.manager.current() if chain is not None else None
        held = (current.access_token, current.refresh_token) if current is not None else ()
        return (*held, self._settings.client_secret)

    def _held_scopes(self) -> list[str]:
        chain = self._chain
        if chain is None:
            return []
        current = chain.manager.current()
        scopes = list(current.scope.split()) if current is not None and current.scope else []
        return scopes or list(self._flow.last_requested_scopes)

    def _resend(
        self, response: requests.Response, fresh: TokenSet, kwargs: dict[str, Any], *, logins: int
    ) -> requests.Response:
        request = response.request
        if not _can_replay(request):
            log.warning("%s", NOT_REPLAYABLE_HINT)
            response.reason = f"{response.reason or 'Unauthorized'} ({NOT_REPLAYABLE_HINT})"
            return response
        # Drain and release the refused answer so its connection can carry the resend.
        _ = response.content
        response.close()
        retry = request.copy()
        if request._body_position is not None:  # type: ignore[attr-defined]
            retry._body_position = request._body_position  # type: ignore[attr-defined]
            rewind_body(retry)
        extract_cookies_to_jar(retry._cookies, request, response.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        setattr(retry, _RESENT, response.status_code == 401 or getattr(request, _RESENT, False))
        setattr(retry, _LOGINS, logins)
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        # The adapter does not run response hooks: look at the answer ourselves (a 403 asking for
        # more scope after a login). The markers on `retry` bound this to a few rounds.
        return self._on_response(second, **kwargs)


def _challenge_of(response: requests.Response) -> Optional[BearerChallenge]:
    try:
        return bearer_challenge(response)
    except ChallengeError:
        # Not quoted: a hostile server could echo our token into it.
        log.warning("ignoring a malformed WWW-Authenticate header from %s", origin(response.url or ""))
        return None


def _bearer_of(request: requests.PreparedRequest) -> Optional[str]:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _can_replay(request: requests.PreparedRequest) -> bool:
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    # A file-like body can be rewound if requests recorded where it started.
    return getattr(request, "_body_position", None) is not None and hasattr(body, "seek")
