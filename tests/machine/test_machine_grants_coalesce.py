"""Grants without a person (client credentials here) are coalesced like refreshes: one grant per
need, across threads and processes (on files, and over Redis as the fleet does), on a cold start,
at every expiry and on the 401 path."""

from collections import Counter

import pytest

from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import expire_or_revoke
from .keys import make_key, private_pem, public_pem


def _machine_config(server, store_dir, authentication="secret", **extra):
    """A client credentials client that authenticates with a secret, or with a private key."""
    if authentication == "secret":
        client_id = server.register_client(token_endpoint_auth_method="client_secret_basic")
        credentials = {"client_secret": server.get_client(client_id).client_secret}
    else:
        key = make_key("ec")
        client_id = server.register_client(token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key))
        credentials = {"private_key": private_pem(key)}
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
        store_dir=str(store_dir),
        client_auth={**credentials, "grant_type": "client_credentials"},
        **extra,
    )


@pytest.mark.parametrize("authentication", ["secret", "private_key_jwt"])
def test_a_cold_start_of_4_processes_64_threads_makes_one_grant(spawn, server, clock, store_dir, authentication):
    config = _machine_config(server, store_dir, authentication, threads=64, cycles=1)
    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=lambda: None)
    assert totals == Counter(ok=4 * 64)
    audit = server.audit
    assert audit.grants["client_credentials"] == 1 and audit.assertion_replays == 0


@pytest.fixture(params=["files", "redis"])
def shared_store(request, store_dir):
    """Where the processes keep the chain: a token folder, or a Redis."""
    if request.param == "files":
        return {}
    return {"redis_url": request.getfixturevalue("redis_server").url}


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_4_processes_16_threads_10_cycles_one_grant_each(spawn, server, clock, store_dir, shared_store, path):
    config = _machine_config(server, store_dir, "private_key_jwt", threads=16, cycles=11, **shared_store)
    steps = iter([lambda: None] + [expire_or_revoke(path, server, clock)] * 10)

    def between_cycles():
        next(steps)()

    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=between_cycles)
    assert totals == Counter(ok=4 * 16 * 11)
    audit = server.audit
    assert audit.grants["client_credentials"] == 11  # the cold start, then one per expiry
    assert audit.assertion_replays == 0  # each grant with an assertion of its own
