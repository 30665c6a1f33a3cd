"""JSON-RPC errors of the MCP endpoint and how answers are framed: one JSON body or an SSE stream."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Optional, Tuple

from .http_types import Response, json_response

__all__ = [
    "HEADER_MISMATCH",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "JsonObject",
    "RpcError",
    "rpc_error_response",
    "sse_event",
    "sse_response",
]

JsonObject = Dict[str, Any]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020  # 2026-07-28: headers missing or not matching the body
UNSUPPORTED_PROTOCOL_VERSION = -32022  # 2026-07-28


class RpcError(Exception):
    """A JSON-RPC error to send back, with the HTTP status it goes out with."""

    def __init__(self, code: int, message: str, http_status: int = 200, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.data = data

    def payload(self, request_id: Any) -> JsonObject:
        error: JsonObject = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"jsonrpc": "2.0", "id": request_id, "error": error}


def rpc_error_response(request_id: Any, error: RpcError) -> Response:
    return json_response(error.http_status, error.payload(request_id))


def sse_event(message: JsonObject, *, event_id: Optional[str] = None) -> bytes:
    """One ``message`` event with CRLF line ends and the JSON spread over several ``data`` lines,
    so that clients must join data lines and accept CRLF (both allowed by the SSE standard)."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append("event: message")
    lines.extend("data: " + line for line in json.dumps(message, indent=1).split("\n"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def sse_response(events: Iterable[bytes], headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
    body = b": mcp-sync-auth strict server\r\n\r\n" + b"".join(events)  # a comment clients must skip
    framing = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))
    return Response(200, body, (*framing, *headers))
