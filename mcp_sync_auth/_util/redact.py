"""Keeping secrets out of messages, logs and reprs."""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional
from urllib.parse import quote, quote_plus

MAX_SERVER_TEXT = 200


def fingerprint(secret: Optional[str]) -> str:
    """A short, one-way name for a secret, so logs can tell tokens apart without showing them."""
    if not secret:
        return "-"
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def redact_secrets(text: str, secrets: Iterable[Optional[str]]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``[redacted]``, and nothing else changed
    (for a value kept whole, such as a header; :func:`clean_server_text` also shortens and cleans).

    Each secret is also replaced as a form or URL would carry it, since error pages echo request
    bodies."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
                text = text.replace(form, "[redacted]")
    return text


def clean_server_text(text: object, secrets: Iterable[Optional[str]] = ()) -> str:
    """Make server-supplied text safe to put in an exception message.

    A hostile or buggy server may echo our tokens back (in ``error_description`` or an HTML page),
    send control characters, or send megabytes; none of that may reach a message or a log line.
    """
    if not isinstance(text, str):
        text = repr(text) if text is not None else ""
    # Whole secrets are replaced before anything is cut, so no fragment of one survives truncation.
    text = redact_secrets(text, secrets)
    text = "".join(ch if ch.isprintable() else " " for ch in text[: MAX_SERVER_TEXT * 4])
    text = " ".join(text.split())
    if len(text) > MAX_SERVER_TEXT:
        text = text[:MAX_SERVER_TEXT] + "..."
    return text
