"""Warnings that repeat collapse into one line per interval.

A thread pool whose server is down calls the auth hundreds of times a second, and each call would log
the same "early refresh failed" line. The first line of a kind is what a reader needs; the rest only
bury it. A kind is (logger, subject, cause): the same chain failing for the same reason. Another chain,
or the same chain failing for another reason, is news and is logged at once.

Lines held back are counted, and the next line of that kind to pass says how many there were, so
nothing is hidden without a trace.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

from cachetools import LRUCache

from .fork import reset_in_child

# Once per kind per minute: often enough that a problem that goes on is seen to go on.
DEFAULT_INTERVAL = 60.0
# Kinds remembered at once. A process with more distinct failing chains than this logs more often, never less.
_KINDS = 4096


class _Kind:
    __slots__ = ("held", "last")

    def __init__(self, last: float) -> None:
        self.last = last
        self.held = 0


class WarningLimiter:
    """Lets the first line of each kind through, then at most one per ``interval`` seconds."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._kinds: LRUCache[Hashable, _Kind] = LRUCache(maxsize=_KINDS)
        self._guard = threading.Lock()
        reset_in_child(self)

    def admit(self, kind: Hashable) -> tuple[bool, int]:
        """Whether a line of ``kind`` may be logged now, and how many were held back before it."""
        now = self._clock()
        with self._guard:
            seen = self._kinds.get(kind)
            if seen is None:
                self._kinds[kind] = _Kind(now)
                return True, 0
            if now - seen.last >= self.interval:
                held, seen.held, seen.last = seen.held, 0, now
                return True, held
            seen.held += 1
            return False, 0

    def log(
        self,
        logger: logging.Logger,
        level: int,
        subject: Hashable,
        cause: Hashable,
        message: str,
        *args: object,
    ) -> None:
        if not logger.isEnabledFor(level):
            return
        admitted, held = self.admit((logger.name, level, subject, cause))
        if not admitted:
            return
        if held:
            message += " (%d more like this held back)"
            args = (*args, held)
        logger.log(level, message, *args)

    def _reset_after_fork(self) -> None:
        # The guard may have been held by a parent thread at the fork; the child starts afresh.
        self._guard = threading.Lock()
        self._kinds = LRUCache(maxsize=_KINDS)


default_limiter = WarningLimiter()


def warn_limited(
    logger: logging.Logger,
    subject: Hashable,
    cause: Hashable,
    message: str,
    *args: object,
    level: int = logging.WARNING,
) -> None:
    """``logger.log(level, message, *args)``, at most once per interval for this subject and cause."""
    # Looked up at each call, so a test can put a limiter on a clock of its own in place.
    default_limiter.log(logger, level, subject, cause, message, *args)


def cause_of(exc: BaseException) -> Hashable:
    """What makes two failures the same failure: the exception's type and, for a refused grant, the
    OAuth error code and HTTP status. Never the message, which may carry a changing detail."""
    return (type(exc).__name__, getattr(exc, "error_code", None), getattr(exc, "status_code", None))
