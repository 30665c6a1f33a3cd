"""403 insufficient_scope: step-up with the union of scopes, a bound on attempts, and the
non-interactive error; and one login across processes on first use."""

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth.auth import MAX_LOGINS_PER_REQUEST
from mcp_sync_auth.errors import InsufficientScope
from mcp_sync_auth.testing import StrictAuthServer

from ..login_helpers import browser
from ..workers import echo_call

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def scoped_server(clock):
    with StrictAuthServer(
        clock=clock,
        scopes_supported=("mcp:read", "mcp:write"),
        required_scopes={"tools/call": ["mcp:write"]},
        prm_overrides={"scopes_supported": ["mcp:read"]},
    ) as server:
        yield server


def test_step_up_asks_for_the_union_and_the_call_goes_through(scoped_server, store_dir, clock, http):
    auth = MCPAuth(scoped_server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=browser, clock=clock)
    assert echo_call(http, scoped_server.mcp_url, auth) == "ok"
    audit = scoped_server.audit
    assert audit.authorization_requests == 2
    # The second login keeps what we held (mcp:read) and adds what the challenge asked for.
    assert sorted(audit.last_authorization_params["scope"].split()) == ["mcp:read", "mcp:write"]
    assert echo_call(http, scoped_server.mcp_url, auth) == "ok"  # the new tokens carry both
    assert scoped_server.audit.authorization_requests == 2


def test_without_interaction_a_missing_scope_is_a_clear_error(scoped_server, store_dir, clock, http):
    interactive = MCPAuth(
        scoped_server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=browser, clock=clock,
        scopes=["mcp:read"],
    )
    interactive.access_token()  # a login that holds mcp:read only
    worker = MCPAuth(scoped_server.mcp_url, store=FileTokenStore(store_dir), interactive=False, clock=clock)
    with pytest.raises(InsufficientScope) as info:
        echo_call(http, scoped_server.mcp_url, worker)
    assert info.value.scopes == ("mcp:write",)
    assert "mcp-sync-auth login" in str(info.value)
    assert scoped_server.audit.authorization_requests == 1


def test_step_up_gives_up_after_three_logins_in_one_request(scoped_server, store_dir, clock, http):
    def consent_without_write(url):
        """A person who declines the extra scope on the consent screen, every time."""
        return browser(url.replace("+mcp%3Awrite", "").replace("mcp%3Awrite+", "").replace("mcp%3Awrite", "mcp%3Aread"))

    auth = MCPAuth(
        scoped_server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=consent_without_write, clock=clock
    )
    assert echo_call(http, scoped_server.mcp_url, auth) == "http 403"
    assert scoped_server.audit.authorization_requests == MAX_LOGINS_PER_REQUEST == 3


def test_three_processes_on_first_use_register_and_log_in_once(server, store_dir):
    script = (
        "import sys, requests\n"
        "from mcp_sync_auth import FileTokenStore, MCPAuth\n"
        "from tests.login_helpers import browser\n"
        "from tests.workers import echo_call\n"
        "sys.stdin.readline()\n"  # start together
        f"auth = MCPAuth({server.mcp_url!r}, store=FileTokenStore({str(store_dir)!r}), authorization_handler=browser)\n"
        f"print(echo_call(requests.Session(), {server.mcp_url!r}, auth))\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [out.strip() for out, _ in outputs] == ["ok"] * 3, [err for _, err in outputs]
    audit = server.audit
    assert audit.registrations == 1
    assert audit.authorization_requests == 1
