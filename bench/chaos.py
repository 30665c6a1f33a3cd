"""Chaos run: many processes and threads share one refresh chain while processes die and the token
endpoint misbehaves. Proves (or disproves) the core guarantee with counts per cause.

Setup: one ``StrictAuthServer`` (rotation on every use, reuse detection that revokes the chain) in
this process; P worker processes (``bench/chaos_worker.py``) x T threads calling its MCP endpoint
through ``MCPAuth`` and one ``FileTokenStore``. Access tokens live ``--ttl`` seconds of the run's
clock, a clock shared by every process; the driver makes each **expiry event** by moving that clock
(past the expiry, or into the proactive-refresh window) or by revoking the access tokens (the 401
path), then waits until the store holds a fresh, live set again, then dwells a little.

Meanwhile:

- worker processes are SIGKILLed and restarted: at random moments by the driver, and exactly inside
  the refresh critical section by ``MCP_SYNC_AUTH_FAULTPOINT`` (``before-grant``,
  ``after-grant-before-write``, ``during-write``; see ``mcp_sync_auth/_util/faultpoints.py``);
- a worker's disk is full when it reserves room for a refresh (``reserve``), and a worker gets SIGINT
  while the grant of one of its threads is in flight (``interrupt-during-grant``): the Ctrl-C of a
  program, which then exits. Neither may cost a chain;
- the token endpoint fails some grants: HTTP 500 or a connection reset before processing, a slow
  answer (a grant waits for it), or a rotation whose answer is cut off (the ambiguous case).

When a chain dies, the driver logs in again (a new chain from ``server.mint_tokens``, stored with
``MCPAuth.save_token``) and counts it. At the end every chain death is attributed from the event log:
it must follow a rotation that the store never received, i.e. one of the two windows no client can
close (killed after the server rotated and before our write; the answer to a rotation lost). Every
failed call is attributed too, and the attribution is checked against the log: the failed grant of
its own process (an injected fault the server served, or an answer that came too late), or the burst
between a chain's death and the new login (``bench/chaos_replay.py``). A death with no such rotation
before it, a failed call nothing explains, a refresh token presented again after its successor was
stored, or two grants of live processes in flight at once is a violation.

    python -m bench.chaos --short            # CI: 8 x 16, 60 expiry events
    python -m bench.chaos                    # long: 8 x 16, 1100 expiry events (RELIABILITY.md)
    python -m bench.chaos --short --unsafe no-lock   # a store whose lock excludes nobody: must fail
    python -m bench.chaos --store redis --hosts 3 --events 500   # Redis over 3 hosts (bench/chaos_redis.py)

Exit status 0 when no violation was found.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from mcp_sync_auth import CorruptTokenCache, FileTokenStore, MCPAuth
from mcp_sync_auth._util.redact import fingerprint
from mcp_sync_auth.testing import Fault, StrictAuthServer

from .chaos_driver import (
    EXPIRY_KINDS,
    FAULTPOINT_VARIABLE,
    ChaosDriver,
    chain_alive,
    expire,
    is_resolved,
    replay_kept,
    run_in_folder,
)
from .chaos_replay import (
    DISK_FULL_CAUSE,
    INTERRUPT_CAUSE,
    NEW_LOGIN,
    RESEND_REFUSED,
    WINDOW_KILLED,
    WINDOW_LOST,
    Replay,
    fault_cause,
)
from .chaos_worker import FileClock, machine

__all__ = [
    "DISK_FULL_CAUSE",
    "INTERRUPT_CAUSE",
    "NEW_LOGIN",
    "RESEND_REFUSED",
    "WINDOW_KILLED",
    "WINDOW_LOST",
    "ChaosConfig",
    "analyse",
    "fault_cause",
    "format_report",
    "replay_folder",
    "run",
]

POINTS = ("before-grant", "after-grant-before-write", "during-write")  # where a worker kills itself
DISK_FULL, INTERRUPT = "reserve", "interrupt-during-grant"
WORKER_FAULTS = (*POINTS, DISK_FULL, INTERRUPT)
# How likely a forced incarnation meets its fault each time it reaches the point: a kill or a SIGINT
# ends the incarnation; a full disk lets it go on, so it is not made certain.
_FORCED_CHANCE = {DISK_FULL: 0.5}
# The fault each of the first workers is armed with until someone met it. A SIGINT ends its process
# only when that process leads a grant, so two workers carry it.
_FORCED = (*WORKER_FAULTS, INTERRUPT)
FAULTS = (Fault.HTTP_500_BEFORE, Fault.RESET_BEFORE, Fault.SLOW_AFTER, Fault.RESET_AFTER)



@dataclasses.dataclass
class ChaosConfig:
    processes: int = 8
    threads: int = 16
    expiries: int = 1100
    ttl: float = 20.0
    client_timeout: float = 2.0
    fault_delay: float = 3.0  # > client_timeout, < the grant read timeout: a SLOW_AFTER answer is waited for
    fault_chance: float = 0.12  # per expiry event, one of FAULTS
    armed_share: float = 0.5  # share of worker incarnations armed with one fault point
    point_chance: float = 0.2  # probability of dying at the armed point, each time it is reached
    random_kill_interval: float = 1.5  # mean seconds between SIGKILLs sent by the driver
    dwell: tuple[float, float] = (0.1, 0.4)  # seconds of traffic after each expiry is resolved
    pace: float = 0.05  # mean pause of a worker thread between calls
    expiry_timeout: float = 30.0
    seed: int = 0
    unsafe: Optional[str] = None
    # Expiry events 1 to 4 carry one fault each, so that every fault is met whatever the seed.
    forced_faults: bool = True

    @classmethod
    def short(cls, **overrides: Any) -> ChaosConfig:
        return cls(**{"expiries": 60, "fault_chance": 0.25, "random_kill_interval": 1.0, **overrides})


class Chaos(ChaosDriver):
    """One run: the server, the worker supervisors, the killer, the relogin, the expiry driver."""

    forced_plan = _FORCED
    forced_chance = _FORCED_CHANCE
    worker_faults = WORKER_FAULTS

    def __init__(self, config: ChaosConfig, directory: Path, progress: bool = False) -> None:
        super().__init__(config, directory, progress)
        self.config: ChaosConfig = config
        self.relogin_wanted = threading.Event()
        self.chains = 0
        self.store_dir = directory / "tokens"
        self.clock = FileClock.create(str(directory / "clock"))

    # -- bookkeeping ---------------------------------------------------------------------------

    def take(self, parsed: list[dict[str, Any]]) -> None:
        self.events.extend(parsed)
        for event in parsed:
            if event["ev"] == "start":
                self.started.add(event["slot"])
            if event["ev"] == "disk-full":
                self.points_hit.add(DISK_FULL)
            if self._chain_may_be_dead(event):
                self.relogin_wanted.set()

    @staticmethod
    def _chain_may_be_dead(event: dict[str, Any]) -> bool:
        return (
            (event["ev"] == "grant-error" and event.get("code") == "invalid_grant")
            or (event["ev"] == "saved" and event.get("dead"))
            or (event["ev"] == "fail" and event.get("kind") in ("RefreshChainRevoked", "AuthorizationRequired"))
        )

    # -- the chain -----------------------------------------------------------------------------

    def login(self) -> None:
        tokens = self.server.mint_tokens(self.client_id)
        self.auth.save_token(tokens)
        self.chains += 1
        self.note("login", chain=self.chains, fp=fingerprint(tokens["refresh_token"]))

    def stored(self) -> Any:
        try:
            return FileTokenStore(self.store_dir).load(self.auth.key)
        except CorruptTokenCache as exc:
            self.note("anomaly", what=f"corrupt store: {exc}")
            return None

    def relogin_loop(self) -> None:
        # Checks on every hint from the workers, and twice a second anyway (a chain revoked by the
        # late grant of a killed process is only noticed by the next caller).
        while not self.stop.is_set():
            self.relogin_wanted.wait(0.5)
            self.relogin_wanted.clear()
            if not self.stop.is_set() and not chain_alive(self.server, self.stored()):
                self.login()

    # -- workers -------------------------------------------------------------------------------

    def worker_env(self, slot: int, base: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in base.items() if k != FAULTPOINT_VARIABLE}

    def worker_config(self, slot: int, incarnation: int, tag: str) -> dict[str, Any]:
        return {
            "slot": slot,
            "incarnation": incarnation,
            "mcp_url": self.server.mcp_url,
            "token_endpoint": self.server.token_endpoint,
            "client_id": self.client_id,
            "store_dir": str(self.store_dir),
            "clock_file": str(self.directory / "clock"),
            "counters_file": str(self.directory / f"counters-{tag}"),
            "event_fd": self.write_fd,
            "threads": self.config.threads,
            "pace": self.config.pace,
            "timeout": self.config.client_timeout,
            "unsafe": self.config.unsafe,
        }

    def killer(self) -> None:
        while not self.stop.wait(self.rng.expovariate(1.0 / self.config.random_kill_interval)):
            self.kill(self.rng.randrange(self.config.processes), "driver")

    # -- expiry events -------------------------------------------------------------------------

    def wait_resolved(self, generation: int) -> bool:
        deadline = time.monotonic() + self.config.expiry_timeout
        while not is_resolved(self.stored(), generation, clock=self.clock, server=self.server):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self.changed:
                self.changed.wait(min(remaining, 0.25))  # woken by every store write; re-checked anyway
        return True

    def drive(self) -> None:
        for index in range(self.config.expiries):
            record = self.stored()
            generation = record.generation if record is not None else 0
            fault = self.rng.choice(FAULTS) if self.rng.random() < self.config.fault_chance else None
            if self.config.forced_faults and 1 <= index <= len(FAULTS):
                fault = FAULTS[index - 1]
            kind = self.rng.choice(EXPIRY_KINDS)
            # Noted first: a grant that meets the fault ends after this note, inside this expiry's window.
            self.note("expiry", index=index, kind=kind, fault=fault.name if fault else None)
            if fault is not None:
                self.server.inject_fault(fault)
            began = time.monotonic()
            expire(kind, clock=self.clock, server=self.server, ttl=self.config.ttl)
            resolved = self.wait_resolved(generation)
            self.note("resolved" if resolved else "stuck", index=index, seconds=time.monotonic() - began)
            if self.progress and (index + 1) % 100 == 0:
                print(f"  ... {index + 1} expiry events", file=sys.stderr, flush=True)
            unused = self.server.clear_faults()
            if unused:
                self.note("fault-unused", index=index)
            self.stop.wait(self.rng.uniform(*self.config.dwell))  # traffic between events, not a wait for a state

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        config = self.config
        began = time.monotonic()
        machine_before = machine()
        with StrictAuthServer(access_token_ttl=config.ttl, clock=self.clock, fault_delay=config.fault_delay) as server:
            self.server = server
            self.client_id = server.register_client()
            self.auth = MCPAuth(
                server.mcp_url,
                store=FileTokenStore(self.store_dir),
                client_id=self.client_id,
                token_endpoint=server.token_endpoint,
                clock=self.clock,
                timeout=config.client_timeout,
            )
            self.login()
            self.run_workers(
                config.processes,
                start_timeout=120,
                helpers=[self.killer, self.relogin_loop],
                helper_timeout=30,
                drive=self.drive,
            )
            audit = server.audit
            chain_summaries = [c for c in server.chains() if c.client_id == self.client_id]
        final = self.stored()
        leftovers = len(list(self.store_dir.glob(".*.tmp")))
        outcome = {
            "server": {
                "token_requests": audit.token_requests,
                "refresh_grants": audit.grants.get("refresh_token", 0),
                "refresh_ok": audit.refresh_ok,
                "reuse_detections": audit.reuse_detections,
                "revocations": audit.revocations,
                "faults": dict(audit.faults),
                "mcp_ok": audit.mcp_ok,
                "mcp_unauthorized": audit.mcp_unauthorized,
                "chains_alive": [c.alive for c in chain_summaries],
            },
            "calls_ok": sum(c.total() for c in self.counters),
            "final_store_ok": final is not None and not final.is_dead,
            "leftover_temp_files": leftovers,
        }
        return self.keep(outcome, began=began, machine_before=machine_before, analyse=analyse)


# --- analysis -------------------------------------------------------------------------------------


def analyse(
    config: ChaosConfig,
    events: list[dict[str, Any]],
    *,
    server: dict[str, Any],
    calls_ok: int,
    final_store_ok: bool,
    leftover_temp_files: int,
    seconds: float,
) -> dict[str, Any]:
    """The report of a run from its event log (in time order) and the server's audit: see chaos_replay."""
    replay = Replay(expiry_timeout=config.expiry_timeout)
    for event in events:
        replay.feed(event)
    return replay.summary(
        config=dataclasses.asdict(config),
        server=server,
        calls_ok=calls_ok,
        final_store_ok=final_store_ok,
        leftover_temp_files=leftover_temp_files,
        seconds=seconds,
    )


