"""A store in this process's memory: for tests, and for programs that log in on every start."""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any, Iterator, Optional

from .._chain.keys import ChainKey, ChainRecord, RegistrationKey
from ..errors import LockTimeout
from .protocol import StoreKey

# Identities never repeat in a process (an ``id()`` does once its object is gone, and a new store
# would then inherit the old one's in-process token memory).
_serial = itertools.count(1)


class MemoryTokenStore:
    """Tokens in this process only: for tests, and for programs that log in on every start."""

    def __init__(self) -> None:
        self._records: dict[ChainKey, ChainRecord] = {}
        self._registrations: dict[RegistrationKey, dict[str, Any]] = {}
        self._locks: dict[StoreKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self._identity = f"memory:{next(_serial)}"

    @property
    def identity(self) -> str:
        return self._identity

    def __repr__(self) -> str:
        return f"MemoryTokenStore({len(self._records)} chains)"

    def _lock_of(self, key: StoreKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextlib.contextmanager
    def lock(self, key: StoreKey, timeout: float) -> Iterator[None]:
        key_lock = self._lock_of(key)
        if not key_lock.acquire(timeout=timeout):
            raise LockTimeout(f"could not lock {key.describe()} within {timeout:g} s")
        with _releasing(key_lock):
            yield

    def try_lock(self, key: StoreKey) -> Optional[contextlib.AbstractContextManager[None]]:
        key_lock = self._lock_of(key)
        if not key_lock.acquire(blocking=False):
            return None
        return _releasing(key_lock)

    def load(self, key: ChainKey) -> Optional[ChainRecord]:
        with self._guard:
            return self._records.get(key)

    def save(self, record: ChainRecord) -> None:
        with self._guard:
            self._records[record.key] = record

    def delete(self, key: ChainKey) -> None:
        with self._guard:
            self._records.pop(key, None)

    def records(self) -> list[ChainRecord]:
        with self._guard:
            return list(self._records.values())

    def load_registration(self, key: RegistrationKey) -> Optional[dict[str, Any]]:
        with self._guard:
            found = self._registrations.get(key)
            return None if found is None else dict(found)

    def save_registration(self, key: RegistrationKey, registration: dict[str, Any]) -> None:
        with self._guard:
            self._registrations[key] = dict(registration)

    def delete_registration(self, key: RegistrationKey) -> None:
        with self._guard:
            self._registrations.pop(key, None)


@contextlib.contextmanager
def _releasing(held: threading.Lock) -> Iterator[None]:
    """Hold an acquired lock for the block, release it after."""
    try:
        yield
    finally:
        held.release()
