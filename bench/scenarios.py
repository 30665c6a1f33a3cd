"""The measurements. Each function starts its own StrictAuthServer on 127.0.0.1, a new refresh chain,
spawned worker processes, and returns plain data (dicts and dataclasses) for the report.

Where a measurement needs exact expiry events it uses :class:`SharedClock`: the parent moves every
process's clock past the token's lifetime between two cycles. Where it is about time (round trips,
stalls, throughput) latencies are read from ``time.perf_counter`` in the workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from mcp_sync_auth.testing import StrictAuthServer

from .clock import SharedClock
from .contenders import BY_NAME, Contender, initial_token_document, make_mcp_auth, write_token_file
from .stall_profile import burst_figures, profile_of
from .stats import median, percentile, ratio, summarize
from .workers import Record, cycles_worker, overhead_worker, probe_worker, refresh_rtt_worker, throughput_worker

TTL = 300.0  # access token lifetime for clock-driven runs; every expiry moves the clock by TTL + 1
START_TIMEOUT = 600.0  # spawning 16 processes on a loaded 2-core machine is slow
CYCLE_TIMEOUT = 300.0
NEVER = 10.0**7  # "never expires" within a run


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")


@dataclasses.dataclass
class Chain:
    """A server, a client registered on it, and a refresh chain stored the way a contender keeps it."""

    server: StrictAuthServer
    env: dict[str, Any]
    initial_refresh_token: str
    workdir: Path

    def alive(self) -> bool:
        return self.server.is_chain_alive(self.initial_refresh_token)


class chain_for:
    def __init__(self, contender: Contender, *, threads: int, ttl: float, clock: Optional[SharedClock]) -> None:
        self.contender = contender
        self.threads = threads
        self.ttl = ttl
        self.clock = clock

    def __enter__(self) -> Chain:
        kwargs: dict[str, Any] = {"access_token_ttl": self.ttl}
        if self.clock is not None:
            kwargs["clock"] = self.clock
        self.server = StrictAuthServer(**kwargs).start()
        self.workdir = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-bench-"))
        try:
            client_id = self.server.register_client()
            token = self.server.mint_tokens(client_id)
            env: dict[str, Any] = {
                "mcp_url": self.server.mcp_url,
                "token_endpoint": self.server.token_endpoint,
                "client_id": client_id,
                "threads": self.threads,
                "store_dir": str(self.workdir / "store"),
                "token_file": str(self.workdir / "token.json"),
            }
            now = self.clock() if self.clock is not None else time.time()
            if self.contender.ours:
                options: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}
                auth = make_mcp_auth(env["mcp_url"], env["store_dir"], client_id, env["token_endpoint"], **options)
                auth.save_token(token)
            else:
                write_token_file(env["token_file"], initial_token_document(token, now))
            self.server.reset_audit()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return Chain(self.server, env, token["refresh_token"], self.workdir)

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _collect(results: Any, count: int, timeout: float) -> tuple[list[dict[str, Any]], list[str]]:
    reports: list[dict[str, Any]] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while len(reports) + len(errors) < count:
        try:
            item = results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            errors.append(f"{count - len(reports) - len(errors)} worker(s) reported nothing")
            break
        if "error" in item:
            errors.append(item["error"])
        else:
            reports.append(item)
    return reports, errors


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` inside the block (for starting a spawned worker), restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _finish(processes: Sequence[Any]) -> None:
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


# --- cycles ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CyclesRun:
    records: list[list[Record]]  # per cycle, every call of every process
    by_process: list[list[list[Record]]]  # per process, per cycle
    errors: list[str]
    phases: list[dict[str, dict[str, float]]]
    seconds: float
    probe: list[float] = dataclasses.field(default_factory=list)  # per cycle: the probe's grant (seconds)
    probe_grants: int = 0  # grants the probe sent (the server counts them with the chain's)
    timelines: list[list[Any]] = dataclasses.field(default_factory=list)  # per process (profile on)


def run_cycles(
    contender: Contender,
    chain: Chain,
    clock: SharedClock,
    *,
    processes: int,
    schedule: Sequence[bool],
    profile: bool = False,
    environments: Optional[Sequence[dict[str, str]]] = None,
    after_cycle: Optional[Callable[[int], None]] = None,
    probe_refresh_token: Optional[str] = None,
) -> CyclesRun:
    """One cycle per schedule entry; ``True`` moves the clock past the token's lifetime first.

    ``environments`` (one per process): the whole environment each worker starts with (a fleet host's
    HOME, caches and store URL). ``after_cycle(index)`` runs in the parent once every process finished
    that cycle, before the next one starts (the fleet run reads Redis's command counters there).
    ``probe_refresh_token``: a refresh token of a chain of its own; a probe process (one more party of
    the barrier) posts one bare refresh grant with it as each cycle starts (:func:`probe_worker`)."""
    spawn = spawn_context()
    probing = probe_refresh_token is not None
    barrier = spawn.Barrier(processes + 1 + (1 if probing else 0))
    results = spawn.Queue()
    spec = {"contender": contender.name, "driver": contender.driver, "env": chain.env,
            "cycles": len(schedule), "profile": profile and contender.ours}
    workers = [spawn.Process(target=cycles_worker, args=(spec, clock, barrier, results), daemon=True)
               for _ in range(processes)]
    if probing:
        probe_spec = {"env": chain.env, "refresh_token": probe_refresh_token, "cycles": len(schedule)}
        workers.append(spawn.Process(target=probe_worker, args=(probe_spec, barrier, results), daemon=True))
    began = time.perf_counter()
    for index, worker in enumerate(workers):
        if environments is None or index >= len(environments):
            worker.start()
        else:
            with environment(environments[index]):  # a spawned child starts with os.environ
                worker.start()
    errors: list[str] = []
    try:
        for index, expire in enumerate(schedule):
            if expire:
                clock.advance(TTL + 1)
            barrier.wait(START_TIMEOUT if index == 0 else CYCLE_TIMEOUT)  # cycle starts
            barrier.wait(CYCLE_TIMEOUT)  # cycle done
            if after_cycle is not None:
                after_cycle(index)
    except threading.BrokenBarrierError:
        errors.append("a worker failed or timed out (barrier broken)")
        barrier.abort()
    reports, report_errors = _collect(results, len(workers), 60 if not errors else 10)
    _finish(workers)
    errors.extend(report_errors)
    probes = [report for report in reports if "probe" in report]
    reports = [report for report in reports if "probe" not in report]
    records: list[list[Record]] = [[] for _ in schedule]
    by_process = []
    for report in reports:
        mine = [[(float(latency), outcome, float(wait)) for latency, outcome, wait in cycle]
                for cycle in report["cycles"]]
        by_process.append(mine)
        for index, cycle in enumerate(mine):
            records[index].extend(cycle)
    phases = [r["phases"] for r in reports if "phases" in r]
    return CyclesRun(records, by_process, errors, phases, time.perf_counter() - began,
                     probe=[float(x) for x in probes[0]["probe"]] if probes else [],
                     probe_grants=int(probes[0]["probe_grants"]) if probes else 0,
                     timelines=[r["timeline"] for r in reports if "timeline" in r])


# --- 1. grants per expiry ------------------------------------------------------------------------------


@dataclasses.dataclass
class CellOutcomes:
    """What a cell's run came to: the server's counts and how the calls went (``fill_outcomes``).

    A cell's class names it before its setup base: a dataclass takes the fields of its last base
    first, so a cell's fields are its setup's, then these, then its own."""

    grants: int = 0
    refresh_ok: int = 0
    reuse_detections: int = 0
    revocations: int = 0
    chain_alive: bool = False
    calls_ok: int = 0
    calls_failed: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def fill_outcomes(cell: CellOutcomes, chain: Chain, run: CyclesRun) -> None:
    """Fill in the server's counts (read while the chain's server runs) and the calls' outcomes."""
    audit = chain.server.audit
    # The probe's grants (a chain of its own, every one accepted) are the server's too: not the chain's.
    cell.grants = audit.grants.get("refresh_token", 0) - run.probe_grants
    cell.refresh_ok = audit.refresh_ok - run.probe_grants
    cell.reuse_detections = audit.reuse_detections
    cell.revocations = audit.revocations
    cell.chain_alive = chain.alive()
    outcomes: Counter[str] = Counter(outcome for cycle in run.records for _, outcome, _ in cycle)
    cell.calls_ok = outcomes.pop("ok", 0)
    cell.calls_failed = sum(outcomes.values())
    cell.failures = dict(outcomes.most_common())
    cell.errors = run.errors
    cell.seconds = run.seconds


