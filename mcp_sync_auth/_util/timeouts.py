"""One timeout value, decided once, for every HTTP request the library sends.

``requests`` reads a timeout as (connect, read), where *read* bounds each wait between bytes of the
answer, not the whole answer. Every component (discovery, registration, the token endpoint, the MCP
client) is given the same :class:`Timeouts` and passes :attr:`Timeouts.for_requests` on, so a tuple is
never read three different ways again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple, Union

from ..errors import ConfigurationError


def positive_seconds(value: object, what: str) -> float:
    """``value`` if it is a finite number of seconds above zero, else a ConfigurationError naming ``what``.

    Zero makes ``requests`` raise a raw ValueError later; a negative or infinite wait never ends."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection (``connect``) and between bytes of an answer (``read``)."""

    connect: float = 30.0
    read: float = 30.0

    def __post_init__(self) -> None:
        positive_seconds(self.connect, "the connect timeout")
        positive_seconds(self.read, "the read timeout")

    @classmethod
    def of(cls, value: TimeoutLike) -> Timeouts:
        """Read what users pass as ``timeout=``: seconds for both, a ``(connect, read)`` pair, or a Timeouts."""
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls(connect=value[0], read=value[1])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(connect=value, read=value)
        raise ConfigurationError(f"timeout must be seconds or a (connect, read) pair, not {value!r}")

    @property
    def for_requests(self) -> tuple[float, float]:
        """The value to give ``requests`` as ``timeout=``."""
        return (self.connect, self.read)

    @property
    def first_answer(self) -> float:
        """The longest one request can wait before its answer starts: connect, then the first read."""
        return self.connect + self.read


TimeoutLike = Union[float, Tuple[float, float], Timeouts]

__all__ = ["TimeoutLike", "Timeouts", "positive_seconds"]
