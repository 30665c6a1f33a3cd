"""The keyring store against a real Secret Service (gnome-keyring-daemon on a private D-Bus session).

The tokens the server mints carry the marker SECRETMARK, so "no secret here" is a plain search.
"""

import sys
import threading
import time
from collections import Counter

import pytest

from mcp_sync_auth import (
    ChainKey,
    CorruptTokenCache,
    KeychainUnavailable,
    KeyringTokenStore,
    MCPAuth,
    MissingExtra,
)
from mcp_sync_auth._stores.inventory import settle, take_inventory

from ..cli.shell import run
from ..conftest import TTL
from ..workers import echo_call
from .session import SecretServiceSession

MARK = "SECRETMARK"


def keyring_auth(server, client_id, clock, store, **options):
    return MCPAuth(
        server.mcp_url, store=store, client_id=client_id, token_endpoint=server.token_endpoint,
        clock=clock, interactive=False, **options,
    )


def folder_text(folder):
    return "".join(path.read_text(errors="replace") for path in folder.rglob("*") if path.is_file())


def the_key(store):
    (record,) = store.records()
    return record.key


def test_tokens_live_in_the_keychain_and_the_folder_holds_no_secret(
    server, client_id, clock, keyring_store, store_dir, secret_service_backend, http
):
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"  # a refresh through the keychain
    assert server.audit.grants["refresh_token"] == 1

    key = the_key(keyring_store)
    stored = secret_service_backend.get_password("mcp-sync-auth", keyring_store._entry_name(key))
    assert MARK in stored and '"generation":2' in stored
    assert sorted(p.suffix for p in store_dir.iterdir()) == [".gate", ".json", ".lock"]  # the index, the lock, the gate
    assert MARK not in folder_text(store_dir)
    assert MARK not in repr(keyring_store) + keyring_store.location
    # A second store object (another process, after a restart) reads the same chain from the keychain.
    again = KeyringTokenStore(store_dir, backend=secret_service_backend)
    assert again.load(key).tokens.access_token == auth.access_token()


