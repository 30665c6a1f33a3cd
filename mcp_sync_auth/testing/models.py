"""Records kept by the server state, plus the immutable views handed to tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "TOKEN_ENDPOINT_AUTH_METHODS",
    "AccessCheck",
    "AccessTokenRecord",
    "ChainRecord",
    "ChainSummary",
    "ClientInfo",
    "RefreshTokenRecord",
    "TokenGrant",
]

TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class ClientInfo:
    """A registered client."""

    client_id: str
    client_secret: Optional[str]
    token_endpoint_auth_method: str


@dataclass
class RefreshTokenRecord:
    token: str
    chain_id: int
    generation: int
    used: bool = False


@dataclass
class AccessTokenRecord:
    token: str
    client_id: str
    chain_id: Optional[int]
    resource: str
    scope: Tuple[str, ...]
    expires_at: float
    revoked: bool = False

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


@dataclass(frozen=True)
class AccessCheck:
    """Outcome of validating a bearer token for a resource."""

    ok: bool
    client_id: Optional[str]
    reason: str
    scope: Tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenGrant:
    """A successful token endpoint answer."""

    access_token: str
    ttl: float
    scope: str
    refresh_token: Optional[str]
    token_type: str = "Bearer"

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
