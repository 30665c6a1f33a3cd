"""Wall-clock phase timing inside worker processes (``--profile``), without touching library code.

It wraps, in the worker process only, the few calls the refresh protocol is made of: taking the store's
lock, reading and writing the store, the refresh grant itself, and waiting on the in-process flight.
cProfile would only see the thread it was enabled in; these timers see every thread.
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


class PhaseTimer:
    _installed: Optional[PhaseTimer] = None

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._guard = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        with self._guard:
            self.samples.setdefault(phase, []).append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        with self._guard:
            return {phase: {**summarize(values), "total": sum(values)} for phase, values in self.samples.items()}

    def timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(phase, time.perf_counter() - began)

        return wrapper

    @classmethod
    def install(cls) -> PhaseTimer:
        if cls._installed is not None:
            return cls._installed
        timer = cls()
        original_lock = store.FileTokenStore.lock

        @contextlib.contextmanager
        def lock(self: Any, key: Any, timeout: float) -> Iterator[None]:
            began = time.perf_counter()
            with original_lock(self, key, timeout):
                acquired = time.perf_counter()
                timer.add("store lock: wait to acquire", acquired - began)
                try:
                    yield
                finally:
                    timer.add("store lock: held", time.perf_counter() - acquired)

        store.FileTokenStore.lock = lock  # type: ignore[method-assign]
        original_try_lock = store.FileTokenStore.try_lock

        def try_lock(self: Any, key: Any) -> Any:
            began = time.perf_counter()
            held = original_try_lock(self, key)
            if held is None:
                return None  # a failed attempt is not a wait (the manager polls), as with lock(key, 0) before
            acquired = time.perf_counter()
            timer.add("store lock: wait to acquire", acquired - began)

            @contextlib.contextmanager
            def timed() -> Iterator[None]:
                with held:
                    try:
                        yield
                    finally:
                        timer.add("store lock: held", time.perf_counter() - acquired)

            return timed()

        store.FileTokenStore.try_lock = try_lock  # type: ignore[method-assign]
        # Wrap what exists: a refactored library loses a row in the profile, never the run.
        targets = (
            (store.FileTokenStore, "load", "store: read"),
            (store.FileTokenStore, "save", "store: atomic write (fsync)"),
            (token_client.TokenEndpointClient, "refresh", "token endpoint: refresh grant"),
            (manager.TokenManager, "_lead", "flight leader: whole refresh"),
        )
        for owner, name, phase in targets:
            if callable(getattr(owner, name, None)):
                setattr(owner, name, timer.timed(phase, getattr(owner, name)))
        if callable(getattr(singleflight.SingleFlight, "_wait", None)):
            wait = timer.timed("flight waiter: wait for leader", singleflight.SingleFlight._wait)
            singleflight.SingleFlight._wait = staticmethod(wait)  # type: ignore[method-assign]
        cls._installed = timer
        return timer
