"""Processes that die or fork in the middle of the refresh protocol."""

import os
import signal
import threading

import pytest

from mcp_sync_auth import FileTokenStore, RefreshChainRevoked
from mcp_sync_auth._refresh.manager import _flights

from ..conftest import TTL
from ..helpers import call_in_fork, echo_in_new_session, start_lock_holder, wait_until
from ..workers import echo_call, run_cycles


def test_a_process_killed_while_holding_the_lock_does_not_block_the_others(server, auth, clock, store_dir, http):
    holder = start_lock_holder(store_dir, auth.key)  # inside the critical section until killed
    clock.advance(TTL + 1)
    result = {}
    caller = threading.Thread(target=lambda: result.update(outcome=echo_call(http, server.mcp_url, auth)))
    caller.start()
    wait_until(lambda: _flights.waiting((auth.store.identity, auth.key)) == 0, what="a refresh in flight")
    assert caller.is_alive()  # blocked on the dead-to-be holder's lock
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    caller.join(30)
    assert result == {"outcome": "ok"}
    assert server.audit.refresh_ok == 1 and server.audit.reuse_detections == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_during_a_refresh_can_refresh(server, auth, clock):
    clock.advance(TTL + 1)
    server.hold_token_requests()
    leader = threading.Thread(target=auth.access_token)
    leader.start()
    wait_until(lambda: server.held_token_requests == 1, what="the parent's refresh at the server")
    # The parent's leader thread does not exist in the child; the child must neither hang on its
    # flight nor present the refresh token the parent is spending: it waits for the lock, then adopts.
    child = call_in_fork(lambda: echo_in_new_session(server, auth))
    server.release_token_requests()
    leader.join(30)
    assert child() == 0
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0


def test_invalid_grant_across_two_processes_one_request_all_revoked(spawn, server, auth, clock, store_dir, client_id):
    server.revoke_chain_of(FileTokenStore(store_dir).load(auth.key).tokens.refresh_token)
    server.reset_audit()
    config = dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir), threads=8, cycles=2,
    )
    barrier = spawn.Barrier(3)
    results = spawn.Queue()
    workers = [spawn.Process(target=run_cycles, args=(config, clock, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for _ in range(config["cycles"]):
        clock.advance(TTL + 1)
        barrier.wait(timeout=120)
        barrier.wait(timeout=120)
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert outcomes == [{"RefreshChainRevoked": 16}] * 2
    audit = server.audit
    assert audit.token_requests == 1
    assert len(audit.presented_refresh_tokens) == 1
    with pytest.raises(RefreshChainRevoked):
        auth.access_token()
    assert server.audit.token_requests == 1
