"""``python -m bench.scale``: both parts in one run, every row the issue asks for, and its checks.

The quick run is a real one (spawned worker processes against StrictAuthServer, a redis-server of each
Redis cell's own); the assertions are about what it counted and which rows it wrote, never how fast.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import runner, scale
from bench.fleet import unavailable as redis_unavailable
from bench.model import BenchResults, from_json
from bench.report import markdown
from bench.report import to_json as report_json
from bench.stall_grid import GridCell, GridRun

ROOT = Path(__file__).resolve().parent.parent


def _needs_redis():
    why = redis_unavailable()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the Redis parts of bench.scale cannot run: {why}")
        pytest.skip(why)


def test_the_full_plan_has_every_row_the_issue_asks_for():
    names = scale.row_names(scale.FULL)
    for chains in ("1 chain", "100 chains", "10,000 chains"):
        assert f"fast path CPU per call, {chains}" in names
        assert f"memory per chain, {chains}" in names
    assert "100,000 chains touched once, held" in names
    for store in ("file", "redis"):
        assert f"status, 10,000 chains, {store} store" in names
        assert f"records(), 10,000 chains, {store} store" in names
    assert (scale.FULL.threads, scale.FULL.processes, scale.FULL.stores) == ((1, 8, 64), (1, 4, 8), ("file", "redis"))


def test_quick_run_writes_both_parts_one_grant_per_expiry_and_no_violation(tmp_path):
    _needs_redis()
    saved = tmp_path / "scale.json"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "bench.scale", "--quick", "--save", str(saved)], check=False,
                          cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "summary:" in done.stdout and "load average at start" in done.stdout
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["mode"] == "quick" and data["parts"] == ["chains", "stall"]
    assert data["problems"] == [] and data["not_measured"] == {}
    assert data["load_start"] is not None and data["load_end"] is not None and isinstance(data["loaded"], bool)

    rows = data["chains"]["rows"]
    assert [row["name"] for row in rows] == scale.row_names(scale.QUICK)
    assert all(row["value"] is not None for row in rows)  # every row measured, Redis included
    for chains in ("1 chain", "100 chains", "10,000 chains"):  # the quick run keeps the full fast-path counts
        assert any(row["name"] == f"fast path CPU per call, {chains}" for row in rows)
    raw = data["chains"]["data"]
    assert [found["chains"] for found in raw["fast_path"]] == [1, 100, 10_000]
    once = raw["touched_once"]
    assert once["chains"] == 10_000 and once["registry"]["live"] < once["chains"]  # bounded
    assert raw["listing"]["redis"]["records_round_trips"] > 0

    cells = data["stall"]["cells"]
    shapes = [(cell["store"], cell["threads"], cell["processes"]) for cell in cells]
    assert shapes == [(store, n, p) for store in ("file", "redis") for p in (1, 2) for n in (1, 8)]
    for cell in cells:
        assert cell["grants_per_expiry"] == 1.0, cell["store"]
        assert cell["violations"] == 0 and cell["ok"] is True
        assert cell["grants"] == cell["refresh_ok"] == cell["expiries"] == 2
        assert cell["calls_ok"] == cell["threads"] * cell["processes"] * (1 + 2 * 2)


def _cell(**changes):
    good = GridCell("file", threads=8, processes=2, expiries=3, grants=3, refresh_ok=3, chain_alive=True,
                    calls_ok=112)
    return dataclasses.replace(good, **changes)


def test_a_cell_fails_the_run_unless_one_grant_per_expiry_and_no_violation():
    run = scale.ScaleRun(scale.QUICK, ["stall"], "test", "now", {"usable_cores": 2}, None)
    run.stall = GridRun("quick", "test", "now", {}, None, [8], [2], ["file"], 3, cells=[_cell()])
    assert scale.cell_ok(_cell()) and scale.violations(_cell()) == 0 and run.problems() == []
    for bad, count in (
        (_cell(grants=6, refresh_ok=6), 0),  # 2.00 grants per expiry, nothing else wrong
        (_cell(grants=2, refresh_ok=2), 0),  # an expiry never refreshed
        (_cell(grants=4, refresh_ok=3), 1),  # a refused grant
        (_cell(reuse_detections=1, chain_alive=False), 2),
        (_cell(calls_failed=1), 1),
        (_cell(errors=["Traceback ...\nBrokenBarrierError"]), 1),
    ):
        assert scale.violations(bad) == count, bad
        assert not scale.cell_ok(bad), bad
        run.stall.cells = [bad]
        assert len(run.problems()) == 1


def test_chains_touched_once_must_leave_a_bounded_memory():
    bounded = {"touched_once": {"chains": 10_000, "registry": {"recent": 4096, "unsaved": 0, "live": 4096}}}
    unbounded = {"touched_once": {"chains": 10_000, "registry": {"unbounded": 10_000}}}  # an old checkout
    assert scale.chains_problems(bounded) == []
    assert scale.chains_problems(unbounded)


def test_the_suite_runner_reports_the_scale_run_and_fails_on_its_problems():
    """``python -m bench --only scale`` keeps bench.scale's JSON in its results: the Markdown shows its
    report, and its problems are the run's (exit status 1), also when rendered again from the JSON."""
    machine = {"cpu": "test", "usable_cores": 2, "logical_cpus": 2, "python": "CPython", "platform": "test",
               "versions": {}}
    results = BenchResults("quick", "test", "now", machine, None, ["mcp_sync_auth"], {}, {})
    assert runner._problems(results) == []
    problem = "stall file N=8 P=2: grants per expiry 2.00 (must be 1.00), 0 violations (must be 0)"
    results.scale = {"report": ["benchmark of scale (quick)", "  FAILED:", f"    - {problem}"], "problems": [problem]}
    assert runner._problems(results) == [problem]
    assert "## 7. Scale (`python -m bench.scale`)" in markdown(results) and problem in markdown(results)
    rebuilt = from_json(json.loads(json.dumps(report_json(results), default=str)))
    assert rebuilt.scale == results.scale and runner._problems(rebuilt) == [problem]
