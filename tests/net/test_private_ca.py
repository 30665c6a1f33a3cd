"""A server whose certificate comes from a private CA: trusted through REQUESTS_CA_BUNDLE or verify=
(given once, reaching discovery, registration, every grant and the MCP calls), and refused with our
error, naming the host and the setting to change, when the CA is not the one that issued it."""

import pytest
import requests
from requests.adapters import HTTPAdapter

from mcp_sync_auth import (
    ConfigurationError,
    ConnectionSetupError,
    DiscoveryConnectionError,
    MCPAuth,
    MCPClient,
    MCPConnectionError,
    MemoryTokenStore,
    TokenEndpointConnectionError,
)

from ..conftest import TTL
from .conftest import host_of
from .sessions import log_in_call_refresh_call, make_auth


def test_requests_ca_bundle_reaches_every_request(https_server, clock, ca_bundle, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle)
    assert https_server.issuer.startswith("https://127.0.0.1:")
    auth = make_auth(https_server, clock, ca_bundle)
    assert log_in_call_refresh_call(https_server, clock, auth) == ["after"]


def test_the_curl_variable_is_honoured_as_requests_does(https_server, clock, ca_bundle, monkeypatch):
    monkeypatch.setenv("CURL_CA_BUNDLE", ca_bundle)
    auth = make_auth(https_server, clock, ca_bundle)
    assert log_in_call_refresh_call(https_server, clock, auth) == ["after"]


def test_verify_given_once_reaches_every_request(https_server, clock, ca_bundle):
    # Nothing in the environment: only verify= tells the library about the private CA, and the
    # MCPClient made with this auth and no session of its own uses it for the MCP calls too.
    auth = make_auth(https_server, clock, ca_bundle, verify=ca_bundle)
    assert log_in_call_refresh_call(https_server, clock, auth) == ["after"]


class RecordingAdapter(HTTPAdapter):
    """Records every request this session's connections carry (the auth's resends too)."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(request.path_url.partition("?")[0])
        return super().send(request, **kwargs)


def test_a_session_given_once_reaches_every_request(https_server, clock, ca_bundle):
    session = requests.Session()
    session.verify = ca_bundle
    adapter = RecordingAdapter()
    session.mount("https://", adapter)
    auth = make_auth(https_server, clock, ca_bundle, session=session)
    assert log_in_call_refresh_call(https_server, clock, auth) == ["after"]
    # Every request the server saw, but the browser's consent page, went through this session:
    # discovery, registration, both grants and every MCP call.
    served = [path for _, path in https_server.request_log.paths if path != "/authorize"]
    assert sorted(adapter.sent) == sorted(served)
    assert {"/.well-known/oauth-protected-resource/mcp", "/register", "/token", "/mcp"} <= set(served)


def test_without_the_ca_the_default_bundle_refuses_and_says_what_to_set(https_server, clock, ca_bundle):
    auth = make_auth(https_server, clock, ca_bundle)
    with pytest.raises(DiscoveryConnectionError) as caught:
        auth.login()
    message = str(caught.value)
    assert host_of(https_server.issuer) in message
    assert "REQUESTS_CA_BUNDLE" in message and "verify=" in message
    assert "the default (certifi)" in message
    assert caught.value.kind == "certificate" and caught.value.host == host_of(https_server.issuer)


@pytest.mark.parametrize("given", ["environment", "keyword"])
def test_the_wrong_ca_fails_the_first_request_and_stores_nothing(
    https_server, clock, ca_bundle, wrong_ca_bundle, monkeypatch, given
):
    if given == "environment":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", wrong_ca_bundle)
        options = {}
        named = f"REQUESTS_CA_BUNDLE={wrong_ca_bundle!r}"
    else:
        options = {"verify": wrong_ca_bundle}
        named = f"verify={wrong_ca_bundle!r}"
    store = MemoryTokenStore()
    auth = make_auth(https_server, clock, ca_bundle, store=store, **options)
    with MCPClient(https_server.mcp_url, auth=auth) as client, pytest.raises(MCPConnectionError) as caught:
        client.list_tools()
    error = caught.value
    assert isinstance(error, ConnectionSetupError) and isinstance(error, requests.RequestException)
    message = str(error)
    assert host_of(https_server.mcp_url) in message
    assert "REQUESTS_CA_BUNDLE" in message and "verify=" in message
    assert named in message  # the bundle that was in use, so the user sees which setting is wrong
    assert "SECRETMARK" not in message and "SECRETMARK" not in repr(error)
    # The handshake failed: the server saw no request at all, and nothing was stored.
    assert https_server.request_log.requests == ()
    assert https_server.audit.token_requests == 0
    assert list(store.records()) == []
    # A login started by hand fails on its very first request (discovery) the same way.
    with pytest.raises(DiscoveryConnectionError, match="REQUESTS_CA_BUNDLE"):
        auth.login()
    assert https_server.request_log.requests == ()
    assert list(store.records()) == []


def test_a_refresh_refused_by_the_wrong_ca_spends_nothing(https_server, clock, ca_bundle, wrong_ca_bundle):
    store = MemoryTokenStore()
    good = make_auth(https_server, clock, ca_bundle, store=store, verify=ca_bundle)
    good.login()
    before = store.load(good.key)
    clock.advance(TTL + 1)
    # The same chain, through a client whose verify= names the wrong CA: its refresh never leaves.
    bad = make_auth(https_server, clock, ca_bundle, store=store, verify=wrong_ca_bundle)
    with pytest.raises(TokenEndpointConnectionError) as caught:
        bad.access_token()
    error = caught.value
    assert error.transient and not error.ambiguous  # the server saw nothing: the chain is intact
    assert host_of(https_server.token_endpoint) in str(error) and "verify=" in str(error)
    refresh_token = before.tokens.refresh_token
    assert refresh_token not in str(error) and refresh_token not in repr(error)
    assert https_server.audit.grants == {"authorization_code": 1}
    after = store.load(good.key)
    assert after.generation == before.generation and after.tokens.refresh_token == refresh_token
    # The right CA then refreshes the same chain once.
    assert good.access_token() != before.tokens.access_token
    assert https_server.audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}


def test_an_mcp_clients_own_verify_wins_over_its_auths(https_server, clock, ca_bundle, wrong_ca_bundle):
    auth = make_auth(https_server, clock, ca_bundle, verify=ca_bundle)
    auth.login()
    with MCPClient(https_server.mcp_url, auth=auth) as client:
        assert client.list_tools()
    served = len(https_server.request_log.requests)
    with (
        MCPClient(https_server.mcp_url, auth=auth, verify=wrong_ca_bundle) as client,
        pytest.raises(MCPConnectionError, match="verify="),
    ):
        client.list_tools()
    assert len(https_server.request_log.requests) == served


def test_verify_naming_a_missing_file_is_refused_at_once(https_server, tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        MCPAuth(https_server.mcp_url, store=MemoryTokenStore(), verify=str(tmp_path / "missing.pem"))
