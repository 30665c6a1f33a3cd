"""The PNG: four panels, one per question (matplotlib is a bench-only dependency)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .model import GOAL_THROUGHPUT, BenchResults

COLORS = {
    "mcp_sync_auth": "#1b7837",
    "requests-oauthlib": "#d95f02",
    "authlib": "#7570b3",
    "mcp-sdk": "#e7298a",
    "mcp-sdk-unprimed": "#a6761d",
}


def draw(results: BenchResults, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - bench-only dependency, needed for the chart alone

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the backend

    figure, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    _grants(axes[0][0], results)
    _stall(axes[0][1], results)
    _throughput(axes[1][0], results)
    _scaling(axes[1][1], results)
    load = results.load_start[0] if results.load_start else math.nan
    figure.suptitle(
        f"mcp_sync_auth benchmark ({results.mode}) — {results.machine['cpu']}, {results.machine['usable_cores']} "
        f"cores, {results.machine['python']}, load avg at start {load:.2f}",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _empty(axis: Any, title: str, text: str) -> None:
    axis.set_title(title)
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes)
    axis.set_xticks([])
    axis.set_yticks([])


def _grants(axis: Any, results: BenchResults) -> None:
    title = "1. refresh grants per expiry (log scale; hatched = chain revoked)"
    if not results.grants:
        _empty(axis, title, "not run")
        return
    columns = sorted({(c.processes, c.threads) for c in results.grants})
    names = list(dict.fromkeys(c.contender for c in results.grants))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        for x, (p, n) in enumerate(columns):
            found = [c for c in results.grants if c.contender == name and c.processes == p and c.threads == n]
            if not found or found[0].errors:
                continue
            cell = found[0]
            value = max(cell.grants_per_expiry, 0.05)
            left = x + (index - (len(names) - 1) / 2) * width
            axis.bar(left, value, width, color=COLORS.get(name, "grey"), hatch=None if cell.chain_alive else "//",
                     edgecolor="black", linewidth=0.4, label=name if x == 0 else None)
            axis.text(left, value * 1.05, f"{cell.grants_per_expiry:g}", ha="center", va="bottom", fontsize=6)
    axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axis.set_yscale("log")
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels([f"N={n}\nP={p}" for p, n in columns], fontsize=8)
    axis.set_ylabel("grants per expiry event")
    axis.set_title(title)
    axis.legend(fontsize=8)


def _stall(axis: Any, results: BenchResults) -> None:
    title = "3. expiry stall, end to end, vs the refresh grant (ms, context)"
    s = results.stall
    if s is None:
        _empty(axis, title, "not run")
        return
    probe = s.probe_expiry.get("p50", math.nan)
    labels = ["added p50\n(end to end)", "added p99\n(end to end)", "in __call__\np99", "grant under\nload p50",
              "goal p50:\n2 x grant", "bare grant\np50"]
    values = [s.e2e_added_p50 * 1e3, s.e2e_added_p99 * 1e3, s.added_p99 * 1e3, probe * 1e3, 2 * probe * 1e3,
              s.refresh_rtt["p50"] * 1e3]
    met = not math.isnan(probe) and s.e2e_added_p50 <= 2 * probe
    colors = ["#1b7837" if met else "#b2182b", "#1b7837", "#1b7837", "#999999", "#cccccc", "#dddddd"]
    axis.bar(labels, values, color=colors, edgecolor="black", linewidth=0.4)
    for x, value in enumerate(values):
        axis.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=9)
    axis.set_ylabel("milliseconds")
    axis.set_title(f"{title}\n{s.threads} threads x {s.processes} processes")


def _throughput(axis: Any, results: BenchResults) -> None:
    title = "4. throughput: token lifetime 1 s vs never"
    t = results.throughput
    if t is None:
        _empty(axis, title, "not run")
        return
    runs = t.expiring + t.never
    labels = [f"1 s #{i + 1}" for i in range(len(t.expiring))] + [f"never #{i + 1}" for i in range(len(t.never))]
    colors = ["#1b7837"] * len(t.expiring) + ["#999999"] * len(t.never)
    axis.bar(labels, [r.calls_per_second for r in runs], color=colors, edgecolor="black", linewidth=0.4)
    ratio = t.ratio if t.ratio is not None else math.nan
    axis.set_ylabel("calls per second (context)")
    axis.set_title(f"{title}\nratio {ratio:.3f} (goal ≥ {GOAL_THROUGHPUT:.2f}), {t.threads} threads x "
                   f"{t.processes} processes")


def _scaling(axis: Any, results: BenchResults) -> None:
    title = "5. scaling with processes (stall ÷ refresh round trip)"
    if not results.scaling:
        o = results.overhead
        if o is None or o.ratio_p50 is None:
            _empty(axis, title, "full mode only")
            return
        axis.bar(["MCPAuth / static\n(median round trip)", "goal"], [o.ratio_p50, 1.03],
                 color=["#1b7837", "#cccccc"], edgecolor="black", linewidth=0.4)
        axis.set_ylim(0.9, max(1.1, o.ratio_p50 + 0.02))
        axis.set_title("2. fast-path overhead: round-trip ratio (scaling: full mode only)")
        return
    processes = [p.processes for p in results.scaling]
    p50 = [p.stall.added_p50 / p.stall.refresh_rtt["p50"] for p in results.scaling]
    p99 = [p.stall.added_p99 / p.stall.refresh_rtt["p50"] for p in results.scaling]
    budget = [p.stall.budget / p.stall.refresh_rtt["p50"] for p in results.scaling]
    axis.plot(processes, p50, "o-", color="#1b7837", label="stall p50 ÷ refresh RTT")
    axis.plot(processes, p99, "s-", color="#b2182b", label="stall p99 ÷ refresh RTT")
    axis.plot(processes, budget, "--", color="grey", label="goal (RTT + 5 ms) ÷ RTT")
    axis.set_xscale("log", base=2)
    axis.set_xticks(processes)
    axis.set_xticklabels([str(p) for p in processes])
    axis.set_xlabel("processes (8 threads each)")
    axis.set_ylabel("x refresh round trip")
    right = axis.twinx()
    right.plot(processes, [p.stall.grants_per_expiry for p in results.scaling], "^:", color="black",
               label="grants per expiry")
    right.plot(processes, [p.overhead.ratio_p50 or math.nan for p in results.scaling], "d:", color="#2166ac",
               label="round-trip ratio")
    right.set_ylabel("grants per expiry / round-trip ratio")
    right.set_ylim(0, max(2.0, *[p.stall.grants_per_expiry for p in results.scaling]))
    lines = axis.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    axis.set_title(title)
