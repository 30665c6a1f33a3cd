"""The MCP client: Streamable HTTP, SSE, sessions and JSON-RPC. It imports nothing of the refresh core."""
