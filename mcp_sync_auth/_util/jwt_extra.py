"""PyJWT, the optional ``jwt`` extra: imported on first use, with an error naming the extra when it is
missing.

Imported by name (as the Redis and sealing extras are), so nothing imports PyJWT before a JWT is
signed or verified, and the types check where it is not installed. PyJWT needs ``cryptography`` for
every algorithm this package uses (ES256, RS256, PS256, EdDSA); ``pyjwt[crypto]`` brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingExtra

__all__ = ["EXTRA_HINT", "jwt_module"]

EXTRA_HINT = "pip install 'mcp-sync-auth[jwt]'"


def jwt_module(purpose: str = "signing and verifying JWTs") -> ModuleType:
    """The ``jwt`` package (PyJWT, with its cryptography algorithms), or a MissingExtra error that
    says what needed it (``purpose``) and how to install it."""
    try:
        jwt = importlib.import_module("jwt")
        algorithms = importlib.import_module("jwt.algorithms")
    except ImportError as exc:
        raise MissingExtra(f"{purpose} needs the 'PyJWT' package: {EXTRA_HINT}", extra="jwt") from exc
    if not getattr(algorithms, "has_crypto", False):
        raise MissingExtra(
            f"{purpose} needs PyJWT with the 'cryptography' package (pyjwt[crypto]): {EXTRA_HINT}", extra="jwt"
        )
    return jwt
