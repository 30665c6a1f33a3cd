"""pytest fixtures for testing your own MCP tool runners against a server as strict as the strictest.

Installed as a ``pytest11`` entry point, so the fixtures are there as soon as ``mcp-sync-auth`` is
installed:

- ``strict_mcp_server``: a started :class:`~mcp_sync_auth.testing.StrictAuthServer` (default knobs);
- ``strict_mcp_server_factory``: call it with any ``StrictAuthServer`` keywords
  (``access_token_ttl``, ``clock``, ``fault_delay``, ``scopes_supported``...) and optionally
  ``faults=[Fault...]`` (queued for the next token requests, in order) for more servers; all are
  stopped at teardown;
- ``strict_mcp_auth``: an ``MCPAuth`` logged in to ``strict_mcp_server`` through the real
  authorization code + PKCE flow, with its tokens in a ``FileTokenStore`` under ``tmp_path``.
  For another server, or another store, call ``mcp_sync_auth.testing.login(server, store)``.
- ``redis_server``: a real ``redis-server`` from PATH on a free loopback port
  (:class:`~mcp_sync_auth.testing.RedisServer`, append-only file on, so ``restart()`` keeps what was
  committed), stopped at teardown. Without the binary the test is skipped, unless ``CI=true``: then
  a missing server fails the test, so a CI that forgot to install it cannot pass by skipping.

Only this module imports pytest; the library imports it nowhere else. The library itself is imported
when a fixture is first used, so a test run that never uses these fixtures does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Sequence

import pytest

if TYPE_CHECKING:
    from .auth import MCPAuth
    from .testing import Fault, RedisServer, StrictAuthServer

__all__ = ["redis_server", "strict_mcp_auth", "strict_mcp_server", "strict_mcp_server_factory"]

ServerFactory = Callable[..., "StrictAuthServer"]


@pytest.fixture
def strict_mcp_server_factory() -> Iterator[ServerFactory]:
    """Start ``StrictAuthServer(**kwargs)`` servers on 127.0.0.1, with ``faults`` queued for their
    first token requests; every one is stopped at teardown."""
    from .testing import StrictAuthServer  # noqa: PLC0415 - see the module docstring

    started: List[StrictAuthServer] = []

    def start(*, faults: Sequence[Fault] = (), **kwargs: Any) -> StrictAuthServer:
        server = StrictAuthServer(**kwargs).start()
        started.append(server)
        for fault in faults:
            server.inject_fault(fault)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def strict_mcp_server(strict_mcp_server_factory: ServerFactory) -> StrictAuthServer:
    """A started ``StrictAuthServer``: rotation on every refresh, reuse revokes the chain, audience
    checked, 300 s access tokens. ``server.audit`` counts every token request."""
    return strict_mcp_server_factory()


@pytest.fixture
def strict_mcp_auth(strict_mcp_server: StrictAuthServer, tmp_path: Path) -> MCPAuth:
    """An ``MCPAuth`` logged in to ``strict_mcp_server`` (tokens in ``tmp_path / "mcp-tokens"``).

    Non-interactive: if the chain dies, calls raise ``AuthorizationRequired`` instead of logging in
    again. ``strict_mcp_auth.store`` is the store to share with other processes of the test.
    """
    from ._stores.file import FileTokenStore  # noqa: PLC0415
    from .testing import login  # noqa: PLC0415

    return login(strict_mcp_server, FileTokenStore(tmp_path / "mcp-tokens"))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started ``RedisServer`` (``.url``, ``.command(...)``, ``.restart()``, ``.kill()``)."""
    import os  # noqa: PLC0415

    from .testing import RedisNotAvailable, RedisServer  # noqa: PLC0415

    try:
        server = RedisServer()
    except RedisNotAvailable as exc:  # no binary; one that will not start is a failure, never a skip
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no Redis to test against: {exc}")
        pytest.skip(str(exc))
    try:
        yield server.start()
    finally:
        server.close()
