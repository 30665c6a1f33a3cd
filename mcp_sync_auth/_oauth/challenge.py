"""The Bearer challenge an MCP server sends (RFC 6750 §3, RFC 9728 §5.1), read from ``WWW-Authenticate``.

The header's grammar (RFC 9110 §11.6.1) is parsed by :mod:`mcp_sync_auth._util.www_authenticate`;
this module only says what a ``Bearer`` challenge's parameters mean to an OAuth client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Re-exported: tests and callers have always imported the grammar's names from here.
from .._util.www_authenticate import (
    MAX_HEADER_LENGTH,
    Challenge,
    HeaderSource,
    parse_www_authenticate,
    www_authenticate_value,
)

__all__ = [
    "MAX_HEADER_LENGTH",
    "BearerChallenge",
    "Challenge",
    "HeaderSource",
    "bearer_challenge",
    "dpop_error",
    "parse_www_authenticate",
]


@dataclass(frozen=True)
class BearerChallenge:
    """What an MCP client needs from a ``Bearer`` challenge (RFC 6750 §3, RFC 9728 §5.1).

    ``scopes`` is None when the challenge has no ``scope``, and an empty tuple when it is blank.
    ``error_description`` is server text: pass it through ``clean_server_text`` before showing it.
    """

    resource_metadata: Optional[str] = None
    scopes: Optional[tuple[str, ...]] = None
    error: Optional[str] = None
    error_description: Optional[str] = field(default=None, repr=False)


def _scopes(value: Optional[str]) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    # RFC 6750 §3: space-delimited; keep the server's order, drop repeats.
    return tuple(dict.fromkeys(part for part in value.split(" ") if part))


def bearer_challenge(headers_or_value: HeaderSource) -> Optional[BearerChallenge]:
    """The OAuth challenge of a response (or header mapping, or header value), else None: the first
    ``Bearer`` or ``DPoP`` one (RFC 9449 §7.1 gives DPoP the same parameters) that names its
    metadata, else the first with scopes or an error, else the first.

    A malformed header raises ChallengeError rather than being half-read.
    """
    value = www_authenticate_value(headers_or_value)
    if value is None:
        return None
    found = [c for c in parse_www_authenticate(value) if c.scheme in ("bearer", "dpop")]
    if not found:
        return None
    # The one that says the most: naming its metadata, else scopes or an error, else the first.
    chosen = max(found, key=lambda c: ("resource_metadata" in c.params, "scope" in c.params or "error" in c.params))
    params = chosen.params
    return BearerChallenge(
        resource_metadata=params.get("resource_metadata"),
        scopes=_scopes(params.get("scope")),
        error=params.get("error"),
        error_description=params.get("error_description"),
    )


def dpop_error(headers_or_value: HeaderSource) -> Optional[str]:
    """The ``error`` of a response's ``DPoP`` challenge (``use_dpop_nonce``, say), else None."""
    value = www_authenticate_value(headers_or_value)
    if value is None:
        return None
    for challenge in parse_www_authenticate(value):
        if challenge.scheme == "dpop":
            return challenge.params.get("error")
    return None
