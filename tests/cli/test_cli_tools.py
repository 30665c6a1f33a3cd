"""`mcp-sync-auth tools` and `mcp-sync-auth call`: JSON on stdout, exit codes a script can test."""

import json

import pytest

from mcp_sync_auth.cli.main import main

from .shell import run


def cli(store_dir, *args):
    return main(["--store", str(store_dir), *args])


def test_tools_prints_every_tool_as_json(auth, server, store_dir, capsys):
    assert cli(store_dir, "tools", server.mcp_url) == 0
    tools = json.loads(capsys.readouterr().out)
    assert [tool["name"] for tool in tools] == ["echo", "add", "fail"]
    assert tools[0]["inputSchema"]["required"] == ["text"]


def test_call_with_arguments_prints_the_result(auth, server, store_dir, capsys):
    assert cli(store_dir, "call", server.mcp_url, "echo", "--arg", "text=hello world") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["content"][0]["text"] == "hello world"
    assert result["isError"] is False


def test_argument_values_are_json_when_they_parse(auth, server, store_dir, capsys):
    assert cli(store_dir, "call", server.mcp_url, "add", "--arg", "a=2", "--arg", "b=0.5") == 0
    assert json.loads(capsys.readouterr().out)["structuredContent"] == {"sum": 2.5}


def test_call_with_a_json_object(auth, server, store_dir, capsys):
    assert cli(store_dir, "call", server.mcp_url, "echo", "--json", '{"text": "42"}') == 0
    assert json.loads(capsys.readouterr().out)["content"][0]["text"] == "42"


def test_a_tool_error_exits_4_with_the_result_on_stdout(auth, server, store_dir, capsys):
    assert cli(store_dir, "call", server.mcp_url, "fail") == 4
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["isError"] is True and result["content"][0]["text"] == "this tool always fails"
    assert "'fail' reported an error" in captured.err


def test_without_a_login_exits_3_and_says_what_to_run(server, store_dir, capsys):
    assert cli(store_dir, "tools", server.mcp_url) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "mcp-sync-auth login" in captured.err
    assert server.audit.authorization_requests == 0  # non-interactive unless --login


def test_login_flag_logs_in_first(server, store_dir, capsys):
    handler = "mcp_sync_auth.testing:auto_consent_handler"
    assert cli(store_dir, "call", server.mcp_url, "echo", "--arg", "text=hi", "--login",
               "--authorization-handler", handler) == 0
    assert json.loads(capsys.readouterr().out)["content"][0]["text"] == "hi"
    assert server.audit.authorization_requests == 1
    assert cli(store_dir, "tools", server.mcp_url) == 0  # the chain is stored for the next command
    assert server.audit.authorization_requests == 1


def test_an_unreachable_server_exits_1(auth, server, store_dir, capsys):
    server.stop()
    assert cli(store_dir, "tools", server.mcp_url) == 1
    assert capsys.readouterr().err.startswith("mcp-sync-auth: ")


@pytest.mark.parametrize(
    "arguments",
    [
        ["--arg", "text"],
        ["--arg", "=hi"],
        ["--arg", "text=a", "--arg", "text=b"],
        ["--json", "[1, 2]"],
        ["--json", "{not json"],
        ["--arg", "text=a", "--json", "{}"],
    ],
)
def test_malformed_arguments_are_usage_errors(server, store_dir, arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(store_dir, "call", server.mcp_url, "echo", *arguments)
    assert exit_info.value.code == 2
    assert server.audit.mcp_ok == 0


def test_exit_codes_from_a_shell(auth, server, store_dir):
    code, out, err = run(store_dir, "call", server.mcp_url, "echo", "--arg", "text=hi")
    assert code == 0, err
    assert json.loads(out)["content"][0]["text"] == "hi"
    code, out, err = run(store_dir, "call", server.mcp_url, "fail")
    assert code == 4
    assert json.loads(out)["isError"] is True
