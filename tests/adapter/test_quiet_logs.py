"""Quiet by default: the package logs nothing unless asked, and a failure that repeats on every call
is one line per interval, not one per call."""

import logging
import socket
import subprocess
import sys
import textwrap

import pytest

from mcp_sync_auth import LockTimeout

from ..conftest import TTL
from ..helpers import start_lock_holder

EARLY = "early refresh of"


@pytest.fixture
def closed_port():
    # Bound and closed: nothing listens there, so a connection is refused at once ("server down").
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def auth_with_server_down(make_auth, server, client_id, closed_port, clock):
    auth = make_auth(token_endpoint=f"http://127.0.0.1:{closed_port}/token")
    auth.save_token(server.mint_tokens(client_id))
    clock.advance(TTL - 30)  # inside the refresh window: every call tries an early refresh
    return auth


def test_with_the_server_down_a_loop_of_early_refreshes_writes_one_line(auth_with_server_down, caplog):
    with caplog.at_level(logging.WARNING, logger="mcp_sync_auth"):
        tokens = {auth_with_server_down.access_token() for _ in range(50)}
    assert len(tokens) == 1  # the current token goes on working
    lines = [r.getMessage() for r in caplog.records if EARLY in r.getMessage()]
    assert len(lines) == 1


def test_the_next_line_comes_after_the_interval_and_counts_what_was_held(
    auth_with_server_down, caplog, warning_clock
):
    with caplog.at_level(logging.WARNING, logger="mcp_sync_auth"):
        for _ in range(10):
            auth_with_server_down.access_token()
        warning_clock.advance(60)
        auth_with_server_down.access_token()
    lines = [r.getMessage() for r in caplog.records if EARLY in r.getMessage()]
    assert len(lines) == 2
    assert lines[1].endswith("(9 more like this held back)")


def _early_refresh_loop(tmp_path, closed_port, calls, *, configure_logging):
    """A fresh interpreter whose token endpoint is down and whose token sits in the refresh window,
    calling ``access_token()`` ``calls`` times; its result."""
    setup = (
        'import logging; logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")'
        if configure_logging
        else ""
    )
    script = textwrap.dedent(f"""
        {setup}
        import time
        from mcp_sync_auth import FileTokenStore, MCPAuth
        shift = [0.0]
        auth = MCPAuth(
            "http://127.0.0.1:{closed_port}/mcp",
            store=FileTokenStore({str(tmp_path / "tokens")!r}),
            client_id="c",
            token_endpoint="http://127.0.0.1:{closed_port}/token",
            interactive=False,
            clock=lambda: time.time() + shift[0],
        )
        auth.save_token({{"access_token": "a", "refresh_token": "r", "expires_in": 3600, "token_type": "Bearer"}})
        shift[0] = 3600 - 30  # inside the refresh window: every call tries an early refresh
        assert {{auth.access_token() for _ in range({calls})}} == {{"a"}}
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    return done


def test_without_logging_configured_the_package_writes_nothing_to_stderr(tmp_path, closed_port):
    # Python's last-resort handler would print warnings to stderr if the package logger had no handler.
    assert _early_refresh_loop(tmp_path, closed_port, 20, configure_logging=False).stderr == ""


def test_with_logging_configured_the_same_loop_writes_one_line(tmp_path, closed_port):
    lines = _early_refresh_loop(tmp_path, closed_port, 40, configure_logging=True).stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING " + EARLY), lines


def _wait_notices(make_auth, server, client_id, store_dir, clock, caplog, lock_timeout):
    """An expired token, another process holding the lock: the wait's notices until LockTimeout."""
    auth = make_auth(lock_timeout=lock_timeout)
    auth.save_token(server.mint_tokens(client_id))
    clock.advance(TTL + 1)  # expired: the caller must wait for the lock
    holder = start_lock_holder(store_dir, auth.key)
    try:
        with caplog.at_level(logging.WARNING, logger="mcp_sync_auth"), pytest.raises(LockTimeout):
            auth.access_token()
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert server.audit.token_requests == 0
    return auth, [r.getMessage() for r in caplog.records if "another process is refreshing" in r.getMessage()]


def test_a_long_wait_for_another_process_is_said_once(make_auth, server, client_id, store_dir, clock, caplog):
    auth, lines = _wait_notices(make_auth, server, client_id, store_dir, clock, caplog, lock_timeout=6.0)
    assert len(lines) == 1
    assert auth.key.describe() in lines[0]


def test_a_short_wait_says_nothing(make_auth, server, client_id, store_dir, clock, caplog):
    _, lines = _wait_notices(make_auth, server, client_id, store_dir, clock, caplog, lock_timeout=0.5)
    assert lines == []
