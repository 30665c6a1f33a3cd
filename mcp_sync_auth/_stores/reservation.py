"""Reserve before you spend: room for a chain's next record, secured before its refresh token goes out.

A refresh grant makes the server rotate: from its answer on, the only copy of the chain's new refresh
token is in this process. If the store then cannot take it (a full disk, a quota), the chain dies with
the process. So the refresh protocol first asks the store for a :class:`Reservation`, and sends the
grant only if it gets one. A store that can run out of room makes sure the room exists (the file store
writes and fsyncs a padded temp file of more than the record's size); the answer is then written into
room that is already there.

Stores without :meth:`reserve` (memory, a custom store written before it existed) get
:class:`SaveOnCommit`, whose commit is a plain ``save``.
"""

from __future__ import annotations

import inspect
from typing import Optional, Protocol

from .._chain.keys import ChainRecord
from .protocol import ChainStore


class Reservation(Protocol):
    """Room for one record of one chain. ``commit`` at most once; ``release`` always (a no-op after a
    commit), whether or not the grant was sent."""

    def commit(self, record: ChainRecord) -> None:
        """Write ``record`` atomically as the chain's record, into the reserved room; TokenStoreError
        if even that fails."""

    def release(self) -> None:
        """Give back room that was not used."""


class SaveOnCommit:
    """The reservation of a store that cannot run out of room: commit is ``store.save``."""

    def __init__(self, store: ChainStore) -> None:
        self._store = store

    def commit(self, record: ChainRecord) -> None:
        self._store.save(record)

    def release(self) -> None:
        pass


def reserve(store: ChainStore, current: ChainRecord, *, deadline: Optional[float] = None) -> Reservation:
    """Room for the record that will follow ``current`` (StoreFull if there is none). ``deadline``:
    the longest the grant may take, for a store that must keep others off that long (a lease)."""
    make: Optional[object] = getattr(store, "reserve", None)
    if not callable(make):
        return SaveOnCommit(store)
    takes_deadline = "deadline" in inspect.signature(make).parameters
    reservation: Reservation = make(current, deadline=deadline) if takes_deadline else make(current)
    return reservation


__all__ = ["Reservation", "SaveOnCommit", "reserve"]
