"""Early refresh: inside the refresh window the token still works, so nobody waits for its successor."""

import os
import threading

from mcp_sync_auth.testing import Fault

from ..conftest import TTL
from ..helpers import start_lock_holder, wait_until


def test_callers_keep_the_valid_token_while_one_thread_refreshes(server, auth, clock):
    old = auth.access_token()
    clock.advance(TTL - 30)  # inside the refresh window (75 s for a 300 s token), not expired
    server.hold_token_requests()
    leader = threading.Thread(target=auth.access_token)
    leader.start()
    wait_until(lambda: server.held_token_requests == 1, what="the early refresh at the server")
    # While the refresh is held at the server, everyone else gets the current token at once.
    assert [auth.access_token() for _ in range(50)] == [old] * 50
    server.release_token_requests()
    leader.join(30)
    assert auth.access_token() != old
    assert server.audit.refresh_ok == 1


def test_a_failed_early_refresh_costs_nothing_while_the_token_works(server, auth, clock):
    old = auth.access_token()
    clock.advance(TTL - 30)
    server.inject_fault(Fault.HTTP_500_BEFORE)
    assert auth.access_token() == old  # the refresh failed; the token still works
    assert auth.access_token() != old  # the next call tries again, and succeeds
    audit = server.audit
    assert audit.token_requests == 2 and audit.refresh_ok == 1


def test_while_another_process_refreshes_early_callers_do_not_keep_reading_the_store(
    server, auth, clock, store_dir, monkeypatch
):
    old = auth.access_token()
    holder = start_lock_holder(store_dir, auth.key)  # "another process is refreshing"
    try:
        clock.advance(TTL - 30)  # inside the refresh window
        assert auth.access_token() == old  # tried once, found the lock busy, went on with the token
        opened = []
        real_open = os.open
        monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
        assert [auth.access_token() for _ in range(100)] == [old] * 100
        monkeypatch.undo()
        assert opened == []  # no store read and no lock attempt per call meanwhile
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert server.audit.token_requests == 0
