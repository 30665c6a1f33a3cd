"""A fleet under faults: lease holders killed at each fault point or frozen with their grant in flight,
a host cut off from Redis during a refresh, Redis restarted mid-run. Every chain death happens in a
named window (RELIABILITY.md) and is counted; no newer generation is ever wiped; nothing retries in
a loop.

The grant's deadline is 21 s here (Timeouts(0.5, 0.5, grant_read=5).grant_total): a successor waits
that long for a grant marked in flight, so these tests wait that long too.
"""

import os
import signal
import time
from collections import Counter

import pytest

from mcp_sync_auth import RedisTokenStore
from mcp_sync_auth._util.timeouts import Timeouts

from ..conftest import TTL
from ..workers import make_auth
from .driver import drive_fleet, start_on
from .fault_workers import call_once, serve_calls

TIMEOUTS = Timeouts(connect=0.5, read=0.5, grant_read=5)


def _logged_in_config(server, redis_server, clock):
    """A chain of its own (a client of its own), logged in once through Redis; the hosts' workers
    find the store through their own $MCP_SYNC_AUTH_STORE."""
    client_id = server.register_client()
    config = dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        timeout=TIMEOUTS, lock_timeout=90.0, store_from_environment=True,
    )
    make_auth(dict(config, store_from_environment=False, redis_url=redis_server.url), clock).save_token(
        server.mint_tokens(client_id)
    )
    return config


@pytest.fixture
def config(server, redis_server, clock):
    return _logged_in_config(server, redis_server, clock)


def stored(redis_server, config, clock):
    auth = make_auth(dict(config, store_from_environment=False, redis_url=redis_server.url), clock)
    return RedisTokenStore.from_url(redis_server.url).load(auth.key)


def _frozen_with_its_grant_answered(spawn, server, fleet, clock, config, results):
    """At an expiry, a holder on the first host is SIGSTOPped with its grant at the server, which then
    rotates and answers into the frozen socket; a process on the second host then wants the chain."""
    clock.advance(TTL + 1)
    server.hold_token_requests()
    holder = start_on(fleet[0], spawn, call_once, (config, clock, results))
    server.wait_for_held_token_requests(1, timeout=60)
    freeze(holder)
    server.release_token_requests()
    return holder, start_on(fleet[1], spawn, call_once, (config, clock, results))


def freeze(process):
    os.kill(process.pid, signal.SIGSTOP)
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)


def thaw(process):
    os.kill(process.pid, signal.SIGCONT)


# Per fault point: what the next host gets, the reuse detections, the grants in all, and whether the
# chain ends dead (its record then says so at generation 2, where a live one is at 2 as well).
KILLED_AT = {
    "before-grant": ("ok", 0, 1, False),  # nothing was sent: the next host refreshes after the deadline
    "after-grant-before-write": ("RefreshChainRevoked", 1, 2, True),  # window 1: the set died with it
    "during-write": ("ok", 0, 1, False),  # the commit was in Redis: the next host adopts it, no grant
}


def test_a_lease_holder_killed_at_each_fault_point(spawn, server, redis_server, fleet, clock):
    # One chain per fault point (a client of its own each), all at once: the waits overlap.
    configs = {point: _logged_in_config(server, redis_server, clock) for point in KILLED_AT}
    clock.advance(TTL + 1)
    results = {point: spawn.Queue() for point in KILLED_AT}
    holders = {
        point: start_on(fleet[0], spawn, call_once, (configs[point], clock, results[point]),
                        MCP_SYNC_AUTH_FAULTPOINT=point)
        for point in KILLED_AT
    }
    for holder in holders.values():
        holder.join(60)
        assert holder.exitcode == -signal.SIGKILL
    others = [start_on(fleet[1], spawn, call_once, (configs[point], clock, results[point])) for point in KILLED_AT]
    outcomes = {point: results[point].get(timeout=120) for point in KILLED_AT}
    for other in others:
        other.join(30)
    audit = server.audit
    assert outcomes == {point: expected[0] for point, expected in KILLED_AT.items()}
    assert audit.reuse_detections == sum(expected[1] for expected in KILLED_AT.values())
    assert audit.grants["refresh_token"] == sum(expected[2] for expected in KILLED_AT.values())  # no storm
    for point, (_, _, _, dead) in KILLED_AT.items():
        record = stored(redis_server, configs[point], clock)
        assert (record.is_dead, record.generation) == (dead, 2), point


