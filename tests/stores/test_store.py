import json
import os
import stat
import threading
from pathlib import Path

import pytest

from mcp_sync_auth import ChainKey, ChainRecord, FileTokenStore, MemoryTokenStore, TokenSet
from mcp_sync_auth._chain.keys import RegistrationKey
from mcp_sync_auth._stores import ChainStore, RegistrationStore, TokenStore, default_directory
from mcp_sync_auth._stores.document import SCHEMA_VERSION, record_to_document
from mcp_sync_auth._stores.file import MAX_FILE_BYTES
from mcp_sync_auth.errors import CorruptTokenCache, LockTimeout, TokenStoreError

from ..helpers import start_lock_holder

KEY = ChainKey("http://127.0.0.1:1/mcp", "http://127.0.0.1:1/token", "client-1")
SECRET = "secret-token-marker-abc"


def record(generation=1, access_token=SECRET):
    tokens = TokenSet(access_token, refresh_token=SECRET + "-rt", expires_at=100.0, generation=generation)
    return ChainRecord(KEY, generation, tokens, token_endpoint="http://127.0.0.1:1/token", updated_at=5.0)


@pytest.fixture
def store(tmp_path):
    return FileTokenStore(tmp_path / "tokens")


def test_round_trip_and_private_modes(store):
    store.save(record())
    assert store.load(KEY).tokens == record().tokens
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path_for(KEY)).st_mode) == 0o600
    # No temp file is left behind.
    assert sorted(p.name for p in store.directory.iterdir() if not p.name.endswith(".lock")) == [
        store.path_for(KEY).name
    ]


def test_document_has_schema_generation_and_key(store):
    store.save(record(generation=4))
    doc = json.loads(store.path_for(KEY).read_text())
    assert doc["schema"] == 1  # every version reads it; only a DPoP-bound chain is written as 2
    assert doc["generation"] == 4
    assert doc["key"]["client_id"] == "client-1"


def test_missing_file_is_none(store):
    assert store.load(KEY) is None


def test_repr_has_no_secret(store):
    store.save(record())
    assert SECRET not in repr(store.load(KEY))
    assert SECRET not in repr(store)


def test_dead_record_round_trip(store):
    store.save(ChainRecord(KEY, 3, None, dead_reason="refused"))
    loaded = store.load(KEY)
    assert loaded.is_dead and loaded.tokens is None and loaded.generation == 3


def test_corrupt_file_outside_the_lock_is_reported_but_left_in_place(store):
    store.save(record())
    store.path_for(KEY).write_text("{not json")
    with pytest.raises(CorruptTokenCache) as info:
        store.load(KEY)
    assert info.value.quarantined_to is None
    assert store.path_for(KEY).exists()


def test_corrupt_file_under_the_lock_is_moved_aside_and_kept(store):
    store.save(record())
    store.path_for(KEY).write_text('{"schema": 1, "key": "garbage ' + SECRET + '"}')
    with store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache) as info:
        store.load(KEY)
    moved = info.value.quarantined_to
    assert moved and os.path.exists(moved)
    assert SECRET in Path(moved).read_text()  # kept for inspection...
    assert SECRET not in str(info.value)  # ...but never quoted in the message
    assert "log in again" in str(info.value)
    assert store.load(KEY) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"schema": 0}',
        b'{"schema": "1"}',
        b'{"schema": 1, "key": {}, "generation": 1}',
        b'{"schema": 1, "key": {"resource": "r", "issuer": "i", "client_id": "c", "account": "default"},'
        b' "generation": 1, "tokens": null}',
    ],
)
def test_any_broken_document_is_a_clear_error(store, content):
    store.save(record())
    store.path_for(KEY).write_bytes(content)
    with store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache):
        store.load(KEY)


