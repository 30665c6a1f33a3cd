"""Client metadata (RFC 7591 §2): defaults, type checks and the rules every registration obeys.

Used by ``POST /register`` and by the ``register_client()`` test helper, so both make the same
kind of client. Errors carry the RFC 7591 §3.2.2 error code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .errors import OAuthError
from .jwt_keys import PublicKey, load_public_key
from .models import DEVICE_CODE_GRANT, GRANT_TYPES, TOKEN_ENDPOINT_AUTH_METHODS
from .redirect_uris import is_loopback, redirect_uri_problem
from .scopes import parse_scope

__all__ = [
    "APPLICATION_TYPES",
    "RESPONSE_TYPES",
    "ClientMetadata",
    "ClientMetadataError",
    "check_client_metadata",
    "client_metadata_from_json",
]

APPLICATION_TYPES = ("native", "web")
RESPONSE_TYPES = ("code",)
INVALID_METADATA = "invalid_client_metadata"
INVALID_REDIRECT_URI = "invalid_redirect_uri"


class ClientMetadataError(ValueError):
    """A registration the server refuses; ``error`` is the RFC 7591 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ClientMetadata:
    token_endpoint_auth_method: str
    redirect_uris: Tuple[str, ...]
    grant_types: Tuple[str, ...]
    response_types: Tuple[str, ...]
    scope: Optional[str] = None
    client_name: Optional[str] = None
    application_type: Optional[str] = None
    public_key: Optional[PublicKey] = None
    """The key of a ``private_key_jwt`` client (``jwks`` in a registration request)."""


def _unique(values: Sequence[str]) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def check_client_metadata(
    metadata: ClientMetadata, scopes_supported: Sequence[str], *, require_redirect_uris: bool
) -> None:
    """Raise :class:`ClientMetadataError` unless ``metadata`` describes a client this server serves."""
    method = metadata.token_endpoint_auth_method
    if method not in TOKEN_ENDPOINT_AUTH_METHODS:
        raise ClientMetadataError(INVALID_METADATA, f"unsupported token_endpoint_auth_method {method!r}")
    grants = metadata.grant_types
    if not grants:
        raise ClientMetadataError(INVALID_METADATA, "grant_types must not be empty")
    # The device grant may be registered whether or not the server runs it (it refuses it then).
    unknown = [grant for grant in grants if grant not in (*GRANT_TYPES, DEVICE_CODE_GRANT)]
    if unknown:
        raise ClientMetadataError(INVALID_METADATA, f"unsupported grant_types {unknown!r}")
    unknown = [kind for kind in metadata.response_types if kind not in RESPONSE_TYPES]
    if unknown:
        raise ClientMetadataError(INVALID_METADATA, f"unsupported response_types {unknown!r}")
    # RFC 7591 §2.1: the code response type and the authorization_code grant go together.
    if ("code" in metadata.response_types) != ("authorization_code" in grants):
        raise ClientMetadataError(
            INVALID_METADATA, "response_types code and grant_types authorization_code must be used together"
        )
    if "refresh_token" in grants and "authorization_code" not in grants and DEVICE_CODE_GRANT not in grants:
        raise ClientMetadataError(INVALID_METADATA, "refresh_token needs the authorization_code (or device) grant")
    if "client_credentials" in grants and method == "none":
        raise ClientMetadataError(INVALID_METADATA, "client_credentials needs a confidential client")
    if method == "private_key_jwt" and metadata.public_key is None:
        raise ClientMetadataError(INVALID_METADATA, "private_key_jwt needs the client's public key (jwks)")
    if method != "private_key_jwt" and metadata.public_key is not None:
        raise ClientMetadataError(INVALID_METADATA, "a public key (jwks) is used only by private_key_jwt clients")
    if metadata.application_type is not None and metadata.application_type not in APPLICATION_TYPES:
        raise ClientMetadataError(INVALID_METADATA, "application_type must be native or web")
    _check_redirect_uris(metadata, require_redirect_uris)
    if metadata.scope is not None:
        try:
            scopes = parse_scope(metadata.scope)
        except OAuthError:
            raise ClientMetadataError(INVALID_METADATA, "malformed scope") from None
        unknown = [scope for scope in scopes if scope not in scopes_supported]
        if unknown:
            raise ClientMetadataError(INVALID_METADATA, "scope not supported: " + " ".join(unknown))


def _check_redirect_uris(metadata: ClientMetadata, required: bool) -> None:
    if required and "authorization_code" in metadata.grant_types and not metadata.redirect_uris:
        raise ClientMetadataError(INVALID_REDIRECT_URI, "redirect_uris is required for authorization_code")
    for uri in metadata.redirect_uris:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise ClientMetadataError(INVALID_REDIRECT_URI, problem)
        # OpenID Connect DCR: web clients must not redirect to the user's own machine.
        if metadata.application_type == "web" and is_loopback(uri):
            raise ClientMetadataError(INVALID_REDIRECT_URI, "web clients must not use loopback redirect URIs")


def _string(document: Mapping[str, Any], name: str) -> Optional[str]:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ClientMetadataError(INVALID_METADATA, f"{name} must be a string")
    return value


def _strings(document: Mapping[str, Any], name: str, error: str = INVALID_METADATA) -> Optional[List[str]]:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ClientMetadataError(error, f"{name} must be an array of strings")
    return value


def _public_key(document: Mapping[str, Any]) -> Optional[PublicKey]:
    """``jwks`` (a JWK Set of one key); ``jwks_uri`` is refused: this server fetches nothing."""
    if document.get("jwks_uri") is not None:
        raise ClientMetadataError(INVALID_METADATA, "jwks_uri is not supported: send the public key in jwks")
    jwks = document.get("jwks")
    if jwks is None:
        return None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ClientMetadataError(INVALID_METADATA, "jwks must be a JWK Set (an object with a keys array)")
    try:
        return load_public_key(jwks)
    except ValueError as exc:
        raise ClientMetadataError(INVALID_METADATA, f"jwks: {exc}") from None


def client_metadata_from_json(document: Mapping[str, Any]) -> ClientMetadata:
    """Read a registration request, applying the RFC 7591 §2 defaults; unknown fields are ignored.

    A ``jwks`` needs the ``jwt`` extra to be read (MissingExtra without it)."""
    redirect_uris = _strings(document, "redirect_uris", INVALID_REDIRECT_URI)
    if redirect_uris is not None and not redirect_uris:
        raise ClientMetadataError(INVALID_REDIRECT_URI, "redirect_uris must not be empty")
    grant_types = _strings(document, "grant_types")
    grants = _unique(["authorization_code"] if grant_types is None else grant_types)
    response_types = _strings(document, "response_types")
    if response_types is None:
        response_types = ["code"] if "authorization_code" in grants else []
    method = _string(document, "token_endpoint_auth_method")
    return ClientMetadata(
        token_endpoint_auth_method="client_secret_basic" if method is None else method,
        redirect_uris=_unique(redirect_uris or []),
        grant_types=grants,
        response_types=_unique(response_types),
        scope=_string(document, "scope"),
        client_name=_string(document, "client_name"),
        application_type=_string(document, "application_type"),
        public_key=_public_key(document),
    )
