"""What this process remembers about each chain, bounded so that a process serving many users does not
grow forever.

A chain's memory (:class:`ChainMemory`) holds its current token set, and sometimes a rotated set the
store refused (``unsaved``). Everything but ``unsaved`` can be read again from the store, so the
registry keeps three kinds of reference, and a memory lives while any of them holds it:

- **recent**: an LRU of the last :data:`bound` chains looked up (``MCP_SYNC_AUTH_CHAIN_MEMORY``,
  default 4096; :func:`set_bound` changes it). Only this part is ever evicted.
- **unsaved**: every memory holding a set only this process has. Never evicted: dropping it would
  lose the chain (the store still holds the spent refresh token). It leaves when a write succeeds.
- **live**: a weak map of every memory still referenced anywhere, above all by a ``TokenManager``.

Why the weak map: a manager keeps a direct reference to its memory (the fast path reads it with no
lock and no lookup). If the LRU evicts that memory while the manager lives, and another manager of the
chain then asked for a new one, the chain would have two memories: a refresh by one would be unseen
by the other, which would spend the refresh token already spent (the one-grant rule broken), and an
``unsaved`` set could be lost. So a lookup finds any memory still alive, recent or not, and puts it
back in the LRU; only a memory nobody references any more is dropped, and the next manager of that
chain reads the store. A flight in progress holds its manager, so its memory is never split.

Recency is approximate on purpose: the fast path does not touch the LRU (that takes its lock). A
chain is marked recent when a manager is created for it and when a refresh, adoption or write
changes its memory. A busy chain served only by the fast path may fall out of the LRU; its manager
keeps it alive and shared meanwhile, and it costs one store read after the last manager is gone.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from typing import Hashable, Optional

import cachetools

from .._chain.keys import ChainRecord
from .._chain.tokens import TokenSet
from .._util.fork import reset_in_child
from ..errors import ConfigurationError

ENV_BOUND = "MCP_SYNC_AUTH_CHAIN_MEMORY"
DEFAULT_BOUND = 4096


@dataclasses.dataclass(eq=False)
class ChainMemory:
    """What this process knows about a chain. Attributes are replaced whole, never mutated in place,
    so the fast path can read them without a lock."""

    key: Hashable
    registry: ChainMemories = dataclasses.field(repr=False)
    current: Optional[TokenSet] = None
    # After an early refresh found another process refreshing, wait this long (monotonic) before the
    # next attempt: the current token still works, and each attempt reads the store.
    early_retry_at: float = 0.0
    # A rotated set the store could not take: the chain's newest record, in this process only, until
    # a write succeeds. Nothing older than it may be adopted or spent meanwhile. Set it through
    # :meth:`keep_unsaved` and :meth:`stored`, which pin and unpin the memory.
    unsaved: Optional[ChainRecord] = None

    def keep_unsaved(self, record: ChainRecord) -> None:
        self.registry.pin(self)
        self.unsaved = record

    def stored(self) -> None:
        """The store holds the chain's newest set (or a login replaced it): nothing to pin any more."""
        self.unsaved = None
        self.registry.unpin(self)

    def touch(self) -> None:
        """Mark the chain recently used (a slow-path event: takes the registry's lock)."""
        self.registry.touch(self)


class ChainMemories:
    """The registry: one :class:`ChainMemory` per (store identity, chain key) alive at a time."""

    def __init__(self, bound: int) -> None:
        self._bound = _checked_bound(bound)
        self._reset_after_fork()
        reset_in_child(self)

    def _reset_after_fork(self) -> None:
        # Keep what the parent knew (the child goes on with the same tokens), but not its lock, which
        # another thread of the parent may have held at the fork.
        self._guard = threading.Lock()
        if not hasattr(self, "_recent"):
            self._recent: cachetools.LRUCache[Hashable, ChainMemory] = cachetools.LRUCache(self._bound)
            self._unsaved: dict[Hashable, ChainMemory] = {}
            self._live: weakref.WeakValueDictionary[Hashable, ChainMemory] = weakref.WeakValueDictionary()

    def memory_for(self, key: Hashable) -> ChainMemory:
        """The chain's memory: the live one if any manager or flight still holds it, else a new one."""
        with self._guard:
            memory = self._live.get(key)
            if memory is None:
                memory = ChainMemory(key, self)
                self._live[key] = memory
            self._recent[key] = memory
            return memory

    def touch(self, memory: ChainMemory) -> None:
        with self._guard:
            if self._live.get(memory.key) is memory:
                self._recent[memory.key] = memory

    def pin(self, memory: ChainMemory) -> None:
        with self._guard:
            self._unsaved[memory.key] = memory
            self._recent[memory.key] = memory

    def unpin(self, memory: ChainMemory) -> None:
        with self._guard:
            if self._unsaved.get(memory.key) is memory:
                del self._unsaved[memory.key]

    def forget(self, memory: ChainMemory) -> None:
        """Drop the chain from the recent ones (a logout); managers that hold it keep it."""
        with self._guard:
            if self._recent.get(memory.key) is memory:
                del self._recent[memory.key]

    @property
    def bound(self) -> int:
        return self._bound

    def set_bound(self, bound: int) -> None:
        with self._guard:
            self._bound = _checked_bound(bound)
            recent: cachetools.LRUCache[Hashable, ChainMemory] = cachetools.LRUCache(self._bound)
            old = self._recent
            while old:  # least recent first, so that the most recent ones are those kept
                key, memory = old.popitem()
                recent[key] = memory
            self._recent = recent

    def sizes(self) -> dict[str, int]:
        """How many memories each part holds now (for tests and the benchmark)."""
        with self._guard:
            return {"recent": len(self._recent), "unsaved": len(self._unsaved), "live": len(self._live)}

    def clear(self) -> None:
        """Forget every chain not pinned by an unsaved set or held by a manager (for tests)."""
        with self._guard:
            self._recent.clear()


def _checked_bound(bound: object) -> int:
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise ConfigurationError(f"the chain memory bound must be a whole number of chains, at least 1, not {bound!r}")
    return bound


def _bound_from_environment() -> int:
    raw = os.environ.get(ENV_BOUND, "").strip()
    if not raw:
        return DEFAULT_BOUND
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{ENV_BOUND} must be a whole number of chains, at least 1, not {raw!r}")
    return value


MEMORIES = ChainMemories(_bound_from_environment())


def set_bound(bound: int) -> None:
    """How many recently used chains each process keeps in memory beyond those in use (default 4096)."""
    MEMORIES.set_bound(bound)


__all__ = ["DEFAULT_BOUND", "ENV_BOUND", "MEMORIES", "ChainMemories", "ChainMemory", "set_bound"]
