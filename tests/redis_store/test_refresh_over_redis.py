"""The refresh protocol over Redis, against StrictAuthServer, in real processes: one grant per expiry,
naive Redis stores that lose the chain where ours keeps it, and a Redis that goes away."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from mcp_sync_auth import TokenStoreError
from mcp_sync_auth.testing import Fault, StrictAuthServer

from ..conftest import TTL
from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import expire_or_revoke, make_auth, one_call
from .reporting import ATTEMPTS

NAIVE = "tests.redis_store.naive:"
REPORTING = "tests.redis_store.reporting:"


@pytest.fixture
def slow_server(clock):
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, fault_delay=2.5) as strict:
        yield strict


def _config(server, redis_server, **extra):
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=server.register_client(),
        redis_url=redis_server.url, **extra,
    )


def _logged_in(server, config, clock):
    make_auth(config, clock).save_token(server.mint_tokens(config["client_id"]))


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_4_processes_16_threads_10_cycles_one_grant_each_over_redis(spawn, server, redis_server, clock, path):
    config = _config(server, redis_server, threads=16, cycles=10)
    _logged_in(server, config, clock)
    totals = drive_processes(spawn, server, clock, config, processes=4,
                             between_cycles=expire_or_revoke(path, server, clock))
    assert totals == Counter(ok=4 * 16 * 10)
    audit = server.audit
    assert audit.grants["refresh_token"] == 10 and audit.refresh_ok == 10
    assert audit.reuse_detections == 0 and audit.revocations == 0


@pytest.mark.parametrize("store_class", [NAIVE + "UnrenewedLeaseStore", None])
def test_a_token_endpoint_slower_than_the_lease(spawn, slow_server, redis_server, clock, store_class):
    # A 1 s lease, a grant answered after 2.5 s, two processes at once.
    config = _config(slow_server, redis_server, threads=1, cycles=1, store_class=store_class,
                     redis_options={"lease": 1.0}, lock_timeout=60.0)
    _logged_in(slow_server, config, clock)
    slow_server.inject_fault(Fault.SLOW_AFTER, count=1)  # the first grant rotates, then answers late
    totals = drive_processes(spawn, slow_server, clock, config, processes=2,
                             between_cycles=lambda: clock.advance(TTL + 1))
    audit = slow_server.audit
    if store_class:  # the naive lease ran out: the second holder presented the same refresh token
        assert audit.reuse_detections == 1 and audit.revocations == 1
        assert totals["ok"] < 2
    else:  # ours: the send extended the lease past the grant's deadline; the other adopted
        assert totals == Counter(ok=2)
        assert audit.grants["refresh_token"] == 1 and audit.reuse_detections == 0


@pytest.mark.parametrize("store_class", [NAIVE + "UnlockedFallbackStore", None])
def test_redis_down_at_expiry(spawn, server, redis_server, clock, store_class):
    config = _config(server, redis_server, threads=4, cycles=3, store_class=store_class,
                     redis_options={"socket_timeout": 2, "socket_connect_timeout": 2})
    _logged_in(server, config, clock)
    steps = iter([
        lambda: clock.advance(TTL + 1),  # a normal expiry: every process has read the chain
        lambda: (redis_server.kill(), clock.advance(TTL + 1)),  # Redis gone at the next expiry
        lambda: (redis_server.restart(), clock.advance(0)),  # and back
    ])

    def between_cycles():
        next(steps)()

    totals = drive_processes(spawn, server, clock, config, processes=2, between_cycles=between_cycles)
    audit = server.audit
    if store_class:  # refreshing unlocked, from the last set read: both processes spent the same token
        assert audit.reuse_detections >= 1
    else:  # nothing was sent without Redis; once back, one grant, and the chain lives
        assert totals == Counter(ok=2 * 4 * 2, TokenStoreError=2 * 4)
        assert audit.grants["refresh_token"] == 2 and audit.reuse_detections == 0


def test_with_redis_down_a_valid_token_keeps_working_and_nothing_is_sent(server, redis_server, clock):
    config = _config(server, redis_server, redis_options={"socket_timeout": 2, "socket_connect_timeout": 2})
    _logged_in(server, config, clock)
    auth = make_auth(config, clock)
    first = auth.access_token()
    redis_server.kill()
    assert auth.access_token() == first  # fresh: the store is not even asked
    clock.advance(TTL - 30)  # inside the early-refresh window: a refresh is due but the token works
    assert auth.access_token() == first
    clock.advance(60)  # expired: no lock, so no grant, and our error
    with pytest.raises(TokenStoreError, match=f"127.0.0.1:{redis_server.port}"):
        auth.access_token()
    assert server.audit.grants.get("refresh_token", 0) == 0
    redis_server.restart()
    assert auth.access_token() != first
    assert server.audit.grants["refresh_token"] == 1 and server.audit.reuse_detections == 0



@pytest.mark.parametrize("store_class", ["UnmarkedReporting", "Reporting"])
def test_a_failed_commit_keeps_the_spent_token_from_everyone_else(spawn, server, redis_server, clock, store_class):
    # Process A refreshes, and its commit fails on a Redis that is up (out of memory); its lease is
    # then released normally. B, in another process, finds the lease free and the store holding the
    # spent generation. The in-flight mark keeps B waiting until A stores its set.
    config = _config(server, redis_server, lock_timeout=60.0)
    _logged_in(server, config, clock)
    holder = make_auth(config, clock)
    spent = holder.access_token()
    names = f"mcp-sync-auth:{{{holder.key.stem}}}"
    clock.advance(TTL + 1)
    server.hold_token_requests()
    with ThreadPoolExecutor(1) as pool:
        refreshed = pool.submit(holder.access_token)
        server.wait_for_held_token_requests(1, timeout=30)
        redis_server.command("CONFIG", "SET", "maxmemory", "1")  # every write is refused now: OOM
        server.release_token_requests()
        fresh = refreshed.result(timeout=60)
    assert fresh != spent and server.audit.refresh_ok == 1
    assert redis_server.command("HGET", f"{names}:record", "generation") == b"1"  # the spent one
    redis_server.command("CONFIG", "SET", "maxmemory", "0")

    results = spawn.Queue()
    waiter = spawn.Process(target=one_call, args=(dict(config, store_class=REPORTING + store_class), clock, results))
    waiter.start()
    first_attempt = redis_server.command("BLPOP", ATTEMPTS, 60, timeout=70)
    assert first_attempt is not None, "the other process never tried the lease"
    assert holder.access_token() == fresh  # A stores its set now that Redis takes writes again
    outcome, token = results.get(timeout=120)
    waiter.join(30)
    audit = server.audit
    if store_class == "UnmarkedReporting":  # no mark: B took the free lease, presented the spent token
        assert first_attempt[1] == b"taken"
        assert outcome == "RefreshChainRevoked" and audit.reuse_detections == 1
    else:  # refused while A's grant was unstored, then woken by A's write: B adopts A's set
        assert first_attempt[1] == b"refused"
        assert (outcome, token) == ("ok", fresh)
        assert audit.grants["refresh_token"] == 1 and audit.reuse_detections == 0 and audit.revocations == 0
        assert redis_server.command("EXISTS", f"{names}:inflight") == 0
