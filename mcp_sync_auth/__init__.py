"""mcp_sync_auth: a synchronous, thread- and process-safe OAuth 2.1 client for MCP servers.

For one refresh chain, at most one refresh grant is in flight across every thread and process that
share a token store, so authorization servers that rotate refresh tokens and revoke on reuse never
see a reuse from us.
"""

from ._chain.keys import ChainKey, ChainRecord
from ._chain.tokens import TokenSet
from ._mcp.client import MCPClient
from ._stores.file import FileTokenStore, MemoryTokenStore, TokenStore
from ._version import __version__
from .auth import MCPAuth
from .errors import (
    AuthorizationRequired,
    ChallengeError,
    ConfigurationError,
    CorruptTokenCache,
    DiscoveryError,
    InsecureTransportError,
    IssuerMismatch,
    JSONRPCError,
    LockTimeout,
    MCPAuthError,
    MCPProtocolError,
    RefreshChainRevoked,
    ResourceMismatch,
    TokenEndpointError,
    TokenStoreError,
    ToolError,
)

__all__ = [
    "AuthorizationRequired",
    "ChainKey",
    "ChainRecord",
    "ChallengeError",
    "ConfigurationError",
    "CorruptTokenCache",
    "DiscoveryError",
    "FileTokenStore",
    "InsecureTransportError",
    "IssuerMismatch",
    "JSONRPCError",
    "LockTimeout",
    "MCPAuth",
    "MCPAuthError",
    "MCPClient",
    "MCPProtocolError",
    "MemoryTokenStore",
    "RefreshChainRevoked",
    "ResourceMismatch",
    "TokenEndpointError",
    "TokenSet",
    "TokenStore",
    "TokenStoreError",
    "ToolError",
    "__version__",
]
