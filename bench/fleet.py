"""The fleet run: mcp_sync_auth over ``RedisTokenStore`` on simulated hosts, and over files, in one run.

A *host* is a group of spawned worker processes with folders of their own (HOME, caches, TMPDIR: two hosts
share no file) that reach Redis only through a :class:`~bench.forwarder.Forwarder` of their own; they pick the store
from ``$MCP_SYNC_AUTH_STORE``, as a deployed fleet would. Each Redis cell has a redis-server of its own, so
its ``INFO commandstats`` counts nothing but that cell.

A cell is the stall run's schedule (``bench.scenarios.stall``) on the grants run's shared clock: a warm-up
cycle, then a valid-token cycle (baseline) and an expiry cycle, ``expiries`` times; every thread of every
process of every host calls once per cycle, at the same moment. One cell gives:

1. refresh grants per expiry event, reuse detections and chain state (the invariant: exactly 1.00, alive);
2. the stall: time in ``MCPAuth.__call__`` of calls in expiry cycles minus its median in baseline cycles,
   measured as section 3 measures it (:func:`bench.scenarios.stall_figures`);
3. Redis commands, read from ``INFO commandstats`` after every cycle: per expiry event, per process, and in
   the baseline cycles (where the fast path should send none).

The file cell beside each Redis cell has the same threads and processes, on one host (files are not shared
between hosts): the same schedule over a ``FileTokenStore``. The fast-path run times ``MCPAuth.__call__``
and ``access_token()`` with a valid token in memory over Redis and over files in one process, rounds
interleaved ABBA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from mcp_sync_auth.testing import StrictAuthServer

from .clock import SharedClock
from .contenders import BY_NAME, make_mcp_auth
from .forwarder import Forwarder
from .scenarios import (
    NEVER,
    START_TIMEOUT,
    TTL,
    CellOutcomes,
    Chain,
    _collect,
    _finish,
    chain_for,
    fill_outcomes,
    run_cycles,
    spawn_context,
    stall_figures,
)
from .stats import median

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "MCP_SYNC_AUTH_"
MAIN_COMMANDS = ("evalsha", "hmget", "hget", "get", "set", "publish")
UNCOUNTED = ("info",)  # the bench's own reads of the counters


def unavailable() -> Optional[str]:
    """None when the fleet run can run here, else why not (redis-py or redis-server missing)."""
    import importlib.util  # noqa: PLC0415

    from mcp_sync_auth.testing.redis_server import find_redis_server  # noqa: PLC0415

    if importlib.util.find_spec("redis") is None:
        return "redis-py is not installed (pip install '.[redis]')"
    if find_redis_server() is None:
        return "redis-server is not on PATH"
    return None


# --- hosts ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Host:
    name: str
    root: Path
    link: Forwarder

    @property
    def store_url(self) -> str:
        return f"redis://127.0.0.1:{self.link.port}/0"

    def env(self) -> dict[str, str]:
        """The environment its processes start with: ``os.environ`` without the bench's own
        ``MCP_SYNC_AUTH_*`` variables, its own HOME, caches and temporary folder, and its store: Redis
        through its own link."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        home, cache, tmp = self.root / "home", self.root / "cache", self.root / "tmp"
        paths = [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        env.update(
            HOME=str(home), XDG_CACHE_HOME=str(cache), XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"), XDG_STATE_HOME=str(home / ".local" / "state"),
            TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp), MCP_SYNC_AUTH_HOME=str(cache / "mcp-sync-auth"),
            MCP_SYNC_AUTH_STORE=self.store_url, PYTHONPATH=os.pathsep.join(paths),
        )
        env.pop("XDG_RUNTIME_DIR", None)  # shared by every process of the user
        return env


