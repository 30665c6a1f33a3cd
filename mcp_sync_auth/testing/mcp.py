"""The protected MCP endpoint: bearer authorization plus a small JSON-RPC 2.0 server.

Implements a Streamable HTTP subset: single JSON-RPC messages per POST, answered
with ``application/json`` (no SSE, no batching). Sessions are issued on
``initialize`` but not enforced.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import parse_qsl

from .bearer import challenge, extract_bearer
from .http_types import Request, Response, json_response
from .models import AccessCheck
from .state import AuthState

__all__ = [
    "LATEST_PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "McpEndpoint",
    "RpcError",
]

LATEST_PROTOCOL_VERSION = "2025-11-25"
SUPPORTED_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
SERVER_INFO = {"name": "mcp-sync-auth-strict", "version": "1.0.0"}
ECHO_TOOL: Dict[str, Any] = {
    "name": "echo",
    "description": "Return the given text unchanged.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

JsonObject = Dict[str, Any]
MethodHandler = Callable[[JsonObject], Tuple[Any, Tuple[Tuple[str, str], ...]]]
"""params -> (result, extra response headers)."""


class RpcError(Exception):
    def __init__(self, code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def rpc_error_response(request_id: Any, error: RpcError) -> Response:
    payload = {"jsonrpc": "2.0", "id": request_id, "error": {"code": error.code, "message": error.message}}
    return json_response(error.http_status, payload)


def _media_types(value: str) -> Tuple[str, ...]:
    return tuple(part.split(";", 1)[0].strip().lower() for part in value.split(","))


def _tool_text(text: str, is_error: bool) -> JsonObject:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


class McpEndpoint:
    """``/mcp``. JSON-RPC methods live in a table: add one with :meth:`add_method`."""

    def __init__(
        self,
        state: AuthState,
        *,
        resource_url: str,
        resource_metadata_url: str,
        strict_accept: bool = False,
    ) -> None:
        self._state = state
        self._resource_url = resource_url
        self._metadata_url = resource_metadata_url
        self._strict_accept = strict_accept
        self._methods: Dict[str, MethodHandler] = {
            "initialize": self._initialize,
            "ping": lambda params: ({}, ()),
            "tools/list": lambda params: ({"tools": [ECHO_TOOL]}, ()),
            "tools/call": self._tools_call,
        }

    def add_method(self, name: str, handler: MethodHandler) -> None:
        self._methods[name] = handler

    # ------------------------------------------------------------ authorization

    def _unauthorized(
        self,
        status: int,
        error: Optional[str],
        description: str,
        client_id: Optional[str],
    ) -> Response:
        self._state.record_mcp(False, client_id, description)
        header = challenge(self._metadata_url, error, description if error else None)
        payload = {"error": error or "unauthorized", "error_description": description}
        return json_response(status, payload, (("WWW-Authenticate", header),))

    def authorize(self, request: Request) -> Union[AccessCheck, Response]:
        """The access check, or the 401/400 response to send instead."""
        if request.query and any(
            name == "access_token" for name, _ in parse_qsl(request.query, keep_blank_values=True)
        ):
            reason = "access tokens must not be sent in the URI"
            return self._unauthorized(400, "invalid_request", reason, None)
        credentials = extract_bearer(request)
        if credentials.token is None:
            if credentials.problem is not None:
                return self._unauthorized(401, "invalid_token", credentials.problem, None)
            return self._unauthorized(401, None, "bearer token required", None)
        check = self._state.check_access_token(credentials.token, self._resource_url)
        if not check.ok:
            return self._unauthorized(401, "invalid_token", check.reason, check.client_id)
        return check

    # ------------------------------------------------------------------- HTTP

    def not_allowed(self, request: Request) -> Response:
        """GET (SSE stream) and DELETE (session end) are not offered: 405 after auth."""
        check = self.authorize(request)
        if isinstance(check, Response):
            return check
        self._state.record_mcp(True, check.client_id, f"HTTP {request.method}")
        return Response(405, b"", (("Allow", "POST"),))

    def post(self, request: Request) -> Response:
        check = self.authorize(request)
        if isinstance(check, Response):
            return check
        label = "(invalid)"
        try:
            response, label = self._handle(request)
        except RpcError as exc:
            response = rpc_error_response(None, exc)
        self._state.record_mcp(True, check.client_id, label)
        return response

    def _check_headers(self, request: Request) -> None:
        version = request.header("MCP-Protocol-Version")
        if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
            raise RpcError(INVALID_REQUEST, f"Unsupported MCP-Protocol-Version: {version}", 400)
        if request.media_type()[0] != "application/json":
            raise RpcError(INVALID_REQUEST, "Content-Type must be application/json", 415)
        if not self._strict_accept:
            return
        accepted = _media_types(request.header("Accept") or "")
        if "application/json" not in accepted or "text/event-stream" not in accepted:
            reason = "Accept must list both application/json and text/event-stream"
            raise RpcError(INVALID_REQUEST, reason, 406)

    def _handle(self, request: Request) -> Tuple[Response, str]:
        self._check_headers(request)
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
                return Response(202), "(response)"
            raise RpcError(INVALID_REQUEST, "not a JSON-RPC request, notification or response", 400)
        method = message["method"]
        if not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, "method must be a string", 400)
        if "id" not in message:
            return Response(202), method
        request_id = message["id"]
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            raise RpcError(INVALID_REQUEST, "id must be a string or an integer", 400)
        return self._call(request_id, method, message.get("params", {})), method

    def _call(self, request_id: Any, method: str, params: Any) -> Response:
        handler = self._methods.get(method)
        try:
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            result, headers = handler(params)
        except RpcError as exc:
            return rpc_error_response(request_id, exc)
        return json_response(200, {"jsonrpc": "2.0", "id": request_id, "result": result}, headers)

    # -------------------------------------------------------------- methods

    def _initialize(self, params: JsonObject) -> Tuple[Any, Tuple[Tuple[str, str], ...]]:
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
            "capabilities": {"tools": {}},
            "serverInfo": dict(SERVER_INFO),
        }
        return result, (("Mcp-Session-Id", self._state.new_session()),)

    def _tools_call(self, params: JsonObject) -> Tuple[Any, Tuple[Tuple[str, str], ...]]:
        name = params.get("name")
        arguments = params.get("arguments", {})
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call requires a tool name")
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "arguments must be an object")
        if name != "echo":
            return _tool_text(f"Unknown tool: {name}", True), ()
        text = arguments.get("text")
        if not isinstance(text, str):
            return _tool_text("echo requires a string argument 'text'", True), ()
        return _tool_text(text, False), ()