@dataclasses.dataclass
class _GrantsSetup:
    contender: str
    threads: int
    processes: int
    expiries: int


@dataclasses.dataclass
class GrantsCell(CellOutcomes, _GrantsSetup):
    @property
    def grants_per_expiry(self) -> float:
        return self.grants / self.expiries if self.expiries else math.nan

    @property
    def valid(self) -> bool:
        return not self.errors


def grants_cell(contender: Contender, *, threads: int, processes: int, expiries: int) -> GrantsCell:
    """A warm-up cycle with a valid token, then ``expiries`` cycles each right after an expiry event."""
    clock = SharedClock()
    cell = GrantsCell(contender.name, threads, processes, expiries)
    with chain_for(contender, threads=threads, ttl=TTL, clock=clock) as chain:
        run = run_cycles(contender, chain, clock, processes=processes, schedule=[False] + [True] * expiries)
        fill_outcomes(cell, chain, run)
    return cell


def grants_matrix(
    contenders: Sequence[Contender],
    threads: Sequence[int],
    processes: Sequence[int],
    expiries: int,
    progress: Callable[[str], None] = print,
) -> list[GrantsCell]:
    """Every cell for every contender; within a cell the contenders run one after another, in an
    order that rotates from cell to cell (interleaved, so slow drift in machine load is shared)."""
    cells = []
    index = 0
    for p in processes:
        for n in threads:
            order = list(contenders[index % len(contenders):]) + list(contenders[: index % len(contenders)])
            index += 1
            for contender in order:
                cell = grants_cell(contender, threads=n, processes=p, expiries=expiries)
                progress(
                    f"  grants  {contender.name:<18} N={n:<3} P={p:<2} grants/expiry={cell.grants_per_expiry:.2f} "
                    f"reuse={cell.reuse_detections} alive={cell.chain_alive} ok={cell.calls_ok} "
                    f"failed={cell.calls_failed} ({cell.seconds:.1f} s){' ERROR' if cell.errors else ''}"
                )
                cells.append(cell)
    return cells


