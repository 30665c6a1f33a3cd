"""Lock faults: a lock holder that stops (SIGSTOP) and resumes, and fork() during a failing flight.

A stopped process keeps its ``flock``: nobody else may refresh the chain meanwhile. Every other caller
must get ``LockTimeout`` after the configured ``lock_timeout`` and must never send a refresh grant
without the lock; once the holder resumes and lets go, the next call refreshes exactly once.
"""

import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests

from mcp_sync_auth import MCPAuthError
from mcp_sync_auth.testing import Fault

from ..conftest import TTL
from ..helpers import call_in_fork, echo_in_new_session, start_lock_holder
from ..workers import echo_call, make_auth

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP/SIGCONT")

LOCK_TIMEOUT = 1.0


def calls_in_threads(n, call):
    """n threads call at the same moment; returns (Counter of outcomes, seconds each took)."""
    barrier = threading.Barrier(n)
    outcomes, seconds = Counter(), []
    guard = threading.Lock()

    def worker():
        barrier.wait()
        began = time.monotonic()
        try:
            outcome = call()
        except MCPAuthError as exc:
            outcome = type(exc).__name__
        with guard:
            outcomes[outcome] += 1
            seconds.append(time.monotonic() - began)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a caller hung on the stopped holder"
    return outcomes, seconds


def call_in_process(config, clock, results):
    """Spawned: one call through a fresh MCPAuth on the shared store; reports outcome and seconds."""
    auth = make_auth(config, clock)
    began = time.monotonic()
    try:
        with requests.Session() as session:
            outcome = echo_call(session, config["mcp_url"], auth)
    except MCPAuthError as exc:
        outcome = type(exc).__name__
    results.put((outcome, time.monotonic() - began))


def stop(process):
    """SIGSTOP and wait until the kernel reports the process stopped (no sleeping, no guessing)."""
    os.kill(process.pid, signal.SIGSTOP)
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)


@pytest.fixture
def config(server, client_id, store_dir):
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir), lock_timeout=LOCK_TIMEOUT,
    )


@pytest.fixture
def lock_holder(auth, store_dir):
    """A process that takes the chain's lock, says so, and keeps it until a line arrives on stdin."""
    holder = start_lock_holder(store_dir, auth.key)
    yield holder
    if holder.poll() is None:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
    holder.wait(10)


def test_stopped_lock_holder_others_time_out_without_a_grant_then_recover(
    server, make_auth, lock_holder, clock, http, spawn, config, capsys
):
    auth = make_auth(lock_timeout=LOCK_TIMEOUT)
    stop(lock_holder)
    clock.advance(TTL + 1)
    before = server.audit

    # 16 threads of this process: one leader waits for the lock, 15 wait on its flight.
    outcomes, seconds = calls_in_threads(16, lambda: echo_call(http, server.mcp_url, auth))
    # ...and another process, with its own flight.
    results = spawn.Queue()
    other = spawn.Process(target=call_in_process, args=(config, clock, results))
    other.start()
    other_outcome, other_seconds = results.get(timeout=60)
    other.join(30)

    assert outcomes == Counter(LockTimeout=16)
    assert other_outcome == "LockTimeout"
    after = server.audit
    assert after.token_requests == before.token_requests  # no grant was sent without the lock
    assert after.mcp_ok == before.mcp_ok  # nor any call made with the expired token
    # Each flight's leader waited the whole lock_timeout (a lower bound holds however loaded the machine;
    # how much longer it took is printed, not asserted).
    assert max(seconds) >= LOCK_TIMEOUT and other_seconds >= LOCK_TIMEOUT
    with capsys.disabled():
        print(
            f"\n  lock_timeout {LOCK_TIMEOUT} s: LockTimeout after {min(seconds):.2f}-{max(seconds):.2f} s "
            f"(16 threads), {other_seconds:.2f} s (another process)"
        )

    # The holder resumes and lets go: the next call refreshes exactly once, and everybody recovers.
    lock_holder.send_signal(signal.SIGCONT)
    lock_holder.stdin.write("\n")
    lock_holder.stdin.flush()
    assert lock_holder.stdout.readline().strip() == "released"
    assert echo_call(http, server.mcp_url, auth) == "ok"
    outcomes, _ = calls_in_threads(16, lambda: echo_call(http, server.mcp_url, auth))
    assert outcomes == Counter(ok=16)
    final = server.audit
    assert final.token_requests == before.token_requests + 1
    assert final.refresh_ok == before.refresh_ok + 1
    assert final.reuse_detections == 0


def refresh_in_process(config, clock, results):
    """Spawned: refresh through MCPAuth (the parent holds the grant at the server and stops us)."""
    auth = make_auth(config, clock)
    try:
        auth.access_token()
        results.put("ok")
    except MCPAuthError as exc:
        results.put(type(exc).__name__)


def test_holder_stopped_inside_its_refresh_others_time_out_then_adopt_its_result(
    server, auth, make_auth, clock, http, spawn, config
):
    auth = make_auth(lock_timeout=LOCK_TIMEOUT)
    clock.advance(TTL + 1)
    server.hold_token_requests()
    results = spawn.Queue()
    holder = spawn.Process(target=refresh_in_process, args=(config, clock, results))
    holder.start()
    try:
        server.wait_for_held_token_requests(1, timeout=60)  # the holder is inside its critical section
        stop(holder)
        before = server.audit
        outcomes, _ = calls_in_threads(8, lambda: echo_call(http, server.mcp_url, auth))
        assert outcomes == Counter(LockTimeout=8)
        assert server.audit.token_requests == before.token_requests
        assert server.held_token_requests == 1  # only the holder's grant, still parked at the door
    finally:
        os.kill(holder.pid, signal.SIGCONT)  # not reaped yet, so the pid is still the holder's
        server.release_token_requests()
    assert results.get(timeout=60) == "ok"
    holder.join(30)
    # The holder's one grant serves everybody: the next calls adopt it from the store.
    outcomes, _ = calls_in_threads(8, lambda: echo_call(http, server.mcp_url, auth))
    assert outcomes == Counter(ok=8)
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.token_requests == 1 and audit.reuse_detections == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_during_a_failing_flight_refreshes_itself(server, auth, clock):
    """The parent's leader is at the server when the child is forked; its grant then fails (500).
    The child has no flight to join (it was reset at fork), waits for the lock, finds the stored set
    still stale, and spends the refresh token itself: exactly once, with no reuse."""
    clock.advance(TTL + 1)
    server.inject_fault(Fault.HTTP_500_BEFORE)
    server.hold_token_requests()
    failure = {}

    def lead():
        try:
            auth.access_token()
        except MCPAuthError as exc:
            failure["error"] = exc

    leader = threading.Thread(target=lead)
    leader.start()
    server.wait_for_held_token_requests(1, timeout=30)  # the parent's flight holds the lock now
    child = call_in_fork(lambda: echo_in_new_session(server, auth))
    server.release_token_requests()
    leader.join(30)
    assert type(failure.get("error")).__name__ == "TokenEndpointError" and failure["error"].transient
    assert child() == 0
    audit = server.audit
    assert audit.token_requests == 2  # the parent's failed one, the child's own
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0
    assert audit.faults == {"HTTP_500_BEFORE": 1}
    # The parent adopts the child's rotation from the store: no third request.
    with requests.Session() as session:
        assert echo_call(session, server.mcp_url, auth) == "ok"
    assert server.audit.token_requests == 2
