"""The pytest plugin as a user meets it: installed by `pip install`, fixtures used in their own tests."""

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]

USER_TESTS = '''
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mcp_sync_auth import MCPClient, MemoryTokenStore, TokenEndpointError
from mcp_sync_auth.testing import Fault, login

STARTED = []


class Clock:
    def __init__(self):
        import time
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def test_a_started_strict_server(strict_mcp_server):
    assert strict_mcp_server.mcp_url.startswith("http://127.0.0.1:")
    assert strict_mcp_server.rotate_refresh_tokens
    STARTED.append(strict_mcp_server)


def test_servers_are_stopped_after_their_test():
    with pytest.raises(requests.ConnectionError):
        requests.get(STARTED[0].mcp_url, timeout=5)


def test_a_logged_in_auth(strict_mcp_auth, strict_mcp_server):
    with MCPClient(strict_mcp_server.mcp_url, auth=strict_mcp_auth) as client:
        assert "echo" in {tool["name"] for tool in client.list_tools()}
    audit = strict_mcp_server.audit
    assert audit.authorization_requests == 1 and audit.grants == {"authorization_code": 1}


def test_my_tool_runner_through_expiries(strict_mcp_server_factory):
    clock = Clock()
    server = strict_mcp_server_factory(access_token_ttl=60, clock=clock)
    auth = login(server, MemoryTokenStore(), clock=clock)
    with MCPClient(server.mcp_url, auth=auth) as client, ThreadPoolExecutor(16) as pool:
        for _ in range(3):
            clock.advance(61)
            texts = [str(n) for n in range(32)]
            results = pool.map(lambda text: client.call_tool("echo", {"text": text}), texts)
            assert [result["content"][0]["text"] for result in results] == texts
    assert server.audit.refresh_ok == 3
    assert server.audit.reuse_detections == 0


def test_a_server_with_faults(strict_mcp_server_factory):
    server = strict_mcp_server_factory(faults=[Fault.HTTP_500_BEFORE])
    with pytest.raises(TokenEndpointError):
        login(server)  # the code exchange meets the fault
    assert server.audit.faults_injected == 1
    assert login(server).access_token()  # the next token request is served


def test_the_factory_keeps_servers_apart(strict_mcp_server_factory):
    first, second = strict_mcp_server_factory(), strict_mcp_server_factory(scopes_supported=["mcp", "files"])
    assert first.base_url != second.base_url
    assert second.scopes_supported == ("mcp", "files")
'''


def test_the_plugin_is_an_installed_entry_point():
    found = entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", ())  # 3.9
    assert {ep.name: ep.value for ep in group}.get("mcp_sync_auth") == "mcp_sync_auth.pytest_plugin"


def test_the_library_never_imports_pytest():
    code = (
        "import sys, mcp_sync_auth, mcp_sync_auth.testing, mcp_sync_auth.cli, mcp_sync_auth.demo.main\n"
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_a_user_suite_uses_the_fixtures(pytester):
    pytester.makepyfile(test_my_runner=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6)


def test_redis_server_is_skipped_without_the_binary_but_fails_under_ci(pytester, monkeypatch):
    """A CI that forgot to install redis-server must not pass by skipping the fleet tests."""
    pytester.makepyfile(test_needs_redis="def test_needs_redis(redis_server):\n    pass\n")
    monkeypatch.setenv("PATH", os.devnull)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=0, errors=1)
    result.stdout.fnmatch_lines(["*CI=true and no Redis to test against*"])
    monkeypatch.setenv("CI", "false")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)


@pytest.mark.skipif(shutil.which("redis-server") is None and os.environ.get("CI") != "true", reason="no redis-server")
def test_a_user_suite_gets_a_real_redis(pytester):
    pytester.makepyfile(test_fleet="def test_fleet(redis_server):\n    assert redis_server.command('PING') == 'PONG'\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
