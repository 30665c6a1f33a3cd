"""``python -m bench.wakeup`` and ``python -m bench.herd`` run and count what they say; never how fast.

The wake-up trials are real: a spawned waiter process per way, blocked on a real lock (or gate) of a file
store that this process holds; a trial fails loudly if the waiter ever saw the wrong generation.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args):
    done = subprocess.run(
        [sys.executable, "-m", *args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_wakeup_measures_every_way_from_the_release_and_from_the_rename():
    found = _run("bench.wakeup", "--trials", "4")
    assert set(found["ways"]) == {"poll", "kernel", "gate"}
    for by_since in found["ways"].values():
        assert set(by_since) == {"release", "rename"}
        assert {row["trials"] for row in by_since.values()} == {4}


def test_herd_counts_each_step_per_thread():
    found = _run("bench.herd", "--threads", "8", "--rounds", "2")
    assert found["threads"] == 8
    assert set(found["rows"]) == {"fast path", "join", "wake"}
    assert all(row["p50_us"] > 0 for row in found["rows"].values())
