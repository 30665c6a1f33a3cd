"""What a forked child must not inherit, in one place.

``fork()`` copies the parent's memory but only the calling thread. Whatever another thread was doing
at that moment is frozen in the child: a lock it held is never released, a flight it led never ends,
and a pooled HTTP connection is now shared by two processes (their bytes would interleave on one
socket). Objects holding such state register with :func:`reset_in_child`; after a fork the child
calls their ``_reset_after_fork()``, before any of its own code runs.

Lock descriptors are the other half. ``flock`` locks belong to the open file, which the child shares.
A child forked while the parent holds a chain's lock (a ``multiprocessing`` "fork" worker, say) keeps
the file open, so if the parent is then killed, the lock stays held for the child's whole life and
every other process gets ``LockTimeout``. filelock 3.30 and later close such descriptors in the child
themselves; for older releases (the newest that installs on Python 3.9 is 3.19) :func:`remember`
records them and the child closes its copies. That does not unlock the parent: the lock lives until
the last copy is closed.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from typing import Protocol

import filelock


class Resettable(Protocol):
    def _reset_after_fork(self) -> None:
        """Drop what the parent's other threads left behind; called in the child only."""


_resettable: weakref.WeakSet[Resettable] = weakref.WeakSet()


def reset_in_child(obj: Resettable) -> None:
    """Have ``obj._reset_after_fork()`` called in every child forked while ``obj`` is alive."""
    _resettable.add(obj)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


NEEDED = _version(getattr(filelock, "__version__", "0")) < (3, 30)
_held: dict[int, int] = {}
_guard = threading.Lock()


def remember(lock: filelock.BaseFileLock) -> None:
    """Call in the thread that acquired ``lock`` (filelock keeps the descriptor per thread)."""
    if not NEEDED:
        return
    # ``_context.lock_file_fd`` is private to filelock; it is read only for releases older than 3.30,
    # whose layout is fixed, and never for newer ones.
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if isinstance(fd, int):
        with _guard:
            _held[id(lock)] = fd


def forget(lock: filelock.BaseFileLock) -> None:
    if NEEDED:
        with _guard:
            _held.pop(id(lock), None)


def _after_fork_in_child() -> None:
    global _guard  # noqa: PLW0603 - a lock held by another thread at fork time is never released here
    _guard = threading.Lock()
    for fd in list(_held.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
    for obj in list(_resettable):
        obj._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
