"""JSON-RPC 2.0 messages: building them, numbering them, and telling apart what comes back."""

from __future__ import annotations

import itertools
import threading
from typing import Any, Dict, Mapping, Optional, Union

from .._util.checks import is_integer
from .._util.redact import clean_server_text
from ..errors import JSONRPCError, MCPProtocolError

__all__ = [
    "METHOD_NOT_FOUND",
    "IdCounter",
    "JsonObject",
    "RequestId",
    "error_of",
    "is_request",
    "is_response",
    "notification",
    "request",
    "response_error",
    "response_result",
]

JsonObject = Dict[str, Any]
RequestId = Union[int, str]

METHOD_NOT_FOUND = -32601


class IdCounter:
    """Request ids unique within one client, whichever thread asks."""

    def __init__(self, start: int = 1) -> None:
        self._next = itertools.count(start)
        self._lock = threading.Lock()  # next() on a shared count is only atomic by CPython accident

    def __call__(self) -> int:
        with self._lock:
            return next(self._next)


def request(request_id: RequestId, method: str, params: Optional[Mapping[str, Any]] = None) -> JsonObject:
    message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


def notification(method: str, params: Optional[Mapping[str, Any]] = None) -> JsonObject:
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


def response_result(request_id: RequestId, result: Any) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def response_error(request_id: RequestId, code: int, message: str) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def is_response(message: Mapping[str, Any]) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def is_request(message: Mapping[str, Any]) -> bool:
    return isinstance(message.get("method"), str) and "id" in message


def error_of(message: Mapping[str, Any], *, secrets: tuple[Optional[str], ...] = (), **kwargs: Any) -> JSONRPCError:
    """The exception for an error response (the message is cleaned; ``data`` is kept as sent)."""
    error = message.get("error")
    if not isinstance(error, dict):
        raise MCPProtocolError("the server sent a JSON-RPC error response without an error object", **kwargs)
    code = error.get("code")
    if not is_integer(code):
        raise MCPProtocolError("the server sent a JSON-RPC error without an integer code", **kwargs)
    return JSONRPCError(code, clean_server_text(error.get("message", ""), secrets), error.get("data"), **kwargs)
