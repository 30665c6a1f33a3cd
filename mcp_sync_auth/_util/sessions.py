"""HTTP sessions for token and registration requests, safe across ``fork()``."""

from __future__ import annotations

import os
from typing import Optional

import requests


class SessionSource:
    """The caller's session if it gave one; else our own, renewed in a forked child so that parent
    and child never share pooled connections (their bytes would interleave on one socket)."""

    def __init__(self, session: Optional[requests.Session] = None) -> None:
        self._given = session
        self._own: Optional[requests.Session] = None
        self._pid = os.getpid()

    def get(self) -> requests.Session:
        if self._given is not None:
            return self._given
        if self._own is None or self._pid != os.getpid():
            self._own = requests.Session()
            self._pid = os.getpid()
        return self._own
