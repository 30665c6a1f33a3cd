"""``mcp-sync-auth demo``: the problem and the fix, side by side, in one command.

Two :class:`~mcp_sync_auth.testing.StrictAuthServer` instances on 127.0.0.1 (rotation on every
refresh, reuse revokes the chain), one headless login each, then the same tool calls from
T threads x P processes per side through a few real token expiries: requests-oauthlib's auto-refresh
(one session per thread) against ``MCPAuth`` (one per process, one shared ``FileTokenStore``).
Everything it writes lives in a temporary folder that it removes.

``demo --hosts N`` (:mod:`mcp_sync_auth.demo.fleet`) shows the fleet case instead: N simulated hosts
(own HOME and cache folder each) with a token file copied to every host, then the same hosts sharing
one chain through Redis (``MCP_SYNC_AUTH_STORE=redis://...``).

This package's ``__init__`` holds only the options, so the command line starts fast; ``run_demo``
is in :mod:`mcp_sync_auth.demo.main`.
"""

from .options import DemoOptions, FleetOptions, add_arguments, fleet_from_arguments, from_arguments

__all__ = ["DemoOptions", "FleetOptions", "add_arguments", "fleet_from_arguments", "from_arguments"]
