"""Waiters woken by events, not timers: a process waiting for another's refresh is woken by the kernel
when the lock is let go; threads waiting in the leader's process are woken once the new set is
visible, before the folder's fsync, and a crash at that very point loses nothing the old order kept.
"""

import os
import signal
import sys
import threading
import time

import pytest

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth._refresh import manager
from mcp_sync_auth._stores import file as file_store
from mcp_sync_auth._stores.file import _flock_held
from mcp_sync_auth._stores.release_watch import supported

from ..conftest import TTL
from ..helpers import start_lock_holder, wait_until
from .wake_worker import NEVER, lead_and_die, wait_for_the_holder

pytestmark = pytest.mark.skipif(not supported() or sys.platform != "linux", reason="flock and /proc/locks")


def _config(server, client_id, store_dir, **more):
    return dict(
        mcp_url=server.mcp_url,
        token_endpoint=server.token_endpoint,
        client_id=client_id,
        store_dir=str(store_dir),
        **more,
    )


def _next(reports, timeout=180.0):
    """The worker's next report; fails (rather than hangs) if none comes."""
    wait_until(lambda: not reports.empty(), timeout=timeout, what="a report from the worker")
    return reports.get()


def _lock_file(store_dir, key):
    return store_dir / (key.stem + ".lock")


def test_a_waiting_process_is_woken_by_the_release_not_by_a_timer(spawn, server, auth, clock, store_dir, client_id):
    clock.advance(TTL + 1)
    server.hold_token_requests()
    held = {}
    holder = threading.Thread(target=lambda: held.update(token=auth.access_token()))
    holder.start()  # this process leads: it holds the chain's lock while its grant waits at the server
    wait_until(lambda: server.held_token_requests == 1, what="the holder's grant at the server")
    reports = spawn.SimpleQueue()
    # Every pause of the waiter's lock wait lasts an hour, and so does its lock_timeout.
    config = _config(server, client_id, store_dir, no_timers=True, lock_timeout=NEVER)
    waiter = spawn.Process(target=wait_for_the_holder, args=(config, clock, reports))
    waiter.start()
    assert _next(reports) == "contended"  # it found the lock held, and waits
    server.release_token_requests()
    holder.join(60)
    # Only the release can wake it now. (On polling code the waiter sleeps out its hour: this join
    # fails, and the report below never comes.)
    waiter.join(120)
    assert waiter.exitcode == 0
    assert _next(reports) == ("token", held["token"])  # the new generation, adopted from the store
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0  # the waiter sent no grant


@pytest.mark.parametrize("gate", [True, False], ids=["gate", "lock-only"])
def test_a_waiting_process_reads_the_new_set_at_the_rename_while_the_lock_is_still_held(
    spawn, monkeypatch, server, auth, clock, store_dir, client_id, gate
):
    monkeypatch.setattr(file_store, "_GATE", gate)
    store = auth.store
    clock.advance(TTL + 1)
    server.hold_token_requests()
    held = {}
    holder = threading.Thread(target=lambda: held.update(token=auth.access_token()))
    holder.start()  # this process leads; its gate is shut from the lock on, before its grant
    wait_until(lambda: server.held_token_requests == 1, what="the holder's grant at the server")
    reports = spawn.SimpleQueue()
    config = _config(server, client_id, store_dir, no_timers=True, lock_timeout=NEVER)
    waiter = spawn.Process(target=wait_for_the_holder, args=(config, clock, reports))
    waiter.start()
    assert _next(reports) == "contended"
    at_fsync = []
    fsync = store._fsync_directory

    def observed_fsync():
        # The folder's fsync of the holder's write: the lock is held until after it, so the waiter
        # (whose every timer lasts an hour) can have the new set by now only if the rename woke it.
        # Bounded; the lock-only order never gets a report here.
        deadline = time.monotonic() + (60 if gate else 0)
        while reports.empty() and time.monotonic() < deadline:
            time.sleep(0.002)  # polling a real condition, with a deadline
        at_fsync.append((None if reports.empty() else reports.get(), _flock_held(_lock_file(store_dir, auth.key))))
        fsync()

    monkeypatch.setattr(store, "_fsync_directory", observed_fsync)
    server.release_token_requests()
    holder.join(60)
    waiter.join(120)
    assert waiter.exitcode == 0
    new_token = held["token"]
    if gate:
        assert at_fsync == [(("token", new_token), True)]
    else:
        assert at_fsync == [(None, True)]
        assert _next(reports) == ("token", new_token)  # woken by the release, after the fsync
    assert not _flock_held(store_dir / (auth.key.stem + ".gate"))
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0  # the waiter sent no grant


def test_a_refresh_fsyncs_twice_the_record_and_the_folder(monkeypatch, server, auth, clock):
    # The reservation allocates its room without an fsync: on the refresh's critical path there are
    # exactly the two that make the new record durable.
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    clock.advance(TTL + 1)
    auth.access_token()
    assert len(calls) == 2
    assert server.audit.refresh_ok == 1


