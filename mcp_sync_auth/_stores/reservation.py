"""Reserve before you spend: room for a chain's next record, secured before its refresh token goes out.

A refresh grant makes the server rotate: from its answer on, the only copy of the chain's new refresh
token is in this process. If the store then cannot take it (a full disk, a quota), the chain dies with
the process. So the refresh protocol first asks the store for a :class:`Reservation`, and sends the
grant only if it gets one. A store that can run out of room makes sure the room exists (the file store
writes and fsyncs a padded temp file of more than the record's size); the answer is then written into
room that is already there.

Stores without :meth:`reserve` (memory, a custom store written before it existed) get
:class:`SaveOnCommit`, whose commit is a plain ``save``.

A commit may be told whom to call the moment the new record is visible to every reader
(``on_visible``): the file store calls it after the rename, before the folder's fsync, so the threads
waiting in this process for the set go on while that fsync runs (RELIABILITY.md says why this loses
nothing). :func:`commit` calls it after the whole commit for a reservation that does not take it.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Protocol

from .._chain.keys import ChainRecord
from .protocol import ChainStore

Visible = Callable[[], None]
"""Called once by a commit, when the new record is visible to every reader (not yet durable)."""


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

    def commit(self, record: ChainRecord, on_visible: Optional[Visible] = None) -> None:
        self._store.save(record)
        if on_visible is not None:
            on_visible()

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


def commit(room: Reservation, record: ChainRecord, on_visible: Visible) -> None:
    """``room.commit(record)``, calling ``on_visible`` as soon as the record can be read: from inside
    the commit where the reservation offers it, else once the commit has returned."""
    method = room.commit
    if "on_visible" in inspect.signature(method).parameters:
        method(record, on_visible=on_visible)  # type: ignore[call-arg]
        return
    method(record)
    on_visible()


__all__ = ["Reservation", "SaveOnCommit", "Visible", "commit", "reserve"]
