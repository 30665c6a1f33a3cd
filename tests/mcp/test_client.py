"""MCPClient over real HTTP: against StrictAuthServer with MCPAuth, and against scripted servers for
the answers a well-behaved server never gives."""

import json
import threading
from collections import Counter

import pytest
import requests

from mcp_sync_auth import ConfigurationError, JSONRPCError, MCPAuthError, MCPClient, MCPProtocolError, ToolError
from mcp_sync_auth._mcp.transport import header_value
from mcp_sync_auth.testing import StrictAuthServer

from ..conftest import TTL
from .scripted import StaticBearer, as_json, as_sse, handshake, result_of

SESSION_VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25"]
STATELESS = "2026-07-28"
PV_META = "io.modelcontextprotocol/protocolVersion"
CAPS_META = "io.modelcontextprotocol/clientCapabilities"


class RecordingSession(requests.Session):
    """Keeps every request that got a final answer: (method, headers, JSON body)."""

    def __init__(self):
        super().__init__()
        self.sent = []
        self.hooks["response"].append(self._record)

    def _record(self, response, **kwargs):
        request = response.request
        body = json.loads(request.body) if request.body else None
        self.sent.append((request.method, dict(request.headers), body))

    def bodies(self):
        return [body for method, _, body in self.sent if method == "POST"]


@pytest.fixture
def recording():
    with RecordingSession() as session:
        yield session


@pytest.fixture
def client(server, auth):
    with MCPClient(server.mcp_url, auth=auth) as mcp:
        yield mcp


def token_for(server, scope="mcp"):
    return server.mint_tokens(server.register_client(), scope=scope)["access_token"]


def texts(result):
    return [item["text"] for item in result["content"]]


# ------------------------------------------------------------------------------ basic round trips


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_list_and_call_in_json_and_sse_modes(server, client, mode):
    server.mcp.response_mode = mode
    assert [tool["name"] for tool in client.list_tools()] == ["echo", "add", "fail"]
    assert texts(client.call_tool("echo", {"text": "héllo"})) == ["héllo"]
    added = client.call_tool("add", {"a": 2, "b": 0.5})
    assert added["structuredContent"] == {"sum": 2.5} and added["isError"] is False
    assert client.request("ping") == {}
    assert client.protocol_version == "2025-11-25"
    assert client.server_info == {"name": "mcp-sync-auth-strict", "version": "1.0.0"}
    assert client.server_capabilities == {"tools": {}}
    methods = server.audit.mcp_methods
    assert methods["initialize"] == 1 and methods["notifications/initialized"] == 1


def test_sse_notifications_are_skipped_and_server_pings_answered(server, client):
    server.mcp.configure(response_mode="sse", sse_extras=True, require_session=True)
    for _ in range(3):
        assert texts(client.call_tool("echo", {"text": "x"})) == ["x"]
    # Each answer carried a log notification and a ping; the client answered every ping, in session.
    assert server.audit.mcp_methods["(response)"] == 3


def test_headers_ids_and_session_on_the_wire(server, auth, recording):
    server.mcp.require_session = True
    with MCPClient(server.mcp_url, auth=auth, session=recording) as client:
        client.list_tools()
        client.call_tool("echo", {"text": "a"})
        client.notify("notifications/roots/list_changed")
    (_, init_headers, init_body), *later, (delete_method, delete_headers, _) = recording.sent
    assert init_body["method"] == "initialize" and init_body["params"]["protocolVersion"] == "2025-11-25"
    assert init_body["params"]["clientInfo"]["name"] == "mcp-sync-auth"
    assert "MCP-Protocol-Version" not in init_headers and "Mcp-Session-Id" not in init_headers
    session_ids = set()
    for method, headers, body in later:
        assert method == "POST" and headers["Content-Type"] == "application/json"
        assert headers["Accept"] == "application/json, text/event-stream"
        assert headers["MCP-Protocol-Version"] == "2025-11-25"
        session_ids.add(headers["Mcp-Session-Id"])
    assert len(session_ids) == 1
    assert [body["method"] for body in recording.bodies()] == [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/call",
        "notifications/roots/list_changed",
    ]
    ids = [body["id"] for body in recording.bodies() if "id" in body]
    assert len(ids) == len(set(ids)) == 3
    assert delete_method == "DELETE" and delete_headers["Mcp-Session-Id"] in session_ids
    assert len(server.mcp.sessions) == 0  # the DELETE on close ended it


