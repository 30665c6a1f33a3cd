"""The Redis change feed of one process keeps counts only for the chains it asked about (bounded), and
a chain somebody waits on is counted even after the bound pushed it out."""

import threading

import redis

from mcp_sync_auth import ChainKey
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth._stores.redis import store as redis_store_module
from mcp_sync_auth._stores.redis.changes import REMEMBERED

from ..helpers import wait_until

NEVER = 3600.0


def _key(n):
    return ChainKey("https://mcp.example/mcp", "https://as.example", f"client-{n}")


def _announce(redis_server, store, keys):
    """Publish one change message for each key's chain, as the store's scripts do (one pipeline)."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.publish(store._name(key, "changed"), "committed")
            pipe.execute()
    finally:
        client.close()


def _live_store(redis_server):
    store = RedisTokenStore.from_url(redis_server.url)
    store.changes(_key("probe"))  # starts the feed
    wait_until(lambda: store._changes.live, what="the subscription")
    return store


def test_the_fleets_other_chains_are_not_counted(redis_server):
    store = _live_store(redis_server)
    try:
        probe = _key("probe")
        seen = store.changes(probe)
        # 10,000 chains of the fleet change; this process never asked about them.
        _announce(redis_server, store, [_key(n) for n in range(10_000)] + [probe])
        # Pub/sub keeps the order: once the probe's message is counted, every earlier one was seen.
        wait_until(lambda: store.changes(probe) == seen + 1, what="the probe's message")
        assert store._changes.counted() == 1
    finally:
        store.close()


def test_counts_are_bounded_and_a_waited_chain_still_wakes_after_it_was_pushed_out(redis_server, monkeypatch):
    monkeypatch.setattr(redis_store_module, "_MAX_PAUSE", NEVER)
    store = _live_store(redis_server)
    try:
        waited = _key("waited")
        seen = store.changes(waited)
        woken = []
        thread = threading.Thread(target=lambda: woken.append(store.wait_for_change(waited, seen, NEVER)))
        thread.start()
        wait_until(lambda: store._changes._waited.get(waited.stem) == 1, what="the waiter")
        for n in range(REMEMBERED + 1000):  # asked about more chains than are kept: the waited one is pushed out
            store.changes(_key(n))
        assert store._changes.counted() == REMEMBERED
        assert waited.stem not in store._changes._counts
        _announce(redis_server, store, [waited])
        # The waiter's timers last an hour: only the message, counted because it waits, can wake it.
        thread.join(60)
        assert woken == [seen + 1]
        assert store._changes.counted() == REMEMBERED
    finally:
        store.close()
