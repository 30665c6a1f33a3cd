"""Dynamic Client Registration (RFC 7591): ``POST /register``."""

from __future__ import annotations

import json
from typing import Any, Dict

from ..errors import MissingExtra
from .client_metadata import INVALID_METADATA, ClientMetadataError, client_metadata_from_json
from .http_types import NO_STORE, Request, Response, json_response
from .models import ClientInfo
from .state import AuthState

__all__ = ["RegistrationEndpoint", "registration_response"]


def registration_response(client: ClientInfo) -> Dict[str, Any]:
    """The RFC 7591 §3.2.1 client information response: credentials plus the registered metadata."""
    body: Dict[str, Any] = {"client_id": client.client_id, "client_id_issued_at": client.client_id_issued_at}
    if client.client_secret is not None:
        body["client_secret"] = client.client_secret
        body["client_secret_expires_at"] = 0  # never expires
    if client.redirect_uris:
        body["redirect_uris"] = list(client.redirect_uris)
    body["grant_types"] = list(client.grant_types)
    body["response_types"] = list(client.response_types)
    body["token_endpoint_auth_method"] = client.token_endpoint_auth_method
    if client.public_key is not None:
        body["jwks"] = client.public_key.jwks()
    for name in ("client_name", "scope", "application_type"):
        value = getattr(client, name)
        if value is not None:
            body[name] = value
    return body


def _read_document(request: Request) -> Dict[str, Any]:
    if request.media_type()[0] != "application/json":
        raise ClientMetadataError(INVALID_METADATA, "Content-Type must be application/json")
    try:
        document = json.loads(request.body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise ClientMetadataError(INVALID_METADATA, "the request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ClientMetadataError(INVALID_METADATA, "the request body must be a JSON object")
    return document


class RegistrationEndpoint:
    def __init__(self, state: AuthState) -> None:
        self._state = state

    def __call__(self, request: Request) -> Response:
        self._state.record_registration_request()
        if not self._state.options.allow_registration:
            return json_response(404, {"error": "not_found"})
        try:
            metadata = client_metadata_from_json(_read_document(request))
            client = self._state.register_client(metadata, dynamic=True)
        except ClientMetadataError as exc:
            self._state.record_registration_failure(exc.error, exc.description)
            payload = {"error": exc.error, "error_description": exc.description}
            return json_response(400, payload, NO_STORE)
        except MissingExtra as exc:  # a jwks, and no PyJWT on this side to read it
            self._state.record_registration_failure("server_error", str(exc))
            return json_response(500, {"error": "server_error", "error_description": str(exc)}, NO_STORE)
        return json_response(201, registration_response(client), NO_STORE)
