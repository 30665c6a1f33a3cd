"""Records kept by the server state, plus the immutable views handed to tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .jwt_keys import PublicKey

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "DEVICE_CODE_GRANT",
    "GRANT_TYPES",
    "JWT_BEARER_GRANT",
    "TOKEN_ENDPOINT_AUTH_METHODS",
    "AccessCheck",
    "AccessTokenRecord",
    "AuthorizationCodeRecord",
    "ChainRecord",
    "ChainSummary",
    "ClientInfo",
    "RefreshTokenRecord",
    "TokenGrant",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""``client_assertion_type`` of a JWT client assertion (RFC 7523 §2.2, ``private_key_jwt``)."""

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
"""``grant_type`` of the JWT bearer authorization grant (RFC 7523 §2.1)."""

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
"""``grant_type`` of the device authorization grant (RFC 8628 §3.4)."""

TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", JWT_BEARER_GRANT)


@dataclass(frozen=True)
class ClientInfo:
    """A registered client. The secret is left out of ``repr``.

    ``dynamic`` is True for clients registered over ``POST /register``;
    ``client_id_issued_at`` is a Unix time from the server's clock.
    ``public_key`` verifies the client assertions of a ``private_key_jwt`` client (which has no secret).
    """

    client_id: str
    client_secret: Optional[str] = field(repr=False)
    token_endpoint_auth_method: str
    redirect_uris: Tuple[str, ...] = ()
    grant_types: Tuple[str, ...] = ("authorization_code", "refresh_token")
    response_types: Tuple[str, ...] = ("code",)
    scope: Optional[str] = None
    client_name: Optional[str] = None
    application_type: Optional[str] = None
    client_id_issued_at: int = 0
    dynamic: bool = False
    public_key: Optional[PublicKey] = field(default=None, repr=False)

    @property
    def confidential(self) -> bool:
        return self.token_endpoint_auth_method != "none"


@dataclass
class RefreshTokenRecord:
    token: str
    chain_id: int
    generation: int
    used: bool = False


@dataclass
class AccessTokenRecord:
    token: str
    client_id: Optional[str]
    """None for a token granted to a request that authenticated no client (a workload's JWT bearer grant)."""
    chain_id: Optional[int]
    resource: str
    scope: Tuple[str, ...]
    expires_at: float
    revoked: bool = False
    dpop_jkt: Optional[str] = None
    """The thumbprint of the key the token is bound to (RFC 9449), None for a Bearer token."""

    def failure(self, now: float, audience: str) -> Optional[str]:
        """Why this token is unusable for ``audience`` at ``now`` (None when valid)."""
        if self.revoked:
            return "access token revoked"
        if now >= self.expires_at:
            return "access token expired"
        if self.resource != audience:
            return "access token audience mismatch"
        return None


@dataclass
class AuthorizationCodeRecord:
    """An authorization code and everything it was bound to at /authorize."""

    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    resource: str
    scope: Tuple[str, ...]
    expires_at: float
    used: bool = False
    chain_id: Optional[int] = None
    """The chain issued from this code, revoked if the code is presented again."""
    dpop_jkt: Optional[str] = None
    """``dpop_jkt`` of the authorization request (RFC 9449 §10): the key the exchange must prove."""


@dataclass
class ChainRecord:
    """One refresh chain: an initial grant and all its rotations."""

    chain_id: int
    client_id: str
    resource: str
    scope: Tuple[str, ...]
    current_refresh_token: str = ""
    generation: int = 0
    alive: bool = True
    revoked_reason: Optional[str] = None
    refresh_tokens: List[str] = field(default_factory=list)
    access_tokens: List[str] = field(default_factory=list)
    dpop_jkt: Optional[str] = None
    """The key (thumbprint) every refresh token and access token of the chain is bound to (RFC 9449)."""


@dataclass(frozen=True)
class ChainSummary:
    """Test-facing view of a refresh chain (tokens only as fingerprints)."""

    chain_id: int
    client_id: str
    resource: str
    scope: str
    alive: bool
    generation: int
    current_refresh_fingerprint: str
    revoked_reason: Optional[str]
    dpop_jkt: Optional[str] = None
    """The thumbprint of the key the chain is bound to (DPoP), None for a Bearer chain."""


@dataclass(frozen=True)
class AccessCheck:
    """Outcome of validating an access token for a resource. ``dpop_jkt``: the key a known token is
    bound to (also when it is refused for another reason), None for a Bearer token."""

    ok: bool
    client_id: Optional[str]
    reason: str
    scope: Tuple[str, ...] = ()
    dpop_jkt: Optional[str] = None


@dataclass(frozen=True)
class TokenGrant:
    """A successful token endpoint answer."""

    access_token: str
    ttl: float
    scope: str
    refresh_token: Optional[str]
    token_type: str = "Bearer"
    dpop_jkt: Optional[str] = None
    """The key the tokens are bound to (token_type "DPoP"); for the audit, not sent."""

    @property
    def expires_in(self) -> int:
        return max(1, math.ceil(self.ttl))

    def to_response(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        body["scope"] = self.scope
        return body
