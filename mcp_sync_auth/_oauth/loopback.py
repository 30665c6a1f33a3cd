"""The loopback redirect receiver (RFC 8252 §7.3): a one-shot HTTP server on 127.0.0.1.

It waits for the browser to come back to ``/callback`` after the login, keeps the full redirect URL
and shows a small page. Nothing else is served.
"""

from __future__ import annotations

import http.server
import threading
from types import TracebackType
from typing import Optional, Type

from ..errors import AuthorizationFailed

CALLBACK_PATH = "/callback"
_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>mcp-sync-auth</title></head>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p></body></html>"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != CALLBACK_PATH or not query:
            self._answer(404, "Not found", "This address only receives the login redirect.")
            return
        self.server.deliver(f"http://{self.server.host_for_url}:{self.server.server_port}{self.path}")
        self._answer(200, "Login received", "You can close this window and go back to your program.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=title, text=text).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the query string holds the authorization code: never log it


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    host_for_url = "127.0.0.1"

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.received: Optional[str] = None
        self.arrived = threading.Event()

    def deliver(self, url: str) -> None:
        if self.received is None:  # the first redirect wins; a reload must not replace it
            self.received = url
            self.arrived.set()


class LoopbackReceiver:
    """``with LoopbackReceiver() as receiver: ... receiver.wait(timeout)`` → the redirect URL."""

    def __init__(self, port: int = 0) -> None:
        try:
            self._server = _Server(port)
        except OSError as exc:
            raise AuthorizationFailed(
                f"cannot listen on 127.0.0.1:{port} for the login redirect ({exc.strerror})"
            ) from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="mcp-sync-auth-login", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> str:
        if not self._server.arrived.wait(timeout):
            raise AuthorizationFailed(f"no login redirect arrived within {timeout:g} s")
        assert self._server.received is not None
        return self._server.received
