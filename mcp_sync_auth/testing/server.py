"""The :class:`StrictAuthServer` context manager used by the test-suite."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from .audit import Audit
from .faults import Fault
from .handler import StrictHTTPServer
from .http_types import RouteTable
from .mcp import McpEndpoint
from .models import ChainSummary, ClientInfo
from .state import AuthState
from .token_endpoint import TokenEndpoint

__all__ = ["StrictAuthServer"]


class StrictAuthServer:
    """A strict OAuth 2.1 authorization server plus an MCP resource server.

    Serves on ``127.0.0.1`` (free port) from a daemon thread between
    :meth:`start` and :meth:`stop` (or as a context manager).
    """

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
    ) -> None:
        self._state = AuthState(
            clock=clock,
            access_token_ttl=access_token_ttl,
            require_resource=require_resource,
            rotate_refresh_tokens=rotate_refresh_tokens,
            token_marker=token_marker,
        )
        self._fault_delay = float(fault_delay)
        self._strict_accept = strict_accept
        self._host = host
        self._httpd: Optional[StrictHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._base_url: Optional[str] = None
        self._stopped = False
        self._token_marker = token_marker

    # ------------------------------------------------------------- lifecycle

    def start(self) -> StrictAuthServer:
        if self._httpd is not None or self._stopped:
            raise RuntimeError("StrictAuthServer can be started only once")
        httpd = StrictHTTPServer((self._host, 0))
        port = httpd.server_address[1]
        self._base_url = f"http://{self._host}:{port}"
        httpd.routes = self._build_routes()
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"StrictAuthServer:{port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed answers, cut open connections, close the socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or self._stopped:
            self._stopped = True
            return
        self._stopped = True
        httpd.stopping.set()
        self._state.release_token_requests()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self) -> StrictAuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def _build_routes(self) -> RouteTable:
        """path -> method -> endpoint. Later endpoints (metadata, DCR, authorize) go here."""
        token = TokenEndpoint(self._state, fault_delay=self._fault_delay)
        mcp = McpEndpoint(
            self._state,
            resource_url=self.mcp_url,
            resource_metadata_url=self.resource_metadata_url,
            strict_accept=self._strict_accept,
        )
        return {
            "/token": {"POST": token},
            "/mcp": {"POST": mcp.post, "GET": mcp.not_allowed, "DELETE": mcp.not_allowed},
        }

    # ------------------------------------------------------------------- URLs

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the server is not started")
        return self._base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_endpoint(self) -> str:
        return self.base_url + "/token"

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 metadata URL advertised in 401 challenges (served by a later issue)."""
        return self.base_url + "/.well-known/oauth-protected-resource/mcp"

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

    # --------------------------------------------------------------- clients

    def register_client(
        self,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        token_endpoint_auth_method: str = "none",
    ) -> str:
        """Register a client; returns its id (generated when not given).

        Confidential clients without an explicit secret get a random one
        (see :meth:`get_client`).
        """
        return self._state.register_client(client_id, client_secret, token_endpoint_auth_method).client_id

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
    ) -> Dict[str, Any]:
        """Start a new refresh chain (no browser) and return a token response dict."""
        grant = self._state.mint(client_id, scope=scope, resource=resource or self.mcp_url)
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
