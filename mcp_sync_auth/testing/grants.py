"""The grants behind ``POST /token``: authorization_code, refresh_token, client_credentials, the
device grant (RFC 8628, when the server runs it) and the JWT bearer grant (RFC 7523 §2.1), which
takes a workload's token or an ID-JAG (``typ`` ``oauth-id-jag+jwt``, from a trusted identity
provider; its client must authenticate).

Each handler gets the authenticated client and the form parameters; the state does the work
under its lock. A client may use only the grant types it registered (``unauthorized_client``).
Only the JWT bearer grant may come with no client at all (a workload has no client_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Dict, Mapping, Optional

from .assertions import (
    GRANT_ASSERTION,
    AssertionRules,
    VerifiedAssertion,
    read_jwt,
    unverified_header,
    verify_assertion,
)
from .errors import OAuthError
from .id_jag import ID_JAG_ASSERTION, id_jag_terms, is_id_jag_typ
from .jwt_keys import PublicKey
from .metadata import ResourceOf, requested_resource
from .models import DEVICE_CODE_GRANT, JWT_BEARER_GRANT, ClientInfo, TokenGrant
from .scopes import grantable_scope, parse_scope
from .state import AuthState

__all__ = ["GrantHandler", "GrantRequest", "Grants"]


@dataclass(frozen=True)
class GrantRequest:
    """An authenticated token request handed to a grant handler.

    ``client`` is None only for a grant that allows requests without client authentication."""

    client: Optional[ClientInfo]
    params: Mapping[str, str]
    dpop_jkt: Optional[str] = None
    """The thumbprint of the request's DPoP proof key: the tokens are bound to it (RFC 9449)."""

    @property
    def authenticated(self) -> ClientInfo:
        """The client, for grants that always have one."""
        if self.client is None:
            raise OAuthError("invalid_client", "client authentication required")
        return self.client


GrantHandler = Callable[[GrantRequest], TokenGrant]


def _require_grant_type(client: ClientInfo, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"the client is not registered for the {grant_type} grant")