def test_client_info_and_requested_version_are_sent(server, auth, recording):
    info = {"name": "my-app", "version": "2.1"}
    with MCPClient(server.mcp_url, auth=auth, session=recording, client_info=info, protocol_version="2025-06-18") as c:
        assert c.protocol_version == "2025-06-18"
    init = recording.bodies()[0]["params"]
    assert init["clientInfo"] == info and init["protocolVersion"] == "2025-06-18"


@pytest.mark.parametrize("version", SESSION_VERSIONS)
@pytest.mark.parametrize("mode", ["json", "sse"])
def test_each_session_version_with_sessions_enforced(server, auth, version, mode):
    server.mcp.configure(response_mode=mode, require_session=True)
    with MCPClient(server.mcp_url, auth=auth, protocol_version=version) as client:
        assert client.protocol_version == version
        assert texts(client.call_tool("add", {"a": 1, "b": 2})) == ["3"]
    assert server.audit.mcp_methods["tools/call"] == 1


# ------------------------------------------------------------------------------ stateless 2026-07-28


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_stateless_wire(server, auth, recording, mode):
    server.mcp.configure(response_mode=mode, sse_extras=True, require_session=True)
    with MCPClient(server.mcp_url, auth=auth, session=recording, protocol_version=STATELESS) as client:
        assert client.protocol_version == STATELESS
        assert client.server_info["name"] == "mcp-sync-auth-strict"
        assert [tool["name"] for tool in client.list_tools()] == ["echo", "add", "fail"]
        assert texts(client.call_tool("echo", {"text": " padded é "})) == [" padded é "]
    methods = server.audit.mcp_methods
    assert "initialize" not in methods and methods["server/discover"] == 1
    assert "(response)" not in methods  # no server requests on this wire, so nothing to answer
    for _, headers, body in recording.sent:
        assert headers["MCP-Protocol-Version"] == STATELESS and "Mcp-Session-Id" not in headers
        assert headers["Mcp-Method"] == body["method"]
        meta = body["params"]["_meta"]
        assert meta[PV_META] == STATELESS and meta[CAPS_META] == {}
        assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "mcp-sync-auth"
    _, call_headers, _ = recording.sent[-1]
    assert call_headers["Mcp-Name"] == "echo"
    assert len(server.mcp.sessions) == 0 and not any(method == "DELETE" for method, _, _ in recording.sent)


def test_stateless_unknown_method_is_a_404_jsonrpc_error(server, auth):
    with (
        MCPClient(server.mcp_url, auth=auth, protocol_version=STATELESS) as client,
        pytest.raises(JSONRPCError) as caught,
    ):
        client.request("resources/list", {})
    assert caught.value.code == -32601 and caught.value.status_code == 404


def stateless_post(server, token, body, **headers):
    all_headers = {"Authorization": f"Bearer {token}", "MCP-Protocol-Version": STATELESS, **headers}
    return requests.post(server.mcp_url, json=body, headers=all_headers, timeout=10)


def test_strict_server_checks_the_stateless_headers(server):
    token = token_for(server)
    meta = {PV_META: STATELESS, CAPS_META: {}}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    ok = stateless_post(server, token, listing, **{"Mcp-Method": "tools/list"})
    assert ok.status_code == 200 and ok.json()["result"]["resultType"] == "complete"

    def refused(response, code):
        assert response.status_code == (404 if code == -32601 else 400), response.text
        assert response.json()["error"]["code"] == code and response.json()["id"] == 1

    mismatch = {**listing, "params": {"_meta": {**meta, PV_META: "2025-11-25"}}}
    refused(stateless_post(server, token, mismatch, **{"Mcp-Method": "tools/list"}), -32020)
    refused(stateless_post(server, token, listing), -32020)  # no Mcp-Method
    refused(stateless_post(server, token, listing, **{"Mcp-Method": "tools/call"}), -32020)
    no_caps = {**listing, "params": {"_meta": {PV_META: STATELESS}}}
    refused(stateless_post(server, token, no_caps, **{"Mcp-Method": "tools/list"}), -32602)
    future = {**listing, "params": {"_meta": {**meta, PV_META: "2099-01-01"}}}
    unsupported = stateless_post(
        server, token, future, **{"Mcp-Method": "tools/list", "MCP-Protocol-Version": "2099-01-01"}
    )
    refused(unsupported, -32022)
    assert unsupported.json()["error"]["data"] == {"supported": [STATELESS], "requested": "2099-01-01"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"_meta": meta, "name": "echo"}}
    refused(stateless_post(server, token, call, **{"Mcp-Method": "tools/call", "Mcp-Name": "add"}), -32020)
    encoded = stateless_post(
        server, token, call, **{"Mcp-Method": "tools/call", "Mcp-Name": header_value("=?base64?x?=")}
    )
    refused(encoded, -32020)
    plain = stateless_post(server, token, call, **{"Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    assert plain.status_code == 200 and plain.json()["result"]["isError"] is True  # no text: a tool error
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"_meta": meta}}
    refused(stateless_post(server, token, init, **{"Mcp-Method": "initialize"}), -32601)


