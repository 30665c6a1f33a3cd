"""A bounded map whose reads take no lock: for caches read on every request and written rarely."""

from __future__ import annotations

import threading
from typing import Dict, Generic, Optional, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentMap(Generic[K, V]):
    """At most ``size`` entries; when full, a new one pushes out the oldest written.

    A read is one ``dict.get``, which is atomic: a request on the fast path never waits for a thread
    that is writing. Writes are serialised so that two of them never evict past the bound.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a RecentMap holds at least one entry")
        self._size = size
        self._entries: Dict[K, V] = {}
        self._writing = threading.Lock()

    def get(self, key: K) -> Optional[V]:
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._writing:
            self._entries.pop(key, None)  # written again: it is the newest now
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["RecentMap"]
