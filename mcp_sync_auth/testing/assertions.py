"""JWT assertions at the token endpoint (RFC 7521, RFC 7523): client assertions (``private_key_jwt``)
and the JWT bearer authorization grant.

One verifier for both, with the rules that differ held in :class:`AssertionRules`: the error every
failure answers (``invalid_client`` for a client assertion, ``invalid_grant`` for a grant), whether
``iat`` is required and how long an assertion may live. Every failure says what is wrong and never
quotes the assertion. The signature is checked with PyJWT (the ``jwt`` extra); the claims are checked
here, on the server's clock, and ``jti`` values are remembered by :class:`ReplayCache` (which the
state guards with its lock) until the assertion would be refused as expired anyway.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Protocol, Tuple

from .._util.jwt_extra import jwt_module
from .audit import fingerprint
from .errors import OAuthError
from .jwt_keys import ALGORITHMS, PublicKey

__all__ = [
    "CLIENT_ASSERTION",
    "GRANT_ASSERTION",
    "LEEWAY",
    "MAX_CLIENT_ASSERTION_LIFETIME",
    "AssertionRules",
    "ReplayCache",
    "ReplayGuardedState",
    "UnverifiedJwt",
    "VerifiedAssertion",
    "read_jwt",
    "unverified_claim",
    "unverified_header",
    "verify_assertion",
]

LEEWAY = 30.0
"""Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``."""

MAX_CLIENT_ASSERTION_LIFETIME = 600.0
"""A client assertion may expire at most this long after it was issued (``iat``, else now)."""

# PyJWT checks the signature only; the claims are checked below on the server's (injectable) clock.
_SIGNATURE_ONLY = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


@dataclass(frozen=True)
class AssertionRules:
    """What differs between the two uses of an assertion."""

    error: str
    """The OAuth error code of every failure."""
    name: str
    """How error descriptions call the JWT."""
    require_iat: bool
    max_lifetime: Optional[float]
    audience: str = "this authorization server"
    """How error descriptions call what ``aud`` must name."""


CLIENT_ASSERTION = AssertionRules(
    "invalid_client", "client assertion", require_iat=False, max_lifetime=MAX_CLIENT_ASSERTION_LIFETIME
)
GRANT_ASSERTION = AssertionRules("invalid_grant", "assertion", require_iat=True, max_lifetime=None)


@dataclass(frozen=True)
class UnverifiedJwt:
    """A JWT's header and claims, read but not verified: only for finding the key that verifies it."""

    token: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    def claim(self, name: str) -> Optional[str]:
        """A string claim, or None when absent, empty or not a string."""
        value = self.claims.get(name)
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class VerifiedAssertion:
    issuer: str
    subject: str
    jti: str
    expires_at: float
    claims: Mapping[str, Any]

    def keep_until(self) -> float:
        """How long the ``jti`` must be remembered: as long as the assertion would be accepted."""
        return self.expires_at + LEEWAY


def _segment(text: str) -> Dict[str, Any]:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    value = json.loads(raw.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _decode(token: str) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    try:
        return _segment(parts[0]), _segment(parts[1])
    except (ValueError, binascii.Error):  # JSON, UTF-8 and base64 errors are all ValueErrors
        return None


def unverified_claim(token: str, name: str) -> Optional[str]:
    """A string claim of ``token`` read without verifying anything (for auditing); never raises."""
    decoded = _decode(token)
    value = decoded[1].get(name) if decoded else None
    return value if isinstance(value, str) and value else None


def unverified_header(token: str, name: str) -> Optional[str]:
    """A string header parameter of ``token`` (from its first segment, however malformed the rest)
    read without verifying anything; never raises."""
    try:
        value = _segment(token.split(".", 1)[0]).get(name)
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, str) and value else None


def read_jwt(token: str, rules: AssertionRules) -> UnverifiedJwt:
    """Header and claims of a compact JWS. Needs PyJWT (MissingExtra), since verifying will."""
    jwt_module(f"verifying a JWT {rules.name}")
    decoded = _decode(token)
    if decoded is None:
        raise OAuthError(rules.error, f"the {rules.name} is not a well-formed JWT")
    return UnverifiedJwt(token, decoded[0], decoded[1])


def _algorithm(jwt: UnverifiedJwt, key: PublicKey, rules: AssertionRules, whose: str) -> str:
    alg = jwt.header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = f" {alg!r}" if isinstance(alg, str) and alg.isalnum() and len(alg) <= 16 else ""
        raise OAuthError(rules.error, f"the {rules.name}'s alg{shown} is not accepted (only {', '.join(ALGORITHMS)})")
    if not key.fits(alg):
        raise OAuthError(
            rules.error, f"the {rules.name}'s alg {alg} does not fit {whose} key ({', '.join(key.algorithms)})"
        )
    return alg


def _check_signature(jwt: UnverifiedJwt, key: PublicKey, rules: AssertionRules, whose: str) -> None:
    alg = _algorithm(jwt, key, rules, whose)
    pyjwt = jwt_module(f"verifying a JWT {rules.name}")
    try:
        pyjwt.decode(jwt.token, key.key, algorithms=[alg], options=_SIGNATURE_ONLY)
    except pyjwt.InvalidSignatureError:
        raise OAuthError(rules.error, f"the {rules.name}'s signature does not verify with {whose} key") from None
    except pyjwt.PyJWTError:
        raise OAuthError(rules.error, f"the {rules.name} is not a well-formed JWT") from None


