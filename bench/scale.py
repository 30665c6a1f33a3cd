"""The benchmark of scale, in one run: many chains in one process, and the expiry stall grid.

    python -m bench.scale                  # everything (about 6 minutes on a quiet 2-core machine)
    python -m bench.scale --quick          # small sizes, 2 expiries a cell (under a minute; for tests)
    python -m bench.scale --expiries 10    # the stall grid with 10 expiries a cell instead of 20
    python -m bench.scale --only chains    # one part: chains or stall
    python -m bench.scale --save run.json  # also write every number to run.json
    python -m bench.scale --save-default   # ... to bench/results/scale.json, and the report to scale.md

Part 1, chains (:func:`bench.chains.measure`, about a minute in full): the fast path's CPU per call
with 1, 100 and 10,000 chains in one process; memory per chain at the same counts; 100,000 chains
touched once (what stays in memory: bounded, or the run fails); ``records()`` and
``mcp-sync-auth status --json`` over 10,000 stored chains, file store and Redis store.

Part 2, stall (:func:`bench.stall_grid.grid`, about four minutes in full): the expiry stall with 1, 8 and
64 threads x 1, 4 and 8 processes, file store and Redis store side by side, 20 expiries a cell (the
per-expiry figures, the leader's grant and the wake-ups, get 20 samples a process; the largest cell,
64 x 8, takes about 5 s plus 1.2 s an expiry on 2 cores, the 18 cells together about 45 s plus 8 s an
expiry; a loaded machine can double that, which still stays under a quarter of an hour). Per cell:
refresh grants per expiry (must be 1.00), violations (must be 0: reuse detections, refused grants, failed
calls, a dead chain, a crashed run), and the end-to-end stall against the grant under the same load.

The report prints a table per part and a summary: the load average at the start and the end (a loaded
machine is flagged: its times are noisy, its counts are not), and each failed check. The exit status is 1
when a stall cell is not exactly 1.00 grants per expiry with 0 violations, when the chains touched once
are not bounded, or when a part crashed; times never fail a run. Redis parts need ``redis-server`` on
``PATH`` and redis-py; without them they are listed as not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from . import chains as chains_part
from . import machine, stall_grid
from .fleet import unavailable as redis_unavailable
from .stall_profile import goals as stall_goals

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PARTS = ("chains", "stall")


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str
    fast_chains: tuple[int, ...]  # chain counts of the fast path and of the memory per chain
    calls: int  # fast-path calls at each count
    touched: int  # chains touched once
    listed: int  # stored chains for records() and status
    threads: tuple[int, ...]
    processes: tuple[int, ...]
    stores: tuple[str, ...]
    expiries: int  # a stall cell's expiries
    rtt_count: int  # bare refresh grants a stall cell times before its bursts


FULL = Plan(
    mode="full", fast_chains=chains_part.FAST_CHAINS, calls=chains_part.FULL_CALLS, touched=chains_part.FULL_TOUCHED,
    listed=chains_part.LISTED, threads=stall_grid.THREADS, processes=stall_grid.PROCESSES, stores=stall_grid.STORES,
    expiries=20, rtt_count=30,
)
# The same fast-path counts (cheap), 10,000 touched once (more than the memory's default bound of 4096),
# fewer stored chains, and a 2 x 2 corner of the grid.
QUICK = Plan(
    mode="quick", fast_chains=chains_part.FAST_CHAINS, calls=50_000, touched=chains_part.QUICK_TOUCHED, listed=1_000,
    threads=(1, 8), processes=(1, 2), stores=stall_grid.STORES, expiries=2, rtt_count=5,
)


# --- the chains part -------------------------------------------------------------------------------------


def _row(name: str, value: Optional[float], unit: str, detail: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "detail": detail}


def _chains(count: int) -> str:
    return f"{count:,} chain" + ("" if count == 1 else "s")


def fast_path_row(chains: int) -> str:
    return f"fast path CPU per call, {_chains(chains)}"


def memory_row(chains: int) -> str:
    return f"memory per chain, {_chains(chains)}"


def touched_row(chains: int) -> str:
    return f"{chains:,} chains touched once, held"


def listing_rows(listed: int, store: str) -> tuple[str, str]:
    return f"records(), {listed:,} chains, {store} store", f"status, {listed:,} chains, {store} store"


def row_names(plan: Plan) -> list[str]:
    """The rows of the chains table, in order, for a plan (what the test checks the JSON against)."""
    names = [fast_path_row(n) for n in plan.fast_chains] + [memory_row(n) for n in plan.fast_chains]
    names.append(touched_row(plan.touched))
    for store in ("file", "redis"):
        names += listing_rows(plan.listed, store)
    return names


def chains_rows(data: dict[str, Any], redis_why: Optional[str]) -> list[dict[str, Any]]:
    rows = [_row(fast_path_row(f["chains"]), f["cpu_us_per_call"], "us CPU", f"{f['calls']:,} calls")
            for f in data["fast_path"]]
    rows += [_row(memory_row(m["chains"]), m["bytes_per_chain"], "bytes") for m in data["memory"]]
    once = data["touched_once"]
    held = chains_held(once["registry"])
    rows.append(_row(touched_row(once["chains"]), once["held_bytes"] / 1e6, "MB",
                     f"{held:,} chains still in memory {once['registry']}"))
    for store in ("file", "redis"):
        found = data["listing"][store]
        records, status = listing_rows(data["listed"], store)
        if found is None:
            why = f"not measured: {redis_why or 'no redis-server on PATH'}"
            rows += [_row(records, None, "s", why), _row(status, None, "s", why)]
            continue
        trips = found.get("records_round_trips")
        rows.append(_row(records, found["records_s"], "s", f"{found['records_cpu_s']:.3f} s CPU"
                         + (f", {trips:,} round trips" if trips is not None else "")))
        rows.append(_row(status, found["status_s"], "s", f"{found['status_cpu_s']:.3f} s CPU"))
    return rows


def chains_held(registry: dict[str, int]) -> int:
    """The chains whose memory the process still holds: every live memory (the LRU and the unsaved sets
    are parts of it), or everything an old checkout's unbounded dict holds."""
    return registry.get("live", max(registry.values(), default=0))


