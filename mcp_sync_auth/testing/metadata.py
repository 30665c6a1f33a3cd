"""Protected resource metadata (RFC 9728) and authorization server metadata (RFC 8414).

The documents describe what the server really does; test overrides change only the documents
(a wrong ``issuer``, no ``code_challenge_methods_supported``...), never the behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping

from .dpop import DPOP_ALGORITHMS
from .errors import OAuthError
from .http_types import Request, Response, json_response
from .id_jag import ID_JAG_PROFILE
from .jwt_keys import ALGORITHMS
from .models import DEVICE_CODE_GRANT, GRANT_TYPES, TOKEN_ENDPOINT_AUTH_METHODS
from .options import ServerOptions
from .overrides import apply_overrides
from .pkce import S256
from .state import AuthState

__all__ = ["MetadataEndpoints", "ResourceOf", "ServerUrls"]

ResourceOf = Callable[[ServerOptions], str]
"""The resource identifier the server grants tokens for and accepts them at, under given knobs."""


def requested_resource(state: AuthState, resource_of: ResourceOf, params: Mapping[str, str]) -> str:
    """The audience of a grant with no earlier request to bind it (client credentials, the JWT
    bearer grant, a device authorization): the ``resource`` asked for, else the server's own."""
    own = resource_of(state.options)
    resource = params.get("resource")
    if resource is None:
        if state.require_resource:
            raise OAuthError("invalid_target", "the resource parameter is required")
        return own
    if resource != own:
        raise OAuthError("invalid_target", "unknown resource")
    return resource


@dataclass(frozen=True)
class ServerUrls:
    issuer: str
    resource: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str
    device_authorization_endpoint: str
    revocation_endpoint: str = ""


class MetadataEndpoints:
    def __init__(self, state: AuthState, urls: ServerUrls) -> None:
        self._state = state
        self._urls = urls

    def protected_resource_document(self, options: ServerOptions) -> Dict[str, Any]:
        document: Dict[str, Any] = {
            "resource": self._urls.resource,
            "authorization_servers": [self._urls.issuer],
            "scopes_supported": list(options.scopes_supported),
            "bearer_methods_supported": ["header"],
        }
        if options.dpop is not None:  # RFC 9728 §2
            document["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
            if options.dpop == "required":
                document["dpop_bound_access_tokens_required"] = True
        return apply_overrides(document, options.prm_overrides)

    def resource_identifier(self, options: ServerOptions) -> str:
        """The resource this server grants tokens for and accepts them at: the ``resource`` its
        protected resource metadata publishes (overrides applied) while it publishes any, else the
        MCP URL. ``resource`` parameters (RFC 8707) must equal it exactly, as RFC 9728 §3.3 and §7.3
        have clients send the identifier as published."""
        if options.serve_metadata and (options.path_metadata or options.root_metadata):
            published = self.protected_resource_document(options).get("resource")
            if isinstance(published, str):
                return published
        return self._urls.resource

    def authorization_server_document(self, options: ServerOptions) -> Dict[str, Any]:
        urls = self._urls
        document: Dict[str, Any] = {
            "issuer": urls.issuer,
            "authorization_endpoint": urls.authorization_endpoint,
            "token_endpoint": urls.token_endpoint,
        }
        if options.allow_registration:
            document["registration_endpoint"] = urls.registration_endpoint
        if options.device_authorization:  # RFC 8628 §4
            document["device_authorization_endpoint"] = urls.device_authorization_endpoint
        grants = [*GRANT_TYPES, DEVICE_CODE_GRANT] if options.device_authorization else list(GRANT_TYPES)
        if options.revocation and urls.revocation_endpoint:
            document["revocation_endpoint"] = urls.revocation_endpoint
        document.update(
            {
                "scopes_supported": list(options.scopes_supported),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": grants,
                "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
                "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
                "code_challenge_methods_supported": [S256],
                "authorization_response_iss_parameter_supported": True,
                "client_id_metadata_document_supported": False,
            }
        )
        if self._state.trusts_identity_providers():
            document["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
        if options.dpop is not None:  # RFC 9449 §5.1
            document["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
        return apply_overrides(document, options.as_metadata_overrides)

    def protected_resource(self, request: Request) -> Response:
        self._state.record_metadata_request(request.path)
        options = self._state.options
        if not (options.serve_metadata and options.path_metadata):
            return json_response(404, {"error": "not_found"})
        return json_response(200, self.protected_resource_document(options))

    def root_protected_resource(self, request: Request) -> Response:
        """The root well-known URL (RFC 9728 §3.1), which clients try when the path-inserted one is
        missing: the same document, served only with ``root_metadata`` (as some servers do)."""
        self._state.record_metadata_request(request.path)
        options = self._state.options
        if not (options.serve_metadata and options.root_metadata):
            return json_response(404, {"error": "not_found"})
        return json_response(200, self.protected_resource_document(options))

    def authorization_server(self, request: Request) -> Response:
        self._state.record_metadata_request(request.path)
        options = self._state.options
        if not options.serve_metadata:
            return json_response(404, {"error": "not_found"})
        return json_response(200, self.authorization_server_document(options))
