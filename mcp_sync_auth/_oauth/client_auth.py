"""How the client authenticates at the token endpoint: the methods we speak, and the one rule that picks one."""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import RegistrationFailed

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")


def choose_auth_method(
    has_secret: bool,
    supported: Optional[Sequence[str]] = None,
    registered: Optional[str] = None,
    *,
    has_key: bool = False,
) -> str:
    """What registration (or the user) said, else what the server offers, else the RFC 8414 default.

    A client given a private key signs assertions (``private_key_jwt``) unless the server lists
    methods without it. Without a secret the client is public ("none"). A server that lists no
    methods is read as offering ``client_secret_basic`` (RFC 8414 §2), so a hand-configured secret
    goes in Basic auth.
    """
    if registered is not None and registered in AUTH_METHODS:
        return registered
    if has_key:
        if not supported or "private_key_jwt" in supported:
            return "private_key_jwt"
        if not has_secret:
            raise RegistrationFailed(
                "the authorization server does not accept private_key_jwt "
                f"(it supports {', '.join(supported)}); give a client_secret instead"
            )
    if not has_secret:
        return "none"
    offered = list(supported) if supported else ["client_secret_basic"]
    for method in ("client_secret_basic", "client_secret_post", "none"):
        if method in offered:
            return method  # "none": the server gave a secret it does not ask for; act as a public client
    raise RegistrationFailed(
        f"the authorization server supports none of our client authentication methods ({', '.join(offered)})"
    )


__all__ = ["AUTH_METHODS", "choose_auth_method"]
