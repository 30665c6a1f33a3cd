"""The library's one exception hierarchy.

Everything derives from :class:`requests.exceptions.RequestException`, so code that already catches
``requests`` failures around a call keeps working when the failure comes from authorization.

Messages are written by us and never contain a token or a client secret; text that comes from a
server passes through :func:`mcp_sync_auth.redact.clean_server_text` first.
"""

from __future__ import annotations

from typing import Any, Optional

import requests


class MCPAuthError(requests.exceptions.RequestException):
    """Base class of every error this library raises."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigurationError(MCPAuthError, ValueError):
    """The arguments given to the library cannot work (for example a non-loopback ``http://`` URL)."""


class InsecureTransportError(ConfigurationError):
    """A URL that must be HTTPS is not, and its host is not a loopback address."""


class AuthorizationRequired(MCPAuthError):
    """No usable tokens: somebody has to log in (again). The message says how."""

    def __init__(self, message: str, *, login_hint: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.login_hint = login_hint


class RefreshChainRevoked(AuthorizationRequired):
    """The authorization server refused the refresh token (``invalid_grant``): the chain is dead.

    The chain is marked dead in the token store, so no thread or process presents its refresh token
    again; a new login starts a new chain.
    """


class TokenEndpointError(MCPAuthError):
    """The token endpoint failed or answered something we cannot use.

    ``transient`` is true when the server did not process the request (5xx before processing, a
    refused or reset connection): the chain is intact and the next call may refresh again.
    ``ambiguous`` is true when the server may have rotated the refresh token but we did not get the
    answer (a read timeout, a 200 we cannot parse): the next refresh may find the chain revoked.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        error_code: Optional[str] = None,
        transient: bool = False,
        ambiguous: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.error_code = error_code
        self.transient = transient
        self.ambiguous = ambiguous


class TokenStoreError(MCPAuthError):
    """The token store cannot be read or written safely (corrupt file, permissions, symlink...)."""


class CorruptTokenCache(TokenStoreError):
    """A cache file could not be parsed. It was moved aside (``quarantined_to``) for inspection."""

    def __init__(self, message: str, *, quarantined_to: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.quarantined_to = quarantined_to


class LockTimeout(TokenStoreError):
    """The store's lock for a chain could not be taken in time. No refresh was attempted without it."""
