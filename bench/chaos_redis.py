"""Chaos run on the Redis store, over simulated hosts (issue 11): ``python -m bench.chaos --store redis``.

One ``redis-server`` (append-only, fsync always: ``mcp_sync_auth.testing.RedisServer``); ``--hosts``
simulated hosts, each with folders of its own (HOME, caches, temp) and its own link to Redis (a
``bench/forwarder.py`` loopback forwarder the driver can cut or freeze). The run is split into
**lanes** so that many expiry events fit in little time: a lane is one refresh chain with its own
``StrictAuthServer`` (rotation, reuse detection), its own clock and its own expiry events, refreshed
by one worker process per host (``bench/chaos_worker.py`` in its Redis mode: its store goes through
its host's link, with a short lease). A killed holder keeps its chain off limits until the grant's
deadline (``Timeouts.grant_total``, 21 s here); the other lanes go on meanwhile.

Faults, at random, each counted in the report:

- kills at the fault points (``before-grant``, ``after-grant-before-write``, ``during-write``: the
  commit is in Redis, its writer dies before hearing back), a refused in-flight mark (``reserve``),
  a failed commit (``write``), a SIGINT during the grant, and random SIGKILLs;
- SIGSTOP freezes of a worker: short ones (less than the lease) and long ones (past the grant's
  deadline; half of them aimed at a worker with a grant in flight);
- cuts and freezes of one host's link (restored later; a fifth of them outlast the grant's deadline);
- hard Redis restarts (SIGKILL, then a start from the append-only file);
- token endpoint faults: all of ``mcp_sync_auth.testing.Fault``.

The verdict is ``bench/chaos_redis_replay.py``'s, from the merged event log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import redis

import mcp_sync_auth
from mcp_sync_auth import MCPAuth, RedisTokenStore, Timeouts
from mcp_sync_auth._util.redact import fingerprint
from mcp_sync_auth.testing import Fault, RedisServer, StrictAuthServer

from .chaos_driver import EXPIRY_KINDS, ChaosDriver, chain_alive, expire, is_resolved, replay_kept, run_in_folder
from .chaos_redis_replay import RedisReplay
from .chaos_worker import Counters, FileClock, machine
from .forwarder import Forwarder

KILL_POINTS = ("before-grant", "after-grant-before-write", "during-write")
WORKER_FAULTS = (*KILL_POINTS, "reserve", "write", "interrupt-during-grant")
# A full disk or a failed write lets the incarnation go on: not certain, or nothing else would happen.
_FORCED_CHANCE = {"reserve": 0.5, "write": 0.5}
FAULTS = tuple(Fault)
MONKEY = ("random-kill", "freeze-short", "freeze-long", "link-cut", "link-freeze", "redis-restart")


@dataclasses.dataclass
class RedisChaosConfig:
    hosts: int = 3
    lanes: int = 8  # chains refreshed in parallel, each with its own server, clock and expiry events
    per_host: int = 1  # worker processes per host and lane
    threads: int = 3
    expiries: int = 500  # in all, over every lane
    ttl: float = 20.0
    lease: float = 3.0
    timeouts: tuple[float, float, float] = (0.5, 0.5, 5.0)  # connect, read, grant read: a 21 s grant deadline
    lock_timeout: float = 60.0
    fault_delay: float = 1.5  # SLOW_AFTER waits this (a grant waits for it); DRIP_AFTER sends a byte per this
    fault_chance: float = 0.12  # per expiry event, one token endpoint fault
    armed_share: float = 0.3  # share of worker incarnations armed with one fault point
    point_chance: float = 0.25
    monkey_interval: float = 0.8  # mean seconds between the driver's faults (kills, freezes, links, restarts)
    monkey_weights: tuple[float, ...] = (3.0, 2.0, 1.0, 1.5, 1.5, 0.5)  # in the order of MONKEY
    short_outage: tuple[float, float] = (0.3, 3.0)
    long_share: float = 0.2  # share of link outages that outlast the grant's deadline
    dwell: tuple[float, float] = (0.1, 0.3)
    pace: float = 0.05
    expiry_timeout: float = 120.0
    seed: int = 0
    forced: bool = True  # the first faults of each kind are scheduled, so that each happens whatever the seed

    @classmethod
    def short(cls, **overrides: Any) -> RedisChaosConfig:
        return cls(**{"lanes": 3, "expiries": 36, "fault_chance": 0.2, "monkey_interval": 1.5, **overrides})

    @property
    def grant_deadline(self) -> float:
        return Timeouts(*self.timeouts).grant_total


class Host:
    """A simulated host: folders of its own and a link of its own to Redis."""

    def __init__(self, index: int, root: Path, target: tuple[str, int]) -> None:
        self.index = index
        self.root = root / f"host-{index}"
        for sub in ("home", "cache", "tmp"):
            (self.root / sub).mkdir(parents=True)
        self.forwarder = Forwarder(target, name=f"host-{index}")
        self.url = f"redis://127.0.0.1:{self.forwarder.port}/0"
        self.out = False  # a cut or freeze in progress

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if not k.startswith("MCP_SYNC_AUTH_")}
        env.update(
            HOME=str(self.root / "home"), XDG_CACHE_HOME=str(self.root / "cache"), TMPDIR=str(self.root / "tmp"),
            MCP_SYNC_AUTH_HOME=str(self.root / "cache" / "mcp-sync-auth"), MCP_SYNC_AUTH_STORE=self.url,
        )
        return env


@dataclasses.dataclass
class Lane:
    index: int
    server: Any = None
    client_id: str = ""
    clock: Any = None
    auth: Any = None
    chains: int = 0
    relogin_wanted: threading.Event = dataclasses.field(default_factory=threading.Event)
    max_generation: int = 0


class RedisChaos(ChaosDriver):
    forced_chance = _FORCED_CHANCE
    worker_faults = WORKER_FAULTS
    cell_files = ("counters", "busy")
    thaw_final_kills = True

    def __init__(self, config: RedisChaosConfig, directory: Path, progress: bool = False) -> None:
        super().__init__(config, directory, progress)
        self.config: RedisChaosConfig = config
        self.forced_plan = WORKER_FAULTS if config.forced else ()
        self.in_grant: dict[int, int] = {}  # pid -> slot, between its reserve and the end of its grant
        self.frozen: dict[int, float] = {}  # pid -> when it was last thawed or frozen (for the hang check)
        self.next_expiry = 0
        self.forced_faults: list[Fault] = list(FAULTS) if config.forced else []  # one of each, first
        self.redis_busy = False
        self.busy: list[tuple[int, Counters]] = []

    # -- bookkeeping ---------------------------------------------------------------------------

    def lane_of(self, slot: int) -> int:
        return slot // (self.config.hosts * self.config.per_host)

    def host_of(self, slot: int) -> int:
        return (slot // self.config.per_host) % self.config.hosts

    def where(self, slot: int) -> dict[str, Any]:
        return {"lane": self.lane_of(slot), "host": self.host_of(slot)}

    def take(self, parsed: list[dict[str, Any]]) -> None:
        for event in parsed:
            slot = event["slot"]
            event.update(self.where(slot))
            self.events.append(event)
            kind, pid = event["ev"], event["pid"]
            if kind == "start":
                self.started.add(slot)
            elif kind == "disk-full":
                self.points_hit.add("reserve")
            elif kind == "write-failed" and self.plans.get(slot, "").startswith("write"):
                self.points_hit.add("write")
            elif kind == "reserved":
                self.in_grant[pid] = slot
            elif kind in ("saved", "grant-error", "write-failed"):
                self.in_grant.pop(pid, None)
            if (kind == "grant-error" and event.get("code") == "invalid_grant") or (
                kind == "fail" and event.get("kind") in ("RefreshChainRevoked", "AuthorizationRequired")
            ):
                self.lanes[event["lane"]].relogin_wanted.set()

    # -- chains --------------------------------------------------------------------------------

    def login(self, lane: Lane) -> None:
        tokens = lane.server.mint_tokens(lane.client_id)
        while not self.stop.is_set():
            try:
                lane.auth.save_token(tokens)
                break
            except mcp_sync_auth.TokenStoreError:  # Redis restarting: try again
                self.stop.wait(0.2)
        lane.chains += 1
        self.note("login", lane=lane.index, chain=lane.chains, fp=fingerprint(tokens["refresh_token"]))

    def stored(self, lane: Lane) -> Any:
        try:
            return self.store.load(lane.auth.key)
        except mcp_sync_auth.TokenStoreError:
            return None

    def relogin_loop(self, lane: Lane) -> None:
        while not self.stop.is_set():
            lane.relogin_wanted.wait(0.5)
            lane.relogin_wanted.clear()
            if self.stop.is_set():
                return
            record = self.stored(lane)
            if record is None and self.redis_busy:
                continue
            if not chain_alive(lane.server, record):
                self.login(lane)

    def generation_watch(self) -> None:
        """Each lane's stored generation, read straight from Redis: it must never go back."""
        names = {lane.index: self.store._name(lane.auth.key, "record") for lane in self.lanes}
        while not self.stop.wait(0.1):
            for lane in self.lanes:
                try:
                    value = self.direct.hget(names[lane.index], "generation")
                except redis.RedisError:
                    continue
                if value is None:
                    continue
                generation = int(value)
                if generation < lane.max_generation:
                    self.note("generation-back", lane=lane.index, was=lane.max_generation, now=generation)
                lane.max_generation = max(lane.max_generation, generation)

    # -- workers -------------------------------------------------------------------------------

    def worker_env(self, slot: int, base: dict[str, str]) -> dict[str, str]:
        return self.hosts[self.host_of(slot)].env(base)

    def worker_cwd(self, slot: int) -> Optional[str]:
        return str(self.hosts[self.host_of(slot)].root / "home")

    def worker_config(self, slot: int, incarnation: int, tag: str) -> dict[str, Any]:
        config, lane, host = self.config, self.lanes[self.lane_of(slot)], self.hosts[self.host_of(slot)]
        return {
            "slot": slot, "incarnation": incarnation, "store": "redis",
            "mcp_url": lane.server.mcp_url, "token_endpoint": lane.server.token_endpoint,
            "client_id": lane.client_id, "store_url": host.url, "direct_url": self.redis.url,
            "lease": config.lease, "timeout": list(config.timeouts), "lock_timeout": config.lock_timeout,
            "clock_file": str(self.directory / f"clock-{lane.index}"),
            "counters_file": str(self.directory / f"counters-{tag}"),
            "busy_file": str(self.directory / f"busy-{tag}"),
            "event_fd": self.write_fd, "threads": config.threads, "pace": config.pace,
        }

    def launched(self, process: subprocess.Popen[bytes], cells: dict[str, Counters]) -> None:
        self.busy.append((process.pid, cells["busy"]))

    def ended(self, process: subprocess.Popen[bytes]) -> None:
        self.in_grant.pop(process.pid, None)

    # -- the driver's faults -------------------------------------------------------------------

    def live_slots(self) -> list[int]:
        with self.guard:
            return [s for s, p in self.procs.items() if p is not None and p.poll() is None]

    def freeze(self, long: bool) -> bool:
        config = self.config
        with self.guard:
            holders = [s for s in self.in_grant.values() if self.procs.get(s) is not None]
        slots = self.live_slots()
        if long and holders and self.rng.random() < 0.5:
            slot = self.rng.choice(holders)
        elif slots:
            slot = self.rng.choice(slots)
        else:
            return False
        seconds = (self.rng.uniform(config.grant_deadline + 1, config.grant_deadline + 4) if long
                   else self.rng.uniform(0.2, config.lease * 0.6))
        with self.guard:
            process = self.procs.get(slot)
            if process is None or process.poll() is not None or process.pid in self.frozen:
                return False
            pid = process.pid
            self.frozen[pid] = float("inf")
            os.kill(pid, signal.SIGSTOP)
            self.events.append({"t": time.monotonic(), "ev": "freeze", "slot": -1, "pid": 0, "of": pid,
                                "lane": self.lane_of(slot), "host": self.host_of(slot), "seconds": seconds,
                                "long": long})

        def thaw() -> None:
            self.stop.wait(seconds)
            with self.guard:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
                self.frozen[pid] = time.monotonic()
                self.events.append({"t": time.monotonic(), "ev": "thaw", "slot": -1, "pid": 0, "of": pid})

        threading.Thread(target=thaw, daemon=True).start()
        return True

    def link_fault(self, kind: str) -> bool:
        config = self.config
        free = [h for h in self.hosts if not h.out]
        if not free:
            return False
        host = self.rng.choice(free)
        long = self.rng.random() < config.long_share
        seconds = (self.rng.uniform(config.grant_deadline + 1, config.grant_deadline + 3) if long
                   else self.rng.uniform(*config.short_outage))
        host.out = True
        self.note(kind, host=host.index, seconds=seconds, long=long)
        (host.forwarder.cut if kind == "link-cut" else host.forwarder.freeze)()

        def restore() -> None:
            self.stop.wait(seconds)
            (host.forwarder.restore if kind == "link-cut" else host.forwarder.thaw)()
            self.note("link-restored", host=host.index, kind=kind)
            host.out = False

        threading.Thread(target=restore, daemon=True).start()
        return True

    def redis_restart(self) -> bool:
        if self.redis_busy:
            return False
        self.redis_busy = True
        self.note("redis-down")
        try:
            self.redis.restart(hard=True)
        finally:
            self.note("redis-up")
            self.redis_busy = False
        return True

    def monkey(self) -> None:
        config = self.config
        forced = list(MONKEY) if config.forced else []  # each kind once first, until it happened
        while not self.stop.wait(self.rng.expovariate(1.0 / config.monkey_interval)):
            from_forced = bool(forced)
            kind = forced.pop(0) if forced else self.rng.choices(MONKEY, weights=config.monkey_weights)[0]
            if kind == "random-kill":
                slots = self.live_slots()
                done = bool(slots)
                if slots:
                    self.kill(self.rng.choice(slots), "driver")
            elif kind in ("freeze-short", "freeze-long"):
                done = self.freeze(kind == "freeze-long")
            elif kind in ("link-cut", "link-freeze"):
                done = self.link_fault(kind)
            else:
                done = self.redis_restart()
            if not done and from_forced:
                forced.insert(0, kind)  # try again next time: every kind happens at least once

    def hang_watch(self) -> None:
        """A call of a live, unfrozen process that has run longer than any bound of the library: a hang."""
        config = self.config
        limit = config.lock_timeout + config.grant_deadline + 30.0
        reported: set[tuple[int, int]] = set()
        while not self.stop.wait(2.0):
            now = time.monotonic()
            with self.guard:
                live = {p.pid for p in self.procs.values() if p is not None and p.poll() is None}
                watched = [(pid, cells) for pid, cells in self.busy if pid in live]
                frozen = dict(self.frozen)
            for pid, cells in watched:
                if now - frozen.get(pid, 0.0) < limit:  # frozen recently (or now): its calls were stopped too
                    continue
                for cell in range(cells.cells):
                    began = struct_get(cells, cell) / 1000.0
                    if began and now - began > limit and (pid, cell) not in reported:
                        reported.add((pid, cell))
                        self.note("hang", of=pid, cell=cell, seconds=now - began)

    # -- expiry events -------------------------------------------------------------------------

    def drive(self, lane: Lane) -> None:
        config = self.config
        local = 0
        while not self.stop.is_set():
            with self.guard:
                if self.next_expiry >= config.expiries:
                    return
                index = self.next_expiry
                self.next_expiry += 1
            record = self.stored(lane)
            generation = record.generation if record is not None else 0
            fault = self.rng.choice(FAULTS) if self.rng.random() < config.fault_chance else None
            forced = False
            with self.guard:
                if local >= 1 and self.forced_faults:  # each lane's first event is clean
                    fault, forced = self.forced_faults.pop(0), True
            local += 1
            kind = self.rng.choice(EXPIRY_KINDS)
            self.note("expiry", lane=lane.index, index=index, kind=kind, fault=fault.name if fault else None)
            if fault is not None:
                lane.server.inject_fault(fault)
            began = time.monotonic()
            expire(kind, clock=lane.clock, server=lane.server, ttl=config.ttl)
            deadline = began + config.expiry_timeout
            ok = False
            while time.monotonic() < deadline and not self.stop.is_set():
                if is_resolved(self.stored(lane), generation, clock=lane.clock, server=lane.server):
                    ok = True
                    break
                self.stop.wait(0.05)
            self.note("resolved" if ok else "stuck", lane=lane.index, index=index, seconds=time.monotonic() - began)
            if self.progress and (index + 1) % 50 == 0:
                print(f"  ... {index + 1} expiry events, {time.monotonic() - self.began:.0f} s", file=sys.stderr,
                      flush=True)
            if lane.server.clear_faults():
                self.note("fault-unused", lane=lane.index, index=index)
                if forced:
                    with self.guard:
                        self.forced_faults.insert(0, fault)  # not met: the next event gets it
            self.stop.wait(self.rng.uniform(*config.dwell))

    def drive_lanes(self) -> None:
        drivers = [threading.Thread(target=self.drive, args=(lane,), daemon=True) for lane in self.lanes]
        for thread in drivers:
            thread.start()
        for thread in drivers:
            thread.join()

    # -- the run -------------------------------------------------------------------------------

    def all_started(self) -> None:
        self.note("all-started")

    def run(self) -> dict[str, Any]:
        config = self.config
        self.began = began = time.monotonic()
        machine_before = machine()
        with contextlib.ExitStack() as stack:
            self.redis = stack.enter_context(RedisServer())
            self.direct = redis.Redis.from_url(self.redis.url, socket_timeout=2.0, socket_connect_timeout=2.0)
            self.store = RedisTokenStore.from_url(self.redis.url, lease=config.lease)
            stack.callback(self.store.close)
            self.hosts = [Host(i, self.directory, (self.redis.host, self.redis.port)) for i in range(config.hosts)]
            for host in self.hosts:
                stack.callback(host.forwarder.close)
            self.lanes = [Lane(i) for i in range(config.lanes)]
            for lane in self.lanes:
                lane.clock = FileClock.create(str(self.directory / f"clock-{lane.index}"))
                lane.server = stack.enter_context(
                    StrictAuthServer(access_token_ttl=config.ttl, clock=lane.clock, fault_delay=config.fault_delay)
                )
                lane.client_id = lane.server.register_client()
                lane.auth = MCPAuth(lane.server.mcp_url, store=self.store, client_id=lane.client_id,
                                    token_endpoint=lane.server.token_endpoint, clock=lane.clock,
                                    timeout=Timeouts(*config.timeouts), lock_timeout=config.lock_timeout)
                self.login(lane)
            helpers: list[Callable[[], None]] = [self.monkey, self.hang_watch, self.generation_watch]
            helpers += [functools.partial(self.relogin_loop, lane) for lane in self.lanes]
            self.run_workers(config.lanes * config.hosts * config.per_host, start_timeout=180, helpers=helpers,
                             helper_timeout=60, drive=self.drive_lanes)
            servers = {}
            for lane in self.lanes:
                audit = lane.server.audit
                servers[lane.index] = {
                    "refresh_grants": audit.grants.get("refresh_token", 0),
                    "refresh_ok": audit.refresh_ok,
                    "reuse_detections": audit.reuse_detections,
                    "revocations": audit.revocations,
                    "faults": dict(audit.faults),
                    "chains_alive": [c.alive for c in lane.server.chains() if c.client_id == lane.client_id],
                }
            final_ok = all(chain_alive(lane.server, self.stored(lane)) or self.stored(lane) is not None
                           for lane in self.lanes)
        outcome = {"servers": servers, "calls_ok": sum(c.total() for c in self.counters), "final_store_ok": final_ok}
        return self.keep(outcome, began=began, machine_before=machine_before, analyse=analyse)


