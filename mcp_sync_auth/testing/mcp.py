"""The protected MCP endpoint: bearer authorization plus a small JSON-RPC 2.0 server.

Streamable HTTP, single JSON-RPC messages per POST (no batches), dual-era: ``initialize`` opens
a session revision (2025-03-26 .. 2025-11-25), a request carrying ``_meta`` protocol metadata is
served on the stateless 2026-07-28 wire. Answers are JSON or SSE, sessions are enforced, tools are
paged and scopes required on demand: see :class:`~mcp_sync_auth.testing.mcp_controls.McpOptions`.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qsl

from .bearer import challenge, extract_bearer, insufficient_scope_challenge
from .dpop import dpop_challenge
from .dpop_gate import ResourceGuard
from .http_types import Request, Response, json_response
from .mcp_controls import McpControls, McpOptions
from .mcp_stateless import MODERN_PROTOCOL_VERSIONS, check_request, discover_result, is_modern, stamp_result
from .mcp_tools import call_tool, list_tools
from .metadata import ResourceOf
from .models import AccessCheck
from .rpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    JsonObject,
    RpcError,
    rpc_error_response,
    sse_event,
    sse_response,
)
from .state import AuthState

__all__ = [
    "LATEST_PROTOCOL_VERSION",
    "MODERN_PROTOCOL_VERSIONS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "McpEndpoint",
    "RpcError",
]

LATEST_PROTOCOL_VERSION = "2025-11-25"
SUPPORTED_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
SERVER_INFO = {"name": "mcp-sync-auth-strict", "version": "1.0.0"}
CAPABILITIES: JsonObject = {"tools": {}}
_WITHOUT_VERSION_HEADER = "2025-03-26"  # the one session revision that predates MCP-Protocol-Version

Headers = Tuple[Tuple[str, str], ...]
MethodHandler = Callable[[JsonObject], Tuple[Any, Headers]]
"""params -> (result, extra response headers)."""


@dataclass(frozen=True)
class _Context:
    """What one request's handlers may look at: the knobs as the request found them."""

    options: McpOptions
    modern: bool


def _media_types(value: str) -> Tuple[str, ...]:
    return tuple(part.split(";", 1)[0].strip().lower() for part in value.split(","))


