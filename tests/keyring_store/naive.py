"""A naive keyring store, for the test that must fail: secrets in the keychain, but a lock that only
excludes the threads of one process (what a store gets when it trusts the keychain to serialise
writers: a keychain replaces an entry atomically, and that is all it does)."""

import contextlib
import threading

from mcp_sync_auth import KeyringTokenStore


class ProcessLocalLockStore(KeyringTokenStore):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._local_locks = {}
        self._guard = threading.Lock()

    def _local(self, key):
        with self._guard:
            return self._local_locks.setdefault(key.stem, threading.Lock())

    @contextlib.contextmanager
    def lock(self, key, timeout):
        lock = self._local(key)
        if not lock.acquire(timeout=timeout):
            raise TimeoutError("naive lock")
        try:
            yield
        finally:
            lock.release()

    def try_lock(self, key):
        lock = self._local(key)
        if not lock.acquire(blocking=False):
            return None

        @contextlib.contextmanager
        def held():
            try:
                yield
            finally:
                lock.release()

        return held()
