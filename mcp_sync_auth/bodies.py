"""Reading answers from servers we do not trust: bounded in size, JSON objects or nothing."""

from __future__ import annotations

import json
from typing import Any, Optional

import requests


def read_at_most(response: requests.Response, limit: int) -> Optional[bytes]:
    """The body of a streamed response, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: Optional[bytes]) -> Optional[dict[str, Any]]:
    """The body as a JSON object, or None for anything else (not UTF-8, not JSON, nested too deep...)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