def chains_problems(data: dict[str, Any]) -> list[str]:
    once = data["touched_once"]
    if chains_held(once["registry"]) >= once["chains"]:
        return [f"{once['chains']:,} chains touched once are all still in memory ({once['registry']}): not bounded"]
    return []


def chains_table(rows: list[dict[str, Any]]) -> list[str]:
    width = max(len(row["name"]) for row in rows)
    lines = [f"{'row':<{width}}  {'value':>10}  {'unit':<6}  detail", f"{'-' * width}  {'-' * 10}  {'-' * 6}  ------"]
    for row in rows:
        value = "n/a" if row["value"] is None else f"{row['value']:.{0 if row['unit'] == 'bytes' else 3}f}"
        lines.append(f"{row['name']:<{width}}  {value:>10}  {row['unit']:<6}  {row['detail']}".rstrip())
    return lines


# --- the stall part --------------------------------------------------------------------------------------


def violations(cell: stall_grid.GridCell) -> int:
    """What must never happen, counted: reuse detections, refused grants, failed calls, a dead chain, a crash."""
    refused = max(0, cell.grants - cell.refresh_ok)
    return cell.reuse_detections + refused + cell.calls_failed + (0 if cell.chain_alive else 1) + len(cell.errors)


def cell_ok(cell: stall_grid.GridCell) -> bool:
    return not cell.errors and cell.grants_per_expiry == 1.0 and violations(cell) == 0


def stall_cell_json(cell: stall_grid.GridCell) -> dict[str, Any]:
    return {
        "store": cell.store, "threads": cell.threads, "processes": cell.processes, "expiries": cell.expiries,
        "grants": cell.grants, "refresh_ok": cell.refresh_ok, "grants_per_expiry": cell.grants_per_expiry,
        "violations": violations(cell), "ok": cell_ok(cell), "reuse_detections": cell.reuse_detections,
        "chain_alive": cell.chain_alive, "calls_ok": cell.calls_ok, "calls_failed": cell.calls_failed,
        "failures": cell.failures, "errors": cell.errors, "seconds": cell.seconds, "figures": cell.figures,
    }


STALL_COLUMNS = ("store", "N", "P", "grants/exp", "violations", "e2e +p50", "e2e +p99", "grant load", "bare",
                 "xproc wake p99", "inproc wake p99", "s", "check")


