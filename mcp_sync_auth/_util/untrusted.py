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


MAX_JSON_DEPTH = 64


def loads_shallow(text: str) -> Any:
    """``json.loads`` for untrusted text, refusing (ValueError) nesting deeper than any real document.

    The decoder recurses once per level: a hostile body of 100,000 brackets would otherwise run the
    interpreter to its recursion limit, where even unrelated cleanup code (finalizers run by the
    garbage collector at that depth) fails."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    return json.loads(text)


def json_object(raw: Optional[bytes]) -> Optional[dict[str, Any]]:
    """The body as a JSON object, or None for anything else (not UTF-8, not JSON, nested too deep...)."""
    if raw is None:
        return None
    try:
        value = loads_shallow(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
