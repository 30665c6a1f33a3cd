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
    dropped: int = 0
    """Entries not kept because the log was full (a long-running server): then it is not complete."""

    @property
    def paths(self) -> Tuple[Tuple[str, str], ...]:
        return tuple((request.method, request.path) for request in self.requests)


class RequestLog:
    """Thread-safe: handler threads append, tests read a snapshot. At most ``limit`` entries of each
    kind are kept (a demo server may run for hours); the rest are counted in ``dropped``."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._requests: List[LoggedRequest] = []
        self._connections: List[Tuple[str, int]] = []
        self._dropped = 0

    def connection(self, peer: Tuple[str, int]) -> None:
        with self._lock:
            if len(self._connections) < self._limit:
                self._connections.append(peer)
            else:
                self._dropped += 1

    def request(self, method: str, path: str, peer: Tuple[str, int]) -> None:
        with self._lock:
            if len(self._requests) < self._limit:
                self._requests.append(LoggedRequest(method, path, peer))
            else:
                self._dropped += 1

    def snapshot(self) -> RequestLogSnapshot:
        with self._lock:
            return RequestLogSnapshot(tuple(self._requests), tuple(self._connections), self._dropped)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections.clear()
            self._dropped = 0
