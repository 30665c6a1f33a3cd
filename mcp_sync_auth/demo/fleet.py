"""``mcp-sync-auth demo --hosts N``: the fleet case, the naive way next to ours.

N simulated hosts, each a couple of spawned worker processes with a HOME, cache and temporary folder
of its own (no file shared between hosts), all against one :class:`StrictAuthServer` per phase.
Every worker runs the same code, ``MCPAuth(url)`` without ``store=``: only its host's environment
says where the tokens are.

1. naive: the token file copied to every host (what people do without a shared store). Each host's
   processes coalesce through their folder, but the hosts do not know of each other: at the first
   expiry every host sends the same refresh token, and the server revokes the chain.
2. ours: the same hosts with ``MCP_SYNC_AUTH_STORE=redis://...``: one grant per expiry, fleet-wide.

Redis is a redis-server the demo starts (from PATH) and stops, or the one ``--store`` names; there
the demo writes only its own chain and client registration, and deletes them at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, TextIO, Tuple

from .._chain.keys import RegistrationKey
from .._stores.file import FileTokenStore
from .._stores.redis import RedisTokenStore
from .._stores.redis.client import redis_module
from ..errors import ConfigurationError, MissingExtra, TokenStoreError
from ..testing import StrictAuthServer
from ..testing.redis_server import RedisNotAvailable, RedisServer, find_redis_server
from .coordinator import DemoError, Say, _log_in, _Side, run_cycles
from .options import DemoOptions, FleetOptions
from .protocol import NAIVE, OURS, CycleReport, WorkerConfig, loopback_session
from .report import SideResult, is_clean
from .timing import EXPIRY_MARGIN, client_lifetime

if TYPE_CHECKING:
    pass

__all__ = ["DemoUnavailable", "FleetPhase", "run_fleet_demo"]

NAIVE_CYCLES = 1  # one expiry is all the naive way survives
INSTALL_REDIS = (
    "demo --hosts needs redis-server on PATH: install it (apt-get install redis-server, or brew install redis), "
    "or use a running Redis with --store redis://HOST:PORT/0"
)


class DemoUnavailable(ConfigurationError):
    """The fleet demo cannot run here as asked (no redis-server to start and no ``--store``): a
    configuration error, which the command line reports as a usage error."""


@dataclasses.dataclass(frozen=True)
class FleetPhase:
    """One phase's outcome: the side's totals, and its refresh grants and reuse detections per expiry."""

    side: SideResult
    grants_per_expiry: List[int]
    reuse_per_expiry: List[int]

    def to_json(self) -> Dict[str, object]:
        document: Dict[str, object] = dict(self.side.to_json())
        document.update(
            expiries=len(self.grants_per_expiry),
            grants_per_expiry=list(self.grants_per_expiry),
            reuse_per_expiry=list(self.reuse_per_expiry),
        )
        return document


@dataclasses.dataclass(frozen=True)
class _Host:
    name: str
    root: Path

    def env(self, store_url: Optional[str]) -> Dict[str, Optional[str]]:
        """This host's environment: its own folders, and the store only when ``store_url`` says."""
        home, cache, temp = self.root / "home", self.root / "cache", self.root / "tmp"
        return {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(cache),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "TMPDIR": str(temp),
            "TEMP": str(temp),
            "TMP": str(temp),
            "MCP_SYNC_AUTH_HOME": None,  # the default folder: $XDG_CACHE_HOME/mcp-sync-auth
            "MCP_SYNC_AUTH_STORE": store_url,
        }

    @property
    def token_folder(self) -> Path:
        return self.root / "cache" / "mcp-sync-auth"


def _make_hosts(workdir: Path, count: int) -> List[_Host]:
    hosts = [_Host(f"host-{index}", workdir / f"host-{index}") for index in range(count)]
    for host in hosts:
        for folder in ("home", "cache", "tmp"):
            (host.root / folder).mkdir(parents=True)
    return hosts


