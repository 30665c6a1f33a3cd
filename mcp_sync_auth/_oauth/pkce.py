"""The authorization request (PKCE, state, resource) and the checks on its response (state, RFC 9207 iss).

Pure functions over URLs: no network, no browser. :mod:`mcp_sync_auth._oauth.login` drives them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from typing import Optional, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from .._util.redact import clean_server_text
from .._util.urls import require_secure
from ..errors import (
    AuthorizationFailed,
    AuthorizationResponseIssuerMismatch,
    PKCENotSupported,
    StateMismatch,
)

PKCE_METHOD = "S256"


def make_code_verifier() -> str:
    """RFC 7636 §4.1: 43 to 128 unreserved characters; 64 random URL-safe ones here."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclasses.dataclass(frozen=True, repr=False)
class AuthorizationRequest:
    """Everything needed to check the response and redeem the code; never shown in a repr."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str
    issuer: str
    iss_required: bool
    resource: str
    scope: Optional[str]

    def __repr__(self) -> str:
        return f"AuthorizationRequest(issuer={self.issuer!r}, resource={self.resource!r}, scope={self.scope!r})"


def build_authorization_request(
    *,
    authorization_endpoint: Optional[str],
    issuer: str,
    code_challenge_methods: Optional[Sequence[str]],
    iss_parameter_supported: bool,
    client_id: str,
    redirect_uri: str,
    resource: str,
    scopes: Optional[Sequence[str]],
) -> AuthorizationRequest:
    # MCP: clients MUST verify PKCE support and refuse when the metadata does not list S256
    # (an absent code_challenge_methods_supported means "no PKCE").
    if not code_challenge_methods or PKCE_METHOD not in code_challenge_methods:
        raise PKCENotSupported(
            f"the authorization server {issuer} does not advertise PKCE with S256 "
            "(code_challenge_methods_supported); refusing to authorize without it"
        )
    if not authorization_endpoint:
        raise AuthorizationFailed(f"the authorization server {issuer} has no authorization endpoint")
    endpoint = require_secure(authorization_endpoint, "the authorization endpoint")
    verifier = make_code_verifier()
    state = secrets.token_urlsafe(32)
    scope = " ".join(scopes) if scopes else None
    params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", code_challenge(verifier)),
        ("code_challenge_method", PKCE_METHOD),
        ("state", state),
        ("resource", resource),
    ]
    if scope:
        params.append(("scope", scope))
    separator = "&" if urlsplit(endpoint).query else "?"
    return AuthorizationRequest(
        url=endpoint + separator + urlencode(params),
        state=state,
        code_verifier=verifier,
        redirect_uri=redirect_uri,
        issuer=issuer,
        iss_required=iss_parameter_supported,
        resource=resource,
        scope=scope,
    )


def code_from_redirect(request: AuthorizationRequest, redirect_url: str) -> str:
    """Check the redirect the browser (or a handler) came back with and return the code.

    Order matters: the issuer is checked first (RFC 9207 §2.4), because an error response from an
    unexpected issuer must not be acted on or shown; then ``state``; only then ``error`` and ``code``.
    """
    params = _single_valued_query(redirect_url)
    iss = params.get("iss")
    if iss is not None:
        # Simple string comparison: no case folding, no trailing-slash or port normalisation.
        if iss != request.issuer:
            raise AuthorizationResponseIssuerMismatch(
                f"the authorization response came from issuer {clean_server_text(iss)!r}, "
                f"expected {request.issuer!r}; ignoring it (possible mix-up attack)"
            )
    elif request.iss_required:
        raise AuthorizationResponseIssuerMismatch(
            f"the authorization server {request.issuer} promises an 'iss' parameter in its responses, "
            "but this response has none; ignoring it"
        )
    state = params.get("state")
    if state is None or not hmac.compare_digest(state.encode("utf-8"), request.state.encode("utf-8")):
        raise StateMismatch("the authorization response's state does not match the request; ignoring it")
    error = params.get("error")
    if error is not None:
        description = params.get("error_description", "")
        detail = clean_server_text(error) + (f": {clean_server_text(description)}" if description else "")
        raise AuthorizationFailed(
            f"the authorization server refused the login ({detail}); nothing was stored",
            error_code=clean_server_text(error),
        )
    code = params.get("code")
    if not code:
        raise AuthorizationFailed("the authorization response carries neither a code nor an error")
    return code


def _single_valued_query(url: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise AuthorizationFailed("the redirect URL cannot be parsed") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            # RFC 6749 §3.1: parameters MUST NOT be repeated; a repeated one smells of injection.
            raise AuthorizationFailed(f"the authorization response repeats the parameter {name!r}")
        params[name] = value
    return params
