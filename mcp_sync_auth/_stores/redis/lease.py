"""A lease on one key: an owner token in Redis with an expiry, renewed by a watchdog while held.

A lease is not a lock: it ends when its time is up, whether or not its holder is done. So the
holder renews it (every third of its length) for as long as it holds it, up to a maximum hold, and
whatever must not happen twice is guarded again at the moment it happens (the reservation, in
:mod:`.store`), never by the lease alone.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


class Lease:
    """A lease that is held (``acquire`` succeeded); release it with :meth:`release`."""

    def __init__(
        self,
        renew: Callable[[str, int], bool],
        release: Callable[[str], bool],
        *,
        owner: str,
        length: float,
        max_hold: float,
        describe: str,
    ) -> None:
        self.owner = owner
        self._renew = renew
        self._release = release
        self._length_ms = int(length * 1000)
        self._max_hold = max_hold
        self._describe = describe
        self._taken = time.monotonic()
        self._stop = threading.Event()
        self.lost = False
        self._watchdog = threading.Thread(target=self._watch, name="mcp-sync-auth-lease", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        interval = self._length_ms / 3000.0
        while not self._stop.wait(interval):
            if time.monotonic() - self._taken > self._max_hold:
                log.warning("stopped renewing the lease on %s: held longer than %g s", self._describe, self._max_hold)
                return
            try:
                if not self._renew(self.owner, self._length_ms):
                    self.lost = True
                    log.warning("the lease on %s was lost (it ran out, or Redis lost it)", self._describe)
                    return
            except Exception as exc:  # Redis away: try again next interval, the lease may still run
                log.debug("could not renew the lease on %s (%s)", self._describe, type(exc).__name__)

    def release(self) -> None:
        self._stop.set()
        try:
            self._release(self.owner)
        except Exception as exc:  # it runs out by itself; the next holder waits at most that long
            log.warning(
                "could not release the lease on %s (%s); it expires by itself", self._describe, type(exc).__name__
            )

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def new_owner() -> str:
    """A fresh owner token: one per attempt, never reused, unguessable."""
    return secrets.token_hex(16)
