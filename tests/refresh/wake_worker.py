"""Worker processes for tests/refresh/test_wakeup.py (spawned, so importable).

Each reports through a ``multiprocessing.SimpleQueue``: its ``put`` writes to the pipe before it
returns, so what a worker reported is not lost when it is killed right after."""

import threading
import time

from mcp_sync_auth import MCPAuthError
from mcp_sync_auth._refresh import manager
from mcp_sync_auth._stores import file, release_watch

from ..workers import make_auth

NEVER = 3600.0  # a pause no test waits out: only the kernel (or the holder's death) can end the wait


def _report_first_contention(store, reports):
    """Say once, when this process first finds the chain's lock held by somebody else."""
    try_lock = store.try_lock
    told = []

    def reporting(key):
        lock = try_lock(key)
        if lock is None and not told:
            told.append(True)
            reports.put("contended")
        return lock

    store.try_lock = reporting


def wait_for_the_holder(config, clock, reports):
    """Need a token while another process holds the chain's lock; report what came of it.

    ``no_timers``: every pause of the lock wait lasts an hour, so only the holder's release can wake
    this process in time."""
    if config.get("no_timers"):
        manager._FIRST_PAUSE = manager._MAX_PAUSE = NEVER
        manager._SAFETY_PAUSE = NEVER  # (a new name: harmless on code that has no such pause)
    auth = make_auth(config, clock)
    _report_first_contention(auth.store, reports)
    started = time.monotonic()
    try:
        token = auth.access_token()
    except MCPAuthError as exc:
        reports.put(("error", type(exc).__name__, time.monotonic() - started))
    else:
        reports.put(("token", token))
    if config.get("after_timeout"):
        _after_the_timeout(reports, config["holder_released"], config["third_done"])


def _after_the_timeout(reports, holder_released, third_done):
    """The caller gave up; its helper may still be blocked on the lock. It must end once the holder
    lets go, holding nothing: report how many helpers are blocked before and after the release."""
    reports.put(("blocked", release_watch.WATCH.blocked()))
    holder_released.wait(120)
    deadline = time.monotonic() + 120
    while release_watch.WATCH.blocked() and time.monotonic() < deadline:
        time.sleep(0.002)  # polling a real condition, with a deadline
    reports.put(("blocked", release_watch.WATCH.blocked()))
    third_done.wait(120)  # stay alive while a third process takes the lock


def lead_and_die(config, clock, reports):
    """Threads of one process need a refresh at once; its leader is killed (the fault point
    after-rename-before-dirsync, armed in this process's environment) after renaming the new set
    into place and before fsyncing the folder.

    With ``wake_early``, the kill waits until every waiter has reported the token it was woken
    with (which can happen only if waiters wake before the folder's fsync)."""
    manager._WAKE_EARLY = config["wake_early"]
    auth = make_auth(config, clock)
    waiters = config["threads"] - 1
    woken = threading.Condition()
    reported = []
    reach = file._faultpoint

    def at_point(point):
        if point == "after-rename-before-dirsync" and manager._WAKE_EARLY:
            with woken:
                woken.wait_for(lambda: len(reported) == waiters, timeout=120)
        reach(point)

    file._faultpoint = at_point

    def call():
        token = auth.access_token()
        with woken:
            reports.put(("token", token))
            reported.append(token)
            woken.notify_all()

    pool = [threading.Thread(target=call, daemon=True) for _ in range(config["threads"])]
    for thread in pool:
        thread.start()
    flight = (auth.store.identity, auth.key)
    deadline = time.monotonic() + 120
    while manager._flights.waiting(flight) != waiters and time.monotonic() < deadline:
        time.sleep(0.002)  # polling a real condition, with a deadline
    reports.put(("joined", manager._flights.waiting(flight)))
    for thread in pool:
        thread.join(300)
    reports.put("not killed")
