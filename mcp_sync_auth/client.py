"""The public home of :class:`MCPClient` (``from mcp_sync_auth.client import MCPClient``)."""

from ._mcp.client import MCPClient

__all__ = ["MCPClient"]
