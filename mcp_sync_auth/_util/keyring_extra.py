"""keyring, the optional ``keyring`` extra: imported on first use, with an error naming the extra when
it is missing (as :mod:`.jwt_extra` does for PyJWT)."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingExtra

__all__ = ["EXTRA_HINT", "keyring_module"]

EXTRA_HINT = "pip install 'mcp-sync-auth[keyring]'"


def keyring_module(purpose: str = "keeping tokens in the system keychain") -> ModuleType:
    """The ``keyring`` package, or a MissingExtra error that says what needed it and how to install it."""
    try:
        return importlib.import_module("keyring")
    except ImportError as exc:
        raise MissingExtra(f"{purpose} needs the 'keyring' package: {EXTRA_HINT}", extra="keyring") from exc
