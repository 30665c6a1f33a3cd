"""The OAuth / MCP login path: challenges, metadata, registration, PKCE, the token endpoint, the login flow.

Nothing here runs on the request fast path.
"""
