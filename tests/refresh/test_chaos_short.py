"""The short chaos run and a CI-sized kill-during-write, with the proof that both can fail.

``bench/chaos.py --short``: 8 processes x 16 threads on one FileTokenStore, 60 expiry events, workers
SIGKILLed at random and inside the refresh critical section, the token endpoint failing before and
after rotating. ``bench/kill_write.py``: 50 processes SIGKILLed while saving. The long runs and their
figures are in RELIABILITY.md.
"""

import os
import signal
import subprocess
import sys
import textwrap

import filelock
import pytest

from bench import chaos, kill_write
from mcp_sync_auth import ChainKey, FileTokenStore
from mcp_sync_auth._util import faultpoints as _faultpoints

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and fork-free process control need POSIX")

SEED = 20261127
FILELOCK_VERSION = tuple(int(part) for part in filelock.__version__.split(".")[:2])


def test_short_chaos_keeps_one_grant_per_expiry_and_loses_chains_only_in_the_two_windows(tmp_path):
    report = chaos.run(chaos.ChaosConfig.short(seed=SEED), tmp_path)
    print("\n" + chaos.format_report(report))
    assert report["violations"] == []
    assert report["anomalies"] == []
    assert report["expiry_events"] == 60 and report["expiries_stuck"] == 0
    # An expiry with nothing injected costs exactly one refresh grant, however many callers.
    clean = report["clean_grants_per_expiry"]
    assert report["clean_expiries"] > 0 and clean["min"] == clean["max"] == 1
    # Every chain death is one of the two windows no client can close; none is unexplained.
    assert set(report["chain_deaths_by_window"]) <= {chaos.WINDOW_KILLED, chaos.WINDOW_LOST}
    assert report["chain_deaths"] == report["server"]["revocations"] == report["reuse_detections"]
    assert report["final_store_ok"]
    # The run met every fault it claims to survive.
    table = report["per_cause"]
    for point in chaos.POINTS:
        assert table[f"kill at fault point {point}"]["incidents"] >= 1, point
    for fault in chaos.FAULTS:
        assert table[chaos._fault_cause(fault.name)]["incidents"] >= 1, fault
    assert report["worker_kills"]["random"] >= 1
    # Killed before the grant, or a grant that failed before processing: the chain survives.
    for harmless in ("kill at fault point before-grant", "fault: HTTP 500 before processing"):
        assert table[harmless]["chain_deaths"] == 0
    assert report["calls_ok"] > 10 * report["calls_failed"]


def test_chaos_catches_a_store_whose_lock_excludes_nobody(tmp_path):
    """The same run with the file lock skipped: grants overlap and chains die unexplained."""
    config = chaos.ChaosConfig.short(seed=SEED, unsafe="no-lock", expiries=12, random_kill_interval=5.0)
    report = chaos.run(config, tmp_path)
    assert report["violation_count"] > 0
    assert any("two grants in flight" in v or "no lost rotation" in v for v in report["violations"])


def test_kill_during_write_50_trials_old_or_new_never_corrupt(tmp_path):
    summary = kill_write.run(50, seed=SEED, directory=tmp_path / "tokens")
    print("\n" + kill_write.format_summary(summary))
    assert summary["first_failures"] == []
    assert summary["failed_trials"] == summary["corrupt_files"] == summary["lost_chains"] == 0
    assert summary["stuck_locks"] == summary["incomplete_sets"] == 0
    outcomes = summary["outcomes"]
    # Killed between fsync and rename: the next lock holder finishes the write, so the new set wins.
    assert outcomes.get("faultpoint:new") == 25
    assert outcomes.get("random:old", 0) + outcomes.get("random:new", 0) == 25


def test_kill_during_write_catches_a_non_atomic_write(tmp_path):
    """An in-place writer (truncate, write, fsync) killed mid-write leaves a corrupt file: detected."""
    summary = kill_write.run(10, seed=SEED, unsafe_write=True, directory=tmp_path / "tokens")
    assert summary["corrupt_files"] >= 5  # at least every fault-point trial


