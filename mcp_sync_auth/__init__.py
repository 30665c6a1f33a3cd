"""mcp_sync_auth: a synchronous, thread- and process-safe OAuth 2.1 client for MCP servers.

For one refresh chain, at most one refresh grant is in flight across every thread and process that
share a token store, so authorization servers that rotate refresh tokens and revoke on reuse never
see a reuse from us.

The public surface is what this module exports (``__all__``), plus ``mcp_sync_auth.client``,
``mcp_sync_auth.testing`` and the ``mcp-sync-auth`` command. Everything in a package or module whose
name starts with an underscore is internal and may change in any release.
"""

import logging as _logging

from ._chain.keys import ChainKey, ChainRecord, LoginKey, RegistrationKey
from ._chain.tokens import TokenSet
from ._mcp.client import MCPClient
from ._oauth.challenge import BearerChallenge
from ._oauth.device import DeviceCode
from ._oauth.discovery import AuthorizationServerMetadata, Discovery, ProtectedResourceMetadata
from ._oauth.identity_assertion import IdentityProviderSettings
from ._oauth.revocation import LogoutResult
from ._oauth.settings import AuthorizationHandler, ClientSettings, LoginOptions
from ._stores.file import FileTokenStore
from ._stores.inventory import InspectableStore, Inventory, Unreadable
from ._stores.keyring import KeyringTokenStore  # keyring is imported only when one is used
from ._stores.memory import MemoryTokenStore
from ._stores.protocol import ChainStore, RegistrationStore, TokenStore
from ._stores.redis import RedisTokenStore  # redis-py is imported only when one is built
from ._stores.reservation import Reservation
from ._util.timeouts import Timeouts
from ._version import __version__
from .auth import MCPAuth, MCPAuthKeywords
from .errors import (
    AuthorizationFailed,
    AuthorizationRequired,
    AuthorizationResponseIssuerMismatch,
    ChallengeError,
    ConfigurationError,
    ConnectionSetupError,
    CorruptTokenCache,
    DeviceCodeExpired,
    DeviceLoginDenied,
    DiscoveryConnectionError,
    DiscoveryError,
    InsecureTransportError,
    InsufficientScope,
    IssuerMismatch,
    JSONRPCError,
    KeychainUnavailable,
    LockTimeout,
    MCPAuthError,
    MCPConnectionError,
    MCPProtocolError,
    MissingExtra,
    PKCENotSupported,
    RefreshChainRevoked,
    RefreshInterrupted,
    RegistrationConnectionError,
    RegistrationFailed,
    ResourceMismatch,
    RevocationConnectionError,
    RevocationFailed,
    SealedRecordInvalid,
    StateMismatch,
    StoreFull,
    StoreKeyMismatch,
    TokenEndpointConnectionError,
    TokenEndpointError,
    TokenStoreError,
    ToolError,
    UnsealedRecord,
    WorkloadTokenError,
)

# A library stays quiet unless its user configures logging: without a handler of our own, Python's
# last-resort handler would print every warning to stderr.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "AuthorizationFailed",
    "AuthorizationHandler",
    "AuthorizationRequired",
    "AuthorizationResponseIssuerMismatch",
    "AuthorizationServerMetadata",
    "BearerChallenge",
    "ChainKey",
    "ChainRecord",
    "ChainStore",
    "ChallengeError",
    "ClientSettings",
    "ConfigurationError",
    "ConnectionSetupError",
    "CorruptTokenCache",
    "DeviceCode",
    "DeviceCodeExpired",
    "DeviceLoginDenied",
    "Discovery",
    "DiscoveryConnectionError",
    "DiscoveryError",
    "FileTokenStore",
    "IdentityProviderSettings",
    "InsecureTransportError",
    "InspectableStore",
    "InsufficientScope",
    "Inventory",
    "IssuerMismatch",
    "JSONRPCError",
    "KeychainUnavailable",
    "KeyringTokenStore",
    "LockTimeout",
    "LoginKey",
    "LoginOptions",
    "LogoutResult",
    "MCPAuth",
    "MCPAuthError",
    "MCPAuthKeywords",
    "MCPClient",
    "MCPConnectionError",
    "MCPProtocolError",
    "MemoryTokenStore",
    "MissingExtra",
    "PKCENotSupported",
    "ProtectedResourceMetadata",
    "RedisTokenStore",
    "RefreshChainRevoked",
    "RefreshInterrupted",
    "RegistrationConnectionError",
    "RegistrationFailed",
    "RegistrationKey",
    "RegistrationStore",
    "Reservation",
    "ResourceMismatch",
    "RevocationConnectionError",
    "RevocationFailed",
    "SealedRecordInvalid",
    "StateMismatch",
    "StoreFull",
    "StoreKeyMismatch",
    "Timeouts",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenSet",
    "TokenStore",
    "TokenStoreError",
    "ToolError",
    "Unreadable",
    "UnsealedRecord",
    "WorkloadTokenError",
    "__version__",
]
