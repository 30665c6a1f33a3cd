"""The file store: one JSON file per chain (and per client registration) in a private folder.

Each key has its own lock file beside its record, locked with ``filelock`` (``flock``), so the lock
excludes every thread and process that uses the same folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator, NoReturn, Optional, Sequence, Union

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
    SCHEMAS,
    document_to_record,
    document_to_registration,
    record_to_document,
    registration_to_document,
)
from .inventory import EntryKind, Inventory, Problem, Unreadable
from .protocol import StoreKey
from .release_watch import WATCH as _RELEASE_WATCH
from .release_watch import supported as _kernel_can_wait
from .reservation import Reservation, Visible
from .wake_gate import GATE_SUFFIX, GATES

__all__ = ["ENV_HOME", "FileReservation", "FileTokenStore", "default_directory"]

log = logging.getLogger(__name__)

ENV_HOME = "MCP_SYNC_AUTH_HOME"
# Lock files and record files share a folder; the lock file never holds data.
_RECORD_SUFFIX = ".json"
_LOCK_SUFFIX = ".lock"
_KERNEL_LOCKS = Path("/proc/locks")
# Without the kernel's table: a reservation younger than this is a refresh in flight, an older one the
# leftover of a killed writer (a grant never lasts this long).
_IN_FLIGHT_FOR = 300.0
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# A FIFO put where a token file should be must not block the open: it is refused after fstat.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_POSIX = hasattr(os, "geteuid")
# Where the kernel cannot wake a waiter (or refused to), it looks again after this long at most.
_POLL_PAUSE = 0.02
# The holder of a chain's lock shuts its gate (:mod:`.wake_gate`) and opens it at the rename, so other
# processes read the new set before the folder's fsync; False: they wake at the lock's release.
_GATE = True
# Every reader of a store file (load, the listing, the leftover recovery) refuses a larger file
# without reading it: a chain record or a registration is a few KiB.
MAX_FILE_BYTES = 1024 * 1024
# The names this store gives its files (a key's stem is a hash); any other file is not ours.
_CHAIN_FILE = re.compile(r"[0-9a-f]{32}\.json")
_REGISTRATION_FILE = re.compile(r"registration-[0-9a-f]{32}\.json")


def default_directory() -> Path:
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "mcp-sync-auth"


@dataclasses.dataclass(frozen=True)
class _StemKey:
    """A file's own name, for a file that no longer says which key it is for: enough to lock it
    (the lock file is named the same way) and to move it aside."""

    stem: str

    def describe(self) -> str:
        return "an entry its file no longer names"


# What a lock can be taken for: a key, or the name of a file whose key is unknown.
_Lockable = Union[StoreKey, _StemKey]


@dataclasses.dataclass(frozen=True)
class _FileRead:
    """One read of a store file: its JSON object, or the problem that stops its use.

    ``reason`` says why for a corrupt file (the store words the message), and is the whole message
    for a newer or refused one. ``doc`` is kept for a newer schema too: it may still name its key.
    """

    doc: Optional[dict[str, Any]] = None
    problem: Optional[Problem] = None
    reason: str = ""
    cause: Optional[BaseException] = None


def _refused(message: str) -> _FileRead:
    return _FileRead(problem="refused", reason=message)


def _corrupt_read(
    reason: str, cause: Optional[BaseException] = None, doc: Optional[dict[str, Any]] = None
) -> _FileRead:
    return _FileRead(doc=doc, problem="corrupt", reason=reason, cause=cause)


def _read_file(path: Path) -> Optional[_FileRead]:
    """Read a store file safely: None when it does not exist. Never follows a symbolic link, never
    reads more than :data:`MAX_FILE_BYTES` (plus one byte, to see that it is more)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _refused(f"the token file {path} is a symbolic link; refusing to read it")
        return _refused(f"cannot read the token file {path}: {exc.strerror}")
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        try:
            _check_file(path, info)
        except TokenStoreError as exc:
            return _refused(exc.message)
        raw = _read_bounded(handle, info.st_size)
    if raw is None:
        return _corrupt_read(f"it is larger than {MAX_FILE_BYTES // 1024} KiB, the limit for a store file")
    return _parse_document(path, raw)


