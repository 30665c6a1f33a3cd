"""redis-py, the optional extra: imported only when a Redis store is built, with an error naming the
extra when it is missing, and the one place that turns Redis failures into our errors."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional

from ...errors import MissingExtra, TokenStoreError

EXTRA_HINT = "pip install 'mcp-sync-auth[redis]'"


def redis_module() -> ModuleType:
    """The ``redis`` package, or a MissingExtra error that says how to install it."""
    try:
        redis = importlib.import_module("redis")  # imported only when a Redis store is built
    except ImportError as exc:
        raise MissingExtra(
            f"the Redis token store needs the 'redis' package (redis-py): {EXTRA_HINT}", extra="redis"
        ) from exc
    return redis


def where(client: Any) -> str:
    """The server a client talks to, for messages: host and port (or socket path) and database,
    never the username or password."""
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, Any] = dict(getattr(pool, "connection_kwargs", {}) or {})
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    host = kwargs.get("host", "?")
    port = kwargs.get("port", "?")
    scheme = "rediss" if _uses_tls(pool) else "redis"
    return f"{scheme}://{host}:{port}/{db}"


def _uses_tls(pool: Any) -> bool:
    connection_class = getattr(pool, "connection_class", None)
    return connection_class is not None and "SSL" in getattr(connection_class, "__name__", "")


def password_of(client: Any) -> Optional[str]:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    password = kwargs.get("password")
    return password if isinstance(password, str) and password else None


def store_error(location: str, doing: str, exc: BaseException, password: Optional[str]) -> TokenStoreError:
    """A Redis failure as our error: what we were doing, where, and why, with no secret in it. No
    grant is sent after one, so the message says the chain is intact."""
    why = f"{type(exc).__name__}: {exc}"
    if password:
        why = why.replace(password, "***")
    return TokenStoreError(
        f"the Redis token store at {location} failed while {doing} ({why}); no refresh was sent "
        "without it and the stored chain is unchanged"
    )
