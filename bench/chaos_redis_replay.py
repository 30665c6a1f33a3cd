"""The verdict of a Redis chaos run (``bench/chaos_redis.py``), from its merged event log.

Every chain death must fall into one of the windows no client can close on Redis:

- **window 1**: killed after the server rotated, before the commit (a kill mid-grant, or after the
  answer; also after a failed commit, the rotated set then only in the dead process's memory);
- **window 2**: the answer to a rotation lost (a token endpoint fault after processing), or a holder
  frozen or cut off from Redis past its grant's deadline with the answer in hand (or frozen between
  its in-flight mark and the send), after which a successor presents the same token once. A link cut
  or Redis restart after the grant that left the rotated set only in a living process's memory,
  cut off past the deadline, is counted here: the answer exists, but not where the successor reads.

Violations: a refresh token presented twice outside those windows (every reuse detection a client saw
must present a token whose rotation was lost, or be the late grant of a frozen holder); a grant sent
without the lease (checked by the worker right before each grant, on a link of its own to Redis); a
grant sent while another process's in-flight mark for the chain was live; a stored generation that
went back; a failed call of a kind nothing in the log explains; a hang (a call running past every
bound, or an expiry event never resolved); a worker crash.
"""

from __future__ import annotations

import bisect
import dataclasses
import statistics
from collections import Counter, defaultdict
from typing import Any, Optional

from mcp_sync_auth import Timeouts

from .chaos_replay import EventReplay

WINDOW_1 = "window 1: killed after the server rotated, before the commit"
WINDOW_2 = "window 2: the answer to a rotation lost, or its holder frozen/cut off past the grant deadline"
UNEXPLAINED = "UNEXPLAINED"
INTERRUPT = "SIGINT in the leader, then the exit"
LOST_AFTER = {"RESET_AFTER", "DRIP_AFTER", "MALFORMED_200_AFTER"}  # rotated, then the answer spoilt
INF = float("inf")


@dataclasses.dataclass
class Grant:
    t: float
    pid: int
    lane: int
    chain: Optional[int]
    fp: str
    reserved_at: float
    lease: str
    late: bool  # frozen between its in-flight mark and the send
    fate: str = "open"  # open, answered, persisted, error, killed-mid-grant, killed-after-answer
    new_fp: Optional[str] = None
    answered_at: float = INF
    error: Optional[dict[str, Any]] = None
    cause: Optional[str] = None
    commit_failed: bool = False
    reuse: bool = False


