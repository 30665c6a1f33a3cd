"""A workload identity issuer for tests: it mints the JWTs a workload presents in the JWT bearer grant
(RFC 7523 §2.1), and :meth:`StrictAuthServer.trust_workload_issuer` makes the server accept them.

It stands in for what gives a workload its identity token (a Kubernetes service account, a cloud
metadata service, a CI system): a fresh EC P-256 key per instance, signing ES256. Needs the ``jwt``
extra (PyJWT with cryptography).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from .jwt_signer import JwtSigner, SignerKeys, subject_claims, with_extra_claims

__all__ = ["WorkloadIssuer"]

DEFAULT_ISSUER = "https://workload-identity.example"


class WorkloadIssuer(SignerKeys):
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
        self._signer = JwtSigner("a WorkloadIssuer", "workload-" + secrets.token_hex(4) if key_id is None else key_id)
        self.issuer = issuer
        self.key_id = self._signer.key_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"WorkloadIssuer({self.issuer!r}, key_id={self.key_id!r})"

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
        issued_at = int(self._clock() if now is None else now)
        claims = subject_claims(self.issuer, subject, audience, issued_at=issued_at, lifetime=lifetime, jti=jti)
        return self._signer.sign(with_extra_claims(claims, extra_claims), algorithm=algorithm)
