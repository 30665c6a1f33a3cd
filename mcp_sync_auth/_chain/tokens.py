"""The token set: what a token endpoint gave us, with expiry arithmetic and a repr that shows no secret."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from .._util.checks import is_finite_number, is_integer
from .._util.redact import fingerprint
from ..errors import TokenEndpointError

# Never refresh earlier than this fraction of a token's lifetime before it expires: a token that lives
# ten seconds must not be refreshed on every call because the configured skew is a minute.
MAX_SKEW_FRACTION = 0.25
# Access tokens longer than this are not what any sane server issues; refuse them rather than store them.
MAX_TOKEN_LENGTH = 64 * 1024


@dataclasses.dataclass(frozen=True, repr=False)
class TokenSet:
    """One immutable snapshot of a chain's tokens. Callers never see half of two different sets."""

    access_token: str
    token_type: str = "Bearer"
    refresh_token: Optional[str] = None
    expires_at: Optional[float] = None
    obtained_at: float = 0.0
    scope: Optional[str] = None
    generation: int = 0
    # The chain's DPoP private key (a JWK, JSON text), as secret as the refresh token it is bound to.
    dpop_key: Optional[str] = None

    def __repr__(self) -> str:
        expires = "never" if self.expires_at is None else f"{self.expires_at:.3f}"
        bound = ", dpop" if self.dpop_key else ""
        return (
            f"TokenSet(generation={self.generation}, access_token=<{fingerprint(self.access_token)}>, "
            f"refresh_token=<{fingerprint(self.refresh_token)}>, expires_at={expires}, scope={self.scope!r}{bound})"
        )

    @property
    def is_dpop(self) -> bool:
        """The access token is DPoP-bound: sent as ``Authorization: DPoP``, with a proof."""
        return self.token_type.lower() == "dpop" and self.dpop_key is not None

    __str__ = __repr__

    def effective_skew(self, skew: float) -> float:
        """The configured skew, capped at a fair fraction of this token's lifetime."""
        if self.expires_at is None:
            return 0.0
        lifetime = max(self.expires_at - self.obtained_at, 0.0)
        return min(skew, lifetime * MAX_SKEW_FRACTION)

    def is_fresh(self, now: float, skew: float) -> bool:
        """Valid and outside the refresh window: use it as it is."""
        if self.expires_at is None:
            return True
        return now < self.expires_at - self.effective_skew(skew)

    def is_usable(self, now: float) -> bool:
        """Not yet expired, even if inside the refresh window."""
        return self.expires_at is None or now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "scope": self.scope,
            "generation": self.generation,
            **({"dpop_key": self.dpop_key} if self.dpop_key else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenSet:
        """Rebuild a set written by :meth:`to_json`; raises ``ValueError`` on any wrong shape."""
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ValueError("access_token missing or not a string")
        token_type = data.get("token_type", "Bearer")
        refresh_token = data.get("refresh_token")
        expires_at = data.get("expires_at")
        obtained_at = data.get("obtained_at", 0.0)
        scope = data.get("scope")
        generation = data.get("generation", 0)
        dpop_key = data.get("dpop_key")
        if dpop_key is not None and (not isinstance(dpop_key, str) or not dpop_key):
            raise ValueError("dpop_key is not a string")
        if not isinstance(token_type, str):
            raise ValueError("token_type is not a string")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise ValueError("refresh_token is not a string")
        if expires_at is not None and not is_finite_number(expires_at):
            raise ValueError("expires_at is not a number")
        if not is_finite_number(obtained_at):
            raise ValueError("obtained_at is not a number")
        if scope is not None and not isinstance(scope, str):
            raise ValueError("scope is not a string")
        if not is_integer(generation) or generation < 0:
            raise ValueError("generation is not a non-negative integer")
        return cls(
            access_token=access_token,
            token_type=token_type,
            refresh_token=refresh_token,
            expires_at=None if expires_at is None else float(expires_at),
            obtained_at=float(obtained_at),
            scope=scope,
            generation=generation,
            dpop_key=dpop_key,
        )


def parse_token_response(
    body: Mapping[str, Any],
    *,
    now: float,
    generation: int,
    previous: Optional[TokenSet] = None,
    dpop_key: Optional[str] = None,
) -> TokenSet:
    """Validate a successful token endpoint response (RFC 6749 §5.1) and turn it into a ``TokenSet``.

    ``previous`` is the set being refreshed: a server that does not rotate may omit ``refresh_token``
    (keep the old one), and may omit ``scope`` when it is unchanged (RFC 6749 §5.1). ``dpop_key``:
    the request carried a DPoP proof of this key, so a ``DPoP`` token type is expected (RFC 9449 §5);
    the key goes with the new set.
    Raises :class:`TokenEndpointError` (never with a token in the message) on any wrong shape.
    """

    def bad(what: str) -> TokenEndpointError:
        return TokenEndpointError(f"the token endpoint's response is unusable: {what}", ambiguous=True)

    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise bad("'access_token' is missing or not a string")
    if len(access_token) > MAX_TOKEN_LENGTH or not _is_visible_ascii(access_token):
        # It goes into an HTTP header: only visible ASCII can (RFC 6750 §2.1 b64token is narrower still).
        raise bad("'access_token' is too long or holds characters a header cannot carry")
    token_type = body.get("token_type")
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind == "dpop" and dpop_key is None:
        raise bad("'token_type' is 'DPoP', but the request proved no key (a DPoP token cannot be sent as Bearer)")
    if kind not in ("bearer", "dpop"):
        raise bad("'token_type' must be 'Bearer' (or 'DPoP' after a DPoP proof)")
    refresh_token = body.get("refresh_token")
    if refresh_token is None:
        refresh_token = previous.refresh_token if previous is not None else None
    elif not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > MAX_TOKEN_LENGTH:
        raise bad("'refresh_token' is not a usable string")
    expires_in = body.get("expires_in")
    expires_at: Optional[float]
    if expires_in is None:
        expires_at = None
    else:
        seconds = _parse_expires_in(expires_in)
        if seconds is None:
            raise bad("'expires_in' is not a non-negative number of seconds")
        expires_at = now + seconds
    scope = body.get("scope")
    if scope is None:
        scope = previous.scope if previous is not None else None
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scope = " ".join(scope)  # a common deviation from RFC 6749; harmless to accept
    elif not isinstance(scope, str):
        raise bad("'scope' is not a string")
    return TokenSet(
        access_token=access_token,
        token_type="DPoP" if kind == "dpop" else "Bearer",
        refresh_token=refresh_token,
        expires_at=expires_at,
        obtained_at=now,
        scope=scope,
        generation=generation,
        dpop_key=dpop_key,
    )


def _is_visible_ascii(text: str) -> bool:
    return all("!" <= ch <= "~" for ch in text)


def _parse_expires_in(value: object) -> Optional[float]:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not is_finite_number(value):
        return None
    # Ten years is already absurd; anything above it is a bug we should not store as "never expires".
    if value < 0 or value > 10 * 365 * 24 * 3600:
        return None
    return float(value)
