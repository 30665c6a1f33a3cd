"""``MCPAuth``: a ``requests`` auth object that attaches a valid token and survives rotation.

One ``MCPAuth`` may be shared by every thread of a program; several ``MCPAuth`` objects for the same
chain and store share one refresh flight. On a 401 the request is sent again once with a new token;
a second 401 goes back to the caller.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Union

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.utils import rewind_body

from .chain import DEFAULT_ACCOUNT, ChainKey
from .errors import ConfigurationError
from .manager import Clock, TokenManager
from .store import FileTokenStore, TokenStore
from .token_client import Timeout, TokenEndpointClient
from .urls import canonical_resource, origin, require_secure

log = logging.getLogger(__name__)

_RESENT = "_mcp_sync_auth_resent"
NOT_REPLAYABLE_HINT = (
    "mcp_sync_auth: the access token was refused and has been refreshed, but this request's body "
    "is a stream that cannot be sent twice; send the request again"
)


class MCPAuth(AuthBase):
    """Bearer authorization for one MCP server, with rotation-safe refresh.

    ``server_url`` is the MCP endpoint; it is also the OAuth resource indicator sent on every token
    request. With ``client_id`` and ``token_endpoint`` the client is configured by hand and needs no
    discovery. ``store`` defaults to a :class:`FileTokenStore` in the user's cache folder, shared by
    every process of the user.
    """

    def __init__(
        self,
        server_url: str,
        *,
        store: Optional[TokenStore] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint: Optional[str] = None,
        scopes: Union[str, list[str], tuple[str, ...], None] = None,
        refresh_skew: float = 60.0,
        timeout: Timeout = 30.0,
        session: Optional[requests.Session] = None,
        token_endpoint_auth_method: Optional[str] = None,
        issuer: Optional[str] = None,
        account: str = DEFAULT_ACCOUNT,
        lock_timeout: Optional[float] = None,
        clock: Clock = time.time,
    ) -> None:
        self.server_url = require_secure(canonical_resource(server_url), "the MCP server URL")
        if not client_id or not token_endpoint:
            raise ConfigurationError(
                "MCPAuth needs client_id and token_endpoint: this version has no automatic discovery or login yet"
            )
        if refresh_skew < 0:
            raise ConfigurationError("refresh_skew must not be negative")
        self.scopes = scopes.split() if isinstance(scopes, str) else list(scopes or [])
        self.store: TokenStore = store if store is not None else FileTokenStore()
        self._origin = origin(self.server_url)
        token_client = TokenEndpointClient(
            token_endpoint,
            client_id,
            client_secret=client_secret,
            auth_method=token_endpoint_auth_method,
            resource=self.server_url,
            session=session,
            timeout=timeout,
            clock=clock,
        )
        self.token_endpoint = token_client.token_endpoint
        key = ChainKey(self.server_url, issuer or token_client.token_endpoint, client_id, account)
        read_timeout = timeout if isinstance(timeout, (int, float)) else sum(timeout)
        self._manager = TokenManager(
            key,
            self.store,
            token_client.refresh,
            refresh_skew=refresh_skew,
            lock_timeout=lock_timeout if lock_timeout is not None else 2 * read_timeout + 10,
            clock=clock,
            login_hint=(
                "Log in again and store the new tokens with MCPAuth.save_token() "
                f"(the chain is kept in {self.store!r})."
            ),
        )

    def __repr__(self) -> str:
        return f"MCPAuth({self.server_url!r}, client_id={self.key.client_id!r}, store={self.store!r})"

    @property
    def key(self) -> ChainKey:
        return self._manager.key

    # -- tokens ----------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, refreshed first if it must be (coalesced with every other caller)."""
        return self._manager.token().access_token

    def save_token(self, token_response: dict[str, Any]) -> None:
        """Store a token endpoint response (``access_token``, ``expires_in``, ``refresh_token``...)
        as this auth's chain, replacing whatever was there, dead or alive."""
        self._manager.save_response(token_response, token_endpoint=self.token_endpoint)

    def logout(self) -> None:
        """Forget this chain's tokens, here and in the store."""
        self._manager.forget()

    # -- requests hooks --------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not request.url or origin(request.url) != self._origin:
            # The token is only for the MCP server's origin: a redirect elsewhere gets nothing.
            request.headers.pop("Authorization", None)
            return request
        request.headers["Authorization"] = f"Bearer {self._manager.token().access_token}"
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        request = response.request
        if getattr(request, _RESENT, False):
            return response  # the fresh token was refused too: the caller decides, we do not loop
        rejected = _bearer_of(request)
        if rejected is None:
            return response
        fresh = self._manager.token_after_rejection(rejected)
        if not _can_replay(request):
            log.warning("%s", NOT_REPLAYABLE_HINT)
            response.reason = f"{response.reason or 'Unauthorized'} ({NOT_REPLAYABLE_HINT})"
            return response
        # Drain and release the 401 so its connection can carry the resend.
        _ = response.content
        response.close()
        retry = request.copy()
        if request._body_position is not None:  # type: ignore[attr-defined]
            retry._body_position = request._body_position  # type: ignore[attr-defined]
            rewind_body(retry)
        extract_cookies_to_jar(retry._cookies, request, response.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        setattr(retry, _RESENT, True)
        second = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second


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
