"""Unit tests of ``TokenManager`` over ``MemoryTokenStore``, with a fake refresher and no HTTP.

The refresh invariant is checked here on its own: one grant per expiry however many threads (and
simulated processes) ask at once, a rotated refresh token never presented twice, adoption of what
another process stored, and the failure paths. A "process" is a ``StoreView``: the same records and
locks under another store identity, so it shares nothing in memory with the other views, exactly
as another process sharing a ``FileTokenStore`` folder would.
"""

import itertools
import threading
from collections import Counter

import pytest

from mcp_sync_auth import (
    AuthorizationRequired,
    ChainKey,
    LockTimeout,
    MemoryTokenStore,
    RefreshChainRevoked,
    TokenEndpointError,
    TokenSet,
)
from mcp_sync_auth._refresh.manager import TokenManager, _flights

from ..clocks import ManualClock
from ..helpers import wait_until

TTL = 300.0
SKEW = 60.0  # inside a quarter of TTL, so it is the skew the manager uses
N = 12
_keys = itertools.count()


class FakeRefresher:
    """A token endpoint that rotates: the n-th grant returns ``at-n``/``rt-n``. It records every
    refresh token presented; ``hold()`` makes grants wait until ``release()``; ``fail`` is raised."""

    def __init__(self, clock):
        self._clock = clock
        self._guard = threading.Lock()
        self.presented = []
        self.resources = []  # the resource indicator handed to each grant
        self.fail = None
        self.entered = threading.Event()
        self._released = threading.Event()
        self._released.set()

    def hold(self):
        self.entered.clear()
        self._released.clear()

    def release(self):
        self._released.set()

    def __call__(self, stored, generation, resource):
        with self._guard:
            self.presented.append(stored.refresh_token)
            self.resources.append(resource)
            n = len(self.presented)
        self.entered.set()
        assert self._released.wait(30), "the test never released the grant"
        if self.fail is not None:
            raise self.fail
        now = self._clock()
        tokens = {"access_token": f"at-{n}", "refresh_token": f"rt-{n}"}
        return TokenSet(**tokens, expires_at=now + TTL, obtained_at=now, generation=generation)


class StoreView:
    """One process's view of a shared store: same data and locks, its own identity; counts calls."""

    _serial = itertools.count()

    def __init__(self, shared):
        self._shared = shared
        self.identity = f"{shared.identity}/view-{next(self._serial)}"
        self.calls = Counter()

    def lock(self, key, timeout):
        self.calls["lock"] += 1
        return self._shared.lock(key, timeout)

    def try_lock(self, key):
        held = self._shared.try_lock(key)
        self.calls["try_lock" if held is not None else "try_lock refused"] += 1
        return held

    def load(self, key):
        self.calls["load"] += 1
        return self._shared.load(key)

    def save(self, record):
        self.calls["save"] += 1
        self._shared.save(record)

    def delete(self, key):
        self._shared.delete(key)

    def records(self):
        return self._shared.records()


@pytest.fixture
def key():
    # A key of its own per test: the manager's memory and flights are per process.
    return ChainKey("https://mcp.example/mcp", "https://as.example", f"client-{next(_keys)}")


@pytest.fixture
def clock():
    return ManualClock(1_000_000.0)


@pytest.fixture
def refresher(clock):
    return FakeRefresher(clock)


@pytest.fixture
def shared():
    return MemoryTokenStore()


@pytest.fixture
def view(shared):
    """This process's view of the store."""
    return StoreView(shared)


@pytest.fixture
def make_manager(key, view, refresher, clock):
    """A manager in this process (another one with ``view=StoreView(shared)``)."""

    def make(view=view, **options):
        options = {"refresh_skew": SKEW, "clock": clock, "login_hint": "Log in again.", **options}
        return TokenManager(key, view, refresher, **options)

    return make


@pytest.fixture
def logged_in(make_manager, clock):
    """The first login: generation 1 holds at-0/rt-0."""
    now = clock()
    make_manager().save_tokens(TokenSet("at-0", refresh_token="rt-0", expires_at=now + TTL, obtained_at=now))


