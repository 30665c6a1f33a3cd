"""store_from_spec: one string (``--store``, ``$MCP_SYNC_AUTH_STORE``) names a store; describe_store
says which, for people. No message ever shows a password. The Redis forms are in test_selection_redis."""

import os
from pathlib import Path

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth, MemoryTokenStore
from mcp_sync_auth._stores.selection import STORE_ENVIRONMENT_VARIABLE, describe_store, store_from_spec
from mcp_sync_auth.errors import ConfigurationError

from .test_store import KEY, record


def folder_of(store):
    assert isinstance(store, FileTokenStore), store
    return store.directory


def test_the_variable_is_named():
    assert STORE_ENVIRONMENT_VARIABLE == "MCP_SYNC_AUTH_STORE"


def test_an_absolute_folder(tmp_path):
    assert folder_of(store_from_spec(str(tmp_path / "tokens"))) == tmp_path / "tokens"


def test_a_folder_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert folder_of(store_from_spec("~/tokens")) == tmp_path / "tokens"
    assert folder_of(store_from_spec("~")) == tmp_path


def test_a_relative_folder_is_made_absolute_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert folder_of(store_from_spec("tokens")) == tmp_path / "tokens"
    assert folder_of(store_from_spec("./a/b")) == tmp_path / "a" / "b"
    assert folder_of(store_from_spec("./with:colon")) == tmp_path / "with:colon"


def test_a_windows_path_is_a_folder_not_a_scheme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("C:\\x", "c:/tokens", "D:"):
        assert folder_of(store_from_spec(spec)) == Path(os.path.abspath(spec)), spec


def test_surrounding_blanks_are_not_part_of_the_value(tmp_path):
    assert folder_of(store_from_spec(f"  {tmp_path}\n")) == tmp_path


def test_a_file_url_is_its_folder_percent_decoded(tmp_path):
    folder = tmp_path / "my tokens%é"
    url = Path(folder).as_uri()  # file:///.../my%20tokens%25%C3%A9
    assert "%20" in url and "%25" in url
    assert folder_of(store_from_spec(url)) == folder
    assert folder_of(store_from_spec(f"file:///{str(tmp_path).lstrip('/')}/a%2Fb")) == tmp_path / "a" / "b"


def test_file_localhost_and_a_single_slash_are_this_host(tmp_path):
    assert folder_of(store_from_spec(f"file://localhost{tmp_path}/t")) == tmp_path / "t"
    assert folder_of(store_from_spec(f"FILE://LocalHost{tmp_path}/t")) == tmp_path / "t"
    assert folder_of(store_from_spec(f"file:{tmp_path}/t")) == tmp_path / "t"


def test_a_file_url_store_is_the_folder_store(tmp_path):
    # The same data: what one writes, the other reads, whichever way it was named.
    by_url = store_from_spec((tmp_path / "t").as_uri())
    by_url.save(record())
    assert store_from_spec(str(tmp_path / "t")).load(KEY) == record()
    assert by_url.identity == FileTokenStore(tmp_path / "t").identity


def test_memory_is_a_new_memory_store_each_time():
    first, second = store_from_spec("memory:"), store_from_spec("MEMORY:")
    assert isinstance(first, MemoryTokenStore) and isinstance(second, MemoryTokenStore)
    assert first.identity != second.identity
    first.save(record())
    assert second.load(KEY) is None


SECRET = "s3cret"

BAD = [
    f"http://user:{SECRET}@host/",
    f"https://:{SECRET}@host/tokens",
    f"s3://key:{SECRET}@bucket/path",
    "s3://bucket/path",
    "keyring:",
    "keyring://login",
    "ftp://example.com/tokens",
    f"file://user:{SECRET}@localhost/tmp/t",  # credentials in a file URL
    "file://otherhost/tmp/t",  # another host's folder
    "file://localhost:8080/tmp/t",
    "file:relative/path",
    "file://",
    "file:///tmp/a?b",
    "file:///tmp/a#b",
    "file:///tmp/%ff",  # not UTF-8
    "file:///tmp/a%00b",
    "memory:again",
    f"memory://:{SECRET}@x",
    "tokens\x00folder",
]


@pytest.mark.parametrize("spec", BAD)
def test_what_names_no_store_is_refused_without_the_password(spec):
    with pytest.raises(ConfigurationError) as refused:
        store_from_spec(spec)
    message = str(refused.value)
    assert SECRET not in message
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["http://example.com/", "s3://bucket/path", "vault:", "gopher:x"])
def test_an_unknown_scheme_names_the_forms_accepted(spec):
    with pytest.raises(ConfigurationError) as refused:
        store_from_spec(spec)
    message = str(refused.value)
    for form in ("folder", "file:///", "memory:", "redis://", "rediss://", "unix://"):
        assert form in message, form
    assert repr(spec) in message  # the value, quoted (there is no password in these)