# --- the bare refresh round trip -------------------------------------------------------------------------


def refresh_round_trips(chain: Chain, count: int) -> list[float]:
    """Refresh grants on a second chain of the same client and server, from a process of their own."""
    spawn = spawn_context()
    results = spawn.Queue()
    token = chain.server.mint_tokens(chain.env["client_id"])
    spec = {"env": chain.env, "refresh_token": token["refresh_token"], "count": count}
    worker = spawn.Process(target=refresh_rtt_worker, args=(spec, results), daemon=True)
    worker.start()
    reports, errors = _collect(results, 1, START_TIMEOUT)
    _finish([worker])
    if errors:
        raise RuntimeError("refresh round trip measurement failed:\n" + "\n".join(errors))
    return [float(x) for x in reports[0]["durations"]]


# --- 3. expiry stall -------------------------------------------------------------------------------------


@dataclasses.dataclass
class StallResult:
    threads: int
    processes: int
    expiries: int
    wait_baseline: dict[str, float]  # time in MCPAuth.__call__ (getting the token), valid-token cycles
    wait_expiry: dict[str, float]  # the same, in the cycles right after an expiry
    added_p50: float
    added_p99: float
    latency_baseline: dict[str, float]  # whole calls, for context
    latency_expiry: dict[str, float]
    refresh_rtt: dict[str, float]
    grants: int
    reuse_detections: int
    chain_alive: bool
    calls_ok: int
    calls_failed: int
    errors: list[str]
    phases: list[dict[str, dict[str, float]]]
    per_process_added_p50: list[float] = dataclasses.field(default_factory=list)
    # The headline (bench.stall_profile): end to end, expiry bursts minus the bursts between.
    e2e_added_p50: float = math.nan
    e2e_added_p99: float = math.nan
    probe_expiry: dict[str, float] = dataclasses.field(default_factory=dict)  # a bare grant, in expiry bursts
    probe_baseline: dict[str, float] = dataclasses.field(default_factory=dict)  # the same, in the bursts between
    profile: dict[str, Any] = dataclasses.field(default_factory=dict)  # stall_profile.profile_of

    @property
    def grants_per_expiry(self) -> float:
        return self.grants / self.expiries if self.expiries else math.nan

    def figures(self) -> dict[str, Any]:
        """What bench.stall_profile's goals and profile lines read."""
        return dataclasses.asdict(self)

    @property
    def budget(self) -> float:
        """The goal: one refresh round trip (its median, measured in the same run) + 5 ms."""
        return self.refresh_rtt["p50"] + 0.005


