"""The verdict of a chaos run (``bench/chaos.py``), computed from its merged event log.

``Replay`` reads the events in time order, one ``on_<kind>`` method per kind of event, and
``summary()`` turns what it saw into the report. It checks three things, each with exact counts:

- **the guarantee**: no refresh token is presented again after its successor was stored, no two
  grants of live processes are in flight at once for one chain, and a clean expiry costs one grant;
- **every chain death** follows a rotation that never reached the store: one of the two windows no
  client can close (killed after the server rotated and before the write; the answer to a rotation
  lost). A writer killed between its temp file and the rename lost nothing when a later grant
  presents its new token: the next lock holder finished the write;
- **every failed call** is attributed, and the attribution is checked against the log:

  * a ``TokenEndpointError`` must be the error of a failed grant *of the same process* (the leader
    and its in-process waiters get it, each thread at most once), and that grant's failure must be
    an injected fault the server served in that expiry event (one grant per injected fault), or a
    grant whose answer did not come in time (window 2);
  * a ``RefreshChainRevoked`` must come after a chain was refused by the server, from a call that
    began before the driver stored the next chain (the burst between a death and the new login), or
    that joined a flight of its process led by such a call (a flight under way when the login
    landed), and that chain's death must itself be explained;
  * an ``http 401`` (the resend, made once, was refused too) must come from a call that overlapped
    an expiry event before it was resolved, or a dead chain before the new login: the only times
    at which the store's newest access token may be one the server no longer takes;
  * a ``StoreFull`` must follow a refused reservation (a full disk) of the same process, each thread
    at most once per refusal; a ``RefreshInterrupted`` must come from a process that a SIGINT ended;
  * anything else (a lock timeout, a transport error, ``AuthorizationRequired``...) is unexplained.

An unexplained failure is a violation. Events carry ``t`` (``time.monotonic()`` of the process that
wrote them; one clock for every process on the machine), ``ev`` (the kind), ``pid`` and the fields
named in ``bench/chaos_worker.py``.
"""

from __future__ import annotations

import bisect
import dataclasses
import statistics
from collections import Counter, defaultdict
from typing import Any, Optional

# The two windows no client can close; every chain death must fall into one of them.
WINDOW_KILLED = "window 1: killed after the server rotated, before the write"
WINDOW_LOST = "window 2: the answer to a rotation lost"
NEW_LOGIN = "new login after a chain death"
# Window 2 with no fault injected: the client's timeout passed before the server's answer came.
LOST_UNFORCED = "answer after the client timeout, no fault injected"
# The resend (made once) was refused too: the driver invalidated access tokens while the call ran.
RESEND_REFUSED = "resend refused: an expiry during the call"
UNEXPLAINED = "UNEXPLAINED"
# Faults of a worker process that must never cost a chain: no grant is sent while the disk is full,
# and neither a Ctrl-C nor the exit it causes abandons a grant in flight.
DISK_FULL_CAUSE = "disk full at the reservation (no grant sent)"
INTERRUPT_CAUSE = "SIGINT in the leader, then the exit"

_FAULT_CAUSES = {
    "HTTP_500_BEFORE": "fault: HTTP 500 before processing",
    "RESET_BEFORE": "fault: connection reset before processing",
    "SLOW_AFTER": "fault: slow answer (the grant waits for it)",
    "RESET_AFTER": "fault: connection cut after the rotation",
}
# What a TokenEndpointError says (its class here), and the injected faults that produce it.
_FAULTS_OF_CLASS = {
    "http 500": ("HTTP_500_BEFORE",),
    "connection failed": ("RESET_BEFORE", "RESET_AFTER"),
    "no answer in time": ("SLOW_AFTER",),
}
_ROTATED_THEN_LOST = {_FAULT_CAUSES["RESET_AFTER"]}


def fault_cause(name: str) -> str:
    return _FAULT_CAUSES[name]


def error_class(event: dict[str, Any]) -> Optional[str]:
    """``http 500``, ``connection failed``, ``no answer in time``, or None for any other error."""
    if event.get("status") == 500:
        return "http 500"
    detail = event.get("detail", "")
    return next((name for name in ("connection failed", "no answer in time") if name in detail), None)


