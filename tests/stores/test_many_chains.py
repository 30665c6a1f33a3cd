"""``records()`` and ``status`` over 10,000 stored chains: every chain listed, each read once, and a
number of reads (files, kernel lock table, Redis round trips) that does not grow per chain beyond
what it must. Counts are asserted, never times.
"""

import dataclasses
import gc
import json
import math
import os
import pickle
import threading
import time

import pytest
import redis

from mcp_sync_auth import ChainKey, ChainRecord, FileTokenStore, TokenSet
from mcp_sync_auth._stores import document as document_module
from mcp_sync_auth._stores import file as file_module
from mcp_sync_auth._stores.inventory import refreshes_in_flight
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth._stores.redis import store as redis_store_module
from mcp_sync_auth.cli.main import main

CHAINS = 10_000


def chain_keys(count=CHAINS):
    return [ChainKey("https://mcp.example/mcp", "https://as.example", f"client-{n}") for n in range(count)]


def record_for(key, n, now):
    tokens = TokenSet(f"at-{n}", refresh_token=f"rt-{n}", expires_at=now + 3600, obtained_at=now, generation=1)
    return ChainRecord(key, 1, tokens, token_endpoint="https://as.example/token", updated_at=now)


class Counted:
    """Wraps a function and counts its calls."""

    def __init__(self, function):
        self._function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._function(*args, **kwargs)


@pytest.fixture
def filled_folder(tmp_path, monkeypatch):
    """A file store with 10,000 chains, written through the store (without fsync, to be quick)."""
    folder = tmp_path / "tokens"
    store = FileTokenStore(folder)
    now = time.time()
    with monkeypatch.context() as quick:
        quick.setattr(file_module.os, "fsync", lambda fd: None)
        for n, key in enumerate(chain_keys()):
            store.save(record_for(key, n, now))
    return folder


def test_file_store_records_read_each_file_once_and_parse_each_document_once(filled_folder, monkeypatch):
    reads = Counted(file_module._read_file)
    parses = Counted(document_module.document_to_record)
    monkeypatch.setattr(file_module, "_read_file", reads)
    monkeypatch.setattr(file_module, "document_to_record", parses)
    records = FileTokenStore(filled_folder).records()
    assert len(records) == CHAINS
    assert {r.key for r in records} == set(chain_keys())
    # One read and one parse per file (the parse used to run twice: once to judge, once to use).
    assert (reads.calls, parses.calls) == (CHAINS, CHAINS)


