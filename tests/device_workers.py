"""Worker processes of the device login tests (spawned, so importable)."""

import hashlib

from mcp_sync_auth import FileTokenStore, LoginOptions, MCPAuth, MCPAuthError


def device_login(mcp_url, store_dir, barrier, results):
    """Log in with the device grant at the same moment as the other workers; report a fingerprint
    of the access token this process ends with (or the error)."""
    auth = MCPAuth(mcp_url, store=FileTokenStore(store_dir), login=LoginOptions(method="device"))
    barrier.wait(30)
    try:
        tokens = auth.login()
    except MCPAuthError as exc:
        results.put(("error", type(exc).__name__))
        return
    results.put(("ok", hashlib.sha256(tokens.access_token.encode()).hexdigest()[:12]))
