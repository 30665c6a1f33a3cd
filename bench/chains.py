"""Many chains in one process: ``python -m bench.chains`` (about a minute; ``--quick`` for less).

- fast-path CPU per call (``time.process_time``) for 1, 100 and 10,000 chains, each with a fresh token:
  ``TokenManager.token()``, called round-robin over the chains;
- memory per chain (``tracemalloc``): a manager and its memory (the token sets are the store's
  objects, not counted);
- 100,000 chains touched once, each through a manager that is then dropped: what the process still
  holds (the registry's sizes and the traced bytes);
- ``records()`` and ``mcp-sync-auth status --json`` over 10,000 stored chains: a file store in a temporary
  folder, and a Redis store when ``redis-server`` is on ``PATH`` (with its round trips counted).

:func:`measure` returns all of it as data (``python -m bench.scale`` runs it beside the stall grid).
Times depend on the machine and its load (the load average is printed); counts and sizes do not.
The script runs against whichever ``mcp_sync_auth`` is first on ``sys.path``: run it with an older
checkout first on ``PYTHONPATH`` to compare (a version without the bounded memory reports it unbounded).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Callable, Optional, Sequence

from mcp_sync_auth import ChainKey, ChainRecord, FileTokenStore, MemoryTokenStore, TokenSet
from mcp_sync_auth._refresh import manager as manager_module
from mcp_sync_auth._refresh.manager import TokenManager
from mcp_sync_auth.cli.main import main as cli_main

try:
    from mcp_sync_auth._refresh.memory import MEMORIES
except ImportError:  # a checkout from before the bounded memory: reported as unbounded
    MEMORIES = None

TTL = 3600.0


def keys(count: int, tag: str) -> list[ChainKey]:
    return [ChainKey("https://mcp.example/mcp", "https://as.example", f"{tag}-{n}") for n in range(count)]


def record_for(key: ChainKey, n: int, now: float) -> ChainRecord:
    tokens = TokenSet(f"at-{n}", refresh_token=f"rt-{n}", expires_at=now + TTL, obtained_at=now, generation=1)
    return ChainRecord(key, 1, tokens, token_endpoint="https://as.example/token", updated_at=now)


def fill(store: Any, chain_keys: list[ChainKey]) -> None:
    now = time.time()
    for n, key in enumerate(chain_keys):
        store.save(record_for(key, n, now))


def no_refresh(stored: TokenSet, generation: int, resource: Optional[str]) -> TokenSet:
    raise AssertionError("the benchmark's tokens never need a refresh")


def registry_sizes() -> dict[str, int]:
    """What the process holds per chain: the bounded registry's parts, or the old unbounded dict."""
    gc.collect()
    if MEMORIES is None:
        return {"unbounded": len(manager_module._memory)}  # type: ignore[attr-defined]
    sizes: dict[str, int] = MEMORIES.sizes()
    return sizes


def fast_path(chains: int, calls: int) -> dict[str, float]:
    store = MemoryTokenStore()
    chain_keys = keys(chains, f"fast{chains}")
    fill(store, chain_keys)
    managers = [TokenManager(key, store, no_refresh) for key in chain_keys]
    for manager in managers:
        manager.token()  # each learns its stored set
    rounds = max(1, calls // chains)
    started = time.process_time()
    for _ in range(rounds):
        for manager in managers:
            manager.token()
    spent = time.process_time() - started
    return {"chains": chains, "calls": rounds * chains, "cpu_us_per_call": spent / (rounds * chains) * 1e6}


def memory_per_chain(chains: int) -> dict[str, float]:
    store = MemoryTokenStore()
    chain_keys = keys(chains, f"mem{chains}")
    fill(store, chain_keys)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    managers = [TokenManager(key, store, no_refresh) for key in chain_keys]
    for manager in managers:
        manager.token()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del managers
    return {"chains": chains, "bytes_per_chain": (after - before) / chains}


def touched_once(chains: int) -> dict[str, Any]:
    store = MemoryTokenStore()
    chain_keys = keys(chains, "once")
    fill(store, chain_keys)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in chain_keys:
        TokenManager(key, store, no_refresh).token()
    sizes = registry_sizes()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"chains": chains, "registry": sizes, "held_bytes": held}


