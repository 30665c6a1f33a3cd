"""The keyring store: secrets in the system keychain, coordination in a private folder.

Design:

- **The keychain holds each chain's whole record** (the same JSON document the file store writes:
  tokens, DPoP key, generation), one entry per chain and one per client registration (which may hold
  a client secret), under the service name ``mcp-sync-auth`` and an entry name made of a hash of the
  folder and the key's own hash (``<folder>-<stem>``), so two folders never share an entry and no
  entry name says which server it is for. The keychain entry is the truth: a read never needs
  anything else, and one ``set`` replaces the record whole, so a reader sees the old record or the
  new one.
- **The folder holds what needs no secret**: the lock files (the very locks of
  :class:`~.file.FileTokenStore`, so the refresh protocol, ``try_lock``, generations and the fork
  rules are the file store's), and one small index file per entry naming its key and generation.
  A keychain cannot list its entries portably; the index is how ``records()`` and ``status`` find
  the chains. It is written after the keychain entry and removed after it. A writer killed between
  the two loses nothing: the entry already holds the new record, and the next lock holder that
  reads it writes the index again. An index with no entry behind it is a loss to report (or a
  logout running right now), never a step of a normal write.
- **Reserve before spend**: :meth:`reserve` writes the current record to its entry again (a locked
  or read-only keychain is found out there, before any grant) and reserves the index's room on
  disk. If the keychain still refuses the new record afterwards, the manager keeps it in memory
  and retries, as with a full disk.
- **Verdicts**: an entry that is not a record of ours, or is missing behind an index, is a
  :class:`~mcp_sync_auth.errors.CorruptTokenCache`; a lock holder moves it aside (the entry to
  ``<name>.corrupt-<time>`` in the keychain, the index beside itself) so a new login can replace it.
- Every keychain call is bounded in time (:mod:`.keychain`): a keychain that hangs or prompts gives
  :class:`~mcp_sync_auth.errors.KeychainUnavailable` within the timeout.

The secret size some keychains accept is small (Windows' Credential Locker takes about 2.5 KB): a
chain with long JWTs and a DPoP key may not fit there, and the store then says so when it writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, NoReturn, Optional, Union

from .._chain.keys import ChainKey, ChainRecord, RegistrationKey
from .._util.checks import is_integer
from .._util.untrusted import loads_shallow
from ..errors import CorruptTokenCache, TokenStoreError
from .document import (
    SCHEMA_VERSION,
    SCHEMAS,
    document_to_record,
    document_to_registration,
    record_to_document,
    registration_to_document,
)
from .file import (
    FileReservation,
    FileTokenStore,
    _quarantine_name,
    _read_file,
    _room_for,
    _StemKey,
    default_directory,
)
from .inventory import EntryKind, Problem, Unreadable
from .keychain import DEFAULT_SERVICE, Keychain
from .reservation import Reservation, Visible

__all__ = ["KeyringReservation", "KeyringTokenStore", "default_keyring_directory"]

log = logging.getLogger(__name__)

_INDEX_SCHEMA = "mcp-sync-auth/keyring-index/1"
# A record is a few KiB; a keychain entry larger than this is not one of ours.
_MAX_ENTRY_CHARS = 1024 * 1024
_Entered = Union[ChainKey, RegistrationKey]


def default_keyring_directory() -> Path:
    """The folder of the keyring store's locks and index: ``keyring`` in the file store's folder (apart
    from the file store's own files, which a file store would otherwise judge)."""
    return default_directory() / "keyring"


class KeyringTokenStore(FileTokenStore):
    """Tokens in the system keychain (through ``keyring``); locks and an index of chains in a folder.

    ``service`` is the keychain's service name for every entry; ``timeout`` bounds each keychain call
    (seconds; by default ``$MCP_SYNC_AUTH_KEYRING_TIMEOUT``, else 5); ``backend`` is a keyring backend
    object, by default the one ``keyring`` chooses."""

    def __init__(
        self,
        directory: Union[str, os.PathLike[str], None] = None,
        *,
        service: str = DEFAULT_SERVICE,
        timeout: Optional[float] = None,
        backend: Any = None,
    ) -> None:
        super().__init__(directory if directory is not None else default_keyring_directory())
        self.keychain = Keychain(service, timeout=timeout, backend=backend)
        self._folder_id = hashlib.sha256(str(self.directory).encode("utf-8")).hexdigest()[:16]

    def _ensure_directory(self) -> None:
        # The default folder sits in the file store's: create that one as the file store would (0700),
        # not with the umask's mode.
        if not self._checked and self.directory == Path(os.path.abspath(default_keyring_directory())):
            try:
                self.directory.parent.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.directory.parent, 0o700)
            except OSError as exc:
                raise TokenStoreError(
                    f"cannot create the token folder {self.directory.parent}: {exc.strerror}"
                ) from exc
        super()._ensure_directory()

    @property
    def identity(self) -> str:
        return f"keyring:{self.keychain.service}:{self.directory}"

    @property
    def location(self) -> str:
        return (
            f"keychain ({self.keychain.name}, service {self.keychain.service!r}), locks and index in {self.directory}"
        )

    def __repr__(self) -> str:
        return f"KeyringTokenStore({str(self.directory)!r}, service={self.keychain.service!r})"

    def _entry_name(self, key: Union[_Entered, _StemKey]) -> str:
        """The keychain entry of ``key``: no server name in it, distinct per folder."""
        return f"{self._folder_id}-{key.stem}"

    def _entry_label(self, key: Union[_Entered, _StemKey]) -> str:
        return f"keychain entry {self.keychain.service}/{self._entry_name(key)}"

    # -- chains ----------------------------------------------------------------------------------

    def load(self, key: ChainKey) -> Optional[ChainRecord]:
        doc = self._entry_document(key)
        if doc is None:
            return None
        try:
            record = document_to_record(doc)
        except ValueError as exc:
            self._corrupt_entry(key, str(exc))
        if record.key != key:
            self._corrupt_entry(key, "it belongs to another chain")
        if self._holds_lock(key):
            self._repair_index(key, record.generation)
        return record

    def save(self, record: ChainRecord) -> None:
        self._put(record.key, record_to_document(record), record.generation)

    def reserve(self, current: ChainRecord) -> Reservation:
        """Make sure the keychain takes a write now (the current record, again) and that the index has
        room, before a grant is sent; KeychainUnavailable or StoreFull otherwise."""
        key = current.key
        self.keychain.set(self._entry_name(key), _encode(record_to_document(current)))
        temp = self._padded_temp(key, _room_for(len(_encode(self._index_document(key, current.generation)))))
        return KeyringReservation(self, key, temp)

    def delete(self, key: ChainKey) -> None:
        self._forget(key)

    # -- registrations ---------------------------------------------------------------------------

    def load_registration(self, key: RegistrationKey) -> Optional[dict[str, Any]]:
        doc = self._entry_document(key)
        if doc is None:
            return None
        try:
            return document_to_registration(key, doc)
        except ValueError as exc:
            self._corrupt_entry(key, str(exc))

    def save_registration(self, key: RegistrationKey, registration: dict[str, Any]) -> None:
        self._put(key, registration_to_document(key, registration), 0)

    def delete_registration(self, key: RegistrationKey) -> None:
        self._forget(key)

    # -- entries and index -----------------------------------------------------------------------

    def _put(self, key: _Entered, doc: dict[str, Any], generation: int) -> None:
        self._ensure_directory()  # refuse an unsafe folder before anything reaches the keychain
        self.keychain.set(self._entry_name(key), _encode(doc))
        self._write_document(key, self._index_document(key, generation))

    def _forget(self, key: _Entered) -> None:
        self._ensure_directory()
        self.keychain.delete(self._entry_name(key))
        self._remove(key)

    def _index_document(self, key: _Entered, generation: int) -> dict[str, Any]:
        return {
            "schema": _INDEX_SCHEMA,
            "kind": "chain" if isinstance(key, ChainKey) else "registration",
            "for": key.to_json(),
            "service": self.keychain.service,
            "entry": self._entry_name(key),
            "generation": generation,
        }

    def _read_index(self, path: Path, kind: EntryKind) -> Optional[_IndexRead]:
        """The index file at ``path``: None when there is none, else the key it names (None when it
        names none) and, for one that cannot be used, the problem and why."""
        found = _read_file(path)
        if found is None:
            return None
        if found.problem == "refused":  # insecure, a symbolic link, not a regular file: left alone
            return _IndexRead(None, "refused", found.reason)
        stem = path.name[: -len(".json")]
        key = _indexed_key(found.doc, kind, stem) if found.doc is not None else None
        if key is None:
            return _IndexRead(None, "corrupt", found.reason if found.doc is None else "it names no key of this store")
        return _IndexRead(key, None, "")

    def _repair_index(self, key: _Entered, generation: int) -> None:
        """Under the lock: an index missing or behind its entry (a writer killed between the two
        writes) is written again, so that listings find the chain."""
        path = self.path_for(key)
        read = self._read_index(path, "chain" if isinstance(key, ChainKey) else "registration")
        if read is None or read.key != key or _indexed_generation(path) != generation:
            self._write_document(key, self._index_document(key, generation))

    def _entry_document(self, key: _Entered) -> Optional[dict[str, Any]]:
        """The entry's JSON object with our schema; None when neither entry nor index exists."""
        self._ensure_directory()
        raw = self.keychain.get(self._entry_name(key))
        if raw is None:
            if self.path_for(key).exists():
                self._corrupt_entry(key, "its keychain entry is missing, though the index names it")
            return None
        if len(raw) > _MAX_ENTRY_CHARS:
            self._corrupt_entry(key, "it is larger than a record of ours")
        try:
            doc = loads_shallow(raw)
        except (ValueError, RecursionError):
            self._corrupt_entry(key, "it is not valid JSON")
        if not isinstance(doc, dict):
            self._corrupt_entry(key, "it is not a JSON object")
        schema = doc.get("schema")
        if is_integer(schema) and schema > SCHEMA_VERSION:
            raise TokenStoreError(
                f"the {self._entry_label(key)} for {key.describe()} has schema version {schema}, newer than "
                f"this mcp-sync-auth understands ({SCHEMA_VERSION}); upgrade mcp-sync-auth (it is left as it is)"
            )
        if not (is_integer(schema) and schema in SCHEMAS):
            self._corrupt_entry(key, "its schema version is unknown")
        return doc

    def _corrupt_entry(self, key: Union[_Entered, _StemKey], why: str) -> NoReturn:
        """Report an unusable entry; a lock holder moves it (and its index) aside."""
        label = self._entry_label(key)
        quarantined: Optional[str] = None
        if self._holds_lock(key):
            quarantined = self._move_aside(key)
        whose = "" if isinstance(key, _StemKey) else f" for {key.describe()}"
        where = f"; moved aside to {quarantined}" if quarantined else ""
        error = CorruptTokenCache(
            f"the {label}{whose} is unreadable ({why}){where}. Its tokens are lost: log in again.",
            quarantined_to=quarantined,
        )
        log.warning("%s", error)
        raise error

    def _move_aside(self, key: Union[_Entered, _StemKey]) -> Optional[str]:
        name = self._entry_name(key)
        aside = f"{name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        moved: list[str] = []
        raw = self.keychain.get(name)
        if raw is not None:
            self.keychain.set(aside, raw)
            self.keychain.delete(name)
            moved.append(f"{self.keychain.service}/{aside}")
        index = self.path_for(key)
        if index.exists():
            target = _quarantine_name(index)
            try:
                os.replace(index, target)
                moved.append(str(target))
            except OSError:
                pass
        return " and ".join(moved) or None

    # -- listing ---------------------------------------------------------------------------------

    def _entry_at(self, path: Path, kind: EntryKind) -> Union[ChainRecord, Unreadable, None]:
        """The file store's listing, each index read through the keychain (a keychain that does not
        answer is a verdict too, not a hang). Creates, locks and moves nothing."""
        stem = path.name[: -len(".json")]
        read = self._read_index(path, kind)
        if read is None:
            return None  # gone since the listing
        if read.key is None:
            assert read.problem is not None
            error: TokenStoreError
            if read.problem == "refused":
                error = TokenStoreError(read.reason)
            else:
                error = CorruptTokenCache(f"the keyring index file {path} is unreadable ({read.reason})")
            return Unreadable(str(path), stem, kind, read.problem, error, None)
        key = read.key
        try:
            if isinstance(key, ChainKey):
                return self.load(key)
            self.load_registration(key)
            return None
        except CorruptTokenCache as exc:
            return Unreadable(self._entry_label(key), stem, kind, "corrupt", exc, key)
        except TokenStoreError as exc:  # a keychain that is locked or does not answer, a newer entry
            return Unreadable(self._entry_label(key), stem, kind, "refused", exc, key)

    def settle(self, entry: Unreadable, timeout: float) -> Optional[ChainRecord]:
        if entry.key is None:
            return self._settle_index(entry, timeout)
        key = entry.key
        if entry.problem != "corrupt":
            return self._settled(key)  # nothing to move: no lock needed
        with self._locked(key, timeout):
            return self._settled(key)

    def _settle_index(self, entry: Unreadable, timeout: float) -> Optional[ChainRecord]:
        """An index file that names no key: a refused one is reported as it is. A corrupt one is dealt
        with under its lock: the keychain entry of the same name still says which chain it holds,
        so a good entry gets its index written again (nothing is lost); else both are moved aside."""
        stem_key = _StemKey(entry.name)
        path = self.path_for(stem_key)
        read = self._read_index(path, entry.kind)
        if read is not None and read.problem == "refused":
            raise TokenStoreError(read.reason)
        with self._locked(stem_key, timeout):
            read = self._read_index(path, entry.kind)
            if read is None:
                return None
            if read.key is not None:
                return self._settled(read.key)  # replaced by a good one meanwhile
            key = self._key_in_entry(stem_key, entry.kind)
            if key is None:
                self._corrupt_entry(stem_key, read.reason)
        with self._locked(key, timeout):  # the same lock file: a key's stem names it
            found = self._settled(key)
            self._repair_index(key, found.generation if found is not None else 0)
            log.warning("rewrote the unreadable keyring index of %s from its keychain entry", key.describe())
            return found

    def _key_in_entry(self, stem_key: _StemKey, kind: EntryKind) -> Optional[_Entered]:
        """The key a keychain entry's record names, when it is a good record for this stem."""
        try:
            raw = self.keychain.get(self._entry_name(stem_key))
            doc = loads_shallow(raw) if raw is not None and len(raw) <= _MAX_ENTRY_CHARS else None
            if not isinstance(doc, dict) or not isinstance(doc.get("key"), dict):
                return None
            key: _Entered
            if kind == "chain":
                key = document_to_record(doc).key
            else:
                key = RegistrationKey(str(doc["key"].get("issuer")))
                document_to_registration(key, doc)
        except (ValueError, RecursionError):
            return None
        return key if key.stem == stem_key.stem else None

    def _settled(self, key: _Entered) -> Optional[ChainRecord]:
        if isinstance(key, ChainKey):
            return self.load(key)
        self.load_registration(key)
        return None


