"""HTTP sessions for metadata, token and registration requests, safe across ``fork()``."""

from __future__ import annotations

from typing import Optional

import requests

from . import fork


def no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A request's ``auth=`` for requests that must carry no token: it replaces a Session-level auth
    (an MCPAuth, .netrc), so discovery and probes never attach one."""
    return request


class SessionSource:
    """The caller's session if it gave one; else our own, dropped in a forked child so that parent
    and child never share pooled connections (their bytes would interleave on one socket)."""

    def __init__(self, session: Optional[requests.Session] = None) -> None:
        self._given = session
        self._own: Optional[requests.Session] = None
        fork.reset_in_child(self)

    def get(self) -> requests.Session:
        if self._given is not None:
            return self._given
        if self._own is None:
            self._own = requests.Session()
        return self._own

    def close(self) -> None:
        """Close our own session (never the caller's); a later ``get`` opens a new one."""
        own, self._own = self._own, None
        if own is not None:
            own.close()

    def _reset_after_fork(self) -> None:
        # The pooled connections stay the parent's; the child opens its own on first use.
        self._own = None
