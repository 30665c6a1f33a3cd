"""Client assertions for ``private_key_jwt`` (RFC 7523 §2.2 and §3): a fresh, short-lived JWT for
every token request, naming the client as issuer and subject and the authorization server as its
audience."""

from __future__ import annotations

import secrets
from typing import Callable, Optional

from ..errors import ConfigurationError
from .signing import SigningKey

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Long enough for a slow token endpoint, short enough that a copy is worth little.
ASSERTION_LIFETIME = 60.0

AssertionProvider = Callable[[str], str]
"""Given the audience (the authorization server's issuer), return a ready, signed client assertion."""


class ClientAssertions:
    """Makes the client assertion of each token request: signed here with ``key``, or asked of
    ``provider`` (a key kept in an HSM or a cloud KMS, say)."""

    def __init__(
        self,
        client_id: str,
        *,
        key: Optional[SigningKey] = None,
        provider: Optional[AssertionProvider] = None,
        clock: Callable[[], float],
        lifetime: float = ASSERTION_LIFETIME,
    ) -> None:
        if (key is None) == (provider is None):
            raise ConfigurationError("private_key_jwt needs exactly one of a private key or an assertion provider")
        self.client_id = client_id
        self._key = key
        self._provider = provider
        self._clock = clock
        self._lifetime = lifetime

    def __repr__(self) -> str:
        how = repr(self._key) if self._key is not None else "provider"
        return f"ClientAssertions({self.client_id!r}, {how})"

    def __call__(self, audience: str) -> str:
        if self._provider is not None:
            made = self._provider(audience)
            if not isinstance(made, str) or made.count(".") != 2:
                raise ConfigurationError("the client assertion provider did not return a compact JWT")
            return made
        assert self._key is not None
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + int(self._lifetime),
        }
        return self._key.sign(claims)


__all__ = ["ASSERTION_LIFETIME", "CLIENT_ASSERTION_TYPE", "AssertionProvider", "ClientAssertions"]