class McpEndpoint:
    """``/mcp``. JSON-RPC methods live in a table: add one with :meth:`add_method`."""

    def __init__(
        self,
        state: AuthState,
        *,
        resource: ResourceOf,
        url: str,
        resource_metadata_url: str,
        root_metadata_url: Optional[str] = None,
        strict_accept: bool = False,
        controls: Optional[McpControls] = None,
    ) -> None:
        self._state = state
        self._resource_of = resource
        self._metadata_url = resource_metadata_url
        self._root_metadata_url = root_metadata_url
        self._strict_accept = strict_accept
        self.controls = controls if controls is not None else McpControls()
        self._dpop = ResourceGuard(state, url=url, resource=resource, metadata_url=self._served_metadata_url)
        self._event_ids = itertools.count(1)
        self._event_ids_lock = threading.Lock()
        self._methods: Dict[str, Callable[[JsonObject, _Context], Tuple[Any, Headers]]] = {
            "initialize": self._initialize,
            "ping": lambda params, context: ({}, ()),
            "tools/list": lambda params, context: (list_tools(params, context.options.tools_page_size), ()),
            "tools/call": lambda params, context: (call_tool(params), ()),
        }

    def add_method(self, name: str, handler: MethodHandler) -> None:
        self._methods[name] = lambda params, context: handler(params)

    # ------------------------------------------------------------ authorization

    def _unauthorized(
        self,
        status: int,
        error: Optional[str],
        description: str,
        client_id: Optional[str],
    ) -> Response:
        self._state.record_mcp(False, client_id, description)
        header = challenge(self._served_metadata_url(), error, description if error else None)
        payload = {"error": error or "unauthorized", "error_description": description}
        return json_response(status, payload, (("WWW-Authenticate", header),))

    def _served_metadata_url(self) -> Optional[str]:
        """Challenges name the protected resource metadata only while the server serves it: the
        path-inserted document, else the root one when that is the only one served."""
        options = self._state.options
        if not options.serve_metadata:
            return None
        if options.path_metadata:
            return self._metadata_url
        return self._root_metadata_url if options.root_metadata else None

    def authorize(self, request: Request) -> Union[AccessCheck, Response]:
        """The access check, or the 401/400 response to send instead."""
        if request.query and any(
            name == "access_token" for name, _ in parse_qsl(request.query, keep_blank_values=True)
        ):
            reason = "access tokens must not be sent in the URI"
            return self._unauthorized(400, "invalid_request", reason, None)
        options = self._state.options
        if options.dpop is not None:  # RFC 9449: DPoP-bound tokens with proofs (and Bearer, if optional)
            return self._dpop.authorize(request, options)
        credentials = extract_bearer(request)
        if credentials.token is None:
            if credentials.problem is not None:
                return self._unauthorized(401, "invalid_token", credentials.problem, None)
            return self._unauthorized(401, None, "bearer token required", None)
        # The audience is the resource identifier the metadata publishes (the MCP URL by default).
        check = self._state.check_access_token(credentials.token, self._resource_of(self._state.options))
        if not check.ok:
            return self._unauthorized(401, "invalid_token", check.reason, check.client_id)
        return check

    def _scope_denial(self, method: str, check: AccessCheck, options: McpOptions) -> Optional[Response]:
        """403 ``insufficient_scope`` when the token lacks what ``method`` needs (RFC 6750 §3.1)."""
        needed = options.required_scopes.get(method)
        if not needed or needed <= set(check.scope):
            return None
        scope = " ".join(sorted(needed))
        self._state.record_mcp(False, check.client_id, f"insufficient_scope for {method}")
        if check.dpop_jkt is not None:  # the challenge of the scheme the token is used with
            header = dpop_challenge(self._served_metadata_url(), "insufficient_scope", None, scope)
        else:
            header = insufficient_scope_challenge(self._served_metadata_url(), scope)
        payload = {"error": "insufficient_scope", "error_description": f"{method} requires scope {scope}"}
        return json_response(403, payload, (("WWW-Authenticate", header),))

    # ------------------------------------------------------------------- HTTP

    def not_allowed(self, request: Request) -> Response:
        """GET (a standalone SSE stream) is not offered: 405 after auth. DELETE ends the session it
        names (404 if unknown); without a session id it is 405 as well."""
        return self._dpop.gate.stamp(self._not_allowed(request), self._state.options)

    def _not_allowed(self, request: Request) -> Response:
        check = self.authorize(request)
        if isinstance(check, Response):
            return check
        self._state.record_mcp(True, check.client_id, f"HTTP {request.method}")
        session_id = request.header("Mcp-Session-Id")
        if request.method == "DELETE" and session_id is not None:
            if self.controls.sessions.close(session_id):
                return Response(200)
            return rpc_error_response(None, RpcError(INVALID_REQUEST, "Session not found", 404))
        return Response(405, b"", (("Allow", "POST"),))

    def post(self, request: Request) -> Response:
        """A JSON-RPC request (every answer carries ``DPoP-Nonce`` while DPoP nonces are on here)."""
        return self._dpop.gate.stamp(self._post(request), self._state.options)

    def _post(self, request: Request) -> Response:
        check = self.authorize(request)
        if isinstance(check, Response):
            return check
        options = self.controls.options  # read once: a test may swap knobs meanwhile
        try:
            message = self._message(request)
        except RpcError as exc:
            self._state.record_mcp(True, check.client_id, "(invalid)")
            return rpc_error_response(None, exc)
        method = message.get("method")
        if isinstance(method, str):
            denial = self._scope_denial(method, check, options)
            if denial is not None:
                return denial
        label = method if isinstance(method, str) else "(response)"
        context = _Context(options, is_modern(request, message))
        try:
            response = self._route(request, message, context)
        except RpcError as exc:
            response = rpc_error_response(message.get("id") if isinstance(method, str) else None, exc)
        self._state.record_mcp(True, check.client_id, label)
        return response

    def _message(self, request: Request) -> JsonObject:
        """The one JSON-RPC message in the body, checked for shape; HTTP-level checks first."""
        if request.media_type()[0] != "application/json":
            raise RpcError(INVALID_REQUEST, "Content-Type must be application/json", 415)
        if self._strict_accept:
            accepted = _media_types(request.header("Accept") or "")
            if "application/json" not in accepted or "text/event-stream" not in accepted:
                reason = "Accept must list both application/json and text/event-stream"
                raise RpcError(INVALID_REQUEST, reason, 406)
        try:
            message = json.loads(request.body.decode("utf-8"))
        except ValueError:
            raise RpcError(PARSE_ERROR, "Parse error", 400) from None
        if not isinstance(message, dict):
            raise RpcError(INVALID_REQUEST, "expected a single JSON-RPC object (batches unsupported)", 400)
        if message.get("jsonrpc") != "2.0":
            raise RpcError(INVALID_REQUEST, 'jsonrpc must be "2.0"', 400)
        if "method" not in message:
            if "id" in message and ("result" in message or "error" in message):
                return message
            raise RpcError(INVALID_REQUEST, "not a JSON-RPC request, notification or response", 400)
        if not isinstance(message["method"], str):
            raise RpcError(INVALID_REQUEST, "method must be a string", 400)
        if "id" in message:
            request_id = message["id"]
            if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
                raise RpcError(INVALID_REQUEST, "id must be a string or an integer", 400)
        return message

    # ---------------------------------------------------------------- routing

    def _route(self, request: Request, message: JsonObject, context: _Context) -> Response:
        method = message.get("method")
        if context.modern:
            if not isinstance(method, str) or "id" not in message:
                return Response(202)  # the revision defines no client notifications; accept them
            params = message.get("params", {})
            check_request(request, method, params)
            return self._call(message["id"], method, params, context)
        self._check_session_headers(request, method, context.options)
        if not isinstance(method, str) or "id" not in message:
            return Response(202)  # a notification, or the answer to our ping
        return self._call(message["id"], method, message.get("params", {}), context)

    def _check_session_headers(self, request: Request, method: Any, options: McpOptions) -> None:
        version = request.header("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            raise RpcError(INVALID_REQUEST, f"Unsupported MCP-Protocol-Version: {version}", 400)
        if not options.require_session or method == "initialize":
            return
        session_id = request.header("Mcp-Session-Id")
        if session_id is None:
            raise RpcError(INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required", 400)
        negotiated = self.controls.sessions.version_of(session_id)
        if negotiated is None:
            raise RpcError(INVALID_REQUEST, "Session not found", 404)
        if version is None and negotiated != _WITHOUT_VERSION_HEADER:
            raise RpcError(INVALID_REQUEST, "Bad Request: MCP-Protocol-Version header is required", 400)
        if version is not None and version != negotiated:
            reason = f"MCP-Protocol-Version {version} is not the session's negotiated {negotiated}"
            raise RpcError(INVALID_REQUEST, f"Bad Request: {reason}", 400)

    def _call(self, request_id: Any, method: str, params: Any, context: _Context) -> Response:
        try:
            if context.modern and method == "server/discover":
                result: Any = discover_result(SERVER_INFO, CAPABILITIES)
                headers: Headers = ()
            else:
                handler = self._methods.get(method)
                if handler is None or (context.modern and method == "initialize"):
                    # The stateless revision says unknown methods are a 404 (with the JSON-RPC error).
                    raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", 404 if context.modern else 200)
                if not isinstance(params, dict):
                    raise RpcError(INVALID_PARAMS, "params must be an object")
                result, headers = handler(params, context)
        except RpcError as exc:
            if exc.http_status != 200:
                return rpc_error_response(request_id, exc)
            return self._answer(exc.payload(request_id), (), context, may_ping=False)
        if context.modern:
            result, headers = stamp_result(method, result), ()  # no sessions on this wire
        # The stateless revision forbids server requests in a stream; initialize has no session yet.
        may_ping = not context.modern and method != "initialize"
        return self._answer({"jsonrpc": "2.0", "id": request_id, "result": result}, headers, context, may_ping=may_ping)

    # ---------------------------------------------------------------- answers

    def _event_id(self) -> str:
        with self._event_ids_lock:
            return f"strict-{next(self._event_ids)}"

    def _answer(self, payload: JsonObject, headers: Headers, context: _Context, *, may_ping: bool) -> Response:
        """A 200 answer to a request: one JSON body, or an SSE stream ending with it. ``may_ping``:
        a server request fits in this stream (not on the stateless wire, not before a session)."""
        if context.options.response_mode == "json":
            return json_response(200, payload, headers)
        events: List[bytes] = []
        if context.options.sse_extras:
            if not context.modern:  # priming event: an id and empty data (2025-11-25 resumability)
                events.append(f"id: {self._event_id()}\r\ndata:\r\n\r\n".encode("ascii"))
            progress = {"level": "info", "logger": "strict", "data": "working on it"}
            events.append(sse_event({"jsonrpc": "2.0", "method": "notifications/message", "params": progress}))
            if may_ping:
                ping = {"jsonrpc": "2.0", "id": self._event_id(), "method": "ping"}
                events.append(sse_event(ping, event_id=self._event_id()))
        events.append(sse_event(payload, event_id=self._event_id()))
        return sse_response(events, headers)

    # -------------------------------------------------------------- methods

    def _initialize(self, params: JsonObject, context: _Context) -> Tuple[Any, Headers]:
        requested = params.get("protocolVersion")
        client_info = params.get("clientInfo")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "initialize requires protocolVersion (string)")
        if not isinstance(params.get("capabilities"), dict):
            raise RpcError(INVALID_PARAMS, "initialize requires capabilities (object)")
        if not (
            isinstance(client_info, dict)
            and isinstance(client_info.get("name"), str)
            and isinstance(client_info.get("version"), str)
        ):
            raise RpcError(INVALID_PARAMS, "initialize requires clientInfo with name and version")
        version = requested if requested in SUPPORTED_PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
        result = {
            "protocolVersion": version,
            "capabilities": dict(CAPABILITIES),
            "serverInfo": dict(SERVER_INFO),
        }
        return result, (("Mcp-Session-Id", self.controls.sessions.open(version)),)
