"""Redis stores that tell the test, through Redis itself, what each attempt at the lease gave: the
store's behaviour is unchanged, and the test can wait (BLPOP) for a process to have been refused."""

from mcp_sync_auth._stores.redis import RedisTokenStore

from .naive import UnmarkedStore

ATTEMPTS = "test:lease-attempts"


class Reporting(RedisTokenStore):
    def try_lock(self, key):
        lock = super().try_lock(key)
        self._client.rpush(ATTEMPTS, "refused" if lock is None else "taken")
        return lock


class UnmarkedReporting(UnmarkedStore, Reporting):
    pass
