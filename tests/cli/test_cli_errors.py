"""Every error a user can cause: one ``mcp-sync-auth:`` line, a hint where it helps, the documented exit code."""

import dataclasses
import os
import time
from urllib.parse import urlsplit

import pytest

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth.cli import errors as cli_errors
from mcp_sync_auth.cli.main import main

from ..helpers import start_lock_holder
from .shell import finish, run, start


def cli(store_dir, *args):
    return main(["--store", str(store_dir), *args])


def lines(text):
    return text.splitlines()


def expire(store_dir, key):
    store = FileTokenStore(store_dir)
    record = store.load(key)
    store.save(dataclasses.replace(record, tokens=dataclasses.replace(record.tokens, expires_at=time.time() - 1)))


def test_an_unreachable_server_is_one_line_naming_it(auth, server, store_dir, capsys):
    port = urlsplit(server.mcp_url).port
    server.stop()
    assert cli(store_dir, "tools", server.mcp_url) == cli_errors.EXIT_ERROR
    (line,) = lines(capsys.readouterr().err)
    assert line.startswith(f"mcp-sync-auth: cannot reach http://127.0.0.1:{port}: ")
    assert "HTTPConnectionPool" not in line  # urllib3's nested reprs say nothing a user needs


def test_a_missing_login_exits_3_with_the_command_and_the_flag(server, store_dir, capsys):
    assert cli(store_dir, "token", server.mcp_url) == cli_errors.EXIT_LOGIN_NEEDED
    message, hint = lines(capsys.readouterr().err)
    assert message.startswith(f"mcp-sync-auth: no tokens are stored for {server.mcp_url}")
    assert f"mcp-sync-auth login {server.mcp_url}" in message
    assert hint == "hint: or add --login to this command to log in first"  # the message says the rest


@pytest.mark.parametrize("command", ["token", "tools"])
def test_a_corrupt_token_file_exits_3_like_a_missing_login(auth, server, store_dir, command, capsys):
    path = FileTokenStore(store_dir).path_for(auth.key)
    path.write_text("{garbage")
    assert cli(store_dir, command, server.mcp_url) == cli_errors.EXIT_LOGIN_NEEDED
    captured = capsys.readouterr()
    assert captured.out == ""
    message, hint = lines(captured.err)  # the store's warning and the error are the same line: said once
    assert message.startswith(f"mcp-sync-auth: the token file {path} is unreadable")
    assert "moved aside" in message
    assert hint == f"hint: run `mcp-sync-auth login {server.mcp_url}`, or add --login to this command"
    assert not path.exists()


def test_a_newer_schema_exits_1_saying_upgrade_and_leaves_the_file(auth, server, store_dir, capsys):
    path = FileTokenStore(store_dir).path_for(auth.key)
    path.write_text('{"schema": 99}')
    assert cli(store_dir, "token", server.mcp_url) == cli_errors.EXIT_ERROR
    (message,) = lines(capsys.readouterr().err)  # no hint: logging in would not help
    assert message.startswith("mcp-sync-auth: ") and "upgrade mcp-sync-auth" in message
    assert path.read_text() == '{"schema": 99}'


def _token_while_locked(auth, server, store_dir, lock_timeout):
    """``token`` with the chain's token expired and its lock held by another process."""
    expire(store_dir, auth.key)
    holder = start_lock_holder(store_dir, auth.key)
    try:
        return run(store_dir, "token", server.mcp_url, "--lock-timeout", lock_timeout)
    finally:
        holder.communicate("release\n", timeout=30)


def test_a_held_lock_times_out_after_lock_timeout_with_a_hint(auth, server, store_dir):
    code, out, err = _token_while_locked(auth, server, store_dir, "0.5")
    assert code == cli_errors.EXIT_ERROR and out == ""
    message, hint = lines(err)
    assert message.startswith("mcp-sync-auth: could not lock the chain") and "within 0.5 s" in message
    assert "--lock-timeout SECONDS" in hint
    assert server.audit.refresh_ok == 0  # no refresh without the lock
    code, out, err = run(store_dir, "token", server.mcp_url, "--lock-timeout", "30")
    assert code == 0, err
    assert server.audit.refresh_ok == 1


def test_a_wait_of_more_than_two_seconds_says_once_who_is_waited_for(auth, server, store_dir):
    # 6 s: the notice comes at 2 s, and a loaded machine's stall of a few seconds still leaves it room.
    code, out, err = _token_while_locked(auth, server, store_dir, "6")
    assert code == cli_errors.EXIT_ERROR and out == ""
    notice, message, hint = lines(err)
    assert notice.startswith("mcp-sync-auth: another process is refreshing ") and "up to 6 s" in notice
    assert message.startswith("mcp-sync-auth: could not lock the chain") and "--lock-timeout" in hint
    assert server.audit.token_requests == 0


