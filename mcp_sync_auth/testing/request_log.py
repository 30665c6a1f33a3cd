"""Every request a test server saw, and every connection it accepted: what proxy tests compare with
the proxy's own record ("every request went through it")."""

from __future__ import annotations

import dataclasses
import threading
from typing import List, Tuple

__all__ = ["LoggedRequest", "RequestLog", "RequestLogSnapshot"]


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    """One request: its method, its path without the query (a client could put a token there), and
    the peer it came from (``host``, ``port``): through a proxy, the proxy's outbound connection."""

    method: str
    path: str
    peer: Tuple[str, int]


@dataclasses.dataclass(frozen=True)
class RequestLogSnapshot:
    requests: Tuple[LoggedRequest, ...]
    connections: Tuple[Tuple[str, int], ...]
    """Peers of the connections accepted (after the TLS handshake, on an HTTPS server)."""

    @property
    def paths(self) -> Tuple[Tuple[str, str], ...]:
        return tuple((request.method, request.path) for request in self.requests)


class RequestLog:
    """Thread-safe: handler threads append, tests read a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: List[LoggedRequest] = []
        self._connections: List[Tuple[str, int]] = []

    def connection(self, peer: Tuple[str, int]) -> None:
        with self._lock:
            self._connections.append(peer)

    def request(self, method: str, path: str, peer: Tuple[str, int]) -> None:
        with self._lock:
            self._requests.append(LoggedRequest(method, path, peer))

    def snapshot(self) -> RequestLogSnapshot:
        with self._lock:
            return RequestLogSnapshot(tuple(self._requests), tuple(self._connections))

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections.clear()
