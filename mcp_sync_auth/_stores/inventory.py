"""What a store holds, file by file: the chains it can read, and a verdict for each entry it cannot.

``records()`` (the :class:`~.protocol.ChainStore` method) lists only the chains a store can read. A
store that can also say which entries it cannot read offers :class:`InspectableStore`: every path
(``token``, ``interactive=False``, ``status``, login) then gives the same verdict for a broken entry
instead of treating it as absent. The methods are optional: :func:`take_inventory` falls back to
``records()`` for a store that only has today's methods.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Protocol, Sequence, Union, runtime_checkable

from .._chain.keys import ChainKey, ChainRecord, RegistrationKey
from ..errors import TokenStoreError
from .protocol import ChainStore

# - corrupt: cannot be parsed, or is not a document we wrote (too large, not JSON, a wrong shape).
#   A lock holder moves it aside, kept for inspection: nobody can use it, and it must not hide a new login.
# - newer: written by a newer mcp-sync-auth. Left exactly as it is; the advice is to upgrade.
# - refused: a file we must not trust (others may read or write it, a symbolic link, not a regular
#   file, another owner). Left alone; the message says what to fix.
Problem = Literal["corrupt", "newer", "refused"]
EntryKind = Literal["chain", "registration"]


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """One stored entry the store cannot use, and the error every path raises for it."""

    location: str  # for people: the file's path, or whatever names it in the store
    name: str  # for the store: what :meth:`InspectableStore.settle` needs to find it again
    kind: EntryKind
    problem: Problem
    error: TokenStoreError
    # The key the entry is for, when it still says so; None when that cannot be told (a file store
    # names a file by a hash of its key, so a file whose content is unreadable names no server).
    key: Optional[Union[ChainKey, RegistrationKey]] = None


@dataclasses.dataclass(frozen=True)
class Inventory:
    records: list[ChainRecord]
    unreadable: list[Unreadable] = dataclasses.field(default_factory=list)


@runtime_checkable
class InspectableStore(Protocol):
    """Optional: a store that reports what it cannot read instead of skipping it."""

    def inventory(self) -> Inventory:
        """Every entry: the readable chains, and a verdict for each unreadable entry. Creates, locks
        and moves nothing."""

    def settle(self, entry: Unreadable, timeout: float) -> Optional[ChainRecord]:
        """Read ``entry`` again and raise its verdict: a corrupt one is moved aside under its lock
        (``CorruptTokenCache``, waiting at most ``timeout`` for the lock), a newer or refused one is
        left alone (``TokenStoreError``). Returns the chain's record when the entry has been replaced
        by a good one meanwhile, None when it is gone (or is a registration that now reads)."""


@runtime_checkable
class BusyProbe(Protocol):
    """Optional: a store that can tell, without taking any lock, that a chain is being refreshed."""

    def refresh_in_flight(self, key: ChainKey) -> bool:
        """Whether another holder is refreshing the chain now (its lock, lease or in-flight mark)."""


@runtime_checkable
class BatchBusyProbe(Protocol):
    """Optional: :class:`BusyProbe` for many chains at once (``status`` over thousands of them), in a
    few reads rather than a few per chain."""

    def refreshes_in_flight(self, keys: Sequence[ChainKey]) -> set[ChainKey]:
        """Those of ``keys`` that another holder is refreshing now."""


def refresh_in_flight(store: ChainStore, key: ChainKey) -> bool:
    """:meth:`BusyProbe.refresh_in_flight`; False for a store that cannot tell."""
    return isinstance(store, BusyProbe) and store.refresh_in_flight(key)


def refreshes_in_flight(store: ChainStore, keys: Sequence[ChainKey]) -> set[ChainKey]:
    """:meth:`BatchBusyProbe.refreshes_in_flight`, or one probe per key for a store without it."""
    if isinstance(store, BatchBusyProbe):
        return store.refreshes_in_flight(keys)
    return {key for key in keys if refresh_in_flight(store, key)}


def take_inventory(store: ChainStore) -> Inventory:
    """The store's inventory; for a store without one, its readable chains and no verdicts."""
    if isinstance(store, InspectableStore):
        return store.inventory()
    return Inventory(store.records())


def settle(store: ChainStore, entry: Unreadable, timeout: float) -> Optional[ChainRecord]:
    """:meth:`InspectableStore.settle` on the store that reported ``entry`` (only such stores report any)."""
    assert isinstance(store, InspectableStore)
    return store.settle(entry, timeout)


__all__ = [
    "BatchBusyProbe",
    "BusyProbe",
    "EntryKind",
    "InspectableStore",
    "Inventory",
    "Problem",
    "Unreadable",
    "refresh_in_flight",
    "refreshes_in_flight",
    "settle",
    "take_inventory",
]
