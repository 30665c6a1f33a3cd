"""Reading answers from servers we do not trust: bounded in size, shallow JSON or nothing."""

from __future__ import annotations

import json
import re
import time
from itertools import accumulate
from typing import Any, Iterator, Optional, Union

import requests
import urllib3

__all__ = ["MAX_JSON_DEPTH", "json_object", "json_value", "loads_shallow", "read_at_most"]


def read_at_most(response: requests.Response, limit: int, *, deadline: Optional[float] = None) -> Optional[bytes]:
    """The body of a streamed response, or None as soon as it grows past ``limit`` bytes.

    ``deadline`` (``time.monotonic()``) bounds the whole read: ``requests``' timeout bounds each
    read, so a server that sends a byte now and then could otherwise hold the body for ever."""
    chunks: list[bytes] = []
    size = 0
    for chunk in _chunks(response, deadline):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _chunks(response: requests.Response, deadline: Optional[float]) -> Iterator[bytes]:
    read1 = getattr(response.raw, "read1", None)
    if deadline is None or not callable(read1):
        # urllib3 1.x has no read1: byte by byte is slow, but token answers are small.
        for chunk in response.iter_content(chunk_size=16 * 1024 if deadline is None else 1):
            if deadline is not None and time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout("the answer did not arrive within its total deadline")
            yield chunk
        return
    # read1 returns what one receive brought, so the deadline is checked between receives.
    while True:
        if time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout("the answer did not arrive within its total deadline")
        try:
            chunk = read1(16 * 1024)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ConnectionError(str(exc)) from exc
        if not chunk:
            return
        yield chunk


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
