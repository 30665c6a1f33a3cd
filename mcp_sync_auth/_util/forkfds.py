"""Keep a forked child from holding a chain's lock after its parent died.

``flock`` locks belong to the open file, which ``fork()`` shares with the child. A child forked while
the parent holds a chain's lock (a ``multiprocessing`` "fork" worker, say) keeps the file open, so if
the parent is then killed, the lock stays held for the child's whole life and every other process gets
``LockTimeout``. filelock 3.30 and later close such descriptors in the child themselves; for older
releases (the newest that installs on Python 3.9 is 3.19) we close the child's copies here. Closing the
child's copy does not unlock the parent: the lock lives until the last copy is closed.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading

import filelock


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


NEEDED = _version(getattr(filelock, "__version__", "0")) < (3, 30)
_held: dict[int, int] = {}
_guard = threading.Lock()


def remember(holder: object, lock: filelock.BaseFileLock) -> None:
    """Call in the thread that acquired ``lock`` (filelock keeps the descriptor per thread)."""
    if not NEEDED:
        return
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if isinstance(fd, int):
        with _guard:
            _held[id(holder)] = fd


def forget(holder: object) -> None:
    if NEEDED:
        with _guard:
            _held.pop(id(holder), None)


def _close_in_child() -> None:
    global _guard  # noqa: PLW0603 - a lock held by another thread at fork time is never released here
    _guard = threading.Lock()
    for fd in list(_held.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if NEEDED and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
