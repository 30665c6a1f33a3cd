"""The demo's verdict, its side-by-side table, and the machine-readable ``RESULT`` line."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Tuple

from .options import DemoOptions
from .protocol import NAIVE, OURS
from .timing import fresh_time

__all__ = ["SideResult", "is_clean", "result_line", "table", "verdict"]


@dataclasses.dataclass(frozen=True)
class SideResult:
    """What one side's load did, from the workers' counts and the server's audit."""

    calls: int
    calls_ok: int
    failures: Dict[str, int]
    refresh_grants: int
    refresh_failed: int
    early_refreshes: int
    reuse_detections: int
    chain_alive: bool
    seconds: float
    longest_cycle: float

    @property
    def calls_failed(self) -> int:
        return self.calls - self.calls_ok

    def to_json(self) -> Dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_ok": self.calls_ok,
            "calls_failed": self.calls_failed,
            "failures": dict(self.failures),
            "refresh_grants": self.refresh_grants,
            "refresh_failed": self.refresh_failed,
            "early_refreshes": self.early_refreshes,
            "reuse_detections": self.reuse_detections,
            "chain_alive": self.chain_alive,
            "seconds": round(self.seconds, 3),
            "longest_cycle": round(self.longest_cycle, 3),
        }


def is_clean(ours: SideResult, cycles: int) -> bool:
    """Our promise: every call OK, exactly one refresh grant per expiry, no reuse, the chain alive.

    Every cycle starts with an expired token, so it needs a grant. A cycle whose calls outlast a
    token's fresh time legitimately needs another one: a grant is only wrong when it comes while the
    token before it is still fresh (``early_refreshes``) or when it fails.
    """
    return (
        ours.calls_ok == ours.calls
        and ours.refresh_grants >= cycles
        and ours.refresh_failed == 0
        and ours.early_refreshes == 0
        and ours.reuse_detections == 0
        and ours.chain_alive
    )


def table(results: Dict[str, SideResult]) -> str:
    naive, ours = results[NAIVE], results[OURS]
    rows: List[Tuple[str, str, str]] = [
        ("", NAIVE, OURS),
        ("calls OK", str(naive.calls_ok), str(ours.calls_ok)),
        ("calls failed", str(naive.calls_failed), str(ours.calls_failed)),
        ("refresh grants", str(naive.refresh_grants), str(ours.refresh_grants)),
        ("reuse detections", str(naive.reuse_detections), str(ours.reuse_detections)),
        ("chain alive", _yes_no(naive.chain_alive), _yes_no(ours.chain_alive)),
        ("time in calls", f"{naive.seconds:.2f} s", f"{ours.seconds:.2f} s"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"  {label:<{widths[0]}}   {left:>{widths[1]}}   {right:>{widths[2]}}" for label, left, right in rows
    )


def verdict(results: Dict[str, SideResult], options: DemoOptions) -> List[str]:
    naive, ours = results[NAIVE], results[OURS]
    lines = []
    if naive.chain_alive:
        lines.append(f"{NAIVE}: the chain survived this time (try more --threads or --processes).")
    else:
        why = ", ".join(f"{count} x {reason}" for reason, count in sorted(naive.failures.items(), key=_by_count))
        lines.append(
            f"{NAIVE}: {naive.refresh_grants} refresh grants for {options.cycles} expiries; the server saw a "
            f"refresh token come back, revoked the whole chain, and the user has to log in again."
        )
        if why:
            lines.append(f"  failed calls: {why}")
    lines.extend(_our_verdict(ours, options))
    return lines


def _our_verdict(ours: SideResult, options: DemoOptions) -> List[str]:
    extra = ours.refresh_grants - options.cycles
    if is_clean(ours, options.cycles) and extra == 0:
        return [
            f"{OURS}: every call OK, exactly one refresh grant per expiry ({ours.refresh_grants} for "
            f"{options.cycles}), no reuse, the chain is alive."
        ]
    if is_clean(ours, options.cycles):
        return [
            f"{OURS}: every call OK, exactly one refresh grant per expiry, no reuse, the chain is alive: "
            f"{ours.refresh_grants} grants for {options.cycles} cycles because the calls of a cycle (up to "
            f"{ours.longest_cycle:.2f} s) outlasted a token's fresh time ({fresh_time(options.token_ttl):.2f} s) "
            f"and it expired {extra} more time(s). Pass a larger --token-ttl for one expiry per cycle."
        ]
    why = ", ".join(f"{count} x {reason}" for reason, count in sorted(ours.failures.items(), key=_by_count))
    return [
        f"{OURS}: NOT CLEAN - {ours.calls_failed} failed calls, {ours.refresh_grants} refresh grants for "
        f"{options.cycles} expiries ({ours.refresh_failed} refused, {ours.early_refreshes} while the token was "
        f"still fresh), {ours.reuse_detections} reuse detections, chain {'alive' if ours.chain_alive else 'revoked'}."
        + (f" Failed calls: {why}" if why else "")
    ]


def result_line(results: Dict[str, SideResult], options: DemoOptions, seconds: float) -> str:
    """One line for scripts and tests: ``RESULT {json}``."""
    document = {
        "clean": is_clean(results[OURS], options.cycles),
        "options": dataclasses.asdict(options),
        "seconds": round(seconds, 3),
        NAIVE: results[NAIVE].to_json(),
        OURS: results[OURS].to_json(),
    }
    return "RESULT " + json.dumps(document, sort_keys=True)


def _yes_no(alive: bool) -> str:
    return "yes" if alive else "no (revoked)"


def _by_count(item: Tuple[str, int]) -> Tuple[int, str]:
    return -item[1], item[0]
