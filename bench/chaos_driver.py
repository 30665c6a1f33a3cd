"""What the two chaos runs (``bench/chaos.py`` on files, ``bench/chaos_redis.py`` on Redis) share: the
event pipe, the worker supervisors and their kills, the start and end of a run, and its kept folder.

``ChaosDriver`` is the base of both drivers; a subclass supplies each worker's environment and
config (``worker_env``, ``worker_config``), what it does with the events it reads (``take``), and
optionally where a worker runs (``worker_cwd``, ``where``) and what else it tracks per process
(``launched``, ``ended``).
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
from typing import Any, Callable, ClassVar, Optional

import mcp_sync_auth

from .chaos_worker import Counters, machine

WORKER = Path(__file__).resolve().with_name("chaos_worker.py")
FAULTPOINT_VARIABLE = "MCP_SYNC_AUTH_FAULTPOINT"
EXPIRY_KINDS = ("expired", "refresh-window", "revoked")

Events = list[dict[str, Any]]
Analyse = Callable[..., dict[str, Any]]  # analyse(config, events, **outcome): the report
Judge = Callable[[dict[str, Any], Events, dict[str, Any]], dict[str, Any]]  # (config fields, events, outcome)


class ChaosDriver:
    """The state and the worker supervision both chaos drivers share."""

    # The fault points the first slots are armed with until each was met once, in slot order.
    forced_plan: tuple[str, ...] = ()
    # How likely a forced incarnation meets its fault each time it reaches the point (1 if absent).
    forced_chance: ClassVar[dict[str, float]] = {}
    worker_faults: tuple[str, ...] = ()  # the points an armed incarnation draws from
    # Memory-mapped files of one cell per thread, one of each per incarnation.
    cell_files: tuple[str, ...] = ("counters",)
    thaw_final_kills = False  # a final kill also sends SIGCONT (workers may be frozen)

    def __init__(self, config: Any, directory: Path, progress: bool = False) -> None:
        self.config = config
        self.directory = directory
        self.progress = progress
        self.rng = random.Random(config.seed)
        self.guard = threading.Lock()
        self.changed = threading.Condition(self.guard)
        self.events: Events = []  # worker and driver events, appended in arrival order
        self.procs: dict[int, Optional[subprocess.Popen[bytes]]] = {}
        self.killed_by_driver: dict[int, str] = {}  # slot -> "", "driver" or "final"
        self.plans: dict[int, str] = {}  # slot -> the fault point of its current incarnation
        self.started: set[int] = set()
        self.points_hit: set[str] = set()
        self.running = True
        self.stop = threading.Event()
        self.counters: list[Counters] = []
        self.read_fd, self.write_fd = os.pipe()

    # -- bookkeeping ---------------------------------------------------------------------------

    def note(self, event: str, **fields: Any) -> None:
        with self.changed:
            self.events.append({"t": time.monotonic(), "ev": event, "slot": -1, "pid": os.getpid(), **fields})
            self.changed.notify_all()

    def where(self, slot: int) -> dict[str, Any]:
        """Fields that place a slot's worker, added to the driver's events about it."""
        return {}

    def read_events(self) -> None:
        pending = b""
        while True:
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            parsed = [json.loads(line) for line in lines if line]
            with self.changed:
                self.take(parsed)
                self.changed.notify_all()

    def take(self, parsed: Events) -> None:
        """Keep the workers' events just read (called under the guard)."""
        raise NotImplementedError

    # -- workers -------------------------------------------------------------------------------

    def plan(self, slot: int) -> str:
        """The fault point (``name:p``) of a worker's next incarnation, or ''."""
        forced = self.forced_plan[slot] if slot < len(self.forced_plan) else None
        if forced is not None and forced not in self.points_hit:
            # Armed until the point was met once: every point is hit, whatever the seed.
            return f"{forced}:{self.forced_chance.get(forced, 1)}"
        if self.rng.random() < self.config.armed_share:
            return f"{self.rng.choice(self.worker_faults)}:{self.config.point_chance}"
        return ""

    def worker_env(self, slot: int, base: dict[str, str]) -> dict[str, str]:
        """A worker's environment, from ``base``, without a fault point (the driver adds its own)."""
        raise NotImplementedError

    def worker_config(self, slot: int, incarnation: int, tag: str) -> dict[str, Any]:
        raise NotImplementedError

    def worker_cwd(self, slot: int) -> Optional[str]:
        return None

    def launched(self, process: subprocess.Popen[bytes], cells: dict[str, Counters]) -> None:
        """A worker just started (called under the guard)."""

    def ended(self, process: subprocess.Popen[bytes]) -> None:
        """A worker just ended (called under the guard)."""

    def supervise(self, slot: int) -> None:
        """Run one slot's workers, one incarnation after the other, until the run ends."""
        base = dict(os.environ)
        package_root = str(Path(mcp_sync_auth.__file__).resolve().parent.parent)
        base["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, base.get("PYTHONPATH", "")) if p)
        incarnation = 0
        while self.running:
            with self.guard:
                faultpoint = self.plan(slot)
                self.plans[slot] = faultpoint
            env = self.worker_env(slot, base)
            if faultpoint:
                env[FAULTPOINT_VARIABLE] = faultpoint
            tag = f"{slot}-{incarnation}"
            cells = {
                name: Counters(str(self.directory / f"{name}-{tag}"), self.config.threads, create=True)
                for name in self.cell_files
            }
            worker_config = self.worker_config(slot, incarnation, tag)
            with open(self.directory / f"stderr-{tag}", "wb") as stderr:
                process = subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(worker_config)],
                    env=env,
                    pass_fds=(self.write_fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    cwd=self.worker_cwd(slot),
                )
            with self.guard:
                self.counters.append(cells["counters"])
                self.launched(process, cells)
                self.procs[slot] = process
                self.killed_by_driver[slot] = ""
                if not self.running:  # the run ended while this one was starting
                    self.killed_by_driver[slot] = "final"
                    process.send_signal(signal.SIGKILL)
            returncode = process.wait()
            point = faultpoint.partition(":")[0]
            with self.guard:
                self.procs[slot] = None
                self.ended(process)
                by = self.killed_by_driver[slot] or exit_cause(returncode)
                if by in ("self", "interrupt"):
                    self.points_hit.add(point)
            self.note("exit", of=process.pid, slot=slot, **self.where(slot), incarnation=incarnation, rc=returncode,
                      by=by, point=point)
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
                # Noted before the signal: whatever the process logs after this moment may be lost,
                # and a grant another process starts after it is not "in flight at once" with its own.
                self.events.append(
                    {"t": time.monotonic(), "ev": "random-kill", "slot": -1, "pid": 0, "of": process.pid,
                     **self.where(slot)}
                )
            process.send_signal(signal.SIGKILL)
            if why == "final" and self.thaw_final_kills:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGCONT)

    # -- the run -------------------------------------------------------------------------------

    def run_workers(
        self,
        slots: int,
        *,
        start_timeout: float,
        helpers: list[Callable[[], None]],
        helper_timeout: float,
        drive: Callable[[], None],
    ) -> None:
        """Start the event reader and ``slots`` supervisors, wait for every worker, start the helpers,
        ``drive`` the run, then stop everything and close the event pipe."""
        reader = threading.Thread(target=self.read_events, daemon=True)
        supervisors = [threading.Thread(target=self.supervise, args=(s,), daemon=True) for s in range(slots)]
        reader.start()
        for thread in supervisors:
            thread.start()
        with self.changed:
            ready = self.changed.wait_for(lambda: len(self.started) == slots, timeout=start_timeout)
        if not ready:
            raise RuntimeError("the worker processes did not start in time")
        self.all_started()
        threads = [threading.Thread(target=f, daemon=True) for f in helpers]
        for thread in threads:
            thread.start()
        try:
            drive()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(helper_timeout)
            with self.guard:
                self.running = False
            for slot in range(slots):
                self.kill(slot, "final")
            for thread in supervisors:
                thread.join(60)
        os.close(self.write_fd)
        reader.join(60)
        os.close(self.read_fd)

    def all_started(self) -> None:
        """Every worker has started, the helpers have not yet."""

    def run(self) -> dict[str, Any]:
        """The whole run; its report."""
        raise NotImplementedError

    def keep(
        self, outcome: dict[str, Any], *, began: float, machine_before: dict[str, Any], analyse: Analyse
    ) -> dict[str, Any]:
        """Write the event log and the outcome (``seconds`` added) to the run's folder; the report."""
        events = sorted(self.events, key=lambda e: e["t"])
        with open(self.directory / "events.jsonl", "w") as log:  # kept with --keep, for a second look
            log.writelines(json.dumps(event) + "\n" for event in events)
        outcome = {**outcome, "seconds": time.monotonic() - began}
        measured_on = {**machine_before, "load_at_end": machine()["load_1_5_15"]}
        # With the event log, all the verdict needs: `--replay DIR` computes it again from these two files.
        kept = {"config": dataclasses.asdict(self.config), "machine": measured_on, **outcome}
        (self.directory / "outcome.json").write_text(json.dumps(kept))
        report = analyse(self.config, events, **outcome)
        report["machine"] = measured_on
        return report


