"""Type checks for values decoded from untrusted JSON, where ``True`` is an ``int`` and ``1e400`` a float."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.TypeGuard is 3.10+; annotations are never evaluated at run time here
    from typing import TypeGuard


def is_integer(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool`` (JSON's ``true`` decodes to one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[float]:
    """An ``int`` or ``float`` (never a ``bool``) that is neither NaN nor infinite."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int with hundreds of digits is no timestamp
        return False