def test_header_value_encoding():
    assert header_value("get_weather") == "get_weather"
    assert header_value("Hello, 世界") == "=?base64?SGVsbG8sIOS4lueVjA==?="
    assert header_value(" padded ") == "=?base64?IHBhZGRlZCA=?="
    assert header_value("line1\nline2") == "=?base64?bGluZTEKbGluZTI=?="
    assert header_value("=?base64?literal?=") == "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="


# ------------------------------------------------------------------------------ sessions


def test_server_enforces_sessions(server, http):
    server.mcp.require_session = True
    token = token_for(server)
    auth_header = {"Authorization": f"Bearer {token}"}

    def post(method, **headers):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
        if method == "initialize":
            body["params"] = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
        return http.post(server.mcp_url, json=body, headers={**auth_header, **headers}, timeout=10)

    session_id = post("initialize").headers["Mcp-Session-Id"]
    assert post("tools/list").status_code == 400
    assert post("tools/list", **{"Mcp-Session-Id": "nope", "MCP-Protocol-Version": "2025-11-25"}).status_code == 404
    good = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
    assert post("tools/list", **good).status_code == 200
    assert post("tools/list", **{**good, "MCP-Protocol-Version": "2025-06-18"}).status_code == 400
    assert post("tools/list", **{"Mcp-Session-Id": session_id}).status_code == 400  # header required after 03-26
    assert server.mcp.expire_sessions() == 1
    assert post("tools/list", **good).status_code == 404
    assert http.delete(server.mcp_url, headers={**auth_header, **good}, timeout=10).status_code == 404


def test_expired_session_is_reinitialized_once_and_the_request_retried(server, client):
    server.mcp.require_session = True
    client.list_tools()
    server.mcp.expire_sessions()
    assert texts(client.call_tool("echo", {"text": "again"})) == ["again"]
    client.notify("notifications/roots/list_changed")
    server.mcp.expire_sessions()
    client.notify("notifications/roots/list_changed")  # a notification is retried the same way
    methods = server.audit.mcp_methods
    assert methods["initialize"] == 3 and methods["notifications/initialized"] == 3
    assert methods["tools/call"] == 2 and methods["notifications/roots/list_changed"] == 3


def test_32_threads_after_an_expiry_start_one_new_session(server, client):
    server.mcp.require_session = True
    client.connect()
    server.mcp.expire_sessions()
    outcomes = run_threads(32, lambda n: texts(client.call_tool("echo", {"text": str(n)})) == [str(n)])
    assert outcomes == Counter({True: 32})
    assert server.audit.mcp_methods["initialize"] == 2
    assert len(server.mcp.sessions) == 1


def test_concurrent_first_use_initializes_once(server, client):
    outcomes = run_threads(32, lambda n: client.server_info["name"])
    assert outcomes == Counter({"mcp-sync-auth-strict": 32})
    assert server.audit.mcp_methods["initialize"] == 1


def run_threads(count, work):
    """Run ``work(n)`` in ``count`` threads released together; a Counter of results (or errors)."""
    start = threading.Barrier(count, timeout=60)
    outcomes = Counter()
    guard = threading.Lock()

    def worker(n):
        start.wait()
        try:
            outcome = work(n)
        except Exception as exc:
            outcome = repr(exc)
        with guard:
            outcomes[outcome] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    return outcomes


