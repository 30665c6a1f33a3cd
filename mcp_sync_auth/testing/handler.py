"""HTTP plumbing: the threading server and its request handler.

The handler reads a whole request, looks the path and method up in the route
table, and writes the endpoint's :class:`Response` with a Content-Length so
HTTP/1.1 keep-alive works. Endpoint exceptions become a 500 and never reach
the server loop.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Set, Tuple

from .http_types import Request, Response, RouteTable, json_response
from .request_log import RequestLog

__all__ = ["StrictHTTPServer", "StrictRequestHandler", "logger"]

logger = logging.getLogger("mcp_sync_auth.testing")

MAX_BODY = 1 << 20
MAX_LINE = 1 << 16
# A TLS client that stalls in the handshake must not hold its handler thread for ever.
HANDSHAKE_TIMEOUT = 10.0


class StrictHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so ``stop`` can cut them."""

    daemon_threads = True
    block_on_close = False  # stop() cuts connections itself; never join handler threads
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, server_address: Tuple[str, int], tls: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(server_address, StrictRequestHandler)
        if tls is not None:
            # The handshake runs in the handler thread (finish_request), never in the accept loop,
            # so one client failing or stalling it does not stop the others being accepted.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.routes: RouteTable = {}
        self.stopping = threading.Event()
        self.request_log = RequestLog()
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(HANDSHAKE_TIMEOUT)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                # An untrusted certificate is refused by the client here: nothing was requested.
                logger.debug("TLS handshake with %s failed", client_address, exc_info=True)
                return
        host, port = client_address[:2]
        self.request_log.connection((str(host), int(port)))
        super().finish_request(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked in the accept loop, before the handler thread starts, so that a
        # connection accepted just before shutdown() is still cut by close_connections().
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on keep-alive reads (used on stop)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)


class StrictRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms stall
    server_version = "mcp-sync-auth-strict/1.0"
    sys_version = ""
    server: StrictHTTPServer

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The path without its query: a misbehaving client could put a token there.
        path = self.path.partition("?")[0]
        logger.debug("%s - %s %s -> %s", self.address_string(), self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # ---------------------------------------------------------------- plumbing

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        host, port = self.client_address[:2]
        self.server.request_log.request(self.command, path, (str(host), int(port)))
        body = self._read_body()
        if body is None:
            return
        methods = self.server.routes.get(path)
        if methods is None:
            self._send(json_response(404, {"error": "not_found"}))
            return
        endpoint = methods.get(self.command)
        if endpoint is None:
            allow = ", ".join(sorted(methods))
            self._send(json_response(405, {"error": "method_not_allowed"}, (("Allow", allow),)))
            return
        request = Request(self.command, path, query, self.headers, body)
        try:
            response = endpoint(request)
        except Exception:
            logger.exception("endpoint %s %s failed", self.command, path)
            response = json_response(500, {"error": "server_error"}, (("Cache-Control", "no-store"),))
        self._send(response)

    def _read_body(self) -> Optional[bytes]:
        """The request body (Content-Length or chunked); None when an error was already sent."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:
                self._send(json_response(400, {"error": "both_length_and_chunked"}), close=True)
                return None
            if [value.strip().lower() for value in encodings] != ["chunked"]:
                self._send(json_response(501, {"error": "unsupported_transfer_encoding"}), close=True)
                return None
            return self._read_chunked()
        if not lengths:
            return b""
        try:
            if len(set(lengths)) != 1:
                raise ValueError("conflicting Content-Length")
            length = int(lengths[0])
            if length < 0:
                raise ValueError("negative Content-Length")
        except ValueError:
            self._send(json_response(400, {"error": "bad_content_length"}), close=True)
            return None
        if length > MAX_BODY:
            self._send(json_response(413, {"error": "payload_too_large"}), close=True)
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _read_chunked(self) -> Optional[bytes]:
        body = bytearray()
        try:
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line.endswith(b"\n"):
                    raise ValueError("truncated chunk size line")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    break
                if len(body) + size > MAX_BODY:
                    self._send(json_response(413, {"error": "payload_too_large"}), close=True)
                    return None
                chunk = self.rfile.read(size)
                if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                    raise ValueError("truncated chunk")
                body += chunk
            while True:  # trailer section
                line = self.rfile.readline(MAX_LINE)
                if not line.endswith(b"\n"):
                    raise ValueError("truncated trailer")
                if line in (b"\r\n", b"\n"):
                    return bytes(body)
        except ValueError:
            self._send(json_response(400, {"error": "bad_chunked_body"}), close=True)
            return None

    def _send(self, response: Response, *, close: bool = False) -> None:
        if response.abort:
            self._reset_connection()
            return
        if response.delay > 0 and self.server.stopping.wait(response.delay):
            self.close_connection = True
            return
        close = close or response.close
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            if response.drip > 0:
                self._drip(response.body, response.drip)
            elif response.body:
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            logger.debug("client went away before the response was written")
            self.close_connection = True

    def _drip(self, body: bytes, pause: float) -> None:
        self.wfile.flush()  # the status line and headers go out at once
        for index in range(len(body)):
            if self.server.stopping.wait(pause):
                self.close_connection = True
                return
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0 so the peer gets a TCP RST instead of a FIN."""
        self.close_connection = True
        linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.rfile.close()  # drops the makefile() reference so close() really closes
            self.connection.close()
        except OSError:
            logger.debug("error while resetting a connection", exc_info=True)