def _split(cycles: Sequence[Sequence[Record]], schedule: Sequence[bool], field: int) -> tuple[list[float], list[float]]:
    """(baseline values, expiry values) of a numeric record field; the warm-up cycle 0 is left out."""
    baseline = [float(record[field]) for i, cycle in enumerate(cycles) if i > 0 and not schedule[i] for record in cycle]
    hit = [float(record[field]) for i, cycle in enumerate(cycles) if schedule[i] for record in cycle]
    return baseline, hit


def stall(threads: int, processes: int, expiries: int, rtt_count: int, profile: bool = True) -> StallResult:
    """Cycles alternate: a valid-token cycle (baseline), then an expiry cycle; the first (warm-up)
    cycle opens connections and is left out.

    The headline (:mod:`bench.stall_profile`) is end to end: whole-call latency in expiry bursts minus
    that in the bursts between, at p50 and p99, set against a probe's bare refresh grant posted as each
    burst starts (the grant under the same load) and against the bare one. As a diagnostic, the time a
    call spent in ``MCPAuth.__call__`` getting its token (the refresh happens there, before the request is
    sent: the client sees the expiry on its clock) minus the median of that time in the baseline cycles.
    The phase timers are on by default (they time the slow path only), so the profile says where it goes.
    """
    ours = BY_NAME["mcp_sync_auth"]
    clock = SharedClock()
    schedule = [False] + [False, True] * expiries
    with chain_for(ours, threads=threads, ttl=TTL, clock=clock) as chain:
        chain.env["time_auth"] = True
        rtt = refresh_round_trips(chain, rtt_count)  # before and after, on chains of their own
        probe_token = chain.server.mint_tokens(chain.env["client_id"])["refresh_token"]
        chain.server.reset_audit()
        run = run_cycles(ours, chain, clock, processes=processes, schedule=schedule, profile=profile,
                         probe_refresh_token=probe_token)
        audit = chain.server.audit
        alive = chain.alive()
        rtt += refresh_round_trips(chain, rtt_count)
    outcomes: Counter[str] = Counter(outcome for cycle in run.records for _, outcome, _ in cycle)
    ok = outcomes.pop("ok", 0)
    figures = stall_figures(run, schedule)
    return StallResult(
        threads, processes, expiries, refresh_rtt=summarize(rtt),
        grants=audit.grants.get("refresh_token", 0) - run.probe_grants,
        reuse_detections=audit.reuse_detections, chain_alive=alive, calls_ok=ok,
        calls_failed=sum(outcomes.values()), errors=run.errors, phases=run.phases, **figures,
        **burst_figures(run.records, run.probe, schedule), profile=profile_of(run.timelines, schedule),
    )


def stall_figures(run: CyclesRun, schedule: Sequence[bool]) -> dict[str, Any]:
    """The stall measure of a cycles run whose workers timed ``MCPAuth.__call__`` (``time_auth``): the
    added latency of each call in an expiry cycle is its time there minus the median of that time in the
    baseline cycles; whole-call latencies of both kinds are kept as context. Keyword arguments of
    :class:`StallResult` (the fleet run reports the same fields)."""
    base_wait, hit_wait = _split(run.records, schedule, 2)
    base_latency, hit_latency = _split(run.records, schedule, 0)
    fast = median(base_wait)
    added = [wait - fast for wait in hit_wait]
    per_process = []
    for mine in run.by_process:
        own_base, own_hit = _split(mine, schedule, 2)
        per_process.append(median(own_hit) - median(own_base))
    return {
        "wait_baseline": summarize(base_wait), "wait_expiry": summarize(hit_wait),
        "added_p50": percentile(added, 50), "added_p99": percentile(added, 99),
        "latency_baseline": summarize(base_latency), "latency_expiry": summarize(hit_latency),
        "per_process_added_p50": sorted(per_process),
    }