def test_a_holder_frozen_past_the_lease_but_within_its_grants_deadline_keeps_the_chain(
    spawn, server, redis_server, fleet, clock, config
):
    config = dict(config, redis_options={"lease": 1.0})
    results = spawn.Queue()
    holder, other = _frozen_with_its_grant_answered(spawn, server, fleet, clock, config, results)
    time.sleep(3)  # the scenario: three lease lengths frozen (a 1 s lease nobody renews would be gone)
    assert results.empty()  # the other host waits: a grant is marked in flight
    thaw(holder)
    assert Counter(results.get(timeout=60) for _ in range(2)) == Counter(ok=2)
    holder.join(30), other.join(30)
    audit = server.audit
    assert audit.grants["refresh_token"] == 1 and audit.reuse_detections == 0
    assert stored(redis_server, config, clock).generation == 2


def test_a_holder_frozen_past_its_grants_deadline_costs_the_chain_once_and_wipes_nothing(
    spawn, server, redis_server, fleet, clock, config
):
    results = spawn.Queue()
    holder, other = _frozen_with_its_grant_answered(spawn, server, fleet, clock, config, results)
    # Window 2: past the deadline, the successor presents the token once; the server had rotated.
    assert results.get(timeout=120) == "RefreshChainRevoked"
    thaw(holder)
    # Thawed past its grant's deadline, it drops the answer (a successor may have spent the token
    # since): an ambiguous TokenEndpointError, no commit, no second grant.
    assert results.get(timeout=60) == "TokenEndpointError"
    holder.join(30), other.join(30)
    audit = server.audit
    assert audit.reuse_detections == 1 and audit.grants["refresh_token"] == 2  # no storm
    record = stored(redis_server, config, clock)
    assert record.is_dead and record.generation == 2  # the verdict stands: the late commit wiped nothing


def test_a_host_cut_off_during_its_refresh_stores_the_set_when_its_link_returns(
    spawn, server, redis_server, fleet, clock, config
):
    clock.advance(TTL + 1)
    commands, results, others = spawn.Queue(), spawn.Queue(), spawn.Queue()
    server.hold_token_requests()
    holder = start_on(fleet[0], spawn, serve_calls, (config, clock, commands, results))
    commands.put("call")
    server.wait_for_held_token_requests(1, timeout=60)
    fleet[0].cut()
    server.release_token_requests()
    assert results.get(timeout=60) == "ok"  # it has the rotated set, which Redis could not take
    other = start_on(fleet[1], spawn, call_once, (config, clock, others))
    fleet[0].restore()
    commands.put("call")  # its next call stores the set (the in-flight mark lets its own process in)
    assert results.get(timeout=60) == "ok"
    assert others.get(timeout=60) == "ok"  # the other host adopted it
    commands.put("stop")
    holder.join(30), other.join(30)
    audit = server.audit
    assert audit.grants["refresh_token"] == 1 and audit.reuse_detections == 0
    assert stored(redis_server, config, clock).generation == 2


def test_redis_restarted_hard_between_expiries_loses_nothing(spawn, server, redis_server, fleet, clock, config):
    cycles = iter(range(6))

    def between_cycles():
        if next(cycles) in (2, 4):
            redis_server.restart(hard=True)  # SIGKILL; the append-only file (fsync always) brings it back
        clock.advance(TTL + 1)

    config = dict(config, threads=4, cycles=6)
    totals = drive_fleet(spawn, fleet, clock, config, per_host=2, between_cycles=between_cycles)
    assert totals == Counter(ok=3 * 2 * 4 * 6)
    audit = server.audit
    assert audit.grants["refresh_token"] == 6 and audit.reuse_detections == 0
    assert stored(redis_server, config, clock).generation == 7
