"""Bearer token extraction and RFC 6750 / RFC 9728 challenges for protected resources."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .http_types import Request

__all__ = ["BearerCredentials", "challenge", "extract_bearer", "insufficient_scope_challenge"]

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True)
class BearerCredentials:
    """What the request presented. ``token`` is None when nothing usable was sent;
    ``problem`` is set when something was sent but is malformed."""

    token: Optional[str]
    problem: Optional[str] = None

    @property
    def presented(self) -> bool:
        return self.token is not None or self.problem is not None


def extract_bearer(request: Request) -> BearerCredentials:
    values = request.header_values("Authorization")
    if not values:
        return BearerCredentials(None)
    if len(values) > 1:
        return BearerCredentials(None, "more than one Authorization header")
    scheme, _, credentials = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return BearerCredentials(None)
    credentials = credentials.strip()
    if not _TOKEN68.fullmatch(credentials):
        return BearerCredentials(None, "malformed bearer token")
    return BearerCredentials(credentials)


def challenge(
    resource_metadata_url: Optional[str],
    error: Optional[str] = None,
    description: Optional[str] = None,
    scope: Optional[str] = None,
) -> str:
    """Build a ``WWW-Authenticate: Bearer ...`` value. Parameters must not contain quotes; without a
    metadata URL (a server that serves none, like a 2025-03-26 one) the parameter is left out."""
    parts = [] if resource_metadata_url is None else [f'resource_metadata="{resource_metadata_url}"']
    if error is not None:
        parts.append(f'error="{error}"')
    if description is not None:
        parts.append(f'error_description="{description}"')
    if scope is not None:
        parts.append(f'scope="{scope}"')
    return " ".join(("Bearer", ", ".join(parts))) if parts else "Bearer"


def insufficient_scope_challenge(resource_metadata_url: Optional[str], scope: str) -> str:
    """The RFC 6750 §3.1 challenge for a token that lacks ``scope`` (space-separated), in the
    parameter order the MCP authorization spec shows for step-up."""
    value = f'Bearer error="insufficient_scope", scope="{scope}"'
    return value if resource_metadata_url is None else f'{value}, resource_metadata="{resource_metadata_url}"'
