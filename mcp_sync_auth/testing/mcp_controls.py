"""Test knobs and sessions of the MCP endpoint, reached as ``StrictAuthServer.mcp``.

The knobs are one immutable :class:`McpOptions` snapshot that a test swaps whole; each request reads
it once, so a request never sees half of a change. Sessions live in their own small registry.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional

__all__ = ["RESPONSE_MODES", "McpControls", "McpOptions", "SessionRegistry"]

RESPONSE_MODES = ("json", "sse")

_NO_SCOPES: Mapping[str, FrozenSet[str]] = MappingProxyType({})


@dataclass(frozen=True)
class McpOptions:
    """``response_mode``: answer requests with one JSON body or an SSE stream (one ``message``
    event). ``sse_extras``: in SSE mode, send a notification first, and on session revisions also a
    priming event and a ``ping`` request the client should answer. ``require_session``: after
    ``initialize``, a request without the session id gets 400, an unknown or expired one 404, and
    the ``MCP-Protocol-Version`` header must match the negotiated version. ``tools_page_size``:
    ``tools/list`` pages of that many tools, chained by ``nextCursor``. ``required_scopes``:
    JSON-RPC method -> scopes the access token must carry, else 403 ``insufficient_scope``."""

    response_mode: str = "json"
    sse_extras: bool = False
    require_session: bool = False
    tools_page_size: Optional[int] = None
    required_scopes: Mapping[str, FrozenSet[str]] = field(default_factory=lambda: _NO_SCOPES)

    def __post_init__(self) -> None:
        if self.response_mode not in RESPONSE_MODES:
            raise ValueError(f"response_mode must be one of {RESPONSE_MODES}, not {self.response_mode!r}")
        size = self.tools_page_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError("tools_page_size must be a positive integer or None")
        scopes = {
            str(method): frozenset(str(scope) for scope in needed) for method, needed in self.required_scopes.items()
        }
        if any(not needed or any(not s or " " in s for s in needed) for needed in scopes.values()):
            raise ValueError("required_scopes needs non-empty sets of scope tokens")
        # Normalised through object.__setattr__: the dataclass is frozen.
        object.__setattr__(self, "required_scopes", MappingProxyType(scopes))
        object.__setattr__(self, "sse_extras", bool(self.sse_extras))
        object.__setattr__(self, "require_session", bool(self.require_session))


class SessionRegistry:
    """Session id -> the protocol version negotiated by the ``initialize`` that opened it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: Dict[str, str] = {}

    def open(self, protocol_version: str) -> str:
        session_id = secrets.token_hex(16)
        with self._lock:
            self._sessions[session_id] = protocol_version
        return session_id

    def version_of(self, session_id: str) -> Optional[str]:
        """The session's negotiated version; None for an id that is unknown, expired or closed."""
        with self._lock:
            return self._sessions.get(session_id)

    def close(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class McpControls:
    """``server.mcp``: set knobs as attributes (``server.mcp.response_mode = "sse"``) or several at
    once with :meth:`configure`; :meth:`expire_sessions` makes the server forget every session."""

    def __init__(self, **options: Any) -> None:
        self._lock = threading.Lock()
        self._options = McpOptions(**options)
        self.sessions = SessionRegistry()

    @property
    def options(self) -> McpOptions:
        return self._options

    def configure(self, **changes: Any) -> McpOptions:
        with self._lock:
            self._options = replace(self._options, **changes)
            return self._options

    def expire_sessions(self) -> int:
        """Forget every session (as a server restart would); returns how many there were."""
        return self.sessions.expire_all()

    @property
    def response_mode(self) -> str:
        return self._options.response_mode

    @response_mode.setter
    def response_mode(self, value: str) -> None:
        self.configure(response_mode=value)

    @property
    def sse_extras(self) -> bool:
        return self._options.sse_extras

    @sse_extras.setter
    def sse_extras(self, value: bool) -> None:
        self.configure(sse_extras=value)

    @property
    def require_session(self) -> bool:
        return self._options.require_session

    @require_session.setter
    def require_session(self, value: bool) -> None:
        self.configure(require_session=value)

    @property
    def tools_page_size(self) -> Optional[int]:
        return self._options.tools_page_size

    @tools_page_size.setter
    def tools_page_size(self, value: Optional[int]) -> None:
        self.configure(tools_page_size=value)

    @property
    def required_scopes(self) -> Mapping[str, FrozenSet[str]]:
        return self._options.required_scopes

    @required_scopes.setter
    def required_scopes(self, value: Mapping[str, Iterable[str]]) -> None:
        self.configure(required_scopes=value)