def exit_cause(returncode: int) -> str:
    """How a worker the driver did not kill ended: at a kill point, by a SIGINT, or by a crash."""
    if returncode == -signal.SIGKILL:
        return "self"
    return "interrupt" if returncode == -signal.SIGINT else "crash"


def chain_alive(server: Any, record: Any) -> bool:
    """The stored record holds a refresh token of a chain ``server`` has not revoked."""
    if record is None or record.is_dead or record.tokens is None or not record.tokens.refresh_token:
        return False
    try:
        return bool(server.is_chain_alive(record.tokens.refresh_token))
    except KeyError:
        return False


def expire(kind: str, *, clock: Any, server: Any, ttl: float) -> None:
    """One expiry event of ``EXPIRY_KINDS``: the clock moved past the expiry or into the refresh window,
    or the access tokens revoked (the 401 path)."""
    if kind == "expired":
        clock.advance(ttl + 1)
    elif kind == "refresh-window":
        clock.advance(ttl * 0.85)  # inside the skew (a quarter of the lifetime)
    else:
        server.revoke_access_tokens()


def is_resolved(record: Any, generation: int, *, clock: Any, server: Any) -> bool:
    """The store holds a fresh, live set newer than ``generation``."""
    return (
        record is not None
        and record.generation > generation
        and chain_alive(server, record)
        and record.tokens.is_fresh(clock(), 60.0)
    )


def run_in_folder(
    make: Callable[[Path], ChaosDriver], directory: Optional[Path], *, prefix: str
) -> dict[str, Any]:
    """``make(folder).run()`` in ``directory``, or in a temporary folder removed afterwards."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        return make(directory).run()


def replay_kept(folder: Path, judge: Judge) -> dict[str, Any]:
    """The report of a kept run, from its ``events.jsonl`` and ``outcome.json`` (``judge`` makes it),
    with the machine it was measured on."""
    outcome = json.loads((folder / "outcome.json").read_text())
    raw, measured_on = outcome.pop("config"), outcome.pop("machine", None)
    with open(folder / "events.jsonl") as log:
        events = [json.loads(line) for line in log]
    report = judge(raw, events, outcome)
    if measured_on:
        report["machine"] = measured_on
    return report
