"""Strict OAuth 2.1 authorization server + MCP resource server for tests.

Standard library only. Start one per test::

    with StrictAuthServer() as server:
        client_id = server.register_client()
        tokens = server.mint_tokens(client_id)
"""

from __future__ import annotations

from .audit import Audit, AuditEvent, EventKind, fingerprint
from .faults import Fault
from .mcp import LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS
from .models import ChainSummary, ClientInfo
from .server import StrictAuthServer
from .token_endpoint import MALFORMED_BODY

__all__ = [
    "LATEST_PROTOCOL_VERSION",
    "MALFORMED_BODY",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "Audit",
    "AuditEvent",
    "ChainSummary",
    "ClientInfo",
    "EventKind",
    "Fault",
    "StrictAuthServer",
    "fingerprint",
]
