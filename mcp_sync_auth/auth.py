"""``MCPAuth``: a ``requests`` auth object that attaches a valid token and survives rotation.

One ``MCPAuth`` may be shared by every thread of a program; several ``MCPAuth`` objects for the same
chain and store share one refresh flight. On a 401 the request is sent again once with a new token;
a second 401 goes back to the caller. With nothing configured but the URL, the first 401 leads to
discovery, registration and a login (or, for ``interactive=False``, to :class:`AuthorizationRequired`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, TypedDict, Union

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.utils import rewind_body

from ._chain.keys import DEFAULT_ACCOUNT, ChainKey
from ._chain.tokens import TokenSet
from ._oauth.assertions import AssertionProvider
from ._oauth.challenge import BearerChallenge, bearer_challenge, dpop_error
from ._oauth.discovery import Discovery
from ._oauth.dpop import KEYS, NONCES, USE_DPOP_NONCE
from ._oauth.identity_assertion import IdentityProviderSettings
from ._oauth.revocation import LogoutResult
from ._oauth.settings import AuthorizationHandler, ClientSettings, DevicePrompt, LoginOptions
from ._oauth.workload import WorkloadTokenProvider
from ._refresh.manager import Clock
from ._source import ChainSource
from ._stores.protocol import TokenStore
from ._stores.selection import store_from_spec
from ._util.headers import presented_token
from ._util.logs import warn_limited
from ._util.sessions import ConnectionOptions, SessionSource, Verify
from ._util.timeouts import TimeoutLike, Timeouts, positive_seconds
from ._util.urls import canonical_resource, origin, require_secure
from .errors import ChallengeError, ConfigurationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

_RESENT = "_mcp_sync_auth_resent"
_LOGINS = "_mcp_sync_auth_logins"
_NONCED = "_mcp_sync_auth_dpop_nonce_sent"
NONCE_REFUSED_HINT = "mcp_sync_auth: the server asked for a DPoP nonce again after the one it gave was sent"
# At most this many authorizations (the first login and step-ups) for one request: a server that
# keeps asking for scopes we cannot get must not keep a person clicking through consent screens.
MAX_LOGINS_PER_REQUEST = 3
NOT_REPLAYABLE_HINT = (
    "mcp_sync_auth: the access token was refused and has been refreshed, but this request's body "
    "is a stream that cannot be sent twice; send the request again"
)


class MCPAuthKeywords(TypedDict, total=False):
    """The options of :class:`ClientSettings` and :class:`LoginOptions`, as single keywords of MCPAuth."""

    client_id: Optional[str]
    client_secret: Optional[str]
    token_endpoint: Optional[str]
    token_endpoint_auth_method: Optional[str]
    issuer: Optional[str]
    client_metadata_url: Optional[str]
    redirect_uri: Optional[str]
    scopes: Union[str, Sequence[str], None]
    grant_type: str
    client_name: str
    private_key: Optional[str]
    private_key_file: Optional[str]
    client_assertion_provider: Optional[AssertionProvider]
    signing_algorithm: Optional[str]
    workload_token_file: Optional[str]
    workload_token_env: Optional[str]
    workload_token_provider: Optional[WorkloadTokenProvider]
    identity_provider: Optional[IdentityProviderSettings]
    dpop: Union[bool, str]
    interactive: Optional[bool]
    authorization_handler: Optional[AuthorizationHandler]
    headless: bool
    login_timeout: float
    device_prompt: Optional[DevicePrompt]


# keyword -> (group, field): each single keyword is one field of a group.
_CLIENT_FIELDS = {
    "client_id": "client_id",
    "client_secret": "client_secret",
    "token_endpoint": "token_endpoint",
    "token_endpoint_auth_method": "auth_method",
    "issuer": "issuer",
    "client_metadata_url": "client_metadata_url",
    "redirect_uri": "redirect_uri",
    "scopes": "scopes",
    "grant_type": "grant_type",
    "client_name": "client_name",
    "private_key": "private_key",
    "private_key_file": "private_key_file",
    "client_assertion_provider": "client_assertion_provider",
    "signing_algorithm": "signing_algorithm",
    "workload_token_file": "workload_token_file",
    "workload_token_env": "workload_token_env",
    "workload_token_provider": "workload_token_provider",
    "identity_provider": "identity_provider",
    "dpop": "dpop",
}
_LOGIN_FIELDS = {
    "interactive": "interactive",
    "authorization_handler": "authorization_handler",
    "headless": "headless",
    "login_timeout": "timeout",
    "device_prompt": "device_prompt",
}


def _grouped(
    client: Optional[ClientSettings], login: Union[LoginOptions, str, None], keywords: dict[str, Any]
) -> tuple[ClientSettings, LoginOptions]:
    if isinstance(login, str):  # MCPAuth(url, login="device"): the login method by name
        login = LoginOptions(method=login)
    unknown = sorted(set(keywords) - set(_CLIENT_FIELDS) - set(_LOGIN_FIELDS))
    if unknown:
        raise TypeError(f"MCPAuth() got unexpected keyword argument(s): {', '.join(unknown)}")
    client_fields = {_CLIENT_FIELDS[k]: v for k, v in keywords.items() if k in _CLIENT_FIELDS}
    login_fields = {_LOGIN_FIELDS[k]: v for k, v in keywords.items() if k in _LOGIN_FIELDS}
    # A single keyword given beside its group refines it: MCPAuth(url, client=base, client_secret=...).
    return (
        dataclasses.replace(client or ClientSettings(), **client_fields),
        dataclasses.replace(login or LoginOptions(), **login_fields),
    )


class MCPAuth(AuthBase):
    """Bearer authorization for one MCP server, with rotation-safe refresh.

    ``server_url`` is the MCP endpoint, and names its chain in the store. The OAuth resource
    indicator (RFC 8707) sent on the authorization request and every token request is the
    ``resource`` its protected resource metadata publishes (the URL, or its origin), else the URL.
    ``client`` says who the client is (:class:`ClientSettings`; by default discovery and
    registration find out), ``login`` how a login happens (:class:`LoginOptions`, or its ``method`` by
    name: ``login="device"`` for the device authorization grant); each of their fields
    may also be given as a single keyword (``client_id=``, ``interactive=``, ...). ``store`` defaults to
    the store ``$MCP_SYNC_AUTH_STORE`` names (a folder, ``file:///...``, ``memory:``, ``redis://...``),
    else a :class:`FileTokenStore` in the user's cache folder, shared by every process of the user.
    ``timeout`` (seconds, a ``(connect, read)`` pair, or :class:`Timeouts`) applies to every HTTP
    request the auth sends; ``lock_timeout`` bounds the wait for another holder's refresh.

    Every request the auth sends (discovery, registration, every grant) goes through ``session``
    (default: one of its own) with ``requests``' environment (``HTTPS_PROXY``, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``...) and, when given, ``verify`` (False, or a CA bundle path that wins over
    the environment) and ``proxies`` (a ``requests`` proxies mapping). :class:`MCPClient` given this
    auth and no session of its own uses the same for its MCP calls. A certificate or proxy failure
    raises :class:`~mcp_sync_auth.errors.ConnectionSetupError` naming the host and the setting.
    """

    def __init__(
        self,
        server_url: str,
        *,
        client: Optional[ClientSettings] = None,
        login: Union[LoginOptions, str, None] = None,
        store: Optional[TokenStore] = None,
        account: str = DEFAULT_ACCOUNT,
        timeout: TimeoutLike = 30.0,
        refresh_skew: float = 60.0,
        lock_timeout: Optional[float] = None,
        clock: Clock = time.time,
        session: Optional[requests.Session] = None,
        verify: Optional[Verify] = None,
        proxies: Optional[Mapping[str, str]] = None,
        discovery: Optional[Discovery] = None,
        **keywords: Unpack[MCPAuthKeywords],
    ) -> None:
        self.server_url = require_secure(canonical_resource(server_url), "the MCP server URL")
        if refresh_skew < 0:
            raise ConfigurationError("refresh_skew must not be negative")
        if lock_timeout is not None:
            positive_seconds(lock_timeout, "lock_timeout")
        client, login = _grouped(client, login, dict(keywords))
        self.store: TokenStore = store if store is not None else store_from_spec(None)
        self.account = account
        self._clock = clock
        self._origin = origin(self.server_url)
        # session None: each component makes its own, renewed after fork() so that a child never
        # shares pooled connections with its parent.
        self._source = ChainSource(
            self.server_url,
            store=self.store,
            client=client,
            login=login,
            timeouts=Timeouts.of(timeout),
            account=account,
            refresh_skew=refresh_skew,
            lock_timeout=lock_timeout,
            clock=clock,
            session=session,
            discovery=discovery,
            connection=ConnectionOptions.of(verify, proxies),
        )

    def __repr__(self) -> str:
        return f"MCPAuth({self.server_url!r}, client_id={self._source.client_id!r}, store={self.store!r})"

    @property
    def _http_source(self) -> SessionSource:
        # The one request path of this auth's requests (session, verify, proxies): MCPClient's too.
        return self._source.http

    @property
    def client(self) -> ClientSettings:
        """Who the client is, as configured (the registration found by discovery is the chain's)."""
        return self._source.client

    @property
    def interactive(self) -> bool:
        """Whether this auth starts a login by itself when it has no usable tokens."""
        return self._source.interactive

    @property
    def key(self) -> ChainKey:
        """The chain this auth uses now (after a login, the new one)."""
        return self._source.key

    def access_token(self) -> str:
        """A valid access token, refreshed (or obtained) first if it must be, coalesced with every
        other caller."""
        return self._source.token().access_token

    def login(self, challenge: Optional[BearerChallenge] = None, held_scopes: Sequence[str] = ()) -> TokenSet:
        """Obtain a new chain now: discovery, registration, then the login (or the client credentials
        grant). One login per server and account runs at a time across threads and processes; the
        others wait and use its result."""
        return self._source.login(challenge, held_scopes)

    def save_token(self, token_response: dict[str, Any]) -> None:
        """Store a token endpoint response (``access_token``, ``expires_in``, ``refresh_token``...)
        as this auth's chain, replacing whatever was there, dead or alive."""
        self._source.save_token(token_response)

    def logout(self, *, local_only: bool = False) -> LogoutResult:
        """Log out: revoke the refresh token, then the access token, at the authorization server
        (RFC 7009, when it advertises ``revocation_endpoint``), then forget the chain here and in the
        store. If revocation fails, :class:`RevocationFailed` is raised and the tokens are kept.
        ``local_only=True`` forgets them without telling the server. The result says what was done
        (``describe()`` in one line)."""
        return self._source.logout(local_only=local_only)

    # -- requests hooks --------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not request.url or origin(request.url) != self._origin:
            # The token is only for the MCP server's origin: a redirect elsewhere gets nothing.
            request.headers.pop("Authorization", None)
            return request
        tokens = self._source.token_for_request()
        if tokens is None:
            # Nothing stored yet: let the server's 401 say where to log in and which scopes it wants.
            request.headers.pop("Authorization", None)
        else:
            self._authorize(request, tokens)
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _authorize(self, request: requests.PreparedRequest, tokens: TokenSet) -> None:
        """``Authorization`` for ``tokens``: Bearer, or DPoP with a fresh proof of the chain's key."""
        if tokens.token_type.lower() == "dpop":
            if tokens.dpop_key is None:
                # Sent as Bearer it would be refused (and is worth nothing to a thief): never send it.
                raise self._source.login_required("the stored DPoP-bound token has no key with it")
            assert request.method is not None and request.url is not None
            proof = KEYS.key(tokens.dpop_key).proof(
                request.method,
                request.url,
                now=self._clock(),
                access_token=tokens.access_token,
                nonce=NONCES.get(request.url),
            )
            request.headers["Authorization"] = f"DPoP {tokens.access_token}"
            request.headers["DPoP"] = proof
        else:
            request.headers["Authorization"] = f"Bearer {tokens.access_token}"
            request.headers.pop("DPoP", None)

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        url = response.request.url if response.request is not None else None
        if not url or origin(url) != self._origin:
            return response  # an answer from elsewhere (after a redirect) never earns a token
        if "DPoP" in response.request.headers:
            fresh_nonce = NONCES.remember(url, response.headers)
            if response.status_code == 401 and self._nonce_demanded(response):
                if fresh_nonce is None or getattr(response.request, _NONCED, False):
                    # Asked again after we sent its nonce: the token is not the problem, so no
                    # refresh; the caller gets the server's answer.
                    response.reason = f"{response.reason or 'Unauthorized'} ({NONCE_REFUSED_HINT})"
                    return response
                return self._resend(response, self._source.token(), kwargs, nonce_retry=True)
        if response.status_code == 401:
            return self._after_401(response, **kwargs)
        if response.status_code == 403:
            return self._after_403(response, **kwargs)
        return response

    def _nonce_demanded(self, response: requests.Response) -> bool:
        """The resource refused the DPoP proof for want of a (new) nonce."""
        try:
            return dpop_error(response) == USE_DPOP_NONCE
        except ChallengeError:
            return False

    def _after_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if getattr(request, _RESENT, False):
            return response  # the fresh token was refused too: the caller decides, we do not loop
        rejected = presented_token(request.headers)
        fresh, logged_in = self._source.after_rejection(rejected, lambda: _challenge_of(response))
        logins = getattr(request, _LOGINS, 0) + int(logged_in)
        return self._resend(response, fresh, kwargs, logins=logins)

    def _after_403(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        challenge = _challenge_of(response)
        if challenge is None or challenge.error != "insufficient_scope":
            return response
        logins = getattr(response.request, _LOGINS, 0)
        if logins >= MAX_LOGINS_PER_REQUEST:
            return response  # give up: the server keeps asking for more than we can get
        fresh = self._source.step_up(challenge)
        return self._resend(response, fresh, kwargs, logins=logins + 1)

    def _resend(
        self,
        response: requests.Response,
        fresh: TokenSet,
        kwargs: dict[str, Any],
        *,
        logins: Optional[int] = None,
        nonce_retry: bool = False,
    ) -> requests.Response:
        request = response.request
        if not _can_replay(request):
            warn_limited(log, self.server_url, "not-replayable", "%s", NOT_REPLAYABLE_HINT)
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
        self._authorize(retry, fresh)  # a DPoP proof is never sent twice: a new one for the resend
        resent = getattr(request, _RESENT, False)
        setattr(retry, _RESENT, resent if nonce_retry else (response.status_code == 401 or resent))
        setattr(retry, _NONCED, nonce_retry or getattr(request, _NONCED, False))
        setattr(retry, _LOGINS, getattr(request, _LOGINS, 0) if logins is None else logins)
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
        where = origin(response.url or "")
        warn_limited(log, where, "malformed-challenge", "ignoring a malformed WWW-Authenticate header from %s", where)
        return None


def _can_replay(request: requests.PreparedRequest) -> bool:
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    # A file-like body can be rewound if requests recorded where it started.
    return getattr(request, "_body_position", None) is not None and hasattr(body, "seek")
