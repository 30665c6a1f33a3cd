"""The per-process memory of chains is bounded (an LRU of what the store can give back), never drops a
set only this process has, never splits one chain into two memories, and the fast path takes no lock.

Each test runs against a registry of its own (``memories``), so the sizes it asserts are exact.
"""

import gc
import itertools
import threading
from collections import Counter

import pytest
import requests

from mcp_sync_auth import (
    ChainKey,
    ChainRecord,
    ConfigurationError,
    FileTokenStore,
    MCPAuth,
    MemoryTokenStore,
    TokenSet,
    TokenStoreError,
)
from mcp_sync_auth._refresh import manager as manager_module
from mcp_sync_auth._refresh import memory
from mcp_sync_auth._refresh.manager import TokenManager, _flights
from mcp_sync_auth._refresh.memory import ChainMemories
from mcp_sync_auth.testing import login

from ..clocks import ManualClock
from ..helpers import wait_until
from .test_manager import FakeRefresher, StoreView

TTL = 300.0
SKEW = 60.0
BOUND = 64
_serial = itertools.count()


class RefusingStore(MemoryTokenStore):
    """A store whose writes fail while ``refuse`` is set (a full disk, say); counts loads per chain."""

    def __init__(self):
        super().__init__()
        self.refuse = False
        self.loads = Counter()

    def load(self, key):
        self.loads[key] += 1
        return super().load(key)

    def save(self, record):
        if self.refuse:
            raise TokenStoreError("the store is full (test)")
        super().save(record)


class CountingLock:
    """A lock that counts its acquisitions."""

    def __init__(self):
        self._lock = threading.Lock()
        self.acquired = 0

    def acquire(self, *args, **kwargs):
        self.acquired += 1
        return self._lock.acquire(*args, **kwargs)

    def release(self):
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


@pytest.fixture
def memories(monkeypatch):
    registry = ChainMemories(BOUND)
    monkeypatch.setattr(manager_module, "MEMORIES", registry)
    return registry


@pytest.fixture
def clock():
    return ManualClock(1_000_000.0)


@pytest.fixture
def refresher(clock):
    return FakeRefresher(clock)


@pytest.fixture
def store():
    return RefusingStore()


def chain_key(n):
    return ChainKey("https://mcp.example/mcp", "https://as.example", f"client-{next(_serial)}-{n}")


def stored_chain(store, clock, n, generation=1):
    """A chain logged in directly in the store (as another process would have), generation ``generation``."""
    key = chain_key(n)
    now = clock()
    tokens = TokenSet(f"at-{n}", refresh_token=f"rt-{n}", expires_at=now + TTL, obtained_at=now, generation=generation)
    store.save(ChainRecord(key, generation, tokens, token_endpoint="https://as.example/token", updated_at=now))
    return key


def manager(key, store, refresher, clock):
    return TokenManager(key, store, refresher, refresh_skew=SKEW, clock=clock)


def settled_sizes(memories):
    gc.collect()  # a manager dropped by a test is gone; the weak map reports what is still referenced
    return memories.sizes()


def test_100000_chains_touched_once_leave_exactly_the_bound_in_memory(memories, store, refresher, clock):
    keys = [stored_chain(store, clock, n) for n in range(100_000)]
    for key in keys:
        assert manager(key, store, refresher, clock).token().access_token.startswith("at-")
    assert settled_sizes(memories) == {"recent": BOUND, "unsaved": 0, "live": BOUND}
    assert _flights.in_flight((store.identity, keys[0])) is False


def test_a_chain_touched_again_after_eviction_is_read_again_from_the_store(memories, store, refresher, clock):
    first = stored_chain(store, clock, 0)
    assert manager(first, store, refresher, clock).token().generation == 1
    for n in range(1, BOUND + 1):  # pushes ``first`` out of the LRU
        key = stored_chain(store, clock, n)
        manager(key, store, refresher, clock).token()
    # Meanwhile another process rotated ``first``: generation 7 in the store.
    now = clock()
    rotated = TokenSet("at-7", refresh_token="rt-7", expires_at=now + TTL, obtained_at=now, generation=7)
    store.save(ChainRecord(first, 7, rotated, token_endpoint="https://as.example/token", updated_at=now))
    store.loads.clear()
    tokens = manager(first, store, refresher, clock).token()
    # An unbounded memory would still hand out generation 1 here, without reading the store.
    assert (tokens.generation, tokens.access_token) == (7, "at-7")
    assert store.loads[first] == 1
    assert refresher.presented == []


def test_an_unsaved_set_is_never_evicted_and_is_written_on_the_next_call(memories, store, refresher, clock):
    key = stored_chain(store, clock, 0)
    clock.advance(TTL + 1)  # expired: the next call refreshes
    store.refuse = True
    fresh = manager(key, store, refresher, clock).token()  # the manager is dropped right away
    assert fresh.access_token == "at-1" and store.load(key).generation == 1  # the store still has the spent set
    store.refuse = False  # room again; the set is written on the chain's next call, not before
    for n in range(1, 3 * BOUND):  # far past the bound
        other = stored_chain(store, clock, n)
        manager(other, store, refresher, clock).token()
    sizes = settled_sizes(memories)
    assert sizes["unsaved"] == 1 and sizes["recent"] == BOUND
    assert store.load(key).generation == 1
    again = manager(key, store, refresher, clock).token()
    assert again.access_token == "at-1"
    record = store.load(key)
    assert (record.generation, record.tokens.refresh_token) == (2, "rt-1")
    # Had the memory been dropped, the spent rt-0 would have gone out a second time.
    assert refresher.presented[:1] == ["rt-0"] and refresher.presented.count("rt-0") == 1
    assert settled_sizes(memories)["unsaved"] == 0


