"""The session every network test drives: log in, call a tool, let the token expire, call again."""

from mcp_sync_auth import MCPAuth, MCPClient, MemoryTokenStore

from ..conftest import TTL
from .conftest import browser_trusting


def texts(result):
    return [item["text"] for item in result["content"] if item.get("type") == "text"]


def make_auth(server, clock, ca_bundle, **options):
    options.setdefault("store", MemoryTokenStore())
    return MCPAuth(
        server.mcp_url,
        clock=clock,
        interactive=True,
        authorization_handler=browser_trusting(ca_bundle),
        **options,
    )


def log_in_call_refresh_call(server, clock, auth):
    """The first MCP call's 401 starts discovery, registration and the code grant; after the expiry the
    next call refreshes. Returns what the second call answered."""
    with MCPClient(server.mcp_url, auth=auth) as client:
        assert texts(client.call_tool("echo", {"text": "before"})) == ["before"]
        clock.advance(TTL + 1)
        answer = texts(client.call_tool("echo", {"text": "after"}))
    audit = server.audit
    assert audit.registrations == 1
    assert audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}
    assert audit.grants_failed == {}
    return answer
