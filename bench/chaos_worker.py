"""One worker process of the chaos run (``bench/chaos.py``): N threads calling the MCP endpoint.

Started by the chaos driver as ``python bench/chaos_worker.py CONFIG_JSON`` with its own environment
(``MCP_SYNC_AUTH_FAULTPOINT`` is read once when ``mcp_sync_auth`` is imported, so it must be in the
environment from the start). It shares with the driver:

- the run's clock: a float offset in a memory-mapped file, moved forward by the driver only;
- an event pipe: one JSON line per write (below ``PIPE_BUF``, so a SIGKILL never leaves half a line)
  for each refresh grant sent and its outcome, each store write and each failed call (with the
  thread's number and the moment the call began, for ``bench/chaos_replay.py`` to attribute it);
- a counters file: one 64-bit cell per thread counting the calls that succeeded (memory-mapped, so
  the counts survive a SIGKILL).

The refresh grant, the store write and a failed reservation (a full disk, from the ``reserve`` fault
point) are observed by wrapping ``TokenEndpointClient.refresh``, ``FileTokenStore.save`` (dead marks,
retried writes), ``FileReservation.commit`` (a refresh's write, into its reserved room) and
``FileTokenStore.reserve``; nothing else of the library is touched.

The main thread is one of the calling threads, as in a program that calls from its main thread: a
SIGINT (the ``interrupt-during-grant`` fault point) raises ``KeyboardInterrupt`` there, and the process
ends the way such a program does, through the interpreter's exit.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import platform
import random
import signal
import struct
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import requests

from mcp_sync_auth import FileTokenStore, MCPAuth, MCPAuthError, RedisTokenStore
from mcp_sync_auth._oauth.token_client import TokenEndpointClient
from mcp_sync_auth._stores.file import FileReservation
from mcp_sync_auth._stores.redis.store import RedisReservation
from mcp_sync_auth._util.redact import fingerprint
from mcp_sync_auth._util.timeouts import Timeouts
from mcp_sync_auth.errors import LockTimeout, StoreFull, TokenEndpointError, TokenStoreError

EVENT_LIMIT = 4000  # below PIPE_BUF (4096 on Linux): one write, one whole line


class FileClock:
    """Wall time plus an offset kept in an 8-byte memory-mapped file shared by every process."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    @staticmethod
    def create(path: str) -> FileClock:
        with open(path, "wb") as handle:
            handle.write(struct.pack("d", 0.0))
        return FileClock(path)

    def offset(self) -> float:
        # One writer; a reader retries until two reads agree, so it never uses a torn value.
        for _ in range(1000):
            first, second = self._map[:8], self._map[:8]
            if first == second:
                return float(struct.unpack("d", first)[0])
        raise RuntimeError("the shared clock keeps changing")

    def __call__(self) -> float:
        return time.time() + self.offset()

    def advance(self, seconds: float) -> None:
        self._map[:8] = struct.pack("d", self.offset() + seconds)


class Counters:
    """One 64-bit cell per thread in a memory-mapped file; each thread writes only its own cell."""

    def __init__(self, path: str, cells: int, *, create: bool = False) -> None:
        if create:
            with open(path, "wb") as handle:
                handle.write(b"\0" * 8 * cells)
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 8 * cells)
        finally:
            os.close(fd)
        self.cells = cells

    def set(self, cell: int, value: int) -> None:
        struct.pack_into("q", self._map, 8 * cell, value)

    def total(self) -> int:
        return sum(struct.unpack_from("q", self._map, 8 * cell)[0] for cell in range(self.cells))


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load includes whatever else ran meanwhile)."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_1_5_15": [round(x, 2) for x in load],
    }


def echo_call(session: Any, url: str, auth: Any, timeout: float) -> str:
    """One MCP tools/call; "ok" or a short description of what went wrong."""
    text = "chaos"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    headers = {"Accept": "application/json, text/event-stream"}
    response = session.post(url, json=body, auth=auth, headers=headers, timeout=timeout)
    if response.status_code != 200:
        return f"http {response.status_code}"
    result = response.json().get("result", {})
    if result.get("content", [{}])[0].get("text") != text:
        return "wrong answer"
    return "ok"