class RedisReplay(EventReplay):
    def __init__(self, *, grant_deadline: float, lease: float) -> None:
        super().__init__()
        self.deadline = grant_deadline
        self.lease = lease
        self.chain_of: dict[int, dict[str, int]] = defaultdict(dict)
        self.login_at: dict[tuple[int, int], float] = {}
        self.grants: list[Grant] = []
        self.by_fp: dict[tuple[int, str], list[Grant]] = defaultdict(list)
        self.reserved_at: dict[int, float] = {}
        self.grant_failures: dict[int, list[tuple[float, str]]] = defaultdict(list)
        self.expiries: dict[int, list[list[Any]]] = defaultdict(list)  # lane -> [start, end, index, fault]
        self.fault_consumed: set[tuple[int, int]] = set()
        self.injected: Counter[str] = Counter()
        self.resolve_seconds: list[float] = []
        self.frozen: dict[int, list[list[float]]] = defaultdict(list)
        self.freezes: Counter[str] = Counter()
        self.links: dict[int, list[list[Any]]] = defaultdict(list)
        self.link_faults: Counter[str] = Counter()
        self.redis_out: list[list[float]] = []
        self.exits: dict[int, tuple[str, str, float]] = {}
        self.kills_at: Counter[str] = Counter()
        self.random_kills = 0
        self.killed_at: dict[int, float] = {}
        self.plan_of: dict[int, str] = {}
        self.lane_of: dict[int, int] = {}
        self.host_of: dict[int, int] = {}
        self.disk_full: dict[int, list[float]] = defaultdict(list)
        self.write_faults = 0
        self.store_failures: dict[int, list[float]] = defaultdict(list)
        self.reserve_refused: dict[int, list[float]] = defaultdict(list)
        self.interrupted: set[int] = set()
        self.fails: list[dict[str, Any]] = []
        self.fails_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.lease_verdicts: Counter[str] = Counter()
        self.late_grants = 0
        self.hangs = 0
        self.stuck = 0

    def _rel(self, t: float) -> str:
        return f"+{t - (self.t0 or 0.0):.2f} s"

    # -- the driver's events -------------------------------------------------------------------

    def on_all_started(self, e: dict[str, Any]) -> None:
        pass

    def on_login(self, e: dict[str, Any]) -> None:
        self.chain_of[e["lane"]][e["fp"]] = e["chain"]
        self.login_at[(e["lane"], e["chain"])] = e["t"]

    def on_expiry(self, e: dict[str, Any]) -> None:
        self.expiries[e["lane"]].append([e["t"], INF, e["index"], e["fault"]])
        if e["fault"]:
            self.injected[e["fault"]] += 1

    def _end_expiry(self, e: dict[str, Any]) -> None:
        for expiry in self.expiries[e["lane"]]:
            if expiry[2] == e["index"]:
                expiry[1] = e["t"]

    def on_resolved(self, e: dict[str, Any]) -> None:
        self._end_expiry(e)
        self.resolve_seconds.append(e["seconds"])

    def on_stuck(self, e: dict[str, Any]) -> None:
        self._end_expiry(e)
        self.stuck += 1
        self.violations.append(f"hang: expiry {e['index']} of lane {e['lane']} not resolved ({e['seconds']:.0f} s)")

    def on_fault_unused(self, e: dict[str, Any]) -> None:
        for expiry in self.expiries[e["lane"]]:
            if expiry[2] == e["index"] and expiry[3]:
                self.injected[expiry[3]] -= 1
                expiry[3] = None

    def on_hang(self, e: dict[str, Any]) -> None:
        self.hangs += 1
        self.violations.append(f"hang: a call of pid {e['of']} ran {e['seconds']:.0f} s")

    def on_generation_back(self, e: dict[str, Any]) -> None:
        self.violations.append(f"lane {e['lane']}: stored generation went back from {e['was']} to {e['now']}")

    def on_random_kill(self, e: dict[str, Any]) -> None:
        self.random_kills += 1
        self.killed_at[e["of"]] = e["t"]

    def on_freeze(self, e: dict[str, Any]) -> None:
        self.frozen[e["of"]].append([e["t"], INF])
        holding = e["of"] in self.open_grant or e["of"] in self.awaiting_write or e["of"] in self.reserved_at
        self.freezes[("long" if e["long"] else "short") + (", a grant in flight" if holding else "")] += 1

    def on_thaw(self, e: dict[str, Any]) -> None:
        if self.frozen[e["of"]]:
            self.frozen[e["of"]][-1][1] = e["t"]

    def _link(self, e: dict[str, Any]) -> None:
        self.links[e["host"]].append([e["t"], INF, e["ev"], e["long"]])
        self.link_faults[e["ev"] + (" (past the deadline)" if e["long"] else "")] += 1

    on_link_cut = on_link_freeze = _link

    def on_link_restored(self, e: dict[str, Any]) -> None:
        if self.links[e["host"]]:
            self.links[e["host"]][-1][1] = e["t"]

    def on_redis_down(self, e: dict[str, Any]) -> None:
        self.redis_out.append([e["t"], INF])

    def on_redis_up(self, e: dict[str, Any]) -> None:
        self.redis_out[-1][1] = e["t"]

    def on_exit(self, e: dict[str, Any]) -> None:
        pid, by = e["of"], e["by"]
        t = self.killed_at.get(pid, e["t"])
        self.exits[pid] = (by, e["point"], t)
        self.reserved_at.pop(pid, None)
        if by == "self":
            self.kills_at[e["point"]] += 1
        elif by == "interrupt":
            self.interrupted.add(pid)
        elif by == "crash":
            self.violations.append(f"worker pid {pid} crashed (exit {e['rc']})")
        grant, answered = self.open_grant.pop(pid, None), self.awaiting_write.pop(pid, None)
        if by == "final":
            return  # the run's end: whatever it had in hand stays as it was (answered, open)
        if by == "self":
            cause = f"kill at fault point {e['point']}"
        elif by == "interrupt":
            cause = INTERRUPT
        elif by == "final":
            cause = "the run ended"
        else:
            cause = "random kill"
        if grant is not None:
            grant.fate, grant.cause = "killed-mid-grant", f"{cause}: grant in flight"
        if answered is not None:
            answered.fate = "killed-after-answer"
            answered.cause = (f"{cause}: after a failed commit (the set only in its memory)" if answered.commit_failed
                              else f"{cause}: answered, not yet committed")

    # -- the workers' events -------------------------------------------------------------------

    def on_start(self, e: dict[str, Any]) -> None:
        self.plan_of[e["pid"]] = e.get("faultpoint", "")
        self.lane_of[e["pid"]], self.host_of[e["pid"]] = e["lane"], e["host"]

    def on_reserved(self, e: dict[str, Any]) -> None:
        self.reserved_at[e["pid"]] = e["began"]

    def on_reserve_refused(self, e: dict[str, Any]) -> None:
        self.reserve_refused[e["pid"]].append(e["t"])

    def on_disk_full(self, e: dict[str, Any]) -> None:
        self.disk_full[e["pid"]].append(e["t"])

    def on_store_error(self, e: dict[str, Any]) -> None:
        self.store_failures[e["pid"]].append(e["t"])

    def on_write_failed(self, e: dict[str, Any]) -> None:
        self.store_failures[e["pid"]].append(e["t"])
        if e.get("full"):
            self.write_faults += 1
        if e.get("at") == "commit" and e["pid"] in self.awaiting_write:
            self.awaiting_write[e["pid"]].commit_failed = True

    def on_interrupted(self, e: dict[str, Any]) -> None:
        self.interrupted.add(e["pid"])

    def frozen_during(self, pid: int, start: float, end: float) -> bool:
        return any(a < end and b > start for a, b in self.frozen.get(pid, []))

    def on_grant_start(self, e: dict[str, Any]) -> None:
        t, pid, lane, fp = e["t"], e["pid"], e["lane"], e["fp"]
        chain = self.chain_of[lane].get(fp)
        reserved = self.reserved_at.pop(pid, t)
        late = self.frozen_during(pid, reserved, t)
        verdict = e.get("lease", "n/a")
        self.lease_verdicts[verdict] += 1
        if late:
            self.late_grants += 1
        elif verdict in ("lost", "none"):
            self.violations.append(f"lane {lane}: a grant sent without the lease ({verdict}) at {self._rel(t)}")
        if not late and any(g.fate == "persisted" for g in self.by_fp[(lane, fp)]):
            self.violations.append(f"lane {lane}: refresh token <{fp}> presented again after its successor was stored")
        for other in self.grants:
            if (other.lane == lane and other.chain == chain and other.pid != pid and not late
                    and other.fate in ("open", "answered", "killed-mid-grant", "killed-after-answer")
                    and t < other.reserved_at + self.deadline - 0.3):
                self.violations.append(
                    f"lane {lane}: a grant sent at {self._rel(t)} while the in-flight mark of pid {other.pid} "
                    f"(from {self._rel(other.reserved_at)}) was live"
                )
        grant = Grant(t, pid, lane, chain, fp, reserved, verdict, late)
        self.grants.append(grant)
        self.by_fp[(lane, fp)].append(grant)
        self.open_grant[pid] = grant

    def chain_key(self, grant: Grant) -> tuple[int, Optional[int]]:
        return grant.lane, grant.chain

    def chain_tokens(self, grant: Grant) -> dict[str, int]:
        return self.chain_of[grant.lane]

    def on_grant_ok(self, e: dict[str, Any]) -> None:
        grant = self.open_grant[e["pid"]]
        super().on_grant_ok(e)
        grant.answered_at = e["t"]

    def on_grant_error(self, e: dict[str, Any]) -> None:
        grant, refused = self.grant_error(e)
        if refused:
            grant.reuse = "reuse" in e.get("detail", "")
            return
        index = bisect.bisect_right([x[0] for x in self.expiries[grant.lane]], grant.t) - 1
        expiry = self.expiries[grant.lane][index] if index >= 0 else None
        if expiry is not None and expiry[3] and (grant.lane, expiry[2]) not in self.fault_consumed:
            self.fault_consumed.add((grant.lane, expiry[2]))
            grant.cause = f"fault {expiry[3]}"
        elif self.frozen_during(grant.pid, grant.t, e["t"]):
            grant.cause = "frozen during the grant"
        else:
            grant.cause = f"{UNEXPLAINED}: grant failed"
            detail = e.get("detail", "")[:90]
            self.violations.append(f"lane {grant.lane}: a grant failed with nothing injected: {detail}")
        self.grant_failures[e["pid"]].append((e["t"], grant.cause))

    def on_saved(self, e: dict[str, Any]) -> None:
        grant = self.awaiting_write.get(e["pid"])
        if grant is not None and e["fp"] == grant.new_fp:
            grant.fate = "persisted"
            del self.awaiting_write[e["pid"]]

    def on_fail(self, e: dict[str, Any]) -> None:
        self.fails.append(e)
        self.fails_of[e["pid"]].append(e)

    # -- attribution ---------------------------------------------------------------------------

    def _lost(self, g: Grant) -> Optional[tuple[str, str]]:
        """(cause, window) when this grant's rotation never reached the store (and nobody presented its
        successor later, as the next holder does after a commit whose writer died before hearing back)."""
        # Presented by another process: it read it from Redis (the holder itself may hold it in memory).
        if g.new_fp is not None and any(p.pid != g.pid for p in self.by_fp.get((g.lane, g.new_fp), [])):
            return None
        if g.fate in ("killed-mid-grant", "killed-after-answer") and g.cause and not g.cause.startswith("the run"):
            return g.cause, WINDOW_1
        if g.fate == "error" and g.cause and (g.cause == "frozen during the grant" or
                                              g.cause.removeprefix("fault ") in LOST_AFTER):
            return g.cause, WINDOW_2
        if g.fate == "answered":
            if self.frozen_during(g.pid, g.answered_at, INF):
                return "frozen with the answer in hand, past the grant deadline", WINDOW_2
            if g.commit_failed:
                return "commit failed (link cut or Redis down), cut off past the grant deadline", WINDOW_2
            return f"{UNEXPLAINED}: answered, never committed", UNEXPLAINED
        return None

    def _deaths(self, servers: dict[int, Any]) -> tuple[dict[tuple[int, int], str], dict[str, str]]:
        death_cause: dict[tuple[int, int], str] = {}
        window_of: dict[str, str] = {}
        for lane, server in servers.items():
            for chain, alive in enumerate(server["chains_alive"], start=1):
                if alive:
                    continue
                found: Optional[tuple[str, str]] = None
                for g in self.grants:
                    if g.lane != lane or g.chain != chain:
                        continue
                    found = self._lost(g) or (
                        ("frozen between its in-flight mark and the send, past the deadline", WINDOW_2)
                        if g.late and g.reuse else None)
                    if found:
                        break
                if found is None:
                    found = (f"{UNEXPLAINED}: no lost rotation", UNEXPLAINED)
                if found[1] == UNEXPLAINED or found[0].startswith(INTERRUPT):
                    self.violations.append(f"lane {lane}: chain {chain} died of {found[0]}")
                death_cause[(lane, chain)] = found[0]
                window_of[found[0]] = found[1]
        return death_cause, window_of

    def _check_reuse(self) -> int:
        seen = 0
        for g in self.grants:
            if not g.reuse:
                continue
            seen += 1
            earlier = [p for p in self.by_fp[(g.lane, g.fp)] if p.t < g.t and self._lost(p)]
            if not earlier and not g.late:
                self.violations.append(f"lane {g.lane}: reuse of <{g.fp}> at {self._rel(g.t)} outside the windows")
        return seen

    def _overlaps(self, intervals: list[Any], start: float, end: float) -> bool:
        return any(i[0] < end and i[1] > start for i in intervals)

    def _store_away(self, pid: int, start: float, end: float) -> bool:
        host = self.host_of.get(pid, -1)
        return (self._overlaps(self.links.get(host, []), start - 1.0, end + 0.5)
                or self._overlaps(self.redis_out, start - 1.0, end + 0.5) or self.frozen_during(pid, start, end))

    def _lane_trouble(self, lane: int, start: float, end: float) -> bool:
        """Something that can hold a lane's chain off limits: a freeze, a kill, a link outage, a restart."""
        pids = [p for p, ln in self.lane_of.items() if ln == lane]
        if any(self.frozen_during(p, start, end) for p in pids):
            return True
        if any(start <= self.exits[p][2] <= end for p in pids if p in self.exits):
            return True
        return any(self._overlaps(v, start, end) for v in self.links.values()) or self._overlaps(
            self.redis_out, start, end)

    def _attribute(self, f: dict[str, Any]) -> str:
        kind, pid, lane, b, t = f["kind"], f["pid"], f["lane"], f["began"], f["t"]

        def within(times: list[float]) -> bool:
            return any(b - 0.1 <= x <= t + 0.1 for x in times)

        if kind == "TokenEndpointError":
            causes = [c for x, c in self.grant_failures.get(pid, []) if b - 0.1 <= x <= t + 0.1]
            return causes[-1] if causes else f"{UNEXPLAINED}: TokenEndpointError with no failed grant of its own"
        if kind in ("RefreshChainRevoked", "AuthorizationRequired"):
            for (ln, chain), at in sorted(self.refused_at.items(), key=lambda kv: kv[1]):
                if ln != lane or at > t + 0.1:
                    continue
                successor = self.login_at.get((lane, chain + 1), INF)
                if b < successor or any(o["kind"] == kind and o["began"] < successor <= b <= o["t"]
                                        for o in self.fails_of[pid]):  # joined a flight begun before the login
                    return "the burst between a chain's death and the new login"
            return f"{UNEXPLAINED}: {kind} with no dead chain before it"
        if kind == "http 401":
            if any(s < t and e > b for s, e, _, _ in self.expiries[lane]):
                return "resend refused: an expiry during the call"
            if any(ln == lane and at < t and self.login_at.get((lane, c + 1), INF) > b
                   for (ln, c), at in self.refused_at.items()):
                return "resend refused: a dead chain during the call"
            return f"{UNEXPLAINED}: http 401"
        if kind == "StoreFull":
            return "reserve fault point (in-flight mark refused)" if within(self.disk_full.get(pid, [])) else (
                f"{UNEXPLAINED}: StoreFull")
        if kind == "RefreshInterrupted":
            return INTERRUPT if pid in self.interrupted else f"{UNEXPLAINED}: RefreshInterrupted"
        if kind == "LockTimeout":
            if within(self.reserve_refused.get(pid, [])) and self._store_away(pid, b - self.lease - 1.0, t):
                return "lease ran out before the send (frozen or cut off): nothing sent"
            if self._lane_trouble(lane, b - self.deadline - 5.0, t):
                return "waited past lock_timeout behind a frozen, killed or cut-off holder"
            return f"{UNEXPLAINED}: LockTimeout"
        if kind == "TokenStoreError":
            if self._store_away(pid, b, t):
                return "store away: link cut/frozen, Redis restarting, or the process frozen"
            if within(self.store_failures.get(pid, [])) and "write" in self.plan_of.get(pid, ""):
                return "write fault point"
            return f"{UNEXPLAINED}: TokenStoreError"
        if kind == "transport" and self.frozen_during(pid, b, t):
            return "MCP call of a frozen process"
        return f"{UNEXPLAINED}: {kind} ({f.get('detail', '')[:80]})"

    # -- the report ----------------------------------------------------------------------------

    def summary(self, *, config: dict[str, Any], servers: dict[int, Any], calls_ok: int, final_store_ok: bool,
                seconds: float) -> dict[str, Any]:
        death_cause, window_of = self._deaths(servers)
        reuse_seen = self._check_reuse()
        failed = Counter(self._attribute(f) for f in self.fails)
        unexplained = {c: n for c, n in failed.items() if c.startswith(UNEXPLAINED)}
        for cause, count in unexplained.items():
            self.violations.append(f"{count} failed calls: {cause}")
        served: Counter[str] = Counter()
        for server in servers.values():
            served.update(server["faults"])
        expiries = sum(len(v) for v in self.expiries.values())
        deaths_by_window = Counter(window_of[c] for c in death_cause.values())
        return {
            "config": config,
            "seconds": round(seconds, 1),
            "expiry_events": expiries,
            "expiries_stuck": self.stuck,
            "resolve_seconds_median": (round(statistics.median(self.resolve_seconds), 3)
                                       if self.resolve_seconds else None),
            "resolve_seconds_max": round(max(self.resolve_seconds), 3) if self.resolve_seconds else None,
            "refresh_grants_sent": len(self.grants),
            "calls_ok": calls_ok,
            "calls_failed": sum(failed.values()),
            "calls_failed_by_cause": dict(sorted(failed.items())),
            "faults": {
                "kills_at_fault_points": dict(self.kills_at),
                "interrupts": len(self.interrupted),
                "reserve_refused_by_fault_point": sum(len(v) for v in self.disk_full.values()),
                "write_faults": self.write_faults,
                "random_kills": self.random_kills,
                "freezes": dict(self.freezes),
                "link_faults": dict(self.link_faults),
                "redis_restarts": len(self.redis_out),
                "token_endpoint_injected": {k: v for k, v in self.injected.items() if v},
                "token_endpoint_served": dict(served),
            },
            "lease_checks": dict(self.lease_verdicts),
            "late_grants": self.late_grants,
            "chains": sum(len(s["chains_alive"]) for s in servers.values()),
            "chain_deaths": len(death_cause),
            "chain_deaths_by_window": dict(deaths_by_window),
            "chain_deaths_by_cause": dict(Counter(death_cause.values())),
            "reuse_detections": sum(s["reuse_detections"] for s in servers.values()),
            "reuse_detections_seen_by_clients": reuse_seen,
            "final_store_ok": final_store_ok,
            "hangs": self.hangs,
            "violations": self.violations[:50],
            "violation_count": len(self.violations),
            "anomalies": self.anomalies[:20],
        }


