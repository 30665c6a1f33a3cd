"""The expiry stall at scale: 1, 8 and 64 threads x 1, 4 and 8 processes, file store and Redis store
side by side, in one run.

    python -m bench.stall_grid            # the grid, 10 expiries a cell (about ten minutes on 2 cores)
    python -m bench.stall_grid --quick    # 3 expiries a cell (a few minutes)
    python -m bench.stall_grid --json     # the same, one JSON object on stdout instead of the table
    python -m bench.stall_grid --save grid.json   # the table, and the JSON object in grid.json

Each cell is the stall run of ``python -m bench`` section 3 (:func:`bench.scenarios.stall`): a warm-up
burst, then a valid-token burst and an expiry burst, E times, every thread of every process calling once
per burst at the same moment, on a shared clock; the phase timers on. Per cell: refresh grants per expiry
(the invariant, exactly 1.00) and the chain's state; the headline, end to end, expiry bursts minus the
bursts between at p50 and p99; the in-``__call__`` figure (a diagnostic); a probe's bare refresh grant
posted as each burst starts (the grant under the same load), the flight leader's own grant, and the bare
grant on a quiet machine; the wake-ups of the other processes and of the in-process waiters.

Redis cells run when ``redis-server`` is on ``PATH`` and redis-py is installed: one redis-server of the
cell's own (:class:`mcp_sync_auth.testing.RedisServer`), every process on this host picking the store from
``$MCP_SYNC_AUTH_STORE``, as a deployed process would.

The goals (the issue's, at 64 threads x 4 processes) are printed PASS or MISS against today's numbers;
a MISS prints the profile: where the time goes. The exit status is 1 only if a cell broke the invariant
(a grant more or less than one per expiry, a reuse detection, a dead chain, a failed call); times never
fail a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mcp_sync_auth.testing import StrictAuthServer

from . import machine
from .clock import SharedClock
from .contenders import BY_NAME, make_mcp_auth
from .fleet import unavailable as redis_unavailable
from .scenarios import (
    TTL,
    CellOutcomes,
    Chain,
    chain_for,
    fill_outcomes,
    refresh_round_trips,
    run_cycles,
    stall_figures,
)
from .stall_profile import (
    GOAL_SHAPE,
    TODAY_E2E_BASELINE_P50,
    TODAY_E2E_EXPIRY_P50,
    TODAY_GRANT_UNDER_LOAD,
    TODAY_IN_CALL_P50,
    TODAY_IN_CALL_P99,
    burst_figures,
    goals,
    profile_of,
    where_the_time_goes,
)
from .stats import summarize

THREADS = (1, 8, 64)
PROCESSES = (1, 4, 8)
STORES = ("file", "redis")
FULL_EXPIRIES = 10
QUICK_EXPIRIES = 3
LOADED = 0.5  # a 1-minute load average at or above this share of the cores: "the machine was loaded"


@dataclasses.dataclass
class _GridSetup:
    store: str
    threads: int
    processes: int
    expiries: int


@dataclasses.dataclass
class GridCell(CellOutcomes, _GridSetup):
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def grants_per_expiry(self) -> float:
        return self.grants / self.expiries if self.expiries else math.nan

    def problems(self) -> list[str]:
        where = f"{self.store} N={self.threads} P={self.processes}"
        if self.errors:
            return [f"{where}: the run failed: {self.errors[0].strip().splitlines()[-1]}"]
        if self.grants != self.expiries or self.refresh_ok != self.expiries or self.reuse_detections \
                or not self.chain_alive or self.calls_failed:
            return [f"{where}: {self.grants} grants ({self.refresh_ok} accepted) for {self.expiries} expiries, "
                    f"{self.reuse_detections} reuse detections, chain alive {self.chain_alive}, "
                    f"{self.calls_failed} calls failed"]
        return []


def _schedule(expiries: int) -> list[bool]:
    return [False] + [False, True] * expiries


def _measure(cell: GridCell, chain: Chain, clock: SharedClock, rtt_count: int,
             environments: Optional[list[dict[str, str]]]) -> None:
    ours = BY_NAME["mcp_sync_auth"]
    schedule = _schedule(cell.expiries)
    bare = refresh_round_trips(chain, rtt_count)  # quiet: nothing else of the cell runs yet
    probe_token = chain.server.mint_tokens(chain.env["client_id"])["refresh_token"]
    chain.server.reset_audit()
    run = run_cycles(ours, chain, clock, processes=cell.processes, schedule=schedule, profile=True,
                     environments=environments, probe_refresh_token=probe_token)
    fill_outcomes(cell, chain, run)
    if run.errors:
        return
    figures: dict[str, Any] = {"refresh_rtt": summarize(bare)}
    figures.update(stall_figures(run, schedule))
    figures.update(burst_figures(run.records, run.probe, schedule))
    figures["profile"] = profile_of(run.timelines, schedule)
    cell.figures = figures


def file_cell(threads: int, processes: int, expiries: int, rtt_count: int) -> GridCell:
    ours = BY_NAME["mcp_sync_auth"]
    cell = GridCell("file", threads, processes, expiries)
    clock = SharedClock()
    with chain_for(ours, threads=threads, ttl=TTL, clock=clock) as chain:
        chain.env["time_auth"] = True
        _measure(cell, chain, clock, rtt_count, None)
    return cell


def redis_cell(threads: int, processes: int, expiries: int, rtt_count: int) -> GridCell:
    from mcp_sync_auth import RedisTokenStore  # noqa: PLC0415 - redis-py only when Redis cells run
    from mcp_sync_auth.testing import RedisServer  # noqa: PLC0415

    cell = GridCell("redis", threads, processes, expiries)
    clock = SharedClock()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-bench-grid-"))
    server = StrictAuthServer(access_token_ttl=TTL, clock=clock).start()
    try:
        with RedisServer() as redis:
            client_id = server.register_client()
            token = server.mint_tokens(client_id)
            env: dict[str, Any] = {"mcp_url": server.mcp_url, "token_endpoint": server.token_endpoint,
                                   "client_id": client_id, "threads": threads, "store": "environment",
                                   "time_auth": True}
            store = RedisTokenStore.from_url(redis.url)
            try:  # the login happened once, somewhere
                make_mcp_auth(server.mcp_url, None, client_id, server.token_endpoint, store=store,
                              clock=clock).save_token(token)
            finally:
                store.close()
            chain = Chain(server, env, token["refresh_token"], workdir)
            base = {key: value for key, value in os.environ.items() if not key.startswith("MCP_SYNC_AUTH_")}
            environments = [dict(base, MCP_SYNC_AUTH_STORE=redis.url) for _ in range(processes)]
            _measure(cell, chain, clock, rtt_count, environments)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return cell


@dataclasses.dataclass
class GridRun:
    mode: str
    command: str
    started: str
    machine: dict[str, Any]
    load_start: Optional[tuple[float, float, float]]
    threads: list[int]
    processes: list[int]
    stores: list[str]
    expiries: int
    cells: list[GridCell] = dataclasses.field(default_factory=list)
    not_measured: dict[str, str] = dataclasses.field(default_factory=dict)
    load_end: Optional[tuple[float, float, float]] = None
    load_samples: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def loaded(self) -> bool:
        cores = float(self.machine.get("usable_cores") or 1)
        loads = [load[0] for load in (self.load_start, self.load_end) if load] + list(self.load_samples)
        return any(load >= LOADED * cores for load in loads)

    def goal_cells(self) -> list[GridCell]:
        threads, processes = GOAL_SHAPE
        return [c for c in self.cells if c.threads == threads and c.processes == processes and c.figures]

    def problems(self) -> list[str]:
        return [problem for cell in self.cells for problem in cell.problems()]


def grid(threads: Sequence[int], processes: Sequence[int], stores: Sequence[str], expiries: int, rtt_count: int,
         mode: str, command: str, progress: Callable[[str], None] = print) -> GridRun:
    run = GridRun(mode, command, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  machine.describe(), machine.load_average(), list(threads), list(processes), list(stores), expiries)
    began = time.perf_counter()
    chosen = list(stores)
    if "redis" in chosen:
        why = redis_unavailable()
        if why is not None:
            run.not_measured["redis"] = why
            chosen.remove("redis")
            progress(f"redis cells not measured: {why}")
    makers = {"file": file_cell, "redis": redis_cell}
    index = 0
    for p in processes:
        for n in threads:
            order = chosen[index % len(chosen):] + chosen[: index % len(chosen)] if chosen else []
            index += 1  # the stores take turns going first, so slow drift in the machine's load is shared
            for store in order:
                load = machine.load_average()
                if load is not None:
                    run.load_samples.append(load[0])
                cell = makers[store](n, p, expiries, rtt_count)
                run.cells.append(cell)
                progress(_line(cell))
    run.cells.sort(key=lambda c: (STORES.index(c.store), c.processes, c.threads))
    run.seconds = time.perf_counter() - began
    run.load_end = machine.load_average()
    return run


# --- output --------------------------------------------------------------------------------------------


def _ms(seconds: Optional[float]) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.1f}"


def _plus(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:+.1f}"


def _get(cell: GridCell, *path: str) -> float:
    value: Any = cell.figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return math.nan
        value = value[key]
    return float(value)


def _line(cell: GridCell) -> str:
    if cell.errors:
        last = cell.errors[0].strip().splitlines()[-1]
        return f"  {cell.store:<5} N={cell.threads:<3} P={cell.processes}: ERROR {last}"
    return (f"  {cell.store:<5} N={cell.threads:<3} P={cell.processes}: grants/expiry {cell.grants_per_expiry:.2f}, "
            f"alive {cell.chain_alive}, failed {cell.calls_failed}; end to end {_plus(_get(cell, 'e2e_added_p50'))} / "
            f"{_plus(_get(cell, 'e2e_added_p99'))} ms (p50 / p99), grant under load "
            f"{_ms(_get(cell, 'probe_expiry', 'p50'))} ms ({cell.seconds:.1f} s)")


COLUMNS = (
    ("store", 5), ("N", 3), ("P", 2), ("grants/exp", 10), ("alive", 5), ("e2e +p50", 8), ("e2e +p99", 8),
    ("call +p50", 9), ("call +p99", 9), ("grant load", 10), ("leader grant", 12), ("bare", 5), ("+p50/grant", 10),
    ("xproc after release p99", 23), ("xproc after visible p99", 23), ("inproc wake p99", 15), ("s", 5),
)


def table(run: GridRun) -> list[str]:
    rows = [[name for name, _ in COLUMNS]]
    for cell in run.cells:
        probe = _get(cell, "probe_expiry", "p50")
        added = _get(cell, "e2e_added_p50")
        rows.append([
            cell.store, str(cell.threads), str(cell.processes),
            "error" if cell.errors else f"{cell.grants_per_expiry:.2f}", "yes" if cell.chain_alive else "NO",
            _ms(added), _ms(_get(cell, "e2e_added_p99")), _ms(_get(cell, "added_p50")), _ms(_get(cell, "added_p99")),
            _ms(probe), _ms(_get(cell, "profile", "leader_grant", "p50")), _ms(_get(cell, "refresh_rtt", "p50")),
            "n/a" if math.isnan(added) or not probe or math.isnan(probe) else f"{added / probe:.1f}",
            _ms(_get(cell, "profile", "cross_process_wake", "p99")),
            _ms(_get(cell, "profile", "cross_process_after_visible", "p99")),
            _ms(_get(cell, "profile", "in_process_wake", "p99")),
            f"{cell.seconds:.0f}",
        ])
    widths = [max(width, *(len(row[i]) for row in rows)) for i, (_, width) in enumerate(COLUMNS)]
    lines = []
    for number, row in enumerate(rows):
        cells = (value.rjust(widths[i]) if i > 1 else value.ljust(widths[i]) for i, value in enumerate(row))
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def report(run: GridRun) -> list[str]:
    m = run.machine
    lines = [
        f"expiry stall grid ({run.mode}: {run.expiries} expiries a cell), {run.command}; started {run.started}, "
        f"took {run.seconds:.0f} s",
        f"machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['python']}; mcp_sync_auth from "
        f"{m.get('library_source', 'n/a')}",
        f"load average at start {_load(run.load_start)}, at end {_load(run.load_end)}; 1-minute load as each cell "
        "began: " + ", ".join(f"{x:.1f}" for x in run.load_samples),
    ]
    if run.loaded:
        lines.append("THE MACHINE WAS LOADED (load average >= half the cores): times are noisy; counts are not.")
    for store, why in run.not_measured.items():
        lines.append(f"not measured: {store} cells: {why}")
    lines += [
        "",
        "All times in ms. e2e +p50/+p99: whole-call latency in expiry bursts minus in the bursts between (p50 "
        "and p99; the headline). call +p50/+p99: time in MCPAuth.__call__ minus its baseline median (a "
        "diagnostic). grant load: a probe's bare refresh grant posted as each expiry burst starts, p50 (the "
        "grant under the same load); leader grant: the flight leader's own grant, p50; bare: the bare grant "
        "alone, before the bursts, p50. +p50/grant: e2e +p50 / grant load. xproc after release / after "
        "visible: the holder's lock release (or its new set becoming visible: renamed, committed) to another "
        "process's leader returning with the new set (negative: seen before it); inproc wake: a leader's work "
        "returning to its waiter running.",
        "",
        *table(run),
        "",
        "today (the issue: 64 threads x 4 processes, files, quiet machine): in MCPAuth.__call__ "
        f"+{_ms(TODAY_IN_CALL_P50)} / +{_ms(TODAY_IN_CALL_P99)} ms (p50 / p99); end to end p50 "
        f"{_ms(TODAY_E2E_EXPIRY_P50)} ms after an expiry vs {_ms(TODAY_E2E_BASELINE_P50)} ms between "
        f"(+{_ms(TODAY_E2E_EXPIRY_P50 - TODAY_E2E_BASELINE_P50)} ms); the grant under that load "
        f"{_ms(TODAY_GRANT_UNDER_LOAD)} ms.",
    ]
    goal_cells = run.goal_cells()
    if not goal_cells:
        lines.append(f"goals: not evaluated (no cell of {GOAL_SHAPE[0]} threads x {GOAL_SHAPE[1]} processes measured)")
    for cell in goal_cells:
        lines += ["", f"goals, {cell.store} store, {cell.threads} threads x {cell.processes} processes:"]
        missed = False
        for goal, measured, met in goals(cell.figures):
            verdict = "n/a " if met is None else ("PASS" if met else "MISS")
            missed = missed or met is False
            lines.append(f"  {verdict}  {goal}")
            lines.append(f"        measured: {measured}")
        if missed:
            lines += ["  where the time goes (mean and p99 over the expiries):"]
            lines += ["    " + line for line in where_the_time_goes(cell.figures)]
    problems = run.problems()
    lines.append("")
    if problems:
        lines.append("FAILED: mcp_sync_auth broke its guarantee:")
        lines += [f"  - {problem}" for problem in problems]
    else:
        lines.append("OK: exactly one refresh grant per expiry in every cell, no reuse, chain alive, no failed call.")
    return lines


def _load(load: Optional[tuple[float, float, float]]) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load)


def to_json(run: GridRun) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["loaded"] = run.loaded
    for cell, raw in zip(run.cells, data["cells"]):
        raw["grants_per_expiry"] = cell.grants_per_expiry
    data["goals"] = [
        {"store": cell.store, "threads": cell.threads, "processes": cell.processes,
         "goals": [{"goal": g, "measured": v, "met": met} for g, v, met in goals(cell.figures)]}
        for cell in run.goal_cells()
    ]
    data["problems"] = run.problems()
    return data


def _numbers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise SystemExit(f"need numbers of at least 1: {text!r}")
    return values


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stall_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EXPIRIES} expiries a cell, not {FULL_EXPIRIES}")
    parser.add_argument("--expiries", type=int, help="expiries a cell (overrides --quick)")
    parser.add_argument("--threads", default=",".join(map(str, THREADS)), help="default: %(default)s")
    parser.add_argument("--processes", default=",".join(map(str, PROCESSES)), help="default: %(default)s")
    parser.add_argument("--stores", default=",".join(STORES), help="default: %(default)s")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write that JSON object to FILE")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = [s for s in stores if s not in STORES]
    if unknown or not stores:
        raise SystemExit(f"unknown store(s): {', '.join(unknown) or '(none)'} (choose from {', '.join(STORES)})")
    expiries = args.expiries if args.expiries is not None else (QUICK_EXPIRIES if args.quick else FULL_EXPIRIES)
    if expiries < 1:
        raise SystemExit("--expiries must be at least 1")
    command = " ".join(["python -m bench.stall_grid", *(argv if argv is not None else sys.argv[1:])])
    progress: Callable[[str], None] = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (
        lambda text: print(text, flush=True))
    run = grid(_numbers(args.threads), _numbers(args.processes), stores, expiries, 10 if args.quick else 30,
               "quick" if args.quick else "full", command, progress)
    if args.save is not None:
        args.save.write_text(json.dumps(to_json(run), indent=1, default=str) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(to_json(run), indent=1, default=str))
    else:
        print("\n".join(report(run)))
    return 1 if run.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