def _number(claims: Mapping[str, Any], name: str, rules: AssertionRules) -> Optional[float]:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OAuthError(rules.error, f"the {rules.name}'s {name} must be a number (seconds since the epoch)")
    return float(value)


def _audiences(claims: Mapping[str, Any], rules: AssertionRules) -> List[str]:
    aud = claims.get("aud")
    if aud is None:
        raise OAuthError(rules.error, f"the {rules.name} has no aud")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise OAuthError(rules.error, f"the {rules.name}'s aud must be a string or an array of strings")
    return values


def _check_times(claims: Mapping[str, Any], rules: AssertionRules, now: float) -> float:
    expires_at = _number(claims, "exp", rules)
    if expires_at is None:
        raise OAuthError(rules.error, f"the {rules.name} has no exp")
    if now > expires_at + LEEWAY:
        raise OAuthError(rules.error, f"the {rules.name} has expired")
    not_before = _number(claims, "nbf", rules)
    if not_before is not None and now + LEEWAY < not_before:
        raise OAuthError(rules.error, f"the {rules.name} is not valid yet (nbf)")
    issued_at = _number(claims, "iat", rules)
    if issued_at is None and rules.require_iat:
        raise OAuthError(rules.error, f"the {rules.name} has no iat")
    if issued_at is not None and issued_at > now + LEEWAY:
        raise OAuthError(rules.error, f"the {rules.name} was issued in the future (iat)")
    if rules.max_lifetime is not None:
        start, allowed = (
            (issued_at, rules.max_lifetime) if issued_at is not None else (now, rules.max_lifetime + LEEWAY)
        )
        if expires_at - start > allowed:
            raise OAuthError(
                rules.error,
                f"the {rules.name} lives too long: exp may be at most {rules.max_lifetime:g} s after iat",
            )
    return expires_at


def verify_assertion(
    jwt: UnverifiedJwt,
    key: PublicKey,
    *,
    rules: AssertionRules,
    issuer: str,
    audiences: Collection[str],
    now: float,
    whose: str,
) -> VerifiedAssertion:
    """Check ``jwt``'s signature with ``key`` and its claims (RFC 7523 §3): ``iss`` is ``issuer``,
    ``sub`` is there, ``aud`` names one of ``audiences``, ``exp`` (and ``nbf``, ``iat``) fit ``now``,
    ``jti`` is there. Replay is the caller's check (with the returned ``jti``). ``whose`` names the key
    in messages ("the client's registered")."""
    _check_signature(jwt, key, rules, whose)
    claims = jwt.claims
    if jwt.claim("iss") != issuer:
        raise OAuthError(rules.error, f"the {rules.name}'s iss is not the expected issuer")
    subject = jwt.claim("sub")
    if subject is None:
        raise OAuthError(rules.error, f"the {rules.name} has no sub")
    if not set(_audiences(claims, rules)) & set(audiences):
        raise OAuthError(rules.error, f"the {rules.name}'s aud does not name {rules.audience}")
    expires_at = _check_times(claims, rules, now)
    jti = jwt.claim("jti")
    if jti is None:
        raise OAuthError(rules.error, f"the {rules.name} has no jti")
    return VerifiedAssertion(issuer=issuer, subject=subject, jti=jti, expires_at=expires_at, claims=claims)


class ReplayCache:
    """``jti`` values already accepted, each kept until its assertion would be refused as expired.

    Not thread-safe on its own: the state calls it under its lock.
    """

    def __init__(self) -> None:
        self._seen: Dict[Tuple[str, ...], float] = {}
        self._expiry: List[Tuple[float, Tuple[str, ...]]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def spend(self, key: Tuple[str, ...], keep_until: float, now: float) -> bool:
        """Remember ``key`` until ``keep_until``; False if it is remembered already (a replay)."""
        while self._expiry and self._expiry[0][0] < now:
            until, old = heapq.heappop(self._expiry)
            if self._seen.get(old) == until:
                del self._seen[old]
        if key in self._seen:
            return False
        self._seen[key] = keep_until
        heapq.heappush(self._expiry, (keep_until, key))
        return True


REPLAYED = "assertion_replayed"
"""The audit event of a refused second use (``EventKind`` and ``IdpEventKind`` both name it)."""


class _ReplayRecorder(Protocol):
    assertion_replays: int

    def event(self, time: float, kind: str, client_id: Optional[str], detail: str) -> None: ...


class ReplayGuardedState:
    """Mixin of a server state that accepts each signed assertion once: the authorization server's
    (client assertions, JWT bearer grants) and the identity provider's (its client assertions)."""

    _lock: threading.Lock
    _changed: threading.Condition
    _clock: Callable[[], float]
    _replays: ReplayCache
    _audit: Any  # the state's recorder: a _ReplayRecorder, among what else it records

    def spend_assertion(self, use: str, client_id: Optional[str], assertion: VerifiedAssertion) -> bool:
        """Remember a verified assertion's ``jti``; False (audited) if it was used already.

        ``use`` ("client_assertion" or the grant type) keeps the two uses apart."""
        recorder: _ReplayRecorder = self._audit
        with self._lock:
            now = self._clock()
            if self._replays.spend((use, assertion.issuer, assertion.jti), assertion.keep_until(), now):
                return True
            recorder.assertion_replays += 1
            recorder.event(now, REPLAYED, client_id, f"{use}: iss={assertion.issuer} jti={fingerprint(assertion.jti)}")
            self._changed.notify_all()
            return False
