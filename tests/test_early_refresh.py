"""Early refresh: inside the refresh window the token still works, so nobody waits for its successor."""

import threading

from mcp_sync_auth.testing import Fault

from .conftest import TTL
from .helpers import wait_until


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
