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
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import redis

import mcp_sync_auth
from mcp_sync_auth import MCPAuth, RedisTokenStore, Timeouts
from mcp_sync_auth._util.redact import fingerprint
from mcp_sync_auth.testing import Fault, RedisServer, StrictAuthServer

from .chaos_redis_replay import RedisReplay
from .chaos_worker import Counters, FileClock, machine
from .forwarder import Forwarder

WORKER = Path(__file__).resolve().with_name("chaos_worker.py")
KILL_POINTS = ("before-grant", "after-grant-before-write", "during-write")
WORKER_FAULTS = (*KILL_POINTS, "reserve", "write", "interrupt-during-grant")
# A full disk or a failed write lets the incarnation go on: not certain, or nothing else would happen.
_FORCED_CHANCE = {"reserve": 0.5, "write": 0.5}
FAULTS = tuple(Fault)
EXPIRY_KINDS = ("expired", "refresh-window", "revoked")
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


class RedisChaos:
    def __init__(self, config: RedisChaosConfig, directory: Path, progress: bool = False) -> None:
        self.config = config
        self.directory = directory
        self.progress = progress
        self.rng = random.Random(config.seed)
        self.guard = threading.Lock()
        self.changed = threading.Condition(self.guard)
        self.events: list[dict[str, Any]] = []
        self.procs: dict[int, Optional[subprocess.Popen[bytes]]] = {}
        self.killed_by_driver: dict[int, str] = {}
        self.plans: dict[int, str] = {}
        self.started: set[int] = set()
        self.points_hit: set[str] = set()
        self.in_grant: dict[int, int] = {}  # pid -> slot, between its reserve and the end of its grant
        self.frozen: dict[int, float] = {}  # pid -> when it was last thawed or frozen (for the hang check)
        self.running = True
        self.stop = threading.Event()
        self.next_expiry = 0
        self.forced_faults: list[Fault] = list(FAULTS) if config.forced else []  # one of each, first
        self.redis_busy = False
        self.busy: list[tuple[int, Counters]] = []
        self.read_fd, self.write_fd = os.pipe()

    # -- bookkeeping ---------------------------------------------------------------------------

    def note(self, event: str, **fields: Any) -> None:
        with self.changed:
            self.events.append({"t": time.monotonic(), "ev": event, "slot": -1, "pid": os.getpid(), **fields})
            self.changed.notify_all()

    def lane_of(self, slot: int) -> int:
        return slot // (self.config.hosts * self.config.per_host)

    def host_of(self, slot: int) -> int:
        return (slot // self.config.per_host) % self.config.hosts

    def read_events(self) -> None:
        pending = b""
        while True:
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            parsed = [json.loads(line) for line in lines if line]
            with self.changed:
                for event in parsed:
                    slot = event["slot"]
                    event["lane"], event["host"] = self.lane_of(slot), self.host_of(slot)
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
                self.changed.notify_all()

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

    def chain_alive(self, lane: Lane, record: Any) -> bool:
        if record is None or record.is_dead or record.tokens is None or not record.tokens.refresh_token:
            return False
        try:
            return bool(lane.server.is_chain_alive(record.tokens.refresh_token))
        except KeyError:
            return False

    def relogin_loop(self, lane: Lane) -> None:
        while not self.stop.is_set():
            lane.relogin_wanted.wait(0.5)
            lane.relogin_wanted.clear()
            if self.stop.is_set():
                return
            record = self.stored(lane)
            if record is None and self.redis_busy:
                continue
            if not self.chain_alive(lane, record):
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

    def plan(self, slot: int) -> str:
        if self.config.forced and slot < len(WORKER_FAULTS):
            forced = WORKER_FAULTS[slot]
            if forced not in self.points_hit:
                return f"{forced}:{_FORCED_CHANCE.get(forced, 1)}"
        if self.rng.random() < self.config.armed_share:
            return f"{self.rng.choice(WORKER_FAULTS)}:{self.config.point_chance}"
        return ""

    def supervise(self, slot: int) -> None:
        config, lane, host = self.config, self.lanes[self.lane_of(slot)], self.hosts[self.host_of(slot)]
        base = dict(os.environ)
        package_root = str(Path(mcp_sync_auth.__file__).resolve().parent.parent)
        base["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, base.get("PYTHONPATH", "")) if p)
        incarnation = 0
        while self.running:
            with self.guard:
                faultpoint = self.plan(slot)
                self.plans[slot] = faultpoint
            env = host.env(base)
            if faultpoint:
                env["MCP_SYNC_AUTH_FAULTPOINT"] = faultpoint
            tag = f"{slot}-{incarnation}"
            counters = Counters(str(self.directory / f"counters-{tag}"), config.threads, create=True)
            busy = Counters(str(self.directory / f"busy-{tag}"), config.threads, create=True)
            worker_config = {
                "slot": slot, "incarnation": incarnation, "store": "redis",
                "mcp_url": lane.server.mcp_url, "token_endpoint": lane.server.token_endpoint,
                "client_id": lane.client_id, "store_url": host.url, "direct_url": self.redis.url,
                "lease": config.lease, "timeout": list(config.timeouts), "lock_timeout": config.lock_timeout,
                "clock_file": str(self.directory / f"clock-{lane.index}"),
                "counters_file": str(self.directory / f"counters-{tag}"),
                "busy_file": str(self.directory / f"busy-{tag}"),
                "event_fd": self.write_fd, "threads": config.threads, "pace": config.pace,
            }
            with open(self.directory / f"stderr-{tag}", "wb") as stderr:
                process = subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(worker_config)], env=env, pass_fds=(self.write_fd,),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=str(host.root / "home"),
                )
            with self.guard:
                self.counters.append(counters)
                self.busy.append((process.pid, busy))
                self.procs[slot] = process
                self.killed_by_driver[slot] = ""
                if not self.running:
                    self.killed_by_driver[slot] = "final"
                    process.send_signal(signal.SIGKILL)
            returncode = process.wait()
            with self.guard:
                self.procs[slot] = None
                self.in_grant.pop(process.pid, None)
                by = self.killed_by_driver[slot] or _exit_cause(returncode)
                point = faultpoint.partition(":")[0]
                if by in ("self", "interrupt"):
                    self.points_hit.add(point)
            self.note("exit", of=process.pid, slot=slot, lane=lane.index, host=host.index, incarnation=incarnation,
                      rc=returncode, by=by, point=point)
            if by == "crash":
                tail = (self.directory / f"stderr-{tag}").read_bytes()[-2000:]
                self.note("anomaly", what=f"worker {slot} exited with {returncode}: {tail.decode(errors='replace')}")
            incarnation += 1

    def kill(self, slot: int, why: str) -> None:
        with self.guard:
            process = self.procs.get(slot)
            if process is None or process.poll() is not None:
                return
            self.killed_by_driver[slot] = why
            if why == "driver":
                self.events.append({"t": time.monotonic(), "ev": "random-kill", "slot": -1, "pid": 0,
                                    "of": process.pid, "lane": self.lane_of(slot), "host": self.host_of(slot)})
            process.send_signal(signal.SIGKILL)
            if why == "final":
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGCONT)

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

    def expire(self, lane: Lane, kind: str) -> None:
        if kind == "expired":
            lane.clock.advance(self.config.ttl + 1)
        elif kind == "refresh-window":
            lane.clock.advance(self.config.ttl * 0.85)
        else:
            lane.server.revoke_access_tokens()

    def resolved(self, lane: Lane, generation: int) -> bool:
        record = self.stored(lane)
        return (record is not None and record.generation > generation and self.chain_alive(lane, record)
                and record.tokens.is_fresh(lane.clock(), 60.0))

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
            self.expire(lane, kind)
            deadline = began + config.expiry_timeout
            ok = False
            while time.monotonic() < deadline and not self.stop.is_set():
                if self.resolved(lane, generation):
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

    # -- the run -------------------------------------------------------------------------------

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
            self.counters: list[Counters] = []
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
            slots = config.lanes * config.hosts * config.per_host
            reader = threading.Thread(target=self.read_events, daemon=True)
            supervisors = [threading.Thread(target=self.supervise, args=(s,), daemon=True) for s in range(slots)]
            reader.start()
            for thread in supervisors:
                thread.start()
            with self.changed:
                ready = self.changed.wait_for(lambda: len(self.started) == slots, timeout=180)
            if not ready:
                raise RuntimeError("the worker processes did not start in time")
            self.note("all-started")
            helpers = [threading.Thread(target=f, daemon=True) for f in (self.monkey, self.hang_watch,
                                                                         self.generation_watch)]
            helpers += [threading.Thread(target=self.relogin_loop, args=(lane,), daemon=True) for lane in self.lanes]
            drivers = [threading.Thread(target=self.drive, args=(lane,), daemon=True) for lane in self.lanes]
            for thread in helpers + drivers:
                thread.start()
            try:
                for thread in drivers:
                    thread.join()
            finally:
                self.stop.set()
                for thread in helpers:
                    thread.join(60)
                with self.guard:
                    self.running = False
                for slot in range(slots):
                    self.kill(slot, "final")
                for thread in supervisors:
                    thread.join(60)
            os.close(self.write_fd)
            reader.join(60)
            os.close(self.read_fd)
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
            final_ok = all(self.chain_alive(lane, self.stored(lane)) or self.stored(lane) is not None
                           for lane in self.lanes)
        events = sorted(self.events, key=lambda e: e["t"])
        with open(self.directory / "events.jsonl", "w") as log:
            log.writelines(json.dumps(event) + "\n" for event in events)
        outcome = {
            "servers": servers,
            "calls_ok": sum(c.total() for c in self.counters),
            "final_store_ok": final_ok,
            "seconds": time.monotonic() - began,
        }
        measured_on = {**machine_before, "load_at_end": machine()["load_1_5_15"]}
        kept = {"config": dataclasses.asdict(config), "machine": measured_on, **outcome}
        (self.directory / "outcome.json").write_text(json.dumps(kept))
        report = analyse(config, events, **outcome)
        report["machine"] = measured_on
        return report


