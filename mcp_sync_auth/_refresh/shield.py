"""Grants shielded from Ctrl-C: an interrupt never abandons a grant already sent.

Python raises ``KeyboardInterrupt`` (and ``SystemExit``, from a signal handler that calls
``sys.exit``) only in the main thread, between any two bytecodes. Landing while a refresh grant waits
for its answer, it would throw away the only copy of the rotated refresh token and kill the chain.

So a refresh started on the main thread runs in a helper thread, and the main thread waits for it:

- an interrupt that comes before the helper reaches :func:`point_of_no_return` cancels the work (the
  helper stops at its next :func:`check` and sends nothing) and goes on to the program at once;
- an interrupt that comes after it waits: the grant finishes (within its timeouts), its result is
  stored, every waiter of the flight gets it, and only then is the interrupt raised.

Helper threads never receive these interrupts, so work started off the main thread runs as it is.
But the interrupt ends the program, and at its exit Python stops daemon threads wherever they are,
a grant in flight included. So every grant is registered while it is in flight
(:func:`grant_in_flight`), and an ``atexit`` hook makes the exit wait for those under way (each
within its deadline) and lets no new one start.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from typing import Callable, Iterator, Optional, TypeVar

from .._util.fork import reset_in_child
from ..errors import RefreshInterrupted

log = logging.getLogger(__name__)

T = TypeVar("T")


_CANCELLED = "the refresh was interrupted before any grant was sent; the chain is intact"
_EXITING = "the program is exiting: no new refresh grant is sent, and the chain is intact"


class _Gate:
    """Decides, once, between "cancelled before the grant" and "the grant goes out"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = False
        self.committed = False

    def commit(self) -> None:
        with self._lock:
            if self.cancelled:
                raise RefreshInterrupted(_CANCELLED)
            self.committed = True

    def cancel(self) -> bool:
        """Cancel unless the grant is already out; whether it was cancelled."""
        with self._lock:
            if not self.committed:
                self.cancelled = True
            return self.cancelled


_SIGNAL_CHECK_SECONDS = 0.1

_local = threading.local()


def _gate() -> Optional[_Gate]:
    gate: Optional[_Gate] = getattr(_local, "gate", None)
    return gate


def point_of_no_return() -> None:
    """Called right before a grant (and its reservation): from here on, an interrupt waits for the
    work to finish. Raises :class:`RefreshInterrupted` if it came first."""
    gate = _gate()
    if gate is not None:
        gate.commit()


class _InFlight:
    """The grants under way in this process, each with the moment after which nobody waits for it."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.deadlines: dict[int, tuple[float, str]] = {}
        self.exiting = False
        self._next = 0

    def enter(self, what: str, longest: float) -> int:
        with self.changed:
            if self.exiting:
                raise RefreshInterrupted(_EXITING)
            self._next += 1
            self.deadlines[self._next] = (time.monotonic() + longest, what)
            return self._next

    def leave(self, ticket: int) -> None:
        with self.changed:
            del self.deadlines[ticket]
            self.changed.notify_all()

    def finish_at_exit(self) -> None:
        """Let no grant start, and wait for those under way (each until its deadline at most)."""
        with self.changed:
            self.exiting = True
            if self.deadlines:
                log.warning(
                    "exiting: waiting for the refresh grant of %s to be answered and stored first",
                    ", ".join(sorted({what for _, what in self.deadlines.values()})),
                )
            while self.deadlines:
                left = max(deadline for deadline, _ in self.deadlines.values()) - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def _reset_after_fork(self) -> None:
        # The child runs none of the parent's grants; it may start its own.
        self.changed = threading.Condition(threading.Lock())
        self.deadlines = {}


_in_flight = _InFlight()
reset_in_child(_in_flight)
atexit.register(_in_flight.finish_at_exit)


@contextlib.contextmanager
def grant_in_flight(what: str, longest: float) -> Iterator[None]:
    """The point of no return of one grant, and its span: from here until its answer is stored, an
    interrupt waits (on the main thread) and so does the program's exit (``longest`` seconds at most).
    Raises :class:`RefreshInterrupted` if the caller was interrupted first, or the program is exiting."""
    point_of_no_return()
    ticket = _in_flight.enter(what, longest)
    try:
        yield
    finally:
        _in_flight.leave(ticket)


def check() -> None:
    """Called in waits before the grant: stop if the caller was interrupted."""
    gate = _gate()
    if gate is not None and gate.cancelled:
        raise RefreshInterrupted(_CANCELLED)


def shielded(work: Callable[[], T], what: str) -> T:
    """``work()``, shielded from interrupts of the main thread as the module says. ``what`` names the
    chain in the one line logged when an interrupt has to wait."""
    if threading.current_thread() is not threading.main_thread():
        return work()
    gate = _Gate()
    done = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        _local.gate = gate
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed over to the waiting caller whole
            outcome["error"] = exc
        finally:
            done.set()

    helper = threading.Thread(target=run, name="mcp-sync-auth-refresh", daemon=True)
    interrupt: Optional[BaseException] = None
    started = False
    while True:
        try:
            if not started:
                started = True
                helper.start()
            # Short waits, not one long one: a signal that the kernel hands to another thread only
            # flags the main thread, whose handler runs when its wait returns. One unbounded wait
            # would hold a Ctrl-C back until the whole refresh (lock wait included) had ended.
            while not done.wait(_SIGNAL_CHECK_SECONDS):
                pass
            break
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: whatever a signal handler raised
            if gate.cancel():
                raise  # nothing was sent: the helper stops before its grant
            if interrupt is None:
                interrupt = exc
                log.warning(
                    "interrupted while the refresh grant of %s is in flight: finishing it first, "
                    "or the rotated refresh token (and the chain) would be lost",
                    what,
                )
    if interrupt is not None:
        raise interrupt
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    return outcome["result"]  # type: ignore[return-value]


__all__ = ["check", "grant_in_flight", "point_of_no_return", "shielded"]
