"""DPoP-bound rotating chains against the strict server (dpop required, nonces demanded at the token
endpoint and at the resource): one refresh per expiry across threads and processes, on files and
over Redis, every proof's jti unique (the server refuses a replay), one key for the chain wherever
it is used. A process that signs with a key of its own loses the chain: the server refuses the
bound refresh token."""

from collections import Counter

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth.testing import StrictAuthServer, auto_consent_handler

from ..conftest import TTL
from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import echo_call, expire_or_revoke


@pytest.fixture
def dpop_server(clock):
    with StrictAuthServer(
        access_token_ttl=TTL, clock=clock, token_marker="SECRETMARK",
        dpop="required", dpop_nonce_at_token=True, dpop_nonce_at_resource=True,
    ) as strict:
        yield strict


@pytest.fixture(params=["files", "redis"])
def shared_store(request, store_dir):
    if request.param == "files":
        return {"store_dir": str(store_dir)}
    return {"redis_url": request.getfixturevalue("redis_server").url}


def _store_of(config):
    from ..workers import make_store  # noqa: PLC0415

    return make_store(config)


def _logged_in(server, config, clock):
    """A person's login with dpop=True: the chain and its key go into the shared store."""
    auth = MCPAuth(server.mcp_url, store=_store_of(config), dpop=True, clock=clock,
                   authorization_handler=auto_consent_handler)
    tokens = auth.login()
    assert tokens.is_dpop
    return auth


def test_one_process_logs_in_calls_and_refreshes_with_proofs(dpop_server, store_dir, clock, http):
    auth = MCPAuth(dpop_server.mcp_url, store=FileTokenStore(store_dir), dpop=True, clock=clock,
                   authorization_handler=auto_consent_handler)
    for _ in range(3):
        assert echo_call(http, dpop_server.mcp_url, auth) == "ok"
        clock.advance(TTL + 1)
    assert echo_call(http, dpop_server.mcp_url, auth) == "ok"
    audit = dpop_server.audit
    assert audit.refresh_ok == 3 and audit.reuse_detections == 0
    dpop = audit.dpop
    assert dpop.replays == 0 and dpop.key_mismatches == 0 and dpop.bound_as_bearer == 0
    assert len(dpop.keys) == 1 and dpop.nonce_challenges >= 2  # asked at both places, answered


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_4_processes_64_threads_10_expiries_one_grant_each(spawn, dpop_server, clock, shared_store, path):
    config = dict(mcp_url=dpop_server.mcp_url, token_endpoint=dpop_server.token_endpoint, client_id=None,
                  client_auth={"dpop": True}, threads=64, cycles=10, **shared_store)
    first = _logged_in(dpop_server, config, clock)
    config["client_id"] = first.key.client_id
    asked_before = dpop_server.audit.dpop.nonce_challenges_at.get("token", 0)
    totals = drive_processes(spawn, dpop_server, clock, config, processes=4,
                             between_cycles=expire_or_revoke(path, dpop_server, clock))
    assert totals == Counter(ok=4 * 64 * 10)
    audit = dpop_server.audit
    assert audit.refresh_ok == 10 and audit.reuse_detections == 0 and audit.revocations == 0
    # The only refresh requests refused are the token endpoint's first demand of its nonce in each
    # process (it asks before it looks at the token, so nothing is spent): at most one per process.
    refused = audit.grants["refresh_token"] - audit.refresh_ok
    assert refused == audit.dpop.nonce_challenges_at.get("token", 0) - asked_before <= 4
    dpop = audit.dpop
    assert dpop.replays == 0  # every proof's jti unique, across all processes: the server checks
    assert dpop.key_mismatches == 0 and dpop.bound_as_bearer == 0
    assert len(dpop.keys) == 1  # one key for the chain, in every process
    assert dpop.proofs_accepted >= 4 * 64 * 10 + 10


@pytest.mark.parametrize("own_key", [True, False])
def test_a_process_with_a_key_of_its_own_loses_the_chain(spawn, dpop_server, clock, store_dir, own_key):
    config = dict(mcp_url=dpop_server.mcp_url, token_endpoint=dpop_server.token_endpoint, client_id=None,
                  client_auth={"dpop": True}, threads=1, cycles=1, store_dir=str(store_dir), own_dpop_key=own_key)
    first = _logged_in(dpop_server, config, clock)
    config["client_id"] = first.key.client_id
    totals = drive_processes(spawn, dpop_server, clock, config, processes=1,
                             between_cycles=lambda: clock.advance(TTL + 1))
    audit = dpop_server.audit
    if own_key:  # the naive client: its proof is of another key, so the bound refresh token is refused
        assert audit.dpop.key_mismatches == 1 and audit.refresh_ok == 0
        assert totals["ok"] == 0
    else:
        assert totals == Counter(ok=1) and audit.refresh_ok == 1 and audit.dpop.key_mismatches == 0


def test_logging_in_again_makes_a_new_key(dpop_server, store_dir, clock):
    auth = MCPAuth(dpop_server.mcp_url, store=FileTokenStore(store_dir), dpop=True, clock=clock,
                   authorization_handler=auto_consent_handler)
    first = auth.login()
    second = auth.login()
    assert first.dpop_key != second.dpop_key
    assert len(dpop_server.audit.dpop.keys) == 2  # each chain bound to its own key
    (record,) = FileTokenStore(store_dir).records()
    assert record.tokens.dpop_key == second.dpop_key  # the store keeps the new chain's key with it
