"""`mcp-sync-auth demo`, the first command of the README, run as a newcomer would run it."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mcp_sync_auth.cli.main import main
from mcp_sync_auth.demo.protocol import OURS, WorkerConfig
from mcp_sync_auth.demo.report import SideResult, is_clean
from mcp_sync_auth.demo.timing import early_refreshes, fresh_time
from mcp_sync_auth.demo.workers import worker_main

ROOT = Path(__file__).resolve().parent.parent


def result_of(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("RESULT ") :])


def test_the_demo_with_its_defaults(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    env.pop("OAUTHLIB_INSECURE_TRANSPORT", None)  # our side must not need it
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mcp_sync_auth.cli", "demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    result = result_of(done.stdout)
    options = result["options"]
    cycles = options["cycles"]
    naive, ours = result["naive"], result[OURS]

    # The naive side: reuse detected, the chain revoked, calls failing.
    assert naive["reuse_detections"] >= 1
    assert naive["chain_alive"] is False
    assert naive["calls_failed"] > 0
    assert naive["refresh_grants"] > cycles

    # Ours: one refresh grant per expiry, every call OK, the chain alive. Expiry is real time here, so a
    # loaded machine can make a cycle's calls outlast a token's fresh time: the token expires again and
    # costs one more grant. What holds on any machine: every cycle needs a grant, and no grant comes while
    # the token before it is still fresh (early_refreshes counts those, from the server's grant times).
    assert result["clean"] is True
    assert ours["calls"] == cycles * options["processes"] * options["threads"] * options["calls"]
    assert ours["calls_ok"] == ours["calls"] and ours["calls_failed"] == 0
    assert ours["refresh_grants"] >= cycles
    assert ours["refresh_failed"] == 0 and ours["early_refreshes"] == 0
    assert ours["reuse_detections"] == 0
    assert ours["chain_alive"] is True

    # What a person reads: progress per cycle, then the table.
    for cycle in range(1, cycles + 1):
        assert f"cycle {cycle}/{cycles}" in done.stdout
    for label in ("calls OK", "calls failed", "refresh grants", "reuse detections", "chain alive", "time in calls"):
        assert label in done.stdout
    assert list(temp.iterdir()) == []  # the temporary folder is gone
    print(f"\n  demo: {elapsed:.1f} s, {ours['refresh_grants']} grants for {cycles} expiries, "
          f"longest cycle {ours['longest_cycle']:.2f} s")  # measured, not asserted: it depends on the machine


def side(**overrides):
    values = dict(
        calls=12, calls_ok=12, failures={}, refresh_grants=3, refresh_failed=0, early_refreshes=0,
        reuse_detections=0, chain_alive=True, seconds=0.1, longest_cycle=0.05,
    )
    values.update(overrides)
    return SideResult(**values)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(calls_ok=11, failures={"HTTP 401 from the MCP server": 1}),
        dict(refresh_grants=2),
        dict(refresh_failed=1, refresh_grants=4),
        dict(early_refreshes=1, refresh_grants=4),
        dict(reuse_detections=1),
        dict(chain_alive=False),
    ],
)
def test_anything_short_of_clean_is_not_clean(overrides):
    assert is_clean(side(), cycles=3)
    assert not is_clean(side(**overrides), cycles=3)


def test_an_extra_expiry_inside_a_long_cycle_is_still_one_grant_per_expiry():
    # Calls that outlast a token need one more grant; a grant while the token is fresh is never right.
    assert is_clean(side(refresh_grants=4, longest_cycle=1.8), cycles=3)
    assert fresh_time(2.0) == 1.5  # MCPAuth's refresh window opens at a quarter of the lifetime
    assert early_refreshes([0.0, 2.1, 3.6, 5.2], ttl=2.0) == 0
    assert early_refreshes([0.0, 2.1, 2.2], ttl=2.0) == 1


def test_a_worker_that_cannot_start_stops_the_run_at_once():
    barrier = threading.Barrier(2)
    reports = queue.Queue()
    config = WorkerConfig(OURS, 0, "http://127.0.0.1:1/mcp", threads=1, cycles=1, calls=1, store_dir=None)
    worker_main(config, barrier, reports)
    assert barrier.broken
    assert "store folder" in reports.get_nowait().error


@pytest.mark.parametrize("option", ["--threads=0", "--processes=-1", "--cycles=x", "--token-ttl=0.5"])
def test_bad_options_are_usage_errors(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", option])
    assert exit_info.value.code == 2
