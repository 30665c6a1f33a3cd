"""Identity Assertion JWT Authorization Grants (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant,
profiled by the MCP extension "enterprise-managed-authorization"): the names both sides use, and the
checks the strict server makes before it trades an ID-JAG for an access token.

An identity provider issues an ID-JAG in an RFC 8693 token exchange (see
:class:`~mcp_sync_auth.testing.IdentityProvider`); the client presents it to the MCP authorization
server in the JWT bearer grant (RFC 7523 §2.1), authenticating as itself. What tells an ID-JAG from
any other JWT assertion is its header: ``typ`` is ``oauth-id-jag+jwt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from .assertions import AssertionRules, VerifiedAssertion
from .errors import OAuthError
from .scopes import parse_scope

__all__ = [
    "ID_JAG_ASSERTION",
    "ID_JAG_PROFILE",
    "ID_JAG_TOKEN_TYPE",
    "ID_JAG_TYP",
    "ID_TOKEN_TYPE",
    "TOKEN_EXCHANGE_GRANT",
    "IdJagTerms",
    "id_jag_terms",
    "is_id_jag_typ",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
"""``grant_type`` of an RFC 8693 token exchange (what the identity provider's token endpoint serves)."""

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
"""``subject_token_type`` of an OpenID Connect ID token (RFC 8693 §3)."""

ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
"""``requested_token_type`` and ``issued_token_type`` of an ID-JAG."""

ID_JAG_TYP = "oauth-id-jag+jwt"
"""The JWT ``typ`` header of an ID-JAG (RFC 8725 §3.11 explicit typing)."""

ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
"""What ``authorization_grant_profiles_supported`` lists when the server accepts ID-JAGs."""

ID_JAG_ASSERTION = AssertionRules("invalid_grant", "ID-JAG", require_iat=True, max_lifetime=None)


def is_id_jag_typ(typ: Optional[str]) -> bool:
    """Whether a JWT ``typ`` header names an ID-JAG: media types are case-insensitive, and the
    ``application/`` prefix may be left out (RFC 7515 §4.1.9)."""
    if typ is None:
        return False
    value = typ.lower()
    if value.startswith("application/"):
        value = value[len("application/") :]
    return value == ID_JAG_TYP


@dataclass(frozen=True)
class IdJagTerms:
    """What a verified ID-JAG grants: the resource it names, and its scope (None when it has none)."""

    resource: str
    scope: Optional[Tuple[str, ...]]


def _resources(claims: Mapping[str, Any]) -> Tuple[str, ...]:
    value = claims.get("resource")
    if value is None:
        raise OAuthError("invalid_grant", "the ID-JAG has no resource")
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(item, str) and item for item in values):
        raise OAuthError("invalid_grant", "the ID-JAG's resource must be a URI or an array of URIs")
    return tuple(values)


def id_jag_terms(assertion: VerifiedAssertion, *, client_id: str, resource_url: str) -> IdJagTerms:
    """Check what only an ID-JAG carries (the signature, ``iss``, ``aud``, times and ``jti`` are checked
    already): its ``client_id`` is the authenticated client and its ``resource`` names this server's
    MCP resource. Every failure is ``invalid_grant`` and quotes nothing."""
    claims = assertion.claims
    bound = claims.get("client_id")
    if not isinstance(bound, str) or not bound:
        raise OAuthError("invalid_grant", "the ID-JAG has no client_id")
    if bound != client_id:
        raise OAuthError("invalid_grant", "the ID-JAG's client_id is not the authenticated client")
    if resource_url not in _resources(claims):
        raise OAuthError("invalid_grant", "the ID-JAG's resource is not this server's MCP resource")
    scope = claims.get("scope")
    if scope is None:
        return IdJagTerms(resource=resource_url, scope=None)
    if not isinstance(scope, str):
        raise OAuthError("invalid_grant", "the ID-JAG's scope must be a space-separated string")
    try:
        return IdJagTerms(resource=resource_url, scope=parse_scope(scope))
    except OAuthError:
        raise OAuthError("invalid_grant", "the ID-JAG's scope is malformed") from None
