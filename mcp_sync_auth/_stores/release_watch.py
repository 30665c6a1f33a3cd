"""Waiting for another process to let go of a lock file, woken by the kernel rather than a timer.

A process that finds a chain's lock held waits for its holder to finish. Polling the lock costs CPU
that the holder needs and learns of the release late. Instead a helper thread blocks in
``flock(LOCK_SH)`` on its own descriptor of the lock file: the kernel wakes it the moment no exclusive
holder is left. It drops the shared lock at once (it only wanted the moment) and tells every waiter
of this process. The waiter then reads the store or takes the exclusive lock as before: nobody ever
acts on what this thread got.

The time bound stays with the caller, who waits on a ``threading.Event``. A ``flock`` call cannot
be given a timeout, so a helper whose caller gave up stays blocked until the holder lets go (or dies:
the kernel releases a dead process's locks). There is never more than one such thread per lock file
per process: later waiters join the one already blocked instead of starting another. Whatever it
gets after its callers are gone it releases at once, so it never keeps anyone from the lock.

A waiter that wants the chain's new set rather than its lock waits on the chain's gate first
(:mod:`.wake_gate`), which the holder lets go at the rename: the helper takes it shared without
blocking to see whether anyone announces a set at all. If the gate is shut it blocks there; if it is
open (the holder has not shut it yet, has shown its set already, or could not take it) it waits for the
lock's release instead, exactly as a waiter for the lock does.

Only where ``fcntl.flock`` exists (POSIX); elsewhere :func:`supported` is False and callers poll.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Optional

from .._util.fork import reset_in_child

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def supported() -> bool:
    return fcntl is not None and hasattr(fcntl, "flock")


class _Round:
    """One blocked helper and the waiters it will wake: fired once, when the lock is free."""

    __slots__ = ("failed", "fd", "free")

    def __init__(self) -> None:
        self.free = threading.Event()
        self.failed = False  # the kernel refused the wait: callers fall back to their pauses
        self.fd: Optional[int] = None


class ReleaseWatch:
    """The rounds of this process, by lock file path."""

    def __init__(self) -> None:
        self._reset_after_fork()
        reset_in_child(self)

    def _reset_after_fork(self) -> None:
        # A helper of the parent does not exist in the child, but its descriptor does: close the copy
        # (that never unlocks the parent's, the lock lives until its last descriptor is closed).
        old = getattr(self, "_rounds", {})
        for waiting in old.values():
            if waiting.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(waiting.fd)
        self._guard = threading.Lock()
        self._rounds: dict[str, _Round] = {}

    def wait(self, path: str, timeout: float, gate: Optional[str] = None) -> Optional[bool]:
        """Block until no process holds ``path`` exclusively, ``timeout`` seconds at most; with a
        ``gate``, until that gate opens if it is shut now, else until ``path`` is free.

        True: the lock was free (or the gate opened) at some moment after the call began: look at the
        store now. False: the time ran out. None: the kernel could not wait (the caller pauses)."""
        waiting = self._round_for(path, gate)
        if not waiting.free.wait(max(timeout, 0.0)):
            return False
        return None if waiting.failed else True

    def blocked(self) -> int:
        """How many helpers are blocked now (for tests)."""
        with self._guard:
            return len(self._rounds)

    def _round_for(self, path: str, gate: Optional[str]) -> _Round:
        # Waiters for the set and waiters for the lock are woken at different moments: separate rounds.
        name = path if gate is None else gate
        with self._guard:
            waiting = self._rounds.get(name)
            if waiting is not None:
                return waiting
            waiting = self._rounds[name] = _Round()
        helper = threading.Thread(
            target=self._block, args=(name, path, gate, waiting), name="mcp-sync-auth-lock-wait", daemon=True
        )
        try:
            helper.start()
        except RuntimeError:  # no thread to be had (interpreter shutting down): callers poll
            self._fire(name, waiting, failed=True)
        return waiting

    def _block(self, name: str, path: str, gate: Optional[str], waiting: _Round) -> None:
        failed = False
        try:
            if gate is None or not self._wait_shared(gate, waiting, only_if_shut=True):
                self._wait_shared(path, waiting, only_if_shut=False)
        except OSError:
            failed = True
        finally:
            self._fire(name, waiting, failed=failed)

    @staticmethod
    def _wait_shared(path: str, waiting: _Round, *, only_if_shut: bool) -> bool:
        """Take ``path`` shared and give it back at once: the moment no exclusive holder is left.
        ``only_if_shut``: return False at once, having waited for nothing, if it is not held now."""
        # O_CREAT: the lock file may not exist yet; the same mode as filelock gives it.
        fd = waiting.fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o600)
        try:
            if only_if_shut:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # shut: wait below for it to open
                else:
                    return False  # (closing the descriptor gives the shared lock back)
            fcntl.flock(fd, fcntl.LOCK_SH)
            # Got it: the exclusive holder is gone. Give it back before anyone is told.
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            waiting.fd = None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _fire(self, name: str, waiting: _Round, *, failed: bool) -> None:
        with self._guard:
            # Out of the table first: a waiter that comes after this starts a new round, it never
            # joins one whose moment has passed.
            if self._rounds.get(name) is waiting:
                del self._rounds[name]
            waiting.failed = failed
            waiting.free.set()


WATCH = ReleaseWatch()

__all__ = ["WATCH", "ReleaseWatch", "supported"]
