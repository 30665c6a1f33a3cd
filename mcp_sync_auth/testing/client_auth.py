"""Token endpoint client authentication (RFC 6749 §2.3)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Mapping, Optional, Tuple
from urllib.parse import unquote_plus

from .errors import OAuthError
from .http_types import Request
from .models import ClientInfo
from .state import AuthState

__all__ = ["authenticate_client", "claimed_client_id"]

MALFORMED_BASIC = "malformed HTTP Basic credentials"


def _decode_basic(credentials: str) -> Tuple[str, str]:
    """Decode HTTP Basic credentials whose parts are form-urlencoded (RFC 6749 §2.3.1)."""
    try:
        raw = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthError("invalid_client", MALFORMED_BASIC, basic_challenge=True) from None
    client_id, sep, secret = raw.partition(":")
    if not sep:
        raise OAuthError("invalid_client", MALFORMED_BASIC, basic_challenge=True)
    return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")


def _secret_matches(expected: str, presented: Optional[str]) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def _basic_header(request: Request) -> Optional[str]:
    values = request.header_values("Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise OAuthError("invalid_request", "more than one Authorization header")
    scheme, _, credentials = values[0].partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError(
            "invalid_client", "unsupported authentication scheme at the token endpoint", basic_challenge=True
        )
    return credentials


def claimed_client_id(request: Request, params: Mapping[str, str]) -> Optional[str]:
    """Best-effort client id for auditing; never raises."""
    try:
        credentials = _basic_header(request)
        if credentials is not None:
            return _decode_basic(credentials)[0]
    except (OAuthError, UnicodeDecodeError):
        return None
    return params.get("client_id")


def authenticate_client(request: Request, params: Mapping[str, str], state: AuthState) -> ClientInfo:
    """Authenticate exactly as the client was registered, or raise ``invalid_client``."""
    credentials = _basic_header(request)
    body_secret = params.get("client_secret")
    body_id = params.get("client_id")
    if credentials is not None:
        if body_secret is not None:
            raise OAuthError("invalid_request", "more than one client authentication method used")
        try:
            client_id, secret = _decode_basic(credentials)
        except UnicodeDecodeError:
            raise OAuthError("invalid_client", MALFORMED_BASIC, basic_challenge=True) from None
        if body_id is not None and body_id != client_id:
            raise OAuthError(
                "invalid_client", "client_id does not match the Authorization header", basic_challenge=True
            )
        method: str = "client_secret_basic"
        presented_secret: Optional[str] = secret
    else:
        if body_id is None:
            raise OAuthError("invalid_client", "client authentication required")
        client_id = body_id
        method = "client_secret_post" if body_secret is not None else "none"
        presented_secret = body_secret
    basic = method == "client_secret_basic"
    client = state.get_client(client_id)
    if client is None:
        raise OAuthError("invalid_client", "unknown client", basic_challenge=basic)
    if client.token_endpoint_auth_method != method:
        raise OAuthError(
            "invalid_client",
            f"client must authenticate with {client.token_endpoint_auth_method}, not {method}",
            basic_challenge=basic,
        )
    expected = client.client_secret
    if expected is not None and not _secret_matches(expected, presented_secret):
        raise OAuthError("invalid_client", "client authentication failed", basic_challenge=basic)
    return client