def test_newer_schema_is_refused_and_left_untouched(store):
    store.save(record())
    store.path_for(KEY).write_text(json.dumps({"schema": SCHEMA_VERSION + 1, "whatever": True}))
    with store.lock(KEY, timeout=5), pytest.raises(TokenStoreError) as info:
        store.load(KEY)
    assert not isinstance(info.value, CorruptTokenCache)
    assert "upgrade" in str(info.value)
    assert store.path_for(KEY).exists()


def test_group_readable_file_is_refused(store):
    store.save(record())
    os.chmod(store.path_for(KEY), 0o644)
    with pytest.raises(TokenStoreError, match="chmod 600"):
        store.load(KEY)


def test_symlinked_file_is_refused(store, tmp_path):
    store.save(record())
    real = tmp_path / "elsewhere.json"
    os.replace(store.path_for(KEY), real)
    os.symlink(real, store.path_for(KEY))
    with pytest.raises(TokenStoreError, match="symbolic link"):
        store.load(KEY)


def test_symlinked_folder_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "link")
    with pytest.raises(TokenStoreError, match="symbolic link"):
        FileTokenStore(tmp_path / "link").load(KEY)


def test_world_writable_folder_is_refused(tmp_path):
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(TokenStoreError, match="chmod 700"):
        FileTokenStore(folder).load(KEY)


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    assert default_directory() == tmp_path / "home"
    monkeypatch.delenv("MCP_SYNC_AUTH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "mcp-sync-auth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_directory() == tmp_path / "user" / ".cache" / "mcp-sync-auth"


def test_lock_held_by_another_process_times_out(store):
    store.save(record())
    holder = start_lock_holder(store.directory, KEY)
    try:
        with pytest.raises(LockTimeout, match="another process"), store.lock(KEY, timeout=0.2):
            pass
    finally:
        holder.stdin.close()
        holder.wait(10)
    with store.lock(KEY, timeout=5):
        pass


def test_memory_store_lock_times_out_and_round_trips():
    memory = MemoryTokenStore()
    memory.save(record())
    assert memory.load(KEY) == record()
    with memory.lock(KEY, timeout=1):
        errors = []

        def other():
            try:
                with memory.lock(KEY, timeout=0.05):
                    pass
            except LockTimeout as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1
    memory.delete(KEY)
    assert memory.load(KEY) is None


@pytest.fixture(params=["file", "memory"])
def any_store(request, tmp_path):
    return FileTokenStore(tmp_path / "tokens") if request.param == "file" else MemoryTokenStore()


def test_try_lock_takes_a_free_lock_and_releases_it_after_the_block(any_store):
    held = any_store.try_lock(KEY)
    assert held is not None
    with held:
        assert any_store.try_lock(KEY) is None  # taken: a second attempt gets nothing, at once
        with pytest.raises(LockTimeout), any_store.lock(KEY, timeout=0.01):
            pass
    again = any_store.try_lock(KEY)
    assert again is not None
    with again:
        pass


def test_try_lock_refuses_a_key_another_holder_has(any_store):
    with any_store.lock(KEY, timeout=5):
        assert any_store.try_lock(KEY) is None
    with any_store.try_lock(KEY):
        pass


def test_try_lock_refuses_a_lock_held_by_another_process(store):
    holder = start_lock_holder(store.directory, KEY)
    try:
        assert store.try_lock(KEY) is None
    finally:
        holder.stdin.close()
        holder.wait(10)
    with store.try_lock(KEY):
        pass


def test_both_stores_implement_the_whole_protocol(any_store):
    assert isinstance(any_store, ChainStore)
    assert isinstance(any_store, RegistrationStore)
    assert isinstance(any_store, TokenStore)


def test_a_chain_store_needs_no_registration_methods():
    class ChainsOnly:
        identity = "chains-only"

        def lock(self, key, timeout): ...
        def try_lock(self, key): ...
        def load(self, key): ...
        def save(self, record): ...
        def delete(self, key): ...
        def records(self): ...

    assert isinstance(ChainsOnly(), ChainStore)
    assert not isinstance(ChainsOnly(), RegistrationStore)


def test_memory_store_identities_never_repeat():
    # A recycled id() must not give a new store the in-process memory of a dead one.
    identities = [MemoryTokenStore().identity for _ in range(50)]
    assert len(set(identities)) == 50


def test_a_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    with pytest.raises(TokenStoreError, match="belongs to another user"):
        FileTokenStore(folder).load(KEY)


def test_a_file_of_another_user_is_refused(store, monkeypatch):
    store.save(record())
    store.load(KEY)  # the folder is checked once per store object, and passed
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    with pytest.raises(TokenStoreError, match="belongs to another user"):
        store.load(KEY)


# --- the inventory: a verdict for every file, the same one every path gives --------------------


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


GOOD_KEY_BAD_TOKENS = json.dumps({"schema": 1, "key": KEY.to_json(), "generation": -1}).encode()


@pytest.mark.parametrize(
    ("content", "named"),
    [(b"{\"schema\": 1, \"ke", False), (b"[]", False), (b"\xff\xfe", False), (GOOD_KEY_BAD_TOKENS, True)],
)
def test_a_corrupt_file_is_listed_with_its_verdict_and_moved_aside_when_settled(store, content, named):
    store.save(record())
    write_private(store.path_for(KEY), content)
    found = store.inventory()
    assert found.records == []
    (entry,) = found.unreadable
    assert (entry.kind, entry.problem, entry.location) == ("chain", "corrupt", str(store.path_for(KEY)))
    assert entry.key == (KEY if named else None)  # the name is a hash: only the content can say whose it is
    assert store.path_for(KEY).read_bytes() == content  # listing moves nothing
    with pytest.raises(CorruptTokenCache) as info:
        store.settle(entry, timeout=5)
    moved = Path(info.value.quarantined_to)
    assert moved.read_bytes() == content and not store.path_for(KEY).exists()
    assert str(store.path_for(KEY)) in str(info.value) and "log in again" in str(info.value)
    assert store.inventory().unreadable == []


def test_a_newer_schema_is_listed_and_left_alone_byte_for_byte(store):
    content = json.dumps({"schema": 99, "key": KEY.to_json(), "future": [1, 2]}).encode()
    store.save(record())
    write_private(store.path_for(KEY), content)
    (entry,) = store.inventory().unreadable
    assert (entry.problem, entry.key) == ("newer", KEY)
    with pytest.raises(TokenStoreError, match="upgrade mcp-sync-auth") as info:
        store.settle(entry, timeout=5)
    assert not isinstance(info.value, CorruptTokenCache)
    assert store.path_for(KEY).read_bytes() == content
    assert not (store.directory / (KEY.stem + ".lock")).exists()  # nothing to move: no lock taken


def test_an_insecure_file_is_listed_as_refused_with_the_fix(store):
    store.save(record())
    os.chmod(store.path_for(KEY), 0o644)
    (entry,) = store.inventory().unreadable
    assert (entry.problem, entry.key) == ("refused", KEY)  # its key is read to tell whose it is, nothing else
    assert "chmod 600" in str(entry.error) and SECRET not in str(entry.error)
    with pytest.raises(TokenStoreError, match="chmod 600"):
        store.settle(entry, timeout=5)
    assert stat.S_IMODE(os.stat(store.path_for(KEY)).st_mode) == 0o644


def test_a_symlinked_file_is_listed_as_refused(store, tmp_path):
    store.save(record())
    real = tmp_path / "elsewhere.json"
    os.replace(store.path_for(KEY), real)
    os.symlink(real, store.path_for(KEY))
    (entry,) = store.inventory().unreadable
    assert (entry.problem, entry.key) == ("refused", None)
    assert "symbolic link" in str(entry.error)
    assert store.records() == []  # the listing no longer follows it


def test_a_fifo_in_place_of_a_token_file_is_refused_without_blocking(store):
    store.save(record())
    os.unlink(store.path_for(KEY))
    os.mkfifo(store.path_for(KEY), 0o600)
    with pytest.raises(TokenStoreError, match="not a regular file"):
        store.load(KEY)
    (entry,) = store.inventory().unreadable
    assert entry.problem == "refused"


def test_a_file_over_the_size_limit_is_corrupt(store):
    store.save(record())
    os.truncate(store.path_for(KEY), MAX_FILE_BYTES + 1)
    (entry,) = store.inventory().unreadable
    assert entry.problem == "corrupt" and "larger than 1024 KiB" in str(entry.error)
    with store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache) as info:
        store.load(KEY)
    assert os.path.getsize(info.value.quarantined_to) == MAX_FILE_BYTES + 1


