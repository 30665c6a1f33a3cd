"""The chain's gate (mcp_sync_auth/_stores/wake_gate.py): it only ever wakes somebody. A holder that
cannot take it goes on without it, a holder that dies lets go of it, and a forked child keeps no copy."""

import os
import signal
import sys

import pytest

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth._stores.file import _flock_held
from mcp_sync_auth._stores.release_watch import supported
from mcp_sync_auth._stores.wake_gate import GATES

from ..conftest import TTL
from ..helpers import call_in_fork, start_lock_holder, wait_until

pytestmark = pytest.mark.skipif(not supported() or sys.platform != "linux", reason="flock and /proc/locks")

fcntl = pytest.importorskip("fcntl")


def _gate(store_dir, key):
    return store_dir / (key.stem + ".gate")


def test_a_gate_held_shared_elsewhere_never_holds_up_a_refresh(server, auth, clock, store_dir):
    # Another process's helper has the gate shared (here: for the whole refresh, longer than any
    # helper ever keeps it). The holder cannot shut it, and goes on without it.
    fd = os.open(_gate(store_dir, auth.key), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        clock.advance(TTL + 1)
        token = auth.access_token()
        assert token == FileTokenStore(store_dir).load(auth.key).tokens.access_token
        assert GATES.held() == 0
    finally:
        os.close(fd)
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0


def test_the_lock_holder_shuts_the_gate_and_a_killed_holder_lets_go_of_it(auth, store_dir):
    holder = start_lock_holder(store_dir, auth.key)
    gate = _gate(store_dir, auth.key)
    assert _flock_held(gate)  # shut from the lock on
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    wait_until(lambda: not _flock_held(gate), what="the kernel to release the dead holder's gate")
    assert not _flock_held(store_dir / (auth.key.stem + ".lock"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_child_forked_while_the_gate_is_shut_keeps_no_copy_of_it(auth, store_dir):
    store = FileTokenStore(store_dir)
    with store.lock(auth.key, timeout=5):
        assert GATES.held() == 1
        fd = next(iter(GATES._held.values()))

        def in_child():
            try:
                os.fstat(fd)
            except OSError:
                closed = True
            else:
                closed = False
            return closed and GATES.held() == 0

        assert call_in_fork(in_child)() == 0
        assert _flock_held(_gate(store_dir, auth.key))  # the parent's stays shut
    assert GATES.held() == 0
    assert not _flock_held(_gate(store_dir, auth.key))
