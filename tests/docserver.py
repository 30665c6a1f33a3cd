"""A tiny HTTP server for tests that serves exact documents and records what was asked for.

    with DocServer() as docs:
        docs.json("/.well-known/oauth-protected-resource/mcp", {...})
        docs.route("/huge", 200, b"x" * 10**6, {"Content-Type": "text/plain"})
        ...
        assert docs.requested == ["/.well-known/oauth-protected-resource/mcp"]

GET and POST are answered alike (a POST body is read and dropped). Unregistered paths answer 404.
Paths are matched exactly, query string included. A header value that is a list is sent as
several header lines; ``sized=False`` sends the body without Content-Length (the connection closes
after it). ``delay`` is seconds to wait before answering, or
a ``threading.Event`` that holds the answer until the test sets it.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        docs = self.server.docs
        with docs._lock:
            docs._requests.append((self.path, dict(self.headers.items())))
            status, headers, body, delay, sized = docs._routes.get(self.path, (404, {}, b"not found", 0.0, True))
        if isinstance(delay, threading.Event):
            delay.wait(60)  # a gate the test opens (the timeout is a hang guard only)
        elif delay:
            time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            for line in value if isinstance(value, list) else [value]:
                self.send_header(name, line)
        if sized:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up early (as discovery does on huge bodies) is not a test failure


class DocServer:
    def __init__(self):
        self._lock = threading.Lock()
        self._routes = {}
        self._requests = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.docs = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path):
        return self.base_url + path

    def route(self, path, status=200, body=b"", headers=None, delay=0.0, sized=True):
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self._lock:
            self._routes[path] = (status, dict(headers or {}), body, delay, sized)

    def json(self, path, document, status=200, delay=0.0):
        self.route(path, status, json.dumps(document), {"Content-Type": "application/json"}, delay)

    def redirect(self, path, location, status=302):
        self.route(path, status, b"", {"Location": location})

    @property
    def requested(self):
        """Paths requested so far, in order."""
        with self._lock:
            return [path for path, _ in self._requests]

    @property
    def request_headers(self):
        with self._lock:
            return [headers for _, headers in self._requests]

    def clear(self):
        with self._lock:
            self._requests.clear()

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