# --- 4. throughput with expiries ------------------------------------------------------------------------


@dataclasses.dataclass
class ThroughputRun:
    lifetime: float
    calls_per_second: float
    calls_ok: int
    calls_failed: int
    latency: dict[str, float]
    grants: int
    reuse_detections: int
    chain_alive: bool
    seconds: float
    errors: list[str]
    phases: list[dict[str, dict[str, float]]]


@dataclasses.dataclass
class ThroughputResult:
    threads: int
    processes: int
    seconds: float
    expiring: list[ThroughputRun]
    never: list[ThroughputRun]

    @property
    def ratio(self) -> Optional[float]:
        return ratio(sum(r.calls_per_second for r in self.expiring), sum(r.calls_per_second for r in self.never))

    @property
    def round_ratios(self) -> list[Optional[float]]:
        """Per round (one run of each, back to back): calls/s expiring / calls/s never."""
        return [ratio(a.calls_per_second, b.calls_per_second) for a, b in zip(self.expiring, self.never)]


def throughput_run(threads: int, processes: int, seconds: float, lifetime: float, warmup: float,
                   profile: bool = False) -> ThroughputRun:
    ours = BY_NAME["mcp_sync_auth"]
    spawn = spawn_context()
    with chain_for(ours, threads=threads, ttl=lifetime, clock=None) as chain:
        barrier = spawn.Barrier(processes + 1)
        results = spawn.Queue()
        spec = {"contender": ours.name, "env": chain.env, "seconds": seconds, "warmup": warmup, "profile": profile}
        workers = [spawn.Process(target=throughput_worker, args=(spec, barrier, results), daemon=True)
                   for _ in range(processes)]
        for worker in workers:
            worker.start()
        errors = []
        try:
            barrier.wait(START_TIMEOUT)  # all up
            chain.server.reset_audit()  # count the grants of the warm-up and the window
            barrier.wait(CYCLE_TIMEOUT)  # all warm
        except threading.BrokenBarrierError:
            errors.append("a worker failed or timed out (barrier broken)")
        reports, report_errors = _collect(results, processes, seconds + 120)
        _finish(workers)
        errors.extend(report_errors)
        audit = chain.server.audit
        alive = chain.alive()
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report["outcomes"])
    ok = outcomes.pop("ok", 0)
    rate = sum(r["outcomes"].get("ok", 0) / r["elapsed"] for r in reports) if reports else 0.0
    latency = {key: max((r["latency"][key] for r in reports), default=math.nan) for key in ("p50", "p99", "max")}
    return ThroughputRun(
        lifetime, rate, ok, sum(outcomes.values()), latency, audit.grants.get("refresh_token", 0),
        audit.reuse_detections, alive, seconds, errors, [r["phases"] for r in reports if "phases" in r],
    )


def throughput(threads: int, processes: int, seconds: float, rounds: int, warmup: float,
               progress: Callable[[str], None] = print, profile: bool = False) -> ThroughputResult:
    """Runs alternate ABBA: expiring every second, never expiring, never, expiring, ..."""
    result = ThroughputResult(threads, processes, seconds, [], [])
    for round_ in range(rounds):
        order = (1.0, NEVER) if round_ % 2 == 0 else (NEVER, 1.0)
        for lifetime in order:
            run = throughput_run(threads, processes, seconds, lifetime, warmup, profile=profile)
            (result.expiring if lifetime == 1.0 else result.never).append(run)
            progress(
                f"  throughput lifetime={'1 s' if lifetime == 1.0 else 'never'} N={threads} P={processes}: "
                f"{run.calls_per_second:.0f} calls/s, grants={run.grants}, reuse={run.reuse_detections}, "
                f"failed={run.calls_failed}{' ERROR' if run.errors else ''}"
            )
    return result