# ------------------------------------------------------------------------------ token expiries


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_32_threads_share_one_client_through_token_expiries(server, auth, clock, mode):
    """Every cycle all threads call at once; between cycles the token expires, alternately where
    the client can see it (the clock: proactive refresh) and where only the server knows (401s)."""
    server.mcp.configure(response_mode=mode, sse_extras=mode == "sse", require_session=True)
    threads, cycles = 32, 5
    start = threading.Barrier(threads + 1, timeout=60)
    done = threading.Barrier(threads + 1, timeout=60)
    outcomes = Counter()
    guard = threading.Lock()
    refreshes = []

    with MCPClient(server.mcp_url, auth=auth) as client:

        def worker(n):
            for cycle in range(cycles):
                start.wait()
                text = f"{n}/{cycle}"
                try:
                    outcome = "ok" if texts(client.call_tool("echo", {"text": text})) == [text] else "wrong"
                except Exception as exc:
                    outcome = repr(exc)
                with guard:
                    outcomes[outcome] += 1
                done.wait()

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for cycle in range(cycles):
            if cycle % 2 == 1:
                clock.advance(TTL + 1)
            elif cycle > 0:
                assert server.expire_access_tokens() == 1
            start.wait()
            done.wait()
            refreshes.append(server.audit.grants.get("refresh_token", 0))
        for thread in pool:
            thread.join(timeout=60)

    assert outcomes == Counter({"ok": threads * cycles})
    assert refreshes == list(range(cycles))  # exactly one refresh grant per expiry
    audit = server.audit
    assert audit.mcp_methods["initialize"] == 1 and audit.mcp_methods["notifications/initialized"] == 1
    assert audit.reuse_detections == 0 and audit.mcp_methods["tools/call"] == threads * cycles


# ------------------------------------------------------------------------------ pagination and errors


def test_pagination_follows_cursors(server, client, recording, auth):
    server.mcp.tools_page_size = 1
    assert [tool["name"] for tool in client.list_tools()] == ["echo", "add", "fail"]
    assert server.audit.mcp_methods["tools/list"] == 3
    with MCPClient(server.mcp_url, auth=auth, session=recording) as recorded:
        recorded.list_tools()
    cursors = [body.get("params", {}).get("cursor") for body in recording.bodies() if body["method"] == "tools/list"]
    assert cursors[0] is None and len(set(cursors[1:])) == 2
    first = client.request("tools/list")
    assert [tool["name"] for tool in first["tools"]] == ["echo"] and first["nextCursor"]
    with pytest.raises(JSONRPCError) as caught:
        client.request("tools/list", {"cursor": "bogus"})
    assert caught.value.code == -32602


def test_tool_errors_carry_the_result(client):
    with pytest.raises(ToolError) as caught:
        client.call_tool("fail")
    error = caught.value
    assert error.result["isError"] is True and texts(error.result) == ["this tool always fails"]
    assert "this tool always fails" in str(error) and "'fail'" in str(error)
    assert isinstance(error, MCPProtocolError) and isinstance(error, MCPAuthError)
    assert isinstance(error, requests.RequestException)
    with pytest.raises(ToolError):
        client.call_tool("no-such-tool")


def test_jsonrpc_errors(client):
    with pytest.raises(JSONRPCError) as caught:
        client.request("resources/list", {})
    error = caught.value
    assert (error.code, error.message, error.data) == (-32601, "Method not found: resources/list", None)
    assert str(error) == "JSON-RPC error -32601: Method not found: resources/list"
    with pytest.raises(JSONRPCError) as caught:
        client.request("tools/call", {"arguments": {}})
    assert caught.value.code == -32602


def test_refused_token_is_a_protocol_error_without_the_token(server):
    refused = StaticBearer("SECRETMARK-not-a-real-token")
    with MCPClient(server.mcp_url, auth=refused) as client, pytest.raises(MCPProtocolError) as caught:
        client.list_tools()
    assert caught.value.status_code == 401 and 'error="invalid_token"' in caught.value.www_authenticate
    assert "SECRETMARK" not in str(caught.value) and "invalid_token" in str(caught.value)


def test_insufficient_scope_is_a_403_challenge(server, http):
    server.mcp.required_scopes = {"tools/call": {"mcp:write"}}
    narrow = token_for(server, scope="mcp")
    with MCPClient(server.mcp_url, auth=StaticBearer(narrow)) as client:
        assert len(client.list_tools()) == 3
        with pytest.raises(MCPProtocolError) as caught:
            client.call_tool("echo", {"text": "x"})
    assert caught.value.status_code == 403
    assert "insufficient_scope" in str(caught.value) and "scope=mcp:write" in str(caught.value)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    raw = http.post(server.mcp_url, json=body, headers={"Authorization": f"Bearer {narrow}"}, timeout=10)
    assert raw.status_code == 403
    assert raw.headers["WWW-Authenticate"] == (
        f'Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="{server.resource_metadata_url}"'
    )
    wide = token_for(server, scope="mcp mcp:write")
    with MCPClient(server.mcp_url, auth=StaticBearer(wide)) as client:
        assert texts(client.call_tool("echo", {"text": "x"})) == ["x"]
    assert server.audit.mcp_unauthorized == 2


