"""Code that runs in worker processes (started with the spawn method, so it must be importable)."""

import importlib
import os
import sys
import threading
from collections import Counter

import requests

from mcp_sync_auth import FileTokenStore, MCPAuth, MCPAuthError


def echo_call(session, url, auth, text="hi"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    headers = {"Accept": "application/json, text/event-stream"}
    response = session.post(url, json=body, auth=auth, headers=headers, timeout=30)
    if response.status_code != 200:
        return f"http {response.status_code}"
    result = response.json().get("result", {})
    if result.get("content", [{}])[0].get("text") != text:
        return "wrong answer"
    return "ok"


TTL_FOR_CYCLES = 300.0  # tests/conftest.py's TTL: the lifetime of every access token the tests mint


def make_store(config):
    """The store a worker uses: ``redis_url`` (a Redis store, ``redis_options`` for it), ``keyring``
    (a keyring store whose index and locks are in ``store_dir``), None with
    ``store_from_environment`` (MCPAuth's own choice: $MCP_SYNC_AUTH_STORE), else the token folder
    ``store_dir``."""
    if config.get("store_from_environment"):
        return None
    if config.get("redis_url"):
        from mcp_sync_auth._stores.redis import RedisTokenStore  # noqa: PLC0415 (only with the [redis] extra)

        kind = RedisTokenStore
        if config.get("store_class"):  # a naive baseline, "module:Class"
            module, _, name = config["store_class"].partition(":")
            kind = getattr(importlib.import_module(module), name)
        return kind.from_url(config["redis_url"], **config.get("redis_options", {}))
    if config.get("keyring"):
        return make_keyring_store(config)
    return FileTokenStore(config["store_dir"])


def make_keyring_store(config):
    """A keyring store in ``store_dir`` on the Secret Service of $DBUS_SESSION_BUS_ADDRESS (the test's
    private one); ``store_class`` names a naive baseline instead."""
    from keyring.backends import SecretService  # noqa: PLC0415 (only with the [keyring] extra)

    from mcp_sync_auth import KeyringTokenStore  # noqa: PLC0415

    kind = KeyringTokenStore
    if config.get("store_class"):
        module, _, name = config["store_class"].partition(":")
        kind = getattr(importlib.import_module(module), name)
    # A loaded 2-core machine may be slow to answer, but a keychain call never waits forever.
    return kind(config["store_dir"], backend=SecretService.Keyring(), timeout=60.0)


def own_dpop_key_per_process():
    """A naive client's mistake, for the tests that must fail: this process signs every DPoP proof
    with a key of its own instead of the one stored with the chain."""
    from mcp_sync_auth._oauth import dpop  # noqa: PLC0415

    mine = dpop.DPoPKey.generate()
    dpop.KEYS.key = lambda private_jwk: mine


def make_auth(config, clock):
    """The worker's MCPAuth: a chain stored by hand (``token_endpoint``) by default, or a machine
    client with ``client_auth`` (its MCPAuth keywords: grant type, secret, ...) found by discovery."""
    machine = config.get("client_auth")
    if config.get("own_dpop_key"):
        own_dpop_key_per_process()
    return MCPAuth(
        config["mcp_url"],
        store=make_store(config),
        client_id=config["client_id"],
        token_endpoint=None if machine else config["token_endpoint"],
        clock=clock,
        timeout=config.get("timeout", 30.0),
        lock_timeout=config.get("lock_timeout"),
        interactive=False,
        **(machine or {}),
    )


def run_cycles(config, clock, process_barrier, results):
    """Threads of one process: at each cycle every thread makes one call at the same moment.

    ``process_barrier`` (a multiprocessing.Barrier with the parent as a party) marks the start and
    the end of each cycle, so the parent can expire or revoke tokens between cycles.
    """
    auth = make_auth(config, clock)
    session = requests.Session()
    threads = config["threads"]
    start = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)
    outcomes = Counter()
    guard = threading.Lock()

    def worker():
        for _ in range(config["cycles"]):
            start.wait()
            try:
                outcome = echo_call(session, config["mcp_url"], auth)
            except MCPAuthError as exc:
                outcome = type(exc).__name__
                if outcome not in outcomes:  # the first of each kind, for the test's report on failure
                    print(f"worker {os.getpid()}: {outcome}: {exc}", file=sys.stderr, flush=True)
            with guard:
                outcomes[outcome] += 1
            done.wait()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for _ in range(config["cycles"]):
        process_barrier.wait()
        start.wait()
        done.wait()
        process_barrier.wait()
    for thread in pool:
        thread.join()
    results.put(dict(outcomes))


def drive_cycles(workers, barrier, results, cycles, between_cycles):
    """Take started ``run_cycles`` workers through ``cycles`` cycles (``between_cycles()`` before
    each); the outcomes of every call, counted. Every worker must end cleanly."""
    try:
        for _ in range(cycles):
            between_cycles()
            barrier.wait(timeout=180)  # cycle starts
            barrier.wait(timeout=180)  # cycle done
        totals = Counter()
        for _ in workers:
            totals.update(results.get(timeout=60))
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)
    return totals


def expire_or_revoke(path, server, clock):
    """What happens between cycles on each path: every token expires, or the server revokes them
    early (the 401 path)."""
    if path == "expiry":
        return lambda: clock.advance(TTL_FOR_CYCLES + 1)
    return server.revoke_access_tokens


def one_call(config, clock, results):
    """In a process of its own: one access token (refreshed if due), then one MCP call with it; the
    outcome ("ok", or the error's class name) and the access token."""
    auth = make_auth(config, clock)
    try:
        token = auth.access_token()
        outcome = echo_call(requests.Session(), config["mcp_url"], auth)
    except MCPAuthError as exc:
        token, outcome = None, type(exc).__name__
    results.put((outcome, token))
