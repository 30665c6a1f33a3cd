"""Grants without a person (client credentials here) are coalesced like refreshes: one grant per
need, across threads and processes (on files, and over Redis as the fleet does), on a cold start,
at every expiry and on the 401 path."""

from collections import Counter

import pytest

from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import expire_or_revoke


def _machine_config(server, store_dir, **extra):
    client_id = server.register_client(token_endpoint_auth_method="client_secret_basic")
    secret = server.get_client(client_id).client_secret
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir),
        client_auth={"client_secret": secret, "grant_type": "client_credentials"},
        **extra,
    )


def test_a_cold_start_of_4_processes_64_threads_makes_one_grant(spawn, server, clock, store_dir):
    config = _machine_config(server, store_dir, threads=64, cycles=1)
    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=lambda: None)
    assert totals == Counter(ok=4 * 64)
    assert server.audit.grants["client_credentials"] == 1


@pytest.fixture(params=["files", "redis"])
def shared_store(request, store_dir):
    """Where the processes keep the chain: a token folder, or a Redis."""
    if request.param == "files":
        return {}
    return {"redis_url": request.getfixturevalue("redis_server").url}


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_4_processes_16_threads_10_cycles_one_grant_each(spawn, server, clock, store_dir, shared_store, path):
    config = _machine_config(server, store_dir, threads=16, cycles=11, **shared_store)
    steps = iter([lambda: None] + [expire_or_revoke(path, server, clock)] * 10)

    def between_cycles():
        next(steps)()

    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=between_cycles)
    assert totals == Counter(ok=4 * 16 * 11)
    assert server.audit.grants["client_credentials"] == 11  # the cold start, then one per expiry
