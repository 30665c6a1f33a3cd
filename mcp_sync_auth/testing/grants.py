"""The grants behind ``POST /token``: authorization_code, refresh_token and client_credentials.

Each handler gets an authenticated client and the form parameters; the state does the work
under its lock. A client may use only the grant types it registered (``unauthorized_client``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping

from .errors import OAuthError
from .metadata import ResourceOf
from .models import ClientInfo, TokenGrant
from .scopes import grantable_scope
from .state import AuthState

__all__ = ["GrantHandler", "GrantRequest", "Grants"]


@dataclass(frozen=True)
class GrantRequest:
    """An authenticated token request handed to a grant handler."""

    client: ClientInfo
    params: Mapping[str, str]


GrantHandler = Callable[[GrantRequest], TokenGrant]


def _require_grant_type(client: ClientInfo, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"the client is not registered for the {grant_type} grant")


class Grants:
    """The grant table for a token endpoint that serves one protected resource."""

    def __init__(self, state: AuthState, *, resource: ResourceOf) -> None:
        self._state = state
        self._resource_of = resource

    def table(self) -> Dict[str, GrantHandler]:
        return {
            "authorization_code": self.authorization_code,
            "refresh_token": self.refresh_token,
            "client_credentials": self.client_credentials,
        }

    def authorization_code(self, request: GrantRequest) -> TokenGrant:
        _require_grant_type(request.client, "authorization_code")
        code = request.params.get("code")
        if code is None:
            raise OAuthError("invalid_request", "missing code")
        return self._state.exchange_code(
            client=request.client,
            code=code,
            redirect_uri=request.params.get("redirect_uri"),
            code_verifier=request.params.get("code_verifier"),
            resource=request.params.get("resource"),
        )

    def refresh_token(self, request: GrantRequest) -> TokenGrant:
        _require_grant_type(request.client, "refresh_token")
        refresh_token = request.params.get("refresh_token")
        if refresh_token is None:
            raise OAuthError("invalid_request", "missing refresh_token")
        return self._state.refresh(
            client_id=request.client.client_id,
            refresh_token=refresh_token,
            resource=request.params.get("resource"),
            scope=request.params.get("scope"),
        )

    def client_credentials(self, request: GrantRequest) -> TokenGrant:
        client = request.client
        if not client.confidential:
            raise OAuthError("unauthorized_client", "client_credentials needs a confidential client")
        _require_grant_type(client, "client_credentials")
        options = self._state.options
        expected = self._resource_of(options)
        resource = request.params.get("resource")
        if resource is None:
            if self._state.require_resource:
                raise OAuthError("invalid_target", "the resource parameter is required")
            resource = expected
        elif resource != expected:
            raise OAuthError("invalid_target", "unknown resource")
        scope = grantable_scope(request.params.get("scope"), client.scope, options.scopes_supported)
        return self._state.client_credentials(client=client, resource=resource, scope=scope)
