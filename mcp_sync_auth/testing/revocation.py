"""POST /revoke: token revocation (RFC 7009), with the client's own authentication and an audit of each call.

The endpoint authenticates the client exactly as the token endpoint does (a secret, or a
``private_key_jwt`` assertion whose ``aud`` names the issuer or the token endpoint), then revokes:
a refresh token ends its whole chain, an access token is refused at ``/mcp`` from then on. An
unknown token is answered 200 too (RFC 7009 §2.2). Tests read :attr:`RevocationEndpoint.log`
(through ``StrictAuthServer.revocations``) and make it answer 503 with :meth:`fail_next`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Collection, List, Optional, Tuple

from .client_auth import authenticate_client, claimed_client_id
from .errors import OAuthError
from .forms import form_pairs, single_value, to_params
from .http_types import NO_STORE, Request, Response, json_response
from .state import AuthState
from .token_endpoint import error_response

__all__ = ["TOKEN_TYPE_HINTS", "Revocation", "RevocationEndpoint"]

TOKEN_TYPE_HINTS = ("refresh_token", "access_token")


@dataclass(frozen=True)
class Revocation:
    """One revocation request the server answered 200: what the token turned out to be
    ("refresh_token", "access_token", "unknown", or "not_owned": another client's, left alone),
    the authenticated client, and the ``token_type_hint`` it sent (None when it sent none)."""

    kind: str
    client_id: Optional[str]
    token_type_hint: Optional[str]


class RevocationEndpoint:
    """The revocation endpoint of one server."""

    def __init__(self, state: AuthState, *, audiences: Callable[[], Collection[str]]) -> None:
        self._state = state
        self._audiences = audiences  # read per request: the server's URL is known once it listens
        self._guard = threading.Lock()
        self._log: List[Revocation] = []
        self._failures = 0
        self._refused = 0

    @property
    def log(self) -> Tuple[Revocation, ...]:
        with self._guard:
            return tuple(self._log)

    @property
    def refused(self) -> int:
        """Requests answered with an error (a fault, a client that failed authentication, a bad form)."""
        with self._guard:
            return self._refused

    def fail_next(self, count: int = 1) -> None:
        """Answer the next ``count`` revocation requests 503 without looking at them."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._guard:
            self._failures += count

    def clear(self) -> None:
        with self._guard:
            self._log.clear()
            self._failures = 0
            self._refused = 0

    def __call__(self, request: Request) -> Response:
        if not self._state.options.revocation:
            return json_response(404, {"error": "not_found"})
        with self._guard:
            failing = self._failures > 0
            if failing:
                self._failures -= 1
                self._refused += 1
        if failing:
            payload = {"error": "temporarily_unavailable", "error_description": "revocation is down (test fault)"}
            return json_response(503, payload, NO_STORE)
        try:
            entry = self._revoke(request)
        except OAuthError as exc:
            with self._guard:
                self._refused += 1
            return error_response(exc)
        with self._guard:
            self._log.append(entry)
        return Response(200, b"", NO_STORE)

    def _revoke(self, request: Request) -> Revocation:
        pairs = form_pairs(request)
        params = to_params(pairs, {})
        token = single_value(pairs, "token")
        if token is None:
            raise OAuthError("invalid_request", "missing token")
        hint = params.get("token_type_hint")
        # RFC 7009 §2.2.1: a hint the server does not know is unsupported_token_type.
        if hint is not None and hint not in TOKEN_TYPE_HINTS:
            raise OAuthError("unsupported_token_type", "token_type_hint must be refresh_token or access_token")
        client = authenticate_client(request, params, self._state, audiences=self._audiences())
        client_id = client.client_id if client is not None else claimed_client_id(request, params)
        kind = self._state.revoke_token(token, client_id, hint)
        return Revocation(kind, client_id, hint)
