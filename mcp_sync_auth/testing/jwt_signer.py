"""The signing key of a test token issuer (a workload identity issuer, an identity provider): a fresh
EC P-256 key per instance, signing ES256 (or making unsigned JWTs, for tests that they are refused).

The private key never leaves the instance. Needs the ``jwt`` extra (PyJWT with cryptography).
"""

from __future__ import annotations

import importlib
import secrets
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .._util.jwt_extra import jwt_module
from .overrides import REMOVE

__all__ = ["SIGNING_ALGORITHMS", "JwtSigner", "SignerKeys", "subject_claims", "with_extra_claims"]

SIGNING_ALGORITHMS = ("ES256", "none")
"""``ES256`` signs with the issuer's key; ``none`` makes an unsigned JWT, for tests that it is refused."""


def subject_claims(
    issuer: str,
    subject: str,
    audience: Union[str, Sequence[str]],
    *,
    issued_at: int,
    lifetime: float,
    jti: Optional[str],
    auth_time: Optional[int] = None,
) -> Dict[str, Any]:
    """The claims of a token issued to ``subject``: ``iss``, ``sub``, ``aud``, ``iat``, ``exp``
    (``lifetime`` after ``issued_at``), ``auth_time`` when given and ``jti`` (random unless given)."""
    claims: Dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience if isinstance(audience, str) else list(audience),
        "iat": issued_at,
        "exp": issued_at + int(lifetime),
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    claims["jti"] = jti if jti is not None else secrets.token_urlsafe(16)
    return claims


def with_extra_claims(claims: Dict[str, Any], extra_claims: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``claims`` with ``extra_claims`` added or replacing; a claim mapped to :data:`REMOVE` is left out."""
    for name, value in (extra_claims or {}).items():
        if value is REMOVE:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class JwtSigner:
    """An EC P-256 key that signs JWTs (ES256), with its public key in the usual forms."""

    def __init__(self, purpose: str, key_id: str) -> None:
        self._jwt = jwt_module(purpose)
        ec = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
        self._private_key: Any = ec.generate_private_key(ec.SECP256R1())
        self.key_id = key_id

    @property
    def public_key(self) -> Any:
        """The cryptography public key."""
        return self._private_key.public_key()

    @property
    def public_key_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo) text."""
        serialization = importlib.import_module("cryptography.hazmat.primitives.serialization")
        pem: bytes = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")

    @property
    def public_jwk(self) -> Dict[str, Any]:
        """The public key as a JWK (with ``kid``, ``alg`` and ``use``)."""
        jwk: Dict[str, Any] = self._jwt.algorithms.ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.key_id, "alg": "ES256", "use": "sig"}

    def sign(
        self, claims: Mapping[str, Any], *, algorithm: str = "ES256", headers: Optional[Mapping[str, Any]] = None
    ) -> str:
        """A compact JWS of ``claims`` with ``kid`` (and ``headers``) in its header; ``algorithm`` is
        ES256 or ``none``."""
        if algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {SIGNING_ALGORITHMS}, not {algorithm!r}")
        key = self._private_key if algorithm == "ES256" else None
        header = {"kid": self.key_id, **(headers or {})}
        token: str = self._jwt.encode(dict(claims), key, algorithm=algorithm, headers=header)
        return token


class SignerKeys:
    """Mixin of a token issuer that signs with ``self._signer``: its public key in the usual forms."""

    _signer: JwtSigner

    @property
    def public_key(self) -> Any:
        """The cryptography public key that verifies the tokens it signs."""
        return self._signer.public_key

    @property
    def public_key_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo) text."""
        return self._signer.public_key_pem

    @property
    def public_jwk(self) -> Dict[str, Any]:
        """The public key as a JWK (with ``kid``, ``alg`` and ``use``)."""
        return self._signer.public_jwk
