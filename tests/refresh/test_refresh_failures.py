"""What happens when refresh goes wrong: dead chains, a failing token endpoint, lost answers."""

import threading
import time
from collections import Counter

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth, RefreshChainRevoked, TokenEndpointError
from mcp_sync_auth._refresh.manager import _flights
from mcp_sync_auth._util.timeouts import MIN_GRANT_READ, Timeouts
from mcp_sync_auth.testing import Fault, StrictAuthServer

from ..conftest import TTL
from ..helpers import wait_until
from ..workers import echo_call


def gated_refresh(server, auth, n, call):
    """n threads hit an expired token while the token endpoint holds the leader's request; the
    request is let through only once all the others wait on the leader's flight."""
    flight_key = (auth.store.identity, auth.key)
    outcomes, errors = Counter(), []
    guard = threading.Lock()

    def worker():
        try:
            outcome = call()
        except Exception as exc:
            errors.append(exc)
            outcome = type(exc).__name__
        with guard:
            outcomes[outcome] += 1

    server.hold_token_requests()
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    wait_until(lambda: server.held_token_requests == 1, what="the leader's token request")
    wait_until(lambda: _flights.waiting(flight_key) == n - 1, what="every other thread waiting")
    server.release_token_requests()
    for thread in threads:
        thread.join()
    return outcomes, errors


@pytest.mark.parametrize("fault", [Fault.HTTP_500_BEFORE, Fault.RESET_BEFORE])
def test_endpoint_failure_before_rotation_reaches_every_waiter_and_the_chain_survives(
    server, auth, clock, http, fault
):
    clock.advance(TTL + 1)
    server.inject_fault(fault)
    outcomes, errors = gated_refresh(server, auth, 16, lambda: echo_call(http, server.mcp_url, auth))
    assert outcomes == Counter(TokenEndpointError=16)
    assert all(e.transient for e in errors)
    assert server.audit.token_requests == 1  # nobody sent a grant of its own, nobody retried
    # The chain is intact: the next call refreshes once and works.
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.token_requests == 2 and audit.refresh_ok == 1 and audit.reuse_detections == 0


def test_a_slow_grant_is_answered_even_with_a_short_call_timeout(server, make_auth, client_id, clock, http):
    # The MCP call timeout (0.5 s) is shorter than the token endpoint's delay (2 s); the grant has a
    # read timeout of its own (at least MIN_GRANT_READ), so the rotated answer is read, not lost.
    assert server.fault_delay < MIN_GRANT_READ
    auth = make_auth(timeout=0.5)
    auth.save_token(server.mint_tokens(client_id))
    clock.advance(TTL + 1)
    server.inject_fault(Fault.SLOW_AFTER)
    outcomes, errors = gated_refresh(server, auth, 16, lambda: echo_call(http, server.mcp_url, auth))
    assert errors == [] and outcomes == Counter(ok=16)
    audit = server.audit
    assert audit.token_requests == 1 and audit.refresh_ok == 1 and audit.reuse_detections == 0


def test_lost_answer_after_rotation_is_reported_once_and_never_retried(server, make_auth, client_id, clock, http):
    auth = make_auth()
    auth.save_token(server.mint_tokens(client_id))
    clock.advance(TTL + 1)
    server.inject_fault(Fault.RESET_AFTER)
    outcomes, errors = gated_refresh(server, auth, 16, lambda: echo_call(http, server.mcp_url, auth))
    assert outcomes == Counter(TokenEndpointError=16)
    assert all(e.ambiguous for e in errors)
    assert "log in again" in str(errors[0])
    audit = server.audit
    assert audit.token_requests == 1 and audit.refresh_ok == 1  # the server did rotate
    # The cost, as documented: the rotated refresh token is lost, so the chain cannot be continued.
    # The next caller presents the stored one once; the server revokes; we say how to log in again.
    with pytest.raises(RefreshChainRevoked, match="Log in again"):
        auth.access_token()
    with pytest.raises(RefreshChainRevoked):
        auth.access_token()
    assert server.audit.token_requests == 2


def test_malformed_200_is_an_ambiguous_error(server, auth, clock):
    clock.advance(TTL + 1)
    server.inject_fault(Fault.MALFORMED_200_AFTER)
    with pytest.raises(TokenEndpointError) as info:
        auth.access_token()
    assert info.value.ambiguous
    assert server.token_marker not in str(info.value)


def test_invalid_grant_kills_the_chain_for_every_waiter_with_one_request(server, auth, clock, http):
    server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
    server.reset_audit()
    clock.advance(TTL + 1)
    outcomes, errors = gated_refresh(server, auth, 16, lambda: echo_call(http, server.mcp_url, auth))
    assert outcomes == Counter(RefreshChainRevoked=16)
    assert "Log in again" in str(errors[0])
    assert server.audit.token_requests == 1
    # Later calls fail fast from the store's record, with no request at all.
    for _ in range(5):
        with pytest.raises(RefreshChainRevoked):
            auth.access_token()
    assert server.audit.token_requests == 1


def test_a_new_login_revives_a_dead_chain(server, auth, client_id, clock, http):
    server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
    clock.advance(TTL + 1)
    with pytest.raises(RefreshChainRevoked):
        auth.access_token()
    auth.save_token(server.mint_tokens(client_id))
    assert echo_call(http, server.mcp_url, auth) == "ok"


def test_an_answer_that_drips_in_ends_at_the_grants_total_deadline(clock, store_dir):
    # Each byte comes within the read timeout, so only a total deadline ends the grant; a lease
    # (the Redis store) is sized on that deadline, so it must be real.
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, fault_delay=0.5) as slow:
        client_id = slow.register_client()
        auth = MCPAuth(slow.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                       token_endpoint=slow.token_endpoint, clock=clock, interactive=False,
                       timeout=Timeouts(connect=0.5, read=0.5, grant_read=5))
        auth.save_token(slow.mint_tokens(client_id))
        clock.advance(TTL + 1)
        slow.inject_fault(Fault.DRIP_AFTER)
        started = time.monotonic()
        with pytest.raises(TokenEndpointError) as info:
            auth.access_token()
        took = time.monotonic() - started
        assert info.value.ambiguous and "ReadTimeout" in str(info.value)
        # The drip alone takes minutes (a byte per 0.5 s); the grant's hard bound is 21 s.
        assert Timeouts(connect=0.5, read=0.5, grant_read=5).grant_total == 21
        assert took < 90