@dataclasses.dataclass
class Presentation:
    """One refresh grant sent by a worker, and what became of it."""

    t: float
    pid: int
    fp: str
    chain: Optional[int]
    fate: str = "open"  # open, persisted, answered, error, killed-mid-grant, killed-after-answer
    error: Optional[dict[str, Any]] = None
    new_fp: Optional[str] = None
    cause: Optional[str] = None

    def lost_rotation(self) -> bool:
        """The server may have rotated this grant's token, and the store never got the new one."""
        if self.fate in ("killed-mid-grant", "killed-after-answer"):
            return True
        if self.fate == "error" and self.error is not None:
            if not self.error.get("ambiguous"):
                return False
            # A reset is ambiguous to the client; the log knows whether the server had rotated first.
            return "connection failed" not in self.error.get("detail", "") or self.cause in _ROTATED_THEN_LOST
        return False

    def window(self) -> str:
        return WINDOW_LOST if self.fate == "error" else WINDOW_KILLED


@dataclasses.dataclass
class GrantFailure:
    """A grant that failed with a TokenEndpointError other than ``invalid_grant``, and its cause."""

    t: float
    pid: int
    error_class: Optional[str]
    cause: str
    evidence: str
    cells: set[int] = dataclasses.field(default_factory=set)  # threads whose failed calls it explains

    @property
    def explained(self) -> bool:
        return not self.cause.startswith(UNEXPLAINED)


@dataclasses.dataclass(frozen=True)
class Attribution:
    """One failed call: its cause (a row of the report's table) and the events that show it."""

    t: float
    pid: int
    cell: int
    kind: str
    cause: str
    evidence: str

    @property
    def explained(self) -> bool:
        return not self.cause.startswith(UNEXPLAINED)

    def describe(self, t0: float) -> str:
        return f"{self.kind} at +{self.t - t0:.3f} s (pid {self.pid}, thread {self.cell}): {self.evidence}"


