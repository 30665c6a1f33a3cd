"""What a token store must offer, in two parts.

- :class:`ChainStore` is what the refresh protocol (:mod:`mcp_sync_auth._refresh.manager`) needs: a
  per-key lock that excludes every other thread *and process* using the same store (blocking with a
  timeout, or a single attempt), a read, an atomic write, a delete, and a listing.
- :class:`RegistrationStore` keeps dynamic client registrations per authorization server. Only the
  login path needs it; a store without it still refreshes chains.

:class:`TokenStore` is both: what :class:`MemoryTokenStore` and :class:`FileTokenStore` implement, and
what a store for many hosts (a database, a KMS-backed service) implements to do everything they do.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional, Protocol, Union, runtime_checkable

from .._chain.keys import ChainKey, ChainRecord, LoginKey, RegistrationKey

StoreKey = Union[ChainKey, RegistrationKey, LoginKey]


@runtime_checkable
class ChainStore(Protocol):
    """Where chains live between calls and between processes."""

    @property
    def identity(self) -> str:
        """Equal for two store objects that share their data (used to share in-process flights)."""

    def lock(self, key: StoreKey, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Exclusive access to one key across threads and processes; raises LockTimeout after
        ``timeout`` seconds."""

    def try_lock(self, key: StoreKey) -> Optional[contextlib.AbstractContextManager[None]]:
        """One attempt, no waiting: None when someone else holds the key, else the lock, already
        held, as a context manager that releases it (enter it at once)."""

    def load(self, key: ChainKey) -> Optional[ChainRecord]:
        """The chain's record, or None when there is none."""

    def save(self, record: ChainRecord) -> None:
        """Replace the chain's record atomically: a reader sees the old record or the new one."""

    def delete(self, key: ChainKey) -> None:
        """Forget the chain (logout)."""

    def records(self) -> list[ChainRecord]:
        """Every chain in the store (to find the chains of an MCP server after a restart)."""


@runtime_checkable
class RegistrationStore(Protocol):
    """Dynamic client registrations, one per authorization server issuer (locked with
    :meth:`ChainStore.lock` on a :class:`RegistrationKey`)."""

    def load_registration(self, key: RegistrationKey) -> Optional[dict[str, Any]]:
        """The stored client registration for an issuer, as the registrar wrote it."""

    def save_registration(self, key: RegistrationKey, registration: dict[str, Any]) -> None:
        """Store a client registration atomically."""

    def delete_registration(self, key: RegistrationKey) -> None:
        """Forget a client registration."""


@runtime_checkable
class TokenStore(ChainStore, RegistrationStore, Protocol):
    """A complete store: chains and client registrations."""
