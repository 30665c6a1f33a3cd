"""The library's one exception hierarchy.

Everything derives from :class:`requests.exceptions.RequestException`, so code that already catches
``requests`` failures around a call keeps working when the failure comes from authorization.

Messages are written by us and never contain a token or a client secret; text that comes from a
server passes through :func:`mcp_sync_auth._util.redact.clean_server_text` first.
"""

from __future__ import annotations

from typing import Any, Optional, TypeVar

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


class MissingExtra(ConfigurationError):
    """A feature was asked for whose optional dependency is not installed. ``extra`` names the extra
    that brings it (``redis`` for ``pip install 'mcp-sync-auth[redis]'``), and so does the message."""

    def __init__(self, message: str, *, extra: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.extra = extra


class WorkloadTokenError(ConfigurationError):
    """The workload's token (for the JWT bearer grant) cannot be read, is not a JWT, or has expired.
    Nothing was sent; the message says where the token was looked for, never what it holds."""


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


class RevocationFailed(TokenEndpointError):
    """Logging out could not revoke a token at the authorization server (RFC 7009): it could not be
    reached, failed (5xx), or refused the request (``invalid_client``...). Nothing was forgotten: the
    tokens are still stored, so the logout can be tried again, or made local only (``local_only=True``,
    ``--local-only``), which forgets them without telling the server. ``revoked`` names the tokens the
    server did revoke before the failure (the refresh token goes first)."""

    def __init__(self, message: str, *, revoked: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.revoked = revoked


class TokenStoreError(MCPAuthError):
    """The token store cannot be read or written safely (corrupt file, permissions, symlink...)."""


class CorruptTokenCache(TokenStoreError):
    """A cache file could not be parsed. It was moved aside (``quarantined_to``) for inspection."""

    def __init__(self, message: str, *, quarantined_to: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.quarantined_to = quarantined_to


class StoreKeyMismatch(TokenStoreError):
    """An encrypted record cannot be opened: it was encrypted with another key than the store's, or
    the store was given no key at all. The record is left as it is and nothing writes over it, since
    the right key still opens it.

    ``record_key_id`` is the id of the key that encrypted the record, ``store_key_id`` the id of the
    store's key (None when it has none). A key id is a short one-way fingerprint, never the key.
    """

    def __init__(
        self, message: str, *, record_key_id: str = "", store_key_id: Optional[str] = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.record_key_id = record_key_id
        self.store_key_id = store_key_id


class SealedRecordInvalid(CorruptTokenCache):
    """An encrypted record, sealed with the store's own key, fails authentication: it was altered,
    cut short, or copied from another record's place. Nothing in it can be trusted, so it is treated
    as a corrupt record: its tokens are lost, and a login replaces it. ``quarantined_to`` names where
    the store moved it, when it did."""


class UnsealedRecord(TokenStoreError):
    """A record is stored unencrypted while the store encrypts its records. It is refused, since
    anyone able to write to the store could have put it there, and left as it is. A store being
    moved to encryption accepts such records only when told to (``allow_plaintext``)."""


class RefreshInterrupted(MCPAuthError):
    """The thread leading a refresh was interrupted (Ctrl-C) before it sent any grant: the chain is
    intact. The threads that waited for that refresh get this; the next call refreshes normally."""


class StoreFull(TokenStoreError):
    """The store could not make room for the tokens a refresh would bring (a full disk, a quota, a
    read-only folder). No grant was sent: the chain is intact, and the call after the cause is fixed
    refreshes normally."""


class KeychainUnavailable(TokenStoreError):
    """The system keychain did not answer in time, is locked, or refused a call. Nothing was sent on
    its account: unlock the keychain, or choose the file store (``MCP_SYNC_AUTH_STORE=file``)."""


class LockTimeout(TokenStoreError):
    """The store's lock for a chain could not be taken in time. No refresh was attempted without it."""


class AuthorizationFailed(MCPAuthError):
    """A login (authorization code flow) could not complete; nothing was stored.

    ``error_code`` is the authorization server's ``error`` when it refused (``access_denied`` when
    the person pressed Deny), else None.
    """

    def __init__(self, message: str, *, error_code: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error_code = error_code


class DeviceLoginDenied(AuthorizationFailed):
    """The person declined the device login (RFC 8628 ``access_denied``); nothing was stored."""


class DeviceCodeExpired(AuthorizationFailed):
    """The device login's code expired (or the login timeout passed) before anyone approved it;
    nothing was stored. Start the login again for a new code."""


class PKCENotSupported(AuthorizationFailed):
    """The authorization server does not advertise PKCE with S256, so we refuse to use it."""


class StateMismatch(AuthorizationFailed):
    """The authorization response's ``state`` is not the one we sent: possibly a forged redirect."""


class AuthorizationResponseIssuerMismatch(AuthorizationFailed):
    """RFC 9207: the ``iss`` of the authorization response is missing or not the expected issuer."""


class RegistrationFailed(MCPAuthError):
    """The client could not be registered with the authorization server."""


class InsufficientScope(AuthorizationRequired):
    """The resource needs scopes the current tokens lack, and no interactive step-up is allowed.

    ``scopes`` names what the server asked for.
    """

    def __init__(self, message: str, *, scopes: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.scopes = scopes


_Login = TypeVar("_Login", bound=AuthorizationRequired)


def login_needed(kind: type[_Login], why: str, login_hint: str, **details: Any) -> _Login:
    """The one way to say "somebody has to log in": why, then what to do (also kept as ``login_hint``)."""
    return kind(f"{why}. {login_hint}".strip(), login_hint=login_hint, **details)


class DiscoveryError(MCPAuthError):
    """Protected resource or authorization server metadata could not be found, fetched or trusted.

    ``url`` names the document that failed, when there is one.
    """

    def __init__(self, message: str, *, url: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.url = url


class _Mismatch(DiscoveryError):
    """A document names something else than what we asked about: ``expected`` and ``actual``."""

    def __init__(
        self, message: str, *, expected: Optional[str] = None, actual: Optional[str] = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.expected = expected
        self.actual = actual


class ResourceMismatch(_Mismatch):
    """The protected resource metadata describes another resource than the MCP server (RFC 9728 §3.3),
    or nothing at the URL asked for is a protected resource (no metadata describes it, and it does not
    ask for authorization): most often a mistyped URL.

    No registration and no authorization request is made for it. ``expected`` is the URL asked for,
    ``actual`` what the metadata describes (None when no document was found), and ``suggestion`` the
    resource of the same origin the metadata offers instead, if there is one.
    """

    def __init__(self, message: str, *, suggestion: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.suggestion = suggestion


class IssuerMismatch(_Mismatch):
    """The authorization server metadata names another issuer than the one it was fetched for (RFC 8414 §3.3)."""


class ChallengeError(MCPAuthError):
    """A ``WWW-Authenticate`` header value is malformed (RFC 9110 §11.6.1, RFC 6750 §3)."""


class MCPProtocolError(MCPAuthError):
    """The MCP server answered something we cannot use: a malformed or missing response, an
    unsupported protocol version, or an HTTP error that is not (or is no longer) about tokens.

    ``status_code`` is the HTTP status when one was received (401/403 after the auth layer gave up
    land here too, with ``www_authenticate`` holding the challenge's non-secret parameters).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        www_authenticate: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.www_authenticate = www_authenticate


class JSONRPCError(MCPProtocolError):
    """The server answered a request with a JSON-RPC error object.

    ``message`` is the server's message (cleaned of control characters and our own token), ``data``
    the error's ``data`` member as sent.
    """

    def __init__(self, code: int, message: str, data: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException would call JSONRPCError(message) alone. Waiters of one refresh get copies of
        # the leader's error, and errors cross process boundaries pickled: rebuild from our own
        # arguments, and restore the rest (status_code...) as state.
        return (type(self), (self.code, self.message, self.data), dict(self.__dict__))

    def __str__(self) -> str:
        return f"JSON-RPC error {self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class ToolError(MCPProtocolError):
    """A tool call completed with ``isError: true``; ``result`` is the whole ``CallToolResult``."""

    def __init__(self, message: str, result: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        # As JSONRPCError: ``result`` is a required argument that BaseException does not know about.
        return (type(self), (self.message, self.result), dict(self.__dict__))


class ConnectionSetupError(MCPAuthError):
    """A request never reached its server for a reason a setting can fix: the server's certificate
    was not trusted (``kind`` ``"certificate"``: change ``REQUESTS_CA_BUNDLE`` or ``verify=``), or the
    proxy failed (``kind`` ``"proxy"``: change ``HTTPS_PROXY``/``NO_PROXY`` or ``proxies=``).

    ``host`` is the server's host, ``proxy`` the proxy's ``host:port`` (never its credentials). Raised
    as the error of the place that failed, which also derives from this class:
    a :class:`DiscoveryError`, :class:`RegistrationFailed`, :class:`TokenEndpointError` (transient: the
    server saw nothing) or :class:`MCPProtocolError`.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        host: Optional[str] = None,
        proxy: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.kind = kind
        self.host = host
        self.proxy = proxy


class DiscoveryConnectionError(DiscoveryError, ConnectionSetupError):
    """Discovery (metadata or the probe of the MCP URL) failed on a certificate or a proxy."""


class RegistrationConnectionError(RegistrationFailed, ConnectionSetupError):
    """Dynamic client registration failed on a certificate or a proxy."""


class TokenEndpointConnectionError(TokenEndpointError, ConnectionSetupError):
    """A token request failed on a certificate or a proxy; the token endpoint saw nothing of it."""


class RevocationConnectionError(RevocationFailed, ConnectionSetupError):
    """A revocation request failed on a certificate or a proxy: nothing was revoked by it, and the
    tokens are kept."""


class MCPConnectionError(MCPProtocolError, ConnectionSetupError):
    """A request of :class:`~mcp_sync_auth.MCPClient` failed on a certificate or a proxy."""
