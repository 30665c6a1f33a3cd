"""The strict reference server itself, over real HTTP: every other test relies on it being right."""

import base64
import logging
import threading
from collections import Counter
from urllib.parse import quote_plus

import pytest
import requests

from mcp_sync_auth.testing import MALFORMED_BODY, EventKind, Fault, StrictAuthServer, fingerprint

MARKER = "LEAKCHECK"
FOREIGN_RESOURCE = "https://elsewhere.example/mcp"
REUSE_BODY = {
    "error": "invalid_grant",
    "error_description": "refresh token reuse detected; chain revoked",
}


class FakeClock:
    def __init__(self, now=1_000_000.0):
        self.now = now
        self.broken = False

    def __call__(self):
        if self.broken:
            raise RuntimeError("clock exploded")
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def strict(clock):
    with StrictAuthServer(
        clock=clock, access_token_ttl=60.0, token_marker=MARKER, fault_delay=30.0
    ) as server:
        yield server


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def refresh(
    http, server, refresh_token, client_id=None, *, resource="default", timeout=10, auth=None, **extra
):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client_id is not None:
        data["client_id"] = client_id
    if resource == "default":
        resource = server.mcp_url
    if resource is not None:
        data["resource"] = resource
    data.update(extra)
    return http.post(server.token_endpoint, data=data, timeout=timeout, auth=auth)


def rpc(http, server, access_token, method, params=None, request_id=1, headers=None):
    body = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    all_headers = {} if access_token is None else {"Authorization": f"Bearer {access_token}"}
    all_headers.update(headers or {})
    return http.post(server.mcp_url, json=body, headers=all_headers, timeout=10)


def echo(http, server, access_token, text="hi"):
    return rpc(http, server, access_token, "tools/call", {"name": "echo", "arguments": {"text": text}})


def assert_oauth_error(response, status, error):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["error"] == error


def metadata_url(server):
    return f"{server.base_url}/.well-known/oauth-protected-resource/mcp"


# ----------------------------------------------------------------------------- lifecycle and URLs


def test_urls_and_lifecycle():
    server = StrictAuthServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.issuer == server.base_url
        assert server.token_endpoint == server.base_url + "/token"
        assert server.mcp_url == server.base_url + "/mcp"
        assert requests.get(server.base_url + "/nowhere", timeout=10).status_code == 404
    with pytest.raises(requests.ConnectionError):
        requests.get(server.mcp_url, timeout=10)


def started_threads(before):
    """Threads started since ``before`` (a set of threads): here, the server's connection handlers."""
    return set(threading.enumerate()) - before


def ended(threads):
    for thread in threads:
        thread.join(60)  # a hang guard only: woken by stop() a thread ends at once, left alone it never does
    return not any(thread.is_alive() for thread in threads)


def test_stop_cuts_idle_keep_alive_connections():
    server = StrictAuthServer().start()
    with requests.Session() as session:
        before = set(threading.enumerate())
        assert session.get(server.base_url + "/nowhere", timeout=10).status_code == 404
        handlers = started_threads(before)  # parked on the kept-alive connection's next request (no timeout)
        assert handlers
        server.stop()
        assert ended(handlers)
        server.stop()  # idempotent
        with pytest.raises(requests.ConnectionError):
            session.get(server.mcp_url, timeout=10)
    with pytest.raises(RuntimeError):
        server.start()


def test_keep_alive_and_content_length(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    first = echo(http, strict, tokens["access_token"])
    second = echo(http, strict, tokens["access_token"])
    assert first.status_code == second.status_code == 200
    assert first.headers["Content-Length"] == str(len(first.content))
    assert "close" not in first.headers.get("Connection", "").lower()


# ------------------------------------------------------------------------------------- rotation


def test_mint_tokens_shape(strict):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id, scope="mcp extra")
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 60
    assert tokens["scope"] == "mcp extra"
    assert MARKER in tokens["access_token"] and MARKER in tokens["refresh_token"]
    assert tokens["access_token"] != tokens["refresh_token"]
    [chain] = strict.chains()
    assert (chain.client_id, chain.resource, chain.alive, chain.generation) == (
        client_id,
        strict.mcp_url,
        True,
        0,
    )
    assert chain.current_refresh_fingerprint == fingerprint(tokens["refresh_token"])


