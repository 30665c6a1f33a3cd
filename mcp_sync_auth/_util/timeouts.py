"""One timeout value, decided once, for every HTTP request the library sends.

``requests`` reads a timeout as (connect, read), where *read* bounds each wait between bytes of the
answer, not the whole answer. Every component (discovery, registration, the token endpoint, the MCP
client) is given the same :class:`Timeouts` and passes it on, so a tuple is never read three different
ways again.

Grants are the exception that needs a rule of its own. A grant's answer can be the only copy of a
rotated refresh token: a client that stops reading before the answer arrives has let the server spend
the old token and thrown the new one away, and the chain is dead. So a grant waits for its answer at
least :data:`MIN_GRANT_READ` seconds and by default :data:`DEFAULT_GRANT_READ`, whatever the MCP call
timeout says. A slow connect is harmless (nothing was sent), so grants share the connect timeout.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple, Union

from ..errors import ConfigurationError

# Below this no real server can answer, not even on loopback under load: a typo (ms for s), refused.
MIN_TIMEOUT = 0.1
# A token endpoint that needs more than this is broken; one that needs less must never be cut off.
MIN_GRANT_READ = 5.0
DEFAULT_GRANT_READ = 60.0


def positive_seconds(value: object, what: str, *, floor: float = 0.0) -> float:
    """``value`` if it is a finite number of seconds above zero (and not below ``floor``), else a
    ConfigurationError naming ``what``.

    Zero makes ``requests`` raise a raw ValueError later; a negative or infinite wait never ends."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds, not {value!r}")
    if value < floor:
        raise ConfigurationError(f"{what} must be at least {floor:g} s, not {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection (``connect``) and between bytes of an answer (``read``), and
    between bytes of a token endpoint's answer to a grant (``grant_read``, at least 5 s)."""

    connect: float = 30.0
    read: float = 30.0
    grant_read: float = DEFAULT_GRANT_READ

    def __post_init__(self) -> None:
        positive_seconds(self.connect, "the connect timeout", floor=MIN_TIMEOUT)
        positive_seconds(self.read, "the read timeout", floor=MIN_TIMEOUT)
        positive_seconds(self.grant_read, "the grant read timeout", floor=MIN_GRANT_READ)

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
        """The value to give ``requests`` as ``timeout=`` for anything but a grant."""
        return (self.connect, self.read)

    @property
    def for_grants(self) -> tuple[float, float]:
        """The value to give ``requests`` for a token endpoint grant: never shorter than ``read``."""
        return (self.connect, max(self.read, self.grant_read))

    @property
    def grant_total(self) -> float:
        """The hard bound on one whole grant, body included (its read stops at ``grant_total`` minus
        one read, and that last read is bounded too): what a lease must outlast."""
        return 2 * self.grant_first_answer + 10

    @property
    def grant_first_answer(self) -> float:
        """The longest a grant can wait before its answer starts: connect, then the first read."""
        connect, read = self.for_grants
        return connect + read


TimeoutLike = Union[float, Tuple[float, float], Timeouts]

__all__ = ["DEFAULT_GRANT_READ", "MIN_GRANT_READ", "MIN_TIMEOUT", "TimeoutLike", "Timeouts", "positive_seconds"]
