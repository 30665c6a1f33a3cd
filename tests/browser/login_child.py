"""A program that logs in the way a person's program does: ``MCPAuth(url).login()``, nothing injected.

Run as ``python -m tests.browser.login_child MCP_URL STORE_DIR TIMEOUT [CLIENT_ID REDIRECT_URI]``. How the
person is reached is MCPAuth's own choice: ``$BROWSER`` names the browser. Prints ``LOGGED-IN`` or
``FAILED <error class> <error_code> <message>`` (exit 3).
"""

import sys

from mcp_sync_auth import FileTokenStore, LoginOptions, MCPAuth
from mcp_sync_auth.errors import MCPAuthError


def main(argv):
    url, store_dir, timeout = argv[0], argv[1], float(argv[2])
    client = {"client_id": argv[3], "redirect_uri": argv[4]} if len(argv) > 3 else {}
    auth = MCPAuth(url, store=FileTokenStore(store_dir), login=LoginOptions(timeout=timeout), **client)
    try:
        auth.login()
    except MCPAuthError as exc:
        print("FAILED", type(exc).__name__, getattr(exc, "error_code", None), exc, flush=True)
        return 3
    print("LOGGED-IN", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
