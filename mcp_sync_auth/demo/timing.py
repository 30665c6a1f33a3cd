"""Token lifetimes as the demo's clients see them, and when a refresh is due."""

from __future__ import annotations

import math
from typing import Sequence

from .._chain.tokens import MAX_SKEW_FRACTION

__all__ = ["EXPIRY_MARGIN", "REFRESH_SKEW", "client_lifetime", "early_refreshes", "fresh_time"]

REFRESH_SKEW = 60.0  # MCPAuth's default, passed explicitly so the arithmetic below matches it
EXPIRY_MARGIN = 0.1  # start a cycle this long after the tokens' expiry, past any rounding
_FLOAT_SLACK = 0.001


def client_lifetime(ttl: float) -> float:
    """Clients learn a lifetime in whole seconds (``expires_in``), rounded up by the server."""
    return max(1.0, float(math.ceil(ttl)))


def fresh_time(ttl: float) -> float:
    """How long after it was issued a token is used as it is: until MCPAuth's refresh window opens,
    or until the server refuses it, whichever comes first."""
    lifetime = client_lifetime(ttl)
    return min(ttl, lifetime - min(REFRESH_SKEW, lifetime * MAX_SKEW_FRACTION))


def early_refreshes(issued_at: Sequence[float], ttl: float) -> int:
    """Grants made while the token before them was still fresh (server times of every grant, the
    login's first). There must be none: each would be a second grant for one expiry."""
    due_after = fresh_time(ttl) - _FLOAT_SLACK
    return sum(1 for before, after in zip(issued_at, issued_at[1:]) if after - before < due_after)
