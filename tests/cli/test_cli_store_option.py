"""``--store`` and ``$MCP_SYNC_AUTH_STORE``: every command that uses a store takes the same values
(a folder, file:///, memory:, redis(s)://, unix://), ``status`` says first which store it reads, and a
value that names no store is a usage error in one line that never shows a password.

Real subprocesses (tests.cli.shell) against a StrictAuthServer; the Redis forms are in
tests/stores/test_selection_redis.py."""

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth.cli import errors as cli_errors
from mcp_sync_auth.cli.main import main

from .shell import run

VARIABLE = "MCP_SYNC_AUTH_STORE"
SECRET = "s3cret-pw"


def status_lines(out):
    return out.splitlines()


def steady(out):
    """``status`` output without what the clock changes from one run to the next."""
    return [line for line in out.splitlines() if not line.lstrip().startswith("expires")]


def test_status_says_first_which_folder_it_reads(auth, server, store_dir):
    code, out, err = run(store_dir, "status")
    assert code == 0, err
    first, *rest = status_lines(out)
    assert first == f"store: folder {store_dir}"
    assert rest[0] == server.mcp_url and server.token_marker not in out


def test_the_store_option_the_variable_and_a_file_url_read_the_same_chains(auth, server, store_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    code, by_option, err = run(None, "status", "--store", str(store_dir))
    assert code == 0, err
    assert status_lines(by_option)[1] == server.mcp_url and "live, generation 1" in by_option
    code, before_command, _ = run(store_dir, "status")
    assert steady(before_command) == steady(by_option)
    code, by_variable, err = run(None, "status", environment={VARIABLE: str(store_dir)})
    assert code == 0, err
    assert steady(by_variable) == steady(by_option)
    code, by_url, err = run(None, "status", "--store", store_dir.as_uri())
    assert code == 0, err
    assert steady(by_url) == steady(by_option)
    code, by_localhost, _ = run(None, "status", environment={VARIABLE: f"file://localhost{store_dir}"})
    assert steady(by_localhost) == steady(by_option)
    # The option wins over the variable, and after the command over before it.
    code, out, _ = run(None, "status", "--store", str(elsewhere), environment={VARIABLE: str(store_dir)})
    assert code == 0 and status_lines(out) == [f"store: folder {elsewhere}", f"no chains stored in folder {elsewhere}"]
    code, out, _ = run(elsewhere, "status", "--store", str(store_dir))
    assert steady(out) == steady(by_option)
    assert not elsewhere.exists()  # status creates no folder


def test_a_relative_folder_and_a_percent_encoded_url(auth, server, store_dir, tmp_path):
    spaced = tmp_path / "my tokens"
    spaced.mkdir(mode=0o700)
    FileTokenStore(spaced).save(FileTokenStore(store_dir).load(auth.key))
    code, out, err = run(None, "status", "--store", spaced.as_uri())  # file:///.../my%20tokens
    assert code == 0, err
    assert status_lines(out)[:2] == [f"store: folder {spaced}", server.mcp_url]
    code, out, err = run(None, "status", "--store", "~/tokens", environment={"HOME": str(tmp_path)})
    assert code == 0, err
    assert status_lines(out)[0] == f"store: folder {tmp_path / 'tokens'}"
    code, out, err = run(None, "status", environment={VARIABLE: "~/my tokens", "HOME": str(tmp_path)})
    assert code == 0, err
    assert status_lines(out)[:2] == [f"store: folder {spaced}", server.mcp_url]


def test_memory_is_a_store_of_this_command_only(auth, server, store_dir):
    code, out, err = run("memory:", "status")
    assert code == 0, err
    assert status_lines(out) == ["store: memory (this process only)", "no chains stored in memory (this process only)"]
    code, out, err = run("memory:", "token", server.mcp_url)
    assert code == cli_errors.EXIT_LOGIN_NEEDED and out == ""  # the folder's chain is not in memory


def test_token_and_logout_honour_the_variable(auth, server, store_dir):
    environment = {VARIABLE: str(store_dir)}
    code, out, err = run(None, "token", server.mcp_url, environment=environment)
    assert code == 0, err
    assert server.token_marker in out
    code, out, err = run(None, "logout", server.mcp_url, environment=environment)
    assert code == 0, err
    assert "only the local copy was removed" in out  # the client was configured without an issuer
    assert FileTokenStore(store_dir).records() == []


def test_a_login_into_the_variables_store_is_what_mcpauth_then_uses(server, tmp_path, monkeypatch):
    folder = tmp_path / "shared"
    environment = {VARIABLE: folder.as_uri()}
    code, _, err = run(
        None, "login", server.mcp_url, "--authorization-handler", "tests.login_helpers:browser", environment=environment
    )
    assert code == 0, err
    monkeypatch.setenv(VARIABLE, str(folder))
    auth = MCPAuth(server.mcp_url, interactive=False)  # no store=: the variable's
    assert isinstance(auth.store, FileTokenStore) and auth.store.directory == folder
    assert server.token_marker in auth.access_token()
    assert server.audit.authorization_requests == 1  # the CLI's login, nothing more


def test_mcpauth_without_a_store_is_the_variables_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE, str(tmp_path / "from-variable"))
    auth = MCPAuth("http://127.0.0.1:1/mcp", client_id="c")
    assert isinstance(auth.store, FileTokenStore)
    assert auth.store.directory == tmp_path / "from-variable"


BAD_STORES = [f"http://user:{SECRET}@example.com/", "s3://bucket/tokens", "keyring:", "file://otherhost/tmp/t"]
COMMANDS = [
    ["status"],
    ["token", "{url}"],
    ["login", "{url}"],
    ["logout", "{url}"],
    ["tools", "{url}"],
    ["call", "{url}", "echo"],
]


def command_line(command, server):
    return [word.format(url=server.mcp_url) for word in command]


@pytest.mark.parametrize("spec", BAD_STORES)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_store_is_a_one_line_usage_error_without_the_password(server, spec, command):
    code, out, err = run(spec, *command_line(command, server))
    assert code == cli_errors.EXIT_USAGE and out == ""
    (line,) = err.splitlines()
    assert line.startswith("mcp-sync-auth: --store: ")
    assert SECRET not in err
    assert server.audit.token_requests == 0 and server.audit.registration_requests == 0


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bad_variable_is_the_same_usage_error_naming_the_variable(server, command):
    code, out, err = run(None, *command_line(command, server), environment={VARIABLE: f"ftp://u:{SECRET}@h/"})
    assert code == cli_errors.EXIT_USAGE and out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"mcp-sync-auth: {VARIABLE}: ") and "file:///" in line and "redis://" in line
    assert SECRET not in err


def test_a_bad_store_in_process_says_the_same(capsys):
    assert main(["--store", f"https://:{SECRET}@h/", "status"]) == cli_errors.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and SECRET not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("mcp-sync-auth: --store: ")


def test_the_store_help_lists_the_forms(capsys):
    for argv in (["--help"], ["status", "--help"], ["token", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        help_text = " ".join(capsys.readouterr().out.split())
        for form in ("folder", "file:///", "memory:", "redis://", "rediss://", "unix://", VARIABLE):
            assert form in help_text, (argv, form)
