"""One fork-safety mechanism: objects registered with ``fork.reset_in_child`` start clean in a child.

The children here are real ``os.fork()`` children of this (threaded) test process.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mcp_sync_auth._oauth.discovery import Discovery
from mcp_sync_auth._util import fork
from mcp_sync_auth._util.sessions import SessionSource

from ..helpers import call_in_fork

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # forking a threaded process is the point
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's pooled connection serves its next request

    def do_GET(self):
        server = self.server
        with server.guard:
            server.seen.append((self.path, self.client_address[1]))
        body = json.dumps(server.documents.get(self.path, {})).encode()
        self.send_response(200 if self.path in server.documents else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def metadata_server():
    """Serves an MCP server's protected resource metadata; ``seen`` lists (path, client port)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.guard = threading.Lock()
    httpd.seen = []
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.mcp_url = f"{base}/mcp"
    httpd.documents = {
        "/.well-known/oauth-protected-resource/mcp": {"resource": httpd.mcp_url, "authorization_servers": [base]}
    }
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def client_ports(server):
    with server.guard:
        return [port for _, port in server.seen]


def test_a_forked_child_fetches_metadata_on_a_connection_of_its_own(metadata_server):
    discovery = Discovery(timeout=10.0)
    try:
        assert discovery.protected_resource(metadata_server.mcp_url) is not None  # pools a connection
        # The child's cache starts empty, so it fetches again: never on the parent's socket.
        child = call_in_fork(lambda: discovery.protected_resource(metadata_server.mcp_url) is not None)
        assert child() == 0
        discovery.invalidate()
        assert discovery.protected_resource(metadata_server.mcp_url) is not None
        parent, in_child, parent_again = client_ports(metadata_server)
        assert in_child != parent
        assert parent_again == parent  # the parent's pooled connection is still its own, and works
    finally:
        discovery.close()


def test_a_callers_session_is_kept_in_a_child():
    # The caller owns a session it gave us: renewing it is the caller's business, not ours.
    given = requests.Session()
    sessions = SessionSource(given)
    assert call_in_fork(lambda: sessions.get() is given)() == 0


def test_our_own_session_is_replaced_in_a_child_and_kept_in_the_parent():
    sessions = SessionSource()
    parents = sessions.get()
    assert call_in_fork(lambda: sessions.get() is not parents)() == 0
    assert sessions.get() is parents
    sessions.close()
    assert sessions.get() is not parents


def test_registered_objects_are_reset_in_the_child_only():
    class Probe:
        def __init__(self):
            self.resets = 0

        def _reset_after_fork(self):
            self.resets += 1

    probe = Probe()
    fork.reset_in_child(probe)
    assert call_in_fork(lambda: probe.resets == 1)() == 0
    assert probe.resets == 0

