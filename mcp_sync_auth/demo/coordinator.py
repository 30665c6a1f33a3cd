"""Runs the demo: two strict servers, two headless logins, 2 x P worker processes, C expiry cycles.

Both sides run at the same moments, each against its own :class:`StrictAuthServer`, so the two
audits count one side each. Expiry is real: every cycle starts once the access tokens have expired
(a wait of one token lifetime, no clock tricks), and a barrier across all processes starts it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Tuple, TypeVar

import requests

from .._chain.keys import ChainKey
from .._chain.tokens import TokenSet
from .._stores.file import FileTokenStore
from .._stores.memory import MemoryTokenStore
from .._stores.protocol import TokenStore
from ..testing import StrictAuthServer, login
from ..testing.audit import Audit, EventKind
from .options import DemoOptions
from .protocol import NAIVE, OURS, SIDES, CycleReport, WorkerConfig, loopback_session
from .report import SideResult
from .timing import EXPIRY_MARGIN, client_lifetime, early_refreshes
from .workers import BARRIER_TIMEOUT, worker_main

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

__all__ = ["DemoError", "run_load"]

REPORT_TIMEOUT = 60.0
Say = Callable[[str], None]
T = TypeVar("T")


class DemoError(RuntimeError):
    """The demo could not run (a worker failed to start, the run got stuck)."""


class _Side:
    """One side's running totals."""

    def __init__(self, name: str, server: StrictAuthServer, first_refresh_token: str) -> None:
        self.name = name
        self.server = server
        self.first_refresh_token = first_refresh_token
        self.audit = server.audit
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.seconds = 0.0
        self.longest_cycle = 0.0

    def chain_alive(self) -> bool:
        return self.server.is_chain_alive(self.first_refresh_token)

    def add(self, reports: List[CycleReport]) -> Tuple[int, int, Audit]:
        """Count one cycle's reports; returns (ok, failed, audit before this cycle)."""
        ok = sum(report.ok for report in reports)
        failed = sum(sum(report.failures.values()) for report in reports)
        self.ok += ok
        for report in reports:
            self.failures.update(report.failures)
        cycle_seconds = max(report.seconds for report in reports)
        self.seconds += cycle_seconds
        self.longest_cycle = max(self.longest_cycle, cycle_seconds)
        before, self.audit = self.audit, self.server.audit
        return ok, failed, before

    def result(self, calls: int, ttl: float) -> SideResult:
        issued_at = [event.time for event in self.audit.events_of(EventKind.GRANT_OK)]
        return SideResult(
            calls=calls,
            calls_ok=self.ok,
            failures=dict(self.failures),
            refresh_grants=self.audit.grants.get("refresh_token", 0),
            refresh_failed=self.audit.refresh_failed,
            early_refreshes=early_refreshes(issued_at, ttl),
            reuse_detections=self.audit.reuse_detections,
            chain_alive=self.chain_alive(),
            seconds=self.seconds,
            longest_cycle=self.longest_cycle,
        )


@dataclasses.dataclass(frozen=True)
class _Login:
    """A side's starting point: its server, its client and the tokens of the headless login."""

    server: StrictAuthServer
    client_id: str
    tokens: TokenSet
    refresh_token: str
    key: ChainKey


def _log_in(server: StrictAuthServer, store: TokenStore, http: requests.Session) -> _Login:
    auth = login(server, store, session=http)
    record = auth.store.load(auth.key)
    tokens = record.tokens if record is not None else None
    if tokens is None or tokens.refresh_token is None:
        raise DemoError("the login gave no refresh token")
    return _Login(server, auth.key.client_id, tokens, tokens.refresh_token, auth.key)


def run_load(options: DemoOptions, workdir: Path, say: Say) -> Dict[str, SideResult]:
    ttl = options.token_ttl
    lifetime = client_lifetime(ttl)
    store_dir = workdir / "tokens"
    with (
        StrictAuthServer(access_token_ttl=ttl) as naive_server,
        StrictAuthServer(access_token_ttl=ttl) as our_server,
        loopback_session(2) as http,
    ):
        naive = _log_in(naive_server, MemoryTokenStore(), http)
        ours = _log_in(our_server, FileTokenStore(store_dir), http)
        expiry = time.time() + lifetime + EXPIRY_MARGIN
        say("logged in to both servers: authorization code + PKCE, consent given by a headless handler")
        sides = {
            NAIVE: _Side(NAIVE, naive_server, naive.refresh_token),
            OURS: _Side(OURS, our_server, ours.refresh_token),
        }
        configs = _naive_configs(options, naive) + _our_configs(options, our_server, store_dir)
        calls = options.cycles * options.processes * options.threads * options.calls

        def wait_for_expiry(expiry: float, cycle: int) -> None:
            _wait_for_expiry(expiry, cycle, options.cycles, say)

        def record_cycle(by_side: Dict[str, List[CycleReport]]) -> None:
            for name in SIDES:
                say(_record_cycle(sides[name], by_side[name]))

        def results() -> Dict[str, SideResult]:
            return {name: sides[name].result(calls, ttl) for name in SIDES}

        return run_cycles(
            configs,
            sides=SIDES,
            cycles=options.cycles,
            expiry=expiry,
            lifetime=lifetime,
            started=f"started {len(configs)} worker processes (spawn)",
            say=say,
            wait_for_expiry=wait_for_expiry,
            record_cycle=record_cycle,
            results=results,
        )