# --- 2. fast-path overhead -------------------------------------------------------------------------------


@dataclasses.dataclass
class OverheadResult:
    processes: int
    cpu_ours: float  # seconds of CPU per MCPAuth.__call__ (median over rounds)
    cpu_static: float
    rtt_ours: dict[str, float]
    rtt_static: dict[str, float]
    ratio_p50: Optional[float]  # median latency with MCPAuth / median latency with a static header
    ratio_mean: Optional[float]
    ratio_blocks: Optional[float]  # median over interleaved block pairs of (block mean ours / static)
    calls_failed: int
    profile: Optional[str]
    errors: list[str]


def overhead(*, cpu_calls: int, cpu_rounds: int, rtt_pairs: int, rtt_block: int, processes: int = 1,
             profile: bool = False) -> OverheadResult:
    """One process (or ``processes`` at once, for scaling), one thread each; server never expires."""
    ours = BY_NAME["mcp_sync_auth"]
    spawn = spawn_context()
    with chain_for(ours, threads=1, ttl=NEVER, clock=None) as chain:
        results = spawn.Queue()
        spec = {"env": chain.env, "cpu_calls": cpu_calls, "cpu_rounds": cpu_rounds, "rtt_pairs": rtt_pairs,
                "rtt_block": rtt_block, "profile": profile}
        workers = [spawn.Process(target=overhead_worker, args=(spec, results), daemon=True)
                   for _ in range(processes)]
        for worker in workers:
            worker.start()
        reports, errors = _collect(results, processes, START_TIMEOUT)
        _finish(workers)
    if not reports:
        nan = math.nan
        return OverheadResult(processes, nan, nan, {}, {}, None, None, None, 0, None, errors)
    cpu_ours = median([x for r in reports for x in r["cpu"]["mcp_sync_auth"]])
    cpu_static = median([x for r in reports for x in r["cpu"]["static"]])
    lat_ours = [x for r in reports for x in r["latencies"]["mcp_sync_auth"]]
    lat_static = [x for r in reports for x in r["latencies"]["static"]]
    pair_ratios = [
        a / b for r in reports for a, b in zip(r["block_means"]["mcp_sync_auth"], r["block_means"]["static"])
    ]
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcomes.update(report["outcomes"])
    outcomes.pop("ok", None)
    s_ours, s_static = summarize(lat_ours), summarize(lat_static)
    return OverheadResult(
        processes, cpu_ours, cpu_static, s_ours, s_static,
        ratio_p50=ratio(s_ours["p50"], s_static["p50"]), ratio_mean=ratio(s_ours["mean"], s_static["mean"]),
        ratio_blocks=median(pair_ratios) if pair_ratios else None, calls_failed=sum(outcomes.values()),
        profile=reports[0].get("profile"), errors=errors,
    )


# --- 5. scaling ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScalingPoint:
    processes: int
    stall: StallResult
    overhead: OverheadResult


def scaling(process_counts: Sequence[int], threads: int, expiries: int, rtt_count: int,
            overhead_args: dict[str, int], progress: Callable[[str], None] = print) -> list[ScalingPoint]:
    points = []
    for processes in process_counts:
        result = stall(threads, processes, expiries, rtt_count)
        cost = overhead(processes=processes, cpu_calls=overhead_args["cpu_calls"],
                        cpu_rounds=overhead_args["cpu_rounds"], rtt_pairs=overhead_args["rtt_pairs"],
                        rtt_block=overhead_args["rtt_block"])
        progress(
            f"  scaling P={processes:<2} N={threads}: grants/expiry={result.grants_per_expiry:.2f} "
            f"alive={result.chain_alive} stall p50/p99 +{result.added_p50 * 1e3:.1f}/+{result.added_p99 * 1e3:.1f} "
            f"ms (refresh RTT p50 {result.refresh_rtt['p50'] * 1e3:.1f} ms), "
            f"overhead ratio {cost.ratio_p50 or math.nan:.3f}"
        )
        points.append(ScalingPoint(processes, result, cost))
    return points