def test_file_store_status_lists_every_chain_from_one_read_of_the_lock_table(filled_folder, monkeypatch, capsys):
    store = FileTokenStore(filled_folder)
    busy_key = chain_keys(1)[0]
    table_reads = Counted(file_module._flocks_held)
    monkeypatch.setattr(file_module, "_flocks_held", table_reads)
    with store.lock(busy_key, 5.0):  # this process holds one chain's flock: that chain is "refreshing"
        assert main(["--store", str(filled_folder), "status", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == CHAINS
    states = {}
    for chain in listed:
        states[chain["state"]] = states.get(chain["state"], 0) + 1
    assert states == {"alive": CHAINS - 1, "refreshing": 1}
    assert [c["client_id"] for c in listed if c["state"] == "refreshing"] == [busy_key.client_id]
    if table_reads.calls:  # Linux: the kernel's table, read once for all 10,000, not once per chain
        assert table_reads.calls == 1


def test_the_batch_busy_probe_agrees_with_the_one_chain_probe(tmp_path):
    store = FileTokenStore(tmp_path / "tokens")
    now = time.time()
    keys = chain_keys(20)
    for n, key in enumerate(keys):
        store.save(record_for(key, n, now))
    held = threading.Event()
    done = threading.Event()

    def hold(key):
        with store.lock(key, 5.0):
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold, args=(keys[7],))
    holder.start()
    try:
        assert held.wait(30)
        assert refreshes_in_flight(store, keys) == {k for k in keys if store.refresh_in_flight(k)} == {keys[7]}
    finally:
        done.set()
        holder.join(30)
    assert refreshes_in_flight(store, keys) == set()


class RoundTrips:
    """A redis-py connection class that counts the requests it sends (a pipeline is one)."""

    count = 0

    @classmethod
    def connection_class(cls):
        counter = cls

        class CountingConnection(redis.Connection):
            def send_packed_command(self, command, check_health=True):
                counter.count += 1
                return super().send_packed_command(command, check_health)

        return CountingConnection


@pytest.fixture
def filled_redis(redis_server):
    """A Redis store with 10,000 chains, written through the store; its connections count round trips."""
    store = RedisTokenStore.from_url(redis_server.url, connection_class=RoundTrips.connection_class())
    now = time.time()
    for n, key in enumerate(chain_keys()):
        store.save(record_for(key, n, now))
    yield store
    store.close()


def test_redis_records_and_status_need_a_bounded_number_of_round_trips(filled_redis, redis_server, capsys):
    store = filled_redis
    keys_in_redis = int(store._client.dbsize())
    RoundTrips.count = 0
    records = store.records()
    trips = RoundTrips.count
    assert len(records) == CHAINS
    assert {r.key for r in records} == set(chain_keys())
    # SCAN steps over the whole key space, then one pipelined read per batch; one read per chain
    # would be 10,000 round trips.
    scan_steps = 2 * math.ceil(keys_in_redis / redis_store_module._SCAN_COUNT) + 2
    batches = math.ceil(CHAINS / redis_store_module._LIST_BATCH)
    assert batches <= trips <= scan_steps + batches
    busy_key = chain_keys(1)[0]
    with store.lock(busy_key, 5.0):  # this process holds one chain's lease: that chain is busy
        RoundTrips.count = 0
        busy = refreshes_in_flight(store, [r.key for r in records])
        probe_trips = RoundTrips.count
    assert busy == {busy_key}
    assert probe_trips == batches  # EXISTS and HGET of every chain of a batch, and TIME, in one pipeline
    assert main(["--store", redis_server.url, "status", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == CHAINS and {c["state"] for c in listed} == {"alive"}


def test_a_store_without_the_batch_probe_is_asked_chain_by_chain(tmp_path):
    class OneByOne:
        def __init__(self):
            self.asked = []

        def refresh_in_flight(self, key):
            self.asked.append(key)
            return key.client_id == "client-3"

    store = OneByOne()
    keys = chain_keys(5)
    assert refreshes_in_flight(store, keys) == {keys[3]}
    assert store.asked == keys


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="the kernel's lock table is Linux's")
def test_the_lock_table_names_a_held_flock(tmp_path):
    store = FileTokenStore(tmp_path / "tokens")
    key = chain_keys(1)[0]
    store.save(record_for(key, 0, time.time()))
    with store.lock(key, 5.0):
        info = os.stat(store.directory / (key.stem + ".lock"))
        assert file_module._file_id(info.st_dev, info.st_ino) in file_module._flocks_held()


def test_a_cached_stem_changes_nothing_a_key_compares_hashes_or_shows():
    fresh, used = chain_keys(1)[0], chain_keys(1)[0]
    stem = used.stem  # cached on ``used`` only
    assert used.stem == stem == fresh.stem
    assert used == fresh and hash(used) == hash(fresh) and repr(used) == repr(fresh)
    assert used.to_json() == fresh.to_json() == dataclasses.asdict(fresh)
    assert pickle.loads(pickle.dumps(used)) == fresh
    assert pickle.loads(pickle.dumps(used)).stem == stem
    assert dataclasses.replace(used, account="bob").stem != stem


def test_the_redis_lease_registry_holds_only_the_leases_in_use(redis_server):
    store = RedisTokenStore.from_url(redis_server.url)
    # The registry is the process's: count from what earlier tests in this process left in it.
    gc.collect()
    leases, attempts = redis_store_module._HELD.sizes()
    try:
        chains = chain_keys(300)
        for key in chains:
            with store.lock(key, 5.0):
                pass
        gc.collect()
        assert redis_store_module._HELD.sizes() == (leases, attempts)  # it used to keep one entry per key ever locked
        with store.lock(chains[0], 5.0):
            gc.collect()
            assert redis_store_module._HELD.sizes() == (leases + 1, attempts + 1)
            assert list(store.held_leases()) == [store._name(chains[0], "lease")]
        gc.collect()
        assert redis_store_module._HELD.sizes() == (leases, attempts)
    finally:
        store.close()
