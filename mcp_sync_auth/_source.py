"""The chain source behind ``MCPAuth``: which chain serves this server, and when to log in.

``MCPAuth`` is only the ``requests`` adapter; it asks this source for a token, for a new one after
a 401, and for a step-up after a 403. The source finds the chain in the store (after a restart, or
after another process logged in), hands the refresh protocol to the chain's :class:`TokenManager`, and
runs at most one login per server and account at a time across threads and processes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Optional, Sequence, Union

import requests

from ._chain.keys import DEFAULT_ACCOUNT, ChainKey, ChainRecord, LoginKey
from ._chain.tokens import TokenSet
from ._oauth.challenge import BearerChallenge
from ._oauth.discovery import Discovery
from ._oauth.login import AuthorizationFlow
from ._oauth.registration import ClientRegistration, Registrar
from ._oauth.revocation import LOCAL_ONLY_HINT, LogoutResult, TokenRevoker, tokens_kept_hint
from ._oauth.settings import ClientSettings, LoginOptions
from ._refresh.manager import Clock, TokenManager
from ._refresh.singleflight import SingleFlight
from ._stores.inventory import Unreadable, settle, take_inventory
from ._stores.protocol import TokenStore
from ._util.redact import clean_server_text
from ._util.sessions import DEFAULT_OPTIONS, ConnectionOptions, SessionSource, setup_failure_of_step
from ._util.timeouts import Timeouts
from .errors import (
    AuthorizationRequired,
    ConfigurationError,
    ConnectionSetupError,
    CorruptTokenCache,
    DiscoveryConnectionError,
    DiscoveryError,
    InsufficientScope,
    RevocationConnectionError,
    RevocationFailed,
    login_needed,
)

# One login flight per (store, server, account) in the process, shared by every MCPAuth.
_login_flights: SingleFlight[TokenSet] = SingleFlight()
_shared_discoveries: dict[tuple[Timeouts, ConnectionOptions], Discovery] = {}
_shared_discoveries_guard = threading.Lock()

ChallengeReader = Callable[[], Optional[BearerChallenge]]
NOT_TOLD = "local_only: the server was not told, the tokens stay valid there until they expire"
NO_REVOCATION = "the authorization server offers no token revocation, the tokens stay valid there until they expire"
NO_METADATA = (
    "no authorization server metadata is known for this client (configured without an issuer), so no "
    "revocation endpoint: the tokens stay valid at the server until they expire"
)


def shared_discovery(timeouts: Timeouts, options: ConnectionOptions = DEFAULT_OPTIONS) -> Discovery:
    """One metadata cache per process (and timeout and connection options), for every MCPAuth that
    brings no session of its own."""
    key = (timeouts, options)
    with _shared_discoveries_guard:
        discovery = _shared_discoveries.get(key)
        if discovery is None:
            discovery = _shared_discoveries[key] = Discovery(
                timeout=timeouts, verify=options.verify, proxies=options.proxy_map
            )
        return discovery


@dataclasses.dataclass(frozen=True)
class _Chain:
    """The chain in use; replaced whole after a login."""

    manager: TokenManager
    registration: ClientRegistration
    token_endpoint: Optional[str]


class ChainSource:
    """Tokens for one MCP server and account, from its chain in ``store``, logging in when allowed."""

    def __init__(
        self,
        server_url: str,
        *,
        store: TokenStore,
        client: ClientSettings,
        login: LoginOptions,
        timeouts: Timeouts,
        account: str = DEFAULT_ACCOUNT,
        refresh_skew: float = 60.0,
        lock_timeout: Optional[float] = None,
        clock: Clock = time.time,
        session: Optional[requests.Session] = None,
        discovery: Optional[Discovery] = None,
        connection: ConnectionOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.server_url = server_url
        self.store = store
        self.client = client
        self.account = account
        self.interactive = login.may_start(client)
        self._clock = clock
        self._skew = refresh_skew
        # The hard bound on one grant; waiting for another holder takes that, plus its commit (a shared
        # store's lease outlasts the deadline by a margin: a waiter must outlast the lease).
        self._grant_deadline = timeouts.grant_total
        self._lock_timeout = lock_timeout if lock_timeout is not None else self._grant_deadline + 10
        self._login_timeout = login.timeout
        # The one request path of every OAuth request of this chain: the caller's session (or ours),
        # with its verify= and proxies=. MCPClient takes it too (MCPAuth._http_source).
        self.http = SessionSource(session, connection)
        if discovery is None:
            discovery = (
                Discovery(session, verify=connection.verify, proxies=connection.proxy_map, timeout=timeouts)
                if session is not None
                else shared_discovery(timeouts, connection)
            )
        self._discovery = discovery
        registrar = Registrar(
            store,
            http=self.http,
            timeout=timeouts,
            lock_timeout=self._lock_timeout,
            clock=clock,
            client_name=client.client_name,
        )
        self._flow = AuthorizationFlow(
            server_url,
            client,
            discovery=discovery,
            registrar=registrar,
            session=session,
            http=self.http,
            timeout=timeouts,
            clock=clock,
            login=login,
        )
        self._resolve_guard = threading.Lock()
        self._chain: Optional[_Chain] = None
        if client.token_endpoint is not None:
            assert client.client_id is not None  # ClientSettings checks it
            issuer = client.issuer or client.token_endpoint
            # The token endpoint client built here refuses an insecure endpoint.
            registration = self._flow.known_registration(issuer, client.client_id)
            key = ChainKey(server_url, issuer, client.client_id, account)
            self._chain = self._build_chain(key, registration, client.token_endpoint)

    # -- which chain -------------------------------------------------------------------------------

    @property
    def client_id(self) -> Optional[str]:
        chain = self._chain
        return chain.manager.key.client_id if chain is not None else None

    @property
    def key(self) -> ChainKey:
        chain = self._current()
        if chain is None:
            raise self.login_required("no chain is stored yet")
        return chain.manager.key

    def login_hint(self) -> str:
        if self.client.grant_type == "client_credentials":
            return "Check the client credentials."
        if self.client.grant_type == "jwt_bearer":
            return "Check the workload token and the client it is presented for."
        if self.client.grant_type == "id_jag":
            return "Check the ID token and the identity provider's settings, and that the person may use this server."
        return f"Log in again: run `mcp-sync-auth login {self.server_url}` (or MCPAuth.save_token() with new tokens)."

    def login_required(self, why: str) -> AuthorizationRequired:
        return login_needed(AuthorizationRequired, f"{why} for {self.server_url}", self.login_hint())

    def _build_chain(
        self,
        key: ChainKey,
        registration: ClientRegistration,
        token_endpoint: Optional[str],
        resource_indicator: Optional[str] = None,
    ) -> _Chain:
        """``resource_indicator``: what a refresh sends when the stored record names none (the
        login's, or a stored record's); None: the MCP server URL, as for a chain configured by hand."""
        refresher = None
        if token_endpoint is not None:
            refresher = self._flow.token_client(token_endpoint, registration, resource_indicator).refresh
        manager = TokenManager(
            key,
            self.store,
            refresher,
            refresh_skew=self._skew,
            lock_timeout=self._lock_timeout,
            grant_deadline=self._grant_deadline,
            clock=self._clock,
            login_hint=self.login_hint(),
        )
        return _Chain(manager, registration, token_endpoint)

    def _current(self) -> Optional[_Chain]:
        chain = self._chain
        return chain if chain is not None else self._resolve(force=False)

    def _resolve(self, *, force: bool, before_login: bool = False) -> Optional[_Chain]:
        """Find this server's chain in the store: after a restart, or after another thread or process
        logged in. The newest live chain for this server and account wins. With none readable, a
        stored file that may be this server's gets its verdict (:meth:`_judge_unreadable`)."""
        with self._resolve_guard:
            if self._chain is not None and not force:
                return self._chain
            found = take_inventory(self.store)
            candidates = [r for r in found.records if self._is_ours(r)]
            if not candidates:
                candidates = self._judge_unreadable(found.unreadable, replaceable=before_login or self.may_obtain())
            if not candidates:
                return self._chain
            best = max(candidates, key=lambda r: (not r.is_dead, r.updated_at))
            current = self._chain
            if current is not None and current.manager.key == best.key:
                return current
            registration = self._flow.known_registration(best.key.issuer, best.key.client_id)
            self._chain = self._build_chain(best.key, registration, best.token_endpoint, best.resource_indicator)
            return self._chain

    def _judge_unreadable(self, unreadable: Sequence[Unreadable], *, replaceable: bool) -> list[ChainRecord]:
        """The verdict on stored chains that cannot be read and may be this server's, never "nothing
        is stored": a corrupt one is moved aside and raised (``CorruptTokenCache``), unless a login or
        the client credentials grant is about to replace it; a newer or refused one is raised whatever
        comes next, since nothing may write over it. Returns the chains that read again meanwhile.

        A file that no longer says which chain it held (its name is only a hash of the key) may be
        this server's: it gets the same verdict, whichever server it was for.
        """
        recovered: list[ChainRecord] = []
        # Files known to be ours first: their verdict is the one to report.
        for entry in sorted((e for e in unreadable if self._may_be_ours(e)), key=lambda e: e.key is None):
            try:
                record = settle(self.store, entry, self._lock_timeout)
            except CorruptTokenCache:
                if not replaceable:
                    raise
                continue  # moved aside (and logged): the login writes the new chain
            if record is not None and self._is_ours(record):
                recovered.append(record)
        return recovered

    def _may_be_ours(self, entry: Unreadable) -> bool:
        if entry.kind != "chain":
            return False
        return entry.key is None or (isinstance(entry.key, ChainKey) and self._is_our_key(entry.key))

    def _is_ours(self, record: ChainRecord) -> bool:
        return self._is_our_key(record.key)

    def _is_our_key(self, key: ChainKey) -> bool:
        if key.resource != self.server_url or key.account != self.account:
            return False
        wanted = self.client.client_id
        return wanted is None or key.client_id == wanted

    # -- tokens ------------------------------------------------------------------------------------

    def may_obtain(self) -> bool:
        """Whether a missing or lost chain may be replaced without asking (a login, or client credentials)."""
        return self.interactive or self.client.machine_grant

    def token(self) -> TokenSet:
        """A valid token set, refreshed or obtained first if it must be."""
        return self._token_for(self._current())

    def token_for_request(self) -> Optional[TokenSet]:
        """The token for an outgoing request, or None: send it bare, so that the server's 401 says where
        to log in and which scopes it wants (nothing is stored yet and a person may log in)."""
        chain = self._current()
        if chain is None and self.may_obtain() and self.client.needs_person:
            return None
        return self._token_for(chain)

    def _token_for(self, chain: Optional[_Chain]) -> TokenSet:
        if chain is not None:
            try:
                return chain.manager.token()
            except AuthorizationRequired as exc:
                if not self.may_obtain():
                    raise
                return self._login_after(exc, None)
        if not self.may_obtain():
            raise self.login_required("no tokens are stored")
        return self.login(automatic=True)

    def after_rejection(self, rejected: Optional[str], challenge: ChallengeReader) -> tuple[TokenSet, bool]:
        """The server refused ``rejected`` (a 401): a token to send the request again with, and whether a
        login was needed to get it. ``challenge`` reads the 401's challenge, only if a login is needed."""
        chain = self._chain
        lost: Optional[AuthorizationRequired] = None
        if rejected is not None and chain is not None:
            try:
                return chain.manager.token_after_rejection(rejected), False
            except AuthorizationRequired as exc:
                if not self.may_obtain():
                    raise
                lost = exc
        if not self.may_obtain():
            raise self.login_required("the server asks for authorization")
        if lost is not None:
            return self._login_after(lost, challenge(), rejected), True
        return self.login(challenge(), automatic=True, rejected=rejected), True

    def step_up(self, challenge: BearerChallenge) -> TokenSet:
        """The server wants more scope (a 403 with ``insufficient_scope``): log in for the union of the
        scopes held and asked for, or say which are missing when this auth may not log in."""
        if not self.may_obtain():
            wanted = tuple(clean_server_text(scope, self._secrets()) for scope in challenge.scopes or ())
            missing = " ".join(wanted) or "(unspecified)"
            why = f"{self.server_url} needs the scope(s) {missing}, which the current tokens lack"
            raise login_needed(InsufficientScope, why, self.login_hint(), scopes=wanted)
        return self.login(challenge, held_scopes=self._held_scopes())

    def _login_after(
        self, lost: AuthorizationRequired, challenge: Optional[BearerChallenge], rejected: Optional[str] = None
    ) -> TokenSet:
        """Log in again after the chain was lost. If the login cannot even start (no metadata: a client
        configured by hand), the loss is the clearer error to show."""
        try:
            return self.login(challenge, automatic=True, rejected=rejected)
        except ConnectionSetupError:
            raise  # a certificate or a proxy to fix: clearer than the loss, and nothing else helps
        except DiscoveryError as exc:
            raise lost from exc

    def login(
        self,
        challenge: Optional[BearerChallenge] = None,
        held_scopes: Sequence[str] = (),
        *,
        automatic: bool = False,
        rejected: Optional[str] = None,
    ) -> TokenSet:
        """Obtain a new chain now. One login per server and account runs at a time across threads and
        processes; the others wait and use its result.

        ``automatic``: the login replaces a chain that is missing, expired without a refresh token
        (client credentials), or refused (``rejected``); a usable set that another process stored
        while this one waited for the lock is then taken instead. A login asked for by name always
        runs."""
        login_key = LoginKey(self.server_url, self.account)
        before = self._chain

        def lead() -> TokenSet:
            with self.store.lock(login_key, self._login_timeout + self._lock_timeout):
                # Somebody may have logged in while we waited for the lock. A stored file the login
                # could not write over stops it here, before anyone's time is spent on it.
                newer = self._resolve(force=True, before_login=True)
                if newer is not None and newer is not before and not held_scopes:
                    try:
                        return newer.manager.token()
                    except AuthorizationRequired:
                        pass
                elif newer is not None and automatic and not held_scopes:
                    # The same chain: whoever held the lock before us may have replaced its set.
                    adopted = newer.manager.stored_replacement(rejected)
                    if adopted is not None:
                        return adopted
                plan = self._flow.plan(challenge, fresh=True)
                registration, tokens = self._flow.obtain_tokens(plan, challenge, held_scopes, generation=0)
                # The key names the MCP server URL, whatever resource the metadata published: a process
                # that knows only the URL finds the chain by it. The grant's resource goes with the record.
                key = ChainKey(self.server_url, plan.issuer, registration.client_id, self.account)
                resource = plan.resource_indicator
                chain = self._build_chain(key, registration, plan.server.token_endpoint, resource)
                saved = chain.manager.save_tokens(tokens, plan.server.token_endpoint, resource)
                with self._resolve_guard:
                    self._chain = chain
                return saved

        tokens = _login_flights.run((self.store.identity, login_key), lead)
        if self._chain is before:
            self._resolve(force=True)  # we waited on another MCPAuth's login: pick up its chain
        return tokens

    def save_token(self, token_response: dict[str, Any]) -> None:
        chain = self._chain
        if chain is None:
            raise ConfigurationError("save_token needs a configured client: pass client_id and token_endpoint")
        # The endpoint goes into the store too: a process that knows only the URL can then refresh.
        chain.manager.save_response(token_response, token_endpoint=chain.token_endpoint)

    def logout(self, *, local_only: bool = False) -> LogoutResult:
        """Revoke the chain's refresh token, then its access token, at the authorization server
        (RFC 7009), then forget the chain; all under the chain's lock, so that no refresh in any
        process rotates it meanwhile. A failed revocation (RevocationFailed) forgets nothing.
        ``local_only``: forget without telling the server."""
        chain = self._current()
        if chain is None:
            return LogoutResult(self.server_url, removed=False)
        # Found before the lock is taken: a metadata fetch must not hold up the chain's refreshes.
        revoker = NOT_TOLD if local_only else self._revoker(chain)

        def tell_server(tokens: Optional[TokenSet]) -> LogoutResult:
            if tokens is None:
                return LogoutResult(self.server_url, removed=False)
            if isinstance(revoker, str):
                return LogoutResult(self.server_url, local_only=True, reason=revoker)
            return LogoutResult(self.server_url, revoked=revoker.revoke_all(tokens))

        result = chain.manager.forget(tell_server)
        assert result is not None
        return result

    def _revoker(self, chain: _Chain) -> Union[TokenRevoker, str]:
        """A revoker for the chain's authorization server and client, or why there is none: the
        server advertises no revocation endpoint, or no metadata names one (a client configured by
        hand without an issuer: the chain's issuer is then its token endpoint)."""
        key = chain.manager.key
        if chain.token_endpoint is None or key.issuer == chain.token_endpoint:
            return NO_METADATA
        unknown = f"cannot find out whether {key.issuer} revokes tokens"
        try:
            endpoint = self._discovery.authorization_server(key.issuer).revocation_endpoint
        except DiscoveryConnectionError as exc:  # a setting to change: it says which, as every request does
            raise setup_failure_of_step(
                RevocationConnectionError, exc, doing=unknown, hint=tokens_kept_hint(), transient=True
            ) from exc
        except DiscoveryError as exc:
            raise RevocationFailed(
                f"{unknown} ({exc}); the tokens are kept. {LOCAL_ONLY_HINT}", transient=True
            ) from exc
        if endpoint is None:
            return NO_REVOCATION
        return TokenRevoker(endpoint, self._flow.token_client(chain.token_endpoint, chain.registration))

    # -- what the server may see echoed ------------------------------------------------------------

    def _secrets(self) -> tuple[Optional[str], ...]:
        chain = self._chain
        current = chain.manager.current() if chain is not None else None
        held = (current.access_token, current.refresh_token) if current is not None else ()
        return (*held, self.client.client_secret)

    def _held_scopes(self) -> list[str]:
        chain = self._chain
        if chain is None:
            return []
        current = chain.manager.current()
        scopes = list(current.scope.split()) if current is not None and current.scope else []
        return scopes or list(self._flow.last_requested_scopes)


__all__ = ["ChainSource", "shared_discovery"]
