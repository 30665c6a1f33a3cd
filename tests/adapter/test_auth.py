"""MCPAuth as a requests auth object: headers, the 401 resend, transport rules, errors, secrets."""

import http.server
import logging
import os
import threading

import pytest
import requests

from mcp_sync_auth import (
    AuthorizationRequired,
    CorruptTokenCache,
    FileTokenStore,
    InsecureTransportError,
    MCPAuth,
    MemoryTokenStore,
    RefreshChainRevoked,
)
from mcp_sync_auth.auth import NOT_REPLAYABLE_HINT

from ..conftest import TTL
from ..workers import echo_call

ACCEPT = {"Accept": "application/json, text/event-stream"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


class AlwaysUnauthorized(http.server.BaseHTTPRequestHandler):
    """A resource that refuses every token (a misconfigured audience, say)."""

    hits = 0
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_resource():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlwaysUnauthorized)
    AlwaysUnauthorized.hits = 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
    httpd.shutdown()
    httpd.server_close()


def test_loopback_http_works_without_touching_oauthlibs_switch(auth, server, http, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    server.revoke_access_tokens()
    assert echo_call(http, server.mcp_url, auth) == "ok"
    assert server.audit.refresh_ok == 1
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


@pytest.mark.parametrize(
    "server_url,token_endpoint",
    [
        ("http://mcp.example.com/mcp", "https://as.example.com/token"),
        ("https://mcp.example.com/mcp", "http://as.example.com/token"),
        ("http://10.0.0.1/mcp", "https://as.example.com/token"),
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(server_url, token_endpoint):
    with pytest.raises(InsecureTransportError):
        MCPAuth(server_url, store=MemoryTokenStore(), client_id="c", token_endpoint=token_endpoint)


@pytest.mark.parametrize("url", ["http://localhost:1/mcp", "http://[::1]:1/mcp", "http://127.0.0.5/mcp"])
def test_every_loopback_spelling_is_allowed(url):
    MCPAuth(url, store=MemoryTokenStore(), client_id="c", token_endpoint="http://localhost:1/token")


def test_a_second_401_goes_back_to_the_caller_after_one_resend(server, client_id, clock, refusing_resource, http):
    auth = MCPAuth(
        refusing_resource, store=MemoryTokenStore(), client_id=client_id,
        token_endpoint=server.token_endpoint, clock=clock,
    )
    auth.save_token(server.mint_tokens(client_id, resource=refusing_resource))
    response = http.post(refusing_resource, json=LIST, auth=auth)
    assert response.status_code == 401
    assert len(response.history) == 1 and response.history[0].status_code == 401
    assert AlwaysUnauthorized.hits == 2
    assert server.audit.refresh_ok == 1


def test_the_401_resend_replays_the_body_and_keeps_the_first_401_in_history(server, auth, http):
    server.revoke_access_tokens()
    response = http.post(server.mcp_url, json=LIST, auth=auth, headers=ACCEPT)
    assert response.status_code == 200
    assert response.json()["result"]["tools"][0]["name"] == "echo"
    assert [r.status_code for r in response.history] == [401]


def test_a_file_body_is_rewound_for_the_resend(server, auth, http, tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}')
    server.revoke_access_tokens()
    with body.open("rb") as handle:
        response = http.post(
            server.mcp_url, data=handle, auth=auth, headers={**ACCEPT, "Content-Type": "application/json"}
        )
    assert response.status_code == 200


def test_a_streamed_body_is_never_resent_truncated(server, auth, http):
    server.revoke_access_tokens()

    def chunks():
        yield b'{"jsonrpc": "2.0", "id": 1, '
        yield b'"method": "tools/list"}'

    response = http.post(
        server.mcp_url, data=chunks(), auth=auth, headers={**ACCEPT, "Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert NOT_REPLAYABLE_HINT in response.reason
    # The token was refreshed all the same, so sending the request again works.
    assert server.audit.refresh_ok == 1
    assert http.post(server.mcp_url, json=LIST, auth=auth, headers=ACCEPT).status_code == 200


def test_a_401_for_a_token_already_replaced_does_not_refresh_again(server, auth):
    old = auth.access_token()
    server.revoke_access_tokens()
    new = auth._source._chain.manager.token_after_rejection(old).access_token
    assert new != old and server.audit.refresh_ok == 1
    # A thread whose request with the old token comes back late just resends with the new one.
    assert auth._source._chain.manager.token_after_rejection(old).access_token == new
    assert server.audit.refresh_ok == 1


def test_the_token_only_goes_to_the_servers_origin(server, auth, http, refusing_resource):
    other = requests.Request("POST", refusing_resource, json=LIST, auth=auth).prepare()
    assert "Authorization" not in other.headers
    same = requests.Request("POST", server.mcp_url, json=LIST, auth=auth).prepare()
    assert same.headers["Authorization"].startswith("Bearer ")


def test_no_tokens_means_authorization_required(make_auth):
    with pytest.raises(AuthorizationRequired, match="save_token"):
        make_auth().access_token()


def test_a_corrupt_cache_is_moved_aside_then_login_is_asked_for(server, auth, clock, store_dir):
    path = FileTokenStore(store_dir).path_for(auth.key)
    path.write_text("{broken")
    clock.advance(TTL + 1)
    with pytest.raises(CorruptTokenCache) as info:
        auth.access_token()
    assert info.value.quarantined_to and os.path.exists(info.value.quarantined_to)
    with pytest.raises(AuthorizationRequired):
        auth.access_token()
    assert server.audit.token_requests == 0


def test_no_secret_in_reprs_errors_or_debug_logs(server, auth, clock, http, caplog):
    caplog.set_level(logging.DEBUG)
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
    clock.advance(TTL + 1)
    with pytest.raises(AuthorizationRequired) as info:
        auth.access_token()
    texts = [repr(auth), repr(auth.store), repr(auth._source._chain.manager), str(info.value), repr(info.value)]
    texts += [record.getMessage() for record in caplog.records if record.name.startswith("mcp_sync_auth")]
    assert any("refresh" in text for text in texts)
    for text in texts:
        assert server.token_marker not in text


def test_a_client_configured_by_hand_does_not_start_a_login_when_its_chain_dies(server, client_id, store_dir, clock):
    auth = MCPAuth(
        server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
        token_endpoint=server.token_endpoint, clock=clock,
    )
    assert auth.interactive is False
    auth.save_token(server.mint_tokens(client_id))
    server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
    clock.advance(TTL + 1)
    with pytest.raises(RefreshChainRevoked, match="save_token"):
        auth.access_token()
    assert server.audit.authorization_requests == 0


def test_a_hand_configured_chain_can_be_refreshed_by_another_process_from_the_store(
    server, client_id, store_dir, clock
):
    MCPAuth(
        server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
        token_endpoint=server.token_endpoint, clock=clock,
    ).save_token(server.mint_tokens(client_id))
    # A later process knows only the URL (the CLI's `token`): the store must say where to refresh.
    clock.advance(TTL + 1)
    later = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), interactive=False, clock=clock)
    assert later.access_token()
    assert server.audit.refresh_ok == 1
