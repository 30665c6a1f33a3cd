"""A process whose main thread leads refreshes and gets SIGINT at random moments (spawned: importable)."""

import os
import random
import signal
import threading
import time

from mcp_sync_auth import FileTokenStore, MCPAuthError, RefreshInterrupted
from mcp_sync_auth._refresh.manager import _flights

from ..conftest import TTL
from ..workers import make_auth


def interrupted_refreshes(config, clock, results):
    """``trials`` expiries; in each, the main thread refreshes while a second thread waits on the same
    flight, and SIGINT lands at a random moment of the (slow) grant. Reports what each trial saw."""
    # SIGINT raises KeyboardInterrupt even if this process was started with it ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(config["seed"])
    auth = make_auth(config, clock)
    store = FileTokenStore(config["store_dir"])
    delivered = threading.Event()

    def on_sigint(signum, frame):
        delivered.set()
        raise KeyboardInterrupt  # exactly what Python's default handler does, and where it does it

    signal.signal(signal.SIGINT, on_sigint)
    report = {"interrupted": 0, "finished": 0, "delivered": 0, "waiter": {}, "hung": 0, "problems": []}
    for trial in range(config["trials"]):
        clock.advance(TTL + 1)
        delivered.clear()
        moment = rng.uniform(0.0, config["window"])
        waiter_outcome = []

        def waiter():
            try:
                auth.access_token()
                waiter_outcome.append("ok")
            except RefreshInterrupted:
                waiter_outcome.append("RefreshInterrupted")
            except MCPAuthError as exc:
                waiter_outcome.append(type(exc).__name__)

        def interrupt_later():
            time.sleep(moment)  # the random moment of the trial, not a synchronisation
            os.kill(os.getpid(), signal.SIGINT)

        go = threading.Event()
        second = threading.Thread(target=lambda: (go.wait(), waiter()))
        second.start()
        timer = threading.Thread(target=interrupt_later)
        try:
            timer.start()
            go.set()  # the second caller joins the refresh (or leads it: both orders are covered)
            auth.access_token()
            # The signal still comes: let it land here, outside the refresh. Short waits, because
            # the kernel may hand it to another thread, and then the handler runs only once the
            # main thread's wait returns.
            while not delivered.wait(0.05):
                pass
        except KeyboardInterrupt:
            report["interrupted"] += 1
        else:
            # The handler raised where Python ignores what is raised: in a weakref callback or a
            # finalizer ("Exception ignored in ..."). The signal did land; nothing here to undo.
            report["finished"] += 1
        if delivered.is_set():
            report["delivered"] += 1
        go.set()
        if timer.ident is not None:
            timer.join()
        second.join(120)
        if second.is_alive():
            report["hung"] += 1
            break
        kind = waiter_outcome[0] if waiter_outcome else "none"
        report["waiter"][kind] = report["waiter"].get(kind, 0) + 1
        record = store.load(auth.key)
        if record is None or record.is_dead:
            report["problems"].append(f"trial {trial}: the chain is dead")
            break
        temps = [name for name in os.listdir(config["store_dir"]) if name.endswith(".tmp")]
        if temps:
            report["problems"].append(f"trial {trial}: temp files left: {temps}")
        lock = store.try_lock(auth.key)
        if lock is None:
            report["problems"].append(f"trial {trial}: the chain's lock is still held")
        else:
            with lock:
                pass
        if _flights.in_flight((store.identity, auth.key)):
            report["problems"].append(f"trial {trial}: a flight never ended")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if report["hung"] or report["problems"]:
        results.put(report)  # report what went wrong now; a stuck flight would block the check below
        return
    clock.advance(TTL + 1)
    auth.access_token()  # the chain still works after all that
    report["generation"] = store.load(auth.key).generation
    results.put(report)
