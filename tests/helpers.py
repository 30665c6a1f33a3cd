"""Small test helpers shared by several test files."""

import time


def wait_until(predicate, timeout=30.0, what="condition"):
    """Wait for a state another thread or process reaches; fails loudly instead of hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)
