"""The lifecycle the test servers share: a :class:`StrictHTTPServer` on a free port of ``host``,
served from a daemon thread between ``start`` and ``stop`` (or as a context manager), once; over
HTTPS when given TLS (an :class:`ssl.SSLContext`, or a certificate and key file pair)."""

from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import ClassVar, Optional, Tuple, Type, TypeVar, Union

from .handler import StrictHTTPServer
from .http_types import RouteTable
from .request_log import RequestLogSnapshot

__all__ = ["ServerTLS", "ThreadedHttpServing", "server_tls_context"]

ServerTLS = Union[ssl.SSLContext, Tuple[str, str]]
"""How a test server serves HTTPS: a server-side context, or ``(certfile, keyfile)`` PEM files."""


def server_tls_context(tls: ServerTLS) -> ssl.SSLContext:
    """A server-side context: the one given, or one loaded from ``(certfile, keyfile)``."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    certfile, keyfile = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


_Serving = TypeVar("_Serving", bound="ThreadedHttpServing")


class ThreadedHttpServing:
    """Base of a test server: subclasses give their routes (:meth:`_build_routes`, called once the
    base URL is known) and may act when stopping begins (:meth:`_on_stopping`)."""

    _server_name: ClassVar[str] = "server"
    """Names the serving thread (``name:port``) and the error of a second start."""
    _not_started_message: ClassVar[str] = "the server is not started"

    def __init__(self, host: str, tls: Optional[ServerTLS] = None) -> None:
        self._host = host
        self._tls = server_tls_context(tls) if tls is not None else None
        self._httpd: Optional[StrictHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._base_url: Optional[str] = None
        self._stopped = False

    def _build_routes(self) -> RouteTable:
        raise NotImplementedError

    def _on_stopping(self) -> None:
        """Called once the server is told to stop, before it shuts down."""

    def start(self: _Serving) -> _Serving:
        if self._httpd is not None or self._stopped:
            raise RuntimeError(f"{self._server_name} can be started only once")
        httpd = StrictHTTPServer((self._host, 0), tls=self._tls)
        port = httpd.server_address[1]
        scheme = "https" if self._tls is not None else "http"
        self._base_url = f"{scheme}://{self._host}:{port}"
        httpd.routes = self._build_routes()
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{self._server_name}:{port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, close the socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or self._stopped:
            self._stopped = True
            return
        self._stopped = True
        httpd.stopping.set()
        self._on_stopping()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self: _Serving) -> _Serving:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(self._not_started_message)
        return self._base_url

    @property
    def request_log(self) -> RequestLogSnapshot:
        """Every request served so far (method, path without query, peer) and every connection."""
        if self._httpd is None:
            raise RuntimeError(self._not_started_message)
        return self._httpd.request_log.snapshot()

    def reset_request_log(self) -> None:
        if self._httpd is not None:
            self._httpd.request_log.reset()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])