@contextlib.contextmanager
def hosts_on(redis: Any, count: int, root: Path) -> Iterator[list[Host]]:
    hosts: list[Host] = []
    try:
        for index in range(count):
            name = f"host-{index}"
            for folder in ("home", "cache", "tmp"):
                (root / name / folder).mkdir(parents=True)
            hosts.append(Host(name, root / name, Forwarder((redis.host, redis.port), name=name)))
        yield hosts
    finally:
        for host in hosts:
            host.link.close()


def command_counts(redis: Any) -> Counter[str]:
    """Calls per command since the server started (``INFO commandstats``), the bench's INFO left out.
    Commands that scripts run count too (an EVALSHA's HGET, SET... are listed under their names)."""
    raw = redis.command("INFO", "commandstats")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, fields = line[len("cmdstat_"):].partition(":")
        values = dict(field.split("=", 1) for field in fields.split(",") if "=" in field)
        if name not in UNCOUNTED:
            counts[name] = int(values.get("calls", 0))
    return counts


# --- one cell ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _FleetSetup:
    store: str  # "redis" or "file"
    hosts: int
    processes: int  # per host
    threads: int  # per process
    expiries: int


@dataclasses.dataclass
class FleetCell(CellOutcomes, _FleetSetup):
    # the stall, as in section 3 (seconds)
    wait_baseline: dict[str, float] = dataclasses.field(default_factory=dict)
    wait_expiry: dict[str, float] = dataclasses.field(default_factory=dict)
    added_p50: float = math.nan
    added_p99: float = math.nan
    latency_baseline: dict[str, float] = dataclasses.field(default_factory=dict)
    latency_expiry: dict[str, float] = dataclasses.field(default_factory=dict)
    per_process_added_p50: list[float] = dataclasses.field(default_factory=list)
    # Redis commands (Redis cells only): summed over the expiry cycles, the baseline cycles, the warm-up
    commands_expiry: dict[str, int] = dataclasses.field(default_factory=dict)
    commands_baseline: dict[str, int] = dataclasses.field(default_factory=dict)
    commands_warmup: dict[str, int] = dataclasses.field(default_factory=dict)
    commands_by_expiry: list[int] = dataclasses.field(default_factory=list)  # total of each expiry cycle
    baseline_cycles: int = 0
    link_connections: list[int] = dataclasses.field(default_factory=list)  # per host

    @property
    def total_processes(self) -> int:
        return self.hosts * self.processes

    @property
    def grants_per_expiry(self) -> float:
        return self.grants / self.expiries if self.expiries else math.nan

    @property
    def where(self) -> str:
        return f"fleet {self.store} {self.hosts} hosts x {self.processes} processes x {self.threads} threads"

    def commands_per_expiry(self, name: Optional[str] = None) -> float:
        """Redis commands per expiry event: all of them, or one command's."""
        if self.store != "redis" or not self.expiries:
            return math.nan
        total = sum(self.commands_expiry.values()) if name is None else self.commands_expiry.get(name, 0)
        return total / self.expiries

    @property
    def commands_steady(self) -> float:
        """Median commands of the expiry events after the first (the first one also opens each
        process's change-feed subscription and its connections)."""
        return median([float(x) for x in self.commands_by_expiry[1:]]) if len(self.commands_by_expiry) > 1 else math.nan

    @property
    def commands_per_expiry_per_process(self) -> float:
        return self.commands_per_expiry() / self.total_processes

    @property
    def commands_per_baseline_cycle(self) -> float:
        if self.store != "redis" or not self.baseline_cycles:
            return math.nan
        return sum(self.commands_baseline.values()) / self.baseline_cycles


def _schedule(expiries: int) -> list[bool]:
    return [False] + [False, True] * expiries  # the stall run's: warm-up, then baseline and expiry cycles


def _fill(cell: FleetCell, chain: Chain, run: Any, schedule: Sequence[bool]) -> None:
    fill_outcomes(cell, chain, run)
    if not run.errors:
        for key, value in stall_figures(run, schedule).items():
            setattr(cell, key, value)