# --- report ---------------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    c = report["config"]
    clean = report["clean_grants_per_expiry"]
    m = report.get("machine", {})
    lines = [
        f"chaos: {c['processes']} processes x {c['threads']} threads, {report['expiry_events']} expiry events "
        f"in {report['seconds']} s (seed {c['seed']}{', UNSAFE ' + c['unsafe'] if c['unsafe'] else ''})",
        f"  machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}, {m.get('system')}; "
        f"load {m.get('load_1_5_15')} at the start, {m.get('load_at_end')} at the end"
        if m
        else "  machine: not recorded",
        f"  calls: {report['calls_ok']} ok, {report['calls_failed']} failed: {report['calls_failed_explained']} "
        f"explained, {report['calls_failed_unexplained']} unexplained",
        *(f"    by {how}: {count}" for how, count in sorted(report["calls_failed_by_evidence"].items())),
        f"  refresh grants: {report['refresh_grants_sent']} sent, {report['refresh_grants_per_expiry']} per expiry; "
        f"clean expiries {report['clean_expiries']}: {clean['mean']} per expiry "
        f"(min {clean['min']}, max {clean['max']})",
        f"  expiry resolved in: median {report['resolve_seconds_median']} s, max {report['resolve_seconds_max']} s; "
        f"stuck {report['expiries_stuck']}",
        f"  worker kills: {report['worker_kills']['by_fault_point']} at fault points, "
        f"{report['worker_kills']['random']} random; {report['worker_kills']['interrupted']} exits on SIGINT; "
        f"{report['disk_full']} reservations refused (disk full)",
        f"  chain deaths: {report['chain_deaths']} of {report['chains']} chains; reuse detections "
        f"{report['reuse_detections']} ({report['reuse_detections_by_orphan_grants']} by grants of killed processes)",
        *(f"    {window}: {count}" for window, count in sorted(report["chain_deaths_by_window"].items())),
        f"  final store readable and live: {report['final_store_ok']}; temp files left by killed writers: "
        f"{report['leftover_temp_files']}",
        "",
        f"  {'cause':<52} {'window':>6} {'incid.':>6} {'deaths':>6} {'failed':>7} {'reuse':>5} {'expiries':>8} "
        f"{'grants/exp':>10}",
    ]
    for cause, row in report["per_cause"].items():
        window = row["window"].partition(":")[0].replace("window ", "")
        lines.append(
            f"  {cause[:52]:<52} {window:>6} {row['incidents']:>6} {row['chain_deaths']:>6} {row['calls_failed']:>7} "
            f"{row['reuse_detections_seen']:>5} {row['expiries']:>8} {row['grants_per_expiry'] or '-':>10}"
        )
    lines.append("")
    lines.append(f"  UNEXPLAINED FAILED CALLS: {report['calls_failed_unexplained']}")
    lines += [f"    {why[:300]}" for why in report["unexplained_failures"][:10]]
    lines.append(f"  VIOLATIONS: {report['violation_count']}")
    lines += [f"    {v}" for v in report["violations"][:10]]
    if report["anomalies"]:
        lines.append(f"  anomalies: {len(report['anomalies'])}")
        lines += [f"    {a[:300]}" for a in report["anomalies"][:10]]
    return "\n".join(lines)