def main(config: dict[str, Any]) -> None:

    event_fd = int(config["event_fd"])
    slot, pid = config["slot"], os.getpid()

    def emit(event: str, **fields: Any) -> None:
        line = json.dumps({"t": time.monotonic(), "ev": event, "slot": slot, "pid": pid, **fields}) + "\n"
        os.write(event_fd, line.encode("utf-8")[:EVENT_LIMIT])

    # --- observe the grant and the write (the refresher is bound when MCPAuth is built, so patch first)
    real_refresh = TokenEndpointClient.refresh
    check_lease = _lease_checker(config) if config.get("store") == "redis" else None
    real_save = FileTokenStore.save
    real_reserve = FileTokenStore.reserve
    real_commit = FileReservation.commit

    def refresh(self: Any, tokens: Any, generation: int, resource: Any = None) -> Any:
        presented = fingerprint(tokens.refresh_token)
        lease = {"lease": check_lease()} if check_lease is not None else {}
        emit("grant-start", fp=presented, gen=generation, **lease)
        try:
            fresh = real_refresh(self, tokens, generation, resource)
        except TokenEndpointError as exc:
            emit("grant-error", fp=presented, **describe(exc))
            raise
        emit("grant-ok", fp=presented, new=fingerprint(fresh.refresh_token), gen=generation)
        return fresh

    def saved(record: Any) -> None:
        refresh_token = record.tokens.refresh_token if record.tokens is not None else None
        emit("saved", gen=record.generation, fp=fingerprint(refresh_token), dead=record.is_dead)

    def save(self: Any, record: Any) -> None:
        real_save(self, record)
        saved(record)

    def commit(self: Any, record: Any) -> None:
        real_commit(self, record)
        saved(record)

    def reserve(self: Any, current: Any) -> Any:
        try:
            return real_reserve(self, current)
        except StoreFull:
            emit("disk-full", gen=current.generation)
            raise

    TokenEndpointClient.refresh = refresh  # type: ignore[method-assign]
    FileTokenStore.save = save  # type: ignore[method-assign]
    FileTokenStore.reserve = reserve  # type: ignore[method-assign]
    FileReservation.commit = commit  # type: ignore[method-assign]
    # A program that handles Ctrl-C: SIGINT raises KeyboardInterrupt even if this process was started
    # with it ignored (as a shell's background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    store: Any
    if config.get("store") == "redis":
        store = _observe_redis(config, emit)
    else:
        store = FileTokenStore(config["store_dir"])
        if config.get("unsafe") == "no-lock":
            store = _without_lock(store)
    clock = FileClock(config["clock_file"])
    timeout: Any = config["timeout"]
    if isinstance(timeout, list):
        timeout = Timeouts(*timeout)
    auth = MCPAuth(
        config["mcp_url"],
        store=store,
        client_id=config["client_id"],
        token_endpoint=config["token_endpoint"],
        clock=clock,
        timeout=timeout,
        lock_timeout=config.get("lock_timeout"),
    )
    threads = config["threads"]
    counters = Counters(config["counters_file"], threads)
    # Redis run: when each thread's call began (ms of time.monotonic(), 0 between calls), for the
    # driver's hang check; a memory-mapped file, read from outside while the call runs.
    busy = Counters(config["busy_file"], threads) if config.get("busy_file") else None
    pace = config["pace"]

    def worker(cell: int) -> None:
        rng = random.Random()
        ok = 0
        with requests.Session() as session:
            while True:  # until the driver kills this process
                # A failed call says which thread made it and when it began: the driver checks its cause.
                began = time.monotonic()
                if busy is not None:
                    busy.set(cell, max(1, int(began * 1000)))
                try:
                    outcome = echo_call(session, config["mcp_url"], auth, timeout=60.0)
                except MCPAuthError as exc:
                    outcome = "error"
                    emit("fail", cell=cell, began=began, **describe(exc))
                except requests.RequestException as exc:
                    outcome = "error"
                    emit("fail", cell=cell, began=began, kind="transport", detail=type(exc).__name__)
                if busy is not None:
                    busy.set(cell, 0)
                if outcome == "ok":
                    ok += 1
                    counters.set(cell, ok)
                elif outcome != "error":
                    emit("fail", cell=cell, began=began, kind=outcome, detail="")
                time.sleep(rng.uniform(0.0, 2 * pace))  # pacing between calls, not a wait for a state

    for cell in range(1, threads):
        threading.Thread(target=worker, args=(cell,), daemon=True).start()
    emit("start", incarnation=config["incarnation"], faultpoint=os.environ.get("MCP_SYNC_AUTH_FAULTPOINT", ""))
    try:
        worker(0)  # until the driver kills this process, or a SIGINT ends it
    except KeyboardInterrupt:
        emit("interrupted")
        raise  # the interpreter's exit waits for a grant in flight, then the process dies of SIGINT