class Grants:
    """The grant table for a token endpoint that serves one protected resource."""

    def __init__(
        self,
        state: AuthState,
        *,
        resource: ResourceOf,
        audiences: Collection[str],
        id_jag_audiences: Collection[str] = (),
    ) -> None:
        self._state = state
        self._resource_of = resource
        self._audiences = tuple(audiences)
        self._id_jag_audiences = tuple(id_jag_audiences)

    def table(self) -> Dict[str, GrantHandler]:
        return {
            "authorization_code": self.authorization_code,
            "refresh_token": self.refresh_token,
            "client_credentials": self.client_credentials,
            JWT_BEARER_GRANT: self.jwt_bearer,
            DEVICE_CODE_GRANT: self.device_code,
        }

    def _resource(self, params: Mapping[str, str]) -> str:
        return requested_resource(self._state, self._resource_of, params)

    def authorization_code(self, request: GrantRequest) -> TokenGrant:
        client = request.authenticated
        _require_grant_type(client, "authorization_code")
        code = request.params.get("code")
        if code is None:
            raise OAuthError("invalid_request", "missing code")
        return self._state.exchange_code(
            client=client,
            code=code,
            redirect_uri=request.params.get("redirect_uri"),
            code_verifier=request.params.get("code_verifier"),
            resource=request.params.get("resource"),
            dpop_jkt=request.dpop_jkt,
        )

    def refresh_token(self, request: GrantRequest) -> TokenGrant:
        client = request.authenticated
        _require_grant_type(client, "refresh_token")
        refresh_token = request.params.get("refresh_token")
        if refresh_token is None:
            raise OAuthError("invalid_request", "missing refresh_token")
        return self._state.refresh(
            client_id=client.client_id,
            refresh_token=refresh_token,
            resource=request.params.get("resource"),
            scope=request.params.get("scope"),
            dpop_jkt=request.dpop_jkt,
        )

    def client_credentials(self, request: GrantRequest) -> TokenGrant:
        client = request.authenticated
        if not client.confidential:
            raise OAuthError("unauthorized_client", "client_credentials needs a confidential client")
        _require_grant_type(client, "client_credentials")
        resource = self._resource(request.params)
        options = self._state.options
        scope = grantable_scope(request.params.get("scope"), client.scope, options.scopes_supported)
        return self._state.client_credentials(client=client, resource=resource, scope=scope, dpop_jkt=request.dpop_jkt)

    def device_code(self, request: GrantRequest) -> TokenGrant:
        """RFC 8628 §3.4: a poll with the device code, by the client it was issued to."""
        if not self._state.options.device_authorization:
            raise OAuthError("unsupported_grant_type", "grant_type is not supported")
        client = request.authenticated
        _require_grant_type(client, DEVICE_CODE_GRANT)
        device_code = request.params.get("device_code")
        if device_code is None:
            raise OAuthError("invalid_request", "missing device_code")
        return self._state.device_code_grant(
            client=client, device_code=device_code, resource=request.params.get("resource"), dpop_jkt=request.dpop_jkt
        )

    def jwt_bearer(self, request: GrantRequest) -> TokenGrant:
        """RFC 7523 §2.1: an access token for a JWT from a trusted workload issuer (RFC 7523 §3)."""
        client = request.client
        if client is not None:
            _require_grant_type(client, JWT_BEARER_GRANT)
        token = request.params.get("assertion")
        if token is None:
            raise OAuthError("invalid_request", "missing assertion")
        if is_id_jag_typ(unverified_header(token, "typ")):
            return self._id_jag(request, token)
        resource = self._resource(request.params)
        registered = client.scope if client is not None else None
        scope = grantable_scope(request.params.get("scope"), registered, self._state.options.scopes_supported)
        verified = self._verified(
            token,
            GRANT_ASSERTION,
            self._state.workload_issuer_key,
            untrusted="the assertion's issuer is not trusted",
            audiences=self._audiences,
            whose="the trusted issuer's",
        )
        client_id = client.client_id if client is not None else None
        if not self._state.spend_assertion(JWT_BEARER_GRANT, client_id, verified):
            raise OAuthError("invalid_grant", "the assertion was already used (jti replay)")
        return self._state.jwt_bearer(
            client_id=client_id, assertion=verified, resource=resource, scope=scope, dpop_jkt=request.dpop_jkt
        )

    def _verified(
        self,
        token: str,
        rules: AssertionRules,
        key_of: Callable[[str], Optional[PublicKey]],
        *,
        untrusted: str,
        audiences: Collection[str],
        whose: str,
    ) -> VerifiedAssertion:
        """``token`` read by ``rules`` and verified with the key ``key_of`` gives for its ``iss``
        (``invalid_grant`` with ``untrusted`` when there is no ``iss`` or no key for it)."""
        jwt = read_jwt(token, rules)
        issuer = jwt.claim("iss")
        key = key_of(issuer) if issuer is not None else None
        if issuer is None or key is None:
            raise OAuthError("invalid_grant", untrusted)
        return verify_assertion(
            jwt, key, rules=rules, issuer=issuer, audiences=audiences, now=self._state.now(), whose=whose
        )

    def _id_jag(self, request: GrantRequest, token: str) -> TokenGrant:
        """An ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant §4.3): from a trusted identity
        provider, for this authorization server (its issuer, not the token endpoint), bound to the
        authenticated client and to this server's MCP resource; an access token only."""
        client = request.client
        if client is None or not client.confidential:
            raise OAuthError("invalid_client", "an ID-JAG needs client authentication")
        verified = self._verified(
            token,
            ID_JAG_ASSERTION,
            self._state.identity_provider_key,
            untrusted="the ID-JAG's issuer is not a trusted identity provider",
            audiences=self._id_jag_audiences,
            whose="the identity provider's",
        )
        terms = id_jag_terms(verified, client_id=client.client_id, resource_url=self._resource_of(self._state.options))
        resource = request.params.get("resource")
        if resource is not None and resource != terms.resource:
            raise OAuthError("invalid_target", "the resource parameter is not the ID-JAG's resource")
        requested = request.params.get("scope")
        if requested is not None and terms.scope is not None and not set(parse_scope(requested)) <= set(terms.scope):
            raise OAuthError("invalid_scope", "the requested scope exceeds the ID-JAG's scope")
        granted = requested if requested is not None else (" ".join(terms.scope) if terms.scope else None)
        scope = grantable_scope(granted, client.scope, self._state.options.scopes_supported)
        if not self._state.spend_assertion(JWT_BEARER_GRANT, client.client_id, verified):
            raise OAuthError("invalid_grant", "the ID-JAG was already used (jti replay)")
        return self._state.jwt_bearer(
            client_id=client.client_id,
            assertion=verified,
            resource=terms.resource,
            scope=scope,
            id_jag=True,
            dpop_jkt=request.dpop_jkt,
        )
