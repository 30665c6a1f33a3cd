"""A bare HTTP server on 127.0.0.1 for the answers a well-behaved MCP server never gives, and the
message builders its scripts use."""

import http.server
import json

import requests


class StaticBearer(requests.auth.AuthBase):
    """A fixed token and no refresh: what the server says reaches the client unchanged."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that stops reading a hostile body early is what the test wants


class Scripted:
    """A bare HTTP server; ``answer(message, headers)`` returns (status, headers, body bytes)."""

    def __init__(self):
        self.seen = []
        self.answer = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append((dict(self.headers), message))
                status, headers, body = outer.answer(message, self.headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_DELETE(self):
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mcp"

    def methods(self):
        return [message.get("method", "(response)") for _, message in self.seen]


def as_json(message, status=200, **headers):
    return status, {"Content-Type": "application/json", **headers}, json.dumps(message).encode()


def as_sse(raw, **headers):
    return 200, {"Content-Type": "text/event-stream", **headers}, raw


def result_of(message, result):
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def handshake(version="2025-11-25", session="s-1", then=None, **extra):
    """initialize -> ``version`` (and ``extra`` result members); notifications -> 202; everything
    else -> ``then``."""

    def answer(message, headers):
        if message.get("method") == "initialize":
            info = {"protocolVersion": version, "capabilities": {}, "serverInfo": {"name": "fake", "version": "0"}}
            info.update(extra)
            return as_json(result_of(message, info), **({"Mcp-Session-Id": session} if session else {}))
        if "id" not in message or "method" not in message:
            return 202, {}, b""
        return then(message, headers)

    return answer
