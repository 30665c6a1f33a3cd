"""``status`` says "refreshing" for a chain whose lease another process (or host) holds, read with
EXISTS: asking never takes the lease, so it never delays the refresh it reports."""

from mcp_sync_auth._stores.redis import RedisTokenStore

from .conftest import KEY


def test_a_held_lease_shows_and_asking_takes_nothing(redis_store, redis_server):
    other_host = RedisTokenStore.from_url(redis_server.url)
    try:
        assert not redis_store.refresh_in_flight(KEY)
        with other_host.lock(KEY, timeout=5):
            assert redis_store.refresh_in_flight(KEY)
            assert redis_store.try_lock(KEY) is None  # still the other's: asking took nothing
        assert not redis_store.refresh_in_flight(KEY)
        lease = redis_store.try_lock(KEY)
        assert lease is not None  # free again: nothing was left behind by asking
        with lease:
            pass
    finally:
        other_host.close()


def test_an_in_flight_mark_counts_only_until_its_deadline(redis_store, redis_server):
    inflight = redis_store._name(KEY, "inflight")
    seconds, micros = redis_server.command("TIME")
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    redis_server.command("HSET", inflight, "deadline_ms", str(now_ms + 60_000), "owner", "x")
    assert redis_store.refresh_in_flight(KEY)  # a grant marked in flight, its lease lost
    redis_server.command("HSET", inflight, "deadline_ms", str(now_ms - 1))
    assert not redis_store.refresh_in_flight(KEY)  # the mark of a grant that is over