def describe(exc: BaseException) -> dict[str, Any]:
    """What the driver needs to attribute a failure: type, flags, and the start of the message."""
    return {
        "kind": type(exc).__name__,
        "code": getattr(exc, "error_code", None),
        "status": getattr(exc, "status_code", None),
        "ambiguous": bool(getattr(exc, "ambiguous", False)),
        "transient": bool(getattr(exc, "transient", False)),
        "detail": str(exc)[:160],
    }


# --- the Redis store (bench/chaos_redis.py) -------------------------------------------------------

_HELD: dict[str, Any] = {}  # the one store of this process, for the lease check before each grant


def _observe_redis(config: dict[str, Any], emit: Any) -> Any:
    """A RedisTokenStore through this host's link, its reserve, commit and save observed."""
    real_reserve, real_save, real_commit = RedisTokenStore.reserve, RedisTokenStore.save, RedisReservation.commit

    def reserve(self: Any, current: Any, deadline: Any = None) -> Any:
        began = time.monotonic()
        try:
            room = real_reserve(self, current, deadline=deadline)
        except StoreFull:
            emit("disk-full", gen=current.generation)
            raise
        except LockTimeout as exc:
            emit("reserve-refused", gen=current.generation, detail=str(exc)[:160])
            raise
        except TokenStoreError as exc:
            emit("store-error", at="reserve", detail=str(exc)[:160])
            raise
        emit("reserved", gen=current.generation, began=began, deadline=deadline)
        return room

    def saved(record: Any) -> None:
        refresh_token = record.tokens.refresh_token if record.tokens is not None else None
        emit("saved", gen=record.generation, fp=fingerprint(refresh_token), dead=record.is_dead)

    def save(self: Any, record: Any) -> None:
        try:
            real_save(self, record)
        except TokenStoreError as exc:
            emit("write-failed", gen=record.generation, at="save", detail=str(exc)[:160], full="Errno 28" in str(exc))
            raise
        saved(record)

    def commit(self: Any, record: Any) -> None:
        try:
            real_commit(self, record)
        except TokenStoreError as exc:
            fp = fingerprint(record.tokens.refresh_token) if record.tokens is not None else None
            emit("write-failed", gen=record.generation, at="commit", fp=fp, detail=str(exc)[:160],
                 full="Errno 28" in str(exc))
            raise
        saved(record)

    RedisTokenStore.reserve = reserve  # type: ignore[method-assign]
    RedisTokenStore.save = save  # type: ignore[method-assign]
    RedisReservation.commit = commit  # type: ignore[method-assign]
    store = RedisTokenStore.from_url(
        config["store_url"], lease=config["lease"], socket_timeout=config.get("socket_timeout", 2.0),
        socket_connect_timeout=config.get("socket_timeout", 2.0),
    )
    _HELD["store"] = store
    return store


def _lease_checker(config: dict[str, Any]) -> Any:
    """Before each grant: does the lease key of the chain hold this process's owner token? Asked on a
    link of its own straight to Redis (not this host's, which the driver cuts): ``ours``, ``lost``,
    ``none`` (no lease held here) or ``unknown`` (Redis did not answer)."""
    import redis  # noqa: PLC0415 (redis-py is an optional dependency; only the Redis run needs it)

    direct = redis.Redis.from_url(config["direct_url"], socket_timeout=1.0, socket_connect_timeout=1.0)

    def check() -> str:
        store = _HELD["store"]
        held = store.held_leases()
        verdict = "none"
        for name, owner in held.items():  # one chain per process: at most one lease
            try:
                value = direct.get(name)
            except redis.RedisError:
                return "unknown"
            verdict = "ours" if value is not None and value.decode() == owner else "lost"
        return verdict

    return check


def _without_lock(store: Any) -> Any:
    """A store whose lock excludes nobody: the chaos run must see the chain die (tests prove it)."""

    class NoLockStore(type(store)):  # type: ignore[misc]
        @contextmanager
        def lock(self, key: Any, timeout: float) -> Iterator[None]:
            yield

        def try_lock(self, key: Any) -> Any:
            return contextlib.nullcontext()

    return NoLockStore(store.directory)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