def redis_cell(hosts: int, processes: int, threads: int, expiries: int) -> FleetCell:
    """``hosts`` hosts of ``processes`` processes of ``threads`` threads over one redis-server of its own."""
    from mcp_sync_auth import RedisTokenStore  # noqa: PLC0415 - redis-py only when the fleet runs
    from mcp_sync_auth.testing import RedisServer  # noqa: PLC0415

    ours = BY_NAME["mcp_sync_auth"]
    cell = FleetCell("redis", hosts, processes, threads, expiries)
    schedule = _schedule(expiries)
    clock = SharedClock()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-bench-fleet-"))
    server = StrictAuthServer(access_token_ttl=TTL, clock=clock).start()
    try:
        with RedisServer() as redis, hosts_on(redis, hosts, workdir) as fleet:
            client_id = server.register_client()
            token = server.mint_tokens(client_id)
            env: dict[str, Any] = {"mcp_url": server.mcp_url, "token_endpoint": server.token_endpoint,
                                   "client_id": client_id, "threads": threads, "store": "environment",
                                   "time_auth": True}
            store = RedisTokenStore.from_url(redis.url)
            try:  # the login happened once, somewhere in the fleet
                make_mcp_auth(server.mcp_url, None, client_id, server.token_endpoint, store=store,
                              clock=clock).save_token(token)
            finally:
                store.close()
            server.reset_audit()
            chain = Chain(server, env, token["refresh_token"], workdir)
            samples = [command_counts(redis)]
            run = run_cycles(ours, chain, clock, processes=hosts * processes, schedule=schedule,
                             environments=[host.env() for host in fleet for _ in range(processes)],
                             after_cycle=lambda index: samples.append(command_counts(redis)))
            _fill(cell, chain, run, schedule)
            cell.link_connections = [host.link.connections_accepted for host in fleet]
        sums: dict[str, Counter[str]] = {kind: Counter() for kind in ("warmup", "expiry", "baseline")}
        for index, (before, after) in enumerate(zip(samples, samples[1:])):
            counts = after - before
            sums["warmup" if index == 0 else ("expiry" if schedule[index] else "baseline")].update(counts)
            if schedule[index]:
                cell.commands_by_expiry.append(sum(counts.values()))
        cell.baseline_cycles = sum(1 for index, expire in enumerate(schedule) if index > 0 and not expire)
        for kind, counts in sums.items():
            setattr(cell, f"commands_{kind}", dict(counts.most_common()))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return cell


def file_cell(processes: int, threads: int, expiries: int) -> FleetCell:
    """The same schedule over a ``FileTokenStore``: ``processes`` processes on one host."""
    ours = BY_NAME["mcp_sync_auth"]
    cell = FleetCell("file", 1, processes, threads, expiries)
    schedule = _schedule(expiries)
    clock = SharedClock()
    with chain_for(ours, threads=threads, ttl=TTL, clock=clock) as chain:
        chain.env["time_auth"] = True
        run = run_cycles(ours, chain, clock, processes=processes, schedule=schedule)
        _fill(cell, chain, run, schedule)
    return cell


# --- the fast path ------------------------------------------------------------------------------------


@dataclasses.dataclass
class FastPath:
    calls: int
    rounds: int
    call_ns: dict[str, list[float]]  # store -> wall ns per MCPAuth.__call__, one value per round
    token_ns: dict[str, list[float]]  # store -> wall ns per access_token()
    redis_commands: dict[str, int]  # what Redis received while the timed rounds ran
    errors: list[str]
    call_cpu_ns: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # thread CPU ns, same rounds
    token_cpu_ns: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def _values(self, kind: str, cpu: bool) -> dict[str, list[float]]:
        if cpu:
            return self.call_cpu_ns if kind == "call" else self.token_cpu_ns
        return self.call_ns if kind == "call" else self.token_ns

    def median_ns(self, kind: str, store: str, cpu: bool = False) -> float:
        """``kind`` "call" (``MCPAuth.__call__``) or "token" (``access_token()``): the median of the rounds."""
        return median(self._values(kind, cpu).get(store, []))

    def ratio(self, kind: str, cpu: bool = False) -> Optional[float]:
        """Redis ÷ files: the median over rounds of the two stores' rounds, run back to back (slow drift
        in machine load cancels out); None without rounds."""
        values = self._values(kind, cpu)
        pairs = [a / b for a, b in zip(values.get("redis", []), values.get("file", [])) if b]
        return median(pairs) if pairs else None


