"""``RedisTokenStore``: chains, registrations and login coordination in Redis, for fleets of hosts.

The refresh protocol is the one in RELIABILITY.md ("one refresh per chain across hosts"): a lease
per chain (``SET NX PX`` with an owner token, renewed by a watchdog), a lease-guarded in-flight mark
just before the grant, and a commit that is a compare-and-set on the generation. Every key of one
chain shares a hash tag, so each step is one script on one slot, on Redis Cluster as well.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import json
import logging
import threading
import time
import weakref
from typing import Any, Iterator, Optional, Sequence, Union

from ..._chain.keys import ChainKey, ChainRecord, RegistrationKey
from ..._util.faultpoints import ARMED as _FAULTPOINTS
from ..._util.faultpoints import reach as _faultpoint
from ..._util.fork import reset_in_child
from ..._util.logs import warn_limited
from ...errors import (
    ConfigurationError,
    CorruptTokenCache,
    LockTimeout,
    StoreFull,
    StoreKeyMismatch,
    TokenStoreError,
    UnsealedRecord,
)
from ..document import (
    SCHEMA_VERSION,
    document_to_record,
    document_to_registration,
    record_to_document,
    registration_to_document,
)
from ..protocol import StoreKey
from ..reservation import Reservation, Visible
from ..sealing import Sealer, open_stored, seal_for_store
from . import scripts
from .changes import ChangeFeed
from .client import password_of, redis_module, store_error, where
from .lease import Lease, new_owner

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "mcp-sync-auth"
DEFAULT_LEASE = 30.0
# Room between the end of the grant's deadline and the end of the lease, for the commit.
MARGIN = 2.0
DEAD_TTL = 86400.0
_MAX_PAUSE = 0.25
# The longest a lease is renewed: a login waits for a person (5 minutes by default) after its lock.
_MAX_HOLD = 1800.0
_MAX_DOCUMENT = 1 << 20
_STORE_OPTIONS = ("prefix", "lease", "wait_for_replicas", "replica_timeout", "encryption_key", "allow_plaintext")
_SEALED = "sealed:"
# Listing: how many keys one SCAN step looks at, and how many records one pipelined read fetches.
_SCAN_COUNT = 1000
_LIST_BATCH = 500


class RedisTokenStore:
    """Tokens in Redis (or Valkey), shared by every process of every host that uses the same server
    and prefix. Build it from a ``redis.Redis`` client, or with :meth:`from_url`.

    ``lease`` is the lease's length in seconds; a holder renews it while it works, and a grant in
    flight extends it to the grant's whole deadline. ``wait_for_replicas`` (0: off) makes each commit
    wait until that many replicas have it (``WAIT``), for ``replica_timeout`` seconds at most.

    ``encryption_key`` (or the environment variable ``MCP_SYNC_AUTH_STORE_KEY``) encrypts every record
    and registration at rest (AES-256-GCM, bound to its key name). ``allow_plaintext`` reads records
    written before a key was set; each is encrypted at its next write.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease: float = DEFAULT_LEASE,
        wait_for_replicas: int = 0,
        replica_timeout: float = 0.5,
        encryption_key: Union[str, bytes, None] = None,
        allow_plaintext: bool = False,
    ) -> None:
        redis_module()  # the clear error, if redis-py is missing
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{}*?[]\\ \n"):
            raise ConfigurationError(
                "the Redis key prefix must be a non-empty string without blanks, braces or glob characters"
            )
        if not isinstance(lease, (int, float)) or isinstance(lease, bool) or not 1.0 <= lease <= 3600.0:
            raise ConfigurationError("the lease must be between 1 and 3600 seconds")
        if not isinstance(wait_for_replicas, int) or wait_for_replicas < 0:
            raise ConfigurationError("wait_for_replicas must be a non-negative integer")
        self._client = client
        self.prefix = prefix
        self.lease = float(lease)
        self.wait_for_replicas = wait_for_replicas
        self._replica_timeout_ms = int(replica_timeout * 1000)
        self._sealer = Sealer.from_environment() if encryption_key is None else Sealer(encryption_key)
        self._allow_plaintext = allow_plaintext
        self._where = where(client)
        self._password = password_of(client)
        self._scripts = {
            name: client.register_script(getattr(scripts, name))
            for name in ("ACQUIRE", "RENEW", "RELEASE", "RESERVE", "UNMARK", "WRITE", "FORGET", "QUARANTINE")
        }
        self._changes = ChangeFeed(client.pubsub, f"{prefix}:{{*}}:changed", self._stem_of_channel)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisTokenStore:
        """A store on the server a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL names, with
        credentials in the URL as redis-py reads them. Options for the store (``prefix``, ``lease``,
        ``wait_for_replicas``, ``replica_timeout``) are taken out; the rest go to ``Redis.from_url``."""
        redis = redis_module()
        own = {name: options.pop(name) for name in _STORE_OPTIONS if name in options}
        # Two quick retries, not redis-py's own policy (up to ten, with backoffs of up to a second):
        # a Redis that is away must fail a call within seconds, not tens of them.
        options.setdefault("retry", _quick_retry())
        options.setdefault("socket_timeout", 5.0)
        options.setdefault("socket_connect_timeout", 5.0)
        options.setdefault("health_check_interval", 30)
        if not isinstance(url, str) or url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
            raise ConfigurationError("a Redis store URL starts with redis://, rediss:// or unix://")
        try:
            client = redis.Redis.from_url(url, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "the Redis store URL cannot be read (see redis-py's from_url for its form)"
            ) from exc
        return cls(client, **own)

    # -- naming ----------------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return f"{self._where}#{self.prefix}"

    @property
    def location(self) -> str:
        """The server and prefix, for people (never a password)."""
        sealed = ", encrypted" if self._sealer is not None else ""
        return f"{self._where} (prefix {self.prefix!r}{sealed})"

    def __repr__(self) -> str:
        return f"RedisTokenStore({self.location})"

    def _name(self, key: StoreKey, part: str) -> str:
        return f"{self.prefix}:{{{key.stem}}}:{part}"

    def _stem_of_channel(self, channel: str) -> Optional[str]:
        head = f"{self.prefix}:{{"
        if channel.startswith(head) and channel.endswith("}:changed"):
            return channel[len(head) : -len("}:changed")]
        return None

    def _run(self, script: str, keys: list[str], args: list[Any], doing: str) -> Any:
        try:
            return self._scripts[script](keys=keys, args=args)
        except Exception as exc:
            if _is_redis_error(exc):
                raise store_error(self.location, doing, exc, self._password) from None
            raise

    def _call(self, doing: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self._client, method)(*args)
        except Exception as exc:
            if _is_redis_error(exc):
                raise store_error(self.location, doing, exc, self._password) from None
            raise

    # -- leases ----------------------------------------------------------------------------------

    def try_lock(self, key: StoreKey) -> Optional[contextlib.AbstractContextManager[None]]:
        lease = self._acquire(key)
        return None if lease is None else self._holding(key, lease)

    @contextlib.contextmanager
    def lock(self, key: StoreKey, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        while True:
            # Counted before the attempt: a release that comes between the two is not missed.
            seen = self._changes.count(key.stem)
            lease = self._acquire(key)
            if lease is not None:
                break
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"could not take the lease on {key.describe()} in the Redis store at {self.location} "
                    f"within {timeout:g} s: another process holds it; nothing was sent without it"
                )
            # Woken by the holder's release (or commit); the pause is the safety net for a holder
            # that died (its lease expires unannounced) or a message lost while the feed reconnects.
            self._changes.wait(key.stem, seen, min(_MAX_PAUSE, max(deadline - time.monotonic(), 0.0)))
        with self._holding(key, lease):
            yield

    def _acquire(self, key: StoreKey) -> Optional[Lease]:
        lease_name = self._name(key, "lease")
        held = _HELD.at(self.identity, lease_name)
        # One attempt at a time per key in this process, so that "no live lease here" stays true
        # while the script runs (another thread's fresh lease is never mistaken for an orphan).
        with held.attempt:
            owner = f"{_PROCESS.token}:{new_owner()}"
            orphans = "0" if held.lease is not None else "1"
            try:
                taken = self._scripts["ACQUIRE"](
                    keys=[lease_name, self._name(key, "inflight")],
                    args=[owner, int(self.lease * 1000), _PROCESS.token, orphans],
                )
            except Exception as exc:
                if not _is_redis_error(exc):
                    raise
                # The SET may have happened before the answer was lost: give back a lease that is ours.
                with contextlib.suppress(Exception):
                    self._scripts["RELEASE"](keys=[lease_name], args=[owner])
                raise store_error(self.location, f"taking the lease on {key.describe()}", exc, self._password) from None
            if int(taken) != 1:
                return None
            channel = self._name(key, "changed")
            held.lease = Lease(
                lambda who, ms: bool(self._run("RENEW", [lease_name], [who, ms], "renewing a lease")),
                lambda who: bool(self._run("RELEASE", [lease_name], [who, channel], "releasing a lease")),
                owner=owner,
                length=self.lease,
                max_hold=_MAX_HOLD,
                describe=key.describe(),
            )
            return held.lease

    @contextlib.contextmanager
    def _holding(self, key: StoreKey, lease: Lease) -> Iterator[None]:
        held = _HELD.at(self.identity, self._name(key, "lease"))
        try:
            yield
        finally:
            with held.attempt:
                held.lease = None
            lease.release()

    def _lease_of(self, key: StoreKey) -> Optional[Lease]:
        return _HELD.at(self.identity, self._name(key, "lease")).lease

    def refresh_in_flight(self, key: ChainKey) -> bool:
        """Whether some process on some host holds the chain's lease or has a grant marked in flight
        now (read with EXISTS: no lease is taken)."""
        doing = f"reading the lease of {key.describe()}"
        if int(self._call(doing, "exists", self._name(key, "lease"))) > 0:
            return True
        # A mark outlives its grant (a failed one leaves it): only one whose deadline is ahead counts.
        deadline = self._call(doing, "hget", self._name(key, "inflight"), "deadline_ms")
        if deadline is None:
            return False
        seconds, micros = self._call(doing, "time")
        return int(_text(deadline)) > int(seconds) * 1000 + int(micros) // 1000

    def refreshes_in_flight(self, keys: Sequence[ChainKey]) -> set[ChainKey]:
        """:meth:`refresh_in_flight` for many chains: pipelined, one round trip per
        :data:`_LIST_BATCH` chains (each batch ends with Redis's clock, to judge its marks by)."""
        busy: set[ChainKey] = set()
        for start in range(0, len(keys), _LIST_BATCH):
            batch = keys[start : start + _LIST_BATCH]
            try:
                pipe = self._client.pipeline(transaction=False)
                for key in batch:
                    pipe.exists(self._name(key, "lease"))
                    pipe.hget(self._name(key, "inflight"), "deadline_ms")
                pipe.time()
                answers = pipe.execute()
            except Exception as exc:
                if _is_redis_error(exc):
                    raise store_error(self.location, "reading the leases", exc, self._password) from None
                raise
            seconds, micros = answers[-1]
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            for index, key in enumerate(batch):
                leased, deadline = answers[2 * index], answers[2 * index + 1]
                if int(leased) > 0 or (deadline is not None and int(_text(deadline)) > now_ms):
                    busy.add(key)
        return busy

    def held_leases(self) -> dict[str, str]:
        """The owner token of each lease this process holds on this store now, by key name (the chaos
        run checks, before each grant, that Redis still names that owner)."""
        return {name: lease.owner for name, lease in _HELD.live(self.identity).items()}

    # -- waiting for a change (the refresh protocol's waiters use it instead of sleeping) ---------

    def changes(self, key: StoreKey) -> int:
        """A count that moves each time this chain's record changes or its lease is released (seen
        through pub/sub)."""
        return self._changes.count(key.stem)

    def wait_for_change(self, key: StoreKey, seen: int, timeout: float) -> int:
        """Sleep until the count moves past ``seen`` or ``timeout`` seconds pass; the count."""
        return self._changes.wait(key.stem, seen, min(timeout, _MAX_PAUSE))

    # -- records ---------------------------------------------------------------------------------

    def load(self, key: ChainKey) -> Optional[ChainRecord]:
        name = self._name(key, "record")
        found = self._call(f"reading {key.describe()}", "hmget", name, "generation", "doc")
        generation, doc = found[0], found[1]
        if generation is None and doc is None:
            return None
        try:
            record = document_to_record(self._parse(doc, name))
            if record.key != key or int(_text(generation)) != record.generation:
                raise ValueError("the record is not the one stored under this key")
        except ValueError as exc:
            self._corrupt(key, name, str(exc))
        return record

    def _parse(self, doc: Any, name: str) -> Any:
        if doc is None:
            raise ValueError("the record has no document")
        raw = doc if isinstance(doc, bytes) else str(doc).encode("utf-8")
        if len(raw) > _MAX_DOCUMENT:
            raise ValueError("the record is larger than 1 MiB")
        if raw.startswith(_SEALED.encode()):
            try:
                sealed = base64.b64decode(raw[len(_SEALED) :], validate=True)
            except binascii.Error:
                raise ValueError("the encrypted record is not base64") from None
            raw = open_stored(sealed, name.encode("utf-8"), self._sealer)
        else:
            raw = open_stored(raw, name.encode("utf-8"), self._sealer, allow_plaintext=self._allow_plaintext)
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the record is not JSON ({type(exc).__name__})") from None
        if isinstance(parsed, dict) and isinstance(parsed.get("schema"), int) and parsed["schema"] > SCHEMA_VERSION:
            raise TokenStoreError(
                f"a record in the Redis store at {self.location} was written by a newer mcp-sync-auth "
                f"(schema {parsed['schema']}); upgrade mcp-sync-auth on this host. It was left as it is"
            )
        return parsed

    def _corrupt(self, key: Union[ChainKey, RegistrationKey], name: str, why: str) -> None:
        moved: Optional[str] = None
        if self._lease_of(key) is not None:
            aside = f"{name}:corrupt:{int(time.time() * 1000)}"
            if self._run("QUARANTINE", [name, aside], [], f"moving aside {key.describe()}"):
                moved = aside
        where_now = f"; moved aside to {moved}" if moved else ""
        raise CorruptTokenCache(
            f"the record of {key.describe()} in the Redis store at {self.location} cannot be read ({why}){where_now}",
            quarantined_to=moved,
        )

    def save(self, record: ChainRecord) -> None:
        self._write(record, mode="newer", base=record.generation - 1, owner="")

    def _encode(self, document: dict[str, Any], name: str) -> str:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        if self._sealer is None:
            return text
        sealed = seal_for_store(text.encode("utf-8"), name.encode("utf-8"), self._sealer)
        return _SEALED + base64.b64encode(sealed).decode("ascii")

    def _write(self, record: ChainRecord, *, mode: str, base: int, owner: str) -> None:
        key = record.key
        doc = self._encode(record_to_document(record), self._name(key, "record"))
        if _FAULTPOINTS:
            try:
                _faultpoint("write")
            except OSError as exc:
                raise store_error(self.location, f"writing {key.describe()}", exc, self._password) from None
        keys = [self._name(key, "record"), self._name(key, "inflight")]
        args = [
            mode,
            base,
            record.generation,
            doc,
            "1" if record.is_dead else "0",
            int(DEAD_TTL * 1000),
            owner,
            self._name(key, "changed"),
        ]
        if self.wait_for_replicas:
            (written, stored), replicas = self._write_and_wait(keys, args, key)
        else:
            written, stored = self._run("WRITE", keys, args, f"writing {key.describe()}")
            replicas = None
        if _FAULTPOINTS and int(written) == 1:
            _faultpoint("during-write")  # here: the commit is in Redis, its writer has not heard back
        if int(written) != 1:
            raise TokenStoreError(
                f"the Redis store at {self.location} holds generation {int(stored)} of {key.describe()}, "
                f"so generation {record.generation} was not written over it (a newer set is never replaced)"
            )
        if replicas is not None and replicas < self.wait_for_replicas:
            # Written on the primary, where it stays; a failover before a replica has it would lose it.
            warn_limited(
                log,
                self.identity,
                "replicas",
                "a commit in the Redis store at %s reached %d of %d replicas within %d ms",
                self.location,
                replicas,
                self.wait_for_replicas,
                self._replica_timeout_ms,
            )

    def _write_and_wait(self, keys: list[str], args: list[Any], key: ChainKey) -> tuple[Any, int]:
        """The write and ``WAIT`` on one connection (a pipeline): WAIT counts the replicas that have
        the writes of its own connection."""
        try:
            pipe = self._client.pipeline(transaction=False)
            self._scripts["WRITE"](keys=keys, args=args, client=pipe)
            pipe.wait(self.wait_for_replicas, self._replica_timeout_ms)
            written, replicas = pipe.execute()
        except Exception as exc:
            if _is_redis_error(exc):
                raise store_error(self.location, f"writing {key.describe()}", exc, self._password) from None
            raise
        return written, int(replicas)

    def reserve(self, current: ChainRecord, deadline: Optional[float] = None) -> Reservation:
        """The lease-guarded send: called under the lease just before the grant. Refuses (LockTimeout:
        nothing is sent) unless the lease is still ours; then extends it past the grant's whole
        ``deadline`` and marks the grant in flight, so that no successor spends the same token while
        this grant may still be answered."""
        key = current.key
        lease = self._lease_of(key)
        grant = deadline if deadline is not None else self.lease
        if lease is None or lease.lost:
            raise LockTimeout(f"the lease on {key.describe()} is not held here; no refresh was sent")
        if _FAULTPOINTS:
            try:
                _faultpoint("reserve")
            except OSError as exc:
                raise StoreFull(f"the Redis store at {self.location} refused the in-flight mark ({exc})") from None
        marked = self._run(
            "RESERVE",
            [self._name(key, "lease"), self._name(key, "inflight")],
            [lease.owner, int((grant + MARGIN) * 1000), int(grant * 1000), current.generation, _PROCESS.token],
            f"marking the refresh of {key.describe()} in flight",
        )
        if not int(marked):
            lease.lost = True
            raise LockTimeout(
                f"the lease on {key.describe()} ran out before the refresh was sent (a paused process, "
                "or a slow link to Redis); no refresh was sent and the chain is intact"
            )
        return RedisReservation(self, current, lease.owner)

    def delete(self, key: ChainKey) -> None:
        self._run("FORGET", [self._name(key, "record")], [self._name(key, "changed")], f"deleting {key.describe()}")

    def records(self) -> list[ChainRecord]:
        """Every readable chain: one SCAN walk for the names, then their documents read in pipelined
        batches (one round trip per :data:`_LIST_BATCH` chains, not one per chain)."""
        names = [name for name in self._scan("record") if self._stem_of_name(name, "record") is not None]
        found: list[ChainRecord] = []
        for start in range(0, len(names), _LIST_BATCH):
            batch = names[start : start + _LIST_BATCH]
            for name, doc in zip(batch, self._documents(batch)):
                record = self._record_in(name, doc)
                if record is not None:
                    found.append(record)
        return found

    def _scan(self, part: str) -> list[str]:
        pattern = f"{self.prefix}:{{*}}:{part}"
        try:
            names = [_text(name) for name in self._client.scan_iter(match=pattern, count=_SCAN_COUNT)]
        except Exception as exc:
            if _is_redis_error(exc):
                raise store_error(self.location, "listing the stored chains", exc, self._password) from None
            raise
        return sorted(set(names))

    def _stem_of_name(self, name: str, part: str) -> Optional[str]:
        head, tail = f"{self.prefix}:{{", f"}}:{part}"
        return name[len(head) : -len(tail)] if name.startswith(head) and name.endswith(tail) else None

    def _documents(self, names: list[str]) -> list[Any]:
        """The ``doc`` field of each record named, in one round trip (None for one deleted since)."""
        try:
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hget(name, "doc")
            documents: list[Any] = pipe.execute()
        except Exception as exc:
            if _is_redis_error(exc):
                raise store_error(self.location, "reading the stored chains", exc, self._password) from None
            raise
        return documents

    def _record_in(self, name: str, doc: Any) -> Optional[ChainRecord]:
        if doc is None:
            return None
        try:
            return document_to_record(self._parse(doc, name))
        except (StoreKeyMismatch, UnsealedRecord):
            raise  # the store's key is wrong for every record: listing none would hide that
        except (ValueError, TokenStoreError) as exc:
            log.warning("skipped an unreadable record in the Redis store at %s (%s)", self.location, exc)
            return None

    # -- registrations ---------------------------------------------------------------------------

    def load_registration(self, key: RegistrationKey) -> Optional[dict[str, Any]]:
        name = self._name(key, "registration")
        doc = self._call(f"reading {key.describe()}", "get", name)
        if doc is None:
            return None
        try:
            parsed = self._parse(doc, name)
            if not isinstance(parsed, dict):
                raise ValueError("the registration is not a JSON object")
            return document_to_registration(key, parsed)
        except ValueError as exc:
            self._corrupt(key, name, str(exc))
            raise  # pragma: no cover (_corrupt raises)

    def save_registration(self, key: RegistrationKey, registration: dict[str, Any]) -> None:
        name = self._name(key, "registration")
        self._call(
            f"writing {key.describe()}", "set", name, self._encode(registration_to_document(key, registration), name)
        )

    def delete_registration(self, key: RegistrationKey) -> None:
        self._call(f"deleting {key.describe()}", "delete", self._name(key, "registration"))

    def close(self) -> None:
        """Stop the change feed's thread (the client stays the caller's)."""
        self._changes.close()


