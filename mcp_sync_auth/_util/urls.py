"""URL rules: the canonical resource identifier, loopback detection, and the HTTPS requirement."""

from __future__ import annotations

import functools
import ipaddress
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


def canonical_resource(url: str) -> str:
    """The MCP server URL as a resource indicator (RFC 8707, MCP "canonical server URI").

    Lower-case scheme and host, no fragment, no trailing slash unless the path is only "/".
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"not an http(s) URL: {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError("the MCP server URL must not carry credentials")
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
