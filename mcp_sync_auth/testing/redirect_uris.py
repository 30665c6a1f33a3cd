"""Redirect URI rules: what may be registered, and when a requested URI matches a registered one.

MCP allows only HTTPS and loopback redirect URIs. Matching is exact string comparison, except
that a loopback URI matches on any port (RFC 8252 §7.3: native apps pick a free port at run time).
Parsing is done by hand so that nothing is normalised behind our back.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["LOOPBACK_HOSTS", "is_loopback", "redirect_uri_matches", "redirect_uri_problem"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_PORT = 65535


class _Parts(NamedTuple):
    scheme: str
    userinfo: bool
    host: str
    port: str
    rest: str
    """Everything after the authority: path, query and fragment, untouched."""


def _split(uri: str) -> Optional[_Parts]:
    scheme, sep, after = uri.partition("://")
    if not sep or not scheme:
        return None
    end = len(after)
    for delimiter in "/?#":
        found = after.find(delimiter)
        if found >= 0:
            end = min(end, found)
    netloc, rest = after[:end], after[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            return None
        host, tail = hostport[: close + 1], hostport[close + 1 :]
        if tail and not tail.startswith(":"):
            return None
        port = tail[1:]
    else:
        host, _, port = hostport.partition(":")
    if port and not (port.isascii() and port.isdigit() and int(port) <= MAX_PORT):
        return None
    return _Parts(scheme, bool(at or userinfo), host, port, rest)


def redirect_uri_problem(uri: object) -> Optional[str]:
    """Why ``uri`` may not be registered as a redirect URI (None when it may)."""
    if not isinstance(uri, str) or not uri:
        return "redirect URIs must be non-empty strings"
    if not uri.isascii() or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in uri):
        return "redirect URIs must not contain spaces, control or non-ASCII characters"
    parts = _split(uri)
    if parts is None or not parts.host:
        return "redirect URIs must be absolute URIs with a host and a valid port"
    if parts.scheme not in ("https", "http"):
        return "redirect URIs must use https, or http on a loopback host"
    if "#" in uri:
        return "redirect URIs must not contain a fragment"
    if parts.userinfo:
        return "redirect URIs must not contain user information"
    if parts.scheme == "http" and parts.host not in LOOPBACK_HOSTS:
        return "http redirect URIs are allowed only on 127.0.0.1, localhost or [::1]"
    return None


def is_loopback(uri: str) -> bool:
    parts = _split(uri)
    return parts is not None and parts.host in LOOPBACK_HOSTS


def redirect_uri_matches(registered: str, requested: str, *, any_loopback_port: bool = True) -> bool:
    """Exact match, or for a loopback registration the same URI on any port (unless
    ``any_loopback_port`` is False)."""
    if registered == requested:
        return True
    if "#" in requested or not any_loopback_port:
        return False
    mine, theirs = _split(registered), _split(requested)
    if mine is None or theirs is None or mine.host not in LOOPBACK_HOSTS or theirs.userinfo:
        return False
    return (mine.scheme, mine.host, mine.rest) == (theirs.scheme, theirs.host, theirs.rest)
