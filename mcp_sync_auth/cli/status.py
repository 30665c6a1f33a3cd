"""What ``mcp-sync-auth status`` says of each chain, for people and (``--json``) for scripts.

Never a secret: only whether a refresh token is there, never the token. The state of a chain is one of

- ``alive``: it has a usable access token, or a refresh token to get one;
- ``refreshing``: another process (or host) is refreshing it now (it holds the chain's lock or lease,
  or has marked a grant in flight); the store is asked without taking any lock;
- ``needs login``: its access token has expired and there is no refresh token (a client credentials
  grant gets a new one by itself; a person must log in again);
- ``dead``: the authorization server refused its refresh token (or it was revoked): log in again.

The JSON schema (one object per chain, in a list; keys stable, values may be null):
``server`` (the MCP server URL), ``account``, ``client_id``, ``issuer``, ``store`` (as ``status``
names it), ``state`` (one of :data:`STATES`), ``dead_reason`` (or null), ``generation`` (int),
``expires_at`` (Unix seconds, or null: no expiry known), ``expires_local`` (ISO 8601 in local time,
or null), ``expires_in`` (seconds from now, negative once expired, or null), ``expires`` (the same
for people: "in 3 min", "expired 2 h ago", "never"), ``refresh_token`` (bool: one is stored),
``scope`` (or null).
"""

from __future__ import annotations

import datetime
import time
from typing import Any, Callable, Optional

from .._chain.keys import ChainRecord

STATES = ("alive", "refreshing", "needs login", "dead")
JSON_KEYS = (
    "server",
    "account",
    "client_id",
    "issuer",
    "store",
    "state",
    "dead_reason",
    "generation",
    "expires_at",
    "expires_local",
    "expires_in",
    "expires",
    "refresh_token",
    "scope",
)

# The clock relative times are measured against; tests replace it.
clock: Callable[[], float] = time.time


def relative(seconds: float) -> str:
    """``in 3 min`` for a time ahead, ``expired 2 h ago`` for one past (rounded down to the unit)."""
    span = abs(seconds)
    if span < 90:
        amount = f"{int(span)} s"
    elif span < 90 * 60:
        amount = f"{int(span // 60)} min"
    elif span < 48 * 3600:
        amount = f"{int(span // 3600)} h"
    else:
        amount = f"{int(span // 86400)} d"
    return f"in {amount}" if seconds >= 0 else f"expired {amount} ago"


def local_time(when: float) -> str:
    """``when`` in the local time zone, to the second, with its offset."""
    return datetime.datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def state_of(record: ChainRecord, now: float, busy: bool) -> str:
    if record.is_dead:
        return "dead"
    if busy:
        return "refreshing"
    tokens = record.tokens
    if tokens is None:
        return "needs login"
    if tokens.refresh_token or tokens.expires_at is None or tokens.expires_at > now:
        return "alive"
    return "needs login"


def chain_status(record: ChainRecord, *, store: str, now: float, busy: bool) -> dict[str, Any]:
    """The chain's status as the JSON object documented above."""
    key = record.key
    tokens = record.tokens
    expires_at = tokens.expires_at if tokens is not None else None
    if tokens is None:
        expires = "-"
    elif expires_at is None:
        expires = "never"
    else:
        expires = relative(expires_at - now)
    return {
        "server": key.resource,
        "account": key.account,
        "client_id": key.client_id,
        "issuer": key.issuer,
        "store": store,
        "state": state_of(record, now, busy),
        "dead_reason": record.dead_reason if record.is_dead else None,
        "generation": record.generation,
        "expires_at": expires_at,
        "expires_local": local_time(expires_at) if expires_at is not None else None,
        "expires_in": round(expires_at - now, 3) if expires_at is not None else None,
        "expires": expires,
        "refresh_token": bool(tokens is not None and tokens.refresh_token),
        "scope": (tokens.scope or None) if tokens is not None else None,
    }


def chain_lines(status: dict[str, Any]) -> list[str]:
    """The chain's status for people."""
    state = status["state"]
    if state == "dead" and status["dead_reason"]:
        state = f"dead ({status['dead_reason']})"
    expires = status["expires"]
    if status["expires_local"] is not None:
        expires = f"{status['expires_local']} ({expires})"
    return [
        status["server"],
        f"  account     {status['account']}",
        f"  client      {status['client_id']}",
        f"  issuer      {status['issuer']}",
        f"  store       {status['store']}",
        f"  state       {state}, generation {status['generation']}",
        f"  expires     {expires}",
        f"  scope       {status['scope'] or '-'}",
        f"  refreshable {'yes (refresh token stored)' if status['refresh_token'] else 'no refresh token'}",
    ]


def with_account(records: list[ChainRecord], account: Optional[str]) -> list[ChainRecord]:
    return records if account is None else [r for r in records if r.key.account == account]


__all__ = ["JSON_KEYS", "STATES", "chain_lines", "chain_status", "clock", "local_time", "relative", "state_of"]
