"""The authorization endpoint, ``GET /authorize``, with automatic consent (no UI), or with a consent
page a person answers (``consent="page"``, :mod:`.consent_page`).

Until the client and its redirect URI are known to be good, errors are a 400 page: redirecting
to an unchecked URI would make this an open redirector (RFC 6749 §4.1.2.1). After that, every
answer is a 302 to the redirect URI carrying ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlencode

from .consent_page import CodeRequest, PendingAuthorization, PendingAuthorizations, consent_page
from .dpop import is_thumbprint
from .errors import OAuthError
from .forms import Pairs, decode_pairs, single_value, to_params
from .http_types import Request, Response, html_response
from .metadata import ResourceOf
from .models import ClientInfo
from .options import ServerOptions
from .pkce import S256, is_valid_challenge
from .redirect_uris import redirect_uri_matches
from .scopes import grantable_scope
from .state import AuthState

__all__ = ["WRONG_ISSUER_SUFFIX", "AuthorizationEndpoint"]

WRONG_ISSUER_SUFFIX = "/wrong-issuer"
"""``iss_mode="wrong"`` sends the issuer plus this: same origin, so only an exact comparison catches it."""

NO_STORE = (("Cache-Control", "no-store"),)
AUTHORIZE_MULTI_ERRORS = {"resource": "invalid_target"}


class _NoRedirect(OAuthError):
    """An error answered with a 400 page because the redirect URI cannot be trusted."""


def _first_values(query: str) -> Dict[str, str]:
    """What the client sent, leniently decoded for the audit (first value of each name)."""
    params: Dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        params.setdefault(name, value)
    return params


def _strict_pairs(query: str) -> Pairs:
    try:
        return decode_pairs(query)
    except OAuthError as exc:
        raise _NoRedirect(exc.error, exc.description) from None


def _registered_redirect_uri(client: ClientInfo, pairs: Pairs, options: ServerOptions) -> str:
    redirect_uri = _only(pairs, "redirect_uri")
    any_port = options.loopback_any_port
    if not any(
        redirect_uri_matches(registered, redirect_uri, any_loopback_port=any_port)
        for registered in client.redirect_uris
    ):
        raise _NoRedirect("invalid_redirect_uri", "redirect_uri is not registered for this client")
    return redirect_uri


def _error_reply(error: OAuthError) -> List[Tuple[str, str]]:
    return [("error", error.error), ("error_description", error.description)]


def _only(pairs: Pairs, name: str) -> str:
    value = single_value(pairs, name)
    if value is None:
        raise _NoRedirect("invalid_request", f"{name} is required, exactly once")
    return value


class AuthorizationEndpoint:
    def __init__(self, state: AuthState, *, issuer: str, resource: ResourceOf, pending: PendingAuthorizations) -> None:
        self._state = state
        self._issuer = issuer
        self._resource_of = resource
        self._pending = pending

    def __call__(self, request: Request) -> Response:
        self._state.record_authorization_request(_first_values(request.query))
        options = self._state.options  # one snapshot for the whole request
        client: Optional[ClientInfo] = None
        try:
            pairs = _strict_pairs(request.query)
            client = self._client(pairs)
            redirect_uri = _registered_redirect_uri(client, pairs, options)
        except _NoRedirect as exc:
            self._state.record_authorization_failure(client.client_id if client else None, exc)
            return html_response(400, f"Authorization request refused: {exc.description}", NO_STORE)
        state = single_value(pairs, "state")
        try:
            asked = self._check(client, pairs, options)
            if options.consent == "page":
                pending = self._pending.add(asked, client_name=client.client_name, state=state)
                return consent_page(pending, self._issuer)
            if not options.auto_consent:
                raise OAuthError("access_denied", "the resource owner denied the request")
        except OAuthError as exc:
            self._state.record_authorization_failure(client.client_id, exc)
            return self._redirect(redirect_uri, _error_reply(exc), state, options)
        return self._redirect(redirect_uri, [("code", self._issue(asked))], state, options)

    def decide(self, pending: PendingAuthorization, allowed: bool) -> Response:
        """The consent page's answer: a code, or ``access_denied``, sent back to the redirect URI."""
        options = self._state.options
        asked = pending.request
        if allowed:
            return self._redirect(asked.redirect_uri, [("code", self._issue(asked))], pending.state, options)
        refusal = OAuthError("access_denied", "the resource owner denied the request")
        self._state.record_authorization_failure(asked.client_id, refusal)
        return self._redirect(asked.redirect_uri, _error_reply(refusal), pending.state, options)

    def _issue(self, asked: CodeRequest) -> str:
        return self._state.issue_code(
            client_id=asked.client_id,
            redirect_uri=asked.redirect_uri,
            code_challenge=asked.code_challenge,
            resource=asked.resource,
            scope=asked.scope,
            dpop_jkt=asked.dpop_jkt,
        )

    def _client(self, pairs: Pairs) -> ClientInfo:
        client = self._state.get_client(_only(pairs, "client_id"))
        if client is None:
            raise _NoRedirect("invalid_client", "unknown client")
        return client

    def _check(self, client: ClientInfo, pairs: Pairs, options: ServerOptions) -> CodeRequest:
        """Check everything else, in RFC order; return what a code would be bound to, or raise the
        error to redirect."""
        params = to_params(pairs, AUTHORIZE_MULTI_ERRORS)
        response_type = params.get("response_type")
        if response_type is None:
            raise OAuthError("invalid_request", "response_type is required")
        if response_type != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code is supported")
        if "code" not in client.response_types:
            raise OAuthError("unauthorized_client", "the client is not registered for response_type=code")
        challenge = params.get("code_challenge")
        if challenge is None:
            raise OAuthError("invalid_request", "code_challenge is required (PKCE)")
        method = params.get("code_challenge_method")
        if method != S256:
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not is_valid_challenge(challenge):
            raise OAuthError("invalid_request", "malformed code_challenge")
        resource = self._resource(params.get("resource"), options)
        scope = grantable_scope(params.get("scope"), client.scope, options.scopes_supported)
        dpop_jkt = self._dpop_jkt(params.get("dpop_jkt"), options)
        return CodeRequest(
            client_id=client.client_id,
            redirect_uri=params["redirect_uri"],
            code_challenge=challenge,
            resource=resource,
            scope=scope,
            dpop_jkt=dpop_jkt,
        )

    @staticmethod
    def _dpop_jkt(value: Optional[str], options: ServerOptions) -> Optional[str]:
        """RFC 9449 §10: the thumbprint of the key the code exchange must prove (ignored, as any
        unknown parameter is, while DPoP is off)."""
        if value is None or options.dpop is None:
            return None
        if not is_thumbprint(value):
            raise OAuthError("invalid_request", "dpop_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)")
        return value

    def _resource(self, resource: Optional[str], options: ServerOptions) -> str:
        expected = self._resource_of(options)
        if resource is None:
            if self._state.require_resource:
                raise OAuthError("invalid_target", "the resource parameter is required")
            return expected
        if resource != expected:
            raise OAuthError("invalid_target", "unknown resource")
        return resource

    def _redirect(
        self, redirect_uri: str, reply: List[Tuple[str, str]], state: Optional[str], options: ServerOptions
    ) -> Response:
        if state is not None:
            reply.append(("state", state))
        iss = self._iss(options.iss_mode)
        if iss is not None:
            reply.append(("iss", iss))
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urlencode(reply)
        return Response(302, b"", (("Location", location), *NO_STORE))

    def _iss(self, mode: str) -> Optional[str]:
        if mode == "missing":
            return None
        if mode == "wrong":
            return self._issuer + WRONG_ISSUER_SUFFIX
        if mode == "trailing-slash":
            return self._issuer + "/"
        return self._issuer
