"""The token manager: the fast path, and the refresh protocol that keeps one grant per chain in flight.

The invariant: for one chain, at most one refresh grant is in flight at any moment across every thread
and process sharing the store, and no refresh token is ever presented by this client after a newer
one was stored. How:

1. Fast path: a fresh token in memory is returned with no lock, no file and no network.
2. Otherwise the caller joins the chain's in-process flight (:mod:`singleflight`); only its leader
   goes on. Every ``TokenManager`` for the same store and chain shares the same flight and memory;
   memories are bounded (an LRU of recent chains) without ever splitting one (:mod:`.memory`).
3. The leader first reads the store without the lock: another process may have rotated already.
4. Then it takes the store's lock, reads again, and adopts a newer set if there is one. Only if the
   stored set is still the stale one does it spend the *stored* refresh token, exactly once.
5. Before the grant, the store reserves room for the new set (:mod:`.._stores.reservation`); without
   it no grant is sent. The new set is written into that room before the lock is released; the
   flight's waiters wake as soon as every reader can see it (after the rename, before the folder's
   fsync, which still precedes the release). If even that write fails, the set is kept in memory,
   used, and written on a later call: only this process has it then, and the log says so loudly.
6. ``invalid_grant`` kills the chain in the store (its refresh token is dropped), so no thread or
   process presents it again; every caller gets :class:`RefreshChainRevoked`.
7. A refresh led from the main thread is shielded from Ctrl-C (:mod:`.shield`): once the grant is out,
   the interrupt waits until its answer is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, NoReturn, Optional, TypeVar

from .._chain.keys import ChainKey, ChainRecord
from .._chain.tokens import TokenSet, parse_token_response
from .._stores.protocol import ChainStore
from .._stores.reservation import commit, reserve
from .._util.faultpoints import ARMED as _FAULTPOINTS
from .._util.faultpoints import reach as _faultpoint
from .._util.logs import cause_of, warn_limited
from .._util.redact import fingerprint
from ..errors import (
    AuthorizationRequired,
    CorruptTokenCache,
    LockTimeout,
    RefreshChainRevoked,
    StoreFull,
    TokenEndpointError,
    TokenStoreError,
    login_needed,
)
from . import shield
from .memory import MEMORIES
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# How often a caller waiting for another process's refresh looks at the lock and the store, where
# nothing wakes it (a store that neither waits in the kernel nor announces changes).
_FIRST_PAUSE = 0.0005
_MAX_PAUSE = 0.02
# Where the kernel (the file store) or a notification (the Redis store) wakes the waiter, it still
# looks this often: a safety net for a lost notification or a holder that dies without a release.
_SAFETY_PAUSE = 0.25
# Wake the flight's waiters as soon as the new set is visible in the store, before the folder's
# fsync and the lock's release (RELIABILITY.md, "waking early"); False: after the flight, as before.
_WAKE_EARLY = True
_EARLY_RETRY_PAUSE = 0.05
# After this long waiting for another process's lock, one log line says so.
WAIT_NOTICE_AFTER = 2.0
Refresher = Callable[[TokenSet, int, Optional[str]], TokenSet]
"""(stored set, new generation, the record's resource indicator or None) -> the new set."""
_Login = TypeVar("_Login", bound=AuthorizationRequired)
_Told = TypeVar("_Told")


_flights: SingleFlight[TokenSet] = SingleFlight()


class TokenManager:
    """Hands out valid access tokens for one chain and refreshes it under the protocol above."""

    def __init__(
        self,
        key: ChainKey,
        store: ChainStore,
        refresher: Optional[Refresher],
        *,
        refresh_skew: float = 60.0,
        lock_timeout: float = 60.0,
        grant_deadline: Optional[float] = None,
        clock: Clock = time.time,
        login_hint: str = "",
    ) -> None:
        self.key = key
        self.store = store
        self._refresher = refresher
        self._skew = refresh_skew
        self._lock_timeout = lock_timeout
        # The longest one grant may take; the program's exit waits that long for one in flight.
        self._grant_deadline = grant_deadline if grant_deadline is not None else lock_timeout
        self._clock = clock
        self._login_hint = login_hint
        self._flight_key = (store.identity, key)
        # Held directly, so the fast path needs no lookup and no lock; the registry hands every live
        # manager of this chain the same object (see :mod:`.memory`).
        self._memory = MEMORIES.memory_for(self._flight_key)

    def __repr__(self) -> str:
        return f"TokenManager({self.key.describe()}, store={self.store!r})"

    # -- public ----------------------------------------------------------------------------------

    def token(self) -> TokenSet:
        """A token set that is valid now, refreshed first when it is about to expire."""
        if self._memory.unsaved is not None:
            self._try_to_store_unsaved()
        current = self._memory.current
        now = self._clock()
        if current is not None and current.is_fresh(now, self._skew):
            return current
        if current is not None and current.is_usable(now):
            # Early refresh: the token still works, so nobody has to wait for its successor. One
            # thread refreshes; callers that find a refresh under way keep using the current token.
            if _flights.in_flight(self._flight_key) or time.monotonic() < self._memory.early_retry_at:
                return current
            return self._fly(lambda: self._lead(None, still_valid=current))
        return self._refresh(rejected=None)

    def login_required(self, why: str) -> AuthorizationRequired:
        """The error for "somebody has to log in": ``why``, then this chain's login hint."""
        return self._needs_login(AuthorizationRequired, why)

    def current(self) -> Optional[TokenSet]:
        """The set this process holds now, whatever its state (no refresh, no I/O)."""
        return self._memory.current

    def token_after_rejection(self, rejected_access_token: str) -> TokenSet:
        """The resource refused ``rejected_access_token``: a set with a different access token.

        If the rejected token is no longer the current one, somebody already replaced it and no
        refresh is needed (the token-aware 401).
        """
        current = self._memory.current
        if current is not None and current.access_token != rejected_access_token and current.is_usable(self._clock()):
            return current
        return self._refresh(rejected=rejected_access_token)

    def stored_replacement(self, rejected: Optional[str] = None) -> Optional[TokenSet]:
        """A usable set that another thread or process stored meanwhile (not ``rejected``), adopted
        without any grant; None when there is none, or the stored chain is dead."""
        try:
            return self._adopt_without_lock(rejected)
        except AuthorizationRequired:
            return None

    def save_response(self, token_response: dict[str, object], token_endpoint: Optional[str] = None) -> TokenSet:
        """Store a token endpoint response as this chain's newest set (tokens obtained elsewhere)."""
        tokens = parse_token_response(token_response, now=self._clock(), generation=0)
        return self.save_tokens(tokens, token_endpoint)

    def save_tokens(
        self, tokens: TokenSet, token_endpoint: Optional[str] = None, resource_indicator: Optional[str] = None
    ) -> TokenSet:
        """Make ``tokens`` (a login's) this chain's newest set, whatever was stored, dead or alive.
        The token endpoint and the resource indicator default to the stored record's."""
        with self.store.lock(self.key, self._lock_timeout):
            try:
                previous = self.store.load(self.key)
            except CorruptTokenCache:
                previous = None  # moved aside already; the new login replaces it
            generation = (previous.generation if previous is not None else 0) + 1
            tokens = dataclasses.replace(tokens, generation=generation)
            if token_endpoint is None and previous is not None:
                token_endpoint = previous.token_endpoint
            if resource_indicator is None and previous is not None:
                resource_indicator = previous.resource_indicator
            self.store.save(
                ChainRecord(
                    self.key,
                    generation,
                    tokens,
                    token_endpoint=token_endpoint,
                    updated_at=self._clock(),
                    resource_indicator=resource_indicator,
                )
            )
            self._memory.current = tokens
            self._memory.stored()  # a login replaces the chain, stored or not
        log.debug("stored a new token set for %s (generation %d)", self.key.describe(), generation)
        return tokens

    def forget(self, first: Optional[Callable[[Optional[TokenSet]], _Told]] = None) -> Optional[_Told]:
        """Remove the chain from the store and from memory (logout). ``first`` runs before, under the
        chain's lock, with the newest set (the store's, or one the store could not take), so that no
        refresh in any process rotates the chain meanwhile: it tells the server (revocation). If it
        raises, nothing is forgotten. Returns what ``first`` returned."""
        with self.store.lock(self.key, self._lock_timeout):
            told: Optional[_Told] = None
            if first is not None:
                told = first(self._newest_tokens())
            self.store.delete(self.key)
            self._memory.current = None
            self._memory.stored()
        MEMORIES.forget(self._memory)
        return told

    def _newest_tokens(self) -> Optional[TokenSet]:
        unsaved = self._memory.unsaved
        if unsaved is not None:
            return unsaved.tokens
        try:
            record = self.store.load(self.key)
        except CorruptTokenCache:
            return None  # moved aside: its tokens are lost to us as well
        return record.tokens if record is not None else None

    # -- the protocol ----------------------------------------------------------------------------

    def _fly(self, lead: Callable[[], TokenSet]) -> TokenSet:
        """Join the chain's flight (leading it if none is under way), shielded from Ctrl-C."""
        self._memory.touch()  # the slow path marks the chain recent; the fast path never does
        return shield.shielded(lambda: _flights.run(self._flight_key, lead), self.key.describe())

    def _refresh(self, rejected: Optional[str]) -> TokenSet:
        result = self._fly(lambda: self._lead(rejected))
        if rejected is not None and result.access_token == rejected:
            # We joined a flight that was started for another reason and ended with the very token
            # the resource just refused. One more flight, led with our knowledge; never a loop.
            result = self._fly(lambda: self._lead(rejected))
        return result

    def _acceptable(self, candidate: Optional[TokenSet], rejected: Optional[str], now: float) -> bool:
        if candidate is None:
            return False
        if rejected is not None:
            return candidate.access_token != rejected and candidate.is_usable(now)
        return candidate.is_fresh(now, self._skew)

    def _lead(self, rejected: Optional[str], still_valid: Optional[TokenSet] = None) -> TokenSet:
        """The flight's work. ``still_valid``: an early refresh, whose caller can go on with that set."""
        # A flight that ended just before this one may already have done the work.
        current = self._memory.current
        if self._acceptable(current, rejected, self._clock()):
            assert current is not None
            return current
        # Another process may have rotated: a read without the lock is safe (writes are atomic).
        adopted = self._adopt_without_lock(rejected)
        if adopted is not None:
            return adopted
        started = time.monotonic()
        deadline = started + self._lock_timeout
        pause = _FIRST_PAUSE
        told = False
        seen = self._changes_seen()
        while True:
            try:
                lock = self.store.try_lock(self.key)
            except TokenStoreError as exc:
                if still_valid is None or not still_valid.is_usable(self._clock()):
                    raise
                # The store is away (a shared store's link, say): nothing is sent without its lock,
                # and the current token works until it is back.
                self._memory.early_retry_at = time.monotonic() + _EARLY_RETRY_PAUSE
                warn_limited(
                    log,
                    self.key,
                    cause_of(exc),
                    "early refresh of %s skipped, the store failed: %s",
                    self.key.describe(),
                    exc,
                )
                return still_valid
            if lock is not None:
                with lock:
                    return self._under_lock(rejected, still_valid)
            if still_valid is not None:
                # Another process is refreshing; ours works until it is done.
                self._memory.early_retry_at = time.monotonic() + _EARLY_RETRY_PAUSE
                return still_valid
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"could not lock the chain {self.key.describe()} within {self._lock_timeout:g} s: "
                    "another process holds it (a stopped process, or a network file system, can cause "
                    "this); no refresh was sent without the lock"
                )
            # Poll the lock briskly and, in between, look for the holder's result: when it has
            # written the rotated set, we take it without queueing for the lock at all.
            shield.check()
            waited = time.monotonic() - started
            if not told and waited >= WAIT_NOTICE_AFTER:
                # A silent wait looks like a hang: say once what we wait for, and for how long at most.
                told = True
                log.warning(
                    "another process is refreshing %s; waiting for it (up to %g s in all)",
                    self.key.describe(),
                    self._lock_timeout,
                )
            seen = self._pause(pause, max(deadline - time.monotonic(), 0.0), seen)
            pause = min(pause * 2, _MAX_PAUSE)
            adopted = self._adopt_without_lock(rejected)
            if adopted is not None:
                return adopted

    def _changes_seen(self) -> Optional[int]:
        """Where a store that announces changes (the Redis store) stands now; None for the others."""
        changes = getattr(self.store, "changes", None)
        if not callable(changes):
            return None
        try:
            seen: int = changes(self.key)
        except TokenStoreError:
            return None
        return seen

    def _pause(self, pause: float, left: float, seen: Optional[int]) -> Optional[int]:
        """Wait between two looks at the store, ``left`` seconds at most: until the holder lets go of
        the lock (a store that waits in the kernel), or the store announces a change of this chain
        (the Redis store), each with the safety net's pause; else ``pause`` seconds."""
        release = getattr(self.store, "wait_for_release", None)
        if getattr(self.store, "waits_in_kernel", False) and callable(release):
            release(self.key, min(_SAFETY_PAUSE, left))
            return seen
        wait = getattr(self.store, "wait_for_change", None)
        if seen is None or not callable(wait):
            time.sleep(min(pause, left))
            return seen
        moved: int = wait(self.key, seen, min(_SAFETY_PAUSE, left))
        return moved

    def _under_lock(self, rejected: Optional[str], still_valid: Optional[TokenSet]) -> TokenSet:
        unsaved = self._memory.unsaved
        # While the store still holds a spent set (its write failed), go on from ours.
        spent_in_store = unsaved is not None and not self._store_unsaved(unsaved)
        record = unsaved if spent_in_store and unsaved is not None else self._load_checked()
        stored = record.tokens
        if self._acceptable(stored, rejected, self._clock()):
            assert stored is not None
            log.debug("adopted generation %d of %s from the store", record.generation, self.key.describe())
            self._memory.current = stored
            return stored
        try:
            return self._spend_refresh_token(record)
        except (TokenEndpointError, StoreFull) as exc:
            if still_valid is None or not still_valid.is_usable(self._clock()):
                raise
            # An early refresh that failed costs nothing yet: the current token still works, and the
            # next call past the refresh window tries again.
            warn_limited(
                log,
                self.key,
                cause_of(exc),
                "early refresh of %s failed, the current token is still valid: %s",
                self.key.describe(),
                exc,
            )
            return still_valid

    def _adopt_without_lock(self, rejected: Optional[str]) -> Optional[TokenSet]:
        try:
            record = self.store.load(self.key)
        except TokenStoreError:
            return None  # decided again under the lock, where a broken file can be moved aside
        if record is None:
            return None
        unsaved = self._memory.unsaved
        if unsaved is not None and record.generation < unsaved.generation:
            return None  # the store is behind this process (a failed write): never go back to it
        if record.is_dead:
            self._die(record.dead_reason or "revoked")
        if self._acceptable(record.tokens, rejected, self._clock()):
            self._memory.current = record.tokens
            return record.tokens
        return None

    def _load_checked(self) -> ChainRecord:
        record = self.store.load(self.key)
        if record is None:
            self._memory.current = None
            raise self.login_required(f"no tokens are stored for {self.key.describe()}")
        if record.is_dead:
            self._die(record.dead_reason or "revoked")
        return record

    def _spend_refresh_token(self, record: ChainRecord) -> TokenSet:
        stored = record.tokens
        if stored is None or not stored.refresh_token:
            raise self.login_required(
                f"the access token for {self.key.describe()} has expired and there is no refresh token"
            )
        if self._refresher is None:
            raise self.login_required(
                f"the tokens for {self.key.describe()} need a refresh, but no token endpoint is configured"
            )
        generation = record.generation + 1
        log.debug(
            "refreshing %s: generation %d -> %d, refresh token <%s>",
            self.key.describe(),
            record.generation,
            generation,
            fingerprint(stored.refresh_token),
        )
        # From here on, a Ctrl-C (and the program's exit) waits for the grant's answer to be stored.
        with shield.grant_in_flight(self.key.describe(), self._grant_deadline):
            return self._send_and_store(record, stored, generation)

    def _send_and_store(self, record: ChainRecord, stored: TokenSet, generation: int) -> TokenSet:
        assert stored.refresh_token is not None and self._refresher is not None
        # StoreFull (or a lost lease): no grant is sent, the chain is intact.
        room = reserve(self.store, record, deadline=self._grant_deadline)
        try:
            if _FAULTPOINTS:
                _faultpoint("before-grant")
                _faultpoint("interrupt-during-grant")
            try:
                fresh = self._refresher(stored, generation, record.resource_indicator)
            except TokenEndpointError as exc:
                if exc.error_code == "invalid_grant":
                    return self._after_invalid_grant(record, exc)
                raise
            if _FAULTPOINTS:
                _faultpoint("after-grant-before-write")
            # Persist first: this is the one window in which a crash loses the chain, keep it short.
            new_record = ChainRecord(
                self.key,
                generation,
                fresh,
                token_endpoint=record.token_endpoint,
                updated_at=self._clock(),
                resource_indicator=record.resource_indicator,
            )
            # Whatever the write does, this process must use the new set: the old one is spent.
            self._memory.current = fresh
            try:
                commit(room, new_record, lambda: self._visible(fresh))
            except TokenStoreError as exc:
                self._keep_unsaved(new_record, exc)
            else:
                self._memory.stored()
            return fresh
        finally:
            room.release()

    def _visible(self, fresh: TokenSet) -> None:
        """The new set is in the store for every reader to see (not yet durable: the folder's fsync
        and the lock's release follow). The flight's waiters take its access token now; none of them
        presents its refresh token, which only a later holder of the lock reads back from the store."""
        if _WAKE_EARLY:
            _flights.publish(self._flight_key, fresh)

    # -- a rotated set the store did not take ------------------------------------------------------

    def _keep_unsaved(self, record: ChainRecord, cause: TokenStoreError) -> None:
        self._memory.keep_unsaved(record)
        log.error(
            "could not store the refreshed tokens of %s (%s). The chain now lives only in this process: "
            "keep it running until a later call stores them (each call retries); another process using "
            "this store would present the spent refresh token and lose the chain",
            self.key.describe(),
            cause,
        )

    def _try_to_store_unsaved(self) -> None:
        lock = self.store.try_lock(self.key)
        if lock is None:
            return  # another thread or process holds the chain; a later call tries again
        with lock:
            unsaved = self._memory.unsaved
            if unsaved is not None:
                self._store_unsaved(unsaved)

    def _store_unsaved(self, unsaved: ChainRecord) -> bool:
        """Under the lock: write the set only this process has; whether the store has it now."""
        try:
            stored = self.store.load(self.key)
        except TokenStoreError:
            stored = None  # unreadable (a corrupt file is moved aside): ours replaces it
        if stored is not None and stored.generation >= unsaved.generation:
            self._memory.stored()  # a login replaced the chain meanwhile
            return True
        try:
            self.store.save(unsaved)
        except TokenStoreError as exc:
            # Every call retries while the disk is full: one line per interval says it goes on.
            warn_limited(
                log,
                self.key,
                cause_of(exc),
                "the refreshed tokens of %s are still not stored (%s)",
                self.key.describe(),
                exc,
                level=logging.ERROR,
            )
            return False
        self._memory.stored()
        log.warning("the refreshed tokens of %s are stored now", self.key.describe())
        return True

    def _after_invalid_grant(self, record: ChainRecord, cause: TokenEndpointError) -> TokenSet:
        # We hold the lock, so nobody should have written since our read; read again anyway, in case
        # the lock was not respected (a second host on a network share). Never wipe a newer set.
        latest = self.store.load(self.key)
        newer = latest is not None and latest.generation != record.generation and not latest.is_dead
        if newer and latest is not None and latest.tokens is not None and latest.tokens.is_usable(self._clock()):
            self._memory.current = latest.tokens
            return latest.tokens
        dead = ChainRecord(
            self.key,
            record.generation + 1,
            None,
            token_endpoint=record.token_endpoint,
            dead_reason=f"refresh refused by the authorization server ({cause.error_code})",
            updated_at=self._clock(),
            resource_indicator=record.resource_indicator,
        )
        try:
            self.store.save(dead)
        except TokenStoreError:
            # A store that refuses to write over a newer generation (the Redis store): somebody
            # committed one since our read, so the chain lives on; the next call adopts it.
            latest = self.store.load(self.key)
            if latest is not None and latest.generation > record.generation and not latest.is_dead and latest.tokens:
                self._memory.current = latest.tokens
                return latest.tokens
            raise
        log.warning("the refresh chain of %s was revoked by the authorization server", self.key.describe())
        self._die(dead.dead_reason or "revoked", cause)

    def _die(self, reason: str, cause: Optional[BaseException] = None) -> NoReturn:
        self._memory.current = None
        raise self._needs_login(
            RefreshChainRevoked, f"the refresh chain of {self.key.describe()} is dead: {reason}"
        ) from cause

    def _needs_login(self, kind: type[_Login], why: str) -> _Login:
        return login_needed(kind, why, self._login_hint)