def test_an_os_error_is_one_line(auth, server, store_dir, monkeypatch, capsys):
    def denied(self):
        raise PermissionError(13, "Permission denied", str(store_dir))

    monkeypatch.setattr(FileTokenStore, "inventory", denied)
    assert cli(store_dir, "status") == cli_errors.EXIT_ERROR
    assert capsys.readouterr().err == f"mcp-sync-auth: Permission denied: {store_dir}\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_a_store_folder_we_may_not_write_is_one_line(auth, server, store_dir):
    expire(store_dir, auth.key)  # the refresh has to write
    store_dir.chmod(0o500)
    try:
        code, out, err = run(store_dir, "token", server.mcp_url)
    finally:
        store_dir.chmod(0o700)
    assert code == cli_errors.EXIT_ERROR and out == ""
    assert err.startswith("mcp-sync-auth: ")
    assert all(line.startswith(("mcp-sync-auth: ", "hint: ")) for line in lines(err))
    assert server.audit.refresh_ok == 0  # nothing is spent that could not be stored


def test_output_the_terminal_cannot_encode_is_one_line_with_a_hint(auth, server, store_dir):
    shell = start(store_dir, "call", server.mcp_url, "echo", "--arg", "text=h\u00e9llo",
                  environment={"PYTHONIOENCODING": "ascii"})
    code, out, err = finish(shell)
    assert code == cli_errors.EXIT_ERROR and out == ""
    assert err == (
        "mcp-sync-auth: text that ascii cannot encode (ordinal not in range(128))\n"
        "hint: if this is the output, set PYTHONIOENCODING=utf-8\n"
    )


BAD_URLS = [
    "https://user:hunter2@mcp.example.com/mcp",
    "https://user:hun/ter2@mcp.example.com/mcp",
    "https://mcp.example.com/mcp#tools",
    "http://mcp.example.com/mcp",  # plain http to a host that is not loopback
    "mcp.example.com/mcp",
    "http://[::1/mcp",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", ["token", "tools", "login", "logout", "status"])
def test_a_bad_url_is_a_usage_error_that_never_shows_a_password(store_dir, command, url, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(store_dir, command, url)
    assert exit_info.value.code == cli_errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert "error: argument url: the MCP server URL " in err
    assert "hunter2" not in err and "ter2" not in err
    assert not store_dir.exists()  # refused before anything was touched


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
@pytest.mark.parametrize("command", ["token", "tools", "login", "logout", "status"])
def test_a_lock_timeout_that_is_not_a_positive_number_is_a_usage_error(server, store_dir, command, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(store_dir, command, server.mcp_url, "--lock-timeout", value)
    assert exit_info.value.code == cli_errors.EXIT_USAGE
    assert "argument --lock-timeout" in capsys.readouterr().err


def test_an_authorization_handler_that_cannot_be_loaded_is_one_line(server, store_dir, capsys):
    assert cli(store_dir, "login", server.mcp_url, "--authorization-handler", "no_such_module:x") == 1
    assert capsys.readouterr().err == (
        "mcp-sync-auth: --authorization-handler no_such_module:x: No module named 'no_such_module'\n"
    )


def test_the_exit_codes_are_in_the_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for code, meaning in cli_errors.EXIT_CODES:
        assert f"  {code:<4} {meaning}" in out
    assert [code for code, _ in cli_errors.EXIT_CODES] == [0, 1, 2, 3, 4, 130, 141]


def test_library_warnings_reach_stderr_once_as_one_line(auth, server, store_dir, capsys):
    stray = store_dir / ("0" * 32 + ".json")
    stray.write_text("[]")
    stray.chmod(0o600)
    assert cli(store_dir, "logout", server.mcp_url) == 0  # lists the chains: the stray file is skipped
    captured = capsys.readouterr()
    assert "only the local copy was removed" in captured.out
    (line,) = lines(captured.err)
    assert line.startswith("mcp-sync-auth: skipping an unreadable token file: ")


def test_quiet_says_only_errors(auth, server, store_dir, capsys):
    stray = store_dir / ("0" * 32 + ".json")
    stray.write_text("[]")
    stray.chmod(0o600)
    assert cli(store_dir, "-q", "logout", server.mcp_url) == 0
    assert capsys.readouterr().err == ""
    stray.unlink()
    assert cli(store_dir, "-q", "token", server.mcp_url) == cli_errors.EXIT_LOGIN_NEEDED
    assert capsys.readouterr().err.startswith("mcp-sync-auth: no tokens are stored")
