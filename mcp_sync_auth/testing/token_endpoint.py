"""POST /token: form parsing, client authentication, grant dispatch and faults (grants live in grants.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Collection, Dict, Mapping, Optional, Tuple

from ..errors import MissingExtra
from .client_auth import authenticate_client, claimed_client_id
from .dpop_gate import DpopGate
from .errors import OAuthError
from .faults import Fault
from .forms import TOKEN_MULTI_ERRORS, Pairs, form_pairs, single_value, to_params
from .grants import GrantHandler, GrantRequest, Grants
from .http_types import NO_STORE, Request, Response, html_response, json_response
from .metadata import ResourceOf
from .models import JWT_BEARER_GRANT
from .options import ServerOptions
from .state import AuthState

__all__ = ["MALFORMED_BODY", "GrantHandler", "GrantRequest", "TokenEndpoint"]

MALFORMED_BODY = b'{"token_type": "Bearer", "access_tok'
"""Body of a MALFORMED_200_AFTER answer: truncated JSON, served as application/json."""


def error_response(error: OAuthError) -> Response:
    headers: Tuple[Tuple[str, str], ...] = NO_STORE
    if error.basic_challenge:
        headers = (*headers, ("WWW-Authenticate", 'Basic realm="token", charset="UTF-8"'))
    payload = {"error": error.error, "error_description": error.description}
    return json_response(error.status, payload, headers)


class TokenEndpoint:
    """The token endpoint. Grants live in a table: add one with :meth:`add_grant`.

    ``audiences`` are the ``aud`` values a JWT assertion (client assertion or JWT bearer grant) may
    name: the issuer (with and without a trailing slash) and the token endpoint URL.
    ``id_jag_audiences`` are those an ID-JAG may name: the issuer only. ``url`` is the endpoint's own
    URL, which a DPoP proof's ``htu`` must name (RFC 9449).
    """

    def __init__(
        self,
        state: AuthState,
        *,
        fault_delay: float,
        resource: ResourceOf,
        audiences: Collection[str],
        id_jag_audiences: Collection[str] = (),
        url: str,
    ) -> None:
        self._state = state
        self._fault_delay = fault_delay
        self._audiences = tuple(audiences)
        self._dpop = DpopGate(state, place="token", url=url, who="authorization server")
        self._grants: Dict[str, GrantHandler] = Grants(
            state, resource=resource, audiences=self._audiences, id_jag_audiences=id_jag_audiences
        ).table()

    def add_grant(self, grant_type: str, handler: GrantHandler) -> None:
        self._grants[grant_type] = handler

    def __call__(self, request: Request) -> Response:
        self._state.wait_at_door()
        fault = self._state.begin_token_request()
        if fault is Fault.HTTP_500_BEFORE:
            return html_response(500, "500 Internal Server Error")
        if fault is Fault.RESET_BEFORE:
            return Response.connection_reset()
        response = self._process(request)
        if fault is Fault.SLOW_AFTER:
            return replace(response, delay=self._fault_delay)
        if fault is Fault.DRIP_AFTER:
            return replace(response, drip=self._fault_delay)
        if fault is Fault.RESET_AFTER:
            return Response.connection_reset()
        if fault is Fault.MALFORMED_200_AFTER:
            return Response(200, MALFORMED_BODY, (("Content-Type", "application/json"), *NO_STORE))
        return response

    def _process(self, request: Request) -> Response:
        options = self._state.options  # the DPoP knobs, read once for the request and its answer
        return self._dpop.stamp(self._grant(request, options), options)

    def _grant(self, request: Request, options: ServerOptions) -> Response:
        grant_type: Optional[str] = None
        pairs: Pairs = []
        params: Mapping[str, str] = {}
        try:
            try:
                pairs = form_pairs(request)
            finally:
                grant_type = single_value(pairs, "grant_type")
                presented = single_value(pairs, "refresh_token") if grant_type == "refresh_token" else None
                self._state.record_grant_request(grant_type, presented)
            params = to_params(pairs, TOKEN_MULTI_ERRORS)
            if grant_type is None:
                raise OAuthError("invalid_request", "missing grant_type")
            handler = self._grants.get(grant_type)
            if handler is None:
                raise OAuthError("unsupported_grant_type", "grant_type is not supported")
            # The proof first: a use_dpop_nonce answer should not spend the client's assertion.
            dpop_jkt = self._dpop.token_request(request, options, claimed_client_id(request, params))
            anonymous = grant_type == JWT_BEARER_GRANT and options.anonymous_jwt_bearer
            client = authenticate_client(
                request, params, self._state, audiences=self._audiences, allow_anonymous=anonymous
            )
            grant = handler(GrantRequest(client, params, dpop_jkt=dpop_jkt))
        except MissingExtra as exc:  # a JWT to verify, and no PyJWT on this side
            return self._failed(request, grant_type, pairs, params, OAuthError("server_error", str(exc)))
        except OAuthError as exc:
            return self._failed(request, grant_type, pairs, params, exc)
        return json_response(200, grant.to_response(), NO_STORE)

    def _failed(
        self, request: Request, grant_type: Optional[str], pairs: Pairs, params: Mapping[str, str], exc: OAuthError
    ) -> Response:
        if not exc.audited:
            claimed = claimed_client_id(request, params or dict(pairs))
            self._state.record_grant_failure(grant_type, claimed, exc)
        return error_response(exc)