def fast_path_worker(spec: dict[str, Any], results: Any) -> None:
    """One process, one thread: ``MCPAuth`` over Redis and over files (each on a chain of its own, token
    valid), warmed up, then timed rounds of ``calls`` calls, stores alternating ABBA."""
    try:
        import redis as redis_py  # noqa: PLC0415
        import requests  # noqa: PLC0415

        from mcp_sync_auth import FileTokenStore, RedisTokenStore  # noqa: PLC0415

        env = spec["env"]
        url = env["mcp_url"]
        auths = {
            "redis": make_mcp_auth(url, None, env["client_id"], env["token_endpoint"],
                                   store=RedisTokenStore.from_url(spec["redis_url"])),
            "file": make_mcp_auth(url, None, env["client_id"], env["token_endpoint"],
                                  store=FileTokenStore(env["store_dir"])),
        }
        request = requests.Request("POST", url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}).prepare()
        hooks = request.hooks["response"]
        calls = spec["calls"]

        def per_call(run: Callable[[], Any]) -> tuple[float, float]:
            """(wall ns, this thread's CPU ns) per call."""
            began, cpu = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(calls):
                run()
            return (time.perf_counter_ns() - began) / calls, (time.thread_time_ns() - cpu) / calls

        def call_of(auth: Any) -> Callable[[], Any]:
            def run() -> None:
                auth(request)
                hooks.clear()  # MCPAuth registers its 401 hook on every call; keep the request the same size

            return run

        for auth in auths.values():  # loads the token from its store, then warms the interpreter's caches
            auth.access_token()
            per_call(call_of(auth))
        counter = redis_py.Redis.from_url(spec["redis_url"])
        before = counter.info("commandstats")
        timings: dict[str, dict[str, list[float]]] = {
            series: {name: [] for name in auths} for series in ("call_ns", "call_cpu_ns", "token_ns", "token_cpu_ns")
        }
        for round_ in range(spec["rounds"]):
            order = list(auths) if round_ % 2 == 0 else list(reversed(list(auths)))
            for name in order:
                wall, cpu = per_call(call_of(auths[name]))
                timings["call_ns"][name].append(wall)
                timings["call_cpu_ns"][name].append(cpu)
            for name in reversed(order):
                wall, cpu = per_call(auths[name].access_token)
                timings["token_ns"][name].append(wall)
                timings["token_cpu_ns"][name].append(cpu)
        after = counter.info("commandstats")
        counter.close()
        sent = {}
        for key, value in after.items():
            name = key[len("cmdstat_"):] if key.startswith("cmdstat_") else key
            delta = int(value["calls"]) - int(before.get(key, {}).get("calls", 0))
            if delta and name not in UNCOUNTED:
                sent[name] = delta
        results.put({"pid": os.getpid(), "redis_commands": sent, **timings})
    except Exception:
        import traceback  # noqa: PLC0415

        results.put({"pid": os.getpid(), "error": traceback.format_exc(limit=6)})


