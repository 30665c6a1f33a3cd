"""POST /device_authorization (RFC 8628 §3.1, §3.2): a device code for an authenticated client.

The client authenticates as at the token endpoint, must be registered for the device grant, and
asks for a scope this server grants and for its one resource (RFC 8707), as the code flow does.
"""

from __future__ import annotations

from typing import Collection, Mapping

from ..errors import MissingExtra
from .client_auth import authenticate_client, claimed_client_id
from .errors import OAuthError
from .forms import TOKEN_MULTI_ERRORS, Pairs, form_pairs, to_params
from .http_types import NO_STORE, Request, Response, json_response
from .metadata import ResourceOf, requested_resource
from .models import DEVICE_CODE_GRANT
from .scopes import grantable_scope
from .state import AuthState
from .token_endpoint import error_response

__all__ = ["DeviceAuthorizationEndpoint"]


class DeviceAuthorizationEndpoint:
    """``verification_uri`` is where a person would enter the user code (tests decide with
    ``server.approve_device`` instead); ``audiences`` are the client assertion audiences."""

    def __init__(
        self, state: AuthState, *, resource: ResourceOf, audiences: Collection[str], verification_uri: str
    ) -> None:
        self._state = state
        self._resource_of = resource
        self._audiences = tuple(audiences)
        self._verification_uri = verification_uri

    def __call__(self, request: Request) -> Response:
        if not self._state.options.device_authorization:
            return json_response(404, {"error": "not_found"})
        pairs: Pairs = []
        params: Mapping[str, str] = {}
        try:
            try:
                pairs = form_pairs(request)
            finally:
                self._state.record_device_request({name: value for name, value in reversed(pairs)})
            params = to_params(pairs, TOKEN_MULTI_ERRORS)
            client = authenticate_client(request, params, self._state, audiences=self._audiences)
            assert client is not None  # no anonymous clients here
            if DEVICE_CODE_GRANT not in client.grant_types:
                raise OAuthError("unauthorized_client", "the client is not registered for the device grant")
            resource = self._resource(params)
            options = self._state.options
            scope = grantable_scope(params.get("scope"), client.scope, options.scopes_supported)
            answer = self._state.issue_device_code(
                client=client, resource=resource, scope=scope, verification_uri=self._verification_uri
            )
        except MissingExtra as exc:  # a client assertion to verify, and no PyJWT on this side
            return self._refused(request, params or dict(pairs), OAuthError("server_error", str(exc)))
        except OAuthError as exc:
            return self._refused(request, params or dict(pairs), exc)
        return json_response(200, answer, NO_STORE)

    def _resource(self, params: Mapping[str, str]) -> str:
        return requested_resource(self._state, self._resource_of, params)

    def _refused(self, request: Request, params: Mapping[str, str], error: OAuthError) -> Response:
        self._state.record_device_refusal(claimed_client_id(request, params), error)
        return error_response(error)