def test_a_file_at_the_size_limit_is_read(store):
    store.save(record())
    data = json.dumps(record_to_document(record())).encode()
    write_private(store.path_for(KEY), data.ljust(MAX_FILE_BYTES))  # JSON allows trailing spaces
    assert store.load(KEY).tokens == record().tokens


def test_the_inventory_of_a_missing_folder_creates_nothing(tmp_path):
    store = FileTokenStore(tmp_path / "absent" / "tokens")
    assert store.inventory().records == [] and store.records() == []
    assert not (tmp_path / "absent").exists()


def test_files_not_named_by_the_store_are_not_ours(store):
    store.save(record())
    write_private(store.directory / "notes.json", b"garbage")
    write_private(store.directory / (KEY.stem + ".json.corrupt-1"), b"garbage")
    found = store.inventory()
    assert [r.key for r in found.records] == [KEY] and found.unreadable == []


def test_a_corrupt_registration_is_listed_and_moved_aside_when_settled(store):
    key = RegistrationKey("http://127.0.0.1:1/issuer")
    store.save_registration(key, {"client_id": "c"})
    write_private(store.path_for(key), b"{truncated")
    (entry,) = store.inventory().unreadable
    assert (entry.kind, entry.problem, entry.key) == ("registration", "corrupt", None)
    with pytest.raises(CorruptTokenCache):
        store.settle(entry, timeout=5)
    assert not store.path_for(key).exists()


