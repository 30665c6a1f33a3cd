"""The file store: one JSON file per chain (and per client registration) in a private folder.

Each key has its own lock file beside its record, locked with ``filelock`` (``flock``), so the lock
excludes every thread and process that uses the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, NoReturn, Optional, Union

import filelock

from .._chain.keys import ChainKey, ChainRecord, RegistrationKey
from .._util import fork
from .._util.checks import is_integer
from .._util.faultpoints import ARMED as _FAULTPOINTS
from .._util.faultpoints import reach as _faultpoint
from .._util.untrusted import loads_shallow
from ..errors import CorruptTokenCache, LockTimeout, StoreFull, TokenStoreError
from .document import (
    SCHEMA_VERSION,
    document_to_record,
    document_to_registration,
    record_to_document,
    registration_to_document,
)
from .protocol import StoreKey
from .reservation import Reservation

__all__ = ["ENV_HOME", "FileReservation", "FileTokenStore", "default_directory"]

log = logging.getLogger(__name__)

ENV_HOME = "MCP_SYNC_AUTH_HOME"
# Lock files and record files share a folder; the lock file never holds data.
_RECORD_SUFFIX = ".json"
_LOCK_SUFFIX = ".lock"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POSIX = hasattr(os, "geteuid")


def default_directory() -> Path:
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "mcp-sync-auth"


def _read_leftover(path: Path) -> Optional[ChainRecord]:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            doc = loads_shallow(handle.read().decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            return None
        return document_to_record(doc)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # cut short by the kill: not a set we can use


class FileTokenStore:
    """One JSON file per chain in a private folder, guarded by a ``filelock`` per chain.

    - The folder is created with mode 0700 and must be owned by us, not be a symlink, and not be
      writable by others; each file is written with mode 0600 and must stay that way.
    - Writes go to a temp file in the same folder, are flushed and fsynced, then ``os.replace``d over
      the old file, and the folder is fsynced: a reader (or a crash) sees the old set or the new one.
    - The lock is an OS-level lock (``flock``): a process that dies while holding it releases it.
      This is not reliable on network file systems (NFS, SMB); use a local folder per host.
    """

    def __init__(self, directory: Union[str, os.PathLike[str], None] = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_directory()
        self.directory = Path(os.path.abspath(self.directory))
        self._checked = False
        self._check_guard = threading.Lock()
        # Which thread holds which chain's lock in this process: only a lock holder may move files.
        self._holders: dict[StoreKey, int] = {}

    @property
    def identity(self) -> str:
        return f"file:{self.directory}"

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.directory)!r})"

    def path_for(self, key: StoreKey) -> Path:
        return self.directory / (key.stem + _RECORD_SUFFIX)

    # -- folder ----------------------------------------------------------------------------------

    def _ensure_directory(self) -> None:
        if self._checked:
            return
        with self._check_guard:
            if self._checked:
                return
            try:
                self.directory.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.directory, 0o700)
                info = os.lstat(self.directory)
            except OSError as exc:
                raise TokenStoreError(f"cannot create the token folder {self.directory}: {exc.strerror}") from exc
            if stat.S_ISLNK(info.st_mode):
                raise TokenStoreError(
                    f"the token folder {self.directory} is a symbolic link; refusing to use it "
                    "(point MCP_SYNC_AUTH_HOME or the store's directory at a real folder)"
                )
            if not stat.S_ISDIR(info.st_mode):
                raise TokenStoreError(f"the token folder {self.directory} is not a folder")
            _require_private(
                self.directory,
                info,
                what="the token folder",
                forbidden=0o022,
                wanted=0o700,
                exposed="is writable by other users",
            )
            self._checked = True

    # -- lock ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: StoreKey, timeout: float) -> Iterator[None]:
        file_lock = self._acquire(key, timeout)
        assert file_lock is not None
        with self._holding(key, file_lock):
            yield

    def try_lock(self, key: StoreKey) -> Optional[contextlib.AbstractContextManager[None]]:
        file_lock = self._acquire(key, None)
        return None if file_lock is None else self._holding(key, file_lock)

    def _acquire(self, key: StoreKey, timeout: Optional[float]) -> Optional[filelock.BaseFileLock]:
        """The key's lock, acquired within ``timeout`` (LockTimeout after it); with no timeout, one
        attempt that returns None when another holds it."""
        self._ensure_directory()
        lock_path = self.directory / (key.stem + _LOCK_SUFFIX)
        # A fresh FileLock object each time: nothing about a held lock survives in process memory,
        # so a fork in another thread cannot leave the child believing it holds the lock.
        file_lock = filelock.FileLock(str(lock_path), timeout=-1 if timeout is None else timeout, mode=0o600)
        try:
            file_lock.acquire(blocking=timeout is not None)
        except filelock.Timeout as exc:
            if timeout is None:
                return None
            raise LockTimeout(
                f"could not lock {key.describe()} within {timeout:g} s: another process holds "
                f"{lock_path} (a stopped process, or a network file system, can cause this)"
            ) from exc
        except OSError as exc:
            raise TokenStoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
        return file_lock

    @contextlib.contextmanager
    def _holding(self, key: StoreKey, file_lock: filelock.BaseFileLock) -> Iterator[None]:
        """The block runs with ``file_lock`` held (it is acquired already); releases it after."""
        fork.remember(file_lock)
        self._holders[key] = threading.get_ident()
        try:
            self._recover_leftovers(key)
            yield
        finally:
            self._holders.pop(key, None)
            fork.forget(file_lock)
            file_lock.release()

    def _recover_leftovers(self, key: StoreKey) -> None:
        """Deal with temp files of writers that died between writing and renaming.

        We hold the lock, so their writers are gone. A complete chain record newer than the stored one
        is exactly the set a killed process got from the server and did not get to rename: put it in
        place (that saves the chain). Anything else is removed: it may hold secrets nobody will use.
        """
        leftovers = sorted(self.directory.glob(f".{key.stem}.*.tmp"))
        if not leftovers:
            return
        best: Optional[tuple[int, Path]] = None
        if isinstance(key, ChainKey):
            for temp in leftovers:
                candidate = _read_leftover(temp)
                if candidate is not None and candidate.key == key and (best is None or candidate.generation > best[0]):
                    best = (candidate.generation, temp)
            if best is not None:
                try:
                    current = self.load(key)
                except TokenStoreError:
                    current = None  # unreadable (and moved aside if corrupt): the leftover is all we have
                if current is not None and current.generation >= best[0]:
                    best = None
        for temp in leftovers:
            with contextlib.suppress(OSError):
                if best is not None and temp == best[1]:
                    os.replace(temp, self.path_for(key))
                    log.warning("recovered %s from a write a killed process did not finish", key.describe())
                else:
                    os.unlink(temp)
        self._fsync_directory()

    def _holds_lock(self, key: StoreKey) -> bool:
        return self._holders.get(key) == threading.get_ident()

    # -- read ------------------------------------------------------------------------------------

    def load(self, key: ChainKey) -> Optional[ChainRecord]:
        path = self.path_for(key)
        doc = self._read_document(key)
        if doc is None:
            return None
        try:
            record = document_to_record(doc)
        except ValueError as exc:
            self._corrupt(key, path, str(exc), exc)
        if record.key != key:
            self._corrupt(key, path, "it belongs to another chain", None)
        return record

    def load_registration(self, key: RegistrationKey) -> Optional[dict[str, Any]]:
        path = self.path_for(key)
        doc = self._read_document(key)
        if doc is None:
            return None
        try:
            return document_to_registration(key, doc)
        except ValueError as exc:
            self._corrupt(key, path, str(exc), None)

    def save_registration(self, key: RegistrationKey, registration: dict[str, Any]) -> None:
        self._write_document(key, registration_to_document(key, registration))

    def delete_registration(self, key: RegistrationKey) -> None:
        self._remove(key)

    def _read_document(self, key: StoreKey) -> Optional[dict[str, Any]]:
        """The file's JSON object with our schema, None when absent; clear errors otherwise."""
        self._ensure_directory()
        path = self.path_for(key)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TokenStoreError(f"the token file {path} is a symbolic link; refusing to read it") from exc
            raise TokenStoreError(f"cannot read the token file {path}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as handle:
            self._check_file(path, os.fstat(handle.fileno()))
            raw = handle.read()
        try:
            doc = loads_shallow(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self._corrupt(key, path, "it is not valid JSON", exc)
        if isinstance(doc, dict) and doc.get("schema") != SCHEMA_VERSION:
            schema = doc.get("schema")
            if is_integer(schema) and schema > SCHEMA_VERSION:
                # Written by a newer mcp_sync_auth: leave it exactly as it is.
                raise TokenStoreError(
                    f"the token file {path} has schema version {schema}, newer than this library "
                    f"understands ({SCHEMA_VERSION}); upgrade mcp-sync-auth"
                )
            self._corrupt(key, path, f"its schema version {schema!r} is unknown", None)
        if not isinstance(doc, dict):
            self._corrupt(key, path, "it is not a JSON object", None)
        return doc

    def _check_file(self, path: Path, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise TokenStoreError(f"the token file {path} is not a regular file")
        _require_private(
            path,
            info,
            what="the token file",
            forbidden=0o077,
            wanted=0o600,
            exposed="can be read or written by other users",
            advice=" (and log in again if others could read it: its tokens may have leaked)",
        )

    def _corrupt(self, key: StoreKey, path: Path, why: str, cause: Optional[BaseException]) -> NoReturn:
        """Report a broken file; move it aside when we hold the chain's lock (else someone may be
        replacing it right now with a good one)."""
        quarantined: Optional[str] = None
        if self._holds_lock(key):
            target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            try:
                os.replace(path, target)
                quarantined = str(target)
            except OSError:
                quarantined = None
        where = f"; moved aside to {quarantined}" if quarantined else ""
        message = (
            f"the token file {path} for {key.describe()} is unreadable ({why}){where}. "
            "Its tokens are lost: log in again."
        )
        log.warning("%s", message)
        raise CorruptTokenCache(message, quarantined_to=quarantined) from cause

    def records(self) -> list[ChainRecord]:
        """Every readable chain in the folder (for ``status``); unreadable files are skipped."""
        self._ensure_directory()
        found = []
        for path in sorted(self.directory.glob("*" + _RECORD_SUFFIX)):
            if path.name.startswith("registration-"):
                continue
            try:
                doc = loads_shallow(path.read_bytes().decode("utf-8"))
                record = document_to_record(doc)
            except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
                log.warning("skipping unreadable token file %s: %s", path, type(exc).__name__)
                continue
            if self.path_for(record.key) == path:
                found.append(record)
        return found

    # -- write -----------------------------------------------------------------------------------

    def save(self, record: ChainRecord) -> None:
        self._write_document(record.key, record_to_document(record))

    def reserve(self, current: ChainRecord) -> Reservation:
        """Room on disk for the record that follows ``current`` (see :mod:`.reservation`).

        A temp file of more than the record's size, filled with spaces and fsynced: the record is later
        written over its start. JSON allows trailing whitespace, so the file parses at every moment
        of that write, and a killed writer's leftover is recovered like any other."""
        self._ensure_directory()
        key = current.key
        size = _room_for(len(_encode(record_to_document(current))))
        temp: Optional[str] = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{key.stem}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                if _FAULTPOINTS:
                    _faultpoint("reserve")
                handle.write(b" " * size)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise StoreFull(
                f"cannot reserve {size} bytes in the token folder {self.directory} for the refreshed tokens "
                f"of {key.describe()} ({exc.strerror or exc}); no refresh was sent and the chain is intact: "
                "free some space (or fix the folder) and call again"
            ) from exc
        return FileReservation(self, key, Path(temp))

    def _write_document(self, key: StoreKey, doc: dict[str, Any]) -> None:
        self._ensure_directory()
        path = self.path_for(key)
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{key.stem}.", suffix=".tmp")
            os.close(fd)
        except OSError as exc:
            raise TokenStoreError(f"cannot write the token file {path}: {exc.strerror}") from exc
        self._replace_with(Path(temp), _encode(doc), path)

    def _replace_with(self, temp: Path, data: bytes, path: Path) -> None:
        """Write ``data`` over the start of ``temp`` (cutting what follows), fsync it, rename it to
        ``path``. The temp file is gone afterwards, whatever happened."""
        try:
            fd = os.open(temp, os.O_WRONLY | _O_NOFOLLOW)
            with os.fdopen(fd, "wb") as handle:
                if _FAULTPOINTS:
                    _faultpoint("write")
                handle.write(data)
                handle.flush()
                handle.truncate(len(data))
                os.fsync(handle.fileno())
            if _FAULTPOINTS:
                _faultpoint("during-write")
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise TokenStoreError(f"cannot write the token file {path}: {exc.strerror or exc}") from exc
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        # The rename is durable only once the folder's entry is on disk.
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass  # some file systems refuse fsync on folders; the rename is still atomic
        finally:
            os.close(dir_fd)

    def delete(self, key: ChainKey) -> None:
        self._remove(key)

    def _remove(self, key: StoreKey) -> None:
        self._ensure_directory()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_for(key))
        self._fsync_directory()


class FileReservation:
    """Reserved room in the token folder for one chain's next record."""

    def __init__(self, store: FileTokenStore, key: ChainKey, temp: Path) -> None:
        self._store = store
        self._key = key
        self._temp: Optional[Path] = temp

    def __repr__(self) -> str:
        return f"FileReservation({self._key.describe()}, {'open' if self._temp else 'closed'})"

    def commit(self, record: ChainRecord) -> None:
        temp, self._temp = self._temp, None
        if temp is None:
            raise RuntimeError("a reservation is committed at most once")
        if record.key != self._key:
            raise ValueError("a reservation holds room for one chain only")
        self._store._replace_with(temp, _encode(record_to_document(record)), self._store.path_for(record.key))

    def release(self) -> None:
        temp, self._temp = self._temp, None
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")


# A rotated set can be longer than the one it replaces (a new JWT, more scopes): reserve twice the
# current record and never less than 16 KiB, but no more than a token file may hold.
_MIN_ROOM = 16 * 1024
_MAX_ROOM = 1024 * 1024


def _room_for(current_size: int) -> int:
    return min(max(2 * current_size, _MIN_ROOM), _MAX_ROOM)


def _require_private(
    path: Path, info: os.stat_result, *, what: str, forbidden: int, wanted: int, exposed: str, advice: str = ""
) -> None:
    """On POSIX, ``path`` must belong to us and its mode grant none of the ``forbidden`` bits; the
    error says which ``chmod`` gives the ``wanted`` mode."""
    if not _POSIX:
        return
    if info.st_uid != os.geteuid():
        raise TokenStoreError(f"{what} {path} belongs to another user; refusing to use it")
    if info.st_mode & forbidden:
        mode = stat.S_IMODE(info.st_mode)
        raise TokenStoreError(f"{what} {path} {exposed} (mode {mode:04o}); run: chmod {wanted:o} {path}{advice}")
