"""A consent page a person (or a headless browser) answers: ``StrictAuthServer(consent="page")``.

``GET /authorize`` checks the request as always, then, instead of consenting by itself, keeps it as a
pending authorization and answers a small HTML page with Allow and Deny. The page's form posts the
pending request's id and a nonce that only that page carries to ``POST /authorize/consent``; each
pending request is answered once. Allow redirects with ``code``, Deny with ``error=access_denied``
(RFC 6749 §4.1.2.1), both with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import dataclasses
import hmac
import html
import secrets
import threading
from typing import Callable, Dict, Optional, Tuple

from .errors import OAuthError
from .forms import decode_pairs, single_value
from .http_types import Request, Response, html_response

__all__ = [
    "CONSENT_MODES",
    "CONSENT_PATH",
    "PENDING_TTL",
    "CodeRequest",
    "ConsentEndpoint",
    "PendingAuthorization",
    "PendingAuthorizations",
    "consent_page",
]

CONSENT_PATH = "/authorize/consent"
CONSENT_MODES = ("auto", "page")
"""``auto``: ``/authorize`` consents (or, with ``auto_consent=False``, denies) by itself; ``page``: a
person answers a consent page."""
PENDING_TTL = 600.0
"""Seconds a consent page can be answered, by the server's clock."""

# The page must not be framed (clickjacking, RFC 6749 §10.13), cached or leak its URL. (No CSP
# form-action: browsers apply it to the redirect after the post too, which goes to the client.)
PAGE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)


@dataclasses.dataclass(frozen=True)
class CodeRequest:
    """A checked authorization request: what its code will be bound to."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    resource: str
    scope: Tuple[str, ...]
    dpop_jkt: Optional[str]


@dataclasses.dataclass(frozen=True, repr=False)
class PendingAuthorization:
    """A checked authorization request waiting for the person's answer."""

    request_id: str
    nonce: str
    request: CodeRequest
    client_name: Optional[str]
    state: Optional[str]
    expires_at: float

    def __repr__(self) -> str:
        return f"PendingAuthorization(client_id={self.request.client_id!r}, scope={self.request.scope!r})"


class PendingAuthorizations:
    """The consent pages shown and not answered yet; thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Dict[str, PendingAuthorization] = {}

    def add(self, request: CodeRequest, *, client_name: Optional[str], state: Optional[str]) -> PendingAuthorization:
        pending = PendingAuthorization(
            request_id=secrets.token_urlsafe(16),
            nonce=secrets.token_urlsafe(24),
            request=request,
            client_name=client_name,
            state=state,
            expires_at=self._clock() + PENDING_TTL,
        )
        with self._lock:
            self._pending[pending.request_id] = pending
        return pending

    def take(self, request_id: str, nonce: str) -> Optional[PendingAuthorization]:
        """The pending request, removed, when the nonce is its own and it has not expired. A wrong
        nonce leaves it waiting: a forged post must not cancel the person's login."""
        with self._lock:
            pending = self._pending.get(request_id)
            if pending is None or not hmac.compare_digest(pending.nonce.encode(), nonce.encode()):
                return None
            del self._pending[request_id]
        return pending if pending.expires_at > self._clock() else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def consent_page(pending: PendingAuthorization, issuer: str) -> Response:
    """The page: who asks, for what, and the two buttons."""
    asked = pending.request
    who = pending.client_name or asked.client_id
    scopes = "".join(f"<li><code>{_escape(scope)}</code></li>" for scope in asked.scope) or "<li>(no scope)</li>"
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access?</title>
<style>
body {{ font-family: sans-serif; margin: 3em auto; max-width: 36em; line-height: 1.5; }}
button {{ font-size: 1.1em; padding: .4em 1.4em; margin-right: 1em; }}
.who {{ color: #555; font-size: .9em; }}
</style></head>
<body>
<h1>Allow access?</h1>
<p><strong>{_escape(who)}</strong> asks to use <code>{_escape(asked.resource)}</code> on your behalf.</p>
<p>It asks for these scopes:</p>
<ul>{scopes}</ul>
<p class="who">Authorization server: {_escape(issuer)}<br>After you answer, your browser goes back to
<code>{_escape(asked.redirect_uri)}</code>.</p>
<form method="post" action="{CONSENT_PATH}">
<input type="hidden" name="request_id" value="{_escape(pending.request_id)}">
<input type="hidden" name="nonce" value="{_escape(pending.nonce)}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
</body></html>
"""
    return Response(200, body.encode("utf-8"), (("Content-Type", "text/html; charset=utf-8"), *PAGE_HEADERS))


Decide = Callable[[PendingAuthorization, bool], Response]
"""(the pending request, allowed?) -> the redirect back to the client."""


class ConsentEndpoint:
    """``POST /authorize/consent``: the page's answer."""

    def __init__(self, pending: PendingAuthorizations, decide: Decide) -> None:
        self._pending = pending
        self._decide = decide

    def __call__(self, request: Request) -> Response:
        try:
            pairs = decode_pairs(request.body.decode("ascii"))
        except (UnicodeDecodeError, OAuthError):
            return html_response(400, "Consent refused: malformed form", PAGE_HEADERS)
        request_id, nonce = single_value(pairs, "request_id"), single_value(pairs, "nonce")
        decision = single_value(pairs, "decision")
        if request_id is None or nonce is None or decision not in ("allow", "deny"):
            return html_response(400, "Consent refused: request_id, nonce and decision are required", PAGE_HEADERS)
        pending = self._pending.take(request_id, nonce)
        if pending is None:
            # Unknown, answered already, forged or expired: never a redirect (nothing trusted says where).
            return html_response(400, "This consent page has expired or was already answered", PAGE_HEADERS)
        return self._decide(pending, decision == "allow")