def test_lock_timeout_is_raised_while_the_helper_waits_and_it_keeps_nothing(
    spawn, server, auth, clock, store_dir, client_id
):
    holder = start_lock_holder(store_dir, auth.key)  # never lets go until told
    clock.advance(TTL + 1)
    reports = spawn.SimpleQueue()
    released, checked = spawn.Event(), spawn.Event()
    config = _config(
        server,
        client_id,
        store_dir,
        lock_timeout=1.0,
        after_timeout=True,
        holder_released=released,
        third_done=checked,
    )
    waiter = spawn.Process(target=wait_for_the_holder, args=(config, clock, reports))
    waiter.start()
    assert _next(reports) == "contended"
    kind, name, waited = _next(reports)
    assert (kind, name) == ("error", "LockTimeout")
    assert waited >= 1.0  # never before its bound
    # The bound passed while the helper thread was still blocked in the kernel on the holder's lock.
    assert _next(reports) == ("blocked", 1)
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    holder.wait(30)
    released.set()
    # The helper woke on the release, gave back the shared lock at once, and ended.
    assert _next(reports) == ("blocked", 0)
    assert not _flock_held(_lock_file(store_dir, auth.key))
    # A third process (this one) takes the lock at its first attempt, while the waiter still lives.
    taken = FileTokenStore(store_dir).try_lock(auth.key)
    assert taken is not None
    with taken:
        assert waiter.is_alive()
    checked.set()
    waiter.join(60)
    assert waiter.exitcode == 0
    assert server.audit.refresh_ok == 0  # nothing was sent without the lock


@pytest.mark.parametrize("wake_early", [True, False], ids=["waking-early", "old-order"])
def test_a_crash_between_the_rename_and_the_folder_fsync_loses_no_chain(
    spawn, monkeypatch, server, auth, clock, store_dir, client_id, wake_early
):
    store = FileTokenStore(store_dir)
    before = store.load(auth.key).generation
    clock.advance(TTL + 1)
    server.hold_token_requests()
    threads = 4
    # The leader's process: armed to be killed between the rename and the folder's fsync.
    monkeypatch.setenv("MCP_SYNC_AUTH_FAULTPOINT", "after-rename-before-dirsync:1")
    dying_reports = spawn.SimpleQueue()
    dying = spawn.Process(
        target=lead_and_die,
        args=(_config(server, client_id, store_dir, threads=threads, wake_early=wake_early), clock, dying_reports),
    )
    dying.start()
    monkeypatch.delenv("MCP_SYNC_AUTH_FAULTPOINT")
    assert _next(dying_reports) == ("joined", threads - 1)  # one leader, its waiters on its flight
    wait_until(lambda: server.held_token_requests == 1, what="the leader's grant at the server")
    # Another process waits for the same chain, blocked on the leader's lock.
    other_reports = spawn.SimpleQueue()
    other_config = _config(server, client_id, store_dir)
    other = spawn.Process(target=wait_for_the_holder, args=(other_config, clock, other_reports))
    other.start()
    assert _next(other_reports) == "contended"
    server.release_token_requests()
    dying.join(120)
    assert dying.exitcode == -signal.SIGKILL
    woken = []
    while not dying_reports.empty():
        woken.append(dying_reports.get())
    other.join(120)
    assert other.exitcode == 0

    stored = store.load(auth.key)
    assert stored.generation == before + 1  # the rename outlived the process
    new_token = stored.tokens.access_token
    if wake_early:
        # Every waiter of the leader's process had the new access token before the kill.
        assert woken == [("token", new_token)] * (threads - 1)
    else:
        assert woken == []  # they would have woken after the release, which never came
    # The kernel let go of the dead leader's lock; the other process read the renamed set.
    assert _next(other_reports) == ("token", new_token)
    assert not _flock_held(_lock_file(store_dir, auth.key))
    assert server.audit.refresh_ok == 1  # nobody else sent a grant
    # The chain lives: its stored refresh token is the newest, and its next rotation works.
    clock.advance(TTL + 1)
    assert auth.access_token() != new_token
    audit = server.audit
    assert audit.refresh_ok == 2 and audit.reuse_detections == 0 and audit.refresh_failed == 0
    assert store.load(auth.key).generation == before + 2
    assert [name for name in os.listdir(store_dir) if name.endswith(".tmp")] == []


@pytest.mark.parametrize("wake_early", [True, False], ids=["waking-early", "old-order"])
def test_threads_wake_before_the_folder_fsync_which_still_precedes_the_release(
    monkeypatch, server, auth, clock, store_dir, wake_early
):
    monkeypatch.setattr(manager, "_WAKE_EARLY", wake_early)
    store = auth.store
    threads = 4
    got = []
    done = threading.Condition()
    at_fsync = []
    fsync = store._fsync_directory

    def observed_fsync():
        # Early: the waiters have their tokens before the folder's fsync runs (bounded: the old order
        # never gets there, so it records 0). And the chain's lock is still held meanwhile.
        with done:
            done.wait_for(lambda: len(got) == threads - 1, timeout=20 if wake_early else 0)
            at_fsync.append((len(got), _flock_held(_lock_file(store_dir, auth.key))))
        fsync()

    monkeypatch.setattr(store, "_fsync_directory", observed_fsync)

    def call():
        token = auth.access_token()
        with done:
            got.append(token)
            done.notify_all()

    clock.advance(TTL + 1)
    server.hold_token_requests()
    pool = [threading.Thread(target=call) for _ in range(threads)]
    for thread in pool:
        thread.start()
    wait_until(lambda: manager._flights.waiting((store.identity, auth.key)) == threads - 1, what="the waiters")
    server.release_token_requests()
    for thread in pool:
        thread.join(60)
    assert at_fsync == [(threads - 1 if wake_early else 0, True)]
    assert len(got) == threads and len(set(got)) == 1  # one new token, for the leader and every waiter
    assert got[0] == FileTokenStore(store_dir).load(auth.key).tokens.access_token
    assert not _flock_held(_lock_file(store_dir, auth.key))
    assert server.audit.refresh_ok == 1
