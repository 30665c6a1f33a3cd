"""Code that runs in the worker processes (started with the ``spawn`` method, so it must be importable).

Every worker reports one dict on its results queue. A worker that cannot start reports ``{"error": ...}``
and breaks the barrier, so the parent never waits for it.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import math
import os
import pstats
import threading
import time
import traceback
from collections import Counter
from typing import Any, Callable, Optional

import requests

from .clock import SharedClock
from .contenders import THREADED, make_mcp_auth, open_async_client, requests_echo
from .stats import summarize

BARRIER_TIMEOUT = 600.0
Record = tuple[float, str, float]  # (latency in seconds, outcome, seconds spent getting the token or NaN)


def _fail(results: Any, barrier: Any) -> None:
    results.put({"pid": os.getpid(), "error": traceback.format_exc(limit=6)})
    if barrier is not None:
        barrier.abort()


def _maybe_profile(spec: dict[str, Any]) -> Optional[Any]:
    if not spec.get("profile"):
        return None
    from .profiling import PhaseTimer  # noqa: PLC0415 - wraps library functions: only when asked

    return PhaseTimer.install()


# --- cycles: everybody calls at once, the parent expires tokens between cycles -----------------------


def cycles_worker(spec: dict[str, Any], clock: Optional[SharedClock], barrier: Any, results: Any) -> None:
    """``spec["cycles"]`` cycles; in each, every thread (or task) of this process makes one call at the
    same moment. The parent is a party of ``barrier`` and expires tokens between cycles."""
    try:
        timer = _maybe_profile(spec)
        if spec["driver"] == "asyncio":
            records = _cycles_asyncio(spec, clock, barrier)
        else:
            records = _cycles_threads(spec, clock, barrier, timer)
    except Exception:
        _fail(results, barrier)
        return
    report: dict[str, Any] = {"pid": os.getpid(), "cycles": records}
    if timer is not None:
        report["phases"] = timer.summary()
        report["timeline"] = timer.timeline()
    results.put(report)


def _cycles_threads(spec: dict[str, Any], clock: Optional[SharedClock], barrier: Any,
                    timer: Optional[Any] = None) -> list[list[Record]]:
    env = spec["env"]
    client = THREADED[spec["contender"]](env, clock)
    threads, cycles = env["threads"], spec["cycles"]
    start = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)
    records: list[list[Record]] = [[] for _ in range(cycles)]
    guard = threading.Lock()

    def worker() -> None:
        try:
            call = client.caller()  # per-worker setup (a naive recipe loads the token file here)
        except Exception as exc:
            reason = f"setup {type(exc).__name__}"

            def call() -> str:
                return reason

        for cycle in range(cycles):
            start.wait(BARRIER_TIMEOUT)
            began = time.perf_counter()
            outcome = call()
            elapsed = time.perf_counter() - began
            waited = client.last_auth_wait()
            with guard:
                records[cycle].append((elapsed, outcome, waited))
            done.wait(BARRIER_TIMEOUT)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    try:
        for cycle in range(cycles):
            if timer is not None:
                timer.cycle = cycle  # every event until the next cycle belongs to this one
            barrier.wait(BARRIER_TIMEOUT)
            if timer is not None:
                timer.mark("burst")  # this process learns that the cycle began
            start.wait(BARRIER_TIMEOUT)
            done.wait(BARRIER_TIMEOUT)
            barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        start.abort()
        done.abort()
        raise
    for thread in pool:
        thread.join()
    client.close()
    return records


def _cycles_asyncio(spec: dict[str, Any], clock: Optional[SharedClock], barrier: Any) -> list[list[Record]]:
    env = spec["env"]
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(open_async_client(spec["contender"], env, clock))

        async def timed() -> Record:
            began = time.perf_counter()
            outcome = await client.call()
            return time.perf_counter() - began, outcome, math.nan

        async def one_cycle() -> list[Record]:
            return list(await asyncio.gather(*(timed() for _ in range(env["threads"]))))

        records = []
        for _ in range(spec["cycles"]):
            barrier.wait(BARRIER_TIMEOUT)
            records.append(loop.run_until_complete(one_cycle()))
            barrier.wait(BARRIER_TIMEOUT)
        loop.run_until_complete(client.aclose())
        return records
    finally:
        loop.close()


# --- throughput: calls per second for a fixed time, in real time ---------------------------------------


def throughput_worker(spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """Warm up, then every thread calls in a loop for ``spec["seconds"]``; reports counts and latencies."""
    try:
        timer = _maybe_profile(spec)
        report = _throughput(spec, barrier)
    except Exception:
        _fail(results, barrier)
        return
    if timer is not None:
        report["phases"] = timer.summary()
    results.put(report)


def _throughput(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    env = spec["env"]
    client = THREADED[spec["contender"]](env, None)
    threads = env["threads"]
    ready = threading.Barrier(threads + 1)
    measured = threading.Barrier(threads + 1)
    window: dict[str, float] = {}
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    ends: list[float] = []
    guard = threading.Lock()

    def loop_until(call: Callable[[], str], deadline: float, keep: bool) -> None:
        local: Counter[str] = Counter()
        local_latencies = []
        while True:
            began = time.perf_counter()
            if began >= deadline:
                break
            outcome = call()
            local[outcome] += 1
            local_latencies.append(time.perf_counter() - began)
        if keep:
            with guard:
                outcomes.update(local)
                latencies.extend(local_latencies)
                ends.append(time.perf_counter())

    def worker() -> None:
        try:
            call = client.caller()
            ready.wait(BARRIER_TIMEOUT)  # warm-up starts
            loop_until(call, window["warm_until"], keep=False)
            ready.wait(BARRIER_TIMEOUT)  # warm-up done
            ready.wait(BARRIER_TIMEOUT)  # measurement starts (every process is warm)
            loop_until(call, window["until"], keep=True)
            measured.wait(BARRIER_TIMEOUT)
        except BaseException:
            ready.abort()  # the main thread fails at once instead of waiting for a dead thread
            measured.abort()
            raise

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait(BARRIER_TIMEOUT)  # every process is up
    window["warm_until"] = time.perf_counter() + spec["warmup"]
    ready.wait(BARRIER_TIMEOUT)
    ready.wait(BARRIER_TIMEOUT)  # warm-up of this process done
    barrier.wait(BARRIER_TIMEOUT)  # warm-up of every process done
    began = time.perf_counter()
    window["until"] = began + spec["seconds"]
    ready.wait(BARRIER_TIMEOUT)
    measured.wait(BARRIER_TIMEOUT)
    elapsed = max(ends) - began
    for thread in pool:
        thread.join()
    client.close()
    return {
        "pid": os.getpid(),
        "outcomes": dict(outcomes),
        "elapsed": elapsed,
        "latency": summarize(latencies),
    }


# --- fast-path overhead, one process, one thread -------------------------------------------------------


class StaticBearer:
    """The cheapest possible bearer ``AuthBase``: a fixed header, nothing else."""

    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = self.header
        return request


def overhead_worker(spec: dict[str, Any], results: Any) -> None:
    try:
        results.put(_overhead(spec))
    except Exception:
        _fail(results, None)


def _cpu_per_call(auth: Any, request: Any, calls: int) -> float:
    hooks = request.hooks["response"]
    began = time.process_time()
    for _ in range(calls):
        auth(request)
        hooks.clear()  # MCPAuth registers its 401 hook on every call; keep the request the same size
    return (time.process_time() - began) / calls


def _overhead(spec: dict[str, Any]) -> dict[str, Any]:
    env = spec["env"]
    url = env["mcp_url"]
    ours = make_mcp_auth(url, env["store_dir"], env["client_id"], env["token_endpoint"])
    static = StaticBearer(ours.access_token())
    auths = {"mcp_sync_auth": ours, "static": static}

    # 1. CPU time per __call__ on a prepared request, rounds interleaved.
    request = requests.Request("POST", url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}).prepare()
    calls = spec["cpu_calls"]
    cpu: dict[str, list[float]] = {name: [] for name in auths}
    for auth in auths.values():
        _cpu_per_call(auth, request, calls // 10)  # warm-up
    for round_ in range(spec["cpu_rounds"]):
        order = list(auths) if round_ % 2 == 0 else list(reversed(list(auths)))
        for name in order:
            cpu[name].append(_cpu_per_call(auths[name], request, calls))
    profile_text = None
    if spec.get("profile"):
        profiler = cProfile.Profile()
        profiler.enable()
        _cpu_per_call(ours, request, calls)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(12)
        profile_text = stream.getvalue()

    # 2. Loopback round trips, same session, blocks interleaved ABBA.
    session = requests.Session()
    for auth in auths.values():
        for _ in range(spec["rtt_block"]):
            requests_echo(session, url, auth)
    latencies: dict[str, list[float]] = {name: [] for name in auths}
    block_means: dict[str, list[float]] = {name: [] for name in auths}
    outcomes: Counter[str] = Counter()
    for pair in range(spec["rtt_pairs"]):
        order = list(auths) if pair % 2 == 0 else list(reversed(list(auths)))
        for name in order:
            auth = auths[name]
            block = []
            for _ in range(spec["rtt_block"]):
                began = time.perf_counter()
                outcomes[requests_echo(session, url, auth)] += 1
                block.append(time.perf_counter() - began)
            latencies[name].extend(block)
            block_means[name].append(sum(block) / len(block))
    session.close()
    return {
        "pid": os.getpid(),
        "cpu": cpu,
        "latencies": latencies,
        "block_means": block_means,
        "outcomes": dict(outcomes),
        "profile": profile_text,
    }


# --- one refresh round trip, measured bare -------------------------------------------------------------


def refresh_rtt_worker(spec: dict[str, Any], results: Any) -> None:
    """``spec["count"]`` refresh grants in a row on a chain of its own (never the measured one), each
    presenting the newest refresh token, with a plain keep-alive ``requests.Session``."""
    try:
        env = spec["env"]
        refresh_token = spec["refresh_token"]
        durations = []
        with requests.Session() as session:
            for _ in range(spec["count"] + 1):
                form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                        "client_id": env["client_id"], "resource": env["mcp_url"]}
                began = time.perf_counter()
                response = session.post(env["token_endpoint"], data=form, headers={"Accept": "application/json"},
                                        timeout=60)
                answer = response.json()
                durations.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise RuntimeError(f"refresh failed: HTTP {response.status_code} {answer}")
                refresh_token = answer["refresh_token"]
        results.put({"pid": os.getpid(), "durations": durations[1:]})  # the first one opens the connection
    except Exception:
        _fail(results, None)


# --- a refresh grant under the load of a burst ---------------------------------------------------------


def probe_worker(spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """A party of the cycles' barrier, like a worker process: as each cycle starts it posts one bare
    refresh grant (a keep-alive ``requests.Session``, a chain of its own), so its round trip meets the
    same machine, the same server and the same moment as the burst's calls. One warm-up grant first
    opens the connection."""
    try:
        env = spec["env"]
        state = {"refresh_token": spec["refresh_token"]}
        with requests.Session() as session:

            def grant() -> float:
                form = {"grant_type": "refresh_token", "refresh_token": state["refresh_token"],
                        "client_id": env["client_id"], "resource": env["mcp_url"]}
                began = time.perf_counter()
                response = session.post(env["token_endpoint"], data=form, headers={"Accept": "application/json"},
                                        timeout=60)
                answer = response.json()
                took = time.perf_counter() - began
                if response.status_code != 200:
                    raise RuntimeError(f"probe refresh failed: HTTP {response.status_code} {answer.get('error')}")
                state["refresh_token"] = answer["refresh_token"]
                return took

            grant()
            durations = []
            for _ in range(spec["cycles"]):
                barrier.wait(BARRIER_TIMEOUT)  # cycle starts
                durations.append(grant())
                barrier.wait(BARRIER_TIMEOUT)  # cycle done
        results.put({"pid": os.getpid(), "probe": durations, "probe_grants": len(durations) + 1})
    except Exception:
        _fail(results, barrier)
