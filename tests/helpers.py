"""Small test helpers shared by several test files."""

import subprocess
import sys
import textwrap
import time


def wait_until(predicate, timeout=30.0, what="condition"):
    """Wait for a state another thread or process reaches; fails loudly instead of hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def start_lock_holder(store_dir, key):
    """Another process that takes the chain's lock, says so, and keeps it until a line arrives on its
    stdin (or it is killed); then prints "released". Returns the process, the lock already held."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from mcp_sync_auth import ChainKey, FileTokenStore
            key = ChainKey(*{tuple(key.to_json().values())!r})
            with FileTokenStore({str(store_dir)!r}).lock(key, timeout=5):
                print("locked", flush=True)
                sys.stdin.readline()
            print("released", flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder
