"""The moment a chain's new set can be read, told to waiting processes by the kernel.

A refresh holds the chain's lock from before its grant until after the folder's fsync. A process
woken by the lock's release (:mod:`.release_watch`) therefore learns of the new set one folder fsync
after it could have read it, and on a busy disk that fsync is the slowest step of the whole refresh.
So the holder of the lock also holds a second lock file of the chain, its gate, exclusively: taken just
after the lock, let go the moment the new record has been renamed into place (or with the lock, when
nothing was written). The folder's fsync and the lock's release still follow in that order. A waiting
process blocks on the gate instead of the lock, is woken at the rename, reads the new set (reading
needs no lock: the rename is atomic) and goes on.

The gate only ever wakes somebody. Nothing is decided by who holds it and no grant depends on it: a
holder that cannot take it (a helper of another process has it for an instant, no descriptor left)
goes on without it, and that holder's waiters are woken by the lock's release, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading

from .._util.fork import reset_in_child

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: nobody waits in the kernel there
    fcntl = None  # type: ignore[assignment]

GATE_SUFFIX = ".gate"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Gates:
    """The gates this process holds, by path (one holder per chain at a time: its lock's)."""

    def __init__(self) -> None:
        self._reset_after_fork()
        reset_in_child(self)

    def _reset_after_fork(self) -> None:
        # The child shares the parent's open gates: close its copies (the parent's stay shut).
        for fd in getattr(self, "_held", {}).values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._guard = threading.Lock()
        self._held: dict[str, int] = {}

    def shut(self, path: str) -> bool:
        """Take ``path`` exclusively without waiting; whether this process holds it now."""
        if fcntl is None:
            return False
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        with self._guard:
            self._held[path] = fd
        return True

    def lift(self, path: str) -> None:
        """Let go of ``path`` if this process holds it (at once: the waiters wake now); else nothing."""
        with self._guard:
            fd = self._held.pop(path, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor releases the flock

    def held(self) -> int:
        """How many gates this process holds (for tests)."""
        with self._guard:
            return len(self._held)


GATES = Gates()

__all__ = ["GATES", "GATE_SUFFIX", "Gates"]
