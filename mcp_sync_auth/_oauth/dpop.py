"""DPoP (RFC 9449): proofs of possession of the chain's key, and the servers' nonces.

Each chain that uses DPoP has one EC P-256 key, made at login and stored with the chain's tokens (a
DPoP-bound refresh token works only with proofs from that key, so every thread, process and host
that shares the chain must share the key). Every request, and every resend, carries a fresh proof.
Servers may demand a nonce: the latest one each origin sent is kept for all threads, and a request
refused with ``use_dpop_nonce`` is sent again once with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from .._util.recent import RecentMap
from .._util.urls import origin
from .signing import SigningKey

DPOP_TYPE = "dpop+jwt"


USE_DPOP_NONCE = "use_dpop_nonce"


def _is_nqchar(ch: str) -> bool:
    """RFC 9449 §8.1: %x21 / %x23-5B / %x5D-7E (visible ASCII but the quote and the backslash)."""
    return "!" <= ch <= "~" and ch not in ('"', "\\")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(public_jwk: Mapping[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC public JWK (its required members, in order)."""
    canonical = json.dumps({name: public_jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """``ath``: the access token's SHA-256, base64url (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(access_token.encode("utf-8")).digest())


def target_uri(url: str) -> str:
    """``htu``: the request URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class DPoPKey:
    """A chain's DPoP key: signs proofs; its private JWK is what the store keeps."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self.public_jwk = key.public_jwk()
        self.thumbprint = thumbprint(self.public_jwk)

    def __repr__(self) -> str:
        return f"DPoPKey(jkt={self.thumbprint[:8]}...)"

    @classmethod
    def generate(cls) -> DPoPKey:
        return cls(SigningKey.generate())

    @classmethod
    def from_private_jwk(cls, text: str) -> DPoPKey:
        return cls(SigningKey.from_private_jwk(text))

    def private_jwk(self) -> str:
        return self._key.private_jwk()

    def proof(
        self, method: str, url: str, *, now: float, access_token: Optional[str] = None, nonce: Optional[str] = None
    ) -> str:
        """A fresh proof for one request (its own ``jti``)."""
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": target_uri(url),
            "iat": int(now),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return self._key.sign(claims, headers={"typ": DPOP_TYPE, "jwk": self.public_jwk})


class KeyRing:
    """Loaded keys by their stored JWK text: a request signs without parsing the key again."""

    def __init__(self, size: int = 256) -> None:
        self._keys: RecentMap[str, DPoPKey] = RecentMap(size)

    def key(self, private_jwk: str) -> DPoPKey:
        """The loaded key; on every request, so a known key costs one lock-free lookup."""
        found = self._keys.get(private_jwk)
        if found is None:
            found = DPoPKey.from_private_jwk(private_jwk)
            self._keys.put(private_jwk, found)
        return found


class Nonces:
    """The latest ``DPoP-Nonce`` each endpoint gave, shared by every thread of the process.

    An authorization server and a resource on one origin may each keep their own nonce, so a nonce
    is kept for the URL that gave it (its ``htu``) and, as a first guess for the origin's other
    URLs, for the origin too.
    """

    def __init__(self, size: int = 1024) -> None:
        self._latest: RecentMap[str, str] = RecentMap(size)

    def get(self, url: str) -> Optional[str]:
        """Read on every DPoP request, so it takes no lock."""
        return self._latest.get(target_uri(url)) or self._latest.get(_origin_key(url))

    def remember(self, url: str, headers: Mapping[str, str]) -> Optional[str]:
        """Keep the nonce a response carries (any status may carry one); the nonce, or None."""
        nonce = headers.get("DPoP-Nonce")
        if not nonce or len(nonce) > 1024 or not all(_is_nqchar(ch) for ch in nonce):
            return None  # RFC 9449 §8.1: a nonce is 1*NQCHAR; anything else is not one
        self._latest.put(target_uri(url), nonce)
        self._latest.put(_origin_key(url), nonce)
        return nonce


def _origin_key(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


KEYS = KeyRing()
NONCES = Nonces()

ProofMaker = Callable[[str, str, Optional[str]], str]
"""(method, url, access token) -> a fresh proof, with the origin's current nonce."""


def proof_maker(key: DPoPKey, clock: Callable[[], float], nonces: Nonces = NONCES) -> ProofMaker:
    def make(method: str, url: str, access_token: Optional[str]) -> str:
        return key.proof(method, url, now=clock(), access_token=access_token, nonce=nonces.get(url))

    return make


__all__ = [
    "DPOP_TYPE",
    "KEYS",
    "NONCES",
    "USE_DPOP_NONCE",
    "DPoPKey",
    "KeyRing",
    "Nonces",
    "ProofMaker",
    "access_token_hash",
    "proof_maker",
    "target_uri",
    "thumbprint",
]
