"""Two Redis stores built the way the fleets in the public record built theirs, to prove that the
tests can fail: the strict server kills their chains where ours survives.

- ``UnrenewedLeaseStore``: a lock with a fixed lease that nobody renews (oauth2-proxy's 2 s,
  appstrate's 45 s), and no guard before the send: a slow token endpoint outlives the lease, and a
  second holder presents the same refresh token.
- ``UnlockedFallbackStore``: refreshes without the lock when Redis cannot be reached (litellm, neon),
  from the tokens it last read.
- ``UnmarkedStore``: ours without the in-flight mark: a lease freed after a grant whose answer is
  not in Redis yet (its commit failed) is taken at once, and the spent refresh token presented again.
"""

import contextlib
import json

from mcp_sync_auth import TokenStoreError
from mcp_sync_auth._stores.document import document_to_record, record_to_document
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth._stores.reservation import SaveOnCommit


class UnrenewedLeaseStore(RedisTokenStore):
    def try_lock(self, key):
        name = self._name(key, "naive-lock")
        if not self._client.set(name, "held", nx=True, px=int(self.lease * 1000)):
            return None
        return _deleting(self._client, name)

    def load(self, key):
        doc = self._client.get(self._name(key, "naive-record"))
        return None if doc is None else document_to_record(json.loads(doc))

    def save(self, record):
        self._client.set(self._name(record.key, "naive-record"), json.dumps(record_to_document(record)))

    def reserve(self, current):
        return SaveOnCommit(self)  # no lease check, no in-flight mark


class UnlockedFallbackStore(UnrenewedLeaseStore):
    """As above, and when Redis is away: no lock, and the record this process last saw."""

    last = None

    def try_lock(self, key):
        try:
            return super().try_lock(key)
        except Exception:
            return contextlib.nullcontext()  # "Redis is down, refresh anyway"

    def load(self, key):
        try:
            found = super().load(key)
        except Exception:
            return type(self).last
        type(self).last = found
        return found

    def save(self, record):
        type(self).last = record
        try:
            super().save(record)
        except Exception as exc:
            raise TokenStoreError("naive store could not write") from exc


class UnmarkedStore(RedisTokenStore):
    def _name(self, key, part):
        # Marks are written, and looked for, under a name of this store's own: it never sees ours.
        return super()._name(key, "unmarked-inflight" if part == "inflight" else part)


@contextlib.contextmanager
def _deleting(client, name):
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            client.delete(name)