class RedisReservation:
    """A grant marked in flight; its commit is the compare-and-set on the generation."""

    def __init__(self, store: RedisTokenStore, current: ChainRecord, owner: str) -> None:
        self._store = store
        self._current = current
        self._owner = owner
        self._open = True
        self._answered = False

    def __repr__(self) -> str:
        return f"RedisReservation({self._current.key.describe()}, {'open' if self._open else 'closed'})"

    def commit(self, record: ChainRecord, on_visible: Optional[Visible] = None) -> None:
        if not self._open:
            raise RuntimeError("a reservation is committed at most once")
        if record.key != self._current.key:
            raise ValueError("a reservation holds room for one chain only")
        self._answered = True
        self._store._write(record, mode="exact", base=self._current.generation, owner=self._owner)
        self._open = False
        if on_visible is not None:
            on_visible()  # the compare-and-set ran: every reader sees the new record

    def release(self) -> None:
        if not self._open or self._answered:
            return
        self._open = False
        key = self._current.key
        # The grant failed: its answer can no longer arrive, so the mark goes. (After a failed
        # commit it stays: this process holds the answer and retries, and the mark lets this
        # process through, and nobody else until its deadline.)
        try:
            self._store._run("UNMARK", [self._store._name(key, "inflight")], [self._owner], "clearing a mark")
        except TokenStoreError as exc:
            log.warning(
                "could not clear the in-flight mark of %s (%s); it expires at its deadline", key.describe(), exc
            )


