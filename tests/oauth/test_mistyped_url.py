"""A mistyped MCP URL is refused before anything costs a person's time: no registration, no browser.

Against StrictAuthServer over real HTTP. ``/mpc`` stands for ``/mcp`` throughout.
"""

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth, ResourceMismatch
from mcp_sync_auth._oauth.discovery import _parse_protected_resource
from mcp_sync_auth.testing import StrictAuthServer

from ..docserver import DocServer
from ..login_helpers import browser

PRM = "/.well-known/oauth-protected-resource"


class CountingBrowser:
    """The programmatic authorization handler: a browser that counts how often it was opened."""

    def __init__(self):
        self.urls = []

    def __call__(self, url):
        self.urls.append(url)
        return browser(url)


def nothing_spent(server, handler):
    audit = server.audit
    assert audit.registration_requests == 0 and audit.registrations == 0
    assert audit.authorization_requests == 0
    assert audit.token_requests == 0
    assert handler.urls == []


def login(url, store_dir, clock, handler):
    return MCPAuth(url, store=FileTokenStore(store_dir), authorization_handler=handler, clock=clock).login()


@pytest.fixture
def root_server(clock):
    # Also publishes its metadata at the root well-known URL, where a client looks for /mpc's.
    with StrictAuthServer(clock=clock, root_metadata=True) as strict:
        yield strict


def test_mistyped_path_names_the_resource_the_metadata_describes(root_server, store_dir, clock):
    handler = CountingBrowser()
    typo = root_server.base_url + "/mpc"
    with pytest.raises(ResourceMismatch) as caught:
        login(typo, store_dir, clock, handler)
    error = caught.value
    assert error.expected == typo
    assert error.actual == root_server.mcp_url
    assert error.suggestion == root_server.mcp_url
    assert typo in str(error) and f"did you mean {root_server.mcp_url}?" in str(error)
    nothing_spent(root_server, handler)
    assert root_server.audit.metadata_requests == {PRM: 1}


def test_the_right_url_still_logs_in_on_that_server(root_server, store_dir, clock):
    handler = CountingBrowser()
    assert login(root_server.mcp_url, store_dir, clock, handler).access_token
    assert len(handler.urls) == 1
    # The path-inserted document is found first; the root one is not needed.
    assert PRM not in root_server.audit.metadata_requests


def test_mistyped_path_without_root_metadata_is_refused_after_asking_the_url(server, store_dir, clock):
    # The default StrictAuthServer publishes /mcp's metadata only at the path-inserted URL, so no
    # document is found for /mpc; the URL itself answers 404 instead of asking for authorization.
    handler = CountingBrowser()
    typo = server.base_url + "/mpc"
    with pytest.raises(ResourceMismatch) as caught:
        login(typo, store_dir, clock, handler)
    message = str(caught.value)
    assert typo in message and "HTTP 404" in message and "Check the URL" in message
    assert caught.value.actual is None and caught.value.suggestion is None
    nothing_spent(server, handler)
    assert server.audit.mcp_unauthorized == 0


def test_a_401_naming_the_metadata_of_another_path_is_refused(store_dir, clock):
    # A gateway that asks for authorization on every path, pointing at the real endpoint's metadata.
    with DocServer() as rs:
        metadata = rs.url(PRM + "/mcp")
        rs.route("/mpc", 401, b"", {"WWW-Authenticate": f'Bearer resource_metadata="{metadata}"'})
        rs.json(PRM + "/mcp", {"resource": rs.url("/mcp"), "authorization_servers": [rs.base_url]})
        handler = CountingBrowser()
        with pytest.raises(ResourceMismatch) as caught:
            login(rs.url("/mpc"), store_dir, clock, handler)
        assert caught.value.suggestion == rs.url("/mcp")
        assert handler.urls == []
        assert rs.requested == [PRM + "/mpc", PRM, "/mpc", PRM + "/mcp"]


def test_a_2025_03_26_server_still_logs_in_without_a_challenge(server, store_dir, clock):
    # No metadata anywhere: the URL's own 401 confirms it is a protected resource.
    server.serve_metadata = False
    handler = CountingBrowser()
    assert login(server.mcp_url, store_dir, clock, handler).access_token
    assert server.audit.mcp_unauthorized == 1 and server.audit.authorization_requests == 1


@pytest.mark.parametrize("offered", ["https://evil.example.com/mcp", "http://127.0.0.1:1/mcp"])
def test_another_origin_is_named_but_never_suggested(offered):
    asked = "http://127.0.0.1:8000/mcp"
    document = {"resource": offered, "authorization_servers": ["https://as.example"]}
    with pytest.raises(ResourceMismatch) as caught:
        _parse_protected_resource(document, "http://127.0.0.1:8000" + PRM + "/mcp", (asked,))
    assert caught.value.suggestion is None
    assert offered in str(caught.value) and "did you mean" not in str(caught.value)