class EventReplay:
    """What both verdicts share (this one and ``bench/chaos_redis_replay.py``'s): each event goes to
    the ``on_<kind>`` method of its kind (an unknown kind is an error), and the grants in flight.

    A subclass says where a grant's chain is kept (``chain_key``, ``chain_tokens``)."""

    def __init__(self) -> None:
        self.t0: Optional[float] = None
        self.violations: list[str] = []
        self.anomalies: list[str] = []
        self.refused_at: dict[Any, float] = {}  # chain key -> when the server first refused it
        self.open_grant: dict[int, Any] = {}  # pid -> its grant in flight
        self.awaiting_write: dict[int, Any] = {}  # pid -> its answered grant, not yet written

    def chain_key(self, grant: Any) -> Any:
        """The key of the grant's chain in ``refused_at``."""
        raise NotImplementedError

    def chain_tokens(self, grant: Any) -> dict[str, int]:
        """Refresh token fingerprint -> chain number, for the grant's chain."""
        raise NotImplementedError

    def feed(self, event: dict[str, Any]) -> None:
        if self.t0 is None:
            self.t0 = event["t"]
        handler = getattr(self, "on_" + event["ev"].replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown chaos event {event['ev']!r}")
        handler(event)

    def on_anomaly(self, event: dict[str, Any]) -> None:
        self.anomalies.append(event["what"][:500])

    def on_grant_ok(self, event: dict[str, Any]) -> None:
        grant = self.open_grant.pop(event["pid"])
        grant.fate, grant.new_fp = "answered", event["new"]
        if grant.chain is not None:
            self.chain_tokens(grant)[event["new"]] = grant.chain
        self.awaiting_write[event["pid"]] = grant

    def grant_error(self, event: dict[str, Any]) -> tuple[Any, bool]:
        """The grant in flight that failed, and whether the server refused its token (``invalid_grant``)."""
        grant = self.open_grant.pop(event["pid"])
        grant.fate, grant.error = "error", event
        refused = event.get("code") == "invalid_grant"
        if refused and grant.chain is not None:
            self.refused_at.setdefault(self.chain_key(grant), event["t"])
        return grant, refused


class Replay(EventReplay):
    """Feed it the run's events in time order (``feed``), then ask for the report (``summary``)."""

    def __init__(self, *, expiry_timeout: float) -> None:
        super().__init__()
        self.expiry_timeout = expiry_timeout
        # chains: fingerprint -> chain number, when the driver stored each (refused_at: by chain number)
        self.chain_of: dict[str, int] = {}
        self.login_at: dict[int, float] = {}
        # grants
        self.presentations: list[Presentation] = []
        self.by_fp: dict[str, list[Presentation]] = defaultdict(list)
        self.grant_failures: dict[int, list[GrantFailure]] = defaultdict(list)  # pid -> in time order
        # expiry events and what the driver injected into them
        self.expiry_times: list[float] = []
        self.expiry_ends: list[float] = []  # when each expiry event was resolved (or given up)
        self.expiry_kinds: list[str] = []
        self.injected: dict[int, str] = {}  # expiry index -> fault name
        self.unused: set[int] = set()  # expiry indexes whose fault no request consumed
        self.fault_served: set[int] = set()  # expiry indexes whose fault explains a grant failure
        self.resolve_seconds: list[float] = []
        self.stuck = 0
        # kills and other incidents, (time, cause)
        self.killed_at: dict[int, float] = {}  # pid -> when the driver sent SIGKILL
        self.kills_at_fault_points = 0
        self.random_kills = 0
        self.incidents: list[tuple[float, str]] = []
        self.disk_full: dict[int, list[tuple[float, set[int]]]] = defaultdict(list)  # pid -> (when, threads charged)
        self.interrupted: set[int] = set()  # pids a SIGINT ended
        self.fails: list[dict[str, Any]] = []
        self.fails_by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)

    # -- the driver's events -------------------------------------------------------------------

    def on_login(self, event: dict[str, Any]) -> None:
        self.chain_of[event["fp"]] = event["chain"]
        self.login_at[event["chain"]] = event["t"]
        if event["chain"] > 1:  # the expiry during which a dead chain was replaced is not a clean one
            self.incidents.append((event["t"], NEW_LOGIN))

    def on_expiry(self, event: dict[str, Any]) -> None:
        self.expiry_times.append(event["t"])
        self.expiry_ends.append(float("inf"))
        self.expiry_kinds.append(event["kind"])
        if event["fault"]:
            self.injected[event["index"]] = event["fault"]
            self.incidents.append((event["t"], fault_cause(event["fault"])))

    def on_fault_unused(self, event: dict[str, Any]) -> None:
        self.unused.add(event["index"])

    def on_resolved(self, event: dict[str, Any]) -> None:
        self.resolve_seconds.append(event["seconds"])
        self.expiry_ends[event["index"]] = event["t"]

    def on_stuck(self, event: dict[str, Any]) -> None:
        self.stuck += 1
        self.expiry_ends[event["index"]] = event["t"]
        self.anomalies.append(f"expiry {event['index']} not resolved in {self.expiry_timeout:g} s")

    def on_random_kill(self, event: dict[str, Any]) -> None:
        self.killed_at[event["of"]] = event["t"]
        self.random_kills += 1

    def on_exit(self, event: dict[str, Any]) -> None:
        """A worker died: close what it had in flight and record where the kill landed."""
        pid = event["of"]
        t = self.killed_at.get(pid, event["t"])
        grant = self.open_grant.pop(pid, None)
        answered = self.awaiting_write.pop(pid, None)
        if event["by"] in ("final", "crash"):
            cause = f"worker ended ({event['by']})"
        elif event["by"] == "interrupt":
            self.interrupted.add(pid)
            cause = INTERRUPT_CAUSE  # an incident already, from its "interrupted" event
        elif event["by"] == "self":
            self.kills_at_fault_points += 1
            cause = f"kill at fault point {event['point']}"
        elif grant is not None:
            cause = "random kill: grant sent, no answer yet"
        elif answered is not None:
            cause = "random kill: answered, not yet written"
        else:
            cause = "random kill: outside the grant"
        if event["by"] not in ("final", "crash", "interrupt"):
            self.incidents.append((t, cause))
        if grant is not None:
            grant.fate, grant.cause = "killed-mid-grant", cause
        if answered is not None:
            answered.fate, answered.cause = "killed-after-answer", cause

    # -- the workers' events -------------------------------------------------------------------

    def on_start(self, event: dict[str, Any]) -> None:
        pass  # the driver waits for it; nothing to judge

    def on_disk_full(self, event: dict[str, Any]) -> None:
        self.disk_full[event["pid"]].append((event["t"], set()))
        self.incidents.append((event["t"], DISK_FULL_CAUSE))

    def on_interrupted(self, event: dict[str, Any]) -> None:
        self.incidents.append((event["t"], INTERRUPT_CAUSE))

    def on_grant_start(self, event: dict[str, Any]) -> None:
        t, fp = event["t"], event["fp"]
        chain = self.chain_of.get(fp)
        if any(earlier.fate == "persisted" for earlier in self.by_fp[fp]):
            self.violations.append(f"refresh token <{fp}> presented again after its successor was stored")
        live = [p for p in self.open_grant.values() if p.chain == chain and self.killed_at.get(p.pid, float("inf")) > t]
        if live:
            self.violations.append(f"two grants in flight at once for chain {chain}")
        grant = Presentation(t, event["pid"], fp, chain)
        self.presentations.append(grant)
        self.by_fp[fp].append(grant)
        self.open_grant[event["pid"]] = grant

    def chain_key(self, grant: Presentation) -> Optional[int]:
        return grant.chain

    def chain_tokens(self, grant: Presentation) -> dict[str, int]:
        return self.chain_of

    def on_grant_error(self, event: dict[str, Any]) -> None:
        grant, refused = self.grant_error(event)
        if refused:
            return
        failure = self._grant_failure(event)
        grant.cause = failure.cause
        self.grant_failures[event["pid"]].append(failure)
        if failure.cause not in _FAULT_CAUSES.values():  # an injected fault is an incident of its expiry already
            self.incidents.append((event["t"], failure.cause))
        if not failure.explained:
            self.violations.append(f"a grant failed with nothing injected: {event.get('detail', '')[:80]}")

    def on_saved(self, event: dict[str, Any]) -> None:
        grant = self.awaiting_write.pop(event["pid"], None)
        if grant is not None and event["fp"] == grant.new_fp:
            grant.fate = "persisted"

    def on_fail(self, event: dict[str, Any]) -> None:
        self.fails.append(event)  # attributed in summary(), once every chain's fate is known
        self.fails_by_pid[event["pid"]].append(event)

    # -- attribution ---------------------------------------------------------------------------

    def _expiry_at(self, t: float) -> int:
        return bisect.bisect_right(self.expiry_times, t) - 1

    def _grant_failure(self, event: dict[str, Any]) -> GrantFailure:
        """What made a grant fail: the expiry event's injected fault, served once, or a lost answer."""
        t, index, kind = event["t"], self._expiry_at(event["t"]), error_class(event)
        fault = self.injected.get(index)
        if kind is not None and fault in _FAULTS_OF_CLASS[kind] and index not in self.unused | self.fault_served:
            self.fault_served.add(index)
            cause, evidence = fault_cause(fault), f"expiry {index} injected {fault} and the server served it"
        elif kind == "no answer in time":
            cause, evidence = LOST_UNFORCED, f"expiry {index}: no injected fault left, the client gave up waiting"
        else:
            cause = f"{UNEXPLAINED}: grant failed ({kind or event.get('kind')})"
            evidence = f"expiry {index} has no unserved fault of this kind: {event.get('detail', '')[:60]}"
        return GrantFailure(t, event["pid"], kind, cause, evidence)

    def _attribute(self, fail: dict[str, Any], death_cause: dict[int, str]) -> Attribution:
        kind = fail["kind"]
        if kind == "TokenEndpointError":
            cause, evidence = self._from_failed_grant(fail)
        elif kind == "RefreshChainRevoked":
            cause, evidence = self._from_dead_chain(fail, death_cause)
        elif kind == "http 401":
            cause, evidence = self._from_invalidation(fail)
        elif kind == "StoreFull":
            cause, evidence = self._from_disk_full(fail)
        elif kind == "RefreshInterrupted" and fail["pid"] in self.interrupted:
            cause, evidence = INTERRUPT_CAUSE, "its process was ended by a SIGINT, which refuses new grants"
        else:
            cause = f"{UNEXPLAINED}: {kind}"
            evidence = f"no injected fault or chain death explains it ({fail.get('detail', '')[:80]})"
        return Attribution(fail["t"], fail["pid"], fail["cell"], kind, cause, evidence)

    def _from_failed_grant(self, fail: dict[str, Any]) -> tuple[str, str]:
        """The leader and its waiters share one grant's error: a failed grant of this process, earlier."""
        kind = error_class(fail)
        earlier = [g for g in self.grant_failures.get(fail["pid"], []) if g.t <= fail["t"] and g.error_class == kind]
        if not earlier:
            return f"{UNEXPLAINED}: TokenEndpointError", f"no grant of this process failed with {kind} before it"
        grant = earlier[-1]
        if fail["cell"] in grant.cells:
            return f"{UNEXPLAINED}: TokenEndpointError", "a second failed call of one thread from one failed grant"
        grant.cells.add(fail["cell"])
        return grant.cause, f"the grant this process sent failed at +{grant.t - (self.t0 or 0):.3f} s: {grant.evidence}"

    def _from_disk_full(self, fail: dict[str, Any]) -> tuple[str, str]:
        """The leader and its waiters share one refused reservation of their process."""
        earlier = [(t, cells) for t, cells in self.disk_full.get(fail["pid"], []) if t <= fail["t"]]
        if not earlier:
            return f"{UNEXPLAINED}: StoreFull", "no reservation of this process was refused before it"
        t, cells = earlier[-1]
        if fail["cell"] in cells:
            return f"{UNEXPLAINED}: StoreFull", "a second failed call of one thread from one refused reservation"
        cells.add(fail["cell"])
        return DISK_FULL_CAUSE, f"its process's reservation was refused at +{t - (self.t0 or 0):.3f} s"

    def _from_dead_chain(self, fail: dict[str, Any], death_cause: dict[int, str]) -> tuple[str, str]:
        """The burst after a death: from the server's refusal until the driver stored the next chain."""
        t0 = self.t0 or 0.0
        refused = sorted((at, chain) for chain, at in self.refused_at.items() if at <= fail["t"])
        if not refused:
            return f"{UNEXPLAINED}: RefreshChainRevoked", "the server had refused no chain before it"
        at, chain = refused[-1]
        successor = self.login_at.get(chain + 1)
        cause = death_cause.get(chain, f"{UNEXPLAINED}: chain {chain} refused but not dead")
        until = f"+{successor - t0:.3f} s" if successor is not None else "the end"
        evidence = f"chain {chain} refused at +{at - t0:.3f} s, next login {until}; it died of: {cause}"
        if successor is None or fail["began"] < successor:
            return cause, evidence
        # Begun after the new login, the call can only have joined a flight of its process that was
        # already under way: one begun before the login, whose own call failed after this one began.
        leader = next(
            (
                other
                for other in self.fails_by_pid.get(fail["pid"], [])
                if other["kind"] == "RefreshChainRevoked" and other["began"] < successor <= fail["began"] <= other["t"]
            ),
            None,
        )
        if leader is None:
            return (
                f"{UNEXPLAINED}: RefreshChainRevoked",
                f"the call began after chain {chain + 1} replaced dead chain {chain} (+{successor - t0:.3f} s), "
                "and no call of its process that began before could have led its flight",
            )
        return cause, (
            f"joined the flight of thread {leader['cell']} (its call began +{leader['began'] - t0:.3f} s, before the "
            f"login); {evidence}"
        )

    def _from_invalidation(self, fail: dict[str, Any]) -> tuple[str, str]:
        """A refused resend: the call overlapped an unresolved expiry event or a dead chain."""
        t0, began, t = self.t0 or 0.0, fail["began"], fail["t"]
        index = bisect.bisect_left(self.expiry_times, t) - 1  # the last expiry event begun before the failure
        # Expiry events follow one another, so if the last one was resolved before the call began, all were.
        if index >= 0 and self.expiry_ends[index] > began:
            return RESEND_REFUSED, (
                f"the call (from +{began - t0:.3f} s) overlapped expiry {index} ({self.expiry_kinds[index]}, "
                f"+{self.expiry_times[index] - t0:.3f} s to +{self.expiry_ends[index] - t0:.3f} s)"
            )
        for chain, at in self.refused_at.items():
            successor = self.login_at.get(chain + 1, float("inf"))
            if at < t and successor > began:
                return RESEND_REFUSED, f"the call (from +{began - t0:.3f} s) overlapped dead chain {chain}"
        return f"{UNEXPLAINED}: http 401", "the resent token was refused, and no expiry or chain death overlapped"

    # -- the report ----------------------------------------------------------------------------

    def _lost(self, grant: Presentation) -> bool:
        """A rotation the store never got. A writer killed between its temp file and the rename is saved
        by the next lock holder, who finishes the write: then a later grant presents the new token."""
        return grant.lost_rotation() and not (grant.new_fp is not None and grant.new_fp in self.by_fp)

    def _deaths(self, chains_alive: list[bool]) -> tuple[dict[int, str], dict[str, str]]:
        """Every dead chain's cause (its first lost rotation), and the window of each cause."""
        death_cause: dict[int, str] = {}
        window_of: dict[str, str] = {}
        for chain, alive in enumerate(chains_alive, start=1):
            if alive:
                continue
            lost = [p for p in self.presentations if p.chain == chain and self._lost(p)]
            if lost:
                cause, window = lost[0].cause or "killed", lost[0].window()
                if cause in (DISK_FULL_CAUSE, INTERRUPT_CAUSE):
                    self.violations.append(f"chain {chain} died of {cause}, which must cost nothing")
            else:
                cause = window = UNEXPLAINED
                self.violations.append(f"chain {chain} died with no lost rotation before it")
            death_cause[chain] = cause
            window_of[cause] = window
        return death_cause, window_of

    def _reuse(self, death_cause: dict[int, str]) -> Counter[str]:
        """Reuse detections seen by a client, per cause of the chain's death; each must present a
        token whose rotation was lost (a live process never presents a token it may not spend)."""
        reuse: Counter[str] = Counter()
        lost_fps = {p.fp for p in self.presentations if self._lost(p)}
        for grant in self.presentations:
            if grant.error and grant.error.get("code") == "invalid_grant" and "reuse" in grant.error.get("detail", ""):
                reuse[death_cause.get(grant.chain or 0, UNEXPLAINED)] += 1
                if grant.fp not in lost_fps:
                    self.violations.append(f"reuse detected on <{grant.fp}>, whose rotation was not lost")
        return reuse

    def _check_faults_served(self, served_by_server: dict[str, int]) -> None:
        expected = Counter(fault for index, fault in self.injected.items() if index not in self.unused)
        if expected != Counter(served_by_server):
            self.violations.append(f"the server served faults {served_by_server}, the driver left {dict(expected)}")

    def _grants_per_expiry(self) -> dict[str, list[int]]:
        """For each cause: the grants sent during each expiry event in which it occurred."""
        counts = [0] * len(self.expiry_times)
        causes: list[set[str]] = [set() for _ in self.expiry_times]
        for grant in self.presentations:
            index = self._expiry_at(grant.t)
            if index >= 0:
                counts[index] += 1
        for t, cause in self.incidents:
            index = self._expiry_at(t)
            if index >= 0:
                causes[index].add(cause)
        per_cause: dict[str, list[int]] = defaultdict(list)
        for grants, met in zip(counts, causes):
            for cause in met or {"none (clean expiry)"}:
                per_cause[cause].append(grants)
        return per_cause

    def summary(
        self,
        *,
        config: dict[str, Any],
        server: dict[str, Any],
        calls_ok: int,
        final_store_ok: bool,
        leftover_temp_files: int,
        seconds: float,
    ) -> dict[str, Any]:
        chains_alive = server["chains_alive"]
        death_cause, window_of = self._deaths(chains_alive)
        deaths = Counter(death_cause.values())
        deaths_by_window = Counter(window_of[cause] for cause in death_cause.values())
        reuse = self._reuse(death_cause)
        self._check_faults_served(server.get("faults", {}))
        attributions = [self._attribute(fail, death_cause) for fail in self.fails]
        t0 = self.t0 or 0.0
        unexplained = [a for a in attributions if not a.explained]
        self.violations += [f"unexplained failed call: {a.describe(t0)}" for a in unexplained]
        failed = Counter(a.cause for a in attributions)
        per_cause_grants = self._grants_per_expiry()
        clean = per_cause_grants.get("none (clean expiry)", [])
        if clean and max(clean) > 1:
            self.violations.append(f"a clean expiry took {max(clean)} grants")
        incident_counts = Counter(cause for _, cause in self.incidents)
        causes = sorted(set(incident_counts) | set(deaths) | set(failed) | set(per_cause_grants) | set(reuse))
        table = {
            cause: {
                "window": window_of.get(cause, ""),
                "incidents": incident_counts.get(cause, 0),
                "chain_deaths": deaths.get(cause, 0),
                "calls_failed": failed.get(cause, 0),
                "reuse_detections_seen": reuse.get(cause, 0),
                "expiries": len(per_cause_grants.get(cause, [])),
                "grants_per_expiry": _mean(per_cause_grants.get(cause, [])),
            }
            for cause in causes
        }
        expiries = len(self.expiry_times)
        grant_failures = sorted((g for gs in self.grant_failures.values() for g in gs), key=lambda g: g.t)
        return {
            "config": config,
            "seconds": round(seconds, 1),
            "expiry_events": expiries,
            "expiries_stuck": self.stuck,
            "resolve_seconds_median": round(statistics.median(self.resolve_seconds), 3)
            if self.resolve_seconds
            else None,
            "resolve_seconds_max": round(max(self.resolve_seconds), 3) if self.resolve_seconds else None,
            "refresh_grants_sent": len(self.presentations),
            "refresh_grants_per_expiry": round(len(self.presentations) / expiries, 3) if expiries else None,
            "clean_expiries": len(clean),
            "clean_grants_per_expiry": {
                "mean": _mean(clean),
                "min": min(clean, default=None),
                "max": max(clean, default=None),
            },
            "calls_ok": calls_ok,
            "calls_failed": len(attributions),
            "calls_failed_explained": len(attributions) - len(unexplained),
            "calls_failed_unexplained": len(unexplained),
            "calls_failed_by_evidence": dict(Counter(_evidence_kind(a) for a in attributions)),
            "unexplained_failures": [a.describe(t0) for a in unexplained[:20]],
            "failure_attributions": [
                {
                    "t": round(a.t - t0, 4),
                    "pid": a.pid,
                    "thread": a.cell,
                    "kind": a.kind,
                    "cause": a.cause,
                    "evidence": a.evidence,
                }
                for a in attributions
            ],
            "grant_failures": [
                {
                    "t": round(g.t - t0, 4),
                    "pid": g.pid,
                    "error": g.error_class,
                    "cause": g.cause,
                    "evidence": g.evidence,
                    "calls_failed": len(g.cells),
                }
                for g in grant_failures
            ],
            "chain_deaths": sum(deaths.values()),
            "chain_deaths_by_window": dict(deaths_by_window),
            "chains": len(chains_alive),
            "worker_kills": {
                "by_fault_point": self.kills_at_fault_points,
                "random": self.random_kills,
                "interrupted": len(self.interrupted),
            },
            "disk_full": sum(len(refusals) for refusals in self.disk_full.values()),
            "reuse_detections": server["reuse_detections"],
            "reuse_detections_by_orphan_grants": server["reuse_detections"] - sum(reuse.values()),
            "per_cause": table,
            "server": {k: v for k, v in server.items() if k != "chains_alive"},
            "final_store_ok": final_store_ok,
            "leftover_temp_files": leftover_temp_files,
            "violations": self.violations[:50],
            "violation_count": len(self.violations),
            "anomalies": self.anomalies[:20],
        }


def _evidence_kind(attribution: Attribution) -> str:
    if not attribution.explained:
        return "unexplained"
    if attribution.kind == "TokenEndpointError":
        return "the failed grant of its own process"
    if attribution.cause == RESEND_REFUSED:
        return "an expiry event or dead chain overlapping the call"
    return "the burst between a chain's death and the new login"


def _mean(values: list[int]) -> Optional[float]:
    return round(sum(values) / len(values), 3) if values else None