def test_many_threads_one_grant_per_expiry(server, client_id, clock, keyring_store, http):
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    for _ in range(5):
        clock.advance(TTL + 1)
        barrier = threading.Barrier(32)
        outcomes = Counter()
        guard = threading.Lock()

        def call():
            barrier.wait()
            outcome = echo_call(http, server.mcp_url, auth)
            with guard:
                outcomes[outcome] += 1

        threads = [threading.Thread(target=call) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes == Counter(ok=32)
    audit = server.audit
    assert audit.grants["refresh_token"] == 5
    assert audit.reuse_detections == 0


def test_two_accounts_of_one_server_never_see_each_others_tokens(server, client_id, clock, keyring_store):
    alice = keyring_auth(server, client_id, clock, keyring_store, account="alice")
    bob = keyring_auth(server, client_id, clock, keyring_store, account="bob")
    alice.save_token(server.mint_tokens(client_id))
    bob.save_token(server.mint_tokens(client_id))
    assert alice.access_token() != bob.access_token()
    keys = {record.key.account: record for record in keyring_store.records()}
    assert sorted(keys) == ["alice", "bob"]
    assert keyring_store._entry_name(keys["alice"].key) != keyring_store._entry_name(keys["bob"].key)
    assert keys["alice"].tokens.access_token == alice.access_token()
    assert keys["bob"].tokens.access_token == bob.access_token()
    bob_token = bob.access_token()
    alice.logout()
    assert [record.key.account for record in keyring_store.records()] == ["bob"]
    assert keyring_store.load(keys["alice"].key) is None
    assert bob.access_token() == bob_token


def test_a_missing_keychain_entry_behind_an_index_is_a_verdict_then_a_new_login_works(
    server, client_id, clock, keyring_store, secret_service_backend
):
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    key = the_key(keyring_store)
    secret_service_backend.delete_password("mcp-sync-auth", keyring_store._entry_name(key))
    with pytest.raises(CorruptTokenCache, match="keychain entry is missing"):
        keyring_store.load(key)
    (entry,) = take_inventory(keyring_store).unreadable
    assert entry.problem == "corrupt" and entry.key == key
    with pytest.raises(CorruptTokenCache, match="moved aside") as caught:
        settle(keyring_store, entry, timeout=10)
    assert ".corrupt-" in caught.value.quarantined_to
    assert take_inventory(keyring_store).unreadable == [] and keyring_store.records() == []
    auth.save_token(server.mint_tokens(client_id))  # logging in again replaces it
    assert the_key(keyring_store) == key


def test_a_corrupt_keychain_entry_is_moved_aside_and_never_quoted(
    server, client_id, clock, keyring_store, secret_service_backend
):
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    key = the_key(keyring_store)
    name = keyring_store._entry_name(key)
    secret_service_backend.set_password("mcp-sync-auth", name, '{"schema": 1, "tokens": "SECRETMARK-leak"')
    with pytest.raises(CorruptTokenCache) as caught:
        keyring_store.load(key)
    assert "not valid JSON" in str(caught.value) and MARK not in str(caught.value)
    with keyring_store.lock(key, timeout=10), pytest.raises(CorruptTokenCache, match="moved aside"):
        keyring_store.load(key)
    assert secret_service_backend.get_password("mcp-sync-auth", name) is None
    assert keyring_store.records() == [] and take_inventory(keyring_store).unreadable == []


def test_status_lists_keyring_chains_without_a_secret(
    server, client_id, clock, secret_service, secret_service_backend, tmp_path
):
    home = tmp_path / "home"
    store = KeyringTokenStore(home / "keyring", backend=secret_service_backend)
    keyring_auth(server, client_id, clock, store, account="work").save_token(server.mint_tokens(client_id))
    environment = {"MCP_SYNC_AUTH_STORE": "keyring", "MCP_SYNC_AUTH_HOME": str(home)}
    code, out, err = run(None, "status", environment=environment)
    assert code == 0, err
    assert "store: keychain (SecretService Keyring" in out
    assert server.mcp_url in out and "work" in out
    assert MARK not in out + err


def test_a_locked_keychain_refuses_before_any_grant_is_sent(server, client_id, clock, keyring_store, secret_service):
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    record = keyring_store.load(the_key(keyring_store))
    secret_service.lock()
    with pytest.raises(KeychainUnavailable, match=r"locked.*MCP_SYNC_AUTH_STORE=file"):
        keyring_store.reserve(record)
    clock.advance(TTL + 1)
    with pytest.raises(KeychainUnavailable) as caught:
        auth.access_token()
    assert MARK not in str(caught.value) + repr(caught.value)
    assert server.audit.grants.get("refresh_token", 0) == 0  # the chain is intact for when it is unlocked
    assert [p.name for p in keyring_store.directory.glob(".*.tmp")] == []  # no reserved room left behind


@pytest.fixture
def frozen_after_use(secret_service):
    yield secret_service
    secret_service.thaw()


def test_a_keychain_that_hangs_fails_within_the_bound_and_never_piles_up_calls(
    server, client_id, clock, secret_service_backend, store_dir, frozen_after_use
):
    store = KeyringTokenStore(store_dir, backend=secret_service_backend, timeout=1.0)
    keyring_auth(server, client_id, clock, store).save_token(server.mint_tokens(client_id))
    key = the_key(store)
    frozen_after_use.freeze()
    finished = threading.Event()
    failures = []

    def read():
        try:
            store.load(key)
        except KeychainUnavailable as exc:
            failures.append(str(exc))
        finished.set()

    started = time.monotonic()
    threading.Thread(target=read, daemon=True).start()
    # Without the bound this read waits for D-Bus's own reply timeout (25 s) or forever.
    assert finished.wait(20), "a call to a hung keychain was not given up"
    assert time.monotonic() - started < 20
    assert "did not answer within 1 s" in failures[0] and "MCP_SYNC_AUTH_STORE=file" in failures[0]
    with pytest.raises(KeychainUnavailable, match="has not answered an earlier call"):
        store.load(key)  # at once: no second thread onto a keychain that does not answer
    frozen_after_use.thaw()
    deadline = time.monotonic() + 60
    while True:  # the call that hung returns once the daemon runs again; then reads work
        try:
            assert store.load(key) is not None
            break
        except KeychainUnavailable:
            assert time.monotonic() < deadline, "the keychain did not come back"
            time.sleep(0.05)


def test_keyring_and_auto_say_what_they_chose(server, client_id, clock, secret_service, tmp_path):
    home = tmp_path / "home"
    base = {"MCP_SYNC_AUTH_HOME": str(home)}
    code, out, err = run(None, "status", environment={**base, "MCP_SYNC_AUTH_STORE": "auto"})
    assert code == 0, err
    assert "MCP_SYNC_AUTH_STORE=auto chose the system keychain" in err
    assert "store: keychain (SecretService Keyring" in out

    no_bus = {**base, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-bus"}
    code, out, err = run(None, "status", environment={**no_bus, "MCP_SYNC_AUTH_STORE": "auto"})
    assert code == 0, err
    assert "MCP_SYNC_AUTH_STORE=auto chose the file store" in err and "no keychain is usable" in err
    assert f"store: folder {home}" in out
    code, out, err = run(None, "status", environment={**no_bus, "MCP_SYNC_AUTH_STORE": "keyring"})
    assert code == 2
    assert "keyring was asked for, but no keychain is usable here" in err and "MCP_SYNC_AUTH_STORE=file" in err

    secret_service.lock()  # a locked keyring and nobody to type its password
    code, out, err = run(None, "status", environment={**base, "MCP_SYNC_AUTH_STORE": "auto"})
    assert code == 0, err
    assert "auto chose the file store" in err and "it is locked" in err
    code, out, err = run(None, "status", environment={**base, "MCP_SYNC_AUTH_KEYRING_TIMEOUT": "soon",
                                                         "MCP_SYNC_AUTH_STORE": "keyring"})
    assert code == 2 and "MCP_SYNC_AUTH_KEYRING_TIMEOUT must be a positive number" in err


def test_auto_falls_back_to_the_file_store_when_the_keychain_hangs(tmp_path_factory, tmp_path):
    """A keychain that never answers (a stopped daemon still owns its bus name) costs auto one
    bounded probe, then it names the file store it chose instead."""
    pytest.importorskip("keyring")
    session = SecretServiceSession(tmp_path_factory.mktemp("hung")).start()
    try:
        session.freeze()
        env = {**session.environment, "MCP_SYNC_AUTH_HOME": str(tmp_path / "home"), "MCP_SYNC_AUTH_STORE": "auto"}
        code, out, err = run(None, "status", environment=env)
        assert code == 0, err
        assert "auto chose the file store" in err and "did not answer within 5 s" in err
        assert f"store: folder {tmp_path / 'home'}" in out
        env.update(MCP_SYNC_AUTH_STORE="keyring", MCP_SYNC_AUTH_KEYRING_TIMEOUT="0.5")
        code, _, err = run(None, "status", environment=env)
        assert code == 2 and "did not answer within 0.5 s" in err
    finally:
        session.close()


def test_without_the_extra_the_error_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "keyring", None)  # what an import finds when keyring is not installed
    store = KeyringTokenStore(tmp_path / "k")
    with pytest.raises(MissingExtra, match=r"mcp-sync-auth\[keyring\]"):
        store.load(ChainKey("https://mcp.example/mcp", "https://as.example", "c"))


def test_a_keychain_locked_during_the_grant_keeps_the_new_set_in_memory(
    server, client_id, clock, keyring_store, secret_service, caplog
):
    """The grant went out with the keychain open; it locks before the answer is stored. The rotated
    set lives on in this process (the old one is spent), as with a full disk: no second grant."""
    auth = keyring_auth(server, client_id, clock, keyring_store)
    auth.save_token(server.mint_tokens(client_id))
    key = the_key(keyring_store)
    clock.advance(TTL + 1)
    server.hold_token_requests()
    answer = {}
    caller = threading.Thread(target=lambda: answer.setdefault("token", auth.access_token()))
    caller.start()
    server.wait_for_held_token_requests(1, timeout=30)
    secret_service.lock()
    server.release_token_requests()
    caller.join(60)
    fresh = answer["token"]
    assert server.audit.grants["refresh_token"] == 1 and server.audit.refresh_ok == 1
    assert auth.access_token() == fresh  # from memory: the store still holds the spent set
    assert server.audit.grants["refresh_token"] == 1
    assert server.audit.reuse_detections == 0
    with pytest.raises(KeychainUnavailable):
        keyring_store.load(key)
    assert "lives only in this process" in caplog.text and MARK not in caplog.text