class _HeldLease:
    """This process's live lease on one key (None when it holds none), and the lock of its attempts."""

    def __init__(self, registry: _HeldLeases, identity: str, name: str) -> None:
        self.attempt = threading.Lock()
        self._registry = registry
        self._where = (identity, name)
        self._lease: Optional[Lease] = None

    @property
    def lease(self) -> Optional[Lease]:
        return self._lease

    @lease.setter
    def lease(self, lease: Optional[Lease]) -> None:
        # Set under ``attempt``. A held lease keeps its entry alive; without one, the entry lives only
        # while an attempt or a holder references it.
        self._lease = lease
        self._registry._holding(self, lease is not None)


class _HeldLeases:
    """The leases this process holds, by store and key, whichever store object took them: a corrupt
    record is moved aside only by its holder, and an orphan is told from a live lease.

    Bounded by what is in use: an entry is kept strongly while it holds a lease, and otherwise only
    through a weak map, so every attempt on a key at the same time shares one ``attempt`` lock (each
    attempt holds the entry), and a key nobody is locking costs nothing."""

    def __init__(self) -> None:
        self._reset_after_fork()
        reset_in_child(self)

    def at(self, identity: str, name: str) -> _HeldLease:
        with self._guard:
            held = self._by_name.get((identity, name))
            if held is None:
                held = self._by_name[(identity, name)] = _HeldLease(self, identity, name)
            return held

    def live(self, identity: str) -> dict[str, Lease]:
        """The leases held now in this process on one store's keys, by key name (for instruments)."""
        with self._guard:
            found = [(name, held.lease) for (owner, name), held in self._with_lease.items() if owner == identity]
        return {name: lease for name, lease in found if lease is not None}

    def sizes(self) -> tuple[int, int]:
        """(entries alive, entries holding a lease), for tests."""
        with self._guard:
            return len(self._by_name), len(self._with_lease)

    def _holding(self, held: _HeldLease, holds: bool) -> None:
        with self._guard:
            if holds:
                self._with_lease[held._where] = held
            elif self._with_lease.get(held._where) is held:
                del self._with_lease[held._where]

    def _reset_after_fork(self) -> None:
        self._guard = threading.Lock()
        self._by_name: weakref.WeakValueDictionary[tuple[str, str], _HeldLease] = weakref.WeakValueDictionary()
        self._with_lease: dict[tuple[str, str], _HeldLease] = {}


_HELD = _HeldLeases()


class _Process:
    """This process's token in in-flight marks (a forked child gets its own)."""

    def __init__(self) -> None:
        self.token = new_owner()
        reset_in_child(self)

    def _reset_after_fork(self) -> None:
        self.token = new_owner()


_PROCESS = _Process()


def _quick_retry() -> Any:
    backoff = importlib.import_module("redis.backoff")
    retry = importlib.import_module("redis.retry")
    return retry.Retry(backoff.ExponentialBackoff(cap=0.25, base=0.02), 2)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_redis_error(exc: BaseException) -> bool:
    redis = redis_module()
    return isinstance(exc, (redis.exceptions.RedisError, OSError))