def call_at_once(calls):
    """Each call in its own thread, all released by one barrier; returns the threads and a results
    list (a value or the exception raised) filled in as they end."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    return threads, results


def join(threads):
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def gated(refresher, managers, call, waiting):
    """Every manager's callers at once, the grant held until ``waiting()`` says everyone else is
    queued behind it; returns the results."""
    refresher.hold()
    threads, results = call_at_once([lambda m=m: call(m) for m in managers])
    assert refresher.entered.wait(30), "no grant was sent"
    wait_until(waiting, what="every other caller queued behind the grant")
    refresher.release()
    join(threads)
    return results


def waiting_on(manager):
    return _flights.waiting(manager._flight_key)


# --- the invariant --------------------------------------------------------------------------------


def test_n_threads_in_one_process_send_one_grant_per_expiry(make_manager, logged_in, view, refresher, clock):
    managers = [make_manager() for _ in range(N)]  # separate objects share one flight and memory
    for expiry in range(1, 4):
        clock.advance(TTL + 1)
        view.calls.clear()
        results = gated(refresher, managers, lambda m: m.token(), lambda: waiting_on(managers[0]) == N - 1)
        assert [t.access_token for t in results] == [f"at-{expiry}"] * N
        assert view.calls["try_lock"] == 1 and view.calls["try_lock refused"] == 0  # one leader went to the store
    assert refresher.presented == ["rt-0", "rt-1", "rt-2"]  # each rotated token once, never again


def test_threads_in_two_processes_send_one_grant_per_expiry(make_manager, logged_in, shared, refresher, clock):
    views = [StoreView(shared), StoreView(shared)]
    managers = [make_manager(view) for view in views for _ in range(N)]

    def everyone_queued():
        # Each process: its own leader, the others waiting on its flight; the process without
        # the lock has found it taken at least once.
        refused = sum(view.calls["try_lock refused"] for view in views)
        return all(waiting_on(m) == N - 1 for m in (managers[0], managers[N])) and refused >= 1

    for expiry in range(1, 4):
        clock.advance(TTL + 1)
        for view in views:
            view.calls.clear()
        results = gated(refresher, managers, lambda m: m.token(), everyone_queued)
        assert [t.access_token for t in results] == [f"at-{expiry}"] * (2 * N)
    assert refresher.presented == ["rt-0", "rt-1", "rt-2"]
    assert shared.load(managers[0].key).generation == 4


def test_a_newer_generation_in_the_store_is_adopted_without_a_grant_or_a_lock(
    make_manager, logged_in, shared, refresher, clock
):
    mine, theirs = StoreView(shared), StoreView(shared)
    manager, other = make_manager(mine), make_manager(theirs)
    assert manager.token().access_token == "at-0"
    clock.advance(TTL + 1)
    assert other.token().access_token == "at-1"  # the other process rotated
    mine.calls.clear()
    assert manager.token().access_token == "at-1"
    assert refresher.presented == ["rt-0"]
    assert mine.calls == Counter(load=1)  # one read, no lock


def test_the_fast_path_touches_no_lock_and_no_store(make_manager, logged_in, view, refresher, clock, monkeypatch):
    manager = make_manager()
    manager.token()  # learns the stored set
    view.calls.clear()
    monkeypatch.setattr(_flights, "run", lambda *args: pytest.fail("the fast path joined a flight"))
    for _ in range(100):
        assert manager.token().access_token == "at-0"
    clock.advance(TTL - SKEW - 1)  # still outside the refresh window
    assert manager.token().access_token == "at-0"
    assert view.calls == Counter()
    assert refresher.presented == []


def test_no_grant_is_sent_without_the_lock(make_manager, logged_in, shared, refresher, clock, key):
    manager = make_manager(lock_timeout=0.05)
    clock.advance(TTL + 1)
    # Another process is in the critical section and stays there.
    with shared.lock(key, timeout=1), pytest.raises(LockTimeout, match="no refresh was sent without the lock"):
        manager.token()
    assert refresher.presented == []
    assert manager.token().access_token == "at-1"


# --- after a rejection --------------------------------------------------------------------------


def test_a_rejected_token_that_is_no_longer_current_needs_no_refresh(make_manager, logged_in, refresher, clock):
    manager = make_manager()
    rejected = manager.token().access_token
    clock.advance(TTL + 1)
    assert manager.token().access_token == "at-1"  # somebody replaced it meanwhile
    clock.advance(10)
    assert manager.token_after_rejection(rejected).access_token == "at-1"
    assert refresher.presented == ["rt-0"]


def test_a_rejected_current_token_is_refreshed_once_by_all_who_saw_it_rejected(
    make_manager, logged_in, refresher
):
    managers = [make_manager() for _ in range(N)]
    rejected = managers[0].token().access_token  # valid by its expiry, but the resource refused it
    results = gated(
        refresher, managers, lambda m: m.token_after_rejection(rejected), lambda: waiting_on(managers[0]) == N - 1
    )
    assert [t.access_token for t in results] == ["at-1"] * N
    assert refresher.presented == ["rt-0"]


def test_a_rejected_token_replaced_in_the_store_is_adopted(make_manager, logged_in, shared, refresher):
    manager, other = make_manager(), make_manager(StoreView(shared))
    rejected = manager.token().access_token  # not expired: only the resource's rejection says it is bad
    assert other.token_after_rejection(rejected).access_token == "at-1"  # another process got there first
    assert manager.token_after_rejection(rejected).access_token == "at-1"
    assert refresher.presented == ["rt-0"]


# --- failures -----------------------------------------------------------------------------------


def test_invalid_grant_kills_the_chain_drops_its_refresh_token_and_reaches_every_waiter(
    make_manager, logged_in, shared, refresher, clock, key
):
    managers = [make_manager() for _ in range(N)]
    clock.advance(TTL + 1)
    refresher.fail = TokenEndpointError("refused", status_code=400, error_code="invalid_grant")
    results = gated(refresher, managers, lambda m: m.token(), lambda: waiting_on(managers[0]) == N - 1)
    assert all(isinstance(r, RefreshChainRevoked) for r in results)
    assert len({id(r) for r in results}) == N  # each waiter raised its own copy
    assert all(r.login_hint == "Log in again." for r in results)
    record = shared.load(key)
    assert record.is_dead and record.tokens is None  # nobody can present rt-0 again
    # Dead for every later caller and every other process, without another grant.
    with pytest.raises(RefreshChainRevoked):
        make_manager(StoreView(shared)).token()
    with pytest.raises(RefreshChainRevoked):
        managers[0].token()
    assert refresher.presented == ["rt-0"]


def test_a_transient_failure_reaches_every_waiter_as_a_copy_and_the_chain_survives(
    make_manager, logged_in, refresher, clock
):
    managers = [make_manager() for _ in range(N)]
    clock.advance(TTL + 1)
    refresher.fail = TokenEndpointError("down", status_code=503, transient=True)
    results = gated(refresher, managers, lambda m: m.token(), lambda: waiting_on(managers[0]) == N - 1)
    assert all(type(r) is TokenEndpointError and r.transient and r.status_code == 503 for r in results)
    assert len({id(r) for r in results}) == N
    refresher.fail = None
    assert managers[0].token().access_token == "at-2"
    assert refresher.presented == ["rt-0", "rt-0"]  # the failed grant rotated nothing


def test_login_required_carries_the_hint(make_manager):
    error = make_manager().login_required("no tokens are stored for the server")
    assert type(error) is AuthorizationRequired
    assert str(error) == "no tokens are stored for the server. Log in again."
    assert error.login_hint == "Log in again."
    assert str(make_manager(login_hint="").login_required("why")) == "why."


@pytest.mark.parametrize("case", ["nothing stored", "no refresh token", "no refresher"])
def test_what_cannot_be_refreshed_asks_for_a_login(make_manager, key, shared, clock, case):
    now = clock()
    if case != "nothing stored":
        refresh_token = None if case == "no refresh token" else "rt-0"
        make_manager().save_tokens(TokenSet("at-0", refresh_token=refresh_token, expires_at=now + 1, obtained_at=now))
    clock.advance(2)
    manager = make_manager() if case != "no refresher" else TokenManager(key, StoreView(shared), None, clock=clock)
    with pytest.raises(AuthorizationRequired) as info:
        manager.token()
    assert type(info.value) is AuthorizationRequired


def test_a_new_login_revives_a_dead_chain(make_manager, logged_in, refresher, clock):
    manager = make_manager()
    clock.advance(TTL + 1)
    refresher.fail = TokenEndpointError("refused", error_code="invalid_grant")
    with pytest.raises(RefreshChainRevoked):
        manager.token()
    now = clock()
    saved = manager.save_tokens(TokenSet("at-new", refresh_token="rt-new", expires_at=now + TTL, obtained_at=now))
    assert saved.generation == 3  # 1: first login, 2: dead, 3: this one
    assert manager.token().access_token == "at-new"


def test_the_logins_resource_indicator_goes_to_every_refresh_and_stays_with_the_chain(
    make_manager, key, shared, refresher, clock
):
    origin = "https://mcp.example"  # what the metadata published for key.resource, .../mcp
    now = clock()
    first = make_manager()
    first.save_tokens(TokenSet("at-0", refresh_token="rt-0", expires_at=now + 1, obtained_at=now), None, origin)
    clock.advance(2)
    assert first.token().access_token == "at-1"
    clock.advance(TTL)
    assert make_manager(view=StoreView(shared)).token().access_token == "at-2"  # another process
    assert refresher.resources == [origin, origin]
    assert shared.load(key).resource_indicator == origin
    # Tokens saved by hand keep the chain's resource; a record without one hands the refresher None.
    first.save_tokens(TokenSet("at-x", refresh_token="rt-x", expires_at=clock() + 1, obtained_at=clock()))
    assert shared.load(key).resource_indicator == origin
    first.forget()
    first.save_tokens(TokenSet("at-y", refresh_token="rt-y", expires_at=clock() + 1, obtained_at=clock()))
    clock.advance(2)
    first.token()
    assert refresher.resources[-1] is None and shared.load(key).resource_indicator is None
    # A refused refresh kills the chain; the dead record still names the resource.
    first.save_tokens(TokenSet("at-z", refresh_token="rt-z", expires_at=clock() + 1, obtained_at=clock()), None, origin)
    refresher.fail = TokenEndpointError("refused", status_code=400, error_code="invalid_grant")
    clock.advance(2)
    with pytest.raises(AuthorizationRequired):
        first.token()
    dead = shared.load(key)
    assert dead.is_dead and dead.resource_indicator == origin


# --- early refresh -------------------------------------------------------------------------------


def test_early_refresh_happens_inside_the_window_and_not_before(make_manager, logged_in, refresher, clock):
    manager = make_manager()
    clock.advance(TTL - SKEW - 1)
    assert manager.token().access_token == "at-0"
    assert refresher.presented == []
    clock.advance(2)  # inside the window, not expired
    assert manager.token().access_token == "at-1"
    assert refresher.presented == ["rt-0"]


def test_during_an_early_refresh_other_callers_keep_the_current_token(make_manager, logged_in, refresher, clock):
    manager = make_manager()
    clock.advance(TTL - SKEW + 1)
    refresher.hold()
    leader = threading.Thread(target=manager.token)
    leader.start()
    assert refresher.entered.wait(30)
    try:
        # Nobody queues behind an early refresh: the current token still works.
        assert [manager.token().access_token for _ in range(20)] == ["at-0"] * 20
    finally:
        refresher.release()
        join([leader])
    assert manager.token().access_token == "at-1"
    assert refresher.presented == ["rt-0"]


def test_a_failed_early_refresh_returns_the_current_token(make_manager, logged_in, refresher, clock):
    manager = make_manager()
    clock.advance(TTL - SKEW + 1)
    refresher.fail = TokenEndpointError("down", status_code=503, transient=True)
    assert manager.token().access_token == "at-0"
    clock.advance(SKEW)  # expired now: the failure is the caller's
    with pytest.raises(TokenEndpointError):
        manager.token()
    assert refresher.presented == ["rt-0", "rt-0"]


def test_an_early_refresh_that_finds_the_lock_taken_returns_the_current_token(
    make_manager, logged_in, shared, refresher, clock, key
):
    manager = make_manager()
    manager.token()
    clock.advance(TTL - SKEW + 1)
    with shared.lock(key, timeout=1):  # another process is refreshing
        assert manager.token().access_token == "at-0"
    assert refresher.presented == []
