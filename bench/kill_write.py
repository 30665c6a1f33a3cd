"""Kill during write: SIGKILL a process at random points of ``FileTokenStore.save`` and check the cache.

Each trial starts a fresh child process (``python bench/kill_write.py --child``) on one shared cache
folder. The child saves generation after generation of one chain, each under the chain's lock, and
acknowledges every save that returned on a pipe. The child is then killed, in one of two ways:

- ``random``: the parent sends SIGKILL after a random delay (the child spends nearly all its time
  inside ``save``: temp file, write, fsync, ``os.replace``, folder fsync);
- ``faultpoint``: the child runs with ``MCP_SYNC_AUTH_FAULTPOINT=during-write:P`` and kills itself
  between the fsync of the temp file and the ``os.replace``, the narrowest point of the write.

After each kill the parent checks, with a fresh ``FileTokenStore``, that the cache holds exactly the
last acknowledged generation or the one after it (its rename had happened when the kill came), byte
for byte the token set that generation was written with, that the file loads without
``CorruptTokenCache``, that it still holds a refresh token (the chain is not lost), and that the
chain's lock can be taken again (the kernel released the dead holder's ``flock``). The next trial goes
on from that state, so the whole run is one chain surviving every crash.

    python -m bench.kill_write --trials 1000          # long mode (RELIABILITY.md)
    python -m bench.kill_write --short                # 50 trials, used by tests/refresh/test_chaos_short.py
    python -m bench.kill_write --short --unsafe-write  # a non-atomic writer: the checks must fail

Exit status 0 when every trial passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import mcp_sync_auth
from bench.chaos_worker import machine
from mcp_sync_auth import ChainKey, ChainRecord, CorruptTokenCache, FileTokenStore, LockTimeout
from mcp_sync_auth._chain.tokens import TokenSet
from mcp_sync_auth._stores.document import record_to_document
from mcp_sync_auth._util import faultpoints as _faultpoints

KEY_FIELDS = {
    "resource": "https://mcp.example.test/mcp",
    "issuer": "https://auth.example.test",
    "client_id": "kill-write-bench",
    "account": "default",
}
PADDING = 4096  # big enough that a torn write cannot look like a complete JSON document by chance
FAULTPOINT_CHANCE = 0.05
MAX_RANDOM_DELAY = 0.08  # seconds after the child's first acknowledged save
CHILD_DEADLINE = 30.0  # a faultpoint child that has not died by then is killed and reported


def expected_tokens(generation: int) -> dict[str, Any]:
    """The complete token set written for ``generation`` (every field depends on it)."""
    return {
        "access_token": f"at-{generation:08d}-" + "a" * PADDING,
        "token_type": "Bearer",
        "refresh_token": f"rt-{generation:08d}-" + "r" * 64,
        "expires_at": 2_000_000_000.0 + generation,
        "obtained_at": 1_000_000_000.0 + generation,
        "scope": f"mcp gen{generation}",
        "generation": generation,
    }


# --- the child --------------------------------------------------------------------------------------


def child(directory: str, start: int, unsafe_write: bool) -> None:
    """Save generations start, start+1, ... forever; write each generation to stdout once saved."""

    key = ChainKey(**KEY_FIELDS)
    store = _unsafe_store(directory) if unsafe_write else FileTokenStore(directory)
    generation = start
    while True:
        tokens = TokenSet.from_json(expected_tokens(generation))
        record = ChainRecord(key, generation, tokens, token_endpoint="https://auth.example.test/token")
        with store.lock(key, timeout=10.0):
            store.save(record)
        os.write(1, f"{generation}\n".encode())
        generation += 1


def _unsafe_store(directory: str) -> FileTokenStore:
    """A FileTokenStore whose write is NOT atomic (truncate, half, fsync, rest): the checks must catch it."""

    class InPlaceFileTokenStore(FileTokenStore):
        def save(self, record: ChainRecord) -> None:
            self._ensure_directory()
            data = json.dumps(record_to_document(record), indent=1, sort_keys=True).encode("utf-8")
            fd = os.open(self.path_for(record.key), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                half = len(data) // 2
                os.write(fd, data[:half])
                os.fsync(fd)
                if _faultpoints.ARMED:
                    _faultpoints.reach("during-write")
                os.write(fd, data[half:])
                os.fsync(fd)
            finally:
                os.close(fd)

    return InPlaceFileTokenStore(directory)


# --- the parent -------------------------------------------------------------------------------------


def _child_env(faultpoint: Optional[str]) -> dict[str, str]:

    env = dict(os.environ)
    # The child must import the very mcp_sync_auth this process uses (a checkout or an install).
    package_root = str(Path(mcp_sync_auth.__file__).resolve().parent.parent)
    bench_root = str(Path(__file__).resolve().parent.parent)  # for ``bench.chaos_worker``
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, bench_root, env.get("PYTHONPATH", "")) if p)
    env.pop("MCP_SYNC_AUTH_FAULTPOINT", None)
    if faultpoint:
        env["MCP_SYNC_AUTH_FAULTPOINT"] = faultpoint
    return env


def _read_acks(stream: Any) -> list[int]:
    return [int(line) for line in stream.read().split()]


def run_trial(directory: Path, mode: str, start: int, rng: random.Random, unsafe_write: bool) -> dict[str, Any]:
    """One child, one kill, one check. Returns the trial's facts (``problems`` empty when it passed)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(directory), "--start", str(start)]
    if unsafe_write:
        command.append("--unsafe-write")
    faultpoint = f"during-write:{FAULTPOINT_CHANCE}" if mode == "faultpoint" else None
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=_child_env(faultpoint))
    assert process.stdout is not None
    acks: list[int] = []
    problems: list[str] = []
    killed_by_parent = False
    try:
        first = process.stdout.readline()  # blocks until the first save returned (or the child died)
        if first.strip():
            acks.append(int(first))
        if mode == "random" and process.poll() is None:
            time.sleep(rng.uniform(0.0, MAX_RANDOM_DELAY))  # the random kill moment, not a wait for a state
            process.send_signal(signal.SIGKILL)
            killed_by_parent = True
        try:
            process.wait(timeout=CHILD_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            problems.append("the faultpoint child did not die in time")
        acks += _read_acks(process.stdout)
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != -signal.SIGKILL:
        problems.append(f"the child ended with status {process.returncode}, not by SIGKILL")
    last = acks[-1] if acks else start - 1
    found = check_cache(directory, last, finished=(mode == "faultpoint" and not killed_by_parent), problems=problems)
    if problems:
        _save(directory, last)  # start the next trial from a good state, so one failure is counted once
    leftovers = sorted(p.name for p in directory.glob(".*.tmp"))
    for name in leftovers:
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    for corrupt in directory.glob("*.corrupt-*"):
        with contextlib.suppress(OSError):
            corrupt.unlink()
    return {
        "mode": mode,
        "saves": len(acks),
        "last_acknowledged": last,
        "found": found,
        "outcome": "new" if found == last + 1 else "old" if found == last else "bad",
        "leftover_temp_files": len(leftovers),
        "seconds": time.monotonic() - began,
        "problems": problems,
    }


def check_cache(directory: Path, last: int, *, finished: bool, problems: list[str]) -> Optional[int]:
    """The cache must hold generation ``last`` or ``last + 1``, complete. With ``finished`` (the child was
    killed after its temp file was fsynced, before the rename) the next lock holder must have put the new
    set in place: ``last + 1`` only."""

    key = ChainKey(**KEY_FIELDS)
    store = FileTokenStore(directory)
    try:
        with store.lock(key, timeout=5.0):
            record = store.load(key)
    except CorruptTokenCache as exc:
        problems.append(f"corrupt cache: {exc}")
        return None
    except LockTimeout:
        problems.append("the lock of the killed child was not released")
        return None
    if record is None:
        problems.append("the cache file is gone: chain lost")
        return None
    allowed = {last + 1} if finished else {last, last + 1}
    if record.generation not in allowed:
        problems.append(f"generation {record.generation} found, expected one of {sorted(allowed)}")
    if record.tokens is None or record.tokens.to_json() != expected_tokens(record.generation):
        problems.append(f"generation {record.generation} does not hold its complete token set")
    if record.tokens is None or not record.tokens.refresh_token:
        problems.append("no refresh token left: chain lost")
    return record.generation


def _save(directory: Path, generation: int) -> None:

    key = ChainKey(**KEY_FIELDS)
    store = FileTokenStore(directory)
    with store.lock(key, timeout=5.0):
        store.save(ChainRecord(key, generation, TokenSet.from_json(expected_tokens(generation))))


def run(
    trials: int, seed: int, unsafe_write: bool = False, directory: Optional[Path] = None, progress: bool = False
) -> dict[str, Any]:
    """Run ``trials`` kill trials (alternating random / faultpoint) and return the summary."""
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kill-write-"))) / "tokens"
        _save(directory, 0)
        machine_before = machine()
        results = []
        start = 1
        began = time.monotonic()
        for index in range(trials):
            mode = "random" if index % 2 == 0 else "faultpoint"
            result = run_trial(directory, mode, start, rng, unsafe_write)
            results.append(result)
            start = (result["found"] or result["last_acknowledged"]) + 1
            if progress and (index + 1) % 100 == 0:
                print(f"  ... {index + 1} trials", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - began
    failed = [r for r in results if r["problems"]]
    outcomes: Counter[str] = Counter(f"{r['mode']}:{r['outcome']}" for r in results)
    return {
        "trials": trials,
        "seed": seed,
        "unsafe_write": unsafe_write,
        "seconds": round(elapsed, 1),
        "saves_acknowledged": sum(r["saves"] for r in results),
        "outcomes": dict(sorted(outcomes.items())),
        "failed_trials": len(failed),
        "corrupt_files": sum(any("corrupt" in p for p in r["problems"]) for r in results),
        "incomplete_sets": sum(any("complete token set" in p for p in r["problems"]) for r in results),
        "lost_chains": sum(any("chain lost" in p for p in r["problems"]) for r in results),
        "stuck_locks": sum(any("lock" in p for p in r["problems"]) for r in results),
        "leftover_temp_files": sum(r["leftover_temp_files"] for r in results),
        "first_failures": [[p[:300] for p in r["problems"]] for r in failed[:5]],
        "machine": {**machine_before, "load_at_end": machine()["load_1_5_15"]},
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"kill during write: {summary['trials']} trials in {summary['seconds']} s (seed {summary['seed']}"
        + (", UNSAFE in-place writer" if summary["unsafe_write"] else "")
        + ")",
        f"  machine: {summary['machine']['cpu']}, {summary['machine']['cores']} cores, Python "
        f"{summary['machine']['python']}, {summary['machine']['system']}; load {summary['machine']['load_1_5_15']} "
        f"at the start, {summary['machine']['load_at_end']} at the end",
        f"  saves acknowledged before the kills: {summary['saves_acknowledged']}",
        "  cache after the kill (mode:outcome): "
        + ", ".join(f"{name} {count}" for name, count in summary["outcomes"].items()),
        f"  failed trials {summary['failed_trials']}: corrupt files {summary['corrupt_files']}, "
        f"incomplete token sets {summary['incomplete_sets']}, lost chains {summary['lost_chains']}, "
        f"stuck locks {summary['stuck_locks']}",
        f"  temp files left behind by killed writers: {summary['leftover_temp_files']}",
    ]
    lines += [f"  failure: {problems}" for problems in summary["first_failures"]]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--short", action="store_true", help="50 trials (CI)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--unsafe-write", action="store_true", help="use a non-atomic writer (must fail)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.start, args.unsafe_write)
        return 0
    logging.getLogger("mcp_sync_auth").addHandler(logging.NullHandler())  # failures are summarised below
    trials = 50 if args.short else args.trials
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    summary = run(trials, seed, unsafe_write=args.unsafe_write, progress=True)
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if summary["failed_trials"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