def struct_get(cells: Counters, cell: int) -> int:
    import struct  # noqa: PLC0415 (tiny helper)

    return int(struct.unpack_from("q", cells._map, 8 * cell)[0])


def analyse(config: RedisChaosConfig, events: list[dict[str, Any]], **outcome: Any) -> dict[str, Any]:
    replay = RedisReplay(grant_deadline=config.grant_deadline, lease=config.lease)
    for event in events:
        replay.feed(event)
    return replay.summary(config=dataclasses.asdict(config), **outcome)


def run(config: RedisChaosConfig, directory: Optional[Path] = None, progress: bool = False) -> dict[str, Any]:
    return run_in_folder(lambda folder: RedisChaos(config, folder, progress), directory, prefix="chaos-redis-")


def replay_folder(folder: Path) -> dict[str, Any]:
    return replay_kept(folder, _judge_kept)


def _judge_kept(raw: dict[str, Any], events: list[dict[str, Any]], outcome: dict[str, Any]) -> dict[str, Any]:
    for name in ("timeouts", "monkey_weights", "short_outage", "dwell"):
        raw[name] = tuple(raw[name])
    outcome["servers"] = {int(k): v for k, v in outcome["servers"].items()}
    return analyse(RedisChaosConfig(**raw), events, **outcome)