def run_cycles(
    configs: List[WorkerConfig],
    *,
    sides: Tuple[str, ...],
    cycles: int,
    expiry: float,
    lifetime: float,
    started: str,
    say: Say,
    wait_for_expiry: Callable[[float, int], None],
    record_cycle: Callable[[Dict[str, List[CycleReport]]], None],
    results: Callable[[], T],
) -> T:
    """Start one worker per config (then say ``started``) and take them through ``cycles`` real
    expiries: wait for the tokens to expire (at ``expiry``, then ``lifetime`` after each cycle),
    release every process at once, and ``record_cycle`` the cycle's reports by side. ``results()``
    is read before the workers may close their sessions."""
    barrier, reports, processes = start_workers(configs)
    say(started)
    finished = False
    try:
        for cycle in range(1, cycles + 1):
            wait_for_expiry(expiry, cycle)
            barrier.wait(BARRIER_TIMEOUT)  # every process released at once
            barrier.wait(BARRIER_TIMEOUT)  # every call of the cycle made
            by_side = _collect(reports, len(configs) // len(sides), sides)
            expiry = time.time() + lifetime + EXPIRY_MARGIN
            record_cycle(by_side)
        outcome = results()
        barrier.wait(BARRIER_TIMEOUT)  # audit read: the workers may close their sessions now
        finished = True
    except threading.BrokenBarrierError:
        raise DemoError(_why_broken(reports)) from None
    finally:
        if not finished:
            barrier.abort()  # wake every worker still waiting, so that it ends
        _stop(processes)
    return outcome


def _naive_configs(options: DemoOptions, naive: _Login) -> List[WorkerConfig]:
    # Every naive session starts from the same token, as if each had read it from one token file.
    token = {
        "access_token": naive.tokens.access_token,
        "token_type": "Bearer",
        "refresh_token": naive.refresh_token,
        "expires_at": naive.tokens.expires_at,
    }
    return [
        WorkerConfig(
            NAIVE,
            index,
            naive.server.mcp_url,
            threads=options.threads,
            cycles=options.cycles,
            calls=options.calls,
            token_endpoint=naive.server.token_endpoint,
            client_id=naive.client_id,
            token=token,
        )
        for index in range(options.processes)
    ]


def _our_configs(options: DemoOptions, server: StrictAuthServer, store_dir: Path) -> List[WorkerConfig]:
    return [
        WorkerConfig(
            OURS,
            index,
            server.mcp_url,
            threads=options.threads,
            cycles=options.cycles,
            calls=options.calls,
            store_dir=str(store_dir),
        )
        for index in range(options.processes)
    ]


def _wait_for_expiry(expiry: float, cycle: int, cycles: int, say: Say) -> None:
    # Waiting out a real token lifetime is the point of the cycle, not a way to line threads up.
    left = expiry - time.time()
    say(f"cycle {cycle}/{cycles}: waiting {max(left, 0.0):.1f} s for the access tokens to expire, then all at once")
    if left > 0:
        time.sleep(left)


def _collect(
    reports: Queue[CycleReport], processes: int, sides: Tuple[str, ...] = SIDES
) -> Dict[str, List[CycleReport]]:
    """One cycle's reports: ``processes`` per side, by side."""
    by_side: Dict[str, List[CycleReport]] = {name: [] for name in sides}
    for _ in range(processes * len(sides)):
        try:
            report = reports.get(timeout=REPORT_TIMEOUT)
        except queue.Empty:
            raise DemoError("a worker process stopped reporting") from None
        if report.error is not None:
            raise DemoError(f"a {report.side} worker failed: {report.error}")
        by_side[report.side].append(report)
    return by_side


def _record_cycle(side: _Side, reports: List[CycleReport]) -> str:
    """Add one cycle to the side's totals and describe the cycle in one progress line."""
    ok, failed, before = side.add(reports)
    grants = side.audit.grants.get("refresh_token", 0) - before.grants.get("refresh_token", 0)
    reuse = side.audit.reuse_detections - before.reuse_detections
    chain = "alive" if side.chain_alive() else "REVOKED"
    return (
        f"  {side.name:<13}  {ok:>4}/{ok + failed} calls OK   {grants:>3} refresh grant(s)   "
        f"{reuse} reuse detection(s)   chain {chain}"
    )


def _why_broken(reports: Queue[CycleReport]) -> str:
    errors = []
    while True:
        try:
            report = reports.get(timeout=1.0)
        except queue.Empty:
            break
        if report.error is not None:
            errors.append(f"a {report.side} worker failed: {report.error}")
    return "; ".join(errors) or "a worker process stopped (the cycle barrier broke)"


def _stop(processes: List[SpawnProcess]) -> None:
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def start_workers(
    configs: List[WorkerConfig],
) -> Tuple[Barrier, Queue[CycleReport], List[SpawnProcess]]:
    """One spawned worker per config, all started; the barrier (one party more, for the coordinator)
    that starts each cycle's calls at once, and the queue their reports come back on."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(configs) + 1)
    reports: Queue[CycleReport] = context.Queue()
    processes = [
        context.Process(target=worker_main, args=(config, barrier, reports), daemon=True) for config in configs
    ]
    for process in processes:
        process.start()
    return barrier, reports, processes
