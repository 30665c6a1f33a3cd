"""What names a refresh chain (its key) and what the store keeps about it (its record)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Optional

from .tokens import TokenSet

DEFAULT_ACCOUNT = "default"


@dataclasses.dataclass(frozen=True)
class ChainKey:
    """A refresh chain: one login of one client at one authorization server for one MCP server.

    ``issuer`` is the authorization server's issuer identifier; for a client configured by hand with
    only a token endpoint, the token endpoint URL stands in for it.
    """

    resource: str
    issuer: str
    client_id: str
    account: str = DEFAULT_ACCOUNT

    def to_json(self) -> dict[str, str]:
        return {"resource": self.resource, "issuer": self.issuer, "client_id": self.client_id, "account": self.account}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainKey:
        fields = {}
        for name in ("resource", "issuer", "client_id", "account"):
            value = data.get(name)
            if not isinstance(value, str):
                raise ValueError(f"key field {name!r} is not a string")
            fields[name] = value
        return cls(**fields)

    @property
    def stem(self) -> str:
        """A file-system-safe name, stable across processes and Python versions (computed once per key:
        listing thousands of chains asks for it often)."""
        cached: Optional[str] = self.__dict__.get("_stem")
        if cached is None:
            canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
            cached = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
            object.__setattr__(self, "_stem", cached)  # not a field: equality, hash and repr ignore it
        return cached

    def describe(self) -> str:
        account = "" if self.account == DEFAULT_ACCOUNT else f", account {self.account!r}"
        return f"{self.resource} (client {self.client_id!r} at {self.issuer}{account})"


@dataclasses.dataclass(frozen=True, repr=False)
class ChainRecord:
    """The stored state of one chain. ``generation`` grows by one with every change of tokens.

    A dead chain (``dead_reason`` set) keeps no refresh token, so nobody can present it again; it may
    keep nothing at all but the reason, the generation and the time.

    ``resource_indicator`` is the RFC 8707 ``resource`` the chain's grants were made for: the
    identifier the server's protected resource metadata published at the login (RFC 9728 §3.3),
    which may be wider than ``key.resource`` (the origin, for ``.../mcp``). Every refresh sends it
    again. None: not known (a chain saved by hand, or by a version that did not store it); the
    refresh then sends what the process knows, by default the MCP server URL.
    """

    key: ChainKey
    generation: int
    tokens: Optional[TokenSet]
    token_endpoint: Optional[str] = None
    dead_reason: Optional[str] = None
    updated_at: float = 0.0
    resource_indicator: Optional[str] = None

    @property
    def is_dead(self) -> bool:
        return self.dead_reason is not None

    def __repr__(self) -> str:
        state = f"dead: {self.dead_reason}" if self.is_dead else "live"
        return f"ChainRecord({self.key.describe()}, generation={self.generation}, {state}, tokens={self.tokens!r})"


@dataclasses.dataclass(frozen=True)
class RegistrationKey:
    """Where a client registration is kept: one per authorization server issuer (MCP 2026-07-28
    requires credentials to be keyed by issuer and never reused with another one)."""

    issuer: str

    def to_json(self) -> dict[str, str]:
        return {"issuer": self.issuer}

    @property
    def stem(self) -> str:
        return "registration-" + hashlib.sha256(self.issuer.encode("utf-8")).hexdigest()[:32]

    def describe(self) -> str:
        return f"the client registration at {self.issuer}"


@dataclasses.dataclass(frozen=True)
class LoginKey:
    """Serialises interactive logins for one MCP server and account across threads and processes."""

    resource: str
    account: str = DEFAULT_ACCOUNT

    @property
    def stem(self) -> str:
        canonical = json.dumps([self.resource, self.account])
        return "login-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]

    def describe(self) -> str:
        return f"the login for {self.resource}"
