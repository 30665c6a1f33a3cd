"""Wall-clock phase timing inside worker processes, without touching library code.

It wraps, in the worker process only, the few calls the refresh protocol is made of: taking and
releasing the store's lock, reading the store, reserving room for the next set, the refresh grant
itself, writing the new set (with its fsyncs), the flight leader's whole refresh and the in-process
flight's waiters. cProfile would only see the thread it was enabled in; these timers see every thread.

Two views of the same wrappers:

- :meth:`PhaseTimer.summary`: per phase, the distribution of its durations over the whole run.
- :meth:`PhaseTimer.timeline`: every event with its cycle, its thread and its start and end on
  ``time.perf_counter`` (``CLOCK_MONOTONIC`` on Linux, one clock for every process of the machine), so
  the parent can line up one expiry's events across processes (:mod:`bench.stall_profile`): the holder's
  lock release against the moment each other process saw the new set, say.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from typing import Any, Callable, Iterator, Optional

from mcp_sync_auth._oauth import token_client
from mcp_sync_auth._refresh import manager, singleflight
from mcp_sync_auth._stores import file as store

from .stats import summarize

Event = tuple[int, str, int, float, float]  # (cycle, name, thread ident, start, end), perf_counter seconds


def _store_classes() -> list[tuple[Any, str]]:
    """(store class, label) for the file store and, when redis-py is installed, the Redis store."""
    found: list[tuple[Any, str]] = [(store.FileTokenStore, "file")]
    try:
        from mcp_sync_auth._stores.redis import store as redis_store  # noqa: PLC0415 - optional extra

        found.append((redis_store.RedisTokenStore, "redis"))
    except ImportError:
        pass
    return found


def _reservation_classes() -> list[Any]:
    found: list[Any] = [getattr(store, "FileReservation", None)]
    try:
        from mcp_sync_auth._stores.redis import store as redis_store  # noqa: PLC0415 - optional extra

        found.append(getattr(redis_store, "RedisReservation", None))
    except ImportError:
        pass
    return [cls for cls in found if cls is not None and callable(getattr(cls, "commit", None))]


class PhaseTimer:
    _installed: Optional[PhaseTimer] = None

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.events: list[Event] = []
        self.cycle = -1  # set by the worker's main thread as each cycle starts
        self._guard = threading.Lock()
        self._local = threading.local()
        self._flight_done: dict[int, float] = {}  # id(flight) -> when its leader's work returned

    # -- recording -------------------------------------------------------------------------------

    def add(self, phase: str, seconds: float) -> None:
        with self._guard:
            self.samples.setdefault(phase, []).append(seconds)

    def event(self, name: str, start: float, end: float, phase: Optional[str] = None) -> None:
        with self._guard:
            self.events.append((self.cycle, name, threading.get_ident(), start, end))
            if phase is not None:
                self.samples.setdefault(phase, []).append(end - start)

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.event(name, now, now)

    def summary(self) -> dict[str, dict[str, float]]:
        with self._guard:
            return {phase: {**summarize(values), "total": sum(values)} for phase, values in self.samples.items()}

    def timeline(self) -> list[Event]:
        with self._guard:
            return list(self.events)

    def timed(self, phase: str, function: Callable[..., Any], name: Optional[str] = None) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.event(name or phase, began, time.perf_counter(), phase)

        return wrapper

    # -- installing ------------------------------------------------------------------------------

    @classmethod
    def install(cls) -> PhaseTimer:
        if cls._installed is not None:
            return cls._installed
        timer = cls()
        for owner, label in _store_classes():
            timer._wrap_locks(owner, label)
            # Wrap what exists: a refactored library loses a row in the profile, never the run.
            for name, phase, event in (
                ("load", f"{label} store: read", "read"),
                ("reserve", f"{label} store: reserve room (file: padded temp, fsynced)", "reserve"),
                ("save", f"{label} store: save (outside a refresh)", "save"),
                ("_fsync_directory", f"{label} store: folder fsync", "dir fsync"),
            ):
                if callable(getattr(owner, name, None)):
                    setattr(owner, name, timer.timed(phase, getattr(owner, name), event))
        for reservation in _reservation_classes():
            label = "redis" if "Redis" in reservation.__name__ else "file"
            phase = f"{label} store: write the new set" + (" (write, fsync, rename, folder fsync)" if label == "file"
                                                           else " (compare-and-set script)")
            reservation.commit = timer.timed(phase, reservation.commit, "write")
        if callable(getattr(token_client.TokenEndpointClient, "refresh", None)):
            timer._wrap_grant(token_client.TokenEndpointClient)
        if callable(getattr(manager.TokenManager, "_lead", None)):
            timer._wrap_lead(manager.TokenManager)
        timer._wrap_flight(singleflight.SingleFlight)
        cls._installed = timer
        return timer

    def _wrap_locks(self, owner: Any, label: str) -> None:
        timer = self
        original_lock = getattr(owner, "lock", None)
        if callable(original_lock):

            @contextlib.contextmanager
            def lock(self: Any, key: Any, timeout: float) -> Iterator[None]:
                began = time.perf_counter()
                acquired: Optional[float] = None
                try:
                    with original_lock(self, key, timeout):
                        acquired = time.perf_counter()
                        timer.event("lock acquired", began, acquired, f"{label} store lock: wait to acquire")
                        yield
                finally:  # after the release itself: what a waiting process can first see
                    if acquired is not None:
                        timer.event("lock held", acquired, time.perf_counter(), f"{label} store lock: held")

            owner.lock = lock
        original_try_lock = getattr(owner, "try_lock", None)
        if callable(original_try_lock):

            def try_lock(self: Any, key: Any) -> Any:
                began = time.perf_counter()
                held = original_try_lock(self, key)
                if held is None:
                    return None  # a failed attempt is not a wait (the manager polls), as with lock(key, 0) before
                acquired = time.perf_counter()
                timer.event("lock acquired", began, acquired, f"{label} store lock: wait to acquire")

                @contextlib.contextmanager
                def timed() -> Iterator[None]:
                    try:
                        with held:
                            yield
                    finally:  # after the release itself: what a waiting process can first see
                        timer.event("lock held", acquired, time.perf_counter(), f"{label} store lock: held")

                return timed()

            owner.try_lock = try_lock

    def _wrap_grant(self, owner: Any) -> None:
        timer = self
        original = owner.refresh

        @functools.wraps(original)
        def refresh(*args: Any, **kwargs: Any) -> Any:
            timer._local.granted = True
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer.event("grant", began, time.perf_counter(), "token endpoint: refresh grant")

        owner.refresh = refresh

    def _wrap_lead(self, owner: Any) -> None:
        timer = self
        original = owner._lead

        @functools.wraps(original)
        def lead(*args: Any, **kwargs: Any) -> Any:
            timer._local.granted = False
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                granted = bool(getattr(timer._local, "granted", False))
                # this thread's own CPU time in the lead (as an event from 0): the rest of its wall time it
                # waited for a core or for the GIL
                timer.event("lead cpu", 0.0, time.thread_time() - cpu)
                timer.event("lead: granted" if granted else "lead: adopted", began, time.perf_counter(),
                            "flight leader: whole refresh" + (" (sent the grant)" if granted else
                                                              " (adopted another's set)"))

        owner._lead = lead

    def _wrap_flight(self, owner: Any) -> None:
        """The in-process waiters: how long each waited, and how long after its flight ended (the
        leader published the new set, or its work returned) it ran again (the wake-up)."""
        timer = self
        original_end = getattr(owner, "_end", None)
        original_wait = getattr(owner, "_wait", None)
        if not callable(original_end) or not callable(original_wait):
            return

        def end(self: Any, key: Any, flight: Any) -> Any:
            if not getattr(flight, "done", True):
                # The first end of this flight (a publish, or the work's return), before anyone is
                # woken; a new flight reusing the id overwrites this before any of its waiters wakes.
                with timer._guard:
                    timer._flight_done[id(flight)] = time.perf_counter()
            return original_end(self, key, flight)

        def wait(flight: Any) -> Any:
            began = time.perf_counter()
            try:
                return original_wait(flight)
            finally:
                woke = time.perf_counter()
                with timer._guard:
                    done = timer._flight_done.get(id(flight))
                timer.event("waiter", began, woke, "flight waiter: wait for leader")
                if done is not None:
                    timer.event("in-process wake", done, woke, "flight waiter: wake-up after the flight ended")

        owner._end = end
        owner._wait = staticmethod(wait)
