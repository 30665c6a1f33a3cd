"""Markdown tables, a JSON dump and a PNG chart of one run.

Every figure that matters is a count or a ratio of two things measured in the same run. Absolute times
(milliseconds, microseconds) appear only as context for those ratios: they describe this machine at this
moment, not the library.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional

from .contenders import BY_NAME
from .fleet import MAIN_COMMANDS, FleetResult
from .model import GOAL_RATIO, GOAL_THROUGHPUT, BenchResults
from .scenarios import OverheadResult, ScalingPoint, StallResult, ThroughputResult
from .stall_profile import goals as stall_goals
from .stall_profile import where_the_time_goes

LOADED = 0.5  # a 1-minute load average above this fraction of the cores means "other work was running"


# --- formatting helpers -------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.1f} ms"


def _num(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _verdict(met: Optional[bool]) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _label(name: str) -> str:
    contender = BY_NAME.get(name)
    return contender.label if contender else name


def _loaded(results: BenchResults) -> bool:
    cores = results.machine.get("usable_cores") or 1
    loads = [load[0] for load in (results.load_start, results.load_end) if load]
    loads += [load for _, load in results.load_samples]
    return any(load >= LOADED * float(cores) for load in loads)


# --- goals --------------------------------------------------------------------------------------------


def goals(results: BenchResults) -> list[tuple[str, str, Optional[bool]]]:
    """(goal, measured, met) for the four goals of the issue."""
    rows: list[tuple[str, str, Optional[bool]]] = []
    met: Optional[bool]
    ours = [cell for cell in results.grants if cell.contender == "mcp_sync_auth"]
    if ours:
        values = sorted({_num(cell.grants_per_expiry) for cell in ours})
        alive = all(cell.chain_alive for cell in ours)
        met = all(cell.valid and cell.grants == cell.expiries and cell.chain_alive and not cell.reuse_detections
                  for cell in ours)
        rows.append(("1. grants per expiry = 1.00 at every NxP, chain alive",
                     f"{', '.join(values)} in {len(ours)} cells; chain alive in all: {_yes(alive)}", met))
    if results.overhead is not None:
        o = results.overhead
        met = None if o.ratio_p50 is None else o.ratio_p50 <= GOAL_RATIO
        rows.append(("2. loopback round trip with MCPAuth / static bearer ≤ 1.03",
                     f"{_num(o.ratio_p50, 3)} (median latencies; means {_num(o.ratio_mean, 3)})", met))
    if results.stall is not None:
        s = results.stall
        for letter, (goal, measured, met) in zip("ab", stall_goals(s.figures())):
            rows.append((f"3{letter}. expiry stall, {s.threads} threads x {s.processes} processes: {goal}", measured,
                         None if s.errors else met))
    if results.throughput is not None:
        t = results.throughput
        met = None if t.ratio is None else t.ratio >= GOAL_THROUGHPUT
        rows.append(("4. throughput, token expiring every second / never ≥ 0.90",
                     f"{_num(t.ratio, 3)} ({t.threads} threads x {t.processes} processes)", met))
    if results.fleet is not None and results.fleet.cells:
        redis = [cell for cell in results.fleet.cells if cell.store == "redis"]
        values = sorted({_num(cell.grants_per_expiry) for cell in redis})
        met = all(not cell.errors and cell.grants == cell.expiries and cell.chain_alive and not cell.reuse_detections
                  for cell in redis)
        shapes = ", ".join(f"{c.hosts}x{c.processes}x{c.threads}" for c in redis)
        rows.append(("fleet: grants per expiry over Redis = 1.00 across hosts x processes x threads, chain alive",
                     f"{', '.join(values)} ({shapes}); chain alive in all: {_yes(all(c.chain_alive for c in redis))}",
                     met))
    return rows


# --- markdown -----------------------------------------------------------------------------------------


def summary_table(results: BenchResults) -> list[str]:
    """The compact grants-per-expiry table (also what the project README shows)."""
    cells = results.grants
    if not cells:
        return []
    columns = sorted({(cell.processes, cell.threads) for cell in cells})
    header = ["contender"] + [f"N={n} x P={p}" for p, n in columns]
    rows = []
    for name in dict.fromkeys(cell.contender for cell in cells):
        row = [_label(name)]
        for p, n in columns:
            found = [c for c in cells if c.contender == name and c.threads == n and c.processes == p]
            if not found:
                row.append("")
                continue
            cell = found[0]
            if cell.errors:
                row.append("error")
                continue
            mark = "alive" if cell.chain_alive else "**dead**"
            calls = cell.calls_ok + cell.calls_failed
            if cell.chain_alive and cell.calls_failed and calls:
                mark += f", but {100 * cell.calls_failed / calls:.0f}% of calls **failed**"
            row.append(f"{_num(cell.grants_per_expiry)} ({mark})")
        rows.append(row)
    return _table(header, rows)


def markdown(results: BenchResults) -> str:
    m = results.machine
    lines = [f"# mcp_sync_auth benchmark ({results.mode} run)", ""]
    lines += [
        f"- command: `{results.command}`; started {results.started}; took {results.seconds:.0f} s",
        f"- machine: {m['cpu']}, {m['usable_cores']} usable cores ({m['logical_cpus']} logical CPUs), "
        f"{m['python']}, {m['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        f"- mcp_sync_auth measured from {m.get('library_source', 'n/a')}",
        f"- load average (1, 5, 15 min) at start {_fmt_load(results.load_start)}, at end {_fmt_load(results.load_end)}",
    ]
    if results.load_samples:
        lines.append("- 1-minute load average as each part began: "
                     + ", ".join(f"{label} {load:.2f}" for label, load in results.load_samples))
    if _loaded(results):
        lines.append(
            "- **The machine was busy with other work during this run** (load average ≥ half the cores): "
            "timings are noisy. Counts (grants, reuse detections, chain state) are not affected."
        )
    lines += [
        "",
        "Counts and ratios are measured in this run, on this machine, against `StrictAuthServer` on 127.0.0.1 "
        "(refresh-token rotation on every use, reuse revokes the whole chain). Absolute times are context only.",
        "",
        "## Goals",
        "",
    ]
    lines += _table(["goal", "measured", "verdict"], [[g, v, _verdict(met)] for g, v, met in goals(results)])
    if results.problems:
        lines += ["", "**mcp_sync_auth broke its guarantee in this run:**", ""]
        lines += [f"- {problem}" for problem in results.problems]
    lines += _grants_section(results)
    lines += _overhead_section(results.overhead)
    lines += _stall_section(results.stall)
    lines += _throughput_section(results.throughput)
    lines += _scaling_section(results.scaling)
    lines += _fleet_section(results.fleet)
    lines += _scale_section(results.scale)
    lines += _not_measured_section(results)
    lines += _profile_section(results)
    return "\n".join(lines) + "\n"


def _fmt_load(load: Optional[tuple[float, float, float]]) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load)


def _grants_section(results: BenchResults) -> list[str]:
    if not results.grants:
        return []
    plan = results.plan
    lines = [
        "",
        "## 1. Refresh grants per expiry event, chain survival",
        "",
        f"N threads in each of P processes share one token store (or token file). After a warm-up cycle with a "
        f"valid token, the shared clock jumps past the token's lifetime {plan['expiries']} times; after each jump "
        "every thread makes one `tools/call` at the same moment (barriers). *grants/expiry* = refresh-token "
        "grants the server received ÷ expiry events. A chain is *dead* when the server's reuse detection revoked "
        "it: every later call fails until somebody logs in again.",
        "",
    ]
    lines += summary_table(results)
    lines += ["", "<details><summary>every cell</summary>", ""]
    rows = []
    for cell in results.grants:
        failures = ", ".join(f"{k} x{v}" for k, v in list(cell.failures.items())[:3])
        if cell.errors:
            failures = "run error: " + cell.errors[0].strip().splitlines()[-1][:120]
        rows.append([cell.contender, str(cell.threads), str(cell.processes), str(cell.expiries), str(cell.grants),
                     _num(cell.grants_per_expiry), str(cell.reuse_detections), _yes(cell.chain_alive),
                     str(cell.calls_ok), str(cell.calls_failed), failures])
    lines += _table(["contender", "N", "P", "expiries", "refresh grants", "grants/expiry", "reuse detections",
                     "chain alive", "calls OK", "calls failed", "failures"], rows)
    lines += ["", "</details>"]
    return lines


def _overhead_section(o: Optional[OverheadResult]) -> list[str]:
    if o is None:
        return []
    lines = [
        "",
        "## 2. Fast-path overhead",
        "",
        "One process, one thread, a token that never expires. CPU: `time.process_time` over many calls of the "
        "auth object on one `PreparedRequest`, rounds interleaved. Round trip: `tools/call` over one keep-alive "
        "`requests.Session`, blocks of calls alternating between `MCPAuth` and a static bearer-header `AuthBase` "
        "(ABBA).",
        "",
    ]
    cpu_ratio = o.cpu_ours / o.cpu_static if o.cpu_static else math.nan
    rows = [
        ["CPU per auth call, MCPAuth ÷ static header", _num(cpu_ratio, 1),
         f"{o.cpu_ours * 1e6:.2f} µs vs {o.cpu_static * 1e6:.2f} µs"],
        ["round trip, median MCPAuth ÷ median static (**goal ≤ 1.03**)", _num(o.ratio_p50, 3),
         f"{_ms(o.rtt_ours.get('p50', math.nan))} vs {_ms(o.rtt_static.get('p50', math.nan))}"],
        ["round trip, mean ÷ mean", _num(o.ratio_mean, 3),
         f"{_ms(o.rtt_ours.get('mean', math.nan))} vs {_ms(o.rtt_static.get('mean', math.nan))}"],
        ["round trip, median over block pairs of (block mean ÷ block mean)", _num(o.ratio_blocks, 3), ""],
        ["added CPU per call as a share of the median round trip",
         _num((o.cpu_ours - o.cpu_static) / o.rtt_static["p50"] if o.rtt_static else math.nan, 4), ""],
    ]
    lines += _table(["measure", "ratio", "context (absolute, this machine)"], rows)
    if o.calls_failed or o.errors:
        lines += ["", f"Failed calls: {o.calls_failed}; errors: {len(o.errors)}"]
    return lines


def _stall_section(s: Optional[StallResult]) -> list[str]:
    if s is None:
        return []
    lines = [
        "",
        "## 3. Expiry stall",
        "",
        f"mcp_sync_auth, {s.threads} threads x {s.processes} processes. Bursts alternate: every thread calls "
        "once with a valid token (baseline), then once right after an expiry (the shared clock jumps; times are "
        "real, `perf_counter`). **The headline is end to end**: the whole-call latency of calls in expiry bursts "
        "minus that of calls in the bursts between, at p50 and at p99. It is set against **the refresh grant "
        "under the same load** (a probe process, one more party of the barrier, posts one bare refresh grant on "
        "a chain of its own as each burst starts) and against **the bare grant** (a keep-alive "
        "`requests.Session` posting refresh grants alone, right before and after the bursts). The time a call "
        "spent in `MCPAuth.__call__` (the refresh happens there, before the request is sent) minus its median in "
        "baseline bursts is kept as a diagnostic.",
        "",
    ]
    probe = s.probe_expiry.get("p50", math.nan)
    leader = s.profile.get("leader_grant", {}).get("p50", math.nan) if s.profile else math.nan
    rows = [
        ["**end to end, added p50**", _ms(s.e2e_added_p50), _num(_ratio_of(s.e2e_added_p50, probe))],
        ["**end to end, added p99**", _ms(s.e2e_added_p99), _num(_ratio_of(s.e2e_added_p99, probe))],
        ["whole call p50 / p99, baseline bursts", f"{_ms(s.latency_baseline['p50'])} / "
         f"{_ms(s.latency_baseline['p99'])}", ""],
        ["whole call p50 / p99, expiry bursts", f"{_ms(s.latency_expiry['p50'])} / {_ms(s.latency_expiry['p99'])}",
         ""],
        ["refresh grant under the same load, p50 / p99 (probe, expiry bursts)",
         f"{_ms(probe)} / {_ms(s.probe_expiry.get('p99', math.nan))}", "1.00"],
        ["the same in the baseline bursts, p50", _ms(s.probe_baseline.get("p50", math.nan)),
         _num(_ratio_of(s.probe_baseline.get("p50", math.nan), probe))],
        ["the flight leader's own grant, p50", _ms(leader), _num(_ratio_of(leader, probe))],
        ["bare refresh grant p50 / p99 (alone)", f"{_ms(s.refresh_rtt['p50'])} / {_ms(s.refresh_rtt['p99'])}",
         _num(_ratio_of(s.refresh_rtt["p50"], probe))],
        ["diagnostic: in `MCPAuth.__call__`, added p50 / p99", f"{_ms(s.added_p50)} / {_ms(s.added_p99)}",
         _num(_ratio_of(s.added_p50, probe))],
    ]
    lines += _table(["measure", "time (context)", "÷ grant under load p50"], rows)
    if s.per_process_added_p50:
        lines += ["", "In-call added p50 per process, smallest first (a process whose thread led the refresh waits "
                  "least): " + ", ".join(_ms(x) for x in s.per_process_added_p50)]
    lines += ["", f"Grants: {s.grants} for {s.expiries} expiries; reuse detections {s.reuse_detections}; chain alive "
              f"{_yes(s.chain_alive)}; calls OK {s.calls_ok}, failed {s.calls_failed}."]
    if s.profile:
        lines += ["", "Where the time goes, per expiry (the process that sent the grant, then the wake-ups; "
                  "`bench/stall_profile.py`):", "", "```", *where_the_time_goes(s.figures()), "```"]
    return lines


def _throughput_section(t: Optional[ThroughputResult]) -> list[str]:
    if t is None:
        return []
    lines = [
        "",
        "## 4. Throughput with expiries",
        "",
        f"mcp_sync_auth, {t.threads} threads x {t.processes} processes calling in a loop for {t.seconds:g} s "
        "(after a warm-up), real time. The server issues tokens that live 1 s (refreshed proactively, about "
        "every 0.75 s), or tokens that never expire. Runs alternate ABBA.",
        "",
    ]
    rows = []
    for run in sorted(t.expiring + t.never, key=lambda r: r.lifetime):
        rows.append(["1 s" if run.lifetime <= 1 else "never", f"{run.calls_per_second:.0f}", str(run.grants),
                     str(run.reuse_detections), _yes(run.chain_alive), str(run.calls_ok), str(run.calls_failed),
                     f"{_ms(run.latency['p50'])} / {_ms(run.latency['p99'])}"])
    lines += _table(["token lifetime", "calls/s (context)", "refresh grants", "reuse detections", "chain alive",
                     "calls OK", "calls failed", "worst process p50 / p99 latency"], rows)
    lines += ["", f"**Ratio (sum of calls/s with 1 s tokens ÷ with tokens that never expire): {_num(t.ratio, 3)}** "
              f"(goal ≥ {GOAL_THROUGHPUT:.2f}). Per round (two runs back to back): "
              + ", ".join(_num(r, 3) for r in t.round_ratios) + "."]
    return lines


def _scaling_section(points: list[ScalingPoint]) -> list[str]:
    if not points:
        return []
    lines = [
        "",
        "## 5. Scaling with processes",
        "",
        f"mcp_sync_auth, {points[0].stall.threads} threads per process; the stall run of section 3 and the overhead "
        "run of section 2 (one per process, all at once) repeated for each process count.",
        "",
    ]
    rows = []
    for point in points:
        s, o = point.stall, point.overhead
        rows.append([str(point.processes), _num(s.grants_per_expiry), _yes(s.chain_alive), str(s.reuse_detections),
                     _num(s.added_p50 / s.refresh_rtt["p50"]), _num(s.added_p99 / s.refresh_rtt["p50"]),
                     "met" if s.added_p99 <= s.budget else "**missed**",
                     f"{_ms(s.added_p99)} / {_ms(s.budget)}", _num(o.ratio_p50, 3)])
    lines += _table(["P", "grants/expiry", "chain alive", "reuse", "stall p50 ÷ refresh RTT",
                     "stall p99 ÷ refresh RTT", "stall goal", "stall p99 / budget (context)",
                     "round trip ratio"], rows)
    return lines


def _ns(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0f} ns"


def _fleet_section(f: Optional[FleetResult]) -> list[str]:
    if f is None:
        return []
    lines = ["", "## 6. Fleet: the Redis store across hosts, beside the file store", ""]
    if f.not_measured:
        return [*lines, f"**Not measured**: {f.not_measured}."]
    lines += [
        "mcp_sync_auth over `RedisTokenStore`. A host is a group of processes with their own HOME, caches and "
        "TMPDIR (no shared file) that reach a redis-server of the cell's own only through a loopback link of "
        "their own; they pick the store from `$MCP_SYNC_AUTH_STORE`. Beside each Redis cell, the file cell runs "
        "the same processes and threads on one host over a `FileTokenStore`. Both follow the stall run's "
        "schedule on the shared clock: a warm-up cycle, then a valid-token cycle (baseline) and an expiry cycle, "
        "E times; every thread calls once per cycle, all at once. The **stall** is measured as in section 3: time "
        "in `MCPAuth.__call__` of calls in expiry cycles minus its median in baseline cycles.",
        "",
    ]
    rows = []
    for cell in f.cells:
        rows.append([
            cell.store, f"{cell.hosts} x {cell.processes} x {cell.threads}", str(cell.expiries), str(cell.grants),
            _num(cell.grants_per_expiry), str(cell.reuse_detections), _yes(cell.chain_alive), str(cell.calls_ok),
            str(cell.calls_failed), _ms(cell.added_p50), _ms(cell.added_p99),
            f"{_ms(cell.latency_baseline.get('p50', math.nan))} / {_ms(cell.latency_expiry.get('p50', math.nan))}",
        ])
    lines += _table(["store", "hosts x processes x threads", "expiries", "refresh grants", "grants/expiry",
                     "reuse detections", "chain alive", "calls OK", "calls failed", "stall p50 (added)",
                     "stall p99 (added)", "whole call p50, baseline / expiry (context)"], rows)
    pairs = [(a, b) for a, b in f.pairs() if b is not None and not a.errors and not b.errors]
    if pairs:
        lines += ["", "Stall over Redis ÷ over files (same run, same processes and threads): " + "; ".join(
            f"{a.hosts}x{a.processes}x{a.threads}: p50 {_num(_ratio_of(a.added_p50, b.added_p50))}, "
            f"p99 {_num(_ratio_of(a.added_p99, b.added_p99))}" for a, b in pairs) + "."]
    redis = [cell for cell in f.cells if cell.store == "redis"]
    if redis:
        lines += [
            "",
            "### Redis commands per expiry event",
            "",
            "`INFO commandstats` of the cell's own redis-server, read after every cycle (the bench's own INFO left "
            "out). Commands that the store's scripts run are counted under their own names as well as the "
            "EVALSHA that ran them. *first*: the first expiry, which also opens each process's change-feed "
            "subscription; *steady*: the median of the later ones.",
            "",
        ]
        rows = []
        for cell in redis:
            shown = sum(cell.commands_expiry.get(name, 0) for name in MAIN_COMMANDS)
            rows.append(
                [f"{cell.hosts} x {cell.processes} x {cell.threads}", _num(cell.commands_per_expiry(), 1),
                 str(cell.commands_by_expiry[0]) if cell.commands_by_expiry else "n/a",
                 _num(cell.commands_steady, 1), _num(cell.commands_per_expiry_per_process, 2)]
                + [_num(cell.commands_per_expiry(name), 1) for name in MAIN_COMMANDS]
                + [_num((sum(cell.commands_expiry.values()) - shown) / cell.expiries if cell.expiries else math.nan, 1),
                   _num(cell.commands_per_baseline_cycle, 1)]
            )
        lines += _table(["hosts x processes x threads", "commands / expiry", "first", "steady", "per process"]
                        + [name.upper() for name in MAIN_COMMANDS] + ["others", "per baseline cycle"], rows)
        lines += ["", "<details><summary>every command</summary>", ""]
        rows = []
        for cell in redis:
            for kind, counts in (("warm-up", cell.commands_warmup), ("expiry cycles", cell.commands_expiry),
                                 ("baseline cycles", cell.commands_baseline)):
                rows.append([f"{cell.hosts} x {cell.processes} x {cell.threads}", kind,
                             ", ".join(f"{name.upper()} {count}" for name, count in counts.items()) or "none"])
        lines += _table(["cell", "cycles", "commands (all of them)"], rows)
        lines += ["", "</details>"]
    cost = f.fast_path
    if cost is not None:
        lines += [
            "",
            "### The fast path over Redis and over files",
            "",
            f"One process, one thread, a valid token in memory (no refresh due): time per call over "
            f"{cost.calls} calls (wall: `perf_counter_ns`; CPU: `thread_time_ns`), median of {cost.rounds} "
            "rounds, the two stores' rounds back to back, alternating ABBA. *Redis ÷ files* is the median of the "
            "per-round ratios. The fast path reads no store, so the two should be equal; on a busy machine the "
            "wall times are noisy, the CPU times less so.",
            "",
        ]
        rows = []
        for kind, label in (("call", "`MCPAuth.__call__` on a `PreparedRequest`"), ("token", "`access_token()`")):
            for cpu in (False, True):
                rows.append([label + (" (CPU)" if cpu else " (wall)"), _ns(cost.median_ns(kind, "redis", cpu)),
                             _ns(cost.median_ns(kind, "file", cpu)), _num(cost.ratio(kind, cpu), 3)])
        lines += _table(["call", "over Redis", "over files", "Redis ÷ files"], rows)
        sent = sum(cost.redis_commands.values())
        lines += ["", f"Commands Redis received while the timed rounds ran: {sent}"
                  + (f" ({', '.join(f'{k.upper()} {v}' for k, v in cost.redis_commands.items())})" if sent else "")
                  + "."]
        if cost.errors:
            lines += ["", "Fast-path run error: " + cost.errors[0].strip().splitlines()[-1][:200]]
    return lines


def _ratio_of(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _scale_section(data: Optional[dict[str, Any]]) -> list[str]:
    if data is None:
        return []
    return ["", "## 7. Scale (`python -m bench.scale`)", "", "```", *data.get("report", []), "```"]


def _not_measured_section(results: BenchResults) -> list[str]:
    lines = ["", "## Contenders and notes", ""]
    for name in results.contenders:
        contender = BY_NAME[name]
        note = f" — {contender.note}" if contender.note else ""
        lines.append(f"- `{name}`: {contender.label}{note}")
    for name, why in results.not_measured.items():
        lines.append(f"- `{name}`: **not measured**: {why}")
    lines += [
        "- The naive recipes have no clock parameter: in their worker processes only, `time.time` of their own "
        "modules (oauthlib, requests_oauthlib, authlib, mcp.client.auth) reads the shared clock.",
        "- `OAUTHLIB_INSECURE_TRANSPORT=1` is set in the requests-oauthlib worker processes only (plain HTTP on "
        "loopback); mcp_sync_auth accepts loopback HTTP without it.",
    ]
    return lines


def _profile_section(results: BenchResults) -> list[str]:
    phases: list[tuple[str, dict[str, dict[str, float]]]] = []
    if results.stall is not None:
        phases += [("stall run", p) for p in results.stall.phases]
    if results.throughput is not None:
        for tput in results.throughput.expiring:
            phases += [(f"throughput run, lifetime {tput.lifetime:g} s", p) for p in tput.phases]
    profile = results.overhead.profile if results.overhead else None
    if not phases and not profile:
        return []
    lines = ["", "## Profile (phase timers of the stall run; of throughput and cProfile with --profile)", ""]
    if phases:
        lines += ["Wall time of the refresh protocol's phases, summed over the worker processes of each run:", ""]
        merged: dict[tuple[str, str], list[dict[str, float]]] = {}
        for run, per_process in phases:
            for phase, stats in per_process.items():
                merged.setdefault((run, phase), []).append(stats)
        rows = []
        for (run, phase), per_run in merged.items():
            count = sum(int(one["count"]) for one in per_run)
            total = sum(one["total"] for one in per_run)
            rows.append([run, phase, str(count), _ms(total / count if count else math.nan),
                         _ms(max(one["p99"] for one in per_run)), _ms(max(one["max"] for one in per_run))])
        lines += _table(["run", "phase", "count", "mean", "p99 (worst process)", "max"], rows)
    if profile:
        lines += ["", "cProfile of the fast path (`MCPAuth.__call__` on a valid token), by own time:", "", "```",
                  profile.strip(), "```"]
    return lines


# --- JSON and PNG -------------------------------------------------------------------------------------


def to_json(results: BenchResults) -> dict[str, Any]:
    data = dataclasses.asdict(results)
    for cell, raw in zip(results.grants, data["grants"]):
        raw["grants_per_expiry"] = cell.grants_per_expiry
    if results.stall is not None:
        data["stall"]["budget"] = results.stall.budget
    if results.throughput is not None:
        data["throughput"]["ratio"] = results.throughput.ratio
        data["throughput"]["round_ratios"] = results.throughput.round_ratios
    if results.fleet is not None:
        for cell, raw in zip(results.fleet.cells, data["fleet"]["cells"]):
            raw["grants_per_expiry"] = cell.grants_per_expiry
            raw["commands_per_expiry"] = cell.commands_per_expiry()
            raw["commands_per_expiry_per_process"] = cell.commands_per_expiry_per_process
            raw["commands_steady"] = cell.commands_steady
            raw["commands_per_baseline_cycle"] = cell.commands_per_baseline_cycle
        if results.fleet.fast_path is not None:
            cost = results.fleet.fast_path
            series = [(f"{kind}{'_cpu' if cpu else ''}", kind, cpu)
                      for kind in ("call", "token") for cpu in (False, True)]
            data["fleet"]["fast_path"]["median_ns"] = {
                name: {store: cost.median_ns(kind, store, cpu) for store in ("redis", "file")}
                for name, kind, cpu in series
            }
            data["fleet"]["fast_path"]["ratio"] = {name: cost.ratio(kind, cpu) for name, kind, cpu in series}
    data["goals"] = [{"goal": g, "measured": v, "met": met} for g, v, met in goals(results)]
    return data


def write_report(results: BenchResults, folder: Path, name: str, chart: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    md = folder / f"{name}.md"
    md.write_text(markdown(results), encoding="utf-8")
    written.append(md)
    raw = folder / f"{name}.json"
    raw.write_text(json.dumps(to_json(results), indent=1, default=str, allow_nan=True) + "\n", encoding="utf-8")
    written.append(raw)
    if chart:
        from .chart import draw  # noqa: PLC0415 - matplotlib is needed for the chart alone

        png = folder / f"{name}.png"
        try:
            draw(results, png)
            written.append(png)
        except ImportError as exc:
            print(f"  no chart: {exc} (pip install '.[bench]')")
    return written