def _read_bounded(handle: BinaryIO, size: Optional[int] = None) -> Optional[bytes]:
    """The whole file, or None when it is larger than the limit: the size (``size``, from an fstat
    the caller made already, or a new one) is checked before any read, and the read stops one byte
    past the limit (the file may have grown since)."""
    if (os.fstat(handle.fileno()).st_size if size is None else size) > MAX_FILE_BYTES:
        return None
    raw = handle.read(MAX_FILE_BYTES + 1)
    return None if len(raw) > MAX_FILE_BYTES else raw


def _parse_document(path: Path, raw: bytes) -> _FileRead:
    try:
        doc = loads_shallow(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _corrupt_read("it is not valid JSON", exc)
    if not isinstance(doc, dict):
        return _corrupt_read("it is not a JSON object")
    schema = doc.get("schema")
    if is_integer(schema) and schema in SCHEMAS:
        return _FileRead(doc)
    if is_integer(schema) and schema > SCHEMA_VERSION:
        # Written by a newer mcp_sync_auth: nobody here may change it, and logging in would not help.
        message = (
            f"the token file {path} has schema version {schema}, newer than this mcp-sync-auth understands "
            f"({SCHEMA_VERSION}); upgrade mcp-sync-auth (the file is left as it is)"
        )
        return _FileRead(doc=doc, problem="newer", reason=message)
    # Only an integer is quoted: a string there could be anything, a token included.
    shown = schema if is_integer(schema) else type(schema).__name__
    return _corrupt_read(f"its schema version ({shown}) is unknown", doc=doc)


def _check_file(path: Path, info: os.stat_result) -> None:
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


def _corruption(key: _Lockable, path: Path, why: str, quarantined: Optional[str]) -> CorruptTokenCache:
    """The error for a corrupt file, moved aside to ``quarantined`` or not (yet)."""
    where = f"; moved aside to {quarantined}" if quarantined else ""
    whose = "" if isinstance(key, _StemKey) else f" for {key.describe()}"
    unnamed = "; the file no longer says which chain it held" if isinstance(key, _StemKey) else ""
    message = f"the token file {path}{whose} is unreadable ({why}{unnamed}){where}. Its tokens are lost: log in again."
    return CorruptTokenCache(message, quarantined_to=quarantined)


def _quarantine_name(path: Path) -> Path:
    """A name beside ``path`` that no earlier move used: two files moved aside in the same second
    by one process must not overwrite each other (only the lock holder of ``path`` moves it)."""
    base = f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    target = path.with_name(base)
    serial = 1
    while os.path.lexists(target):
        serial += 1
        target = path.with_name(f"{base}-{serial}")
    return target


def _read_leftover(path: Path) -> Optional[ChainRecord]:
    found = _read_file(path)
    if found is None or found.problem is not None or found.doc is None:
        return None  # cut short by the kill (or not ours to trust): not a set we can use
    try:
        return document_to_record(found.doc)
    except ValueError:
        return None


def _kind_of(name: str) -> Optional[EntryKind]:
    if _CHAIN_FILE.fullmatch(name):
        return "chain"
    if _REGISTRATION_FILE.fullmatch(name):
        return "registration"
    return None


def _key_named(doc: Optional[dict[str, Any]], kind: EntryKind, stem: str) -> Optional[Union[ChainKey, RegistrationKey]]:
    """The key a document names, if it names one whose stem is the file's name (else it cannot be
    trusted to say whose file it is)."""
    raw = doc.get("key") if doc is not None else None
    if not isinstance(raw, dict):
        return None
    key: Union[ChainKey, RegistrationKey]
    try:
        if kind == "chain":
            key = ChainKey.from_json(raw)
        elif isinstance(raw.get("issuer"), str):
            key = RegistrationKey(raw["issuer"])
        else:
            return None
    except ValueError:
        return None
    return key if key.stem == stem else None


def _judged(doc: dict[str, Any], kind: EntryKind, stem: str) -> tuple[Optional[ChainRecord], Optional[str]]:
    """Whether a document of our schema can be used as the file named ``stem``: (its record, None) for
    a good chain, (None, None) for a good registration, (None, why) when it cannot. The document is
    parsed once: a listing of thousands of files pays for each parse."""
    try:
        if kind == "chain":
            record = document_to_record(doc)
            return (record, None) if record.key.stem == stem else (None, "it belongs to another chain")
        key = _key_named(doc, kind, stem)
        if key is None or not isinstance(key, RegistrationKey):
            return None, "it is not a client registration for this file's issuer"
        document_to_registration(key, doc)
    except ValueError as exc:
        return None, str(exc)
    return None, None


def _peek_key(path: Path, kind: EntryKind, stem: str) -> Optional[Union[ChainKey, RegistrationKey]]:
    """The key in a file we refuse to use (others may read it, another user owns it): only to tell
    whose it is, never to use what it holds. Symbolic links and special files are not opened."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        raw = _read_bounded(handle)
    if raw is None:
        return None
    return _key_named(_parse_document(path, raw).doc, kind, stem)


class FileTokenStore:
    """One JSON file per chain in a private folder, guarded by a ``filelock`` per chain.

    - The folder is created with mode 0700 and must be owned by us, not be a symlink, and not be
      writable by others; each file is written with mode 0600 and must stay that way.
    - Writes go to a temp file in the same folder, are flushed and fsynced, then ``os.replace``d over
      the old file, and the folder is fsynced: a reader (or a crash) sees the old set or the new one.
    - The lock is an OS-level lock (``flock``): a process that dies while holding it releases it.
      This is not reliable on network file systems (NFS, SMB); use a local folder per host.
    """

    # A waiter for another process's lock is woken by the kernel when it is let go (see
    # :mod:`.release_watch`); False polls instead (the only way where there is no ``flock``).
    waits_in_kernel: bool = _kernel_can_wait()

    def __init__(self, directory: Union[str, os.PathLike[str], None] = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_directory()
        self.directory = Path(os.path.abspath(self.directory))
        self._checked = False
        self._check_guard = threading.Lock()
        # Which thread holds which file's lock (by the file's stem) in this process: only a lock holder
        # may move files.
        self._holders: dict[str, int] = {}

    @property
    def identity(self) -> str:
        return f"file:{self.directory}"

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.directory)!r})"

    def path_for(self, key: _Lockable) -> Path:
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
            self._check_directory(info)
            self._checked = True

    def _existing_directory(self) -> bool:
        """Whether the folder exists (and passes the checks); unlike every other method, creates nothing."""
        if self._checked:
            return True
        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TokenStoreError(f"cannot read the token folder {self.directory}: {exc.strerror}") from exc
        self._check_directory(info)
        return True

    def _check_directory(self, info: os.stat_result) -> None:
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

    # -- lock ------------------------------------------------------------------------------------

    def lock(self, key: StoreKey, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._locked(key, timeout)

    @contextlib.contextmanager
    def _locked(self, key: _Lockable, timeout: float) -> Iterator[None]:
        file_lock = self._acquire(key, timeout)
        assert file_lock is not None
        with self._holding(key, file_lock):
            yield

    def try_lock(self, key: StoreKey) -> Optional[contextlib.AbstractContextManager[None]]:
        file_lock = self._acquire(key, None)
        return None if file_lock is None else self._holding(key, file_lock)

    def wait_for_release(self, key: _Lockable, timeout: float) -> bool:
        """Block until the holder of the key's lock has put the chain's new record in place or let go
        of the lock, ``timeout`` seconds at most; whether either happened. Woken by the kernel where it
        can be (:attr:`waits_in_kernel`), else after a short pause (then False: look at the store and
        the lock again). Takes no lock: the caller does, if the store has nothing new."""
        return self._wait(key, timeout, for_the_record=isinstance(key, ChainKey))

    def _wait(self, key: _Lockable, timeout: float, *, for_the_record: bool) -> bool:
        if self.waits_in_kernel:
            self._ensure_directory()
            lock_path = str(self.directory / (key.stem + _LOCK_SUFFIX))
            gate = str(self.directory / (key.stem + GATE_SUFFIX)) if for_the_record else None
            woken = _RELEASE_WATCH.wait(lock_path, timeout, gate)
            if woken is not None:
                return woken
        time.sleep(min(max(timeout, 0.0), _POLL_PAUSE))
        return False

    def _acquire(self, key: _Lockable, timeout: Optional[float]) -> Optional[filelock.BaseFileLock]:
        """The key's lock, acquired within ``timeout`` (LockTimeout after it); with no timeout, one
        attempt that returns None when another holds it."""
        self._ensure_directory()
        lock_path = self.directory / (key.stem + _LOCK_SUFFIX)
        if timeout is not None and self.waits_in_kernel:
            # Woken by the holder's release, not by filelock's polling.
            deadline = time.monotonic() + timeout
            while True:
                taken = self._acquire(key, None)
                left = deadline - time.monotonic()
                if taken is not None:
                    return taken
                if left <= 0:
                    raise LockTimeout(
                        f"could not lock {key.describe()} within {timeout:g} s: another process holds "
                        f"{lock_path} (a stopped process, or a network file system, can cause this)"
                    )
                self._wait(key, left, for_the_record=False)  # the lock itself, not the record, is wanted
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
    def _holding(self, key: _Lockable, file_lock: filelock.BaseFileLock) -> Iterator[None]:
        """The block runs with ``file_lock`` held (it is acquired already); releases it after."""
        fork.remember(file_lock)
        self._holders[key.stem] = threading.get_ident()
        gate = self._gate_path(key)
        if gate is not None:
            GATES.shut(gate)
        try:
            self._recover_leftovers(key)
            yield
        finally:
            self._holders.pop(key.stem, None)
            if gate is not None:
                GATES.lift(gate)  # (opened already if a record was put in place)
            fork.forget(file_lock)
            file_lock.release()

    def _gate_path(self, key: _Lockable) -> Optional[str]:
        """The chain's gate, where processes wait in the kernel for its records; None elsewhere."""
        if not (_GATE and self.waits_in_kernel and isinstance(key, ChainKey)):
            return None
        return str(self.directory / (key.stem + GATE_SUFFIX))

    def _open_gate(self, key: _Lockable) -> None:
        gate = self._gate_path(key)
        if gate is not None:
            GATES.lift(gate)

    def _recover_leftovers(self, key: _Lockable) -> None:
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

    def refresh_in_flight(self, key: ChainKey) -> bool:
        """Whether another process holds the chain's lock now (a refresh, a login or a logout under
        way), found without taking it: from the kernel's table of held locks where there is one
        (Linux), else from a reservation a refresh made before its grant (a recent temp file)."""
        lock_path = self.directory / (key.stem + _LOCK_SUFFIX)
        held = _flock_held(lock_path)
        if held is not None:
            return held
        now = time.time()
        for temp in self.directory.glob(f".{key.stem}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - temp.stat().st_mtime < _IN_FLIGHT_FOR:
                    return True
        return False

    def refreshes_in_flight(self, keys: Sequence[ChainKey]) -> set[ChainKey]:
        """:meth:`refresh_in_flight` for many chains, from one read of the kernel's lock table and one
        of the folder (``status`` over thousands of chains), not a stat and a table read per chain."""
        held = _flocks_held()
        if held is None:
            return {key for key in keys if self.refresh_in_flight(key)}
        if not held or not keys:
            return set()
        try:
            device = os.stat(self.directory).st_dev
            with os.scandir(self.directory) as entries:
                inodes = {
                    entry.name[: -len(_LOCK_SUFFIX)]: entry.inode()
                    for entry in entries
                    if entry.name.endswith(_LOCK_SUFFIX) and not entry.is_symlink()
                }
        except OSError:
            return {key for key in keys if self.refresh_in_flight(key)}
        busy: set[ChainKey] = set()
        for key in keys:
            inode = inodes.get(key.stem)
            if inode is not None and _file_id(device, inode) in held:
                busy.add(key)
        return busy

    def _holds_lock(self, key: _Lockable) -> bool:
        return self._holders.get(key.stem) == threading.get_ident()

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
        found = _read_file(path)
        if found is None:
            return None
        if found.problem == "corrupt":
            self._corrupt(key, path, found.reason, found.cause)
        if found.problem is not None:
            raise TokenStoreError(found.reason)
        assert found.doc is not None
        return found.doc

    def _corrupt(self, key: _Lockable, path: Path, why: str, cause: Optional[BaseException]) -> NoReturn:
        """Report a broken file; move it aside when we hold the chain's lock (else someone may be
        replacing it right now with a good one)."""
        quarantined: Optional[str] = None
        if self._holds_lock(key):
            target = _quarantine_name(path)
            try:
                os.replace(path, target)
                quarantined = str(target)
            except OSError:
                quarantined = None
        error = _corruption(key, path, why, quarantined)
        log.warning("%s", error)
        raise error from cause

    # -- listing ---------------------------------------------------------------------------------

    def records(self) -> list[ChainRecord]:
        """Every readable chain in the folder; :meth:`inventory` also says what the others are."""
        found = self.inventory()
        for entry in found.unreadable:
            if entry.kind == "chain":
                log.warning("skipping an unreadable token file: %s", entry.error)
        return found.records

    def inventory(self) -> Inventory:
        """Every chain in the folder, and a verdict for each chain or registration file that cannot
        be used (for ``status``, and to find a server's chain after a restart). Creates no folder,
        takes no lock, moves nothing."""
        if not self._existing_directory():
            return Inventory([])
        records: list[ChainRecord] = []
        unreadable: list[Unreadable] = []
        for name, kind in self._listing():
            entry = self._entry_at(self.directory / name, kind)
            if isinstance(entry, ChainRecord):
                records.append(entry)
            elif entry is not None:
                unreadable.append(entry)
        return Inventory(records, unreadable)

    def _listing(self) -> list[tuple[str, EntryKind]]:
        """The names of the store's chain and registration files, sorted, from one read of the folder
        (names sort as strings: no path objects, no stat)."""
        try:
            with os.scandir(self.directory) as entries:
                names = [entry.name for entry in entries if entry.name.endswith(_RECORD_SUFFIX)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TokenStoreError(f"cannot list the token folder {self.directory}: {exc.strerror}") from exc
        names.sort()
        found: list[tuple[str, EntryKind]] = []
        for name in names:
            kind = _kind_of(name)
            if kind is not None:  # else not a name this store gives its files
                found.append((name, kind))
        return found

    def _entry_at(self, path: Path, kind: EntryKind) -> Union[ChainRecord, Unreadable, None]:
        """A chain file's record, None for a good registration (or a file gone since the listing),
        else the verdict."""
        stem = path.name[: -len(_RECORD_SUFFIX)]
        found = _read_file(path)
        if found is None:
            return None
        if found.problem is None:
            assert found.doc is not None
            record, why = _judged(found.doc, kind, stem)
            if why is None:
                return record
            found = _corrupt_read(why, doc=found.doc)
        key = _key_named(found.doc, kind, stem)
        if found.problem == "refused":
            key = _peek_key(path, kind, stem)
        error: TokenStoreError
        if found.problem == "corrupt":
            error = _corruption(key or _StemKey(stem), path, found.reason, None)
        else:
            error = TokenStoreError(found.reason)
        assert found.problem is not None
        return Unreadable(str(path), stem, kind, found.problem, error, key)

    def settle(self, entry: Unreadable, timeout: float) -> Optional[ChainRecord]:
        """Read an entry of :meth:`inventory` again and raise its verdict; a corrupt file is read under
        its lock (within ``timeout``), so that it is moved aside."""
        kind = _kind_of(entry.name + _RECORD_SUFFIX)
        if kind is None:
            raise TokenStoreError(f"{entry.location} is not a file of the token store {self.directory}")
        key = entry.key if entry.key is not None else self._key_for_stem(entry.name)
        if entry.problem != "corrupt":
            return self._verdict(key, kind)  # nothing to move: no lock needed
        with self._locked(key, timeout):
            return self._verdict(key, kind)

    def _key_for_stem(self, stem: str) -> _Lockable:
        """The key behind a file that no longer names it, if a writer's leftover temp file still does
        (locking with that key lets the recovery put the leftover in place); else the file's name."""
        for temp in sorted(self.directory.glob(f".{stem}.*.tmp")):
            leftover = _read_leftover(temp)
            if leftover is not None and leftover.key.stem == stem:
                return leftover.key
        return _StemKey(stem)

    def _verdict(self, key: _Lockable, kind: EntryKind) -> Optional[ChainRecord]:
        """Read the file of ``key`` and raise what is wrong with it; the record when nothing is."""
        if isinstance(key, ChainKey):
            return self.load(key)
        if isinstance(key, RegistrationKey):
            self.load_registration(key)
            return None
        path = self.path_for(key)
        found = _read_file(path)
        if found is None:
            return None
        if found.problem is None:
            assert found.doc is not None
            record, why = _judged(found.doc, kind, key.stem)
            if why is None:
                return record  # replaced by a good one
            found = _corrupt_read(why)
        if found.problem == "corrupt":
            self._corrupt(key, path, found.reason, found.cause)
        raise TokenStoreError(found.reason)

    # -- write -----------------------------------------------------------------------------------

    def save(self, record: ChainRecord) -> None:
        self._write_document(record.key, record_to_document(record))

    def reserve(self, current: ChainRecord) -> Reservation:
        """Room on disk for the record that follows ``current`` (see :mod:`.reservation`).

        A temp file of more than the record's size, its blocks allocated and filled with spaces: the
        record is later written over its start. JSON allows trailing whitespace, so the file parses at every moment
        of that write, and a killed writer's leftover is recovered like any other."""
        key = current.key
        size = _room_for(len(_encode(record_to_document(current))))
        return FileReservation(self, key, self._padded_temp(key, size))

    def _padded_temp(self, key: ChainKey, size: int) -> Path:
        """A temp file beside the key's record holding ``size`` spaces in allocated blocks; StoreFull
        if the file system has not got them."""
        self._ensure_directory()
        temp: Optional[str] = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{key.stem}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                if _FAULTPOINTS:
                    _faultpoint("reserve")
                allocated = _allocate(handle.fileno(), size)
                handle.write(b" " * size)
                handle.flush()
                if not allocated:
                    os.fsync(handle.fileno())  # the written spaces get their blocks now, or ENOSPC
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise StoreFull(
                f"cannot reserve {size} bytes in the token folder {self.directory} for the refreshed tokens "
                f"of {key.describe()} ({exc.strerror or exc}); no refresh was sent and the chain is intact: "
                "free some space (or fix the folder) and call again"
            ) from exc
        return Path(temp)

    def _write_document(self, key: StoreKey, doc: dict[str, Any]) -> None:
        self._ensure_directory()
        path = self.path_for(key)
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{key.stem}.", suffix=".tmp")
            os.close(fd)
        except OSError as exc:
            raise TokenStoreError(f"cannot write the token file {path}: {exc.strerror}") from exc
        self._replace_with(Path(temp), _encode(doc), path)

    def _replace_with(self, temp: Path, data: bytes, path: Path, on_visible: Optional[Visible] = None) -> None:
        """Write ``data`` over the start of ``temp`` (cutting what follows), fsync it, rename it to
        ``path``, call ``on_visible``, fsync the folder. The temp file is gone afterwards, whatever
        happened."""
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
        if on_visible is not None:
            # Every reader sees the new file now; only a crash of the machine could still undo the
            # rename. The folder's fsync follows, and the caller's lock is released only after it.
            on_visible()
        if _FAULTPOINTS:
            _faultpoint("after-rename-before-dirsync")
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
        return f"{type(self).__name__}({self._key.describe()}, {'open' if self._temp else 'closed'})"

    def commit(self, record: ChainRecord, on_visible: Optional[Visible] = None) -> None:
        temp, self._temp = self._temp, None
        if temp is None:
            raise RuntimeError("a reservation is committed at most once")
        if record.key != self._key:
            raise ValueError("a reservation holds room for one chain only")

        def visible() -> None:
            self._store._open_gate(record.key)  # other processes first: most of the waiters are there
            if on_visible is not None:
                on_visible()

        self._fill(temp, record, visible)

    def _fill(self, temp: Path, record: ChainRecord, on_visible: Optional[Visible] = None) -> None:
        """Write ``record`` into the reserved room and put it in place."""
        path = self._store.path_for(record.key)
        self._store._replace_with(temp, _encode(record_to_document(record)), path, on_visible)

    def release(self) -> None:
        temp, self._temp = self._temp, None
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _allocate(fd: int, size: int) -> bool:
    """Have the file system allocate ``size`` bytes of ``fd`` now (OSError ENOSPC if it cannot), so the
    write into them cannot run out of room; False where it cannot allocate ahead (the caller fsyncs
    what it writes instead). Allocation needs no fsync: the blocks are the file's from here on, and the
    one crash that could take them back (the machine's) takes the process and its grant with it."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:
        return False
    try:
        allocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            return False
        raise
    return True


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")


# A rotated set can be longer than the one it replaces (a new JWT, more scopes): reserve twice the
# current record and never less than 16 KiB, but no more than a token file may hold.
_MIN_ROOM = 16 * 1024
_MAX_ROOM = MAX_FILE_BYTES


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


def _flock_held(path: Path) -> Optional[bool]:
    """Whether anyone holds an ``flock`` on ``path``, read from /proc/locks (no lock taken); None
    where the kernel does not say (not Linux)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False  # no lock file: never locked
    except OSError:
        return None
    held = _flocks_held()
    return None if held is None else _file_id(info.st_dev, info.st_ino) in held


def _flocks_held() -> Optional[set[str]]:
    """Every file an ``flock`` is held on now, as /proc/locks names it (device:inode); None where
    the kernel does not say (not Linux)."""
    try:
        table = _KERNEL_LOCKS.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    held: set[str] = set()
    for line in table.splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and len(fields) > 5:  # "->": a waiter, not a holder
            held.add(fields[5])
    return held


def _file_id(device: int, inode: int) -> str:
    return f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
