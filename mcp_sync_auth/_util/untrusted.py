"""Reading answers from servers we do not trust: bounded in size, shallow JSON or nothing."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Optional, Union

import requests

__all__ = ["MAX_JSON_DEPTH", "json_object", "json_value", "loads_shallow", "read_at_most"]


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

# Whole string literals (escapes included): their brackets are text, not structure.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def loads_shallow(text: str) -> Any:
    """``json.loads`` for untrusted text, refusing (ValueError) nesting deeper than any real document.

    The decoder recurses once per level: a hostile body of 100,000 brackets would otherwise run the
    interpreter to its recursion limit, where even unrelated cleanup code (finalizers run by the
    garbage collector at that depth) fails. The depth is measured with regular expressions and
    C-level folds, not a Python loop per character: MCP replies of megabytes are normal."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    if brackets and max(accumulate(map(_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


def json_value(raw: Union[bytes, str]) -> Any:
    """Any JSON value (object, array, string...) from an untrusted body. Anything else raises
    ValueError and nothing but ValueError: not UTF-8, not JSON, nested too deep."""
    try:
        return loads_shallow(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except RecursionError:  # only if the caller's own stack is already near the limit
        raise ValueError("JSON nested too deep to decode here") from None


def json_object(raw: Optional[bytes]) -> Optional[dict[str, Any]]:
    """The body as a JSON object, or None for anything else (not UTF-8, not JSON, nested too deep...)."""
    if raw is None:
        return None
    try:
        value = json_value(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
