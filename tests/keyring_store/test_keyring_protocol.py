"""The keyring store keeps the whole store protocol of the file store: locks across processes,
registrations, dead chains, and a verdict for every index or entry it cannot use."""

import os

import pytest

from mcp_sync_auth import ChainRecord, FileTokenStore, KeyringTokenStore, TokenStore
from mcp_sync_auth._chain.keys import RegistrationKey
from mcp_sync_auth._stores.document import record_to_document
from mcp_sync_auth._stores.inventory import InspectableStore, settle, take_inventory
from mcp_sync_auth.errors import CorruptTokenCache, TokenStoreError

from ..helpers import start_lock_holder
from ..stores.test_store import KEY, SECRET, record


def folder_text(store):
    return "".join(p.read_text(errors="replace") for p in store.directory.iterdir() if p.is_file())


def test_the_whole_protocol_and_a_round_trip(keyring_store):
    assert isinstance(keyring_store, TokenStore) and isinstance(keyring_store, InspectableStore)
    keyring_store.save(record())
    assert keyring_store.load(KEY) == record()
    assert SECRET not in folder_text(keyring_store)
    assert oct(os.stat(keyring_store.path_for(KEY)).st_mode & 0o777) == "0o600"
    keyring_store.delete(KEY)
    assert keyring_store.load(KEY) is None and keyring_store.records() == []


def test_a_dead_chain_round_trips(keyring_store):
    dead = ChainRecord(KEY, 3, None, dead_reason="revoked", updated_at=1.0)
    keyring_store.save(dead)
    assert keyring_store.load(KEY) == dead


def test_a_registration_secret_stays_in_the_keychain(keyring_store):
    key = RegistrationKey("https://as.example")
    registration = {"client_id": "c1", "client_secret": SECRET}
    keyring_store.save_registration(key, registration)
    assert keyring_store.load_registration(key) == registration
    assert SECRET not in folder_text(keyring_store)
    keyring_store.delete_registration(key)
    assert keyring_store.load_registration(key) is None


def test_the_lock_is_the_file_stores_lock_across_processes(keyring_store):
    keyring_store.save(record())
    holder = start_lock_holder(keyring_store.directory, KEY)
    try:
        assert keyring_store.try_lock(KEY) is None
    finally:
        holder.stdin.close()
        holder.wait(10)
    with keyring_store.try_lock(KEY):
        pass


def test_two_folders_never_share_an_entry(keyring_store, secret_service_backend, tmp_path):
    other = KeyringTokenStore(tmp_path / "other", backend=secret_service_backend)
    keyring_store.save(record())
    assert other.load(KEY) is None
    assert other.identity != keyring_store.identity


def test_an_index_written_before_a_kill_is_repaired_by_the_next_lock_holder(keyring_store, secret_service_backend):
    keyring_store.save(record(generation=1))
    # A writer put generation 2 in the keychain and was killed before it rewrote the index.
    entry = keyring_store._entry_name(KEY)
    secret_service_backend.set_password("mcp-sync-auth", entry, _encoded(record(generation=2)))
    assert keyring_store.load(KEY).generation == 2  # the keychain is the truth
    with keyring_store.lock(KEY, timeout=10):
        keyring_store.load(KEY)
    assert '"generation": 2' in keyring_store.path_for(KEY).read_text()


def test_a_newer_entry_is_refused_and_left_alone(keyring_store, secret_service_backend):
    keyring_store.save(record())
    entry = keyring_store._entry_name(KEY)
    newer = '{"schema": 99, "key": {}}'
    secret_service_backend.set_password("mcp-sync-auth", entry, newer)
    with keyring_store.lock(KEY, timeout=10), pytest.raises(TokenStoreError, match="upgrade mcp-sync-auth"):
        keyring_store.load(KEY)
    (unreadable,) = take_inventory(keyring_store).unreadable
    assert unreadable.problem == "refused"
    assert secret_service_backend.get_password("mcp-sync-auth", entry) == newer


def test_an_insecure_index_is_listed_as_refused(keyring_store):
    keyring_store.save(record())
    os.chmod(keyring_store.path_for(KEY), 0o644)
    (unreadable,) = take_inventory(keyring_store).unreadable
    assert unreadable.problem == "refused" and "chmod 600" in str(unreadable.error)
    with pytest.raises(TokenStoreError, match="chmod 600"):
        settle(keyring_store, unreadable, timeout=10)


def test_a_corrupt_index_is_rewritten_from_its_keychain_entry_when_settled(keyring_store):
    keyring_store.save(record())
    keyring_store.path_for(KEY).write_text("not json")
    (unreadable,) = take_inventory(keyring_store).unreadable
    assert unreadable.problem == "corrupt" and unreadable.key is None
    assert settle(keyring_store, unreadable, timeout=10) == record()  # nothing was lost
    assert take_inventory(keyring_store).unreadable == [] and keyring_store.records() == [record()]


def test_a_corrupt_index_and_entry_are_both_moved_aside_when_settled(keyring_store, secret_service_backend):
    keyring_store.save(record())
    keyring_store.path_for(KEY).write_text("not json")
    entry = keyring_store._entry_name(KEY)
    secret_service_backend.set_password("mcp-sync-auth", entry, "garbage " + SECRET)
    (unreadable,) = take_inventory(keyring_store).unreadable
    with pytest.raises(CorruptTokenCache, match="moved aside") as caught:
        settle(keyring_store, unreadable, timeout=10)
    assert SECRET not in str(caught.value)
    assert secret_service_backend.get_password("mcp-sync-auth", entry) is None
    assert take_inventory(keyring_store).unreadable == [] and keyring_store.records() == []


def _encoded(rec):
    import json  # noqa: PLC0415

    return json.dumps(record_to_document(rec))


def test_the_default_folder_is_private_and_apart_from_the_file_stores_files(
    secret_service_backend, tmp_path, monkeypatch
):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    store = KeyringTokenStore(backend=secret_service_backend)
    store.save(record())
    assert store.directory == tmp_path / "home" / "keyring"
    assert oct(os.stat(tmp_path / "home").st_mode & 0o777) == "0o700"
    assert oct(os.stat(store.directory).st_mode & 0o777) == "0o700"
    assert FileTokenStore(tmp_path / "home").inventory().unreadable == []  # the index is not its business
