"""The 2026-07-28 ("modern", stateless) wire: what every request must carry, and result stamping.

No ``initialize`` and no sessions: each request names its protocol version and client capabilities
in ``params._meta``, mirrors the version into ``MCP-Protocol-Version`` and the method (and tool
name) into ``Mcp-Method`` / ``Mcp-Name``. A mismatch is a 400 with a JSON-RPC error.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping, Optional

from .http_types import Request
from .rpc import HEADER_MISMATCH, INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION, JsonObject, RpcError

__all__ = [
    "MODERN_PROTOCOL_VERSIONS",
    "check_request",
    "decode_header_value",
    "discover_result",
    "is_modern",
    "stamp_result",
]

MODERN_PROTOCOL_VERSIONS = ("2026-07-28",)
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
# Results the revision marks cacheable must carry the caching hints.
CACHEABLE_METHODS = frozenset(
    {"server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
)
NAMED_BY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # body field -> Mcp-Name
_BASE64_PREFIX, _BASE64_SUFFIX = "=?base64?", "?="


def _meta(message: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else None


def is_modern(request: Request, message: Mapping[str, Any]) -> bool:
    """Whether a message speaks the stateless revision (a dual-era server picks per request)."""
    if request.header("MCP-Protocol-Version") in MODERN_PROTOCOL_VERSIONS or message.get("method") == "server/discover":
        return True
    meta = _meta(message)
    return meta is not None and PROTOCOL_VERSION_META in meta


def decode_header_value(value: str) -> Optional[str]:
    """A mirrored header value, decoded from the ``=?base64?...?=`` form; None if that is broken."""
    if not (value.startswith(_BASE64_PREFIX) and value.endswith(_BASE64_SUFFIX)):
        return value
    try:
        return base64.b64decode(value[len(_BASE64_PREFIX) : -len(_BASE64_SUFFIX)], validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        return None


def _mismatch(reason: str) -> RpcError:
    return RpcError(HEADER_MISMATCH, f"Header mismatch: {reason}", 400)


def check_request(request: Request, method: str, params: Any) -> str:
    """Validate a stateless request's headers against its body; returns its protocol version."""
    header = request.header("MCP-Protocol-Version")
    if header is None:
        raise _mismatch("missing MCP-Protocol-Version header")
    meta = _meta({"params": params})
    missing = [key for key in (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META) if meta is None or key not in meta]
    if meta is None or missing:
        raise RpcError(INVALID_PARAMS, f"Invalid params: missing _meta keys: {', '.join(missing)}", 400)
    if meta[PROTOCOL_VERSION_META] != header:
        raise _mismatch("MCP-Protocol-Version header does not match _meta protocolVersion")
    if header not in MODERN_PROTOCOL_VERSIONS:
        data = {"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": header}
        raise RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", 400, data)
    if not isinstance(meta[CLIENT_CAPABILITIES_META], dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: clientCapabilities must be an object", 400)
    mirrored = request.header("Mcp-Method")
    if mirrored is None or decode_header_value(mirrored) != method:
        raise _mismatch("Mcp-Method header missing or not equal to the method")
    field = NAMED_BY.get(method)
    if field is not None:
        name = request.header("Mcp-Name")
        if name is None or decode_header_value(name) != params.get(field):
            raise _mismatch(f"Mcp-Name header missing or not equal to params.{field}")
    return header


def stamp_result(method: str, result: Any) -> Any:
    """Add the members the revision requires of every result (and of cacheable ones)."""
    if not isinstance(result, dict):
        return result
    stamped: JsonObject = {"resultType": "complete", **result}
    if method in CACHEABLE_METHODS:
        stamped.setdefault("ttlMs", 0)
        stamped.setdefault("cacheScope", "private")
    return stamped


def discover_result(server_info: Mapping[str, Any], capabilities: Mapping[str, Any]) -> JsonObject:
    """``server/discover``: versions and capabilities; the server's identity sits in ``_meta``."""
    return {
        "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
        "capabilities": dict(capabilities),
        "_meta": {SERVER_INFO_META: dict(server_info)},
    }
