"""Worker processes with an injected full disk (MCP_SYNC_AUTH_FAULTPOINT=reserve or write).

Fault points are read at import, so these run in spawned processes whose environment arms them; each
worker disarms its point half-way (the disk has room again) and reports what it saw."""

import logging

from mcp_sync_auth import MCPAuthError
from mcp_sync_auth._util import faultpoints

from ..workers import make_auth


def _outcome(auth):
    try:
        auth.access_token()
    except MCPAuthError as exc:
        return type(exc).__name__, str(exc)
    return "ok", ""


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def full_disk_then_room(config, clock, results):
    """Two calls while the disk is full, then one with room again."""
    auth = make_auth(config, clock)
    assert faultpoints.ARMED
    seen = [_outcome(auth), _outcome(auth)]
    faultpoints._chances.clear()  # the disk has room again
    seen.append(_outcome(auth))
    results.put(seen)


def write_fails_after_the_grant(config, clock, results):
    """The grant succeeds and its answer cannot be written; later the write works again."""
    lines = _Lines()
    logging.getLogger("mcp_sync_auth").addHandler(lines)
    auth = make_auth(config, clock)
    first = _outcome(auth)
    still_failing = _outcome(auth)  # the token works from memory; the write is retried and fails
    faultpoints._chances.clear()
    after = _outcome(auth)  # retried and stored
    results.put({"outcomes": [first, still_failing, after], "lines": lines.lines})