def test_fault_points_are_off_unless_asked_and_their_spec_is_strict():
    assert not _faultpoints.ARMED  # the test process (like production) has no MCP_SYNC_AUTH_FAULTPOINT
    assert _faultpoints.parse("after-grant-before-write:0.2, during-write") == {
        "after-grant-before-write": 0.2,
        "during-write": 1.0,
    }
    assert _faultpoints.parse("") == {}
    for wrong in ("after-grant:0.5", "before-grant:2", "before-grant:x"):
        with pytest.raises(ValueError, match="MCP_SYNC_AUTH_FAULTPOINT"):
            _faultpoints.parse(wrong)


# --- bugs these runs found, with their regression tests ------------------------------------------
# store-temp-litter: a writer killed between mkstemp and os.replace left its temp file (with the newest
# refresh token) behind for ever; the next lock holder now finishes or removes it.
# fork-inherits-lock: with filelock < 3.30 a child forked while the lock was held kept it after the
# parent died; mcp_sync_auth/_util/fork.py closes the child's copy.


def test_a_killed_writers_temp_file_does_not_outlive_the_next_write_and_logout(tmp_path):
    directory = tmp_path / "tokens"
    kill_write._save(directory, 1)
    writer = subprocess.run(
        [sys.executable, kill_write.__file__, "--child", str(directory), "--start", "2"],
        env=kill_write._child_env("during-write:1"), stdout=subprocess.DEVNULL, timeout=60, check=False,
    )
    assert writer.returncode == -signal.SIGKILL  # died between the temp file's fsync and the rename
    store = FileTokenStore(directory)
    key = ChainKey(**kill_write.KEY_FIELDS)
    assert store.load(key).generation == 1  # the old set, whole: the atomic write did its job
    kill_write._save(directory, 3)
    with store.lock(key, timeout=5):
        store.delete(key)  # logout
    holding = [p.name for p in directory.iterdir() if b"rt-00000002" in p.read_bytes()]
    assert holding == [], f"refresh token of generation 2 still on disk in {holding}"


def test_the_next_lock_holder_finishes_a_write_killed_before_its_rename(tmp_path):
    directory = tmp_path / "tokens"
    kill_write._save(directory, 1)
    writer = subprocess.run(
        [sys.executable, kill_write.__file__, "--child", str(directory), "--start", "2"],
        env=kill_write._child_env("during-write:1"), stdout=subprocess.DEVNULL, timeout=60, check=False,
    )
    assert writer.returncode == -signal.SIGKILL
    store = FileTokenStore(directory)
    key = ChainKey(**kill_write.KEY_FIELDS)
    with store.lock(key, timeout=5):
        # The killed process had the rotated set on disk, complete and fsynced: it is the chain's future.
        assert store.load(key).generation == 2
    assert not list(directory.glob(".*.tmp"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_killed_lock_holders_forked_child_does_not_keep_the_lock(tmp_path):
    directory = tmp_path / "tokens"
    kill_write._save(directory, 1)
    key = ChainKey(**kill_write.KEY_FIELDS)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys
            from mcp_sync_auth import ChainKey, FileTokenStore
            key = ChainKey(**{kill_write.KEY_FIELDS!r})
            with FileTokenStore({str(directory)!r}).lock(key, timeout=5):
                if os.fork() == 0:  # e.g. a multiprocessing 'fork' worker started by another thread
                    sys.stdin.readline()
                    os._exit(0)
                print("locked", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=kill_write._child_env(None),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        holder.kill()  # killed inside the critical section; its forked child lives on
        holder.wait(10)
        with FileTokenStore(directory).lock(key, timeout=2):
            pass
    finally:
        holder.stdin.close()  # the child reads EOF and exits
        holder.stdout.close()
