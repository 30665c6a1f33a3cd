"""``python -m bench.wakeup``: from the lock holder's release to a waiting process seeing the new set.

One run measures the ways a process can wait for another's refresh, trial by trial in turn:

- ``gate``: the file store's waiter blocks in ``flock`` on the chain's gate, which the holder opens at
  the rename, before the folder's fsync and the lock's release (what the store does now);
- ``kernel``: the holder does not shut the gate (``file._GATE = False``), so the waiter's helper blocks
  on the lock and is woken by its release (the store before the gate);
- ``poll``: the old way (``FileTokenStore.waits_in_kernel = False``), a look at the lock and the
  file every 0.5 ms, doubling to 20 ms.

Each trial uses a chain of its own whose stored access token has expired. This process takes the
chain's lock; a waiter process (one per way, spawned once) asks its ``TokenManager`` for a token,
finds the lock held and waits. After ``--hold`` seconds (a grant's round trip) this process writes the
new set into a reservation, as a refresh does (fsynced, renamed: it notes the time of the rename; then
the folder fsynced), notes the time and releases the lock. The waiter notes the time at which
``token()`` returned the new set. Two latencies per trial: from the release (the kernel way's goal) and
from the rename (what a user waits for: the set could be read from then on). Both are
``CLOCK_MONOTONIC``, one clock for every process on the machine. The waiter never sends a grant (it
has no token endpoint): if it ever needed one the trial fails loudly.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

from mcp_sync_auth import ChainKey, FileTokenStore
from mcp_sync_auth._chain.keys import ChainRecord
from mcp_sync_auth._chain.tokens import TokenSet
from mcp_sync_auth._stores import file as file_store

from .machine import load_average
from .stats import percentile

WAYS = ("poll", "kernel", "gate")
SINCE = ("release", "rename")


def _key(trial: int, way: str) -> ChainKey:
    return ChainKey(f"https://mcp.example/mcp/{way}/{trial}", "https://as.example", "bench-wakeup")


def _record(key: ChainKey, generation: int, expires_in: float) -> ChainRecord:
    tokens = TokenSet(
        access_token=f"access-{generation}",
        refresh_token=f"refresh-{generation}",
        expires_at=time.time() + expires_in,
        generation=generation,
    )
    return ChainRecord(key, generation, tokens, token_endpoint="https://as.example/token")


def _waiter(directory: str, way: str, conn: Connection) -> None:
    """Spawned once per way: waits for each trial's chain, reports when it had the new set."""
    from mcp_sync_auth._refresh.manager import TokenManager  # noqa: PLC0415 (in the child)

    store = FileTokenStore(directory)
    store.waits_in_kernel = way != "poll"
    try_lock = store.try_lock
    told: list[bool] = []

    def reporting(key: Any) -> Any:
        lock = try_lock(key)
        if lock is None and not told:
            told.append(True)
            conn.send("contended")
        return lock

    store.try_lock = reporting  # type: ignore[method-assign]
    while True:
        asked = conn.recv()
        if asked is None:
            return
        told.clear()
        key = ChainKey(**asked)
        tokens = TokenManager(key, store, refresher=None, lock_timeout=60.0).token()
        conn.send((time.monotonic_ns(), tokens.generation))


def measure(trials: int, hold: float) -> dict[str, dict[str, list[float]]]:
    """Latencies (microseconds) per way, from the release and from the rename."""
    spawn = multiprocessing.get_context("spawn")
    latencies: dict[str, dict[str, list[float]]] = {way: {since: [] for since in SINCE} for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="bench-wakeup-") as directory:
        store = FileTokenStore(directory)
        pipes: dict[str, Connection] = {}
        workers = []
        for way in WAYS:
            ours, theirs = spawn.Pipe()
            worker = spawn.Process(target=_waiter, args=(directory, way, theirs), daemon=True)
            worker.start()
            pipes[way] = ours
            workers.append(worker)
        try:
            for trial in range(trials):
                for way in WAYS if trial % 2 else reversed(WAYS):
                    file_store._GATE = way == "gate"
                    from_release, from_rename = _trial(store, pipes[way], _key(trial, way), hold)
                    latencies[way]["release"].append(from_release)
                    latencies[way]["rename"].append(from_rename)
        finally:
            file_store._GATE = True
            for conn in pipes.values():
                conn.send(None)
            for worker in workers:
                worker.join(30)
    return latencies


def _trial(store: FileTokenStore, conn: Connection, key: ChainKey, hold: float) -> tuple[float, float]:
    current = _record(key, 1, expires_in=-60.0)
    store.save(current)  # expired: the waiter needs the next one
    lock = store.try_lock(key)
    if lock is None:
        raise RuntimeError("the trial's lock is held by somebody else")
    renamed: list[int] = []
    with lock:
        conn.send(key.to_json())
        if conn.recv() != "contended":
            raise RuntimeError("the waiter did not wait")
        time.sleep(hold)  # the holder's grant
        room = store.reserve(current)
        try:
            room.commit(_record(key, 2, expires_in=3600.0), on_visible=lambda: renamed.append(time.monotonic_ns()))
        finally:
            room.release()
        released = time.monotonic_ns()
    seen, generation = conn.recv()
    if generation != 2 or len(renamed) != 1:
        raise RuntimeError(f"the waiter saw generation {generation}, not 2")
    return (seen - released) / 1000.0, (seen - renamed[0]) / 1000.0


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per way (default 200)")
    parser.add_argument("--hold", type=float, default=0.025, help="seconds the holder keeps the lock")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    load = load_average()
    latencies = measure(args.trials, args.hold)
    rows = {
        way: {
            since: {
                "trials": len(values),
                "p50_us": percentile(values, 50),
                "p99_us": percentile(values, 99),
                "max_us": max(values),
            }
            for since, values in by_since.items()
        }
        for way, by_since in latencies.items()
    }
    if args.json:
        print(json.dumps({"load_average": load, "hold_s": args.hold, "ways": rows}, indent=1))
        return 0
    print(f"waiting process sees the new set; {args.trials} trials per way, hold {args.hold * 1000:g} ms")
    print(f"load average at the start: {load}")
    print(f"{'way':<8}{'since':<9}{'p50 µs':>12}{'p99 µs':>12}{'max µs':>12}")
    for way, by_since in rows.items():
        for since, row in by_since.items():
            print(f"{way:<8}{since:<9}{row['p50_us']:>12.1f}{row['p99_us']:>12.1f}{row['max_us']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
