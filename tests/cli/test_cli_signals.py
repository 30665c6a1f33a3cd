"""Ctrl-C and a closed stdout, sent to a real ``mcp-sync-auth`` process: a quiet exit, nothing left behind."""

import dataclasses
import os
import signal
import subprocess
import time

import filelock
import pytest

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth.cli.errors import EXIT_INTERRUPTED, EXIT_STDOUT_CLOSED

from .shell import finish, run, start

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="needs POSIX signals")


def assert_nothing_left_behind(store_dir):
    """No half-written file, and no lock still held: each lock file (an empty file that stays, as
    ``filelock`` leaves it) can be taken at once."""
    names = os.listdir(store_dir)
    assert [name for name in names if name.endswith(".tmp")] == []
    for name in names:
        if name.endswith(".lock"):
            lock = filelock.FileLock(str(store_dir / name))
            lock.acquire(timeout=0)
            lock.release()


def read_until(stream, marker):
    """Lines of ``stream`` up to the first that holds ``marker`` (the process is there by then)."""
    seen = []
    for line in stream:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"the command ended without printing {marker!r}: {''.join(seen)}")


def test_ctrl_c_in_a_headless_login_exits_130(server, store_dir):
    login = start(store_dir, "login", "--headless", server.mcp_url, stdin=subprocess.PIPE)
    prompt = read_until(login.stderr, "/authorize?")  # waiting for the pasted redirect now
    login.send_signal(signal.SIGINT)
    code, out, err = finish(login)
    assert code == EXIT_INTERRUPTED
    assert out == "" and err == "mcp-sync-auth: interrupted\n"
    assert "Traceback" not in "".join(prompt)
    assert_nothing_left_behind(store_dir)
    assert server.audit.token_requests == 0


def test_ctrl_c_during_a_refresh_finishes_it_and_keeps_the_chain(auth, server, store_dir):
    store = FileTokenStore(store_dir)
    record = store.load(auth.key)
    store.save(dataclasses.replace(record, tokens=dataclasses.replace(record.tokens, expires_at=time.time() - 1)))
    server.hold_token_requests()
    try:
        token = start(store_dir, "token", server.mcp_url)
        server.wait_for_held_token_requests(1, timeout=60)  # the grant is sent: its answer is awaited
        token.send_signal(signal.SIGINT)
    finally:
        server.release_token_requests()
    code, out, err = finish(token)
    assert code == EXIT_INTERRUPTED and out == ""
    *said, last = err.splitlines()
    assert last == "mcp-sync-auth: interrupted"
    assert all(line.startswith("mcp-sync-auth: interrupted while the refresh grant") for line in said)
    assert_nothing_left_behind(store_dir)
    assert store.load(auth.key).generation == record.generation + 1  # the rotated set was stored
    code, out, err = run(store_dir, "token", server.mcp_url)
    assert code == 0, err
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0  # the next run used it: chain alive


def make_many_chains(auth, count):
    store = FileTokenStore(auth.store.directory)
    record = store.load(auth.key)
    for number in range(count):
        store.save(dataclasses.replace(record, key=dataclasses.replace(record.key, account=f"account-{number}")))


def test_status_into_a_pipe_closed_after_the_first_chain_exits_quietly(auth, server, store_dir):
    # Far more than a pipe holds (64 KiB) plus what the reader and the writer buffer: the command is
    # still writing when the reader goes away, every time.
    make_many_chains(auth, 600)
    for _ in range(10):
        status = start(store_dir, "status")
        assert status.stdout.readline().strip() == f"store: folder {store_dir}"  # status names its store first
        assert status.stdout.readline().strip() == server.mcp_url
        status.stdout.close()
        code, _, err = finish(status)
        assert code == EXIT_STDOUT_CLOSED and err == ""


def test_tools_into_a_pipe_closed_before_it_writes_exits_quietly(auth, server, store_dir):
    for _ in range(3):
        reader, writer = os.pipe()
        tools = start(store_dir, "tools", server.mcp_url, stdout=writer)
        os.close(writer)
        os.close(reader)  # nobody will ever read: the first write fails
        code, _, err = finish(tools)
        assert code == EXIT_STDOUT_CLOSED and err == ""