def test_required_scopes_knob_validation():
    with pytest.raises(ValueError):
        StrictAuthServer(required_scopes={"tools/call": []})
    with pytest.raises(ValueError):
        StrictAuthServer(mcp_response_mode="xml")
    with pytest.raises(ValueError):
        StrictAuthServer(tools_page_size=0)


def test_close_is_final_and_idempotent(server, auth):
    client = MCPClient(server.mcp_url, auth=auth)
    client.list_tools()
    client.close()
    client.close()
    with pytest.raises(MCPProtocolError):
        client.list_tools()
    assert server.audit.mcp_methods["HTTP DELETE"] == 1


def test_bad_arguments():
    with pytest.raises(ConfigurationError):
        MCPClient("http://127.0.0.1:1/mcp", protocol_version="2024-11-05")
    with pytest.raises(ConfigurationError):
        MCPClient("http://127.0.0.1:1/mcp", timeout=0)
    with pytest.raises(ConfigurationError):
        MCPClient("http://127.0.0.1:1/mcp", client_info={"name": "x"})


# ------------------------------------------------------------------------------ scripted servers


def test_unsupported_negotiated_version_is_refused(scripted):
    scripted.answer = handshake(version="2024-11-05")
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError, match="2024-11-05"):
        client.connect()
    assert scripted.methods() == ["initialize"]


def test_server_may_pick_an_older_supported_version(scripted):
    scripted.answer = handshake(version="2025-03-26", then=lambda m, h: as_json(result_of(m, {"tools": []})))
    with MCPClient(scripted.url) as client:
        assert client.list_tools() == [] and client.protocol_version == "2025-03-26"
    assert scripted.seen[-1][0]["MCP-Protocol-Version"] == "2025-03-26"


def test_sse_stream_oddities(scripted):
    """A BOM, comments, a foreign event type, another request's response, a notification and a
    server request before ours, and no blank line after the last event."""

    def then(message, headers):
        ours = json.dumps(result_of(message, {"tools": [{"name": "t"}]}))
        other = json.dumps({"jsonrpc": "2.0", "id": 999, "result": {}})
        raw = (
            "\ufeff: hello\r\n\r\n"
            "event: endpoint\r\ndata: /elsewhere\r\n\r\n"
            f"data: {other}\n\n"
            'data: {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}\n\n'
            'data: {"jsonrpc": "2.0", "id": "srv-1", "method": "sampling/createMessage", "params": {}}\n\n'
            f"id: 1\ndata: {ours}"
        )
        return as_sse(raw.encode())

    scripted.answer = handshake(then=then)
    with MCPClient(scripted.url) as client:
        assert client.list_tools() == [{"name": "t"}]
    answers = [message for _, message in scripted.seen if "method" not in message]
    refusal = {"code": -32601, "message": "Method not found: sampling/createMessage"}
    assert answers == [{"jsonrpc": "2.0", "id": "srv-1", "error": refusal}]
    assert [headers["Mcp-Session-Id"] for headers, message in scripted.seen if "method" not in message] == ["s-1"]


@pytest.mark.parametrize(
    "reply,match",
    [
        (as_sse(b": nothing\n\n"), "ended without a response"),
        (as_sse(b"data: not json\n\n"), "not JSON"),
        (as_json({"jsonrpc": "2.0", "id": 12345, "result": {}}), "does not answer"),
        ((200, {"Content-Type": "text/html"}, b"<html/>"), "content type"),
        ((202, {}, b""), "no response"),
        ((500, {"Content-Type": "text/plain"}, b"boom"), "HTTP 500"),
        (as_json({"jsonrpc": "2.0", "id": 2}), "does not answer"),  # neither result nor error
    ],
)
def test_unusable_answers_are_protocol_errors(scripted, reply, match):
    scripted.answer = handshake(then=lambda m, h: reply)
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError, match=match):
        client.request("tools/list")


def test_error_about_no_request_counts_as_ours(scripted):
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    scripted.answer = handshake(then=lambda m, h: as_json(error, status=400))
    with MCPClient(scripted.url) as client, pytest.raises(JSONRPCError) as caught:
        client.request("tools/list")
    assert caught.value.code == -32700 and caught.value.status_code == 400


