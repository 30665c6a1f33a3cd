"""The helper threads that wait in the kernel for a lock's release (mcp_sync_auth/_stores/release_watch.py)."""

import os
import sys
import threading

import pytest

from mcp_sync_auth import ChainKey, FileTokenStore
from mcp_sync_auth._stores.file import _flock_held
from mcp_sync_auth._stores.release_watch import WATCH, supported

from ..helpers import call_in_fork, start_lock_holder, wait_until

pytestmark = pytest.mark.skipif(not supported() or sys.platform != "linux", reason="flock and /proc/locks")

KEY = ChainKey("https://mcp.example/mcp", "https://as.example", "client-1")


def _release(holder):
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    holder.wait(30)


def test_many_waiters_share_one_helper_and_all_wake_at_the_release(tmp_path):
    store = FileTokenStore(tmp_path / "tokens")
    holder = start_lock_holder(store.directory, KEY)
    woken = []
    waiters = [threading.Thread(target=lambda: woken.append(store.wait_for_release(KEY, 120))) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    wait_until(lambda: WATCH.blocked() == 1, what="one helper, blocked")
    assert woken == []  # nobody wakes while the lock is held
    _release(holder)
    for waiter in waiters:
        waiter.join(60)
    assert woken == [True] * 8
    assert WATCH.blocked() == 0
    assert not _flock_held(store.directory / (KEY.stem + ".lock"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_while_a_helper_waits_keeps_neither_the_helper_nor_its_descriptor(tmp_path):
    store = FileTokenStore(tmp_path / "tokens")
    holder = start_lock_holder(store.directory, KEY)
    waiter = threading.Thread(target=lambda: store.wait_for_release(KEY, 120))
    waiter.start()
    wait_until(lambda: WATCH.blocked() == 1, what="the helper, blocked")
    path = str(store.directory / (KEY.stem + ".gate"))  # a waiter for the record: its round is the gate's
    wait_until(lambda: WATCH._rounds[path].fd is not None, what="the helper's descriptor")
    fd = WATCH._rounds[path].fd

    def in_child():
        # The parent's helper does not exist here, and its descriptor is closed (were it kept, the
        # child would share whatever the helper locks through it). The child waits afresh.
        try:
            os.fstat(fd)
        except OSError:
            closed = True
        else:
            closed = False
        return closed and WATCH.blocked() == 0 and store.wait_for_release(KEY, 0.05) is False

    assert call_in_fork(in_child)() == 0
    _release(holder)
    waiter.join(60)
    assert WATCH.blocked() == 0
