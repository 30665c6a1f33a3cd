"""A 1 GiB store file (sparse) on every reader of store files: refused as corrupt, never read whole.

``bench/size_limit.py`` runs each reader in a fresh process and reports how much the peak resident
memory grew during the call (``ru_maxrss`` read after it). Memory growth is deterministic; the time it
reports is not asserted here (a loaded machine), it is in the benchmark's table.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BOUND = 50 * 2**20


def test_a_1_gib_file_is_refused_by_every_reader_without_being_read():
    done = subprocess.run(
        [sys.executable, "-m", "bench.size_limit", "--json"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert {name: result["verdict"] for name, result in results.items()} == {
        "token (interactive=False)": "CorruptTokenCache, moved aside",
        "status": "exit 1, moved aside",
        "load under the lock": "CorruptTokenCache, moved aside",
        "leftover recovery": "removed, chain at generation 1",
        "registration": "ignored (corrupt)",
    }
    for name, result in results.items():
        assert result["rss_growth"] < BOUND, (name, result)