def test_a_second_404_after_reinitializing_is_an_error(scripted):
    scripted.answer = handshake(then=lambda m, h: (404, {}, b""))
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError) as caught:
        client.list_tools()
    assert caught.value.status_code == 404
    assert scripted.methods().count("initialize") == 2 and scripted.methods().count("tools/list") == 2


def test_404_without_a_session_is_not_retried(scripted):
    scripted.answer = handshake(session=None, then=lambda m, h: (404, {}, b""))
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError) as caught:
        client.list_tools()
    assert caught.value.status_code == 404 and scripted.methods().count("initialize") == 1


def test_repeated_cursor_is_an_error(scripted):
    scripted.answer = handshake(then=lambda m, h: as_json(result_of(m, {"tools": [], "nextCursor": "again"})))
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError, match="repeated"):
        client.list_tools()
    assert scripted.methods().count("tools/list") == 2


def test_server_text_never_leaks_our_token(scripted):
    token = "SECRETMARK-token-value"

    def then(message, headers):
        if message["method"] == "tools/call":
            echoed = {"content": [{"type": "text", "text": f"you sent {token}"}], "isError": True}
            return as_json(result_of(message, echoed))
        error = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -1, "message": f"bad {token}"}}
        return as_json(error)

    scripted.answer = handshake(then=then)
    with MCPClient(scripted.url, auth=StaticBearer(token)) as client:
        with pytest.raises(JSONRPCError) as rpc_error:
            client.request("x")
        with pytest.raises(ToolError) as tool_error:
            client.call_tool("t")
    for error in (rpc_error.value, tool_error.value):
        assert token not in str(error) and token not in repr(error) and "[redacted]" in str(error)


def test_stateless_server_without_our_version_is_refused(scripted):
    def answer(message, headers):
        result = {"supportedVersions": ["2027-01-01"], "capabilities": {}, "resultType": "complete"}
        return as_json(result_of(message, result))

    scripted.answer = answer
    with MCPClient(scripted.url, protocol_version=STATELESS) as client, pytest.raises(MCPProtocolError, match="2027"):
        client.connect()


def test_stateless_input_required_is_refused(scripted):
    def answer(message, headers):
        if message["method"] == "server/discover":
            discovered = {"supportedVersions": [STATELESS], "capabilities": {}, "serverInfo": {"name": "old-draft"}}
            return as_json(result_of(message, discovered))
        return as_json(result_of(message, {"resultType": "input_required", "inputRequests": {}}))

    scripted.answer = answer
    with MCPClient(scripted.url, protocol_version=STATELESS) as client:
        assert client.server_info == {"name": "old-draft"}  # identity in the body, as early drafts had it
        with pytest.raises(MCPProtocolError, match="input_required"):
            client.call_tool("t")


def test_bad_session_id_is_refused(scripted):
    scripted.answer = handshake(session="has space")
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError, match="session id"):
        client.connect()


@pytest.mark.parametrize("sent,seen", [("Call echo to repeat text.", "Call echo to repeat text."), (42, None)])
def test_initialize_instructions_are_exposed(scripted, sent, seen):
    scripted.answer = handshake(instructions=sent, capabilities={"tools": {"listChanged": True}})
    with MCPClient(scripted.url) as client:
        assert client.instructions == seen  # a non-string is not instructions
        assert client.server_capabilities == {"tools": {"listChanged": True}}
        client.server_capabilities["tools"] = None
        assert client.server_capabilities == {"tools": {"listChanged": True}}
    assert scripted.methods() == ["initialize", "notifications/initialized"]


def test_discover_instructions_are_exposed_and_absent_ones_are_none(scripted, server, client):
    def answer(message, headers):
        result = {"supportedVersions": [STATELESS], "capabilities": {}, "instructions": "stateless hints"}
        return as_json(result_of(message, result))

    scripted.answer = answer
    with MCPClient(scripted.url, protocol_version=STATELESS) as stateless:
        assert stateless.instructions == "stateless hints"
    assert client.instructions is None  # the strict server sends none


def test_a_notification_meets_the_same_single_retry(scripted):
    def answer(message, headers):
        if message.get("method") == "notifications/roots/list_changed":
            return 404, {}, b""
        return handshake()(message, headers)

    scripted.answer = answer
    with MCPClient(scripted.url) as client, pytest.raises(MCPProtocolError, match="again") as caught:
        client.notify("notifications/roots/list_changed")
    assert caught.value.status_code == 404
    assert scripted.methods().count("initialize") == 2
    assert scripted.methods().count("notifications/roots/list_changed") == 2
