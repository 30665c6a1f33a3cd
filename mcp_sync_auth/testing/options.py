"""Test knobs of the authorization surface, held as one immutable snapshot.

:class:`~mcp_sync_auth.testing.state.AuthState` swaps the snapshot under its lock, and each request
reads it once, so a request never sees half of a change made by a test thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from .consent_page import CONSENT_MODES
from .dpop import DPOP_MODES
from .overrides import EMPTY, freeze_overrides
from .scopes import check_scope_tokens

__all__ = ["ISS_MODES", "ServerOptions"]

ISS_MODES = ("correct", "missing", "wrong", "trailing-slash")
"""How the ``iss`` authorization response parameter (RFC 9207) is sent: the issuer, not at all,
another issuer, or the issuer with a trailing slash (which clients must not normalise away)."""


@dataclass(frozen=True)
class ServerOptions:
    scopes_supported: Tuple[str, ...] = ("mcp",)
    serve_metadata: bool = True
    path_metadata: bool = True
    root_metadata: bool = False
    allow_registration: bool = True
    auto_consent: bool = True
    consent: str = "auto"
    """"auto" (``auto_consent`` decides, no page) or "page" (an HTML page with Allow and Deny)."""
    loopback_any_port: bool = True
    """RFC 8252 §7.3: a registered loopback redirect URI matches on any port. False: exact match
    only (servers that want a client registered by hand to come back to its one fixed port)."""
    iss_mode: str = "correct"
    issue_refresh_tokens: bool = True
    authorization_code_ttl: float = 60.0
    prm_overrides: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    as_metadata_overrides: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    anonymous_jwt_bearer: bool = True
    """The JWT bearer grant without client authentication (a workload has no client_id)."""
    dpop: Optional[str] = None
    """DPoP (RFC 9449): None (off), "optional" (DPoP or Bearer) or "required"."""
    dpop_nonce_at_token: bool = False
    dpop_nonce_at_resource: bool = False
    dpop_proof_window: float = 60.0
    """How far (seconds) a proof's iat may be from the server's clock, either way."""
    device_authorization: bool = False
    """The device authorization grant (RFC 8628): its endpoint, advertised, and the grant."""
    device_code_ttl: float = 600.0
    device_interval: float = 5.0
    """The polling interval a device authorization names (seconds; 0 is sent as 0)."""
    revocation: bool = True
    """Token revocation (RFC 7009) at ``/revoke``, advertised as ``revocation_endpoint``; False: 404."""

    def __post_init__(self) -> None:
        # Normalise through object.__setattr__: the dataclass is frozen.
        object.__setattr__(self, "scopes_supported", check_scope_tokens(self.scopes_supported))
        if self.consent not in CONSENT_MODES:
            raise ValueError(f"consent must be one of {CONSENT_MODES}, not {self.consent!r}")
        if self.iss_mode not in ISS_MODES:
            raise ValueError(f"iss_mode must be one of {ISS_MODES}, not {self.iss_mode!r}")
        ttl = float(self.authorization_code_ttl)
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError("authorization_code_ttl must be a positive number")
        object.__setattr__(self, "authorization_code_ttl", ttl)
        flags = (
            "serve_metadata",
            "path_metadata",
            "root_metadata",
            "allow_registration",
            "auto_consent",
            "loopback_any_port",
            "issue_refresh_tokens",
            "anonymous_jwt_bearer",
            "device_authorization",
            "revocation",
        )
        for name in flags:
            object.__setattr__(self, name, bool(getattr(self, name)))
        object.__setattr__(self, "prm_overrides", freeze_overrides(self.prm_overrides))
        object.__setattr__(self, "as_metadata_overrides", freeze_overrides(self.as_metadata_overrides))
        self._check_dpop()
        ttl = float(self.device_code_ttl)
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError("device_code_ttl must be a positive number")
        interval = float(self.device_interval)
        if not math.isfinite(interval) or interval < 0:
            raise ValueError("device_interval must be a number of seconds, not negative")
        object.__setattr__(self, "device_code_ttl", ttl)
        object.__setattr__(self, "device_interval", interval)

    def _check_dpop(self) -> None:
        if self.dpop not in DPOP_MODES:
            raise ValueError(f"dpop must be one of {DPOP_MODES}, not {self.dpop!r}")
        window = float(self.dpop_proof_window)
        if not math.isfinite(window) or window <= 0:
            raise ValueError("dpop_proof_window must be a positive number")
        object.__setattr__(self, "dpop_proof_window", window)
        object.__setattr__(self, "dpop_nonce_at_token", bool(self.dpop_nonce_at_token))
        object.__setattr__(self, "dpop_nonce_at_resource", bool(self.dpop_nonce_at_resource))
