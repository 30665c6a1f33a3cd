"""``MCPClient``: a synchronous MCP client over Streamable HTTP that many threads can share.

The connection (negotiated version, session id, server info) is an immutable snapshot. Threads read
it without a lock; setting it up — ``initialize`` then ``notifications/initialized``, or
``server/discover`` on the stateless 2026-07-28 wire — happens once, under a lock. When the server
forgets the session (HTTP 404), the first thread to notice starts a new one and every other thread
that held the same snapshot reuses it: one re-initialization per expiry, and each request is retried
once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from .. import _version
from .._util.redact import clean_server_text
from .._util.sessions import ConnectionOptions, SessionSource, Verify
from .._util.urls import checked_server_url
from ..errors import ConfigurationError, MCPProtocolError, ToolError
from . import jsonrpc
from .transport import (
    METHOD_HEADER,
    NAME_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
    Reply,
    SessionExpired,
    StreamableHTTP,
    header_value,
)
from .versions import (
    CLIENT_CAPABILITIES_META,
    CLIENT_INFO_META,
    LATEST_SESSION_VERSION,
    PROTOCOL_VERSION_META,
    SERVER_INFO_META,
    SESSION_VERSIONS,
    SUPPORTED_VERSIONS,
    is_stateless,
)

__all__ = ["MCPClient"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

POOL_SIZE = 32  # connections kept per host by a session we create: one per busy thread, not ten
_NAMED_BY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # -> Mcp-Name


@dataclass(frozen=True)
class _Connection:
    """What a handshake established. Replaced whole, never changed, so threads can share it."""

    protocol_version: str
    session_id: Optional[str] = None
    server_info: Dict[str, Any] = field(default_factory=dict)
    capabilities: Dict[str, Any] = field(default_factory=dict)
    instructions: Optional[str] = None

    @property
    def stateless(self) -> bool:
        return is_stateless(self.protocol_version)


class MCPClient:
    """A synchronous MCP client for one server URL; thread-safe, one instance for all threads.

    ``auth`` (typically :class:`~mcp_sync_auth.MCPAuth`) is given to every HTTP request and deals
    with tokens itself; a 401 or 403 that still comes back raises :class:`MCPProtocolError`.
    ``protocol_version`` pins a revision: one of 2025-03-26, 2025-06-18, 2025-11-25 (negotiated with
    ``initialize``), or 2026-07-28 (stateless). Without it the newest handshake revision is offered
    and whatever supported revision the server picks is used.

    MCP calls go through ``session``, else the session ``auth`` was given, else one of the client's
    own, with ``verify``/``proxies`` (else ``auth``'s) and ``requests``' environment (``HTTPS_PROXY``,
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``). A certificate or proxy failure raises
    :class:`~mcp_sync_auth.errors.MCPConnectionError`, naming the host and the setting to change.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: Optional[AuthBase] = None,
        session: Optional[requests.Session] = None,
        protocol_version: Optional[str] = None,
        timeout: float = 60.0,
        client_info: Optional[Mapping[str, Any]] = None,
        verify: Optional[Verify] = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> None:
        if protocol_version is not None and protocol_version not in SUPPORTED_VERSIONS:
            supported = ", ".join(SUPPORTED_VERSIONS)
            raise ConfigurationError(f"unsupported MCP protocol version {protocol_version!r} (supported: {supported})")
        if not timeout > 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self.url = checked_server_url(url)
        self._client_info = _client_info(client_info)
        self._requested_version = protocol_version
        http, self._owns_session = _request_path(session, auth, verify, proxies)
        self._session = http.get()
        self._transport = StreamableHTTP(url, http=http, auth=auth, timeout=timeout)
        self._next_id = jsonrpc.IdCounter()
        self._connect_lock = threading.Lock()
        self._connection: Optional[_Connection] = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MCPClient({self.url!r}, protocol_version={self._requested_version!r})"

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Set the connection up now instead of on the first request."""
        self._current()

    def close(self) -> None:
        """End the session (a best-effort DELETE) and close the HTTP session if we created it."""
        with self._connect_lock:
            if self._closed:
                return
            self._closed = True
            connection, self._connection = self._connection, None
        try:
            if connection is not None and connection.session_id is not None:
                status = self._transport.delete_session(self._headers(connection))
                log.debug("session DELETE answered %s", status)
        except requests.RequestException as exc:
            log.debug("could not end the MCP session: %s", exc)
        finally:
            if self._owns_session:
                self._session.close()

    @property
    def protocol_version(self) -> str:
        """The protocol revision in use (connects first if needed)."""
        return self._current().protocol_version

    @property
    def server_info(self) -> Dict[str, Any]:
        """The server's ``Implementation`` (name, version...) as it reported it (connects first)."""
        return dict(self._current().server_info)

    @property
    def server_capabilities(self) -> Dict[str, Any]:
        """The ``ServerCapabilities`` the server announced (``tools``, ``resources``...), as sent
        (connects first); a shallow copy."""
        return dict(self._current().capabilities)

    @property
    def instructions(self) -> Optional[str]:
        """The server's ``instructions`` from ``initialize`` (or ``server/discover``): how to use its
        tools, meant for the model's context. None when it sent none (connects first). Server text,
        passed on as sent."""
        return self._current().instructions

    # -- MCP ---------------------------------------------------------------------------------------

    def request(self, method: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """Send a JSON-RPC request and return its ``result``; a JSON-RPC error raises
        :class:`JSONRPCError`."""
        return self._exchange(method, params).message.get("result")

    def notify(self, method: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Send a JSON-RPC notification (no answer but the HTTP status)."""
        self._on_live_session(lambda connection: self._notify_on(connection, method, params))

    def list_tools(self) -> List[Dict[str, Any]]:
        """Every tool the server offers, following ``nextCursor`` across pages."""
        tools: List[Dict[str, Any]] = []
        cursor: Optional[str] = None
        seen: set[str] = set()
        while True:
            result = self.request("tools/list", None if cursor is None else {"cursor": cursor})
            page = result.get("tools") if isinstance(result, dict) else None
            if not isinstance(page, list) or not all(isinstance(tool, dict) for tool in page):
                raise MCPProtocolError("the MCP server's tools/list result has no list of tools")
            tools.extend(page)
            cursor = result.get("nextCursor")
            if cursor is None or cursor == "":
                return tools
            if not isinstance(cursor, str):
                raise MCPProtocolError("the MCP server sent a nextCursor that is not a string")
            if cursor in seen:  # a server that loops would keep us here forever
                raise MCPProtocolError("the MCP server repeated a tools/list cursor")
            seen.add(cursor)

    def call_tool(self, name: str, arguments: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Call a tool and return its ``CallToolResult``; ``isError: true`` raises :class:`ToolError`."""
        reply = self._exchange("tools/call", {"name": name, "arguments": dict(arguments or {})})
        result = reply.message.get("result")
        if not isinstance(result, dict):
            raise MCPProtocolError("the MCP server's tools/call result is not an object")
        if result.get("isError") is True:
            detail = clean_server_text(_first_text(result), reply.secrets)
            raise ToolError(f"the MCP tool {name!r} reported an error: {detail}".rstrip(": "), result)
        return result

    # -- requests and retries ----------------------------------------------------------------------

    def _exchange(self, method: str, params: Optional[Mapping[str, Any]]) -> Reply:
        return self._on_live_session(lambda connection: self._request_on(connection, method, params))

    def _on_live_session(self, send: Callable[[_Connection], _T]) -> _T:
        """``send`` on the current connection; if the server forgot its session, once more on a new one."""
        connection = self._current()
        try:
            return send(connection)
        except SessionExpired:
            connection = self._renew(connection)
        try:
            return send(connection)
        except SessionExpired:
            raise _expired_again() from None

    def _request_on(self, connection: _Connection, method: str, params: Optional[Mapping[str, Any]]) -> Reply:
        params = self._with_meta(connection, params)
        message = jsonrpc.request(self._next_id(), method, params)
        headers = self._headers(connection, method, params)
        # The stateless revision forbids server requests in the stream, so there is nothing to answer.
        answer_with = None if connection.stateless else self._headers(connection)
        reply = self._transport.request(message, headers, reply_headers=answer_with)
        result = reply.message.get("result")
        if connection.stateless and isinstance(result, dict) and result.get("resultType", "complete") != "complete":
            kind = clean_server_text(result.get("resultType"))
            raise MCPProtocolError(
                f"the MCP server answered {method!r} with resultType {kind!r}; "
                "multi round-trip requests are not supported by this client"
            )
        return reply

    def _notify_on(self, connection: _Connection, method: str, params: Optional[Mapping[str, Any]]) -> None:
        self._transport.notify(jsonrpc.notification(method, params), self._headers(connection, method, params))

    def _headers(
        self, connection: _Connection, method: Optional[str] = None, params: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, str]:
        headers = {VERSION_HEADER: connection.protocol_version}
        if connection.session_id is not None:
            headers[SESSION_HEADER] = connection.session_id
        if connection.stateless and method is not None:
            # Mirrored so gateways can route without reading the body; the server checks they match.
            headers[METHOD_HEADER] = header_value(method)
            name = (params or {}).get(_NAMED_BY.get(method, ""))
            if isinstance(name, str):
                headers[NAME_HEADER] = header_value(name)
        return headers

    def _with_meta(self, connection: _Connection, params: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
        """On the stateless wire every request says which revision and capabilities it speaks."""
        if not connection.stateless:
            return None if params is None else dict(params)
        with_meta = dict(params or {})
        meta = dict(with_meta.get("_meta") or {})
        meta[PROTOCOL_VERSION_META] = connection.protocol_version
        meta[CLIENT_CAPABILITIES_META] = {}
        meta[CLIENT_INFO_META] = dict(self._client_info)
        with_meta["_meta"] = meta
        return with_meta

    # -- connection set-up -------------------------------------------------------------------------

    def _current(self) -> _Connection:
        connection = self._connection  # fast path: one attribute read, no lock
        if connection is not None:
            return connection
        with self._connect_lock:
            self._check_open()
            if self._connection is None:
                self._connection = self._open()
            return self._connection

    def _renew(self, expired: _Connection) -> _Connection:
        """A new session after ``expired`` was forgotten by the server, set up by one thread only."""
        with self._connect_lock:
            self._check_open()
            if self._connection is expired or self._connection is None:
                log.info("the MCP server forgot our session; starting a new one")
                self._connection = None
                self._connection = self._open()
            return self._connection

    def _check_open(self) -> None:
        if self._closed:
            raise MCPProtocolError("this MCPClient is closed")

    def _open(self) -> _Connection:
        version = self._requested_version
        try:
            if version is not None and is_stateless(version):
                return self._discover(version)
            return self._initialize(version or LATEST_SESSION_VERSION)
        except SessionExpired:
            raise MCPProtocolError(
                "the MCP server forgot the session while it was being set up", status_code=404
            ) from None

    def _initialize(self, version: str) -> _Connection:
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": dict(self._client_info)}
        message = jsonrpc.request(self._next_id(), "initialize", params)
        reply = self._transport.request(message, {}, reply_headers={})
        result = reply.message.get("result")
        if not isinstance(result, dict):
            raise MCPProtocolError("the MCP server's initialize result is not an object")
        chosen = result.get("protocolVersion")
        if chosen not in SESSION_VERSIONS:
            raise MCPProtocolError(
                f"the MCP server chose protocol version {clean_server_text(chosen)!r}, which this client "
                f"does not support (it supports {', '.join(SESSION_VERSIONS)})"
            )
        connection = _Connection(
            protocol_version=str(chosen),
            session_id=_session_id(reply.headers.get(SESSION_HEADER)),
            server_info=_object(result.get("serverInfo")),
            capabilities=_object(result.get("capabilities")),
            instructions=_text(result.get("instructions")),
        )
        self._notify_on(connection, "notifications/initialized", None)
        return connection

    def _discover(self, version: str) -> _Connection:
        result = self._request_on(_Connection(version), "server/discover", None).message.get("result")
        if not isinstance(result, dict):
            raise MCPProtocolError("the MCP server's server/discover result is not an object")
        supported = result.get("supportedVersions")
        if not isinstance(supported, list) or version not in supported:
            offered = clean_server_text(supported)
            raise MCPProtocolError(f"the MCP server does not support protocol version {version} (it offers {offered})")
        meta = _object(result.get("_meta"))
        # Server identity moved into the result's _meta; older drafts had it in the body.
        server_info = _object(meta.get(SERVER_INFO_META)) or _object(result.get("serverInfo"))
        return _Connection(
            protocol_version=version,
            server_info=server_info,
            capabilities=_object(result.get("capabilities")),
            instructions=_text(result.get("instructions")),
        )


# -- helpers -----------------------------------------------------------------------------------------


def _request_path(
    session: Optional[requests.Session],
    auth: Optional[AuthBase],
    verify: Optional[Verify],
    proxies: Optional[Mapping[str, str]],
) -> tuple[SessionSource, bool]:
    """Where MCP calls go through, and whether the session is ours to close. Without a session or
    ``verify``/``proxies`` of its own the client takes its auth's (an MCPAuth's ``_http_source``), so
    that a session, CA bundle or proxy given once to MCPAuth reaches the MCP calls too."""
    borrowed = getattr(auth, "_http_source", None)
    borrowed = borrowed if isinstance(borrowed, SessionSource) else None
    options = ConnectionOptions.of(verify, proxies)
    if borrowed is not None:
        options = options.over(borrowed.options)  # the client's own settings win, field by field
    if session is None and borrowed is not None:
        session = borrowed.given
    owned = session is None
    return SessionSource(session if session is not None else _new_session(), options), owned


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _client_info(given: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if given is None:
        return {"name": "mcp-sync-auth", "version": _version.__version__}
    info = dict(given)
    if not isinstance(info.get("name"), str) or not isinstance(info.get("version"), str):
        raise ConfigurationError("client_info needs string 'name' and 'version' entries")
    return info


def _session_id(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not value or not all("!" <= ch <= "~" for ch in value):
        raise MCPProtocolError("the MCP server sent a session id that is not visible ASCII")
    return value


def _object(value: Any) -> Dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _first_text(result: Mapping[str, Any]) -> str:
    for item in result.get("content") or ():
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            return str(item["text"])
    return ""


def _expired_again() -> MCPProtocolError:
    return MCPProtocolError(
        "the MCP server rejected the session again right after a new one was started", status_code=404
    )
