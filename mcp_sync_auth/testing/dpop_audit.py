"""The DPoP part of the audit: counters of proofs and bindings, read as ``server.audit.dpop``.

Held by the :class:`~mcp_sync_auth.testing.audit.AuditRecorder` (so ``reset_audit`` zeroes it) and
changed only under the state's lock. No proof and no token is kept, only counts and thumbprints
(which are hashes of public keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

__all__ = ["DpopAudit", "DpopCounters"]


@dataclass(frozen=True)
class DpopAudit:
    """DPoP counters (RFC 9449), for the token endpoint and the MCP endpoint together.

    ``proofs_accepted`` counts proofs that passed every check and whose ``jti`` was new, per place in
    ``accepted_at`` (``"token"``, ``"resource"``); ``replays`` counts proofs refused because their
    ``jti`` had been accepted before (from any client, key or place): ``replays == 0`` with N proofs
    accepted means every proof's ``jti`` was unique. ``proofs_refused`` counts proofs refused for any
    other reason (``invalid_dpop_proof``), ``proofs_missing`` requests that needed a proof and had none,
    ``nonce_challenges`` the ``use_dpop_nonce`` answers (per place in ``nonce_challenges_at``).
    ``key_mismatches`` counts bound refresh tokens, codes (``dpop_jkt``) and access tokens presented
    with a proof of another key or with none; ``bound_as_bearer`` DPoP-bound access tokens presented
    with ``Authorization: Bearer``. ``keys`` are the thumbprints (``jkt``) of accepted proofs, in the
    order first seen."""

    proofs_accepted: int
    accepted_at: Dict[str, int]
    proofs_refused: int
    proofs_missing: int
    replays: int
    nonce_challenges: int
    nonce_challenges_at: Dict[str, int]
    key_mismatches: int
    bound_as_bearer: int
    keys: Tuple[str, ...]


class DpopCounters:
    """Mutable counters; NOT thread-safe on its own (the state lock guards it)."""

    def __init__(self) -> None:
        self.accepted_at: Dict[str, int] = {}
        self.proofs_refused = 0
        self.proofs_missing = 0
        self.replays = 0
        self.nonce_challenges_at: Dict[str, int] = {}
        self.key_mismatches = 0
        self.bound_as_bearer = 0
        self.keys: List[str] = []

    def accepted(self, place: str, jkt: str) -> None:
        self.accepted_at[place] = self.accepted_at.get(place, 0) + 1
        if jkt not in self.keys:
            self.keys.append(jkt)

    def nonce_challenge(self, place: str) -> None:
        self.nonce_challenges_at[place] = self.nonce_challenges_at.get(place, 0) + 1

    def snapshot(self) -> DpopAudit:
        return DpopAudit(
            proofs_accepted=sum(self.accepted_at.values()),
            accepted_at=dict(self.accepted_at),
            proofs_refused=self.proofs_refused,
            proofs_missing=self.proofs_missing,
            replays=self.replays,
            nonce_challenges=sum(self.nonce_challenges_at.values()),
            nonce_challenges_at=dict(self.nonce_challenges_at),
            key_mismatches=self.key_mismatches,
            bound_as_bearer=self.bound_as_bearer,
            keys=tuple(self.keys),
        )
