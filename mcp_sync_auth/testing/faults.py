"""Fault injection for the token endpoint."""

from __future__ import annotations

import collections
import enum
from typing import Deque, Optional, Tuple

__all__ = ["Fault", "FaultQueue"]


class Fault(enum.Enum):
    """A misbehaviour applied to one token request.

    ``*_BEFORE`` faults answer before the request is processed (nothing rotates);
    ``*_AFTER`` faults process the request fully (rotation happens) and then
    spoil the answer.
    """

    HTTP_500_BEFORE = "http_500_before"
    """Answer ``500`` with an HTML body; the request is not processed."""

    RESET_BEFORE = "reset_before"
    """Abort the TCP connection (RST, no response); the request is not processed."""

    SLOW_AFTER = "slow_after"
    """Process the request, then wait ``fault_delay`` seconds before answering."""

    RESET_AFTER = "reset_after"
    """Process the request, then abort the TCP connection: the answer, and any rotated token in it, is lost."""

    DRIP_AFTER = "drip_after"
    """Process the request, then send the answer one byte every ``fault_delay`` seconds: no read
    ever waits long, yet the whole answer takes minutes (only a total deadline ends it)."""

    MALFORMED_200_AFTER = "malformed_200_after"
    """Process the request, then answer ``200`` with a body that is not valid JSON."""

    @property
    def before_processing(self) -> bool:
        return self in (Fault.HTTP_500_BEFORE, Fault.RESET_BEFORE)


class FaultQueue:
    """FIFO of pending faults; guarded by the owner's lock (not thread-safe alone)."""

    def __init__(self) -> None:
        self._pending: Deque[Fault] = collections.deque()

    def push(self, fault: Fault, count: int) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {fault!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._pending.extend([fault] * count)

    def pop(self) -> Optional[Fault]:
        return self._pending.popleft() if self._pending else None

    def clear(self) -> int:
        dropped = len(self._pending)
        self._pending.clear()
        return dropped

    def pending(self) -> Tuple[Fault, ...]:
        return tuple(self._pending)