def struct_get(cells: Counters, cell: int) -> int:
    import struct  # noqa: PLC0415 (tiny helper)

    return int(struct.unpack_from("q", cells._map, 8 * cell)[0])


def _exit_cause(returncode: int) -> str:
    if returncode == -signal.SIGKILL:
        return "self"
    return "interrupt" if returncode == -signal.SIGINT else "crash"


def analyse(config: RedisChaosConfig, events: list[dict[str, Any]], **outcome: Any) -> dict[str, Any]:
    replay = RedisReplay(grant_deadline=config.grant_deadline, lease=config.lease)
    for event in events:
        replay.feed(event)
    return replay.summary(config=dataclasses.asdict(config), **outcome)


def run(config: RedisChaosConfig, directory: Optional[Path] = None, progress: bool = False) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-redis-")))
        return RedisChaos(config, directory, progress).run()


def replay_folder(folder: Path) -> dict[str, Any]:
    outcome = json.loads((folder / "outcome.json").read_text())
    raw, measured_on = outcome.pop("config"), outcome.pop("machine", None)
    for name in ("timeouts", "monkey_weights", "short_outage", "dwell"):
        raw[name] = tuple(raw[name])
    config = RedisChaosConfig(**raw)
    outcome["servers"] = {int(k): v for k, v in outcome["servers"].items()}
    with open(folder / "events.jsonl") as log:
        events = [json.loads(line) for line in log]
    report = analyse(config, events, **outcome)
    if measured_on:
        report["machine"] = measured_on
    return report
