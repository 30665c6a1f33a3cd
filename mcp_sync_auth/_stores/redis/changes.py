"""Waiters learn of a commit from Redis pub/sub, not by polling the record.

One subscriber thread per store and process listens on the pattern of every chain's channel and
counts the messages per chain (a commit, a delete, a lease released). A waiter remembers the count
it last saw and sleeps until it moves, or its pause runs out: the pause is only a safety net while
the subscription is live. Until Redis has confirmed it (the feed is starting, or reconnecting),
messages may be missed, so waits are cut to a short poll meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Optional

from ..._util.fork import reset_in_child
from ..._util.logs import warn_limited

log = logging.getLogger(__name__)

_RECONNECT_PAUSE = 0.5
# The longest wait while the subscription is not confirmed (a message may be missed then).
_UNCONFIRMED_POLL = 0.01


class ChangeFeed:
    """Counts the change messages of each chain (by its stem) seen since the feed started."""

    def __init__(self, subscribe: Callable[[], Any], pattern: str, stem_of: Callable[[str], Optional[str]]) -> None:
        self._subscribe = subscribe  # a new redis-py PubSub
        self._pattern = pattern
        self._stem_of = stem_of
        self._changed = threading.Condition()
        self._counts: dict[str, int] = {}
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._live = False  # Redis confirmed the subscription, and it has not failed since
        reset_in_child(self)

    def count(self, stem: str) -> int:
        self._start()
        with self._changed:
            return self._counts.get(stem, 0)

    def wait(self, stem: str, seen: int, timeout: float) -> int:
        """Block until the chain's count differs from ``seen`` or ``timeout`` passes; the count."""
        self._start()
        with self._changed:
            if not self._live:
                timeout = min(timeout, _UNCONFIRMED_POLL)
            self._changed.wait_for(lambda: self._counts.get(stem, 0) != seen, timeout)
            return self._counts.get(stem, 0)

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
            self._counts[stem] = self._counts.get(stem, 0) + 1
            self._changed.notify_all()

    def _reset_after_fork(self) -> None:
        # The parent's subscriber thread does not exist in a child; it starts its own when needed.
        self._changed = threading.Condition()
        self._counts = {}
        self._thread = None
        self._stop = threading.Event()
        self._live = False


def _is_disconnect(exc: BaseException) -> bool:
    """A lost connection (expected while Redis restarts) rather than a refusal such as an ACL's."""
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in (
        "ConnectionError",
        "TimeoutError",
    )