def run(config: ChaosConfig, directory: Optional[Path] = None, progress: bool = False) -> dict[str, Any]:
    return run_in_folder(lambda folder: Chaos(config, folder, progress), directory, prefix="chaos-")


def replay_folder(folder: Path) -> dict[str, Any]:
    """The report of a kept run, from its ``events.jsonl`` and ``outcome.json``."""
    return replay_kept(folder, _judge_kept)


def _judge_kept(raw: dict[str, Any], events: list[dict[str, Any]], outcome: dict[str, Any]) -> dict[str, Any]:
    return analyse(ChaosConfig(**{**raw, "dwell": tuple(raw["dwell"])}), events, **outcome)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI run: 60 expiry events")
    parser.add_argument("--expiries", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--unsafe", choices=["no-lock"], help="break the store on purpose: the run must fail")
    parser.add_argument("--store", choices=["file", "redis"], default="file",
                        help="redis: the run over simulated hosts sharing one redis-server (bench/chaos_redis.py)")
    parser.add_argument("--events", type=int, dest="expiries", help="the same as --expiries")
    parser.add_argument("--hosts", type=int, help="--store redis: simulated hosts (3)")
    parser.add_argument("--lanes", type=int, help="--store redis: chains refreshed in parallel (8)")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    parser.add_argument("--keep", type=Path, help="keep the run's folder (logs, store) here")
    parser.add_argument("--replay", type=Path, metavar="DIR", help="no run: the verdict again from a --keep folder")
    args = parser.parse_args(argv)
    if args.store == "redis":
        return _main_redis(args)
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in ("expiries", "processes", "threads", "unsafe") if getattr(args, name)
    }
    overrides["seed"] = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    config = ChaosConfig.short(**overrides) if args.short else ChaosConfig(**overrides)
    logging.getLogger("mcp_sync_auth").addHandler(logging.NullHandler())
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = replay_folder(args.replay) if args.replay else run(config, args.keep, progress=True)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["violation_count"] == 0 else 1


def _main_redis(args: argparse.Namespace) -> int:
    from . import chaos_redis, chaos_redis_replay  # noqa: PLC0415 (needs redis-py, only for this run)

    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in ("expiries", "threads", "hosts", "lanes") if getattr(args, name)
    }
    if args.processes:
        overrides["per_host"] = args.processes
    overrides["seed"] = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    make = chaos_redis.RedisChaosConfig.short if args.short else chaos_redis.RedisChaosConfig
    logging.getLogger("mcp_sync_auth").addHandler(logging.NullHandler())
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    if args.replay:
        report = chaos_redis.replay_folder(args.replay)
    else:
        report = chaos_redis.run(make(**overrides), args.keep, progress=True)
    print(chaos_redis_replay.format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["violation_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
