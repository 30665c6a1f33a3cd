"""Test-only fault points: a kill, a full disk or a Ctrl-C at a named moment of the refresh protocol.

The chaos and kill-during-write benchmarks need faults exactly inside the refresh critical section.
``MCP_SYNC_AUTH_FAULTPOINT="after-grant-before-write:0.2"`` (several ``name:probability``
pairs may be given, separated by commas; a missing probability means 1) makes :func:`reach` kill the
process with that probability each time the named point is reached:

- ``before-grant``: the lock is held and the refresh grant is about to be sent (nothing rotated yet);
- ``after-grant-before-write``: the server answered with the rotated set, not yet written to the store;
- ``during-write``: the new file is written and fsynced under its temp name, not yet renamed over the old
  (in the Redis store: the commit has run in Redis, and its writer has not yet heard back);
- ``after-rename-before-dirsync``: the file store renamed the new file into place (every reader sees it,
  in-process waiters have been woken) and has not yet fsynced the folder; the lock is still held.

Two points make the disk look full (``OSError(ENOSPC)``) instead of killing:

- ``reserve``: the file store reserves room for the record a refresh will bring (no grant sent yet;
  in the Redis store, the in-flight mark is refused);
- ``write``: the file store writes a record (into reserved room, or a plain save; in the Redis store,
  the write fails as if Redis were out of memory).

And one sends this process SIGINT, once, as a Ctrl-C would:

- ``interrupt-during-grant``: the grant is about to go out; the signal lands while it is in flight.

The variable is read once, at import. When it is unset, the only cost at each point is the test of the
module-level boolean :data:`ARMED`. A malformed value raises ``ValueError`` at import: a typo must not
silently turn a chaos run into a calm one.
"""

from __future__ import annotations

import errno
import os
import random
import signal

ENV = "MCP_SYNC_AUTH_FAULTPOINT"
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)
_DISK_FULL = ("reserve", "write")
_INTERRUPT = ("interrupt-during-grant",)
POINTS = (
    "before-grant",
    "after-grant-before-write",
    "during-write",
    "after-rename-before-dirsync",
    *_DISK_FULL,
    *_INTERRUPT,
)


def parse(value: str) -> dict[str, float]:
    """``"name:p,name:p"`` -> ``{name: p}``; ``ValueError`` for unknown names or bad probabilities."""
    points: dict[str, float] = {}
    for item in value.split(","):
        name, _, probability = item.strip().partition(":")
        if not name:
            continue
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown fault point {name!r} (known: {', '.join(POINTS)})")
        try:
            chance = float(probability) if probability else 1.0
        except ValueError:
            chance = -1.0
        if not 0.0 <= chance <= 1.0:
            raise ValueError(f"{ENV}: the probability of {name!r} must be a number from 0 to 1")
        points[name] = chance
    return points


_chances = parse(os.environ.get(ENV, ""))
ARMED = bool(_chances)
_random = random.Random()  # noqa: S311 (not for secrets; seeded from the OS, every process draws its own)


def reach(point: str) -> None:
    """With the point's probability: kill this process (SIGKILL: no cleanup, no ``finally``), raise
    ``ENOSPC``, or send this process SIGINT, as the point's kind says."""
    chance = _chances.get(point, 0.0)
    if chance <= 0.0 or _random.random() >= chance:
        return
    if point in _DISK_FULL:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if point in _INTERRUPT:
        # One Ctrl-C per process: a second one would end the exit's wait for this very grant (the
        # documented way out), which is another fault than the one this point stands for.
        _chances[point] = 0.0
        os.kill(os.getpid(), signal.SIGINT)
        return
    os.kill(os.getpid(), _KILL)
