"""Runs the benchmark: every measurement, every contender, one run, then the report and the verdict."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from . import machine, scale
from .check import problems_with_ours
from .contenders import CONTENDERS, Contender, available
from .fleet import fleet
from .model import BenchResults, from_json
from .report import write_report
from .scenarios import grants_matrix, overhead, scaling, stall, throughput
from .stall_profile import goals as stall_goals
from .stall_profile import where_the_time_goes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EXPERIMENTS = ("grants", "overhead", "stall", "throughput", "scaling", "fleet")
# Run only when named in --only: the benchmark of scale (bench/scale.py) takes minutes of its own.
OPT_IN = ("scale",)


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str
    threads: tuple[int, ...]
    processes: tuple[int, ...]
    expiries: int
    cpu_calls: int
    cpu_rounds: int
    rtt_pairs: int
    rtt_block: int
    stall_threads: int
    stall_processes: int
    stall_expiries: int
    rtt_count: int
    tput_threads: int
    tput_processes: int
    tput_seconds: float
    tput_rounds: int
    tput_warmup: float
    scaling_processes: tuple[int, ...]
    scaling_threads: int
    scaling_expiries: int
    fleet_shapes: tuple[tuple[int, int, int], ...]  # (hosts, processes per host, threads per process)
    fleet_expiries: int
    fleet_fast_calls: int
    fleet_fast_rounds: int


QUICK = Plan(
    mode="quick", threads=(1, 8), processes=(1, 2), expiries=3,
    cpu_calls=20_000, cpu_rounds=5, rtt_pairs=20, rtt_block=25,
    stall_threads=8, stall_processes=2, stall_expiries=5, rtt_count=20,
    tput_threads=4, tput_processes=2, tput_seconds=2.5, tput_rounds=2, tput_warmup=0.5,
    scaling_processes=(), scaling_threads=8, scaling_expiries=0,
    fleet_shapes=((2, 2, 8),), fleet_expiries=5, fleet_fast_calls=5_000, fleet_fast_rounds=41,
)
FULL = Plan(
    mode="full", threads=(1, 8, 64), processes=(1, 4, 8), expiries=10,
    cpu_calls=100_000, cpu_rounds=7, rtt_pairs=60, rtt_block=50,
    stall_threads=64, stall_processes=4, stall_expiries=10, rtt_count=50,
    tput_threads=8, tput_processes=8, tput_seconds=10.0, tput_rounds=4, tput_warmup=1.0,
    scaling_processes=(1, 2, 4, 8, 16), scaling_threads=8, scaling_expiries=6,
    fleet_shapes=((2, 2, 8), (3, 4, 16)), fleet_expiries=10, fleet_fast_calls=10_000, fleet_fast_rounds=101,
)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="mcp_sync_auth against requests-oauthlib, Authlib and the mcp SDK, in one run on this machine.",
    )
    parser.add_argument("--full", action="store_true", help="the long form (minutes); default: quick, as in CI")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the results (default: %(default)s)")
    parser.add_argument("--name", help="base name of the result files (default: 'latest' for --full, else 'quick')")
    parser.add_argument("--contenders", help="comma-separated subset of: " + ", ".join(c.name for c in CONTENDERS))
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(EXPERIMENTS)
                        + "; or " + ", ".join(OPT_IN) + ", which runs only when named")
    parser.add_argument("--profile", action="store_true",
                        help="time the refresh protocol's phases in our workers and cProfile the fast path")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: write the report and chart again from a run's JSON file")
    return parser.parse_args(argv)


def _select(names: Optional[str], allowed: Sequence[str], what: str) -> list[str]:
    if not names:
        return list(allowed)
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render(args)
    plan = FULL if args.full else QUICK
    experiments = _select(args.only, EXPERIMENTS + OPT_IN, "experiment") if args.only else list(EXPERIMENTS)
    chosen = _select(args.contenders, [c.name for c in CONTENDERS], "contender")
    if "mcp_sync_auth" not in chosen:
        chosen.insert(0, "mcp_sync_auth")
    if plan.mode == "quick" and not args.contenders:
        chosen = [name for name in chosen if name != "mcp-sdk-unprimed"]  # one SDK row is enough for CI
    runnable: list[Contender] = []
    skipped: dict[str, str] = {}
    for contender in CONTENDERS:
        if contender.name not in chosen:
            continue
        why = available(contender)
        if why is None:
            runnable.append(contender)
        else:
            skipped[contender.name] = why

    results = BenchResults(
        mode=plan.mode,
        command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=machine.describe(),
        load_start=machine.load_average(),
        contenders=[c.name for c in runnable],
        not_measured=skipped,
        plan=dataclasses.asdict(plan),
    )
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {text}", flush=True)

    say(f"bench ({plan.mode}): contenders {', '.join(results.contenders)}; load average {results.load_start}")
    for name, why in skipped.items():
        say(f"  not measured: {name}: {why}")

    def sample_load(label: str) -> None:
        load = machine.load_average()
        if load is not None:
            results.load_samples.append((label, load[0]))

    if "grants" in experiments:
        sample_load("grants")
        say("1. refresh grants per expiry event (shared clock, exact expiries)")
        results.grants = grants_matrix(runnable, plan.threads, plan.processes, plan.expiries, progress=say)
    if "overhead" in experiments:
        sample_load("overhead")
        say("2. fast-path overhead (one process, one thread, real time)")
        results.overhead = overhead(cpu_calls=plan.cpu_calls, cpu_rounds=plan.cpu_rounds, rtt_pairs=plan.rtt_pairs,
                                    rtt_block=plan.rtt_block, profile=args.profile)
        o = results.overhead
        say(f"  CPU per MCPAuth.__call__ {o.cpu_ours * 1e6:.2f} us (static header {o.cpu_static * 1e6:.2f} us); "
            f"round trip ratio p50 {o.ratio_p50 or float('nan'):.3f}, mean {o.ratio_mean or float('nan'):.3f}")
    if "stall" in experiments:
        sample_load("stall")
        say(f"3. expiry stall ({plan.stall_threads} threads x {plan.stall_processes} processes, real-time latencies)")
        results.stall = stall(plan.stall_threads, plan.stall_processes, plan.stall_expiries, plan.rtt_count)
        s = results.stall
        say(f"  end to end added p50 {s.e2e_added_p50 * 1e3:.1f} ms, p99 {s.e2e_added_p99 * 1e3:.1f} ms; grant under "
            f"the same load p50 {s.probe_expiry.get('p50', float('nan')) * 1e3:.1f} ms, bare "
            f"{s.refresh_rtt['p50'] * 1e3:.1f} ms; in __call__ p50 {s.added_p50 * 1e3:.1f} ms, p99 "
            f"{s.added_p99 * 1e3:.1f} ms; grants {s.grants}/{s.expiries}, alive {s.chain_alive}")
        verdicts = stall_goals(s.figures())
        for goal, measured, met in verdicts:
            say(f"  {'n/a ' if met is None else ('PASS' if met else 'MISS')} {goal}: {measured}")
        if any(met is False for _, _, met in verdicts):
            say("  where the time goes (mean and p99 over the expiries):")
            for line in where_the_time_goes(s.figures()):
                say(f"      {line}")
    if "throughput" in experiments:
        sample_load("throughput")
        say(f"4. throughput, token lifetime 1 s vs never ({plan.tput_threads} threads x {plan.tput_processes} "
            f"processes, {plan.tput_seconds:g} s per run, ABBA)")
        results.throughput = throughput(plan.tput_threads, plan.tput_processes, plan.tput_seconds, plan.tput_rounds,
                                        plan.tput_warmup, progress=say, profile=args.profile)
        say(f"  ratio {results.throughput.ratio or float('nan'):.3f}")
    if "scaling" in experiments and plan.scaling_processes:
        sample_load("scaling")
        say(f"5. scaling, processes {plan.scaling_processes} x {plan.scaling_threads} threads")
        results.scaling = scaling(
            plan.scaling_processes, plan.scaling_threads, plan.scaling_expiries, max(10, plan.rtt_count // 2),
            {"cpu_calls": plan.cpu_calls // 5, "cpu_rounds": 3, "rtt_pairs": 10, "rtt_block": 25}, progress=say,
        )
    if "fleet" in experiments:
        sample_load("fleet")
        shapes = ", ".join(f"{h} hosts x {p} x {n}" for h, p, n in plan.fleet_shapes)
        say(f"6. fleet: Redis store across hosts ({shapes}, {plan.fleet_expiries} expiries), beside the file store")
        results.fleet = fleet(plan.fleet_shapes, plan.fleet_expiries, plan.fleet_fast_calls, plan.fleet_fast_rounds,
                              progress=say)

    if "scale" in experiments:
        sample_load("scale")
        say("7. scale: many chains in one process, and the expiry stall grid (python -m bench.scale)")
        ran = scale.run_scale(scale.FULL if args.full else scale.QUICK, scale.PARTS, results.command,
                             progress=lambda text: print(text, flush=True))  # its lines carry their own times
        results.scale = scale.to_json(ran)

    results.seconds = time.perf_counter() - began
    results.load_end = machine.load_average()
    sample_load("end")
    results.problems = _problems(results)
    name = args.name or ("latest" if args.full else "quick")
    written = write_report(results, args.out, name, chart=not args.no_chart)
    say(f"done in {results.seconds:.0f} s; load average at the end {results.load_end}")
    for path in written:
        say(f"  wrote {path}")
    if results.problems:
        say("FAILED: mcp_sync_auth broke its guarantee:")
        for problem in results.problems:
            say(f"  - {problem}")
        return 1
    say("OK: mcp_sync_auth made exactly one refresh grant per expiry, no reuse, chain alive.")
    return 0


def _problems(results: BenchResults) -> list[str]:
    found = problems_with_ours(results.grants, results.stall, results.throughput, results.fleet)
    return found + (list(results.scale["problems"]) if results.scale is not None else [])


def render(args: argparse.Namespace) -> int:
    results = from_json(json.loads(args.render.read_text(encoding="utf-8")))
    results.problems = _problems(results)
    name = args.name or args.render.stem
    for path in write_report(results, args.out, name, chart=not args.no_chart):
        print(f"wrote {path}")
    return 1 if results.problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
