"""Test overrides for the metadata documents, and the :data:`REMOVE` sentinel that deletes a field."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["REMOVE", "apply_overrides", "freeze_overrides"]


class _Remove:
    """Type of :data:`REMOVE` (a singleton; pickles to itself)."""

    _instance: Optional[_Remove] = None

    def __new__(cls) -> _Remove:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REMOVE"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_Remove, ())


REMOVE = _Remove()
"""Map a metadata field to this in ``prm_overrides``/``as_metadata_overrides`` to delete it
(``None`` serves a JSON ``null`` instead)."""

EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze_overrides(overrides: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    """A read-only copy, checked now so a bad value fails in the test, not in a handler thread.

    Read-only so that mutating the mapping a knob returns raises instead of silently doing nothing.
    """
    if overrides is None:
        return EMPTY
    copy: Dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata field names must be strings, got {key!r}")
        if value is not REMOVE:
            json.dumps(value)  # TypeError/ValueError for anything JSON cannot carry
        copy[key] = value
    return MappingProxyType(copy)


def apply_overrides(document: Dict[str, Any], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    result = dict(document)
    for key, value in overrides.items():
        if value is REMOVE:
            result.pop(key, None)
        else:
            result[key] = value
    return result
