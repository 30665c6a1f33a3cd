"""Two accounts of one server are two chains, strictly apart, in every store that shares chains
between processes: the file store and the Redis fleet store (the keyring store is added by
parametrising :func:`make_store` with its kind).

Both directions each time: logging in as alice then bob gives two chains; alice's auth never hands
out bob's token, nor bob's alice's, after a refresh as before it; logging alice out leaves bob
logged in; ``status`` lists both with their account and ``--account`` picks one. A client that
ignored the account would keep one chain, the second login replacing the first."""

import json

import pytest

from mcp_sync_auth import AuthorizationRequired, FileTokenStore, MCPAuth
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth.cli.main import main
from mcp_sync_auth.testing import login

from ..conftest import TTL
from ..workers import echo_call

STORE_KINDS = ["file", "redis"]


def make_store(kind, request, tmp_path):
    """(store, the --store value naming it) for ``kind``: the one place a new kind is added."""
    if kind == "file":
        folder = tmp_path / "tokens"
        return FileTokenStore(folder), str(folder)
    if kind == "redis":
        redis_server = request.getfixturevalue("redis_server")
        store = RedisTokenStore.from_url(redis_server.url)
        request.addfinalizer(store.close)
        return store, redis_server.url
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
def shared(request, tmp_path):
    return make_store(request.param, request, tmp_path)


@pytest.fixture
def two_accounts(shared, server, clock):
    store, _ = shared
    alice = login(server, store, account="alice", clock=clock)
    bob = login(server, store, account="bob", clock=clock)
    return alice, bob


def stored(store, account):
    (record,) = [r for r in store.records() if r.key.account == account]
    return record


def fresh(server, store, account, clock):
    return MCPAuth(server.mcp_url, store=store, account=account, clock=clock, interactive=False)


def test_two_logins_make_two_chains_that_never_hand_out_each_others_tokens(
    two_accounts, shared, server, clock, http
):
    store, _ = shared
    alice, bob = two_accounts
    assert sorted(r.key.account for r in store.records()) == ["alice", "bob"]
    assert alice.key.client_id == bob.key.client_id  # one client, two logins: only the account tells them apart
    a, b = stored(store, "alice").tokens, stored(store, "bob").tokens
    assert a.access_token != b.access_token and a.refresh_token != b.refresh_token
    for _ in range(2):  # as stored, then after a refresh of each
        for account, auth, own, other in (("alice", alice, a, b), ("bob", bob, b, a)):
            assert auth.access_token() == own.access_token != other.access_token
            assert fresh(server, store, account, clock).access_token() == own.access_token
            assert echo_call(http, server.mcp_url, auth) == "ok"
        clock.advance(TTL + 1)
        before = {account: stored(store, account).generation for account in ("alice", "bob")}
        alice.access_token()  # alice refreshes: bob's chain does not move
        assert stored(store, "alice").generation == before["alice"] + 1
        assert stored(store, "bob").generation == before["bob"]
        bob.access_token()
        assert stored(store, "alice").generation == before["alice"] + 1
        a, b = stored(store, "alice").tokens, stored(store, "bob").tokens
    audit = server.audit
    assert audit.refresh_ok == 4 and audit.reuse_detections == 0  # two expiries, one refresh per chain each


@pytest.mark.parametrize("first", ["alice", "bob"])
def test_logging_one_account_out_leaves_the_other(first, two_accounts, shared, server, clock, http):
    store, _ = shared
    auths = dict(zip(("alice", "bob"), two_accounts))
    other = "bob" if first == "alice" else "alice"
    kept = stored(store, other).tokens
    result = auths[first].logout()
    assert result.revoked == ("refresh_token", "access_token")
    assert [r.key.account for r in store.records()] == [other]
    with pytest.raises(AuthorizationRequired):
        fresh(server, store, first, clock).access_token()
    assert fresh(server, store, other, clock).access_token() == kept.access_token
    assert echo_call(http, server.mcp_url, auths[other]) == "ok"  # its grant was not revoked
    assert server.is_chain_alive(kept.refresh_token)


def test_the_cli_keeps_accounts_apart(two_accounts, shared, server, capsys):
    store, spec = shared
    assert main(["--store", spec, "status", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted((c["server"], c["account"], c["state"]) for c in listed) == [
        (server.mcp_url, "alice", "alive"),
        (server.mcp_url, "bob", "alive"),
    ]
    assert main(["--store", spec, "status", "--account", "bob", "--json"]) == 0
    assert [c["account"] for c in json.loads(capsys.readouterr().out)] == ["bob"]
    for account in ("alice", "bob"):
        assert main(["--store", spec, "token", server.mcp_url, "--account", account]) == 0
        assert capsys.readouterr().out.strip() == stored(store, account).tokens.access_token
    assert main(["--store", spec, "logout", server.mcp_url, "--account", "alice"]) == 0
    assert "revoked the refresh token and the access token" in capsys.readouterr().out
    assert [r.key.account for r in store.records()] == ["bob"]
    assert main(["--store", spec, "status"]) == 0
    out = capsys.readouterr().out
    assert "  account     bob" in out and "alice" not in out
