"""A workload identity issuer for tests: it mints the JWTs a workload presents in the JWT bearer grant
(RFC 7523 §2.1), and :meth:`StrictAuthServer.trust_workload_issuer` makes the server accept them.

It stands in for what gives a workload its identity token (a Kubernetes service account, a cloud
metadata service, a CI system): a fresh EC P-256 key per instance, signing ES256. Needs the ``jwt``
extra (PyJWT with cryptography).
"""

from __future__ import annotations

import importlib
import secrets
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

from .._util.jwt_extra import jwt_module
from .overrides import REMOVE

__all__ = ["WorkloadIssuer"]

DEFAULT_ISSUER = "https://workload-identity.example"
SIGNING_ALGORITHMS = ("ES256", "none")
"""``ES256`` signs with the issuer's key; ``none`` makes an unsigned JWT, for tests that it is refused."""


class WorkloadIssuer:
    """Mints workload identity JWTs signed with a key of its own.

    ``issuer`` is the ``iss`` of every token; ``clock`` gives ``iat`` when :meth:`mint` is not told
    ``now`` (pass the server's clock). The private key never leaves the instance.
    """

    def __init__(
        self,
        issuer: str = DEFAULT_ISSUER,
        *,
        key_id: Optional[str] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        self._jwt = jwt_module("a WorkloadIssuer")
        ec = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
        self._private_key: Any = ec.generate_private_key(ec.SECP256R1())
        self.issuer = issuer
        self.key_id = key_id if key_id is not None else "workload-" + secrets.token_hex(4)
        self._clock = clock

    def __repr__(self) -> str:
        return f"WorkloadIssuer({self.issuer!r}, key_id={self.key_id!r})"

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

    def mint(
        self,
        subject: str,
        *,
        audience: Union[str, Sequence[str]],
        lifetime: float = 300.0,
        now: Optional[float] = None,
        jti: Optional[str] = None,
        extra_claims: Optional[Mapping[str, Any]] = None,
        algorithm: str = "ES256",
    ) -> str:
        """A JWT for ``subject``: ``iss``, ``sub``, ``aud``, ``iat`` (``now``, else the clock), ``exp``
        (``lifetime`` later) and ``jti`` (random unless given). ``extra_claims`` adds or replaces
        claims; map one to :data:`REMOVE` to leave it out. ``algorithm`` is ES256 or ``none``."""
        if algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {SIGNING_ALGORITHMS}, not {algorithm!r}")
        issued_at = int(self._clock() if now is None else now)
        claims: Dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": issued_at,
            "exp": issued_at + int(lifetime),
            "jti": jti if jti is not None else secrets.token_urlsafe(16),
        }
        for name, value in (extra_claims or {}).items():
            if value is REMOVE:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self._private_key if algorithm == "ES256" else None
        token: str = self._jwt.encode(claims, key, algorithm=algorithm, headers={"kid": self.key_id})
        return token
