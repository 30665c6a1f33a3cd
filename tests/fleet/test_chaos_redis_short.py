"""The short chaos run on the Redis store (``python -m bench.chaos --store redis --short``): 3 hosts,
each through its own link to one redis-server, 3 chains in parallel, 36 expiry events, with every
kind of fault (kills at fault points and at random, worker freezes short and long, link cuts and
freezes, hard Redis restarts, token endpoint faults). Seeded; the first fault of each kind is
scheduled by the driver, so each happens whatever the timing. The run must end with 0 violations.
"""

import pytest

from bench import chaos_redis
from bench.chaos_redis_replay import format_report
from mcp_sync_auth.testing import Fault
from mcp_sync_auth.testing.redis_server import find_redis_server

pytestmark = pytest.mark.skipif(find_redis_server() is None, reason="needs redis-server on PATH")

SEED = 20240611


def test_chaos_on_redis_over_3_hosts_short_run_has_no_violation(tmp_path):
    report = chaos_redis.run(chaos_redis.RedisChaosConfig.short(seed=SEED), tmp_path)
    print("\n" + format_report(report))
    assert report["violations"] == [] and report["violation_count"] == 0
    assert report["expiry_events"] == 36 and report["expiries_stuck"] == 0 and report["hangs"] == 0
    faults = report["faults"]
    # The driver's faults: each kind is scheduled once first (retried until it could be done).
    assert faults["random_kills"] >= 1 and faults["redis_restarts"] >= 1
    freezes = faults["freezes"]
    assert sum(n for kind, n in freezes.items() if kind.startswith("short")) >= 1
    assert sum(n for kind, n in freezes.items() if kind.startswith("long")) >= 1
    links = faults["link_faults"]
    assert sum(n for kind, n in links.items() if kind.startswith("link-cut")) >= 1
    assert sum(n for kind, n in links.items() if kind.startswith("link-freeze")) >= 1
    # The fault points are met by whichever worker leads a grant: at least one of them, whatever the timing.
    points = faults["kills_at_fault_points"]
    assert sum(points.values()) + faults["interrupts"] + faults["reserve_refused_by_fault_point"] >= 1
    # Token endpoint faults: one of each is injected first, and again until a grant met it.
    assert set(faults["token_endpoint_served"]) == {fault.name for fault in Fault}
    # Every chain death falls into a documented window (else it would be a violation above).
    assert sum(report["chain_deaths_by_window"].values()) == report["chain_deaths"]
    assert report["lease_checks"].get("lost", 0) == 0
