"""The benchmark's pass/fail rule, inside the test-suite: exactly one refresh grant per expiry event.

``python -m bench`` (quick mode, run by CI) measures every contender; here only ours runs, in spawned
processes against StrictAuthServer, as the quick mode does it: N threads x P processes, a shared clock
jumping past the token's lifetime, everybody calling at once after each jump.
"""

import dataclasses
import json
import os

import pytest

from bench.check import problems_with_ours, quick_check_ours
from bench.contenders import BY_NAME
from bench.fleet import FleetCell, FleetResult, fleet, unavailable
from bench.model import BenchResults, from_json
from bench.report import _fleet_section, to_json
from bench.scenarios import GrantsCell, grants_cell


def test_quick_check_exactly_one_grant_per_expiry_for_mcp_sync_auth():
    cells, problems = quick_check_ours(threads=(1, 8), processes=(1, 2), expiries=3)
    assert problems == []
    assert [(cell.threads, cell.processes) for cell in cells] == [(1, 1), (8, 1), (1, 2), (8, 2)]
    for cell in cells:
        assert cell.grants_per_expiry == 1.0, cell
        assert cell.refresh_ok == cell.expiries == 3
        assert cell.reuse_detections == 0
        assert cell.chain_alive
        assert cell.calls_ok == cell.threads * cell.processes * (1 + cell.expiries)
        assert cell.calls_failed == 0


def test_the_check_fails_unless_grants_per_expiry_is_one():
    good = GrantsCell("mcp_sync_auth", threads=8, processes=2, expiries=3, grants=3, refresh_ok=3,
                      chain_alive=True, calls_ok=64)
    assert problems_with_ours([good]) == []
    for bad in (
        dataclasses.replace(good, grants=6, refresh_ok=6),  # 2.00 per expiry
        dataclasses.replace(good, grants=2, refresh_ok=2),  # 0.67: an expiry was never refreshed
        dataclasses.replace(good, grants=4, refresh_ok=3),  # 1.33: one grant refused
        dataclasses.replace(good, reuse_detections=1, chain_alive=False),
        dataclasses.replace(good, calls_failed=1, failures={"RefreshChainRevoked": 1}),
        dataclasses.replace(good, errors=["Traceback ...\nBrokenBarrierError"]),
    ):
        assert problems_with_ours([bad]), bad
    # Only our contender is held to the rule; the others are measured, not judged.
    assert problems_with_ours([dataclasses.replace(good, contender="authlib", grants=48, chain_alive=False)]) == []


def test_the_measurement_sees_a_naive_client_refresh_once_per_thread():
    """The same harness counts 8 grants for one expiry when 8 requests-oauthlib sessions refresh on their own,
    and sees the server revoke the chain: the 1.00 above is not an artefact of the harness."""
    cell = grants_cell(BY_NAME["requests-oauthlib"], threads=8, processes=1, expiries=1)
    assert not cell.errors
    assert cell.grants_per_expiry == 8.0
    assert cell.reuse_detections >= 1
    assert not cell.chain_alive


def _needs_the_fleet():
    why = unavailable()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the fleet run cannot run: {why}")
        pytest.skip(why)


def test_the_fleet_run_counts_one_grant_per_expiry_over_redis_and_files_and_renders(tmp_path):
    """The quick mode's fleet part, smaller: 2 hosts x 1 process x 4 threads over Redis (and 2 x 4 over
    files), 2 expiries, then the fast path; the check passes, the counters are read, JSON renders again."""
    _needs_the_fleet()
    result = fleet(((2, 1, 4),), expiries=2, fast_calls=200, fast_rounds=3, progress=lambda text: None)
    assert [(c.store, c.hosts, c.processes, c.threads) for c in result.cells] == [("redis", 2, 1, 4), ("file", 1, 2, 4)]
    assert problems_with_ours([], fleet=result) == []
    for cell in result.cells:
        assert cell.grants == cell.refresh_ok == cell.expiries == 2
        assert cell.reuse_detections == 0 and cell.chain_alive
        assert cell.calls_ok == 2 * 4 * (1 + 2 * 2) and cell.calls_failed == 0
        assert cell.added_p99 >= cell.added_p50 > 0
    redis = result.cells[0]
    assert redis.link_connections[0] > 0 and redis.link_connections[1] > 0  # each host went through its own link
    assert redis.commands_expiry.get("evalsha", 0) > 0 and len(redis.commands_by_expiry) == 2
    assert sum(redis.commands_expiry.values()) == sum(redis.commands_by_expiry)  # every expiry cycle summed
    assert redis.commands_baseline == {}  # a valid token in memory: the fast path sends Redis nothing
    cost = result.fast_path
    assert cost is not None and not cost.errors and cost.redis_commands == {}
    assert cost.ratio("call") is not None and cost.ratio("token", cpu=True) is not None

    results = BenchResults("quick", "test", "now", {}, None, ["mcp_sync_auth"], {}, {}, fleet=result)
    markdown = _fleet_section(result)
    assert any("Redis commands per expiry event" in line for line in markdown)
    rebuilt = from_json(json.loads(json.dumps(to_json(results), default=str)))
    assert rebuilt.fleet is not None and rebuilt.fleet.cells == result.cells
    assert rebuilt.fleet.fast_path == cost


def test_the_check_holds_fleet_cells_to_one_grant_per_expiry():
    good = FleetCell("redis", hosts=2, processes=2, threads=8, expiries=5, grants=5, refresh_ok=5,
                     chain_alive=True, calls_ok=352)
    assert problems_with_ours([], fleet=FleetResult([good], None)) == []
    for bad in (
        dataclasses.replace(good, grants=10, refresh_ok=10),
        dataclasses.replace(good, grants=6, refresh_ok=5),
        dataclasses.replace(good, store="file", reuse_detections=1, chain_alive=False),
        dataclasses.replace(good, calls_failed=1, failures={"RefreshChainRevoked": 1}),
        dataclasses.replace(good, errors=["Traceback ...\nBrokenBarrierError"]),
    ):
        assert problems_with_ours([], fleet=FleetResult([bad], None)), bad
    # A machine without Redis is not measured, never failed.
    assert problems_with_ours([], fleet=FleetResult([], None, "redis-server is not on PATH")) == []