def test_two_managers_of_one_chain_share_one_memory_after_eviction_pressure(memories, store, refresher, clock):
    key = stored_chain(store, clock, 0)
    one = manager(key, store, refresher, clock)
    two = manager(key, store, refresher, clock)
    one.token()
    for n in range(1, 3 * BOUND):
        manager(stored_chain(store, clock, n), store, refresher, clock).token()
    three = manager(key, store, refresher, clock)  # created after ``key`` left the LRU
    assert one._memory is two._memory is three._memory
    clock.advance(TTL + 1)
    assert one.token().access_token == "at-1"
    store.loads.clear()
    # The refresh is seen by the others without a store read (and without a second grant).
    assert two.token().access_token == "at-1"
    assert three.token().access_token == "at-1"
    assert store.loads[key] == 0
    assert refresher.presented == ["rt-0"]


def test_a_chain_with_a_flight_in_progress_keeps_one_memory_through_eviction(memories, store, refresher, clock):
    key = stored_chain(store, clock, 0)
    clock.advance(TTL + 1)
    refresher.hold()
    results = []
    leader = threading.Thread(target=lambda: results.append(manager(key, store, refresher, clock).token()))
    leader.start()
    assert refresher.entered.wait(30), "no grant was sent"
    for n in range(1, 3 * BOUND):  # while the grant is out, ``key`` is pushed out of the LRU
        manager(stored_chain(store, clock, n, generation=1), store, refresher, clock)
    late = manager(key, store, refresher, clock)
    joined = []
    waiter = threading.Thread(target=lambda: joined.append(late.token()))
    waiter.start()
    wait_until(lambda: _flights.waiting((store.identity, key)) == 1, what="the late caller joining the flight")
    refresher.release()
    leader.join(30)
    waiter.join(30)
    assert [t.access_token for t in results + joined] == ["at-1", "at-1"]
    assert refresher.presented == ["rt-0"]
    assert late.current().access_token == "at-1"


def test_the_fast_path_takes_no_lock(memories, store, refresher, clock, monkeypatch):
    view = StoreView(store)
    managers = [manager(stored_chain(store, clock, n), view, refresher, clock) for n in range(100)]
    for each in managers:
        each.token()  # learns its stored set
    guard = CountingLock()
    monkeypatch.setattr(memories, "_guard", guard)
    flight_guard = CountingLock()
    monkeypatch.setattr(_flights, "_guard", flight_guard)
    view.calls.clear()
    for _ in range(100):
        for each in managers:
            assert each.token().generation == 1
    assert (guard.acquired, flight_guard.acquired) == (0, 0)
    assert view.calls == Counter()  # no store lock, no read


def test_the_bound_can_be_set_and_a_wrong_one_is_refused(memories, store, refresher, clock):
    keys = [stored_chain(store, clock, n) for n in range(BOUND)]
    for key in keys:
        manager(key, store, refresher, clock).token()
    manager(keys[0], store, refresher, clock)  # the oldest is the most recent again
    memories.set_bound(8)
    assert settled_sizes(memories) == {"recent": 8, "unsaved": 0, "live": 8}
    kept = {key for (_, key) in memories._recent}
    assert kept == {keys[0], *keys[-7:]}  # the 8 most recently used survive the new bound
    for wrong in (0, -1, True, 2.5, "many"):
        with pytest.raises(ConfigurationError, match="at least 1"):
            memories.set_bound(wrong)


def test_a_wrong_bound_in_the_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(memory.ENV_BOUND, "lots")
    with pytest.raises(ConfigurationError, match="MCP_SYNC_AUTH_CHAIN_MEMORY must be a whole number"):
        memory._bound_from_environment()
    monkeypatch.setenv(memory.ENV_BOUND, "12")
    assert memory._bound_from_environment() == 12
    monkeypatch.delenv(memory.ENV_BOUND)
    assert memory._bound_from_environment() == memory.DEFAULT_BOUND == 4096


class CountingStore(FileTokenStore):
    """A file store that counts every call that could read, list or lock."""

    def __init__(self, directory):
        super().__init__(directory)
        self.calls = Counter()

    def load(self, key):
        self.calls["load"] += 1
        return super().load(key)

    def inventory(self):
        self.calls["inventory"] += 1
        return super().inventory()

    def lock(self, key, timeout):
        self.calls["lock"] += 1
        return super().lock(key, timeout)

    def try_lock(self, key):
        self.calls["try_lock"] += 1
        return super().try_lock(key)


def test_mcpauth_with_a_fresh_token_takes_no_lock_and_reads_no_store(memories, server, clock, store_dir, monkeypatch):
    store = CountingStore(store_dir)
    first = login(server, store, clock=clock)
    auth = MCPAuth(server.mcp_url, store=store, clock=clock, interactive=False)
    request = requests.Request("POST", server.mcp_url).prepare()
    expected = f"Bearer {first.access_token()}"
    assert auth(request).headers["Authorization"] == expected  # finds its chain in the store
    guards = {"memories": CountingLock(), "flights": CountingLock(), "resolve": CountingLock()}
    monkeypatch.setattr(memories, "_guard", guards["memories"])
    monkeypatch.setattr(_flights, "_guard", guards["flights"])
    monkeypatch.setattr(auth._source, "_resolve_guard", guards["resolve"])
    store.calls.clear()
    for _ in range(1000):
        request = requests.Request("POST", server.mcp_url).prepare()
        assert auth(request).headers["Authorization"] == expected
    assert {name: guard.acquired for name, guard in guards.items()} == {"memories": 0, "flights": 0, "resolve": 0}
    assert store.calls == Counter()
