"""The stall measure of the benchmark (bench/stall_profile.py, bench/stall_grid.py): what it counts, not how fast.

The stall run adds a probe process that posts refresh grants of its own to the same server; these tests
check that the chain's grants are still counted exactly (1.00 per expiry, the probe's left out), that the
profile lines up exactly one granting process per expiry, and that the goals' verdicts follow the figures.
No assertion is about speed.
"""

import json
import math
import os

import pytest

from bench import stall_grid
from bench.fleet import unavailable as redis_unavailable
from bench.scenarios import stall
from bench.stall_profile import GOAL_P99_SHARE, TODAY_IN_CALL_P99, goals, where_the_time_goes


def test_the_stall_run_counts_the_chains_grants_not_the_probes_and_profiles_every_expiry():
    result = stall(threads=4, processes=2, expiries=2, rtt_count=3)
    assert result.errors == []
    # The server also answered the probe: 1 warm-up + 1 per burst (5 bursts) = 6 grants on its own chain.
    assert result.grants == result.expiries == 2
    assert result.reuse_detections == 0 and result.chain_alive
    assert result.calls_ok == 4 * 2 * (1 + 2 * 2) and result.calls_failed == 0
    assert result.probe_expiry["count"] == 2 and result.probe_baseline["count"] == 2
    assert not math.isnan(result.e2e_added_p50) and not math.isnan(result.e2e_added_p99)
    profile = result.profile
    assert profile["granters_per_expiry"] == [1, 1]  # exactly one process sent the grant, each expiry
    assert profile["segments"]["refresh grant"]["count"] == 2
    assert profile["leader_grant"]["count"] == 2
    assert profile["cross_process_wake"]["count"] == 2  # the other process, once per expiry
    lines = where_the_time_goes(result.figures())
    assert any(line.startswith("refresh grant") for line in lines)
    assert any(line.startswith("other processes: lock release -> set seen") for line in lines)


def _figures(e2e_p50, probe_p50, in_call_p99):
    return {
        "e2e_added_p50": e2e_p50,
        "e2e_added_p99": e2e_p50,
        "added_p50": e2e_p50,
        "added_p99": in_call_p99,
        "probe_expiry": {"p50": probe_p50},
        "refresh_rtt": {"p50": 0.001},
    }


def test_the_goals_pass_and_miss_on_the_figures():
    limit = GOAL_P99_SHARE * TODAY_IN_CALL_P99
    assert [met for _, _, met in goals(_figures(0.010, 0.005, limit - 0.001))] == [True, True]
    assert [met for _, _, met in goals(_figures(0.0101, 0.005, limit))] == [False, False]
    assert [met for _, _, met in goals({})] == [None, None]  # nothing measured: no verdict
    assert where_the_time_goes({}) == ["(no profile: the timers were off)"]


def test_the_grid_runs_file_and_redis_cells_in_one_run_and_reports_json(capsys):
    stores = "file,redis"
    why = redis_unavailable()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the Redis cells cannot run: {why}")
        stores = "file"
    status = stall_grid.main(["--threads", "2", "--processes", "1,2", "--expiries", "1", "--stores", stores, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["problems"] == []
    shapes = [(cell["store"], cell["threads"], cell["processes"]) for cell in data["cells"]]
    expected = [("file", 2, 1), ("file", 2, 2)] + ([("redis", 2, 1), ("redis", 2, 2)] if "redis" in stores else [])
    assert shapes == expected
    for cell in data["cells"]:
        assert cell["grants"] == cell["refresh_ok"] == cell["expiries"] == 1
        assert cell["reuse_detections"] == 0 and cell["chain_alive"] and cell["calls_failed"] == 0
        assert cell["figures"]["profile"]["granters_per_expiry"] == [1]
        assert cell["figures"]["probe_expiry"]["count"] == 1
    assert data["goals"] == []  # no 64 x 4 cell in this run: no verdict


def test_the_grid_refuses_unknown_stores_and_bad_numbers():
    for argv in (["--stores", "nfs"], ["--threads", "0"], ["--processes", "two"], ["--expiries", "0"]):
        with pytest.raises(SystemExit):
            stall_grid.main(argv)
