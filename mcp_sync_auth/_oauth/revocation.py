"""Logging out at the authorization server: token revocation (RFC 7009).

The refresh token goes first: revoking it ends the grant (RFC 7009 §2.1 lets a server revoke the
chain's access tokens with it), so a failure after that leaves nothing usable for long. The access
token follows. Each request carries the client's own authentication, exactly as a token request
(a secret, or a fresh ``private_key_jwt`` assertion), through the same session and timeouts.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import requests

from .._chain.tokens import TokenSet
from .._util.redact import clean_server_text, fingerprint
from .._util.sessions import no_auth
from .._util.untrusted import json_object, read_at_most
from .._util.urls import require_secure
from ..errors import RevocationConnectionError, RevocationFailed
from .token_client import TokenEndpointClient

log = logging.getLogger(__name__)

REFRESH_TOKEN = "refresh_token"
ACCESS_TOKEN = "access_token"
MAX_ERROR_BYTES = 64 * 1024
LOCAL_ONLY_HINT = "pass local_only=True (mcp-sync-auth logout --local-only) to forget them without telling the server"


def tokens_kept_hint(failed: str = "") -> str:
    """What a certificate or proxy failure (whose own message names the setting to change) means for
    a logout: what ``failed``, if the failure does not say it already, and that nothing was forgotten."""
    lead = f"{failed[:1].upper()}{failed[1:]} failed, and the tokens are kept" if failed else "The tokens are kept"
    return f"{lead}: fix that, or {LOCAL_ONLY_HINT}"


@dataclasses.dataclass(frozen=True)
class LogoutResult:
    """What a logout did.

    ``revoked``: the token kinds the authorization server revoked, in order ("refresh_token",
    "access_token"). ``local_only``: only the local copy was removed, the server was not told (it
    has no revocation endpoint, or ``local_only=True`` was asked for); ``reason`` says which, and
    after a failed revocation with ``local_only=True``, what failed. ``removed``: whether tokens
    were stored at all."""

    server: str
    revoked: tuple[str, ...] = ()
    local_only: bool = False
    removed: bool = True
    reason: str = ""

    def describe(self) -> str:
        """One line for people; never a token."""
        if not self.removed:
            return f"no tokens were stored for {self.server}; nothing to log out"
        if not self.local_only:
            told = " and the ".join(kind.replace("_", " ") for kind in self.revoked) or "nothing"
            return f"logged out of {self.server}: the server revoked the {told}, and the local copy was removed"
        why = f" ({self.reason})" if self.reason else ""
        return f"logged out of {self.server}: only the local copy was removed{why}"


class TokenRevoker:
    """Revokes tokens at one revocation endpoint, authenticating as ``client`` does at the token endpoint."""

    def __init__(self, endpoint: str, client: TokenEndpointClient) -> None:
        self.endpoint = require_secure(endpoint, "the revocation endpoint")
        self._client = client

    def __repr__(self) -> str:
        return f"TokenRevoker({self.endpoint!r}, client_id={self._client.client_id!r})"

    def revoke_all(self, tokens: TokenSet) -> tuple[str, ...]:
        """Revoke the refresh token, then the access token: the kinds revoked. RevocationFailed at the
        first failure (naming what was revoked before it)."""
        revoked: list[str] = []
        pairs = ((REFRESH_TOKEN, tokens.refresh_token), (ACCESS_TOKEN, tokens.access_token))
        for kind, token in pairs:
            if not token:
                continue
            try:
                if self.revoke(token, kind, secrets=(tokens.access_token, tokens.refresh_token)):
                    revoked.append(kind)
            except RevocationFailed as exc:
                exc.revoked = tuple(revoked)
                raise
        return tuple(revoked)

    def revoke(self, token: str, kind: str, *, secrets: tuple[Optional[str], ...] = ()) -> bool:
        """One revocation request. True when revoked (HTTP 200, also for a token the server no longer
        knows, RFC 7009 §2.2); False when the server does not revoke this kind of token
        (``unsupported_token_type``, which RFC 7009 §2.2.1 allows for access tokens)."""
        form, headers, credentials = self._client.authentication()
        form.update({"token": token, "token_type_hint": kind})
        secrets = (token, *secrets, *credentials)
        timeouts = self._client.timeouts
        what = f"revoking the {kind.replace('_', ' ')} at {self.endpoint}"
        log.debug("revoking %s <%s> at %s", kind, fingerprint(token), self.endpoint)
        try:
            response = self._client.http.request(
                "POST",
                self.endpoint,
                failure=RevocationConnectionError,
                details={"transient": True},
                hint=tokens_kept_hint(what),
                data=form,
                headers=headers,
                timeout=timeouts.for_grants,
                allow_redirects=False,
                stream=True,
                auth=no_auth,
            )
        except RevocationConnectionError:
            raise  # it names the setting to change, and what that means for the tokens
        except requests.exceptions.RequestException as exc:
            raise RevocationFailed(
                f"{what} failed: no answer ({type(exc).__name__}); the tokens are kept. {LOCAL_ONLY_HINT}",
                transient=True,
            ) from None
        with response:
            try:
                raw = read_at_most(response, MAX_ERROR_BYTES)
            except requests.exceptions.RequestException:
                raw = None
        status = response.status_code
        if status == 200:
            return True
        document = json_object(raw) if raw is not None else None
        code = document.get("error") if document is not None else None
        code = clean_server_text(code, secrets) if isinstance(code, str) else None
        if code == "unsupported_token_type" and kind == ACCESS_TOKEN:
            log.info("%s does not revoke access tokens; the access token stays valid until it expires", self.endpoint)
            return False
        detail = f"HTTP {status}" + (f", {code}" if code else "")
        raise RevocationFailed(
            f"{what} failed ({detail}); the tokens are kept. {LOCAL_ONLY_HINT}",
            status_code=status,
            error_code=code,
            transient=status >= 500 or code == "temporarily_unavailable",
        )


__all__ = ["ACCESS_TOKEN", "LOCAL_ONLY_HINT", "REFRESH_TOKEN", "LogoutResult", "TokenRevoker", "tokens_kept_hint"]
