"""The stored JSON documents: a chain record, or a client registration, tagged with the schema version."""

from __future__ import annotations

from typing import Any

from .._chain.keys import ChainKey, ChainRecord, RegistrationKey
from .._chain.tokens import TokenSet
from .._util.checks import is_finite_number, is_integer

# The newest schema this version reads. A record whose chain is DPoP-bound is written as 2, so that
# an older mcp-sync-auth (which would send its token as Bearer and refresh it without a proof,
# killing the chain) refuses it and says to upgrade; every other record stays 1, readable by all.
SCHEMA_VERSION = 2
SCHEMAS = (1, 2)


def record_to_document(record: ChainRecord) -> dict[str, Any]:
    bound = record.tokens is not None and record.tokens.dpop_key is not None
    return {
        "schema": 2 if bound else 1,
        "key": record.key.to_json(),
        "generation": record.generation,
        "tokens": None if record.tokens is None else record.tokens.to_json(),
        "token_endpoint": record.token_endpoint,
        "resource_indicator": record.resource_indicator,
        "dead": None if record.dead_reason is None else {"reason": record.dead_reason},
        "updated_at": record.updated_at,
    }


def document_to_record(doc: Any) -> ChainRecord:
    """Parse a stored document; ``ValueError`` for any shape we did not write."""
    if not isinstance(doc, dict):
        raise ValueError("the document is not a JSON object")
    key = ChainKey.from_json(_require_dict(doc.get("key"), "key"))
    generation = doc.get("generation")
    if not is_integer(generation) or generation < 0:
        raise ValueError("'generation' is not a non-negative integer")
    raw_tokens = doc.get("tokens")
    tokens = None if raw_tokens is None else TokenSet.from_json(_require_dict(raw_tokens, "tokens"))
    token_endpoint = doc.get("token_endpoint")
    if token_endpoint is not None and not isinstance(token_endpoint, str):
        raise ValueError("'token_endpoint' is not a string")
    # Absent in documents written before it was stored: the refresh then sends the MCP server URL.
    resource_indicator = doc.get("resource_indicator")
    if resource_indicator is not None and not isinstance(resource_indicator, str):
        raise ValueError("'resource_indicator' is not a string")
    dead = doc.get("dead")
    dead_reason = None
    if dead is not None:
        reason = _require_dict(dead, "dead").get("reason")
        dead_reason = reason if isinstance(reason, str) and reason else "revoked"
    updated_at = doc.get("updated_at", 0.0)
    if not is_finite_number(updated_at):
        raise ValueError("'updated_at' is not a number")
    return ChainRecord(
        key=key,
        generation=generation,
        tokens=tokens,
        token_endpoint=token_endpoint,
        dead_reason=dead_reason,
        updated_at=float(updated_at),
        resource_indicator=resource_indicator,
    )


def registration_to_document(key: RegistrationKey, registration: dict[str, Any]) -> dict[str, Any]:
    return {"schema": 1, "key": key.to_json(), "registration": registration}


def document_to_registration(key: RegistrationKey, doc: dict[str, Any]) -> dict[str, Any]:
    """The registration in a stored document; ``ValueError`` unless it is one for this issuer."""
    registration = doc.get("registration")
    if doc.get("key") != key.to_json() or not isinstance(registration, dict):
        raise ValueError("it is not a client registration for this issuer")
    return registration


def _require_dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name!r} is not a JSON object")
    return value
