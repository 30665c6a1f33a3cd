"""A process waiting for a chain's lease in the Redis store is woken by the holder's release (published
on the chain's change channel), not by a timer."""

import threading

from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth._stores.redis import store as redis_store_module

from ..helpers import wait_until
from .conftest import KEY

NEVER = 3600.0


def test_a_lease_waiter_is_woken_by_the_release_not_by_a_timer(redis_server, monkeypatch):
    # Every pause of the waiter lasts an hour: only an announcement can wake it in time.
    monkeypatch.setattr(redis_store_module, "_MAX_PAUSE", NEVER)
    monkeypatch.setattr(redis_store_module, "_FIRST_PAUSE", NEVER, raising=False)
    holder = RedisTokenStore.from_url(redis_server.url)
    waiter = RedisTokenStore.from_url(redis_server.url, prefix="mcp-sync-auth")
    attempts = []
    acquire = waiter._acquire

    def counted(key):
        lease = acquire(key)
        attempts.append(lease is not None)
        return lease

    monkeypatch.setattr(waiter, "_acquire", counted)
    waiter.changes(KEY)  # starts its feed
    wait_until(lambda: waiter._changes.live, what="the waiter's subscription")
    taken = []

    def wait_for_the_lease():
        lock = waiter.lock(KEY, timeout=NEVER)
        lock.__enter__()
        taken.append(lock)  # kept: the lease is held until it is exited

    with holder.lock(KEY, timeout=5):
        thread = threading.Thread(target=wait_for_the_lease, daemon=True)
        thread.start()
        wait_until(lambda: attempts == [False], what="the waiter's first attempt, refused")
    thread.join(60)  # on code that does not announce the release, the waiter sleeps out its hour
    assert not thread.is_alive()
    assert attempts == [False, True] and len(taken) == 1
    assert waiter.held_leases()  # it holds the lease now
    taken[0].__exit__(None, None, None)
    holder.close()
    waiter.close()
