"""The keyring store passes the file store's counting test: 8 processes x 16 threads, 10 expiries,
exactly one refresh grant each. The workers reach the test's private Secret Service through
$DBUS_SESSION_BUS_ADDRESS, which the fixture set before they were spawned.

The naive baseline (the keychain's own atomic replace, and a lock that excludes only one process's
threads) loses the chain under the same load, so the count can fail."""

from collections import Counter

import pytest

from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import expire_or_revoke

NAIVE = "tests.keyring_store.naive:ProcessLocalLockStore"


def seeded_config(server, client_id, store_dir, keyring_store, clock, **extra):
    from mcp_sync_auth import MCPAuth  # noqa: PLC0415

    auth = MCPAuth(server.mcp_url, store=keyring_store, client_id=client_id, token_endpoint=server.token_endpoint,
                   clock=clock, interactive=False)
    auth.save_token(server.mint_tokens(client_id))
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir), keyring=True, timeout=60.0, **extra,
    )


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_8_processes_16_threads_10_expiries_one_grant_each(
    spawn, server, client_id, clock, store_dir, keyring_store, path
):
    config = seeded_config(server, client_id, store_dir, keyring_store, clock, threads=16, cycles=10)
    totals = drive_processes(spawn, server, clock, config, processes=8,
                             between_cycles=expire_or_revoke(path, server, clock))
    assert totals == Counter(ok=8 * 16 * 10)
    audit = server.audit
    assert audit.grants["refresh_token"] == 10
    assert audit.refresh_ok == 10
    assert audit.reuse_detections == 0
    assert audit.revocations == 0
    (record,) = keyring_store.records()
    assert record.generation == 11 and record.dead_reason is None


def test_naive_keyring_store_without_the_file_lock_loses_the_chain(
    spawn, server, client_id, clock, store_dir, keyring_store
):
    config = seeded_config(server, client_id, store_dir, keyring_store, clock, threads=4, cycles=3,
                           store_class=NAIVE)
    totals = drive_processes(spawn, server, clock, config, processes=8,
                             between_cycles=expire_or_revoke("expiry", server, clock))
    audit = server.audit
    # Several processes present the same refresh token: the server sees the reuse and ends the chain.
    assert audit.reuse_detections >= 1
    assert totals["ok"] < 8 * 4 * 3