def stall_table(run: stall_grid.GridRun) -> list[str]:
    get, ms = stall_grid._get, stall_grid._ms
    rows = [list(STALL_COLUMNS)]
    for cell in run.cells:
        rows.append([
            cell.store, str(cell.threads), str(cell.processes),
            "error" if cell.errors else f"{cell.grants_per_expiry:.2f}", str(violations(cell)),
            ms(get(cell, "e2e_added_p50")), ms(get(cell, "e2e_added_p99")), ms(get(cell, "probe_expiry", "p50")),
            ms(get(cell, "refresh_rtt", "p50")), ms(get(cell, "profile", "cross_process_wake", "p99")),
            ms(get(cell, "profile", "in_process_wake", "p99")), f"{cell.seconds:.0f}",
            "ok" if cell_ok(cell) else "FAILED",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(STALL_COLUMNS))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(v.ljust(widths[i]) if i in (0, 12) else v.rjust(widths[i]) for i, v in enumerate(row)))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


# --- one run ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScaleRun:
    plan: Plan
    parts: list[str]
    command: str
    started: str
    machine: dict[str, Any]
    load_start: Optional[tuple[float, float, float]]
    load_end: Optional[tuple[float, float, float]] = None
    chains: Optional[dict[str, Any]] = None
    chain_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    stall: Optional[stall_grid.GridRun] = None
    not_measured: dict[str, str] = dataclasses.field(default_factory=dict)
    crashes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def loaded(self) -> bool:
        cores = float(self.machine.get("usable_cores") or 1)
        loads = [load[0] for load in (self.load_start, self.load_end) if load]
        if self.stall is not None:
            loads += self.stall.load_samples
        return any(load >= stall_grid.LOADED * cores for load in loads)

    def problems(self) -> list[str]:
        found = list(self.crashes)
        if self.chains is not None:
            found += chains_problems(self.chains)
        if self.stall is not None:
            for cell in self.stall.cells:
                if not cell_ok(cell):
                    found.append(f"stall {cell.store} N={cell.threads} P={cell.processes}: grants per expiry "
                                 f"{cell.grants_per_expiry:.2f} (must be 1.00), {violations(cell)} violations "
                                 f"(must be 0)" + "".join(f"; {p}" for p in cell.problems()))
        return found


def run_scale(plan: Plan, parts: Sequence[str], command: str,
              progress: Callable[[str], None] = print) -> ScaleRun:
    run = ScaleRun(plan, list(parts), command,
                   datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   machine.describe(), machine.load_average())
    began = time.perf_counter()

    def say(text: str) -> None:
        progress(f"[{time.perf_counter() - began:6.1f} s] {text}")

    redis_why = redis_unavailable()
    if redis_why is not None:
        run.not_measured["redis"] = redis_why
        say(f"redis parts not measured: {redis_why}")
    if "chains" in parts:
        say(f"1. chains: fast path and memory at {', '.join(f'{n:,}' for n in plan.fast_chains)} chains, "
            f"{plan.touched:,} touched once, records()/status over {plan.listed:,}")
        try:
            run.chains = chains_part.measure(plan.calls, plan.touched, plan.fast_chains, plan.listed,
                                             progress=lambda text: say(f"  {text}"))
            run.chain_rows = chains_rows(run.chains, redis_why)
        except Exception:  # reported; the run goes on to the other part
            run.crashes.append("chains part crashed: " + traceback.format_exc().strip().splitlines()[-1])
            say(traceback.format_exc())
    if "stall" in parts:
        say(f"2. stall: threads {plan.threads} x processes {plan.processes}, {', '.join(plan.stores)}, "
            f"{plan.expiries} expiries a cell")
        try:
            run.stall = stall_grid.grid(plan.threads, plan.processes, plan.stores, plan.expiries, plan.rtt_count,
                                        plan.mode, command, progress=say)
        except Exception:
            run.crashes.append("stall part crashed: " + traceback.format_exc().strip().splitlines()[-1])
            say(traceback.format_exc())
    run.seconds = time.perf_counter() - began
    run.load_end = machine.load_average()
    return run


def _load(load: Optional[tuple[float, float, float]]) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load)


