"""``mcp-sync-auth status``: for each chain its server, account, store, state (alive / refreshing /
needs login / dead), access token expiry as local time and as "in 3 min", and whether a refresh
token is stored; never a secret. ``--json`` gives the same as a list with a fixed set of keys.
The relative times are measured against ``mcp_sync_auth.cli.status.clock``, which the tests set."""

import dataclasses
import json
import threading

import pytest

from mcp_sync_auth import FileTokenStore, RefreshChainRevoked
from mcp_sync_auth.cli import status as cli_status
from mcp_sync_auth.cli.main import main

from ..conftest import TTL
from ..helpers import start_lock_holder, wait_until

MARKER = "SECRETMARK"


def cli(store_dir, *args):
    return main(["--store", str(store_dir), *args])


def block(out, server_url):
    """The lines ``status`` printed for the chain of ``server_url``."""
    lines = out.splitlines()
    start = lines.index(server_url)
    return lines[start : start + 9]


def field(lines, name):
    (line,) = [line for line in lines if line.startswith(f"  {name} ")]
    return line[len(f"  {name} ") :].strip()


@pytest.fixture
def now(auth, monkeypatch):
    """The status clock fixed at the moment the chain's access token has 3 min 20 s left."""
    expires_at = auth.store.load(auth.key).tokens.expires_at
    moment = expires_at - 200
    monkeypatch.setattr(cli_status, "clock", lambda: moment)
    return moment


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(200, "in 3 min"), (59, "in 59 s"), (0, "in 0 s"), (-1, "expired 1 s ago"), (-2 * 3600 - 5, "expired 2 h ago"),
     (3 * 86400, "in 3 d"), (-90 * 60, "expired 1 h ago")],
)
def test_relative_times(seconds, said):
    assert cli_status.relative(seconds) == said


def test_a_chain_is_described_for_people(auth, server, store_dir, now, capsys):
    assert cli(store_dir, "status") == 0
    out = capsys.readouterr().out
    lines = block(out, server.mcp_url)
    record = auth.store.load(auth.key)
    assert field(lines, "account") == "default"
    assert field(lines, "client") == auth.key.client_id
    assert field(lines, "store") == f"folder {store_dir}"
    assert field(lines, "state") == "alive, generation 1"
    assert field(lines, "expires") == f"{cli_status.local_time(record.tokens.expires_at)} (in 3 min)"
    assert field(lines, "refreshable") == "yes (refresh token stored)"
    assert MARKER not in out and record.tokens.refresh_token not in out


def test_json_gives_the_same_with_the_documented_keys(auth, server, store_dir, now, capsys):
    assert cli(store_dir, "status", "--json") == 0
    out = capsys.readouterr().out
    (chain,) = json.loads(out)
    assert tuple(chain) == cli_status.JSON_KEYS
    record = auth.store.load(auth.key)
    assert chain == {
        "server": server.mcp_url,
        "account": "default",
        "client_id": auth.key.client_id,
        "issuer": auth.key.issuer,
        "store": f"folder {store_dir}",
        "state": "alive",
        "dead_reason": None,
        "generation": 1,
        "expires_at": record.tokens.expires_at,
        "expires_local": cli_status.local_time(record.tokens.expires_at),
        "expires_in": 200.0,
        "expires": "in 3 min",
        "refresh_token": True,
        "scope": "mcp",
    }
    assert MARKER not in out


def test_an_expired_access_token_without_a_refresh_token_needs_a_login(auth, server, store_dir, monkeypatch, capsys):
    record = auth.store.load(auth.key)
    tokens = dataclasses.replace(record.tokens, refresh_token=None)
    auth.store.save(dataclasses.replace(record, tokens=tokens))
    monkeypatch.setattr(cli_status, "clock", lambda: tokens.expires_at + 2 * 3600 + 30)
    assert cli(store_dir, "status") == 0
    lines = block(capsys.readouterr().out, server.mcp_url)
    assert field(lines, "state") == "needs login, generation 1"
    assert field(lines, "expires").endswith("(expired 2 h ago)")
    assert field(lines, "refreshable") == "no refresh token"


def test_a_refused_chain_is_dead(auth, server, store_dir, clock, capsys):
    server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
    clock.advance(TTL + 1)
    with pytest.raises(RefreshChainRevoked):
        auth.access_token()  # the refusal marks the chain dead in the store
    assert cli(store_dir, "status", "--json") == 0
    (chain,) = json.loads(capsys.readouterr().out)
    assert chain["state"] == "dead" and chain["dead_reason"] and chain["refresh_token"] is False


def test_a_chain_another_holder_is_refreshing_says_refreshing(auth, server, store_dir, clock, capsys):
    clock.advance(TTL + 1)
    server.hold_token_requests()
    refresher = threading.Thread(target=auth.access_token)
    refresher.start()
    try:
        wait_until(lambda: server.held_token_requests == 1, what="the refresh at the server")
        assert cli(store_dir, "status", "--json") == 0  # takes no lock: it does not wait for the refresh
        (chain,) = json.loads(capsys.readouterr().out)
        assert chain["state"] == "refreshing"
    finally:
        server.release_token_requests()
        refresher.join(30)
    assert cli(store_dir, "status", "--json") == 0
    (chain,) = json.loads(capsys.readouterr().out)
    assert chain["state"] == "alive" and chain["generation"] == 2


def test_the_refreshing_probe_reads_the_kernels_lock_table(auth, store_dir):
    """What status relies on, alone: a lock held by another process shows, and no lock is taken."""
    store = FileTokenStore(store_dir)
    assert not store.refresh_in_flight(auth.key)
    holder = start_lock_holder(store_dir, auth.key)
    try:
        assert store.refresh_in_flight(auth.key)
        assert store.refresh_in_flight(auth.key)  # asking twice takes nothing either
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        holder.wait(10)
    assert not store.refresh_in_flight(auth.key)


def test_json_for_an_empty_store_is_an_empty_list(tmp_path, capsys):
    assert cli(tmp_path / "none", "status", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
