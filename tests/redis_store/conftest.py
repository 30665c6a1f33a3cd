import pytest

from mcp_sync_auth import ChainKey
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth.testing import RedisServer

KEY = ChainKey("https://mcp.example/mcp", "https://as.example", "client-1")


@pytest.fixture
def redis_store(redis_server):
    store = RedisTokenStore.from_url(redis_server.url)
    yield store
    store.close()


@pytest.fixture
def secret_redis():
    """A Redis that needs a password (and whose password must never be shown)."""
    server = RedisServer(password="s3cret-redis-pw")
    try:
        yield server.start()
    finally:
        server.close()