def _intro(options: FleetOptions) -> List[str]:
    demo = options.demo
    return [
        f"mcp-sync-auth demo --hosts {options.hosts}: {options.hosts} hosts x {demo.processes} processes x "
        f"{demo.threads} threads, {demo.calls} echo calls per thread per expiry, access tokens live "
        f"{demo.token_ttl:g} s",
        "  each host has its own HOME and cache folder (a temporary folder each; no file is shared), and",
        "  every process runs the same code, MCPAuth(url) without store=: only its environment differs.",
        "  a strict server on 127.0.0.1: refresh tokens rotate on every use; a reused one revokes the chain.",
    ]


@contextlib.contextmanager
def _redis(store: Optional[str], say: Say) -> Iterator[str]:
    """The Redis URL to use: ``store``, else a redis-server started here (and stopped at the end)."""
    if store is not None:
        yield store
        return
    try:
        server = RedisServer(appendonly=False)
        server.start()
    except RedisNotAvailable as exc:
        raise DemoError(f"redis-server would not start: {exc}") from None
    try:
        say(f"redis: started redis-server on 127.0.0.1:{server.port} (stopped at the end)")
        yield server.url
    finally:
        server.close()


def run_fleet_demo(options: FleetOptions, out: Optional[TextIO] = None) -> int:
    """The fleet demo: progress, the table, the verdict and a ``RESULT {json}`` line; 0 if our
    phase is clean. Raises MissingExtra without redis-py and DemoUnavailable without a Redis."""
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    redis_module()  # MissingExtra, naming the extra, before anything starts
    if options.store is None and find_redis_server() is None:
        raise DemoUnavailable(INSTALL_REDIS)
    started = time.perf_counter()
    for line in _intro(options):
        say(line)
    workdir = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-demo-"))
    try:
        with _redis(options.store, say) as url, _reachable_store(url) as store:
            if options.store is not None:
                say(f"redis: using the one --store names, {store.location}")
            naive = _naive_phase(options, workdir / "naive", say)
            ours = _our_phase(options, workdir / "ours", url, store, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    results = {NAIVE: naive, OURS: ours}
    say("")
    say(_table(results))
    say("")
    for line in _verdict(results, options):
        say(line)
    say(f"finished in {seconds:.1f} s; temporary folders removed" + ("" if options.store else ", redis-server stopped"))
    say(_result_line(results, options, seconds))
    return 0 if _is_clean(ours, options.demo.cycles) else 1


def _naive_phase(options: FleetOptions, workdir: Path, say: Say) -> FleetPhase:
    demo = options.demo
    say("")
    say(f"1. {NAIVE}: the token file copied to every host (no shared store: each host refreshes on its own)")
    hosts = _make_hosts(workdir, options.hosts)
    with StrictAuthServer(access_token_ttl=demo.token_ttl) as server, loopback_session(2) as http:
        first = hosts[0].token_folder
        login = _log_in(server, FileTokenStore(first), http)
        expiry = time.time() + client_lifetime(demo.token_ttl) + EXPIRY_MARGIN
        for host in hosts[1:]:
            shutil.copytree(first, host.token_folder)  # scp ~/.cache/mcp-sync-auth host-N:.cache/
        say(f"   logged in on {hosts[0].name}, then copied its token folder to the {len(hosts) - 1} other hosts")
        configs = _configs(NAIVE, server, hosts, demo=demo, cycles=NAIVE_CYCLES, store_url=None)
        side = _Side(NAIVE, server, login.refresh_token)
        return _run_phase(side, configs, cycles=NAIVE_CYCLES, expiry=expiry, options=options, say=say)


@contextlib.contextmanager
def _reachable_store(url: str) -> Iterator[RedisTokenStore]:
    """The coordinator's own store on ``url``, once it has answered (before anything else runs)."""
    try:
        store = RedisTokenStore.from_url(url)
    except MissingExtra:
        raise
    except ConfigurationError as exc:  # a URL redis-py cannot read
        raise DemoUnavailable(f"demo --store: {exc}") from None
    try:
        store.load_registration(RegistrationKey("https://mcp-sync-auth-demo.invalid"))  # one GET: is it there?
    except TokenStoreError as exc:
        store.close()
        raise DemoError(f"cannot use that Redis: {exc}") from None
    try:
        yield store
    finally:
        store.close()


def _our_phase(options: FleetOptions, workdir: Path, url: str, store: RedisTokenStore, say: Say) -> FleetPhase:
    demo = options.demo
    say("")
    say(f"2. {OURS}: the same hosts, MCP_SYNC_AUTH_STORE=redis://... on every one (one chain, one lease)")
    hosts = _make_hosts(workdir, options.hosts)
    with StrictAuthServer(access_token_ttl=demo.token_ttl) as server, loopback_session(2) as http:
        login = _log_in(server, store, http)
        expiry = time.time() + client_lifetime(demo.token_ttl) + EXPIRY_MARGIN
        say(f"   logged in once, into the Redis at {store.location}; no host has a token file")
        try:
            configs = _configs(OURS, server, hosts, demo=demo, cycles=demo.cycles, store_url=url)
            side = _Side(OURS, server, login.refresh_token)
            phase = _run_phase(side, configs, cycles=demo.cycles, expiry=expiry, options=options, say=say)
        finally:
            with contextlib.suppress(Exception):  # leave nothing of ours in someone's Redis
                store.delete(login.key)
                store.delete_registration(RegistrationKey(login.key.issuer))
    left = [path for host in hosts for path in host.root.rglob("*.json")]
    if left:
        raise DemoError(f"a host wrote a token file with the Redis store: {left[0]}")
    return phase


def _configs(
    side: str, server: StrictAuthServer, hosts: List[_Host], *, demo: DemoOptions, cycles: int, store_url: Optional[str]
) -> List[WorkerConfig]:
    return [
        WorkerConfig(
            side,
            number * demo.processes + index,
            server.mcp_url,
            threads=demo.threads,
            cycles=cycles,
            calls=demo.calls,
            env=host.env(store_url),
            store_from_environment=True,
        )
        for number, host in enumerate(hosts)
        for index in range(demo.processes)
    ]


def _run_phase(
    side: _Side, configs: List[WorkerConfig], *, cycles: int, expiry: float, options: FleetOptions, say: Say
) -> FleetPhase:
    """Start the phase's workers, take them through ``cycles`` real expiries (a cross-process
    barrier starts each one's calls on every host at once), and count what the server saw."""
    demo = options.demo
    grants: List[int] = []
    reuse: List[int] = []
    calls = cycles * len(configs) * demo.threads * demo.calls

    def wait_for_expiry(expiry: float, cycle: int) -> None:
        left = max(expiry - time.time(), 0.0)
        say(f"   expiry {cycle}/{cycles}: waiting {left:.1f} s for the tokens to expire, then all hosts at once")
        time.sleep(left)  # a real token lifetime: the point of the cycle, not a way to line threads up

    def record_cycle(by_side: Dict[str, List[CycleReport]]) -> None:
        cycle_reports = by_side[side.name]
        ok, failed, before = side.add(cycle_reports)
        grants.append(side.audit.grants.get("refresh_token", 0) - before.grants.get("refresh_token", 0))
        reuse.append(side.audit.reuse_detections - before.reuse_detections)
        say(_cycle_line(side, ok, failed, grants[-1], reuse[-1]))
        say(_per_host_line(cycle_reports, options))

    result = run_cycles(
        configs,
        sides=(side.name,),
        cycles=cycles,
        expiry=expiry,
        lifetime=client_lifetime(demo.token_ttl),
        started=f"   started {len(configs)} worker processes (spawn): {options.hosts} hosts x {demo.processes}",
        say=say,
        wait_for_expiry=wait_for_expiry,
        record_cycle=record_cycle,
        results=lambda: side.result(calls, demo.token_ttl),
    )
    return FleetPhase(result, grants, reuse)


def _cycle_line(side: _Side, ok: int, failed: int, grants: int, reuse: int) -> str:
    chain = "alive" if side.chain_alive() else "REVOKED"
    return (
        f"     {ok:>4}/{ok + failed} calls OK   {grants:>2} refresh grant(s)   {reuse} reuse detection(s)   "
        f"chain {chain}"
    )


def _per_host_line(reports: List[CycleReport], options: FleetOptions) -> str:
    per_host: Dict[int, Tuple[int, int]] = {}
    for report in reports:
        host = report.index // options.demo.processes
        ok, total = per_host.get(host, (0, 0))
        per_host[host] = (ok + report.ok, total + report.ok + sum(report.failures.values()))
    return "     per host: " + ", ".join(
        f"host-{host} {ok}/{total} OK" for host, (ok, total) in sorted(per_host.items())
    )


def _is_clean(ours: FleetPhase, cycles: int) -> bool:
    """Our promise across the fleet: what is_clean says (a grant at every expiry, none while the token
    before it was still fresh), and a grant at each expiry. A cycle that a loaded machine stretches
    past the token's fresh time legitimately needs a second one."""
    return is_clean(ours.side, cycles) and all(grants >= 1 for grants in ours.grants_per_expiry)


def _table(results: Dict[str, FleetPhase]) -> str:
    naive, ours = results[NAIVE], results[OURS]
    rows: List[Tuple[str, str, str]] = [
        ("", f"{NAIVE} (file per host)", f"{OURS} (Redis)"),
        ("expiries", str(len(naive.grants_per_expiry)), str(len(ours.grants_per_expiry))),
        ("refresh grants", str(naive.side.refresh_grants), str(ours.side.refresh_grants)),
        ("grants per expiry", _listed(naive.grants_per_expiry), _listed(ours.grants_per_expiry)),
        ("reuse detections", str(naive.side.reuse_detections), str(ours.side.reuse_detections)),
        ("calls OK", str(naive.side.calls_ok), str(ours.side.calls_ok)),
        ("calls failed", str(naive.side.calls_failed), str(ours.side.calls_failed)),
        ("chain alive", _yes_no(naive.side.chain_alive), _yes_no(ours.side.chain_alive)),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"  {label:<{widths[0]}}   {left:>{widths[1]}}   {right:>{widths[2]}}" for label, left, right in rows
    )


def _verdict(results: Dict[str, FleetPhase], options: FleetOptions) -> List[str]:
    naive, ours = results[NAIVE], results[OURS]
    cycles = options.demo.cycles
    lines = []
    if naive.side.chain_alive:
        lines.append(f"{NAIVE}: the chain survived this time (the hosts did not all refresh).")
    else:
        lines.append(
            f"{NAIVE}: at one expiry the {options.hosts} hosts each refreshed with the same refresh token "
            f"({naive.side.refresh_grants} grants sent);"
        )
        lines.append(
            f"  the server saw a used one come back ({naive.side.reuse_detections} reuse detection(s)) and revoked "
            f"the chain: {naive.side.calls_failed} of {naive.side.calls} calls failed, every host must log in again."
        )
    if _is_clean(ours, cycles):
        lines.append(
            f"{OURS}: exactly one refresh grant per expiry across {options.hosts} hosts ({ours.side.refresh_grants} "
            f"for {cycles}), no reuse, all {ours.side.calls} calls OK, the chain is alive."
        )
    else:
        lines.append(
            f"{OURS}: NOT CLEAN - grants per expiry {_listed(ours.grants_per_expiry)}, "
            f"{ours.side.reuse_detections} reuse detection(s), {ours.side.calls_failed} failed calls, chain "
            f"{'alive' if ours.side.chain_alive else 'revoked'}."
        )
    return lines


def _result_line(results: Dict[str, FleetPhase], options: FleetOptions, seconds: float) -> str:
    document = {
        "clean": _is_clean(results[OURS], options.demo.cycles),
        "options": dict(
            dataclasses.asdict(options.demo), hosts=options.hosts, redis="given" if options.store else "own"
        ),
        "seconds": round(seconds, 3),
        NAIVE: results[NAIVE].to_json(),
        OURS: results[OURS].to_json(),
    }
    return "RESULT " + json.dumps(document, sort_keys=True)


def _listed(numbers: List[int]) -> str:
    return " ".join(str(number) for number in numbers)


def _yes_no(alive: bool) -> str:
    return "yes" if alive else "no (revoked)"