def timed(run: Callable[[], Any], repeat: int = 3) -> tuple[float, float, Any]:
    """The best wall and CPU seconds of ``repeat`` runs, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def status_json(spec: str) -> int:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["--store", spec, "status", "--json"])
    assert code == 0, f"status exited {code}"
    return out.getvalue().count('"server"')


def file_store_listing(chains: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="bench-chains-")
    try:
        store = FileTokenStore(os.path.join(folder, "tokens"))
        real_fsync = os.fsync
        os.fsync = lambda fd: None  # filling only: the listing does not fsync
        try:
            fill(store, keys(chains, "file"))
        finally:
            os.fsync = real_fsync
        wall, cpu, found = timed(lambda: len(FileTokenStore(store.directory).records()))
        status_wall, status_cpu, listed = timed(lambda: status_json(str(store.directory)))
        assert found == listed == chains, (found, listed)
        return {"records_s": wall, "records_cpu_s": cpu, "status_s": status_wall, "status_cpu_s": status_cpu}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def redis_listing(chains: int) -> Optional[dict[str, Any]]:
    if shutil.which("redis-server") is None:
        return None
    redis = importlib.import_module("redis")  # the redis extra
    RedisTokenStore = importlib.import_module("mcp_sync_auth._stores.redis").RedisTokenStore
    RedisServer = importlib.import_module("mcp_sync_auth.testing").RedisServer

    trips = [0]

    class CountingConnection(redis.Connection):  # type: ignore[misc]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            trips[0] += 1
            super().send_packed_command(command, check_health)

    server = RedisServer(appendonly=False).start()
    try:
        store = RedisTokenStore.from_url(server.url, connection_class=CountingConnection)
        fill(store, keys(chains, "redis"))
        trips[0] = 0
        wall, cpu, found = timed(lambda: len(store.records()), repeat=1)
        record_trips = trips[0]
        status_wall, status_cpu, listed = timed(lambda: status_json(server.url), repeat=1)
        assert found == listed == chains, (found, listed)
        store.close()
        return {
            "records_s": wall,
            "records_cpu_s": cpu,
            "records_round_trips": record_trips,
            "status_s": status_wall,
            "status_cpu_s": status_cpu,
        }
    finally:
        server.close()


FAST_CHAINS = (1, 100, 10_000)  # the chain counts of the fast path and of the memory per chain
LISTED = 10_000  # stored chains that records() and status list
FULL_CALLS = 1_000_000
QUICK_CALLS = 200_000
FULL_TOUCHED = 100_000
QUICK_TOUCHED = 10_000


def measure(
    calls: int = FULL_CALLS,
    touched: int = FULL_TOUCHED,
    counts: Sequence[int] = FAST_CHAINS,
    listed: int = LISTED,
    progress: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Every measurement of this module, as data: what ``main`` prints and ``bench.scale`` tabulates."""
    data: dict[str, Any] = {"calls": calls, "counts": list(counts), "touched": touched, "listed": listed}
    progress(f"fast path, {len(counts)} chain counts")
    data["fast_path"] = [fast_path(chains, calls) for chains in counts]
    progress("memory per chain")
    data["memory"] = [memory_per_chain(chains) for chains in counts]
    progress(f"{touched} chains touched once")
    data["touched_once"] = touched_once(touched)
    progress(f"records() and status over {listed} stored chains")
    data["listing"] = {"file": file_store_listing(listed), "redis": redis_listing(listed)}
    return data


def lines(data: dict[str, Any]) -> list[str]:
    out = ["fast path, TokenManager.token() with a fresh token in memory"]
    for found in data["fast_path"]:
        out.append(
            f"  {found['chains']:>6} chains: {found['cpu_us_per_call']:.3f} us CPU per call ({found['calls']} calls)"
        )
    out += ["", "memory per chain (manager + memory; the token sets are the store's)"]
    for found in data["memory"]:
        out.append(f"  {found['chains']:>6} chains: {found['bytes_per_chain']:.0f} bytes per chain")
    found = data["touched_once"]
    touched, held = found["chains"], found["held_bytes"]
    out += [
        "",
        f"{touched} chains touched once, managers dropped: registry {found['registry']},",
        f"  {held / 1e6:.1f} MB still held ({held / touched:.0f} bytes per chain touched)",
        "",
        f"records() and status --json over {data['listed']} stored chains (best of 3 for files, 1 for Redis)",
    ]
    listing, fleet = data["listing"]["file"], data["listing"]["redis"]
    out.append(
        f"  file store: records {listing['records_s']:.3f} s ({listing['records_cpu_s']:.3f} s CPU), "
        f"status {listing['status_s']:.3f} s ({listing['status_cpu_s']:.3f} s CPU)"
    )
    if fleet is None:
        out.append("  Redis store: not measured (no redis-server on PATH)")
    else:
        out.append(
            f"  Redis store: records {fleet['records_s']:.3f} s ({fleet['records_cpu_s']:.3f} s CPU, "
            f"{fleet['records_round_trips']} round trips), status {fleet['status_s']:.3f} s "
            f"({fleet['status_cpu_s']:.3f} s CPU)"
        )
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chains", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and 10,000 chains touched once")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    data = measure(QUICK_CALLS if args.quick else FULL_CALLS, QUICK_TOUCHED if args.quick else FULL_TOUCHED)
    print("\n".join(lines(data)))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
