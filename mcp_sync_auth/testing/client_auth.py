"""Token endpoint client authentication: client secrets (RFC 6749 §2.3) and JWT client assertions
(``private_key_jwt``, RFC 7523 §2.2 and §3, RFC 7521 §4.2)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Collection, Mapping, Optional, Protocol, Tuple
from urllib.parse import unquote_plus

from .assertions import CLIENT_ASSERTION, VerifiedAssertion, read_jwt, unverified_claim, verify_assertion
from .errors import OAuthError
from .http_types import Request
from .models import CLIENT_ASSERTION_TYPE, ClientInfo

__all__ = ["ClientDirectory", "authenticate_client", "claimed_client_id"]


class ClientDirectory(Protocol):
    """What client authentication needs of a server's state (the strict server's, the identity
    provider's): its clients, its clock and its ``jti`` replay cache."""

    def get_client(self, client_id: str) -> Optional[ClientInfo]: ...

    def now(self) -> float: ...

    def spend_assertion(self, use: str, client_id: Optional[str], assertion: VerifiedAssertion) -> bool: ...


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
    client_id = params.get("client_id")
    assertion = params.get("client_assertion")
    if client_id is None and assertion is not None:
        return unverified_claim(assertion, "sub")
    return client_id


def _presents_assertion(params: Mapping[str, str]) -> bool:
    return "client_assertion" in params or "client_assertion_type" in params


def _assertion_client(params: Mapping[str, str], state: ClientDirectory, audiences: Collection[str]) -> ClientInfo:
    """The client a JWT client assertion authenticates (RFC 7523 §3), or ``invalid_client``."""
    assertion_type = params.get("client_assertion_type")
    token = params.get("client_assertion")
    if assertion_type is None:
        raise OAuthError("invalid_client", "client_assertion_type is missing")
    if assertion_type != CLIENT_ASSERTION_TYPE:
        raise OAuthError("invalid_client", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    if token is None:
        raise OAuthError("invalid_client", "client_assertion is missing")
    jwt = read_jwt(token, CLIENT_ASSERTION)
    client_id = jwt.claim("sub")
    if client_id is None:
        raise OAuthError("invalid_client", "the client assertion has no sub")
    body_id = params.get("client_id")
    if body_id is not None and body_id != client_id:
        raise OAuthError("invalid_client", "client_id does not match the client assertion's sub")
    client = state.get_client(client_id)
    if client is None:
        raise OAuthError("invalid_client", "unknown client")
    if client.public_key is None:
        raise OAuthError(
            "invalid_client", f"client must authenticate with {client.token_endpoint_auth_method}, not private_key_jwt"
        )
    verified = verify_assertion(
        jwt,
        client.public_key,
        rules=CLIENT_ASSERTION,
        issuer=client_id,
        audiences=audiences,
        now=state.now(),
        whose="the client's registered",
    )
    if not state.spend_assertion("client_assertion", client_id, verified):
        raise OAuthError("invalid_client", "the client assertion was already used (jti replay)")
    return client


def authenticate_client(
    request: Request,
    params: Mapping[str, str],
    state: ClientDirectory,
    *,
    audiences: Collection[str],
    allow_anonymous: bool = False,
) -> Optional[ClientInfo]:
    """Authenticate exactly as the client was registered, or raise ``invalid_client``.

    A client assertion's ``aud`` must name one of ``audiences``. With ``allow_anonymous``, a request
    that tries no client authentication at all (no credentials, no ``client_id``) gives None.
    """
    credentials = _basic_header(request)
    body_secret = params.get("client_secret")
    body_id = params.get("client_id")
    if _presents_assertion(params):
        if credentials is not None or body_secret is not None:
            raise OAuthError("invalid_request", "more than one client authentication method used")
        return _assertion_client(params, state, audiences)
    if credentials is None and body_id is None and body_secret is None and allow_anonymous:
        return None
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
