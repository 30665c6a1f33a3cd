"""Headless logins against :class:`StrictAuthServer`: the browser replaced by one HTTP request.

The server consents automatically, so a browser would only follow ``/authorize``'s 302 to the
client's redirect URI. :func:`auto_consent_handler` does exactly that and hands the redirect URL back
to the authorization code flow; :func:`login` runs that real flow (discovery, registration, PKCE)
and returns an ``MCPAuth`` holding the new chain.
"""

from __future__ import annotations

from typing import Any, Optional

import requests

from .._stores.memory import MemoryTokenStore
from .._stores.protocol import TokenStore
from ..auth import MCPAuth
from ..errors import AuthorizationFailed
from .server import StrictAuthServer

__all__ = ["auto_consent_handler", "login"]

CONSENT_TIMEOUT = 10.0


def auto_consent_handler(url: str) -> str:
    """An ``authorization_handler``: GET the authorization URL without following redirects and
    return the ``Location`` it redirects to (carrying ``code`` and ``state``, or an ``error``)."""
    with requests.Session() as session:
        # The test server is on loopback: a proxy from the environment must not see this request.
        session.trust_env = False
        answer = session.get(url, allow_redirects=False, timeout=CONSENT_TIMEOUT)
    location = answer.headers.get("Location")
    if answer.status_code not in (302, 303) or not location:
        raise AuthorizationFailed(
            f"the authorization endpoint answered {answer.status_code} instead of a redirect: {answer.text[:200]}"
        )
    return location


def login(server: StrictAuthServer, store: Optional[TokenStore] = None, **options: Any) -> MCPAuth:
    """A new chain for ``server`` through the real authorization code + PKCE flow, no browser.

    ``store`` defaults to a :class:`~mcp_sync_auth.MemoryTokenStore`; ``options`` go to ``MCPAuth``
    (pass the server's ``clock`` if it has one). The returned auth is non-interactive: if the chain
    dies, calls raise ``AuthorizationRequired`` instead of quietly logging in again, so a test sees it.
    """
    options.setdefault("authorization_handler", auto_consent_handler)
    options.setdefault("interactive", False)
    auth = MCPAuth(server.mcp_url, store=store if store is not None else MemoryTokenStore(), **options)
    auth.login()
    return auth
