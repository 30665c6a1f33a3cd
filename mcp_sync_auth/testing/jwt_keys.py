"""The public keys the strict server verifies JWTs with (a private_key_jwt client's, a trusted workload
issuer's) and the signing algorithms each key may verify.

Asymmetric keys only: an EC P-256 key verifies ES256, an RSA key (2048 bits or more) RS256 and PS256,
an Ed25519 or Ed448 key EdDSA. No ``none``, no HMAC: a key registered here is public, and a MAC made
with public material proves nothing. Loading a key needs the ``jwt`` extra (PyJWT with
cryptography), imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .._util.jwt_extra import jwt_module

__all__ = ["ALGORITHMS", "MIN_RSA_BITS", "KeySource", "PublicKey", "load_public_key"]

ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
"""The JWS algorithms the server verifies (``token_endpoint_auth_signing_alg_values_supported``)."""

MIN_RSA_BITS = 2048

KeySource = Union[str, bytes, Mapping[str, Any], Any]
"""A PEM public key (text or bytes), a JWK, a JWK Set holding one key, or a cryptography public key."""

_ASYMMETRIC = "cryptography.hazmat.primitives.asymmetric"


@dataclass(frozen=True)
class PublicKey:
    """A loaded public key: the cryptography object, the algorithms it verifies, its public JWK."""

    key: Any = field(repr=False, compare=False)
    algorithms: Tuple[str, ...]
    jwk: Mapping[str, Any] = field(repr=False, compare=False)

    def fits(self, algorithm: str) -> bool:
        return algorithm in self.algorithms

    def jwks(self) -> Dict[str, Any]:
        """The key as a JWK Set (what RFC 7591 ``jwks`` holds)."""
        return {"keys": [dict(self.jwk)]}


def load_public_key(source: KeySource) -> PublicKey:
    """Load ``source``; ValueError (saying why, never quoting the key) when it is no key this server
    verifies with, MissingExtra without PyJWT."""
    jwt = jwt_module("a private_key_jwt client or a trusted JWT issuer")
    declared: Optional[str] = None
    if isinstance(source, (str, bytes)):
        key = _from_pem(source)
    elif isinstance(source, Mapping):
        key, declared = _from_jwk(jwt, source)
    else:
        key = source
    algorithms = _algorithms_for(key)
    if declared is not None:
        if declared not in algorithms:
            raise ValueError(f"the JWK's alg {declared!r} does not fit its key (expected one of {list(algorithms)})")
        algorithms = (declared,)
    return PublicKey(key=key, algorithms=algorithms, jwk=MappingProxyType(_to_jwk(jwt, key, algorithms[0])))


def _from_pem(source: Union[str, bytes]) -> Any:
    data = source.encode("utf-8") if isinstance(source, str) else source
    if b"PRIVATE KEY" in data:
        raise ValueError("the PEM text holds a private key: register its public key")
    serialization = importlib.import_module("cryptography.hazmat.primitives.serialization")
    try:
        return serialization.load_pem_public_key(data)
    except Exception:  # ValueError, TypeError, UnsupportedAlgorithm: all mean "not a key we can read"
        raise ValueError("not a PEM public key") from None


def _from_jwk(jwt: Any, document: Mapping[str, Any]) -> Tuple[Any, Optional[str]]:
    if "keys" in document:
        keys = document["keys"]
        if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
            raise ValueError("a JWK Set here must hold exactly one key")
        document = keys[0]
    if document.get("kty") == "oct":
        raise ValueError("symmetric (oct) keys are not accepted")
    if "d" in document:
        raise ValueError("the JWK holds a private key: register its public key")
    declared = document.get("alg")
    if declared is not None and not isinstance(declared, str):
        raise ValueError("the JWK's alg must be a string")
    if declared is not None and declared not in ALGORITHMS:
        raise ValueError(f"the JWK's alg must be one of {list(ALGORITHMS)}")
    try:  # without its alg: PyJWK would refuse a mismatch less clearly than load_public_key does
        return jwt.PyJWK({name: value for name, value in document.items() if name != "alg"}).key, declared
    except Exception:  # PyJWKError, InvalidKeyError, and whatever a malformed member raises
        raise ValueError("not a usable JWK") from None


def _algorithms_for(key: Any) -> Tuple[str, ...]:
    ec = importlib.import_module(f"{_ASYMMETRIC}.ec")
    rsa = importlib.import_module(f"{_ASYMMETRIC}.rsa")
    ed25519 = importlib.import_module(f"{_ASYMMETRIC}.ed25519")
    ed448 = importlib.import_module(f"{_ASYMMETRIC}.ed448")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name != "secp256r1":
            raise ValueError(f"EC keys must be on the P-256 curve (ES256), not {key.curve.name}")
        return ("ES256",)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits, not {key.key_size}")
        return ("RS256", "PS256")
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return ("EdDSA",)
    private = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    if isinstance(key, private):
        raise ValueError("that is a private key: register its public key")
    raise ValueError(f"unsupported key type {type(key).__name__} (EC P-256, RSA or Ed25519/Ed448 public keys only)")


def _to_jwk(jwt: Any, key: Any, algorithm: str) -> Dict[str, Any]:
    family = {"ES256": "ECAlgorithm", "RS256": "RSAAlgorithm", "PS256": "RSAAlgorithm", "EdDSA": "OKPAlgorithm"}
    jwk: Dict[str, Any] = getattr(jwt.algorithms, family[algorithm]).to_jwk(key, as_dict=True)
    return jwk
