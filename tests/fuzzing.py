"""Shared pieces of the fuzz and security tests: the marker, leak checks, a raw loopback HTTP server,
and hypothesis strategies for hostile bodies.

The marker is placed in every token and client secret a test hands to the library (and in every
token a hostile server issues). It must never show up in an exception (str, repr, traceback with its
chained causes), in the repr of any of our objects, or in any log record at any level.

Example counts: each property sets its own ``max_examples``; ``FUZZ_SCALE=10`` multiplies them for a
long local run. With ``CI`` set, hypothesis runs derandomized (the same examples on every run).

The fuzz test files take their whole toolkit from here with ``from ..fuzzing import *``: the names in
``__all__``, hypothesis's ``given``, ``event`` and ``st`` included.
"""

import contextlib
import dataclasses
import json
import logging
import os
import socket
import socketserver
import threading
import traceback

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mcp_sync_auth import MCPAuthError

__all__ = [
    "HUGE_INT",
    "MARKER",
    "TOKEN68",
    "URLSAFE",
    "LogWatch",
    "RawServer",
    "Seen",
    "assert_clean_exception",
    "assert_no_marker",
    "check_outcome",
    "dumps",
    "event",
    "exception_texts",
    "fuzz_settings",
    "given",
    "html_page",
    "http_response",
    "marked",
    "nested",
    "one_in",
    "our_reprs",
    "st",
]

# Letters and digits only, so that no encoding (form, JSON, base64url...) changes it.
MARKER = "Zq7MARKq7Z"
TOKEN68 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

_SCALE = float(os.environ.get("FUZZ_SCALE", "1") or 1)


def fuzz_settings(max_examples):
    """Settings for one property: modest example counts, no deadline (loopback HTTP jitters)."""
    return settings(
        max_examples=max(1, int(max_examples * _SCALE)),
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
    )


# --- leak checks ---------------------------------------------------------------------------------


def exception_texts(exc):
    """Everything a program may print or log about ``exc``: the traceback with its chained causes
    (as ``traceback`` and ``logging`` print it), the str and repr of the exception and of its
    attributes when it is ours, and the str of each chained cause."""
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), repr(exc)]
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        if isinstance(current, MCPAuthError):
            texts += [repr(current)] + [repr(value) for value in vars(current).values()]
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return texts


def assert_no_marker(texts, where, marker=MARKER):
    for text in texts:
        assert marker not in text, f"the marker leaked into {where}: {text[:2000]!r}"


def assert_clean_exception(exc, marker=MARKER):
    assert_no_marker(exception_texts(exc), f"an exception ({type(exc).__name__})", marker)


def check_outcome(call, marker=MARKER):
    """Run ``call``; only our documented exceptions may escape, and none may name a secret.
    Returns (result, None) or (None, exception)."""
    try:
        return call(), None
    except MCPAuthError as exc:
        assert_clean_exception(exc, marker)
        return None, exc


