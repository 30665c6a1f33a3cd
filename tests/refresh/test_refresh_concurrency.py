"""The heart of the library: one refresh grant per expiry, whatever the number of threads and processes.

Every test here runs against StrictAuthServer, which rotates refresh tokens on every use and revokes the
whole chain when a used one comes back. The first test proves that this server does kill the chain of a
naive client, so the others can fail.
"""

import builtins
import itertools
import os
import threading
from collections import Counter

import pytest
from requests_oauthlib import OAuth2Session

from mcp_sync_auth import MCPAuth, MemoryTokenStore

from ..conftest import TTL
from ..workers import drive_cycles, echo_call, expire_or_revoke, run_cycles


def run_threads(n, call):
    """n threads make one call each at the same moment; returns a Counter of outcomes."""
    barrier = threading.Barrier(n)
    outcomes = Counter()
    guard = threading.Lock()

    def worker():
        barrier.wait()
        try:
            outcome = call()
        except Exception as exc:
            outcome = type(exc).__name__
        with guard:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_naive_clients_lose_the_chain(server, client_id, clock, monkeypatch):
    """requests-oauthlib's auto-refresh, one session per thread (the usual recipe): the chain dies."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    token = server.mint_tokens(client_id)
    clock.advance(TTL + 1)
    token["expires_at"] = 1  # the sessions see the token expired, as after a real wait

    def call():
        session = OAuth2Session(
            client_id,
            token=dict(token),
            auto_refresh_url=server.token_endpoint,
            auto_refresh_kwargs={"client_id": client_id, "resource": server.mcp_url},
            token_updater=lambda new: None,
        )
        return echo_call(session, server.mcp_url, None)

    outcomes = run_threads(8, call)
    audit = server.audit
    assert audit.grants["refresh_token"] == 8
    assert audit.reuse_detections >= 1
    assert not server.is_chain_alive(token["refresh_token"])
    assert outcomes["ok"] < 8


def test_64_threads_20_expiries_exactly_20_grants(server, auth, clock, http):
    for _ in range(20):
        clock.advance(TTL + 1)
        outcomes = run_threads(64, lambda: echo_call(http, server.mcp_url, auth))
        assert outcomes == Counter(ok=64)
    audit = server.audit
    assert audit.grants["refresh_token"] == 20
    assert audit.refresh_ok == 20
    assert audit.reuse_detections == 0
    assert audit.revocations == 0


def test_64_threads_tokens_revoked_early_401_path(server, auth, http):
    for _ in range(5):
        server.revoke_access_tokens()
        outcomes = run_threads(64, lambda: echo_call(http, server.mcp_url, auth))
        assert outcomes == Counter(ok=64)
    audit = server.audit
    assert audit.grants["refresh_token"] == 5
    assert audit.reuse_detections == 0
    # No thread saw more than one 401 per cycle (the resend worked the first time); threads that
    # started after the refresh had landed sent the new token straight away and saw none.
    assert 5 <= audit.mcp_unauthorized <= 5 * 64


def drive_processes(spawn, server, clock, config, processes, between_cycles):
    barrier = spawn.Barrier(processes + 1)
    results = spawn.Queue()
    workers = [
        spawn.Process(target=run_cycles, args=(config, clock, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    return drive_cycles(workers, barrier, results, config["cycles"], between_cycles)


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_4_processes_16_threads_10_cycles_one_grant_each(spawn, server, auth, clock, store_dir, client_id, path):
    config = dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir), threads=16, cycles=10,
    )
    totals = drive_processes(spawn, server, clock, config, processes=4,
                             between_cycles=expire_or_revoke(path, server, clock))
    assert totals == Counter(ok=4 * 16 * 10)
    audit = server.audit
    assert audit.grants["refresh_token"] == 10
    assert audit.reuse_detections == 0
    assert audit.revocations == 0


class CountingStore(MemoryTokenStore):
    def __init__(self):
        super().__init__()
        self.locks_taken = 0

    def lock(self, key, timeout):
        self.locks_taken += 1
        return super().lock(key, timeout)

    def try_lock(self, key):
        self.locks_taken += 1
        return super().try_lock(key)


def test_two_auth_objects_for_one_chain_share_one_flight(server, client_id, clock, http):
    store = CountingStore()
    first, second = (
        MCPAuth(server.mcp_url, store=store, client_id=client_id, token_endpoint=server.token_endpoint, clock=clock)
        for _ in range(2)
    )
    first.save_token(server.mint_tokens(client_id))
    store.locks_taken = 0
    for cycle in range(5):
        clock.advance(TTL + 1)
        turns = itertools.count()
        outcomes = run_threads(32, lambda: echo_call(http, server.mcp_url, (first, second)[next(turns) % 2]))
        assert outcomes == Counter(ok=32)
        # One leader for both objects: the store's lock was taken once per expiry, not once per object.
        assert store.locks_taken == cycle + 1
    assert server.audit.grants["refresh_token"] == 5


def test_proactive_refresh_inside_the_skew_without_a_401(server, auth, clock, http):
    clock.advance(TTL - 30)  # inside the 60 s skew (capped at a quarter of 300 s = 75 s)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.grants["refresh_token"] == 1
    assert audit.mcp_unauthorized == 0


def test_fast_path_touches_no_file_and_no_network(server, auth, store_dir, http, monkeypatch):
    auth.access_token()
    requests_before = server.audit.token_requests
    opened = []
    real_open, real_os_open = builtins.open, os.open
    monkeypatch.setattr(builtins, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a) or real_os_open(*a, **k))
    for _ in range(100):
        auth.access_token()
    monkeypatch.undo()
    assert opened == []
    assert server.audit.token_requests == requests_before
