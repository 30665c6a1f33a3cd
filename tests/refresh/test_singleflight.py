import os
import threading

import pytest

from mcp_sync_auth._refresh.singleflight import SingleFlight
from mcp_sync_auth.errors import MCPAuthError, TokenEndpointError

from ..helpers import wait_until

N = 32


def run_concurrently(flight, work, n=N):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def caller():
        barrier.wait()
        try:
            results.append(flight.run("k", work))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, results, errors


def test_one_leader_runs_the_work_and_every_waiter_gets_its_result():
    flight = SingleFlight()
    release = threading.Event()
    calls = []

    def work():
        calls.append(1)
        release.wait(30)
        return "token"

    threads, results, errors = run_concurrently(flight, work)
    wait_until(lambda: flight.waiting("k") == N - 1, what="all waiters")
    release.set()
    for t in threads:
        t.join()
    assert calls == [1]
    assert results == ["token"] * N and errors == []
    assert flight.waiting("k") == -1


def test_waiters_get_their_own_copy_of_the_leaders_error():
    flight = SingleFlight()
    release = threading.Event()

    def work():
        release.wait(30)
        raise TokenEndpointError("down", transient=True)

    threads, results, errors = run_concurrently(flight, work)
    wait_until(lambda: flight.waiting("k") == N - 1)
    release.set()
    for t in threads:
        t.join()
    assert results == []
    assert len(errors) == N
    assert all(isinstance(e, TokenEndpointError) and e.transient for e in errors)
    assert len({id(e) for e in errors}) == N


def test_a_leader_interrupted_by_keyboard_interrupt_does_not_interrupt_waiters():
    flight = SingleFlight()
    release = threading.Event()

    def work():
        release.wait(30)
        raise KeyboardInterrupt

    threads, _, errors = run_concurrently(flight, work, n=4)
    wait_until(lambda: flight.waiting("k") == 3)
    release.set()
    for t in threads:
        t.join()
    assert sum(isinstance(e, KeyboardInterrupt) for e in errors) == 1
    assert sum(type(e) is MCPAuthError for e in errors) == 3


def test_a_caller_after_the_flight_ended_starts_a_new_one():
    flight = SingleFlight()
    assert flight.run("k", lambda: 1) == 1
    assert flight.run("k", lambda: 2) == 2


def test_keys_do_not_share_flights():
    flight = SingleFlight()
    release = threading.Event()
    thread = threading.Thread(target=lambda: flight.run("a", lambda: release.wait(30)))
    thread.start()
    wait_until(lambda: flight.waiting("a") == 0)
    assert flight.run("b", lambda: "b") == "b"
    release.set()
    thread.join()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # forking a threaded process is the point
def test_a_child_forked_during_a_flight_starts_clean():
    flight = SingleFlight()
    release = threading.Event()
    thread = threading.Thread(target=lambda: flight.run("k", lambda: release.wait(30)))
    thread.start()
    wait_until(lambda: flight.waiting("k") == 0)
    pid = os.fork()
    if pid == 0:  # child: the parent's leader thread does not exist here
        ok = flight.waiting("k") == -1 and flight.run("k", lambda: "child") == "child"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    release.set()
    thread.join()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
