"""Waiters learn of a commit from Redis pub/sub, not by polling the record.

One subscriber thread per store and process listens on the pattern of every chain's channel and
counts the messages per chain (a commit, a delete, a lease released). A waiter remembers the count
it last saw and sleeps until it moves, or its pause runs out: the pause is only a safety net while
the subscription is live. Until Redis has confirmed it (the feed is starting, or reconnecting),
messages may be missed, so waits are cut to a short poll meanwhile.

The pattern brings the messages of every chain of the fleet, most of which this process never uses.
So only the chains it has asked about are counted, the most recent :data:`REMEMBERED` of them, plus
every chain somebody waits on now. A count that was dropped starts again at 0: a waiter whose count it
was sees it move and looks at the store once more, which is always safe.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Optional

from cachetools import LRUCache

from ..._util.fork import reset_in_child
from ..._util.logs import warn_limited

log = logging.getLogger(__name__)

_RECONNECT_PAUSE = 0.5
# The longest wait while the subscription is not confirmed (a message may be missed then).
_UNCONFIRMED_POLL = 0.01
# How many chains' counts a process keeps besides those waited on now.
REMEMBERED = 4096


class ChangeFeed:
    """Counts the change messages of each chain (by its stem) seen since the feed started."""

    def __init__(self, subscribe: Callable[[], Any], pattern: str, stem_of: Callable[[str], Optional[str]]) -> None:
        self._subscribe = subscribe  # a new redis-py PubSub
        self._pattern = pattern
        self._stem_of = stem_of
        self._changed = threading.Condition()
        self._counts: LRUCache[str, int] = LRUCache(maxsize=REMEMBERED)
        self._waited: dict[str, int] = {}  # stem -> how many wait on it now (always counted)
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._live = False  # Redis confirmed the subscription, and it has not failed since
        reset_in_child(self)

    def count(self, stem: str) -> int:
        """The chain's count now; from this call on its messages are counted (see above)."""
        self._start()
        with self._changed:
            return self._counted(stem)

    def wait(self, stem: str, seen: int, timeout: float) -> int:
        """Block until the chain's count differs from ``seen`` or ``timeout`` passes; the count."""
        self._start()
        with self._changed:
            if not self._live:
                timeout = min(timeout, _UNCONFIRMED_POLL)
            self._waited[stem] = self._waited.get(stem, 0) + 1
            try:
                self._changed.wait_for(lambda: self._counts.get(stem, 0) != seen, timeout)
                return self._counted(stem)
            finally:
                left = self._waited.pop(stem) - 1
                if left:
                    self._waited[stem] = left

    def counted(self) -> int:
        """How many chains' counts are kept now (for tests)."""
        with self._changed:
            return len(self._counts)

    def _counted(self, stem: str) -> int:
        """The chain's count, kept from now on (and marked recent). Called with the condition held."""
        count = self._counts.get(stem)
        if count is None:
            count = self._counts[stem] = 0
        return count

    @property
    def live(self) -> bool:
        """Whether the subscription is confirmed (so that no message is missed)."""
        return self._live

    def close(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="mcp-sync-auth-redis-changes", daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._subscribe()
                pubsub.psubscribe(self._pattern)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    kind = message.get("type") if message is not None else None
                    if kind == "pmessage":
                        self._seen(message.get("channel"))
                    elif kind == "psubscribe":
                        self._confirmed(True)
            except Exception as exc:  # Redis away: waiters fall back to their pauses meanwhile
                self._confirmed(False)
                warn_limited(
                    log,
                    self._pattern,
                    type(exc).__name__,
                    "the Redis change feed cannot subscribe (%s: %s); waiters poll instead until it can",
                    type(exc).__name__,
                    exc,
                    level=logging.DEBUG if _is_disconnect(exc) else logging.WARNING,
                )
                self._stop.wait(_RECONNECT_PAUSE)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection may fail too
                        pubsub.close()

    def _confirmed(self, live: bool) -> None:
        with self._changed:
            self._live = live

    def _seen(self, channel: object) -> None:
        name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else str(channel)
        stem = self._stem_of(name)
        if stem is None:
            return
        with self._changed:
            count = self._counts.get(stem)
            if count is None and stem not in self._waited:
                return  # nobody here asked about this chain
            self._counts[stem] = (count or 0) + 1
            self._changed.notify_all()

    def _reset_after_fork(self) -> None:
        # The parent's subscriber thread does not exist in a child; it starts its own when needed.
        self._changed = threading.Condition()
        self._counts = LRUCache(maxsize=REMEMBERED)
        self._waited = {}
        self._thread = None
        self._stop = threading.Event()
        self._live = False


def _is_disconnect(exc: BaseException) -> bool:
    """A lost connection (expected while Redis restarts) rather than a refusal such as an ACL's."""
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in (
        "ConnectionError",
        "TimeoutError",
    )