def report(run: ScaleRun) -> list[str]:
    m = run.machine
    lines = [
        f"benchmark of scale ({run.plan.mode}), {run.command}; started {run.started}, took {run.seconds:.0f} s",
        f"machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['python']}; mcp_sync_auth from "
        f"{m.get('library_source', 'n/a')}",
    ]
    if run.chains is not None:
        lines += ["", "1. chains in one process (CPU: time.process_time; memory: tracemalloc; listing: best wall time)",
                  "", *chains_table(run.chain_rows)]
    if run.stall is not None:
        lines += ["", f"2. expiry stall grid, {run.stall.expiries} expiries a cell (ms; e2e +p50/+p99: whole-call "
                  "latency in expiry bursts minus the bursts between; grant load: a bare grant posted as each "
                  "expiry burst starts; bare: alone, before the bursts; wake: see bench/README.md)",
                  "", *stall_table(run.stall)]
        for cell in run.stall.goal_cells():
            lines += ["", f"goals at {cell.threads} threads x {cell.processes} processes, {cell.store} store:"]
            for goal, measured, met in stall_goals(cell.figures):
                lines.append(f"  {'n/a ' if met is None else ('PASS' if met else 'MISS')}  {goal}: {measured}")
    lines += ["", "summary:", f"  load average at start {_load(run.load_start)}, at end {_load(run.load_end)}"]
    if run.stall is not None and run.stall.load_samples:
        samples = ", ".join(f"{x:.1f}" for x in run.stall.load_samples)
        lines.append(f"  1-minute load as each stall cell began: {samples}")
    if run.loaded:
        lines.append("  THE MACHINE WAS LOADED (load average >= half the cores): times are noisy; counts are not.")
    for part, why in run.not_measured.items():
        lines.append(f"  not measured: {part}: {why}")
    problems = run.problems()
    if problems:
        lines.append("  FAILED:")
        lines += [f"    - {problem}" for problem in problems]
    else:
        checked = []
        if run.stall is not None:
            checked.append(f"exactly 1.00 grants per expiry and 0 violations in all {len(run.stall.cells)} stall cells")
        if run.chains is not None:
            checked.append(f"{run.plan.touched:,} chains touched once leave a bounded memory")
        lines.append("  OK: " + "; ".join(checked) + ".")
    return lines


def to_json(run: ScaleRun) -> dict[str, Any]:
    stall: Optional[dict[str, Any]] = None
    if run.stall is not None:
        grid = run.stall
        stall = {
            "threads": grid.threads, "processes": grid.processes, "stores": grid.stores, "expiries": grid.expiries,
            "not_measured": grid.not_measured, "load_samples": grid.load_samples, "seconds": grid.seconds,
            "cells": [stall_cell_json(cell) for cell in grid.cells],
        }
    return {
        "mode": run.plan.mode, "command": run.command, "started": run.started, "seconds": run.seconds,
        "machine": run.machine, "load_start": run.load_start, "load_end": run.load_end, "loaded": run.loaded,
        "plan": dataclasses.asdict(run.plan), "parts": run.parts, "not_measured": run.not_measured,
        "chains": None if run.chains is None else {"rows": run.chain_rows, "data": run.chains},
        "stall": stall, "problems": run.problems(), "report": report(run),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and a 2 x 2 grid, 2 expiries a cell")
    parser.add_argument("--only", choices=PARTS, help="one part only")
    parser.add_argument("--expiries", type=int, help="expiries a stall cell (default: 20; 2 with --quick)")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write every number, as JSON, to FILE")
    parser.add_argument("--save-default", action="store_true",
                        help=f"write {RESULTS_DIR / 'scale.json'} and the report to scale.md beside it")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.expiries is not None:
        if args.expiries < 1:
            raise SystemExit("--expiries must be at least 1")
        plan = dataclasses.replace(plan, expiries=args.expiries)
    parts = [args.only] if args.only else list(PARTS)
    command = " ".join(["python -m bench.scale", *(argv if argv is not None else sys.argv[1:])])
    run = run_scale(plan, parts, command, progress=lambda text: print(text, flush=True))
    text = "\n".join(report(run)) + "\n"
    data = json.dumps(to_json(run), indent=1, default=str) + "\n"
    print("\n" + text, end="")
    targets = [(args.save, data)] if args.save is not None else []
    if args.save_default:
        targets += [(RESULTS_DIR / "scale.json", data), (RESULTS_DIR / "scale.md", "```\n" + text + "```\n")]
    for path, content in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path}")
    return 1 if run.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
