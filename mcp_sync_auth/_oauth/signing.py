"""A private key that signs JWTs: loaded from PEM once, its algorithm fixed by its type.

Client assertions (RFC 7523) and DPoP proofs (RFC 9449) sign with it. Only asymmetric algorithms
are offered, each tied to one key type, so a key can never be used with an algorithm it was not
made for (and "none" or HMAC never come into it).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Union

from .._util.jwt_extra import jwt_module
from ..errors import ConfigurationError

ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
_MIN_RSA_BITS = 2048


class SigningKey:
    """One private key and the algorithm it signs with. Its repr names the algorithm only."""

    def __init__(self, key: Any, algorithm: str) -> None:
        self._key = key
        self.algorithm = algorithm

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm})"

    @classmethod
    def from_pem(
        cls, pem: Union[str, bytes], algorithm: Optional[str] = None, *, what: str = "the private key"
    ) -> SigningKey:
        """Load a PEM private key (PKCS#8 or traditional). ``algorithm`` None: the key type's own
        (ES256 for EC P-256, RS256 for RSA, EdDSA for Ed25519). ConfigurationError, which never
        quotes the key, for anything else."""
        jwt_module()  # PyJWT and cryptography, or the error naming the extra
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 (the [jwt] extra)

        if algorithm is not None and algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"unsupported signing algorithm {algorithm!r} (supported: {', '.join(ALGORITHMS)})"
            )
        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise ConfigurationError(f"{what} is encrypted; give it decrypted (keep its file mode 0600)") from None
        except ValueError:
            raise ConfigurationError(f"{what} is not a PEM private key") from None
        except Exception as exc:  # cryptography raises its own types for keys it does not support
            raise ConfigurationError(f"{what} cannot be loaded ({type(exc).__name__})") from None
        return cls(key, _algorithm_for(key, algorithm, what))

    @classmethod
    def generate(cls) -> SigningKey:
        """A new EC P-256 key (ES256)."""
        jwt_module()
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 (the [jwt] extra)

        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def from_private_jwk(cls, text: str) -> SigningKey:
        """An EC P-256 key kept as a private JWK (the DPoP key a chain carries); ValueError if not."""
        jwt = jwt_module()
        try:
            data = json.loads(text)
            key = jwt.algorithms.ECAlgorithm.from_jwk(data)
        except Exception:  # PyJWT raises InvalidKeyError and others; never show the key
            raise ValueError("the stored DPoP key is not an EC private JWK") from None
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 (the [jwt] extra)

        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the stored DPoP key is not an EC P-256 private key")
        return cls(key, "ES256")

    def private_jwk(self) -> str:
        """The key as a private JWK (JSON text): secret, stored with the chain like its refresh token."""
        text: str = jwt_module().algorithms.ECAlgorithm.to_jwk(self._key)
        return text

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK with only the members RFC 7638 hashes (no ``d``)."""
        data = json.loads(jwt_module().algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        return {name: data[name] for name in ("crv", "kty", "x", "y")}

    def sign(self, claims: Mapping[str, Any], headers: Optional[Mapping[str, Any]] = None) -> str:
        """A compact JWS of ``claims``."""
        token: str = jwt_module().encode(dict(claims), self._key, algorithm=self.algorithm, headers=dict(headers or {}))
        return token


def _algorithm_for(key: Any, wanted: Optional[str], what: str) -> str:
    allowed: tuple[str, ...]
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415 (the [jwt] extra)

    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError(f"{what} is an EC key on {key.curve.name}; ES256 needs the P-256 curve")
        kind, allowed = "an EC P-256 key", ("ES256",)
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ConfigurationError(
                f"{what} is a {key.key_size}-bit RSA key; at least {_MIN_RSA_BITS} bits are needed"
            )
        kind, allowed = "an RSA key", ("RS256", "PS256")
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        kind, allowed = "an Ed25519 key", ("EdDSA",)
    else:
        raise ConfigurationError(f"{what} is of a type that cannot sign here (use EC P-256, RSA or Ed25519)")
    if wanted is None:
        return allowed[0]
    if wanted not in allowed:
        raise ConfigurationError(f"{what} is {kind}, which cannot sign {wanted} (it signs {' or '.join(allowed)})")
    return wanted


__all__ = ["ALGORITHMS", "SigningKey"]
