"""A clock every process of a run shares: wall time plus an offset held in shared memory.

The parent moves the offset forward to expire every token in every process at the same instant, so a
run has an exact number of expiry events without waiting for them. Latencies are never read from this
clock: they are measured with ``time.perf_counter``.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from typing import Any, Optional

_real_time = time.time  # captured at import, before any worker patches ``time.time`` of a library


class SharedClock:
    """``time.time()`` plus a shared offset; picklable to spawned processes."""

    def __init__(self, offset: Optional[Any] = None) -> None:
        self._offset = offset if offset is not None else multiprocessing.get_context("spawn").Value("d", 0.0)

    def __call__(self) -> float:
        return _real_time() + float(self._offset.value)

    def advance(self, seconds: float) -> None:
        with self._offset.get_lock():
            self._offset.value += seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (SharedClock, (self._offset,))


class TimeModuleShim:
    """Stands in for the ``time`` module inside a third-party module: ``time()`` reads ``clock``,
    everything else is the real module. Used for contenders that have no clock parameter."""

    def __init__(self, clock: SharedClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def patch_library_clocks(prefixes: tuple[str, ...], clock: SharedClock) -> list[str]:
    """Point ``time.time`` of every loaded module under ``prefixes`` at ``clock``; returns their names.

    Only modules that did ``import time`` are touched, and only in the calling (worker) process.
    """
    shim = TimeModuleShim(clock)
    patched = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        if getattr(module, "time", None) is time:
            module.time = shim  # type: ignore[attr-defined]
            patched.append(name)
    return patched
