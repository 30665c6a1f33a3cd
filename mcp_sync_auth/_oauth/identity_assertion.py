"""Enterprise-managed authorization (ID-JAG): a person's sign-in at the company's identity provider
becomes access to an MCP server without a consent screen.

Leg 1 is an RFC 8693 token exchange at the identity provider: the ID token for an identity
assertion JWT authorization grant (an ID-JAG) naming the MCP authorization server as its audience
and the resource. Leg 2 presents that ID-JAG in the JWT bearer grant at the MCP authorization
server, with the client's own authentication (RFC 7523 §2.1). An ID-JAG lives minutes and is used
once; every new chain (the first use, an expiry, a 401) makes a fresh exchange.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import requests

from .._util.credential_files import read_credential
from .._util.sessions import SessionSource
from .._util.timeouts import TimeoutLike
from ..errors import ConfigurationError, TokenEndpointConnectionError, TokenEndpointError
from .token_client import TOKEN_EXCHANGE_GRANT, TokenEndpointClient

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"

IdTokenProvider = Callable[[], str]
"""Return the person's current ID token from the identity provider."""


@dataclasses.dataclass(frozen=True)
class IdentityProviderSettings:
    """The identity provider that issues ID-JAGs, and this client's registration there.

    ``token_endpoint``: where the exchange goes. ``client_id``/``client_secret``: this client at the
    identity provider (``auth_method``: ``client_secret_basic`` by default, or ``client_secret_post``).
    The ID token comes from ``id_token_file`` (read for each exchange) or ``id_token_provider``.
    """

    token_endpoint: str
    client_id: str
    client_secret: Optional[str] = dataclasses.field(default=None, repr=False)
    auth_method: Optional[str] = None
    id_token_file: Optional[str] = None
    id_token_provider: Optional[IdTokenProvider] = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.id_token_file is None) == (self.id_token_provider is None):
            raise ConfigurationError("the identity provider needs one of id_token_file and id_token_provider")
        if self.auth_method not in (None, "client_secret_basic", "client_secret_post", "none"):
            raise ConfigurationError(f"unsupported identity provider auth method {self.auth_method!r}")

    def id_token(self) -> str:
        if self.id_token_provider is not None:
            token = self.id_token_provider()
            if not isinstance(token, str) or not token.strip():
                raise ConfigurationError("the ID token provider returned no token")
            return token.strip()
        assert self.id_token_file is not None
        raw = read_credential(self.id_token_file, f"the ID token in {self.id_token_file}")
        if not raw.strip():
            raise ConfigurationError(f"the ID token in {self.id_token_file} is empty")
        return raw.decode("ascii", errors="replace").strip()


class IdentityAssertions:
    """Leg 1: exchanges the ID token for an ID-JAG at the identity provider."""

    def __init__(
        self,
        settings: IdentityProviderSettings,
        *,
        session: Optional[requests.Session] = None,
        http: Optional[SessionSource] = None,
        timeout: TimeoutLike = 30.0,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        method = settings.auth_method or ("client_secret_basic" if settings.client_secret else "none")
        self._client = TokenEndpointClient(
            settings.token_endpoint,
            settings.client_id,
            client_secret=settings.client_secret,
            auth_method=method,
            session=session,
            http=http,
            timeout=timeout,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"IdentityAssertions({self.settings.token_endpoint!r}, client_id={self.settings.client_id!r})"

    def exchange(self, *, audience: str, resource: Optional[str], scopes: Optional[Sequence[str]]) -> str:
        """An ID-JAG for ``audience`` (the MCP authorization server's issuer) and ``resource``."""
        subject = self.settings.id_token()
        try:
            issued = self._client.token_exchange(
                subject,
                subject_token_type=ID_TOKEN_TYPE,
                requested_token_type=ID_JAG_TOKEN_TYPE,
                audience=audience,
                resource=resource,
                scopes=scopes,
            )
        except TokenEndpointConnectionError:
            raise  # it names the identity provider's host and the setting to change
        except TokenEndpointError as exc:
            raise TokenEndpointError(
                f"the identity provider refused to exchange the ID token for an ID-JAG: {exc}",
                status_code=exc.status_code,
                error_code=exc.error_code,
                transient=exc.transient,
            ) from None
        return issued


__all__ = [
    "ID_JAG_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "TOKEN_EXCHANGE_GRANT",
    "IdTokenProvider",
    "IdentityAssertions",
    "IdentityProviderSettings",
]
