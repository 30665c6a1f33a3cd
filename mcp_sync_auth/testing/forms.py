"""Strict parsing of application/x-www-form-urlencoded token requests."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl

from .errors import OAuthError
from .http_types import Request

__all__ = ["decode_pairs", "form_pairs", "parse_params", "single_value", "to_params"]

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 100
TOKEN_MULTI_ERRORS = {"resource": "invalid_target"}
"""A repeated ``resource`` is invalid_target: this server grants exactly one audience."""

Pairs = List[Tuple[str, str]]


def decode_pairs(text: str) -> Pairs:
    """Decode urlencoded ``text`` strictly (well-formed fields, UTF-8 percent-escapes)."""
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:
        raise OAuthError("invalid_request", "malformed application/x-www-form-urlencoded data") from None


def single_value(pairs: Pairs, name: str) -> Optional[str]:
    """The value of ``name`` if it occurs exactly once with a non-empty value."""
    values = [value for key, value in pairs if key == name]
    return values[0] if len(values) == 1 and values[0] else None


def to_params(pairs: Pairs, multi_error: Mapping[str, str]) -> Dict[str, str]:
    """Pairs to a dict; empty values count as omitted (RFC 6749 §3.1).

    A repeated parameter is ``invalid_request`` (RFC 6749 §3.1) unless
    ``multi_error`` maps its name to another error code.
    """
    params: Dict[str, str] = {}
    seen = set()
    for name, value in pairs:
        if name in seen:
            error = multi_error.get(name, "invalid_request")
            raise OAuthError(error, f"parameter {name!r} was given more than once")
        seen.add(name)
        if value:
            params[name] = value
    return params


def parse_params(text: str, multi_error: Mapping[str, str]) -> Dict[str, str]:
    return to_params(decode_pairs(text), multi_error)


def form_pairs(request: Request) -> Pairs:
    """Body fields of a token request; rejects any other content type."""
    media_type, options = request.media_type()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"Content-Type must be {FORM_MEDIA_TYPE}")
    charset = options.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise OAuthError("invalid_request", "form body must be UTF-8")
    try:
        text = request.body.decode("ascii")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "form body must be percent-encoded ASCII") from None
    return decode_pairs(text)
