"""Scope strings (RFC 6749 §3.3): strict parsing and the grantable default."""

from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple

from .errors import OAuthError

__all__ = ["check_scope_tokens", "grantable_scope", "parse_scope"]

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # NQCHAR


def parse_scope(value: str) -> Tuple[str, ...]:
    """Parse a scope string strictly (single spaces, NQCHARs, not empty); duplicates dropped."""
    parts = value.split(" ")
    if not value or any(not _SCOPE_TOKEN.fullmatch(part) for part in parts):
        raise OAuthError("invalid_scope", "malformed scope")
    return tuple(dict.fromkeys(parts))


def check_scope_tokens(scopes: Sequence[str]) -> Tuple[str, ...]:
    """Validate configured scope values (ValueError, not an OAuth error: this is set-up)."""
    result = tuple(scopes)
    if isinstance(scopes, str) or not result:
        raise ValueError("scopes must be a non-empty sequence of scope tokens")
    for scope in result:
        if not isinstance(scope, str) or not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"invalid scope token {scope!r}")
    return tuple(dict.fromkeys(result))


def grantable_scope(requested: Optional[str], registered: Optional[str], supported: Sequence[str]) -> Tuple[str, ...]:
    """The scope to grant: the requested one, else the client's registered one, else all supported.

    Anything outside ``supported`` is ``invalid_scope``: this server grants no scope it does not
    advertise.
    """
    if requested is not None:
        scopes = parse_scope(requested)
    elif registered is not None:
        scopes = parse_scope(registered)
    else:
        scopes = tuple(supported)
    unknown = [scope for scope in scopes if scope not in supported]
    if unknown:
        raise OAuthError("invalid_scope", "scope not supported: " + " ".join(unknown))
    return scopes
