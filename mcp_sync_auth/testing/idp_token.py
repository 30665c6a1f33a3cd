"""The identity provider's ``POST /token``: RFC 8693 token exchange of an ID token it issued for an
ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant §4.3), and its metadata documents.

Client authentication is the strict server's own (``client_secret_basic``, ``client_secret_post``,
``private_key_jwt``). The subject token must be an ID token this provider signed, unexpired, whose
``aud`` names the authenticated client; ``audience`` must be an authorization server the client has an
id at; ``resource`` is required (as the MCP conformance suite's identity provider requires it).
Errors follow RFC 6749 §5.2 and RFC 8693 §2.2.2, and no description quotes a token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

from ..errors import MissingExtra
from .assertions import AssertionRules, read_jwt, unverified_header, verify_assertion
from .audit import fingerprint
from .client_auth import authenticate_client, claimed_client_id
from .errors import OAuthError
from .forms import TOKEN_MULTI_ERRORS, form_pairs, to_params
from .http_types import NO_STORE, Request, Response, json_response
from .id_jag import ID_JAG_TOKEN_TYPE, ID_JAG_TYP, ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, is_id_jag_typ
from .idp_state import IDP_AUTH_METHODS, IdpState
from .jwt_keys import ALGORITHMS, PublicKey
from .jwt_signer import JwtSigner
from .models import ClientInfo
from .scopes import parse_scope
from .token_endpoint import error_response

__all__ = ["ID_TOKEN_ASSERTION", "IdpEndpoints", "IdpUrls", "id_jag_claims"]

ID_TOKEN_ASSERTION = AssertionRules(
    "invalid_grant", "ID token", require_iat=True, max_lifetime=None, audience="the authenticated client"
)


@dataclass(frozen=True)
class IdpUrls:
    issuer: str
    token_endpoint: str
    jwks_uri: str


def id_jag_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    client_id: str,
    resource: str,
    scope: Optional[str],
    issued_at: int,
    lifetime: float,
    jti: Optional[str],
) -> Dict[str, Any]:
    """The claims of an ID-JAG (draft §3): ``client_id`` is the client's id at the authorization server
    ``audience``; ``scope`` only when one was asked for."""
    claims: Dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "client_id": client_id,
        "resource": resource,
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "iat": issued_at,
        "exp": issued_at + int(lifetime),
    }
    if scope is not None:
        claims["scope"] = scope
    return claims


def _resource_problem(resource: str) -> Optional[str]:
    """Why ``resource`` is no RFC 8707 resource indicator (absolute URI, no fragment), or None."""
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc:
        return "the resource must be an absolute URI"
    if "#" in resource:
        return "the resource must not have a fragment"
    return None


def _required(params: Mapping[str, str], name: str, what: str = "") -> str:
    value = params.get(name)
    if value is None:
        raise OAuthError("invalid_request", f"the {name} parameter is required{what}")
    return value


def _exact(params: Mapping[str, str], name: str, expected: str) -> None:
    if _required(params, name) != expected:
        raise OAuthError("invalid_request", f"{name} must be {expected}")


class IdpEndpoints:
    """The identity provider's routes: token exchange, metadata and its JWK Set."""

    def __init__(
        self, state: IdpState, urls: IdpUrls, *, signer: JwtSigner, key: PublicKey, id_jag_lifetime: float
    ) -> None:
        self._state = state
        self._urls = urls
        self._signer = signer
        self._key = key
        self._lifetime = id_jag_lifetime
        self._audiences = (urls.issuer, urls.issuer + "/", urls.token_endpoint)

    # ---------------------------------------------------------------- metadata

    def metadata_document(self) -> Dict[str, Any]:
        urls = self._urls
        return {
            "issuer": urls.issuer,
            "token_endpoint": urls.token_endpoint,
            "jwks_uri": urls.jwks_uri,
            "grant_types_supported": [TOKEN_EXCHANGE_GRANT],
            "token_endpoint_auth_methods_supported": list(IDP_AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "identity_chaining_requested_token_types_supported": [ID_JAG_TOKEN_TYPE],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    def metadata(self, request: Request) -> Response:
        self._state.record_metadata_request(request.path)
        return json_response(200, self.metadata_document())

    def jwks(self, request: Request) -> Response:
        return json_response(200, {"keys": [self._signer.public_jwk]})

    # ------------------------------------------------------------------- token

    def token(self, request: Request) -> Response:
        self._state.record_exchange_request()
        params: Mapping[str, str] = {}
        try:
            params = to_params(form_pairs(request), TOKEN_MULTI_ERRORS)
            grant_type = params.get("grant_type")
            if grant_type is None:
                raise OAuthError("invalid_request", "missing grant_type")
            if grant_type != TOKEN_EXCHANGE_GRANT:
                raise OAuthError("unsupported_grant_type", f"this identity provider serves only {TOKEN_EXCHANGE_GRANT}")
            client = authenticate_client(request, params, self._state, audiences=self._audiences)
            if client is None:  # not reached: anonymous requests are not allowed here
                raise OAuthError("invalid_client", "client authentication required")
            body = self._exchange(client, params)
        except MissingExtra as exc:  # a JWT to verify, and no PyJWT on this side
            return self._refused(request, params, OAuthError("server_error", str(exc)))
        except OAuthError as exc:
            return self._refused(request, params, exc)
        return json_response(200, body, NO_STORE)

    def _refused(self, request: Request, params: Mapping[str, str], error: OAuthError) -> Response:
        self._state.record_exchange_refused(claimed_client_id(request, params), error)
        return error_response(error)

    def _exchange(self, client: ClientInfo, params: Mapping[str, str]) -> Dict[str, Any]:
        if "actor_token" in params or "actor_token_type" in params:
            raise OAuthError("invalid_request", "actor tokens are not used in this exchange")
        subject_token = _required(params, "subject_token")
        _exact(params, "subject_token_type", ID_TOKEN_TYPE)
        _exact(params, "requested_token_type", ID_JAG_TOKEN_TYPE)
        audience = _required(params, "audience", " (the authorization server's issuer)")
        resource = _required(params, "resource", " (the MCP server's resource identifier)")
        problem = _resource_problem(resource)
        if problem is not None:
            raise OAuthError("invalid_target", problem)
        scope = params.get("scope")
        if scope is not None:
            scope = " ".join(parse_scope(scope))
        subject = self._verify_id_token(subject_token, client)
        as_client_id = self._state.as_client_id(client.client_id, audience)
        if as_client_id is None:
            raise OAuthError("invalid_target", "the client may not request ID-JAGs for that audience")
        issued_at = int(self._state.now())
        claims = id_jag_claims(
            issuer=self._urls.issuer,
            subject=subject,
            audience=audience,
            client_id=as_client_id,
            resource=resource,
            scope=scope,
            issued_at=issued_at,
            lifetime=self._lifetime,
            jti=None,
        )
        id_jag = self._signer.sign(claims, headers={"typ": ID_JAG_TYP})
        detail = (
            f"sub={subject} aud={audience} client_id={as_client_id} resource={resource} "
            f"jti={fingerprint(claims['jti'])} scope={scope or ''}"
        )
        self._state.record_exchange_issued(client.client_id, detail)
        body: Dict[str, Any] = {
            "access_token": id_jag,
            "issued_token_type": ID_JAG_TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": int(self._lifetime),
        }
        if scope is not None:
            body["scope"] = scope
        return body

    def _verify_id_token(self, token: str, client: ClientInfo) -> str:
        """The subject of ``token``, an ID token this provider issued to ``client`` (draft §4.3.1:
        its ``aud`` names the authenticated client), or ``invalid_grant``."""
        jwt = read_jwt(token, ID_TOKEN_ASSERTION)
        if is_id_jag_typ(unverified_header(token, "typ")):
            raise OAuthError("invalid_grant", "the subject_token is an ID-JAG, not an ID token")
        verified = verify_assertion(
            jwt,
            self._key,
            rules=ID_TOKEN_ASSERTION,
            issuer=self._urls.issuer,
            audiences=(client.client_id,),
            now=self._state.now(),
            whose="this identity provider's",
        )
        return verified.subject
