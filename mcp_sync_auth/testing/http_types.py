"""Transport-neutral request/response values passed between handler and endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = [
    "Endpoint",
    "Request",
    "Response",
    "RouteTable",
    "html_response",
    "json_response",
]

NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


@dataclass(frozen=True)
class Request:
    """A fully read HTTP request."""

    method: str
    path: str
    query: str
    headers: Message
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    def header_values(self, name: str) -> List[str]:
        return list(self.headers.get_all(name) or [])

    def media_type(self) -> Tuple[str, Dict[str, str]]:
        """Lower-cased media type of Content-Type and its parameters ('' when absent)."""
        raw = self.headers.get("Content-Type", "")
        kind, _, rest = raw.partition(";")
        params: Dict[str, str] = {}
        for part in rest.split(";"):
            key, sep, value = part.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        return kind.strip().lower(), params


@dataclass(frozen=True)
class Response:
    """What to send back. ``abort`` resets the connection instead of answering;
    ``delay`` waits (interruptible by server stop) before answering; ``drip`` sends the body one
    byte at a time, waiting that long before each."""

    status: int
    body: bytes = b""
    headers: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)
    close: bool = False
    abort: bool = False
    delay: float = 0.0
    drip: float = 0.0

    @classmethod
    def connection_reset(cls) -> Response:
        return cls(status=0, abort=True)


Endpoint = Callable[[Request], Response]
RouteTable = Dict[str, Dict[str, Endpoint]]
"""path -> HTTP method -> endpoint."""


def json_response(status: int, payload: Any, headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, (("Content-Type", "application/json"), *headers))


def html_response(status: int, text: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
    body = f"<!DOCTYPE html><html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>"
    return Response(status, body.encode("utf-8"), (("Content-Type", "text/html; charset=utf-8"), *headers))
