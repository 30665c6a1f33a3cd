"""Ctrl-C never abandons a grant already sent (SIGINT at random moments of a slow grant).

The server rotates on every refresh; an interrupt that threw the answer away would kill the chain.
First the proof that it would: a grant run without the shield, interrupted while in flight, costs
the chain. Then 200 trials with the shield: no chain death, no hang, no leftover lock or temp file.
"""

import os
import signal
import threading

import pytest

from mcp_sync_auth import FileTokenStore, RefreshChainRevoked
from mcp_sync_auth._refresh import shield
from mcp_sync_auth._refresh.manager import _flights
from mcp_sync_auth.testing import Fault, StrictAuthServer

from ..conftest import TTL
from ..helpers import start_lock_holder, wait_until
from ..workers import make_auth
from .interrupt_worker import interrupted_refreshes

GRANT_DELAY = 0.02
TRIALS = 200


@pytest.fixture
def slow_server(clock):
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, fault_delay=GRANT_DELAY) as strict:
        yield strict


def _config(server, store_dir, **extra):
    client_id = server.register_client()
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir), **extra,
    )


def test_without_the_shield_an_interrupt_during_the_grant_kills_the_chain(slow_server, clock, store_dir, monkeypatch):
    # The baseline: run the flight unshielded and interrupt the caller while its grant is in flight.
    monkeypatch.setattr(shield, "shielded", lambda work, what: work())
    config = _config(slow_server, store_dir)
    auth = make_auth(config, clock)
    auth.save_token(slow_server.mint_tokens(config["client_id"]))
    clock.advance(TTL + 1)
    slow_server.hold_token_requests()
    main = threading.get_ident()

    def interrupt_once_the_grant_is_out():
        wait_until(lambda: slow_server.held_token_requests == 1, what="the grant at the server")
        signal.pthread_kill(main, signal.SIGINT)
        slow_server.release_token_requests()

    threading.Thread(target=interrupt_once_the_grant_is_out).start()
    with pytest.raises(KeyboardInterrupt):
        auth.access_token()
    wait_until(lambda: slow_server.audit.refresh_ok == 1, what="the server to rotate")
    with pytest.raises(RefreshChainRevoked):
        make_auth(config, clock).access_token()  # the next run presents the spent token
    assert slow_server.audit.reuse_detections == 1


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_a_ctrl_c_that_the_kernel_hands_to_another_thread_still_ends_a_wait_for_the_lock(
    slow_server, clock, store_dir
):
    # The kernel may deliver a process's SIGINT to any thread; Python then only flags the main
    # thread. A main thread blocked in one unbounded wait for the refresh would sit out the whole
    # lock wait (here: until LockTimeout) before its Ctrl-C took effect.
    config = dict(_config(slow_server, store_dir), lock_timeout=30.0)
    auth = make_auth(config, clock)
    auth.save_token(slow_server.mint_tokens(config["client_id"]))
    clock.advance(TTL + 1)
    holder = start_lock_holder(store_dir, auth.key)  # another process holds the chain's lock
    interrupted = threading.Event()

    def interrupt_the_helper():
        wait_until(lambda: _flights.in_flight((auth.store.identity, auth.key)), what="the refresh under way")
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread: not the main one
        if not interrupted.wait(10):  # a guard, not a synchronisation: a shield that sat it out
            holder.stdin.write("release\n")  # lets the refresh through, which the audit catches
            holder.stdin.flush()

    interrupter = threading.Thread(target=interrupt_the_helper)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            auth.access_token()
        interrupted.set()
    finally:
        interrupter.join()
        holder.communicate("release\n", timeout=30)
    assert slow_server.audit.refresh_ok == 0 and slow_server.audit.reuse_detections == 0
    assert make_auth(config, clock).access_token()  # the chain is intact: one refresh, no reuse
    assert slow_server.audit.refresh_ok == 1 and slow_server.audit.reuse_detections == 0


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_sigint_at_random_moments_of_a_slow_grant_never_costs_the_chain(slow_server, clock, store_dir, spawn):
    config = _config(slow_server, store_dir, trials=TRIALS, window=3 * GRANT_DELAY, seed=20261202)
    make_auth(config, clock).save_token(slow_server.mint_tokens(config["client_id"]))
    slow_server.inject_fault(Fault.SLOW_AFTER, count=10 * TRIALS)  # every grant is slow
    results = spawn.Queue()
    worker = spawn.Process(target=interrupted_refreshes, args=(config, clock, results))
    worker.start()
    report = results.get(timeout=240)
    worker.join(60)
    assert worker.exitcode == 0
    assert report["problems"] == [] and report["hung"] == 0
    assert report["delivered"] == TRIALS  # every trial's signal landed somewhere
    # Where it raised KeyboardInterrupt (all but those Python itself swallowed in a finalizer).
    assert report["interrupted"] + report["finished"] == TRIALS and report["interrupted"] > 0
    # The waiter got the rotated set or, when the interrupt came before any grant, RefreshInterrupted.
    assert set(report["waiter"]) <= {"ok", "RefreshInterrupted"} and sum(report["waiter"].values()) == TRIALS
    audit = slow_server.audit
    assert audit.reuse_detections == 0 and audit.refresh_failed == 0
    assert audit.refresh_ok == report["generation"] - 1  # one stored generation per rotation, none lost
    assert [name for name in os.listdir(store_dir) if name.endswith(".tmp")] == []
    assert FileTokenStore(store_dir).load(make_auth(config, clock).key) is not None