class KeyringReservation(FileReservation):
    """Room for one chain's next record: the keychain took a write, and the index's room is on disk."""

    _store: KeyringTokenStore

    def _fill(self, temp: Path, record: ChainRecord, on_visible: Optional[Visible] = None) -> None:
        store = self._store
        try:
            store.keychain.set(store._entry_name(record.key), _encode(record_to_document(record)))
        except TokenStoreError:
            _unlink(temp)
            raise
        index = store._index_document(record.key, record.generation)
        store._replace_with(temp, _encode(index).encode("utf-8"), store.path_for(record.key), on_visible)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _encode(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class _IndexRead:
    key: Optional[_Entered]
    problem: Optional[Problem]
    reason: str


def _indexed_generation(path: Path) -> Optional[int]:
    found = _read_file(path)
    generation = None if found is None or found.doc is None else found.doc.get("generation")
    return generation if is_integer(generation) else None


def _indexed_key(doc: dict[str, Any], kind: str, stem: str) -> Optional[_Entered]:
    """The key an index document names, when it is an index of ours for the file named ``stem``."""
    if doc.get("schema") != _INDEX_SCHEMA or doc.get("kind") != kind:
        return None
    named = doc.get("for")
    if not isinstance(named, dict):
        return None
    key: _Entered
    try:
        if kind == "chain":
            key = ChainKey.from_json(named)
        else:
            issuer = named.get("issuer")
            if not isinstance(issuer, str):
                return None
            key = RegistrationKey(issuer)
    except (ValueError, TypeError):
        return None
    return key if key.stem == stem else None
