"""The loopback redirect receiver (RFC 8252 §7.3): a one-shot HTTP server on 127.0.0.1.

It waits for the browser to come back to its callback path after the login, keeps the redirect URL
whose ``state`` is the login's own, and answers the browser with a page that says, once the flow
has redeemed the code, whether the login worked and what to do next. A request with another
``state`` (a stray tab, a forged link) gets a page saying it was ignored, and the login goes on
waiting for its own. Nothing else is served, and nothing secret is shown or logged.
"""

from __future__ import annotations

import hmac
import http.server
import socket
import threading
from types import TracebackType
from typing import Optional, Tuple, Type
from urllib.parse import parse_qsl, urlsplit

from ..errors import AuthorizationFailed
from .pages import Page, failure_page, ignored_page, not_found_page, success_page, waiting_page

CALLBACK_PATH = "/callback"
# How long the browser's request is held for the outcome (the code exchange) before the page says
# "look at the terminal"; the exchange is bounded by the token endpoint's own timeouts anyway.
OUTCOME_WAIT = 30.0
# How long closing the receiver waits for the page to reach the browser.
ANSWER_WAIT = 5.0


class BrowserNotStarted(AuthorizationFailed):
    """The browser command failed before any redirect came: the login must reach the person otherwise."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != self.server.callback_path or not query:
            self._answer(404, not_found_page())
            return
        params = _first_values(query)
        if not self.server.is_ours(params.get("state")):
            self._answer(400, ignored_page(self.server.resource))
            return
        first = self.server.deliver(f"{self.server.base_url}{self.path}")
        page = self.server.outcome_page(wait=OUTCOME_WAIT if first else 0.0)
        self._answer(200, page)
        if first:
            self.server.answered.set()

    def _answer(self, status: int, page: Page) -> None:
        body = page.html().encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")  # the URL holds the code
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the tab was closed before the answer
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # the query string holds the authorization code: never log it


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Tuple[str, int], family: int, callback_path: str, base_host: str) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self.callback_path = callback_path
        self.base_url = f"http://{base_host}:{self.server_port}"
        self.resource = ""
        self.expected_state: Optional[str] = None
        self.received: Optional[str] = None
        self.no_browser = False
        self.arrived = threading.Event()  # a redirect came, or the browser could not be started
        self.answered = threading.Event()
        self._outcome: Optional[Page] = None
        self._decided = threading.Event()
        self._lock = threading.Lock()

    def is_ours(self, state: Optional[str]) -> bool:
        expected = self.expected_state
        if expected is None:  # nothing to compare with: the flow checks it
            return True
        return state is not None and hmac.compare_digest(state.encode("utf-8"), expected.encode("utf-8"))

    def deliver(self, url: str) -> bool:
        """Keep the first redirect (a reload must not replace it); True for that first one."""
        with self._lock:
            if self.received is not None:
                return False
            self.received = url
        self.arrived.set()
        return True

    def decide(self, page: Page) -> None:
        with self._lock:
            if self._outcome is None:
                self._outcome = page
        self._decided.set()

    def outcome_page(self, wait: float) -> Page:
        self._decided.wait(wait)
        with self._lock:
            outcome = self._outcome
        return outcome if outcome is not None else waiting_page(self.resource)


def _first_values(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


def receivable_redirect_uri(redirect_uri: str) -> None:
    """AuthorizationFailed unless a loopback receiver can listen where ``redirect_uri`` points."""
    _listen_address(redirect_uri, 0)


def _listen_address(redirect_uri: Optional[str], port: int) -> Tuple[str, int, int, str, str]:
    """(bind host, port, address family, callback path, host in URLs) for a receiver."""
    if redirect_uri is None:
        return "127.0.0.1", port, socket.AF_INET, CALLBACK_PATH, "127.0.0.1"
    parts = urlsplit(redirect_uri)
    try:
        fixed_port = parts.port or 0
    except ValueError:
        fixed_port = -1
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "http"
        or host not in ("127.0.0.1", "localhost", "::1")
        or fixed_port < 0
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise AuthorizationFailed(
            f"the redirect URI {redirect_uri!r} is not one this program can receive: it must be "
            "http://127.0.0.1:PORT/PATH (or localhost, or [::1]), with no query or fragment"
        )
    if host == "::1":
        return "::1", fixed_port, socket.AF_INET6, parts.path or "/", "[::1]"
    # localhost: 127.0.0.1 is what every browser tries for it.
    return "127.0.0.1", fixed_port, socket.AF_INET, parts.path or "/", parts.hostname or host


class LoopbackReceiver:
    """``with LoopbackReceiver() as receiver: ... receiver.wait(timeout)`` → the redirect URL.

    ``redirect_uri``: the one registered by hand (its port and path are listened on, and it is sent
    as given; without a port a free one is chosen). ``port``: a fixed port for the default
    ``http://127.0.0.1:PORT/callback``. ``resource``: the server named on the pages.
    """

    def __init__(self, port: int = 0, *, redirect_uri: Optional[str] = None, resource: str = "") -> None:
        host, listen_port, family, path, url_host = _listen_address(redirect_uri, port)
        try:
            self._server = _Server((host, listen_port), family, path, url_host)
        except OSError as exc:
            shown = f"[{host}]" if family == socket.AF_INET6 else host
            hint = (
                f"; another program is using port {listen_port}: stop it, or use another port registered "
                "for this client (--callback-port / --redirect-uri, redirect_uri=)"
                if listen_port
                else ""
            )
            raise AuthorizationFailed(
                f"cannot listen on {shown}:{listen_port} for the login redirect ({exc.strerror}){hint}"
            ) from exc
        self._server.resource = resource
        self._fixed = redirect_uri if redirect_uri is not None and urlsplit(redirect_uri).port else None
        self._thread = threading.Thread(target=self._server.serve_forever, name="mcp-sync-auth-login", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to send: the fixed one exactly as given, else this receiver's own."""
        if self._fixed is not None:
            return self._fixed
        return f"{self._server.base_url}{self._server.callback_path}"

    def expect(self, state: str) -> None:
        """Only a redirect carrying this ``state`` is the login's; any other is shown a page and ignored."""
        self._server.expected_state = state

    def succeeded(self) -> None:
        """The login worked: the waiting browser is told so."""
        self._server.decide(success_page(self._server.resource))

    def failed(self, error: BaseException) -> None:
        """The login failed: the waiting browser is told why (the message carries no secret)."""
        code = getattr(error, "error_code", None)
        received = self._server.received
        description = _first_values(urlsplit(received).query).get("error_description") if received and code else None
        self._server.decide(failure_page(self._server.resource, str(error), code, description))

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc is not None:
            self.failed(exc)
        else:
            self.succeeded()  # no-op when the flow said so already
        if self._server.received is not None:
            self._server.answered.wait(ANSWER_WAIT)  # let the page reach the browser first
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def no_browser(self) -> None:
        """The browser could not be started: :meth:`wait` raises BrowserNotStarted, unless a redirect
        came first."""
        self._server.no_browser = True
        self._server.arrived.set()

    def wait(self, timeout: float) -> str:
        arrived = self._server.arrived.wait(timeout)
        if arrived and self._server.received is None and self._server.no_browser:
            raise BrowserNotStarted("no browser could be started")
        if not arrived:
            raise AuthorizationFailed(
                f"no login redirect arrived within {timeout:g} s (the browser tab was closed, or the login "
                "was not finished there); nothing was stored: log in again"
            )
        assert self._server.received is not None
        return self._server.received
