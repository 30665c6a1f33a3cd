"""The program exits (Ctrl-C on its main thread) while another thread's refresh grant is in flight.

Python stops daemon threads wherever they are when the interpreter exits, so the rotated refresh token
in that grant's answer would die with the process. First the proof: without the exit hook the chain is
lost. Then with it: the exit waits for the answer, stores it, and the chain lives on.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mcp_sync_auth import RefreshChainRevoked

from ..helpers import wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a process killed by SIGINT needs POSIX")

# The clients' clock is ahead of the server's: the stored access token looks expired to them.
AHEAD = 400.0


def _program(server, client_id, store_dir, *, without_exit_hook=False):
    unhook = (
        "import atexit; from mcp_sync_auth._refresh import shield; atexit.unregister(shield._in_flight.finish_at_exit)"
        if without_exit_hook
        else ""
    )
    return textwrap.dedent(f"""
        import logging, sys, threading, time
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        from mcp_sync_auth import FileTokenStore, MCPAuth
        {unhook}
        auth = MCPAuth(
            {server.mcp_url!r}, store=FileTokenStore({str(store_dir)!r}), client_id={client_id!r},
            token_endpoint={server.token_endpoint!r}, clock=lambda: time.time() + {AHEAD}, interactive=False,
        )
        threading.Thread(target=auth.access_token, daemon=True).start()
        sys.stdin.readline()  # the test says when: the grant is held at the server
        raise KeyboardInterrupt  # Ctrl-C on the main thread; the refresh runs on another
    """)


def _start(program):
    return subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def logged_in(server, client_id, make_auth):
    make_auth().save_token(server.mint_tokens(client_id))
    server.hold_token_requests()
    yield
    server.release_token_requests()


def _ahead(make_auth):
    return make_auth(clock=lambda: time.time() + AHEAD)


def test_without_the_exit_hook_an_exit_during_the_grant_kills_the_chain(
    server, client_id, store_dir, make_auth, logged_in
):
    program = _start(_program(server, client_id, store_dir, without_exit_hook=True))
    wait_until(lambda: server.held_token_requests == 1, what="the grant at the server")
    program.communicate("\n", timeout=60)  # it exits at once, its grant still in flight
    assert program.returncode == -signal.SIGINT
    server.release_token_requests()
    wait_until(lambda: server.audit.refresh_ok == 1, what="the server to rotate")
    with pytest.raises(RefreshChainRevoked):
        _ahead(make_auth).access_token()  # the next run presents the spent token
    assert server.audit.reuse_detections == 1


def test_an_exit_during_the_grant_waits_for_its_answer_and_stores_it(
    server, client_id, store_dir, make_auth, logged_in
):
    program = _start(_program(server, client_id, store_dir))
    wait_until(lambda: server.held_token_requests == 1, what="the grant at the server")
    program.stdin.write("\n")
    program.stdin.close()
    # Released only once the exiting process says it waits: the grant is answered during the exit.
    seen = []
    for line in program.stderr:
        seen.append(line)
        if "exiting: waiting for the refresh grant" in line:
            break
    assert seen and "exiting: waiting for the refresh grant" in seen[-1], seen
    server.release_token_requests()
    rest = program.stderr.read()
    assert program.wait(60) == -signal.SIGINT, rest
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0
    # The next run finds the rotated set stored: no grant, and the server takes its access token.
    record = _ahead(make_auth).access_token()
    assert record and server.audit.token_requests == 1
    assert [name for name in os.listdir(store_dir) if name.endswith(".tmp")] == []


def test_while_exiting_no_new_grant_starts(server, client_id, store_dir, make_auth, logged_in):
    server.release_token_requests()
    # A call that needs a refresh after the exit hook ran (a daemon thread still going) sends nothing.
    program = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from mcp_sync_auth import FileTokenStore, MCPAuth, RefreshInterrupted
            from mcp_sync_auth._refresh import shield
            auth = MCPAuth(
                {server.mcp_url!r}, store=FileTokenStore({str(store_dir)!r}), client_id={client_id!r},
                token_endpoint={server.token_endpoint!r}, clock=lambda: time.time() + {AHEAD}, interactive=False,
            )
            shield._in_flight.finish_at_exit()  # what the interpreter's exit runs
            try:
                auth.access_token()
            except RefreshInterrupted as exc:
                print("refused:", exc)
        """)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert program.returncode == 0, program.stderr
    assert program.stdout.startswith("refused: the program is exiting"), program.stdout
    assert server.audit.token_requests == 0