def fast_path(calls: int, rounds: int) -> FastPath:
    from mcp_sync_auth import RedisTokenStore  # noqa: PLC0415
    from mcp_sync_auth.testing import RedisServer  # noqa: PLC0415

    ours = BY_NAME["mcp_sync_auth"]
    spawn = spawn_context()
    with RedisServer() as redis, chain_for(ours, threads=1, ttl=NEVER, clock=None) as chain:
        client_id = chain.env["client_id"]
        store = RedisTokenStore.from_url(redis.url)
        try:  # a chain of its own in Redis (the file store holds the other)
            make_mcp_auth(chain.env["mcp_url"], None, client_id, chain.env["token_endpoint"],
                          store=store).save_token(chain.server.mint_tokens(client_id))
        finally:
            store.close()
        results = spawn.Queue()
        spec = {"env": chain.env, "redis_url": redis.url, "calls": calls, "rounds": rounds}
        worker = spawn.Process(target=fast_path_worker, args=(spec, results), daemon=True)
        worker.start()
        reports, errors = _collect(results, 1, START_TIMEOUT)
        _finish([worker])
    if not reports:
        return FastPath(calls, rounds, {}, {}, {}, errors)
    report = reports[0]
    return FastPath(calls, rounds, report["call_ns"], report["token_ns"], report["redis_commands"], errors,
                    report["call_cpu_ns"], report["token_cpu_ns"])


# --- the whole run ------------------------------------------------------------------------------------


@dataclasses.dataclass
class FleetResult:
    cells: list[FleetCell]  # a Redis cell, then its file cell, for each shape
    fast_path: Optional[FastPath]
    not_measured: Optional[str] = None

    def pairs(self) -> list[tuple[FleetCell, Optional[FleetCell]]]:
        out = []
        for cell in self.cells:
            if cell.store != "redis":
                continue
            twin = [c for c in self.cells if c.store == "file" and c.threads == cell.threads
                    and c.processes == cell.total_processes and c.expiries == cell.expiries]
            out.append((cell, twin[0] if twin else None))
        return out


def _say_cell(cell: FleetCell, progress: Callable[[str], None]) -> None:
    extra = ""
    if cell.store == "redis":
        extra = (f" commands/expiry={cell.commands_per_expiry():.1f} ({cell.commands_per_expiry_per_process:.1f}"
                 f"/process), per baseline cycle {cell.commands_per_baseline_cycle:.1f}")
    progress(
        f"  fleet {cell.store:<5} H={cell.hosts} P={cell.processes:<2} N={cell.threads:<3} "
        f"grants/expiry={cell.grants_per_expiry:.2f} reuse={cell.reuse_detections} alive={cell.chain_alive} "
        f"failed={cell.calls_failed} stall p50/p99 +{cell.added_p50 * 1e3:.1f}/+{cell.added_p99 * 1e3:.1f} ms"
        f"{extra} ({cell.seconds:.1f} s){' ERROR' if cell.errors else ''}"
    )


def fleet(shapes: Sequence[tuple[int, int, int]], expiries: int, fast_calls: int, fast_rounds: int,
          progress: Callable[[str], None] = print) -> FleetResult:
    """For each (hosts, processes per host, threads) shape: a Redis cell, then the file cell of the same
    processes and threads on one host; then the fast path over both."""
    why = unavailable()
    if why is not None:
        progress(f"  fleet not measured: {why}")
        return FleetResult([], None, why)
    cells = []
    for hosts, processes, threads in shapes:
        cells.append(redis_cell(hosts, processes, threads, expiries))
        _say_cell(cells[-1], progress)
        cells.append(file_cell(hosts * processes, threads, expiries))
        _say_cell(cells[-1], progress)
    cost = fast_path(fast_calls, fast_rounds)
    progress(
        f"  fleet fast path: MCPAuth.__call__ {cost.median_ns('call', 'redis'):.0f} ns over Redis, "
        f"{cost.median_ns('call', 'file'):.0f} ns over files (ratio {cost.ratio('call') or math.nan:.3f}, "
        f"CPU {cost.ratio('call', cpu=True) or math.nan:.3f}); "
        f"access_token() {cost.median_ns('token', 'redis'):.0f} / {cost.median_ns('token', 'file'):.0f} ns; "
        f"Redis commands while timing: {sum(cost.redis_commands.values())}"
        f"{' ERROR' if cost.errors else ''}"
    )
    return FleetResult(cells, cost)
