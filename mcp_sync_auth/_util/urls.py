"""URL rules: the canonical resource identifier, loopback detection, and the HTTPS requirement."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import urllib3

from ..errors import ConfigurationError, InsecureTransportError

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Everything between the scheme and the last "@": where a password may be, however the text parses
# (a password may contain "/" or "#"). Hiding too much of a refused URL is fine; showing a password is not.
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?.*@", re.DOTALL)


def shown_url(url: str) -> str:
    """A URL given to us, as a message may quote it: a ``user:password@`` part is never shown.
    Only for URLs that are refused or may carry credentials (it may hide more than the userinfo)."""
    return repr(_USERINFO.sub(r"\1***@", url))


def checked_server_url(url: object, what: str = "the MCP server URL") -> str:
    """``url`` without surrounding blanks, if it can name a server: an http(s) URL with a host, and
    neither credentials nor a fragment (RFC 8707 §2: a resource indicator has none, and dropping one
    silently would make a typo look like success). ConfigurationError otherwise; the message never
    contains a password."""
    if not isinstance(url, str):
        raise ConfigurationError(f"{what} must be a string, not {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ConfigurationError(f"{what} is empty")
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        _ = parts.port  # a port out of range or not a number raises here
    except ValueError:
        raise ConfigurationError(f"{what} is not a valid URL: {shown_url(text)}") from None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        raise ConfigurationError(f"{what} is not an http(s) URL: {shown_url(text)}")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{what} must not carry credentials (user:password@): {shown_url(text)}")
    if "#" in text:
        raise ConfigurationError(f"{what} must not have a fragment (#...): {shown_url(text)}")
    return text


def canonical_resource(url: str) -> str:
    """The MCP server URL as a resource indicator (RFC 8707, MCP "canonical server URI").

    Lower-case scheme and host, no trailing slash unless the path is only "/". A URL that cannot be
    one (see :func:`checked_server_url`) raises ConfigurationError.
    """
    parts = urlsplit(checked_server_url(url))
    assert parts.hostname is not None
    netloc = parts.hostname.lower()
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    path = parts.path
    if path.endswith("/") and path != "/":
        path = path.rstrip("/")
    if path == "/":
        path = ""
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


@functools.lru_cache(maxsize=256)
def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in: the unit a bearer token may be sent to.

    Cached: it runs on every request, and a program talks to few URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _host_as_requests_sees_it(url: str) -> Optional[str]:
    try:
        host = urllib3.util.parse_url(url).host
    except (ValueError, urllib3.exceptions.LocationParseError):
        return None
    return host.strip("[]").lower() if host else None


def require_secure(url: str, what: str) -> str:
    """HTTPS, or plain HTTP to a loopback host; anything else is refused before a byte is sent.

    The host is the one ``requests`` will connect to: a URL that two parsers read differently
    (``http://evil\\@127.0.0.1/``), or that carries credentials, is refused outright."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError as exc:
        raise InsecureTransportError(f"{what} is not a valid URL") from exc
    if "\\" in url or has_credentials or not hostname or _host_as_requests_sees_it(url) != hostname.lower():
        raise InsecureTransportError(f"{what} must be a plain http(s) URL without credentials: {url!r}")
    scheme = parts.scheme.lower()
    if scheme == "https":
        return url
    if scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return url
    raise InsecureTransportError(
        f"{what} must use https:// (plain http:// is allowed only for loopback hosts): {url!r}"
    )
