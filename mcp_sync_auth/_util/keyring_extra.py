"""keyring, the optional ``keyring`` extra: imported on first use, with an error naming the extra when
it is missing (as :mod:`.jwt_extra` does for PyJWT). Also the exception classes by which a backend
says what went wrong, keyring's own and, where it is installed, secretstorage's (the Secret Service
backend's library: a macOS or Windows keyring has none)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from ..errors import MissingExtra

__all__ = ["EXTRA_HINT", "keychain_locked_errors", "keyring_module", "service_unreachable_errors"]

Errors = tuple[type[BaseException], ...]

EXTRA_HINT = "pip install 'mcp-sync-auth[keyring]'"


def keyring_module(purpose: str = "keeping tokens in the system keychain") -> ModuleType:
    """The ``keyring`` package, or a MissingExtra error that says what needed it and how to install it."""
    try:
        return importlib.import_module("keyring")
    except ImportError as exc:
        raise MissingExtra(f"{purpose} needs the 'keyring' package: {EXTRA_HINT}", extra="keyring") from exc


def service_unreachable_errors() -> Errors:
    """The errors of a backend that could not reach its service: keyring's ``InitError`` and
    secretstorage's ``SecretServiceNotAvailableException`` (the D-Bus connection refused or cut off)."""
    found: Errors = (keyring_module().errors.InitError,)
    secretstorage = _secretstorage_exceptions()
    if secretstorage is not None:
        found += (secretstorage.SecretServiceNotAvailableException,)
    return found


def keychain_locked_errors() -> Errors:
    """The errors of a backend whose keychain is locked: keyring's ``KeyringLocked`` and
    secretstorage's ``LockedException``."""
    found: Errors = (keyring_module().errors.KeyringLocked,)
    secretstorage = _secretstorage_exceptions()
    if secretstorage is not None:
        found += (secretstorage.LockedException,)
    return found


def _secretstorage_exceptions() -> Optional[ModuleType]:
    try:
        return importlib.import_module("secretstorage.exceptions")
    except ImportError:  # optional: only the Secret Service backend needs it
        return None
