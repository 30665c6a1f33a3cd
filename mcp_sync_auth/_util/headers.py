"""Reading the credentials a request carried from its headers."""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["bearer_token", "presented_token"]


def bearer_token(headers: Mapping[str, Any]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` header, else None (no header, another
    scheme, a blank token). The scheme is matched case-insensitively (RFC 9110 §11.1), and so is the
    header name, also in a plain dict."""
    return presented_token(headers, ("bearer",))


def presented_token(headers: Mapping[str, Any], schemes: tuple[str, ...] = ("bearer", "dpop")) -> Optional[str]:
    """The access token an ``Authorization`` header carries in one of ``schemes`` (lower case), else None."""
    value: Any = None
    for name, item in headers.items():
        if isinstance(name, str) and name.lower() == "authorization":
            value = item
            break
    if isinstance(value, bytes):
        value = value.decode("latin-1")  # requests sends bytes values as they are
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in schemes:
        return None
    return token.strip() or None