def our_reprs(*roots, skip_types=(), depth=4):
    """repr() and str() of every object of ours reachable from ``roots`` through attributes,
    dataclass fields and containers (objects of other libraries are not entered)."""
    out = []
    seen = set()

    def visit(obj, level):
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                visit(item, level)
            return
        if isinstance(obj, dict):
            for item in obj.values():
                visit(item, level)
            return
        module = getattr(type(obj), "__module__", "") or ""
        if not module.startswith("mcp_sync_auth") or isinstance(obj, skip_types):
            return
        out.extend([repr(obj), str(obj)])
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            children = [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
        else:
            children = list(getattr(obj, "__dict__", {}).values())
        for child in children:
            visit(child, level + 1)

    for root in roots:
        visit(root, 0)
    return out


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []
        self._guard = threading.Lock()

    def emit(self, record):
        with self._guard:
            self.records.append(record)


class LogWatch:
    """Every log record of every logger, at DEBUG and up, while the block runs."""

    def __enter__(self):
        self._root = logging.getLogger()
        self._level = self._root.level
        self._handler = _Collector()
        self._root.addHandler(self._handler)
        self._root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self._root.removeHandler(self._handler)
        self._root.setLevel(self._level)

    def clear(self):
        with self._handler._guard:
            self._handler.records.clear()

    @property
    def records(self):
        with self._handler._guard:
            return list(self._handler.records)

    def texts(self):
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        texts = []
        for record in self.records:
            texts += [formatter.format(record), str(record.msg), repr(record.args)]
            if record.exc_info:
                texts.append(formatter.formatException(record.exc_info))
            if record.stack_info:
                texts.append(record.stack_info)
        return texts

    def assert_clean(self, marker=MARKER):
        assert_no_marker(self.texts(), "a log record", marker)


# --- a raw HTTP server ---------------------------------------------------------------------------


@dataclasses.dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict
    body: bytes

    def text(self):
        head = "\n".join(f"{name}: {value}" for name, value in self.headers.items())
        return f"{self.method} {self.path}\n{head}\n\n" + self.body.decode("latin-1")


def http_response(status=200, body=b"", headers=None, *, framing="sized", reason=None):
    """The raw bytes of a response. ``framing``: sized (right Content-Length), close (none, the
    connection ends the body), short (Content-Length larger than the body), chunked, bad-chunked,
    nothing (no bytes at all), garbage (not HTTP)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if framing == "nothing":
        return b""
    if framing == "garbage":
        return b"HTTP/1.1 two hundred OK\r\n" + body[:64] + b"\r\n\r\n"
    lines = [f"HTTP/1.1 {status} {reason if reason is not None else 'Whatever'}"]
    for name, value in (headers or {}).items():
        for one in value if isinstance(value, list) else [value]:
            lines.append(f"{name}: {one}")
    lines.append("Connection: close")
    if framing == "sized":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "short":
        lines.append(f"Content-Length: {len(body) + 100}")
        payload = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "bad-chunked":
        lines.append("Transfer-Encoding: chunked")
        payload = b"zz\r\n" + body
    else:  # close
        payload = body
    # Header text outside latin-1 goes out as UTF-8 bytes, as careless servers send it.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


class _RawHandler(socketserver.StreamRequestHandler):
    timeout = 10

    def handle(self):
        owner = self.server.owner
        try:
            request_line = self.rfile.readline(65537).decode("latin-1").rstrip("\r\n")
            if not request_line:
                return
            method, _, rest = request_line.partition(" ")
            path = rest.rsplit(" ", 1)[0]
            headers = {}
            while True:
                line = self.rfile.readline(65537).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            length = int(headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
        except (OSError, ValueError):
            return
        seen = Seen(method, path, headers, body)
        try:
            raw = owner._answer(seen)
        except Exception as exc:  # a bug in the test's own answer: make it loud, not a silent hang-up
            owner.errors.append(exc)
            raw = http_response(599, repr(exc), {"Content-Type": "text/plain"})
        with contextlib.suppress(OSError):
            self.wfile.write(raw)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)


class _RawTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that gives up early is part of the game


class RawServer:
    """A loopback HTTP server whose answers are exact bytes, chosen per (method, path).

    ``route(method, path, raw_or_callable)``: the answer is bytes, or a callable taking the ``Seen``
    request and returning bytes. Unrouted requests get a 404. ``requests`` lists what arrived.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._routes = {}
        self._seen = []
        self.errors = []  # exceptions raised by the test's own answer callables
        self._httpd = _RawTCPServer(("127.0.0.1", 0), _RawHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path):
        return self.base_url + path

    def route(self, method, path, answer):
        with self._lock:
            self._routes[(method, path)] = answer

    def json(self, method, path, document, status=200, headers=None):
        body = json.dumps(document).encode("utf-8")
        self.route(method, path, http_response(status, body, {"Content-Type": "application/json", **(headers or {})}))

    def reset(self):
        assert not self.errors, f"an answer of the test server failed: {self.errors[0]!r}"
        with self._lock:
            self._routes.clear()
            self._seen.clear()

    def clear_requests(self):
        with self._lock:
            self._seen.clear()

    @property
    def requests(self):
        with self._lock:
            return list(self._seen)

    def _answer(self, seen):
        with self._lock:
            self._seen.append(seen)
            answer = self._routes.get((seen.method, seen.path.split("?", 1)[0]))
        if answer is None:
            return http_response(404, b"not found", {"Content-Type": "text/plain"})
        return answer(seen) if callable(answer) else answer

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


# --- strategies ----------------------------------------------------------------------------------


def one_in(n):
    """True about once in ``n`` draws (st.integers favours its bounds, so it cannot be used for odds)."""
    return st.sampled_from([False] * (n // 2) + [True] + [False] * (n - 1 - n // 2))


def marked(alphabet=TOKEN68, min_size=0, max_size=24):
    """A token or secret carrying the marker, with token68 characters around it."""
    return st.builds(
        lambda before, after: before + MARKER + after,
        st.text(alphabet=alphabet, max_size=4),
        st.text(alphabet=alphabet, min_size=min_size, max_size=max_size),
    )


HUGE_INT = 10**400  # a JSON integer that does not fit a float


def dumps(value):
    """JSON as a lenient server writes it (NaN and Infinity literals included)."""
    return json.dumps(value, allow_nan=True)


def nested(depth):
    return ("[" * depth + "]" * depth).encode()


def html_page(text):
    return (
        "<!doctype html><html><head><title>Error</title></head><body><h1>Something went wrong</h1>"
        f"<pre>{text}</pre></body></html>"
    )