def test_rotation(strict, http):
    client_id = strict.register_client()
    first = strict.mint_tokens(client_id)
    response = refresh(http, strict, first["refresh_token"], client_id)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    second = response.json()
    assert second["token_type"] == "Bearer" and second["expires_in"] == 60 and second["scope"] == "mcp"
    assert second["refresh_token"] not in (first["refresh_token"], first["access_token"])
    assert second["access_token"] != first["access_token"]
    third = refresh(http, strict, second["refresh_token"], client_id).json()
    # Previous access tokens of a live chain stay valid until they expire.
    for tokens in (first, second, third):
        assert echo(http, strict, tokens["access_token"]).status_code == 200
    [chain] = strict.chains()
    assert chain.alive and chain.generation == 2
    assert chain.current_refresh_fingerprint == fingerprint(third["refresh_token"])
    assert strict.is_chain_alive(first["refresh_token"])
    audit = strict.audit
    assert audit.token_requests == 2
    assert audit.grants == {"refresh_token": 2}
    assert (audit.refresh_ok, audit.refresh_failed, audit.reuse_detections, audit.revocations) == (
        2,
        0,
        0,
        0,
    )
    assert audit.presented_refresh_tokens == (first["refresh_token"], second["refresh_token"])
    assert audit.mcp_ok == 3 and audit.mcp_methods == {"tools/call": 3}


def test_new_access_token_gets_fresh_expiry_and_runtime_ttl(strict, http, clock):
    client_id = strict.register_client()
    first = strict.mint_tokens(client_id)
    clock.advance(50)
    strict.access_token_ttl = 0.5
    second = refresh(http, strict, first["refresh_token"], client_id).json()
    assert second["expires_in"] == 1  # ceil, at least one second
    strict.access_token_ttl = 120.0
    third = refresh(http, strict, second["refresh_token"], client_id).json()
    assert third["expires_in"] == 120
    clock.advance(11)  # first is 61 s old, second 11 s, third 11 s
    assert echo(http, strict, first["access_token"]).status_code == 401
    assert echo(http, strict, second["access_token"]).status_code == 401
    assert echo(http, strict, third["access_token"]).status_code == 200


def test_rotation_disabled_keeps_refresh_token(clock, http):
    with StrictAuthServer(clock=clock, rotate_refresh_tokens=False) as server:
        client_id = server.register_client()
        tokens = server.mint_tokens(client_id)
        for _ in range(3):
            response = refresh(http, server, tokens["refresh_token"], client_id)
            assert response.status_code == 200
            assert "refresh_token" not in response.json()
        assert server.audit.reuse_detections == 0


# ------------------------------------------------------------------------------ reuse detection


def test_reuse_revokes_whole_chain(strict, http):
    client_id = strict.register_client()
    other = strict.mint_tokens(client_id)  # a second chain of the same client is not touched
    first = strict.mint_tokens(client_id)
    second = refresh(http, strict, first["refresh_token"], client_id).json()

    reused = refresh(http, strict, first["refresh_token"], client_id)
    assert_oauth_error(reused, 400, "invalid_grant")
    assert reused.json() == REUSE_BODY

    newest = refresh(http, strict, second["refresh_token"], client_id)
    assert_oauth_error(newest, 400, "invalid_grant")
    assert newest.json()["error_description"] == "refresh token revoked"
    assert refresh(http, strict, first["refresh_token"], client_id).json()["error"] == "invalid_grant"

    for tokens in (first, second):
        unauthorized = echo(http, strict, tokens["access_token"])
        assert unauthorized.status_code == 401
        assert 'error="invalid_token"' in unauthorized.headers["WWW-Authenticate"]
    assert echo(http, strict, other["access_token"]).status_code == 200
    assert refresh(http, strict, other["refresh_token"], client_id).status_code == 200

    assert not strict.is_chain_alive(first["refresh_token"])
    assert not strict.is_chain_alive(second["refresh_token"])
    assert strict.is_chain_alive(other["refresh_token"])
    audit = strict.audit
    assert audit.grants == {"refresh_token": 5}
    assert (audit.refresh_ok, audit.refresh_failed) == (2, 3)
    assert (audit.reuse_detections, audit.revocations) == (1, 1)
    assert (audit.mcp_ok, audit.mcp_unauthorized) == (1, 2)
    assert len(audit.events_of(EventKind.REUSE_DETECTED)) == 1
    assert Counter(audit.presented_refresh_tokens)[first["refresh_token"]] == 3


