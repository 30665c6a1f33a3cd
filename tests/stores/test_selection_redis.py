"""store_from_spec with redis:// URLs, against a real redis-server: the Redis store, named for people
without its password, from the library and from the command line.

These need mcp_sync_auth._stores.redis (RedisTokenStore) and redis-py."""

import pytest

from mcp_sync_auth._stores.selection import STORE_ENVIRONMENT_VARIABLE, describe_store, store_from_spec
from mcp_sync_auth.errors import ConfigurationError
from mcp_sync_auth.testing import RedisServer

from ..cli.shell import finish, start
from .test_store import KEY, record

PASSWORD = "pw-s3cret-9"


@pytest.fixture
def redis_with_password():
    with RedisServer(password=PASSWORD) as server:
        yield server


def redis_store_class():
    from mcp_sync_auth._stores.redis import RedisTokenStore  # noqa: PLC0415

    return RedisTokenStore


def test_a_redis_url_is_the_redis_store(redis_server):
    store = store_from_spec(redis_server.url)
    assert isinstance(store, redis_store_class())
    store.save(record())
    assert store_from_spec(redis_server.url).load(KEY) == record()  # the same data, from another store object


def test_the_variable_may_name_a_redis_store(redis_server, monkeypatch):
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, redis_server.url)
    assert isinstance(store_from_spec(None), redis_store_class())


def test_a_redis_store_with_a_password_works_and_is_described_without_it(redis_with_password):
    url = redis_with_password.url
    assert f":{PASSWORD}@" in url and url.startswith("redis://:")
    store = store_from_spec(url)
    assert isinstance(store, redis_store_class())
    store.save(record())
    assert store.load(KEY) == record()
    text = describe_store(store)
    assert PASSWORD not in text
    assert text == store.location
    assert f"127.0.0.1:{redis_with_password.port}" in text
    assert PASSWORD not in repr(store)


def test_describe_hides_the_password_of_a_plain_url(redis_with_password):
    store = store_from_spec(f"redis://:pw@127.0.0.1:{redis_with_password.port}/0")
    text = describe_store(store)
    assert ":pw@" not in text and f"127.0.0.1:{redis_with_password.port}" in text


@pytest.mark.parametrize("scheme", ["redis", "rediss", "unix"])
def test_each_redis_scheme_reaches_the_redis_store(scheme, redis_server):
    # Whatever from_url makes of it, it is the Redis store's call: a store, or a ConfigurationError
    # that does not show the password.
    spec = {
        "redis": redis_server.url,
        "rediss": f"rediss://:{PASSWORD}@127.0.0.1:{redis_server.port}/0",
        "unix": f"unix://:{PASSWORD}@/tmp/no-such-redis.sock?db=0",
    }[scheme]
    redis_store = redis_store_class()  # the module must be there: a missing one is not a pass
    try:
        store = store_from_spec(spec)
    except ConfigurationError as exc:
        assert PASSWORD not in str(exc)
    else:
        assert isinstance(store, redis_store)
        assert PASSWORD not in describe_store(store)


def test_cli_status_names_the_redis_store_without_its_password(redis_with_password):
    code, out, err = finish(start(redis_with_password.url, "status"))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("store: ") and f"127.0.0.1:{redis_with_password.port}" in first
    assert PASSWORD not in out and PASSWORD not in err
    environment = {STORE_ENVIRONMENT_VARIABLE: redis_with_password.url}
    code, out, err = finish(start("memory:", "status", environment=environment))
    assert code == 0 and out.splitlines()[0] == "store: memory (this process only)"  # --store wins
