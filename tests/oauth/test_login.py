"""From nothing but the MCP server URL to working calls: discovery, registration, PKCE login, scopes.

Everything runs against StrictAuthServer over real HTTP. The browser is replaced by a handler that
follows the authorization endpoint's 302 and hands back the redirect URL, as a browser would.
"""

import threading
from collections import Counter

import pytest

from mcp_sync_auth import (
    AuthorizationRequired,
    FileTokenStore,
    MCPAuth,
)
from mcp_sync_auth.errors import (
    AuthorizationResponseIssuerMismatch,
    IssuerMismatch,
    PKCENotSupported,
    ResourceMismatch,
    StateMismatch,
)
from mcp_sync_auth.testing import REMOVE

from ..conftest import TTL
from ..login_helpers import browser
from ..workers import echo_call


@pytest.fixture
def login_auth(server, store_dir, clock):
    def make(**options):
        options.setdefault("store", FileTokenStore(store_dir))
        options.setdefault("authorization_handler", browser)
        options.setdefault("clock", clock)
        return MCPAuth(server.mcp_url, **options)

    return make


def test_nothing_but_the_url_to_a_working_call(server, login_auth, http):
    auth = login_auth()
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.registrations == 1
    assert audit.authorization_requests == 1
    params = audit.last_authorization_params
    assert params["resource"] == server.mcp_url
    assert params["code_challenge_method"] == "S256"
    assert params["scope"].split() == list(server.scopes_supported)
    assert audit.grants["authorization_code"] == 1


def test_the_chain_refreshes_and_survives_a_restart(server, login_auth, clock, http):
    assert echo_call(http, server.mcp_url, login_auth()) == "ok"
    clock.advance(TTL + 1)
    restarted = login_auth()  # a new process would build a new MCPAuth over the same folder
    assert echo_call(http, server.mcp_url, restarted) == "ok"
    audit = server.audit
    assert audit.refresh_ok == 1
    assert audit.registrations == 1 and audit.authorization_requests == 1


def test_sixteen_threads_on_first_use_log_in_once(server, login_auth, http):
    auth = login_auth()
    barrier = threading.Barrier(16)
    outcomes = Counter()
    guard = threading.Lock()

    def call():
        barrier.wait()
        outcome = echo_call(http, server.mcp_url, auth)
        with guard:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == Counter(ok=16)
    audit = server.audit
    assert audit.registrations == 1 and audit.authorization_requests == 1


def test_non_interactive_without_tokens_says_how_to_log_in(server, login_auth, http):
    with pytest.raises(AuthorizationRequired, match="mcp-sync-auth login"):
        echo_call(http, server.mcp_url, login_auth(interactive=False))
    assert server.audit.authorization_requests == 0


def test_protected_resource_metadata_for_another_resource_is_refused(server, login_auth, http):
    server.prm_overrides = {"resource": "https://evil.example.com/mcp"}
    with pytest.raises(ResourceMismatch):
        echo_call(http, server.mcp_url, login_auth())
    assert server.audit.authorization_requests == 0 and server.audit.registrations == 0


def test_metadata_naming_another_issuer_is_refused(server, login_auth, http):
    server.as_metadata_overrides = {"issuer": server.issuer + "/other"}
    with pytest.raises(IssuerMismatch):
        echo_call(http, server.mcp_url, login_auth())
    assert server.audit.authorization_requests == 0


@pytest.mark.parametrize("methods", [REMOVE, ["plain"]])
def test_a_server_without_pkce_s256_is_refused(server, login_auth, http, methods):
    server.as_metadata_overrides = {"code_challenge_methods_supported": methods}
    with pytest.raises(PKCENotSupported):
        echo_call(http, server.mcp_url, login_auth())
    assert server.audit.authorization_requests == 0


@pytest.mark.parametrize("mode", ["wrong", "missing", "trailing-slash"])
def test_a_bad_iss_in_the_response_stops_the_login_before_the_code_is_used(server, login_auth, http, mode):
    server.iss_mode = mode
    with pytest.raises(AuthorizationResponseIssuerMismatch):
        echo_call(http, server.mcp_url, login_auth())
    assert server.audit.grants.get("authorization_code", 0) == 0


def test_a_forged_state_stops_the_login(server, login_auth, http):
    def forging_browser(url):
        return browser(url).replace("state=", "state=forged")

    with pytest.raises(StateMismatch):
        echo_call(http, server.mcp_url, login_auth(authorization_handler=forging_browser))
    assert server.audit.grants.get("authorization_code", 0) == 0


def test_offline_access_is_asked_for_when_offered(server, login_auth, http):
    server.scopes_supported = ["mcp", "offline_access"]
    server.prm_overrides = {"scopes_supported": ["mcp"]}
    assert echo_call(http, server.mcp_url, login_auth()) == "ok"
    assert server.audit.last_authorization_params["scope"].split() == ["mcp", "offline_access"]


def test_a_2025_03_26_server_without_metadata_uses_the_default_endpoints(server, login_auth, http):
    server.serve_metadata = False
    assert echo_call(http, server.mcp_url, login_auth()) == "ok"
    assert server.audit.authorization_requests == 1


def test_client_credentials_for_worker_pools(server, store_dir, clock, http):
    client_id = server.register_client(token_endpoint_auth_method="client_secret_basic")
    secret = server.get_client(client_id).client_secret
    auth = MCPAuth(
        server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id, client_secret=secret,
        grant_type="client_credentials", clock=clock, interactive=False,
    )
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    barrier = threading.Barrier(16)
    results = []
    threads = [threading.Thread(target=lambda: (barrier.wait(), results.append(echo_call(http, server.mcp_url, auth))))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["ok"] * 16
    assert server.audit.grants["client_credentials"] == 2  # one at first use, one for the expiry


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_pre_registered_confidential_client_authenticates_as_registered(server, login_auth, http, clock, method):
    client_id = server.register_client(
        token_endpoint_auth_method=method, redirect_uris=["http://127.0.0.1/callback"]
    )
    secret = server.get_client(client_id).client_secret
    auth = login_auth(client_id=client_id, client_secret=secret, token_endpoint_auth_method=method)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"  # the refresh authenticates the same way
    audit = server.audit
    assert audit.registrations == 0 and audit.refresh_ok == 1
