"""Strict OAuth 2.1 authorization server + MCP resource server for tests.

The server itself uses the standard library only. Start one per test::

    with StrictAuthServer() as server:
        client_id = server.register_client()
        tokens = server.mint_tokens(client_id)

or drive the whole authorization surface over HTTP: metadata discovery, ``POST /register``,
``GET /authorize`` (PKCE S256, ``resource``, automatic consent) and ``POST /token``.
``login(server)`` does that with the real authorization code flow and returns a logged-in ``MCPAuth``
(``auto_consent_handler`` stands in for the browser).

RFC 7523 too: clients may authenticate with ``private_key_jwt`` (``register_client(...,
token_endpoint_auth_method="private_key_jwt", public_key=pem)``), and workloads get tokens with the
JWT bearer grant (:data:`JWT_BEARER_GRANT`) from an issuer the server trusts
(``server.trust_workload_issuer(WorkloadIssuer())``). Those need the ``jwt`` extra (PyJWT).

Enterprise-managed authorization (ID-JAG): an :class:`IdentityProvider` issues ID tokens and exchanges
them (RFC 8693, :data:`TOKEN_EXCHANGE_GRANT`) for ID-JAGs, which a server that trusts it
(``server.trust_identity_provider(idp)``) takes in the JWT bearer grant from the authenticated client.
DPoP (RFC 9449) too, with the same extra: ``StrictAuthServer(dpop="optional")`` (or ``"required"``)
binds tokens to the key of a request's proof, checks proofs at ``/token`` and ``/mcp`` (nonces with
``dpop_nonce_at_token`` / ``dpop_nonce_at_resource``) and counts them in ``server.audit.dpop``.

The device authorization grant (RFC 8628, :data:`DEVICE_CODE_GRANT`): ``StrictAuthServer(
device_authorization=True)``; ``server.approve_device(user_code)`` / ``deny_device`` answer for the
person, ``server.pending_device_codes()`` (:class:`PendingDeviceCode`) shows what waits, and
``server.audit.device`` (:class:`DeviceAudit`) counts authorizations, polls and ``slow_down`` answers.
"""

from __future__ import annotations

from .audit import Audit, AuditEvent, EventKind, fingerprint
from .consent import auto_consent_handler, login
from .device_audit import DeviceAudit
from .device_codes import PendingDeviceCode
from .dpop import DPOP_ALGORITHMS
from .dpop_audit import DpopAudit
from .faults import Fault
from .id_jag import ID_JAG_TOKEN_TYPE, ID_JAG_TYP, ID_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from .identity_provider import IdentityProvider
from .idp_state import IdentityProviderAudit
from .jwt_keys import ALGORITHMS as JWT_ALGORITHMS
from .mcp import LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS
from .models import CLIENT_ASSERTION_TYPE, DEVICE_CODE_GRANT, JWT_BEARER_GRANT, ChainSummary, ClientInfo
from .options import ISS_MODES
from .overrides import REMOVE
from .pkce import s256_challenge
from .redis_server import RedisNotAvailable, RedisServer
from .revocation import Revocation
from .server import StrictAuthServer
from .token_endpoint import MALFORMED_BODY
from .workload import WorkloadIssuer

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "DEVICE_CODE_GRANT",
    "DPOP_ALGORITHMS",
    "ID_JAG_TOKEN_TYPE",
    "ID_JAG_TYP",
    "ID_TOKEN_TYPE",
    "ISS_MODES",
    "JWT_ALGORITHMS",
    "JWT_BEARER_GRANT",
    "LATEST_PROTOCOL_VERSION",
    "MALFORMED_BODY",
    "REMOVE",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "TOKEN_EXCHANGE_GRANT",
    "Audit",
    "AuditEvent",
    "ChainSummary",
    "ClientInfo",
    "DeviceAudit",
    "DpopAudit",
    "EventKind",
    "Fault",
    "IdentityProvider",
    "IdentityProviderAudit",
    "PendingDeviceCode",
    "RedisNotAvailable",
    "RedisServer",
    "Revocation",
    "StrictAuthServer",
    "WorkloadIssuer",
    "auto_consent_handler",
    "fingerprint",
    "login",
    "s256_challenge",
]