def test_the_message_says_where_the_value_came_from(monkeypatch):
    with pytest.raises(ConfigurationError, match=r"^--store: "):
        store_from_spec("s3://b", what="--store")
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, f"http://u:{SECRET}@h/")
    with pytest.raises(ConfigurationError, match=r"^MCP_SYNC_AUTH_STORE: ") as refused:
        store_from_spec(None, what="--store")
    assert SECRET not in str(refused.value)


def test_a_redis_url_without_the_redis_store_is_a_configuration_error():
    # Until the Redis store exists (or when redis-py is missing) this says so; with it, see
    # test_selection_redis. Either way never a traceback of an import, never the password.
    try:
        import mcp_sync_auth._stores.redis  # noqa: F401, PLC0415
    except ImportError:
        with pytest.raises(ConfigurationError) as refused:
            store_from_spec(f"redis://:{SECRET}@127.0.0.1:1/0")
        assert SECRET not in str(refused.value) and "Redis" in str(refused.value)
    else:
        pytest.skip("the Redis store is here: test_selection_redis covers it")


# -- the default, and the variable -----------------------------------------------------------------


def test_nothing_given_is_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    for spec in (None, "", "  "):
        assert folder_of(store_from_spec(spec)) == tmp_path / "home"


def test_the_variable_names_the_store_when_nothing_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, str(tmp_path / "from-variable"))
    assert folder_of(store_from_spec(None)) == tmp_path / "from-variable"
    assert folder_of(store_from_spec("")) == tmp_path / "from-variable"
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, "memory:")
    assert isinstance(store_from_spec(None), MemoryTokenStore)
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, (tmp_path / "by url").as_uri())
    assert folder_of(store_from_spec(None)) == tmp_path / "by url"


def test_an_empty_variable_is_no_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, "")
    assert folder_of(store_from_spec(None)) == tmp_path / "home"


def test_a_value_given_wins_over_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, str(tmp_path / "from-variable"))
    assert folder_of(store_from_spec(str(tmp_path / "given"))) == tmp_path / "given"
    assert isinstance(store_from_spec("memory:"), MemoryTokenStore)
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, "s3://not-a-store")  # not even read
    assert folder_of(store_from_spec(str(tmp_path / "given"))) == tmp_path / "given"


def test_mcpauth_without_a_store_uses_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, str(tmp_path / "from-variable"))
    auth = MCPAuth("http://127.0.0.1:1/mcp", client_id="c", interactive=False)
    assert isinstance(auth.store, FileTokenStore)
    assert auth.store.directory == tmp_path / "from-variable"
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, "memory:")
    assert isinstance(MCPAuth("http://127.0.0.1:1/mcp", client_id="c").store, MemoryTokenStore)
    given = MemoryTokenStore()
    assert MCPAuth("http://127.0.0.1:1/mcp", client_id="c", store=given).store is given


def test_mcpauth_without_a_store_or_variable_keeps_the_folder_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    auth = MCPAuth("http://127.0.0.1:1/mcp", client_id="c")
    assert isinstance(auth.store, FileTokenStore) and auth.store.directory == tmp_path / "home"
    assert not (tmp_path / "home").exists()  # nothing is created before it is needed


def test_mcpauth_with_a_bad_variable_raises_configuration_error(monkeypatch):
    monkeypatch.setenv(STORE_ENVIRONMENT_VARIABLE, f"http://u:{SECRET}@h/")
    with pytest.raises(ConfigurationError) as refused:
        MCPAuth("http://127.0.0.1:1/mcp", client_id="c")
    assert SECRET not in str(refused.value) and "MCP_SYNC_AUTH_STORE" in str(refused.value)


# -- describe_store ----------------------------------------------------------------------------------


def test_describe_a_folder_and_memory(tmp_path):
    assert describe_store(FileTokenStore(tmp_path / "t")) == f"folder {tmp_path / 't'}"
    assert describe_store(MemoryTokenStore()) == "memory (this process only)"


class Located:
    def __init__(self, location):
        self.location = location

    def __repr__(self):
        return "Located(...)"


class Unnamed:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def test_describe_a_store_by_its_location_else_its_repr():
    assert describe_store(Located("redis 127.0.0.1:6379/0")) == "redis 127.0.0.1:6379/0"
    assert describe_store(Located(None)) == "Located(...)"  # not a string: the repr
    assert describe_store(Unnamed("SomeStore(bucket)")) == "SomeStore(bucket)"


def test_describe_never_shows_a_password_even_of_a_store_that_shows_it():
    for store in (
        Located(f"redis://:{SECRET}@127.0.0.1:6379/0"),
        Unnamed(f"DatabaseStore('postgres://app:{SECRET}@db:5432/tokens')"),
    ):
        text = describe_store(store)
        assert SECRET not in text and "***@" in text, text
    assert describe_store(Unnamed("Multi\nLine")) == "Multi Line"  # one line


def test_file_names_the_default_folder_and_a_folder_called_keyring_is_still_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_HOME", str(tmp_path / "home"))
    assert folder_of(store_from_spec("file")) == tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    assert folder_of(store_from_spec("./keyring")) == tmp_path / "keyring"
    assert folder_of(store_from_spec("./auto")) == tmp_path / "auto"