def test_concurrent_presentations_of_one_refresh_token(strict):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    n = 24
    barrier = threading.Barrier(n)
    statuses = []
    guard = threading.Lock()

    def worker():
        with requests.Session() as session:
            barrier.wait()
            response = refresh(session, strict, tokens["refresh_token"], client_id)
            with guard:
                statuses.append((response.status_code, response.json().get("error_description")))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(statuses)
    assert counts[(200, None)] == 1
    assert counts[(400, REUSE_BODY["error_description"])] == 1
    assert counts[(400, "refresh token revoked")] == n - 2
    audit = strict.audit
    assert (audit.refresh_ok, audit.refresh_failed, audit.reuse_detections, audit.revocations) == (
        1,
        n - 1,
        1,
        1,
    )


def test_many_chains_refresh_concurrently(strict):
    clients = [strict.register_client() for _ in range(40)]
    chains = {client_id: strict.mint_tokens(client_id) for client_id in clients}
    barrier = threading.Barrier(len(clients))
    failures = []

    def worker(client_id):
        with requests.Session() as session:
            barrier.wait()
            token = chains[client_id]["refresh_token"]
            for _ in range(3):
                response = refresh(session, strict, token, client_id)
                if response.status_code != 200:
                    failures.append(response.text)
                    return
                token = response.json()["refresh_token"]
                if echo(session, strict, response.json()["access_token"]).status_code != 200:
                    failures.append("echo")

    threads = [threading.Thread(target=worker, args=(client_id,)) for client_id in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    audit = strict.audit
    assert audit.refresh_ok == 120 and audit.mcp_ok == 120 and audit.reuse_detections == 0
    assert all(chain.generation == 3 and chain.alive for chain in strict.chains())


def test_unknown_and_foreign_refresh_tokens(strict, http):
    alice = strict.register_client("alice")
    bob = strict.register_client("bob")
    tokens = strict.mint_tokens(alice)
    assert_oauth_error(refresh(http, strict, "nope", alice), 400, "invalid_grant")
    foreign = refresh(http, strict, tokens["refresh_token"], bob)
    assert_oauth_error(foreign, 400, "invalid_grant")
    assert refresh(http, strict, tokens["refresh_token"], alice).status_code == 200  # not consumed
    assert strict.audit.reuse_detections == 0


def test_test_levers(strict, http, clock):
    alice = strict.register_client()
    bob = strict.register_client()
    a, b = strict.mint_tokens(alice), strict.mint_tokens(bob)
    assert strict.revoke_access_tokens(alice) == 1
    assert echo(http, strict, a["access_token"]).status_code == 401
    assert echo(http, strict, b["access_token"]).status_code == 200
    assert strict.is_chain_alive(a["refresh_token"])  # the 401 path: the client can refresh
    renewed = refresh(http, strict, a["refresh_token"], alice).json()
    assert echo(http, strict, renewed["access_token"]).status_code == 200
    assert strict.expire_access_tokens() == 2
    assert (
        echo(http, strict, renewed["access_token"]).json()["error_description"] == "access token expired"
    )
    assert strict.revoke_chain_of(b["refresh_token"]) is True
    assert strict.revoke_chain_of(b["refresh_token"]) is False
    assert_oauth_error(refresh(http, strict, b["refresh_token"], bob), 400, "invalid_grant")
    with pytest.raises(KeyError):
        strict.is_chain_alive("never-issued")
    audit = strict.audit
    assert (audit.revocations, audit.access_token_revocations, audit.reuse_detections) == (1, 1, 0)


# ------------------------------------------------------------------------------------ resource


def test_resource_is_required_and_must_match(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    missing = refresh(http, strict, tokens["refresh_token"], client_id, resource=None)
    assert_oauth_error(missing, 400, "invalid_target")
    other = refresh(
        http, strict, tokens["refresh_token"], client_id, resource=strict.base_url + "/other"
    )
    assert_oauth_error(other, 400, "invalid_target")
    slash = refresh(http, strict, tokens["refresh_token"], client_id, resource=strict.mcp_url + "/")
    assert_oauth_error(slash, 400, "invalid_target")
    twice = http.post(
        strict.token_endpoint,
        data=[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"]),
            ("client_id", client_id),
            ("resource", strict.mcp_url),
            ("resource", strict.mcp_url),
        ],
        timeout=10,
    )
    assert_oauth_error(twice, 400, "invalid_target")
    # Failed requests do not consume the refresh token.
    assert refresh(http, strict, tokens["refresh_token"], client_id).status_code == 200
    audit = strict.audit
    assert (audit.refresh_ok, audit.refresh_failed, audit.reuse_detections) == (1, 4, 0)


def test_resource_optional_when_not_required(clock, http):
    with StrictAuthServer(clock=clock, require_resource=False) as server:
        client_id = server.register_client()
        tokens = server.mint_tokens(client_id)
        response = refresh(http, server, tokens["refresh_token"], client_id, resource=None)
        assert response.status_code == 200
        wrong = refresh(
            http, server, response.json()["refresh_token"], client_id, resource="https://x.example/"
        )
        assert_oauth_error(wrong, 400, "invalid_target")


def test_audience_is_checked_at_mcp(strict, http):
    client_id = strict.register_client()
    foreign = strict.mint_tokens(client_id, resource=FOREIGN_RESOURCE)
    response = echo(http, strict, foreign["access_token"])
    assert response.status_code == 401
    assert 'error_description="access token audience mismatch"' in response.headers["WWW-Authenticate"]
    # The chain keeps its own resource: refreshing it for this server's MCP URL is refused.
    assert_oauth_error(refresh(http, strict, foreign["refresh_token"], client_id), 400, "invalid_target")
    assert refresh(http, strict, foreign["refresh_token"], client_id, resource=FOREIGN_RESOURCE).ok


# --------------------------------------------------------------------------------- client auth


def basic_header(client_id, secret):
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def test_client_secret_basic_with_form_encoding(strict, http):
    secret = "s3cr:t/+%&= é"
    client_id = strict.register_client("conf:id", secret, "client_secret_basic")
    tokens = strict.mint_tokens(client_id)
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "resource": strict.mcp_url,
    }
    ok = http.post(strict.token_endpoint, data=data, headers=basic_header(client_id, secret), timeout=10)
    assert ok.status_code == 200, ok.text
    data["refresh_token"] = ok.json()["refresh_token"]
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic; raw values are wrong here.
    raw = http.post(strict.token_endpoint, data=data, auth=(client_id, secret.encode()), timeout=10)
    assert_oauth_error(raw, 401, "invalid_client")
    assert raw.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = http.post(
        strict.token_endpoint, data=data, headers=basic_header(client_id, "bad"), timeout=10
    )
    assert_oauth_error(wrong, 401, "invalid_client")
    as_post = http.post(
        strict.token_endpoint, data={**data, "client_id": client_id, "client_secret": secret}, timeout=10
    )
    assert_oauth_error(as_post, 401, "invalid_client")  # must use the registered method
    no_auth = http.post(strict.token_endpoint, data={**data, "client_id": client_id}, timeout=10)
    assert_oauth_error(no_auth, 401, "invalid_client")
    both = http.post(
        strict.token_endpoint,
        data={**data, "client_secret": secret},
        headers=basic_header(client_id, secret),
        timeout=10,
    )
    assert_oauth_error(both, 400, "invalid_request")
    assert http.post(
        strict.token_endpoint, data=data, headers=basic_header(client_id, secret), timeout=10
    ).ok
    audit = strict.audit
    assert (audit.refresh_ok, audit.refresh_failed, audit.reuse_detections) == (2, 5, 0)


def test_simple_basic_auth_works_with_requests(strict, http):
    client_id = strict.register_client("plain", "plainsecret", "client_secret_basic")
    tokens = strict.mint_tokens(client_id)
    assert (
        refresh(http, strict, tokens["refresh_token"], auth=(client_id, "plainsecret")).status_code
        == 200
    )


def test_client_secret_post(strict, http):
    client_id = strict.register_client(token_endpoint_auth_method="client_secret_post")
    secret = strict.get_client(client_id).client_secret
    assert secret
    tokens = strict.mint_tokens(client_id)
    ok = refresh(http, strict, tokens["refresh_token"], client_id, client_secret=secret)
    assert ok.status_code == 200
    wrong = refresh(http, strict, ok.json()["refresh_token"], client_id, client_secret=secret + "x")
    assert_oauth_error(wrong, 401, "invalid_client")
    assert "WWW-Authenticate" not in wrong.headers
    basic = refresh(http, strict, ok.json()["refresh_token"], auth=(client_id, secret))
    assert_oauth_error(basic, 401, "invalid_client")


def test_public_client_none(strict, http):
    client_id = strict.register_client("public")
    tokens = strict.mint_tokens(client_id)
    missing_id = refresh(http, strict, tokens["refresh_token"])
    assert_oauth_error(missing_id, 401, "invalid_client")
    with_secret = refresh(http, strict, tokens["refresh_token"], client_id, client_secret="x")
    assert_oauth_error(with_secret, 401, "invalid_client")
    assert_oauth_error(refresh(http, strict, tokens["refresh_token"], "unknown"), 401, "invalid_client")
    assert refresh(http, strict, tokens["refresh_token"], client_id).status_code == 200
    audit = strict.audit
    assert audit.grants == {"refresh_token": 4} and audit.grants_failed == {"refresh_token": 3}


def test_register_client_validation(strict):
    with pytest.raises(ValueError):
        strict.register_client("x", "secret", "none")
    with pytest.raises(ValueError):
        strict.register_client("x", None, "private_key_jwt")
    strict.register_client("x")
    with pytest.raises(ValueError):
        strict.register_client("x")
    with pytest.raises(KeyError):
        strict.mint_tokens("nobody")


# ------------------------------------------------------------------------------ token requests


def test_malformed_token_requests(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    body = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client_id,
    }
    as_json = http.post(strict.token_endpoint, json={**body, "resource": strict.mcp_url}, timeout=10)
    assert_oauth_error(as_json, 400, "invalid_request")
    unsupported = http.post(strict.token_endpoint, data={**body, "grant_type": "password"}, timeout=10)
    assert_oauth_error(unsupported, 400, "unsupported_grant_type")
    no_grant = http.post(strict.token_endpoint, data={"client_id": client_id}, timeout=10)
    assert_oauth_error(no_grant, 400, "invalid_request")
    no_token = http.post(
        strict.token_endpoint, data={"grant_type": "refresh_token", "client_id": client_id}, timeout=10
    )
    assert_oauth_error(no_token, 400, "invalid_request")
    duplicated = http.post(
        strict.token_endpoint,
        data=[("grant_type", "refresh_token"), ("grant_type", "refresh_token")],
        timeout=10,
    )
    assert_oauth_error(duplicated, 400, "invalid_request")
    assert http.get(strict.token_endpoint, timeout=10).status_code == 405
    audit = strict.audit
    assert audit.token_requests == 5
    assert audit.grants == {"(invalid)": 3, "password": 1, "refresh_token": 1}
    assert audit.refresh_failed == 1 and audit.refresh_ok == 0
    assert strict.is_chain_alive(tokens["refresh_token"])


def test_scope_on_refresh(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id, scope="mcp read")
    narrowed = refresh(http, strict, tokens["refresh_token"], client_id, scope="read")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read"
    wider = refresh(http, strict, narrowed.json()["refresh_token"], client_id, scope="read write")
    assert_oauth_error(wider, 400, "invalid_scope")
    # The original grant is kept: the full scope can be asked for again.
    full = refresh(http, strict, narrowed.json()["refresh_token"], client_id)
    assert full.json()["scope"] == "mcp read"


# ------------------------------------------------------------------------------------------ MCP


def test_mcp_challenge_without_token(strict, http):
    response = rpc(http, strict, None, "tools/list")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata_url(strict)}"'
    basic = http.post(strict.mcp_url, json={}, auth=("user", "pass"), timeout=10)
    assert basic.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{metadata_url(strict)}"'
    assert strict.audit.mcp_unauthorized == 2


