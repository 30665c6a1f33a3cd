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
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, TypeVar

from ..errors import RefreshInterrupted

log = logging.getLogger(__name__)

T = TypeVar("T")


_CANCELLED = "the refresh was interrupted before any grant was sent; the chain is intact"


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
            done.wait()
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


__all__ = ["check", "point_of_no_return", "shielded"]
