"""``python -m bench.herd``: the CPU an expiry costs each calling thread, besides the refresh itself.

At an expiry every thread of a process that calls finds the token stale, joins the chain's flight and
sleeps; when the flight ends each is woken and returns with the new token. None of that happens between
expiries, where a call takes the fresh token from memory. This measures the CPU of those two steps per
thread, in one process, with N threads parked on a barrier and released at once:

- ``fast path``: the threads call ``TokenManager.token()`` with a fresh token (the bursts between);
- ``join``: the same with a stale token while a leader's grant is held: each thread runs until it is
  asleep on the flight (released from the barrier, the fast path, joining);
- ``wake``: the flight ends; each thread wakes and returns with the new token.

``join - fast path`` is what an expiry adds before the new set exists; ``wake`` is what it adds after.
CPU is ``time.process_time`` of the whole process (every thread), divided by N. On a machine with C cores,
T threads in P processes that each add x seconds of CPU need at least T x P x x / C seconds of the
cores: time that the flight's leader, whose own refresh needs a few ms of CPU, competes with.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, Optional, Sequence

from mcp_sync_auth import ChainKey, ChainRecord, MemoryTokenStore, TokenSet
from mcp_sync_auth._refresh.manager import TokenManager, _flights

from .machine import load_average
from .stats import percentile

KEY = ChainKey("https://mcp.example/mcp", "https://as.example", "bench-herd")


def _tokens(generation: int, expires_in: float) -> TokenSet:
    now = time.time()
    return TokenSet(
        f"access-{generation}",
        refresh_token=f"refresh-{generation}",
        expires_at=now + expires_in,
        obtained_at=now,
        generation=generation,
    )


def _until(done: Any) -> None:
    deadline = time.monotonic() + 60
    while not done() and time.monotonic() < deadline:
        time.sleep(0.0005)  # polling a real condition; this thread's CPU is a few µs a look


def _round(threads: int) -> dict[str, float]:
    """One round: CPU seconds per thread of the fast path, the join and the wake."""
    store = MemoryTokenStore()
    store.save(ChainRecord(KEY, 1, _tokens(1, 3600.0)))
    granted = threading.Event()
    release = threading.Event()

    def refresher(stored: TokenSet, generation: int, resource: Optional[str]) -> TokenSet:
        granted.set()
        release.wait(60)
        return _tokens(generation, 3600.0)

    managers = [TokenManager(KEY, store, refresher=refresher) for _ in range(threads + 1)]
    flight = managers[0]._flight_key
    start = threading.Barrier(threads + 1)
    second = threading.Barrier(threads + 1)
    returned = []  # list.append is atomic: the count of fast-path calls done, without a lock

    def caller(manager: TokenManager) -> None:
        start.wait(60)
        manager.token()  # fresh: the fast path
        returned.append(True)
        second.wait(60)
        manager.token()  # stale: joins the flight, sleeps, wakes with the new set

    pool = [threading.Thread(target=caller, args=(manager,)) for manager in managers[1:]]
    for thread in pool:
        thread.start()
    cpu = time.process_time()
    start.wait(60)
    _until(lambda: len(returned) == threads)
    fast = time.process_time() - cpu  # released from the barrier, the fast path; the same looks as below

    # The stored set expires; a leader starts the flight and is held at its grant.
    store.save(ChainRecord(KEY, 1, _tokens(1, -60.0)))
    for manager in managers:
        manager._memory.current = None
    leader = threading.Thread(target=managers[0].token)
    leader.start()
    granted.wait(60)
    cpu = time.process_time()
    second.wait(60)
    _until(lambda: _flights.waiting(flight) == threads)
    join = time.process_time() - cpu
    if _flights.waiting(flight) != threads:
        raise RuntimeError("not every thread joined the flight")
    cpu = time.process_time()
    release.set()
    for thread in pool:
        thread.join(60)
    wake = time.process_time() - cpu
    leader.join(60)
    return {"fast path": fast / threads, "join": join / threads, "wake": wake / threads}


def measure(threads: int, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"fast path": [], "join": [], "wake": []}
    _round(threads)  # warm-up
    for _ in range(rounds):
        for name, value in _round(threads).items():
            found[name].append(value)
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.herd", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=64, help="threads in the process (default 64)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    load = load_average()
    found = measure(args.threads, args.rounds)
    rows: dict[str, Any] = {
        name: {"p50_us": percentile(values, 50) * 1e6, "max_us": max(values) * 1e6} for name, values in found.items()
    }
    added = rows["join"]["p50_us"] - rows["fast path"]["p50_us"] + rows["wake"]["p50_us"]
    if args.json:
        print(json.dumps({"load_average": load, "threads": args.threads, "rows": rows, "added_us": added}, indent=1))
        return 0
    print(f"CPU per calling thread, {args.threads} threads in one process, {args.rounds} rounds")
    print(f"load average at the start: {load}")
    print(f"{'step':<12}{'p50 µs':>10}{'max µs':>10}")
    for name, row in rows.items():
        print(f"{name:<12}{row['p50_us']:>10.1f}{row['max_us']:>10.1f}")
    print(f"an expiry adds {added:.1f} µs of CPU per calling thread (join - fast path + wake)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