def test_mcp_challenge_with_bad_token_never_echoes_it(strict, http):
    presented = MARKER + "bogus-token"
    response = rpc(http, strict, presented, "tools/list")
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header == (
        f'Bearer resource_metadata="{metadata_url(strict)}", error="invalid_token", '
        'error_description="unknown access token"'
    )
    assert presented not in response.text and presented not in header
    in_query = http.post(strict.mcp_url + "?access_token=abc", json={}, timeout=10)
    assert in_query.status_code == 400


def test_mcp_methods(strict, http):
    client_id = strict.register_client()
    token = strict.mint_tokens(client_id)["access_token"]
    init_params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    init = rpc(http, strict, token, "initialize", init_params)
    assert init.status_code == 200 and init.headers["Content-Type"] == "application/json"
    assert init.headers["Mcp-Session-Id"]
    result = init.json()["result"]
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"] == {"tools": {}} and result["serverInfo"]["name"]
    future = rpc(http, strict, token, "initialize", {**init_params, "protocolVersion": "2099-01-01"})
    assert future.json()["result"]["protocolVersion"] == "2025-11-25"

    session = {"Mcp-Session-Id": init.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-06-18"}
    note = http.post(
        strict.mcp_url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Authorization": f"Bearer {token}", **session},
        timeout=10,
    )
    assert note.status_code == 202 and note.content == b""

    tools = rpc(http, strict, token, "tools/list", headers=session).json()["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["echo", "add", "fail"]
    assert tools[0]["inputSchema"]["properties"]["text"] == {"type": "string"}

    reply = echo(http, strict, token, "héllo").json()
    assert reply == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "héllo"}], "isError": False},
    }
    unknown_tool = rpc(http, strict, token, "tools/call", {"name": "nope", "arguments": {}}).json()
    assert unknown_tool["result"]["isError"] is True
    unknown_method = rpc(http, strict, token, "resources/list", request_id="abc").json()
    assert unknown_method["id"] == "abc" and unknown_method["error"]["code"] == -32601

    bad_json = http.post(
        strict.mcp_url,
        data=b"{not json",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == -32700
    audit = strict.audit
    assert audit.mcp_ok == 8 and audit.mcp_unauthorized == 0
    assert audit.mcp_methods["initialize"] == 2 and audit.mcp_methods["notifications/initialized"] == 1


def test_strict_accept_header(clock, http):
    with StrictAuthServer(clock=clock, strict_accept=True) as server:
        token = server.mint_tokens(server.register_client())["access_token"]
        assert rpc(http, server, token, "tools/list").status_code == 406
        accept = {"Accept": "application/json, text/event-stream"}
        assert rpc(http, server, token, "tools/list", headers=accept).status_code == 200


def test_injected_clock_expires_tokens_without_sleeping(strict, http, clock):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    clock.advance(59.9)
    assert echo(http, strict, tokens["access_token"]).status_code == 200
    clock.advance(0.1)
    expired = echo(http, strict, tokens["access_token"])
    assert expired.status_code == 401
    assert 'error_description="access token expired"' in expired.headers["WWW-Authenticate"]
    renewed = refresh(http, strict, tokens["refresh_token"], client_id).json()
    assert echo(http, strict, renewed["access_token"]).status_code == 200


# ---------------------------------------------------------------------------------------- faults


def test_fault_http_500_before_does_not_rotate(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    strict.inject_fault(Fault.HTTP_500_BEFORE, count=2)
    for _ in range(2):
        response = refresh(http, strict, tokens["refresh_token"], client_id)
        assert response.status_code == 500
        assert response.headers["Content-Type"].startswith("text/html")
    assert refresh(http, strict, tokens["refresh_token"], client_id).status_code == 200
    audit = strict.audit
    assert (audit.token_requests, audit.faults_injected, audit.refresh_ok) == (3, 2, 1)
    assert audit.faults == {"HTTP_500_BEFORE": 2}
    assert audit.presented_refresh_tokens == (tokens["refresh_token"],)


def test_fault_reset_before_does_not_rotate(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    strict.inject_fault(Fault.RESET_BEFORE)
    with pytest.raises(requests.ConnectionError):
        refresh(http, strict, tokens["refresh_token"], client_id)
    assert refresh(http, strict, tokens["refresh_token"], client_id).status_code == 200
    audit = strict.audit
    assert (audit.token_requests, audit.faults_injected, audit.refresh_ok, audit.reuse_detections) == (
        2,
        1,
        1,
        0,
    )


def test_fault_slow_after_rotates_but_answer_is_lost(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    strict.inject_fault(Fault.SLOW_AFTER)
    with pytest.raises(requests.Timeout):
        refresh(http, strict, tokens["refresh_token"], client_id, timeout=0.3)
    strict.wait_for_audit(lambda audit: audit.refresh_ok == 1)
    [chain] = strict.chains()
    assert chain.generation == 1 and chain.current_refresh_fingerprint != fingerprint(
        tokens["refresh_token"]
    )
    # The client never saw the new refresh token; retrying the old one is reuse and kills the chain.
    assert refresh(http, strict, tokens["refresh_token"], client_id).json() == REUSE_BODY


def test_stop_does_not_wait_for_slow_fault(clock):
    server = StrictAuthServer(clock=clock, fault_delay=3600.0).start()
    try:
        client_id = server.register_client()
        tokens = server.mint_tokens(client_id)
        server.inject_fault(Fault.SLOW_AFTER)
        before = set(threading.enumerate())
        with pytest.raises(requests.Timeout), requests.Session() as session:
            refresh(session, server, tokens["refresh_token"], client_id, timeout=0.2)
        delayed = started_threads(before)  # the handler sitting out its hour before answering
        assert delayed
    finally:
        server.stop()
    assert ended(delayed)  # stop() woke it


def test_fault_malformed_200_after_rotates(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    strict.inject_fault(Fault.MALFORMED_200_AFTER)
    response = refresh(http, strict, tokens["refresh_token"], client_id)
    assert response.status_code == 200 and response.content == MALFORMED_BODY
    with pytest.raises(ValueError):
        response.json()
    assert MARKER not in response.text
    assert strict.audit.refresh_ok == 1
    assert strict.chains()[0].generation == 1


def test_faults_are_consumed_in_order(strict, http):
    strict.inject_fault(Fault.HTTP_500_BEFORE)
    strict.inject_fault(Fault.MALFORMED_200_AFTER)
    assert strict.pending_faults() == (Fault.HTTP_500_BEFORE, Fault.MALFORMED_200_AFTER)
    assert http.post(strict.token_endpoint, data={}, timeout=10).status_code == 500
    assert http.post(strict.token_endpoint, data={}, timeout=10).content == MALFORMED_BODY
    assert http.post(strict.token_endpoint, data={}, timeout=10).status_code == 400
    assert strict.pending_faults() == ()
    assert [event.detail for event in strict.audit.events_of(EventKind.FAULT)] == [
        "HTTP_500_BEFORE",
        "MALFORMED_200_AFTER",
    ]


# ------------------------------------------------------------------------------ robustness/audit


def test_handler_exception_answers_500_and_server_survives(strict, http, clock):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    clock.broken = True
    response = refresh(http, strict, tokens["refresh_token"], client_id)
    assert response.status_code == 500 and response.json() == {"error": "server_error"}
    clock.broken = False
    assert refresh(http, strict, tokens["refresh_token"], client_id).status_code == 200


def test_tokens_never_reach_logs_or_audit_details(strict, http, caplog):
    caplog.set_level(logging.DEBUG, logger="mcp_sync_auth.testing")
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    renewed = refresh(http, strict, tokens["refresh_token"], client_id).json()
    refresh(http, strict, tokens["refresh_token"], client_id)  # reuse
    echo(http, strict, renewed["access_token"])
    echo(http, strict, MARKER + "garbage")
    http.post(strict.mcp_url + "?access_token=" + tokens["access_token"], json={}, timeout=10)
    strict.inject_fault(Fault.MALFORMED_200_AFTER)
    refresh(http, strict, renewed["refresh_token"], client_id)
    assert caplog.records  # the request log does go to this logger
    assert MARKER not in caplog.text
    audit = strict.audit
    assert all(MARKER not in event.detail for event in audit.events)
    assert MARKER not in repr(audit)


def test_reset_audit_and_wait_for_audit(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    refresh(http, strict, tokens["refresh_token"], client_id)
    assert strict.audit.refresh_ok == 1
    strict.reset_audit()
    audit = strict.audit
    assert (audit.token_requests, audit.refresh_ok, audit.events, audit.presented_refresh_tokens) == (
        0,
        0,
        (),
        (),
    )
    with pytest.raises(TimeoutError):
        strict.wait_for_audit(lambda audit: audit.refresh_ok == 1, timeout=0.05)


def test_hold_and_release_token_requests(strict):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    strict.hold_token_requests()
    results = []

    def worker():
        with requests.Session() as session:
            results.append(refresh(session, strict, tokens["refresh_token"], client_id).status_code)

    thread = threading.Thread(target=worker)
    thread.start()
    strict.wait_for_held_token_requests(1)
    assert strict.held_token_requests == 1
    assert strict.audit.token_requests == 0  # held before being counted or processed
    strict.release_token_requests()
    thread.join(10)
    assert results == [200] and strict.held_token_requests == 0
    assert strict.audit.refresh_ok == 1


def test_chunked_bodies_are_read(strict, http):
    client_id = strict.register_client()
    tokens = strict.mint_tokens(client_id)
    form = f"grant_type=refresh_token&refresh_token={tokens['refresh_token']}&client_id={client_id}"
    form += "&resource=" + quote_plus(strict.mcp_url)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = http.post(
        strict.token_endpoint,
        data=iter([form[:10].encode(), form[10:].encode()]),
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    chunks = iter([b'{"jsonrpc": "2.0", "id": 7, ', b'"method": "tools/list"}'])
    listed = http.post(
        strict.mcp_url,
        data=chunks,
        headers={
            "Authorization": f"Bearer {response.json()['access_token']}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert listed.status_code == 200 and listed.json()["id"] == 7


def test_get_and_delete_on_mcp(strict, http):
    token = strict.mint_tokens(strict.register_client())["access_token"]
    assert http.get(strict.mcp_url, timeout=10).status_code == 401
    allowed = http.get(strict.mcp_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert allowed.status_code == 405 and allowed.headers["Allow"] == "POST"
    assert (
        http.delete(strict.mcp_url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
        == 405
    )
