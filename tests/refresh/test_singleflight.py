import os
import threading

import pytest

from mcp_sync_auth import errors
from mcp_sync_auth._refresh.singleflight import SingleFlight, _for_waiter
from mcp_sync_auth.errors import MCPAuthError, TokenEndpointError

from ..helpers import call_in_fork, wait_until

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
    # In the child the parent's leader thread does not exist: no flight is in flight there.
    child = call_in_fork(lambda: not flight.in_flight("k") and flight.run("k", lambda: "child") == "child")
    code = child()
    release.set()
    thread.join()
    assert code == 0


def test_in_flight_says_whether_a_flight_runs():
    flight = SingleFlight()
    release, started = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: flight.run("k", lambda: started.set() or release.wait(30)))
    leader.start()
    assert started.wait(30)
    assert flight.in_flight("k") and not flight.in_flight("other")
    release.set()
    leader.join(30)
    assert not flight.in_flight("k")


def _our_errors():
    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, errors.MCPAuthError) and value.__module__ == errors.__name__:
            yield value


def _an_instance(cls):
    if cls is errors.JSONRPCError:
        return cls(-32000, "failed", {"detail": 1}, status_code=200)
    if cls is errors.ToolError:
        return cls("failed", {"isError": True, "content": []})
    return cls("failed")


@pytest.mark.parametrize(
    "cls",
    list(_our_errors()),
    ids=lambda cls: cls.__name__,
)
def test_every_error_of_ours_reaches_a_waiter_as_an_equal_copy(cls):
    error = _an_instance(cls)
    error.__cause__ = ValueError("why")
    twin = _for_waiter(error)
    assert twin is not error and type(twin) is cls
    assert vars(twin) == vars(error) and str(twin) == str(error)
    assert twin.__cause__ is error.__cause__


def test_a_foreign_error_copy_cannot_rebuild_is_shared():
    class Stubborn(Exception):
        def __init__(self, code, *, detail):
            super().__init__(code)
            self.detail = detail

    error = Stubborn(1, detail="x")
    assert _for_waiter(error) is error
