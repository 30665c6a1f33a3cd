"""A demo worker process: ``threads`` threads making the same tool calls, one burst per cycle.

The coordinator and every worker process meet at a cross-process barrier at the start and at the
end of each cycle; inside a process, thread barriers release every thread at the same moment. No
sleep is used to line anything up.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Callable, Dict, Tuple

from .._mcp.client import MCPClient
from ..errors import AuthorizationRequired, MCPProtocolError
from .protocol import NAIVE, TOOL, CycleReport, WorkerConfig

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

__all__ = ["OK", "failure_label", "worker_main"]

OK = "ok"
BARRIER_TIMEOUT = 120.0  # only a stuck run ever gets near this


def failure_label(exc: BaseException) -> str:
    """A short, countable reason for a failed call."""
    error = getattr(exc, "error", None)  # oauthlib's OAuth2Error: "invalid_grant", ...
    if isinstance(error, str):
        return f"refresh refused ({error})"
    if isinstance(exc, AuthorizationRequired):
        return "login needed (chain revoked)"
    status = getattr(exc, "status_code", None)
    if isinstance(exc, MCPProtocolError) and status is not None:
        return f"HTTP {status} from the MCP server"
    return type(exc).__name__


def call_once(client: MCPClient, text: str) -> str:
    try:
        result = client.call_tool(TOOL, {"text": text})
    except Exception as exc:  # every failure is an outcome to count, not to stop on
        return failure_label(exc)
    content = result.get("content") or [{}]
    return OK if isinstance(content[0], dict) and content[0].get("text") == text else "wrong answer"


def _apply_environment(config: WorkerConfig) -> None:
    """The host's environment (``demo --hosts``), before anything reads HOME, TMPDIR or the store."""
    for name, value in (config.env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _build(config: WorkerConfig) -> Tuple[Callable[[], MCPClient], Callable[[], None]]:
    if config.side == NAIVE and not config.store_from_environment:
        from .naive import naive_clients  # noqa: PLC0415 - requests-oauthlib only where it is used

        return naive_clients(config)
    from .ours import our_clients  # noqa: PLC0415

    return our_clients(config)


def worker_main(config: WorkerConfig, barrier: Barrier, reports: Queue[CycleReport]) -> None:
    """Entry point of a spawned worker process."""
    try:
        _apply_environment(config)
        client_for_thread, cleanup = _build(config)
    except Exception as exc:  # reported to the coordinator, which stops the run
        reports.put(CycleReport(config.side, config.index, 0, error=f"{type(exc).__name__}: {exc}"))
        barrier.abort()
        return
    start = threading.Barrier(config.threads + 1)
    done = threading.Barrier(config.threads + 1)
    tally: Counter[str] = Counter()
    guard = threading.Lock()

    def thread_main(number: int) -> None:
        client = client_for_thread()
        try:
            for cycle in range(1, config.cycles + 1):
                start.wait()
                for call in range(config.calls):
                    outcome = call_once(client, f"{config.side}-{config.index}-{number}-{cycle}-{call}")
                    with guard:
                        tally[outcome] += 1
                done.wait()
        except threading.BrokenBarrierError:
            return  # the run was stopped

    threads = [threading.Thread(target=thread_main, args=(n,), daemon=True) for n in range(config.threads)]
    for thread in threads:
        thread.start()
    try:
        for cycle in range(1, config.cycles + 1):
            barrier.wait(BARRIER_TIMEOUT)  # the coordinator saw the tokens expire: go
            began = time.perf_counter()
            start.wait()
            done.wait()
            seconds = time.perf_counter() - began
            with guard:
                failures: Dict[str, int] = {k: v for k, v in tally.items() if k != OK}
                reports.put(CycleReport(config.side, config.index, cycle, tally[OK], failures, seconds))
                tally.clear()
            barrier.wait(BARRIER_TIMEOUT)  # cycle over
        barrier.wait(BARRIER_TIMEOUT)  # the coordinator has read the server's audit: clean up now
    except threading.BrokenBarrierError:
        start.abort()
        done.abort()
        return
    for thread in threads:
        thread.join()
    cleanup()
