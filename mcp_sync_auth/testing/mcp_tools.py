"""The tools of the reference MCP server: ``echo``, ``add`` and ``fail`` (always ``isError``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, Optional, Tuple

from .rpc import INVALID_PARAMS, JsonObject, RpcError

__all__ = ["TOOLS", "call_tool", "list_tools"]

TOOLS: Tuple[JsonObject, ...] = (
    {
        "name": "echo",
        "description": "Return the given text unchanged.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
    {
        "name": "add",
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
        },
    },
    {
        "name": "fail",
        "description": "Always fail, reporting the error in the result (isError: true).",
        "inputSchema": {"type": "object", "properties": {}},
    },
)

_CURSOR_PREFIX = "tools:"


def _text(text: str, is_error: bool) -> JsonObject:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{offset}".encode("ascii")).decode("ascii")


def _offset(cursor: Any) -> int:
    """The offset an opaque cursor of ours stands for; anything else is an invalid parameter."""
    try:
        decoded = base64.urlsafe_b64decode(str(cursor).encode("ascii")).decode("ascii")
        if not decoded.startswith(_CURSOR_PREFIX):
            raise ValueError(decoded)
        offset = int(decoded[len(_CURSOR_PREFIX) :])
    except (ValueError, UnicodeError, binascii.Error):
        raise RpcError(INVALID_PARAMS, "invalid cursor") from None
    if not isinstance(cursor, str) or not 0 <= offset < len(TOOLS):
        raise RpcError(INVALID_PARAMS, "invalid cursor")
    return offset


def list_tools(params: JsonObject, page_size: Optional[int]) -> JsonObject:
    """A ``ListToolsResult``: every tool, or one page of ``page_size`` with a ``nextCursor``."""
    cursor = params.get("cursor")
    offset = 0 if cursor is None else _offset(cursor)
    end = len(TOOLS) if page_size is None else min(len(TOOLS), offset + page_size)
    result: Dict[str, Any] = {"tools": [dict(tool) for tool in TOOLS[offset:end]]}
    if end < len(TOOLS):
        result["nextCursor"] = _cursor(end)
    return result


def call_tool(params: JsonObject) -> JsonObject:
    """A ``CallToolResult``. Tool failures (unknown tool, bad arguments) are results with
    ``isError: true``, as the spec asks; only a malformed request is a JSON-RPC error."""
    name = params.get("name")
    arguments = params.get("arguments", {})
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, "tools/call requires a tool name")
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "arguments must be an object")
    if name == "echo":
        text = arguments.get("text")
        if not isinstance(text, str):
            return _text("echo requires a string argument 'text'", True)
        return _text(text, False)
    if name == "add":
        a, b = arguments.get("a"), arguments.get("b")
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in (a, b)):
            return _text("add requires numbers 'a' and 'b'", True)
        total = a + b  # type: ignore[operator]
        return {**_text(str(total), False), "structuredContent": {"sum": total}}
    if name == "fail":
        return _text("this tool always fails", True)
    return _text(f"Unknown tool: {name}", True)
