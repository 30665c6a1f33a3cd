"""What the demo's coordinator and its worker processes exchange (picklable, spawn-safe)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import requests
from requests.adapters import HTTPAdapter

__all__ = ["NAIVE", "OURS", "SIDES", "CycleReport", "WorkerConfig", "loopback_session"]

NAIVE = "naive"
OURS = "mcp_sync_auth"
SIDES = (NAIVE, OURS)
TOOL = "echo"


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """One worker process: which side it plays, where the server is, and how much load to make.

    ``token`` and ``client_id`` are for the naive side (every session starts from the logged-in
    token, as if read from one token file); our side reads everything from the store folder.

    ``env`` (``demo --hosts``) is the process's environment as its host gives it: set first thing in
    the worker (None removes a variable). ``store_from_environment``: ``MCPAuth`` without ``store=``,
    so the environment picks the store (``$MCP_SYNC_AUTH_STORE``, else the host's cache folder).
    """

    side: str
    index: int
    mcp_url: str
    threads: int
    cycles: int
    calls: int
    store_dir: Optional[str] = None
    token_endpoint: Optional[str] = None
    client_id: Optional[str] = None
    token: Optional[Dict[str, Any]] = None
    env: Optional[Dict[str, Optional[str]]] = None
    store_from_environment: bool = False


@dataclasses.dataclass(frozen=True)
class CycleReport:
    """One worker process's outcome for one cycle (or its set-up failure, with ``cycle == 0``)."""

    side: str
    index: int
    cycle: int
    ok: int = 0
    failures: Dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    error: Optional[str] = None


def loopback_session(connections: int) -> requests.Session:
    """A session for 127.0.0.1 only: no proxy from the environment may see the demo's traffic, and
    one pooled connection per thread."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_maxsize=max(connections, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
