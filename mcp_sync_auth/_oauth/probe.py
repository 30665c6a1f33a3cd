"""Asking the MCP server URL itself whether it is a protected resource, before anyone logs in.

Used only when neither well-known URL has protected resource metadata for the URL and no 401 of it
started the login. The 2025-03-26 fallback (authorization server at the origin) would then be a guess:
a mistyped path (``/mpc`` for ``/mcp``) would cost a registration and a consent screen before the
token endpoint refused the resource. One unauthenticated request settles it: a protected MCP
endpoint answers 401 (often with the ``resource_metadata`` its own documents are at).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import requests

from .._util.redact import clean_server_text
from .._util.sessions import SessionSource, no_auth
from .._util.timeouts import Timeouts
from ..errors import ChallengeError, DiscoveryConnectionError, DiscoveryError, ResourceMismatch
from .challenge import BearerChallenge, bearer_challenge

# A JSON-RPC request every MCP server knows and that changes nothing: no session is opened.
_PING = b'{"jsonrpc":"2.0","id":"mcp-sync-auth-probe","method":"ping"}'
_HEADERS: dict[str, Optional[str]] = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "Authorization": None,  # drop a default of the Session: no token goes out before discovery
}
# Statuses that say "authorization needed here": 401 (RFC 6750), and 403 from servers that use it
# for a missing token.
PROTECTED = (401, 403)


@dataclasses.dataclass(frozen=True)
class ProbeAnswer:
    """The status of the unauthenticated request, its Bearer challenge, and where a 3xx pointed."""

    status: int
    challenge: Optional[BearerChallenge]
    location: Optional[str] = None

    @property
    def protected(self) -> bool:
        return self.status in PROTECTED


def probe(http: SessionSource, url: str, timeout: Timeouts) -> ProbeAnswer:
    """POST an unauthenticated ``ping`` to ``url``. Redirects are not followed and the body is not
    read. Raises DiscoveryError when the server cannot be reached or fails (5xx)."""
    try:
        response = http.request(
            "POST",
            url,
            failure=DiscoveryConnectionError,
            details={"url": url},
            data=_PING,
            headers=_HEADERS,
            timeout=timeout.for_requests,
            allow_redirects=False,
            stream=True,
            auth=no_auth,
        )
    except DiscoveryConnectionError:
        raise
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryError(f"could not reach the MCP server {url!r}: {type(exc).__name__}", url=url) from exc
    try:
        status = response.status_code
        if status >= 500:
            raise DiscoveryError(f"the MCP server {url!r} answered HTTP {status}", url=url)
        try:
            challenge = bearer_challenge(response) if status in PROTECTED else None
        except ChallengeError:
            challenge = None  # a malformed challenge still says "protected"; it names no metadata
        location = response.headers.get("Location") if 300 <= status < 400 else None
    finally:
        response.close()
    return ProbeAnswer(status, challenge, clean_server_text(location) if location else None)


def not_a_resource(url: str, answer: ProbeAnswer, tried: tuple[str, ...]) -> ResourceMismatch:
    """The error for a URL that neither metadata nor the server itself calls a protected resource."""
    said = f"HTTP {answer.status}" + (f", a redirect to {answer.location!r}" if answer.location else "")
    return ResourceMismatch(
        f"{url!r} is not a protected MCP endpoint: it answered an unauthenticated request with {said}, "
        f"and no protected resource metadata describes it (none at {', '.join(tried)}). "
        "Check the URL; nothing was registered and no login was started",
        url=url,
        expected=url,
        actual=None,
    )


__all__ = ["PROTECTED", "ProbeAnswer", "not_a_resource", "probe"]
