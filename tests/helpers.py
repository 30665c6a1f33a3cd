"""Small test helpers shared by several test files."""

import os
import subprocess
import sys
import textwrap
import time
import traceback

import pytest
import requests

from .workers import echo_call


def wait_until(predicate, timeout=30.0, what="condition"):
    """Wait for a state another thread or process reaches; fails loudly instead of hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def start_lock_holder(store_dir, key):
    """Another process that takes the chain's lock, says so, and keeps it until a line arrives on its
    stdin (or it is killed); then prints "released". Returns the process, the lock already held."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from mcp_sync_auth import ChainKey, FileTokenStore
            key = ChainKey(*{tuple(key.to_json().values())!r})
            with FileTokenStore({str(store_dir)!r}).lock(key, timeout=5):
                print("locked", flush=True)
                sys.stdin.readline()
            print("released", flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def call_in_fork(call):
    """Fork; the child runs ``call()`` (only this thread exists there) and exits. Returns ``join()``,
    which waits for the child and gives its exit code: 0 when ``call()`` returned something true, 2
    when false, 1 when it raised (the traceback goes to the child's stderr)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if call() else 2
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def join():
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    return join


def echo_in_new_session(server, auth):
    """One echo call through ``auth`` on a session of its own (a forked child must not use its
    parent's pooled connections); True when it worked."""
    with requests.Session() as session:
        return echo_call(session, server.mcp_url, auth) == "ok"


def skip_unless_ci(reason):
    """A service or package a test needs is missing: skip here, fail under CI=true (.ci/run installs
    everything, so a skip there would hide a test that never ran)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and this test cannot run: {reason}")
    pytest.skip(reason)
