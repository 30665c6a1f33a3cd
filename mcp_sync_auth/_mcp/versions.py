"""MCP protocol revisions this client speaks, and the names the wire uses for them."""

from __future__ import annotations

__all__ = [
    "CLIENT_CAPABILITIES_META",
    "CLIENT_INFO_META",
    "LATEST_SESSION_VERSION",
    "PROTOCOL_VERSION_META",
    "SERVER_INFO_META",
    "SESSION_VERSIONS",
    "STATELESS_VERSIONS",
    "SUPPORTED_VERSIONS",
    "is_stateless",
]

# Revisions with an initialize handshake and optional sessions, newest first.
SESSION_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_SESSION_VERSION = SESSION_VERSIONS[0]
# Revisions where every request carries its version and capabilities in params._meta.
STATELESS_VERSIONS = ("2026-07-28",)
SUPPORTED_VERSIONS = STATELESS_VERSIONS + SESSION_VERSIONS

PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"


def is_stateless(version: str) -> bool:
    return version in STATELESS_VERSIONS