def format_report(report: dict[str, Any]) -> str:
    c, f, m = report["config"], report["faults"], report.get("machine", {})
    lines = [
        f"chaos on Redis: {c['hosts']} hosts x {c['lanes']} chains x {c['per_host']} process(es) x {c['threads']} "
        f"threads, {report['expiry_events']} expiry events in {report['seconds']} s (seed {c['seed']})",
        f"  machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}; load {m.get('load_1_5_15')} "
        f"at the start, {m.get('load_at_end')} at the end" if m else "  machine: not recorded",
        f"  grant deadline {_deadline(c)} s, lease {c['lease']} s; expiry resolved in: median "
        f"{report['resolve_seconds_median']} s, max {report['resolve_seconds_max']} s; "
        f"stuck {report['expiries_stuck']}",
        f"  calls: {report['calls_ok']} ok, {report['calls_failed']} failed",
        *(f"    {cause}: {n}" for cause, n in report["calls_failed_by_cause"].items()),
        f"  refresh grants: {report['refresh_grants_sent']}; lease checks before the grant: {report['lease_checks']}; "
        f"late (frozen after the mark): {report['late_grants']}",
        "  faults:",
        f"    kills at fault points: {f['kills_at_fault_points']}; SIGINT exits: {f['interrupts']}; marks refused "
        f"(reserve): {f['reserve_refused_by_fault_point']}; failed writes (write): {f['write_faults']}",
        f"    random kills: {f['random_kills']}; freezes: {f['freezes']}",
        f"    link faults: {f['link_faults']}; Redis hard restarts: {f['redis_restarts']}",
        f"    token endpoint: injected {f['token_endpoint_injected']}, served {f['token_endpoint_served']}",
        f"  chain deaths: {report['chain_deaths']} of {report['chains']} chains; reuse detections "
        f"{report['reuse_detections']} ({report['reuse_detections_seen_by_clients']} seen by a client)",
        *(f"    {w}: {n}" for w, n in sorted(report["chain_deaths_by_window"].items())),
        *(f"      {cause}: {n}" for cause, n in sorted(report["chain_deaths_by_cause"].items())),
        f"  hangs: {report['hangs']}",
        f"  VIOLATIONS: {report['violation_count']}",
        *(f"    {v[:300]}" for v in report["violations"][:15]),
    ]
    if report["anomalies"]:
        lines.append(f"  anomalies: {len(report['anomalies'])}")
        lines += [f"    {a[:300]}" for a in report["anomalies"][:10]]
    return "\n".join(lines)


def _deadline(config: dict[str, Any]) -> float:
    return float(Timeouts(*config["timeouts"]).grant_total)
