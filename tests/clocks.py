"""Clocks that tests move forward instead of sleeping.

``SharedClock`` is wall time plus an offset held in shared memory, so a test can expire every token
in every process at once (the server and all clients read the same offset).
"""

import multiprocessing
import time


class SharedClock:
    def __init__(self, offset=None):
        self._offset = offset if offset is not None else multiprocessing.get_context("spawn").Value("d", 0.0)

    def __call__(self):
        return time.time() + self._offset.value

    def advance(self, seconds):
        with self._offset.get_lock():
            self._offset.value += seconds

    def __reduce__(self):
        return (SharedClock, (self._offset,))


class ManualClock:
    """Time that moves only when the test says so (one process)."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds
