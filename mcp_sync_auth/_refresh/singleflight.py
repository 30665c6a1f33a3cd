"""Per-key leader/waiter coordination inside one process.

The first caller for a key becomes the leader and runs the work; callers that arrive while it runs
wait on that flight's ``threading.Condition`` and receive the leader's result, or a copy of the
leader's error. A waiter never runs the work itself. When the flight ends, the next caller starts a
new one.

A leader may end its flight early with :meth:`SingleFlight.publish`, from inside its work: the
waiters go on with that result while the leader finishes what only it needs (the refresh publishes
once the new set is visible in the store, and then fsyncs the folder and releases the lock).
"""

from __future__ import annotations

import copy
import threading
from typing import Callable, Generic, Hashable, Optional, TypeVar

from .._util import fork
from ..errors import MCPAuthError

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "ended", "error", "leader", "result", "waiters")

    def __init__(self) -> None:
        self.leader = threading.get_ident()
        self.ended = threading.Condition(threading.Lock())  # guards done; notified once, when done
        self.done = False
        self.result: Optional[T] = None
        self.error: Optional[BaseException] = None
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Coalesces concurrent calls per key. Safe across ``fork()``: a child starts with no flights."""

    def __init__(self) -> None:
        self._reset_after_fork()
        fork.reset_in_child(self)

    def _reset_after_fork(self) -> None:
        # Threads that were leading or waiting in the parent do not exist in a child; their flights
        # would never end there. (Also the initial state.)
        self._guard = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        with self._guard:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if leading:
            return self._lead(key, flight, work)
        return self._wait(flight)

    def in_flight(self, key: Hashable) -> bool:
        """Whether a flight for the key is running now."""
        with self._guard:
            return key in self._flights

    def waiting(self, key: Hashable) -> int:
        """How many callers wait on the key's flight now (-1 when none is in flight); for tests."""
        with self._guard:
            flight = self._flights.get(key)
            return -1 if flight is None else flight.waiters

    def publish(self, key: Hashable, result: T) -> bool:
        """End the key's flight now with ``result``, waking its waiters; only its leader may, from
        inside its work, which goes on (its own caller gets what the work returns, as ever). Whether
        there was such a flight."""
        with self._guard:
            flight = self._flights.get(key)
        if flight is None or flight.leader != threading.get_ident():
            return False
        flight.result = result
        self._end(key, flight)
        return True

    def _lead(self, key: Hashable, flight: _Flight[T], work: Callable[[], T]) -> T:
        try:
            result = work()
        except BaseException as exc:
            if not flight.done:  # published already: the waiters have their result
                flight.error = exc
            raise
        else:
            if not flight.done:
                flight.result = result
            return result
        finally:
            self._end(key, flight)

    def _end(self, key: Hashable, flight: _Flight[T]) -> None:
        # Remove the flight before waking anyone: a caller that arrives after this point starts a
        # new flight (and sees whatever the work stored), it never joins a finished one.
        with self._guard:
            if self._flights.get(key) is flight:
                del self._flights[key]
        with flight.ended:
            flight.done = True
            flight.ended.notify_all()

    @staticmethod
    def _wait(flight: _Flight[T]) -> T:
        with flight.ended:
            flight.ended.wait_for(lambda: flight.done)
        if flight.error is not None:
            raise _for_waiter(flight.error)
        return flight.result  # type: ignore[return-value]


def _for_waiter(error: BaseException) -> BaseException:
    """Each waiter raises its own copy, so tracebacks of different threads do not pile onto one object.

    A leader interrupted by KeyboardInterrupt or SystemExit must not stop every waiting thread too:
    they get an ordinary error instead.
    """
    if not isinstance(error, Exception):
        return MCPAuthError(f"the refresh was interrupted in another thread ({type(error).__name__})")
    try:
        twin = copy.copy(error)
    except Exception:
        # Every error of ours copies (tests/refresh/test_singleflight.py checks each class). Only a
        # foreign type whose constructor copy cannot call (a custom store's, say) lands here: the
        # waiters share the leader's object rather than get an error of another type.
        return error
    twin.__cause__ = error.__cause__
    twin.__traceback__ = None
    return twin
