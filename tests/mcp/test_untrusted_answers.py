"""Hostile answers from an MCP server, over real HTTP: bodies are bounded and JSON depth-guarded, and
every failure is our MCPProtocolError with nothing of the server's payload or our token in it."""

import json

import pytest

from mcp_sync_auth import JSONRPCError, MCPClient, MCPProtocolError
from mcp_sync_auth._mcp import transport

from .scripted import StaticBearer, as_sse, handshake, result_of

TOKEN = "SECRETMARK-hostile-test-token"
DEEP = 100_000  # far past the interpreter's recursion limit: json.loads alone raises RecursionError


def deep_result(message, depth=DEEP):
    """A response whose result nests ``depth`` arrays; the token is echoed inside, as a hostile server might."""
    head = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"echo": TOKEN, "deep": None}})
    return head.replace("null", "[" * depth + "]" * depth).encode()


def json_answer(body, status=200):
    return status, {"Content-Type": "application/json"}, body


def failure_of(scripted, then, method="tools/list"):
    scripted.answer = handshake(then=then)
    with MCPClient(scripted.url, auth=StaticBearer(TOKEN)) as client, pytest.raises(MCPProtocolError) as caught:
        client.request(method)
    return caught.value


def assert_ours_and_clean(error):
    assert type(error) is MCPProtocolError  # not JSONRPCError, not a RecursionError or MemoryError
    chain = [error.__cause__, error.__context__]
    assert not any(isinstance(link, (RecursionError, MemoryError)) for link in chain)
    assert TOKEN not in str(error) and TOKEN not in repr(error) and "[[[" not in str(error)


def test_deeply_nested_json_reply(scripted):
    error = failure_of(scripted, lambda m, h: json_answer(deep_result(m)))
    assert_ours_and_clean(error)
    assert "not JSON" in str(error)


def test_deeply_nested_sse_event(scripted):
    error = failure_of(scripted, lambda m, h: as_sse(b"data: " + deep_result(m) + b"\n\n"))
    assert_ours_and_clean(error)
    assert "event that is not JSON" in str(error)


def test_deeply_nested_error_body_falls_back_to_the_status(scripted):
    def deep_error(message):
        # Within MAX_ERROR_BODY, so it is decoded, and still deep enough to exhaust the interpreter's stack.
        body = deep_result(message, depth=20_000).replace(b'"result"', b'"error"')
        assert len(body) < transport.MAX_ERROR_BODY
        return json_answer(body, 500)

    error = failure_of(scripted, lambda m, h: deep_error(m))
    assert_ours_and_clean(error)
    assert error.status_code == 500 and "HTTP 500" in str(error)


def test_json_reply_up_to_the_bound_is_read_and_one_byte_more_is_refused(scripted, monkeypatch):
    monkeypatch.setattr(transport, "MAX_REPLY_BYTES", 4096)

    def sized(message, size):
        body = json.dumps(result_of(message, {"pad": ""})).encode()
        return body.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(body)) + b'"')

    scripted.answer = handshake(then=lambda m, h: json_answer(sized(m, 4096)))
    with MCPClient(scripted.url) as client:
        assert len(client.request("tools/list")["pad"]) > 4000
    error = failure_of(scripted, lambda m, h: json_answer(sized(m, 4097)))
    assert_ours_and_clean(error)
    assert "larger than 4096 bytes" in str(error) and error.status_code == 200


def test_default_reply_bound_holds_over_the_wire(scripted):
    # A real-size body: the client stops reading at the bound and hangs up.
    huge = b'{"jsonrpc": "2.0", "id": 2, "result": "' + b"x" * transport.MAX_REPLY_BYTES + b'"}'
    error = failure_of(scripted, lambda m, h: json_answer(huge))
    assert_ours_and_clean(error)
    assert f"larger than {transport.MAX_REPLY_BYTES} bytes" in str(error)


@pytest.mark.parametrize(
    "stream",
    [
        b"data: " + b"x" * 5000 + b"\n\n",  # one event's data
        b"data: " + b"x" * 3000 + b"\ndata: " + b"x" * 3000 + b"\n\n",  # data split over lines
        b": " + b"x" * 5000 + b"\n\n",  # a comment line
        b"data: " + b"x" * 5000,  # a line that never ends
    ],
)
def test_an_sse_event_past_its_bound_is_refused(scripted, monkeypatch, stream):
    monkeypatch.setattr(transport, "MAX_EVENT_CHARS", 4096)
    error = failure_of(scripted, lambda m, h: as_sse(stream))
    assert_ours_and_clean(error)
    assert "event larger than 4096 characters" in str(error)


def test_the_bound_is_per_event_not_per_stream(scripted, monkeypatch):
    monkeypatch.setattr(transport, "MAX_EVENT_CHARS", 4096)
    progress = json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"pad": "x" * 1000}})

    def then(message, headers):
        ours = json.dumps(result_of(message, {"tools": []}))
        return as_sse((f"data: {progress}\n\n" * 20 + f"data: {ours}\n\n").encode())

    scripted.answer = handshake(then=then)
    with MCPClient(scripted.url) as client:
        assert client.list_tools() == []


def test_an_error_body_past_its_bound_falls_back_to_the_status(scripted, monkeypatch):
    monkeypatch.setattr(transport, "MAX_ERROR_BODY", 1024)

    def error_body(message, pad):
        error = {"code": -32000, "message": "nope", "data": "x" * pad}
        return json_answer(json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error}).encode(), 500)

    error = failure_of(scripted, lambda m, h: error_body(m, 2000))
    assert_ours_and_clean(error)
    assert error.status_code == 500 and "HTTP 500" in str(error)
    scripted.answer = handshake(then=lambda m, h: error_body(m, 100))
    with MCPClient(scripted.url) as client, pytest.raises(JSONRPCError) as caught:
        client.request("tools/list")
    assert caught.value.code == -32000 and caught.value.status_code == 500


@pytest.mark.parametrize(
    "challenge,hint",
    [
        (
            f'Bearer error=invalid_token, scope="a b", error_description="you sent {TOKEN}"',
            "error=invalid_token, scope=a b",
        ),
        (f'Basic realm="x", Bearer scope=a, resource_metadata="https://x/{TOKEN}"', "scope=a"),
        (f'Bearer error="bad" "unparsable {TOKEN}', None),  # malformed: no hint, the header is still kept
        ('Basic realm="x"', None),
    ],
)
def test_a_refusal_hints_the_bearer_challenge_and_keeps_it_without_our_token(scripted, challenge, hint):
    error = failure_of(scripted, lambda m, h: (401, {"WWW-Authenticate": challenge, "Content-Length": "0"}, b""))
    assert error.status_code == 401
    assert error.www_authenticate == challenge.replace(TOKEN, "[redacted]")
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    if hint is None:
        assert str(error) == "the MCP server refused the request (HTTP 401)"
    else:
        assert str(error) == f"the MCP server refused the request (HTTP 401): {hint}"