def test_settling_a_nameless_corrupt_file_recovers_a_complete_leftover(store):
    """A writer killed before its rename left a complete newer record, and the file itself is
    garbage: the leftover still names the chain, so settling locks that chain and recovers it."""
    store.save(record(generation=1))
    write_private(store.path_for(KEY), b"\x00garbage")
    leftover = store.directory / f".{KEY.stem}.killed.tmp"
    write_private(leftover, json.dumps(record_to_document(record(generation=2))).encode())
    (entry,) = store.inventory().unreadable
    assert entry.key is None
    recovered = store.settle(entry, timeout=5)
    assert recovered.generation == 2 and store.load(KEY).generation == 2
    assert not leftover.exists()


def test_a_leftover_over_the_size_limit_is_removed_unread(store):
    store.save(record())
    leftover = store.directory / f".{KEY.stem}.huge.tmp"
    write_private(leftover, b"")
    os.truncate(leftover, MAX_FILE_BYTES + 1)
    with store.lock(KEY, timeout=5):
        pass
    assert not leftover.exists() and store.load(KEY).generation == 1


def test_two_files_moved_aside_in_the_same_second_keep_both(store):
    moved = []
    for content in (b"first", b"second"):
        store.save(record())
        write_private(store.path_for(KEY), content)
        with store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache) as info:
            store.load(KEY)
        moved.append(info.value.quarantined_to)
    assert len(set(moved)) == 2
    assert [Path(path).read_bytes() for path in moved] == [b"first", b"second"]


def test_an_unknown_schema_value_is_not_quoted(store):
    store.save(record())
    write_private(store.path_for(KEY), json.dumps({"schema": SECRET}).encode())
    with store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache) as info:
        store.load(KEY)
    assert "schema version (str) is unknown" in str(info.value) and SECRET not in str(info.value)
