"""Token stores: the protocol (:mod:`.protocol`), the stored documents (:mod:`.document`), and the
memory and file backends."""

from .file import FileTokenStore, default_directory
from .keyring import KeyringTokenStore
from .memory import MemoryTokenStore
from .protocol import ChainStore, RegistrationStore, StoreKey, TokenStore

__all__ = [
    "ChainStore",
    "FileTokenStore",
    "KeyringTokenStore",
    "MemoryTokenStore",
    "RegistrationStore",
    "StoreKey",
    "TokenStore",
    "default_directory",
]
