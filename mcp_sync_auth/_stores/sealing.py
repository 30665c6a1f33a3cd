"""Encryption at rest for stores that keep records as bytes in a shared service (Redis).

A :class:`Sealer` encrypts and authenticates one record with AES-256-GCM under the store's key. The
store passes the record's own name (its Redis key) as ``context``: it is authenticated with the
record, so a record copied under another name does not open.

A sealed record reads::

    b"mcpsa1:"  key id (8 bytes)  nonce (12 bytes)  ciphertext (as long as the plaintext)  GCM tag (16 bytes)

The key id is the first 8 bytes of HMAC-SHA256(key, b"mcp-sync-auth key id"): it tells "another key"
apart from "altered" without showing anything of the key. The prefix and the key id are authenticated
too. A new random nonce is drawn for every seal; NIST's bound for random 96-bit nonces (2**32 seals
per key) is far more than a token store ever writes.

The ``cryptography`` package is optional (the ``redis`` extra): this module imports without it, and
only building a :class:`Sealer` needs it.

Nothing here puts a key, a plaintext or a token in a message, a repr or a log line; records are named
by their context, key ids by their fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import os
import re
import secrets
from typing import Any, NoReturn, Optional

from .._util.redact import clean_server_text
from ..errors import (
    ConfigurationError,
    MissingExtra,
    SealedRecordInvalid,
    StoreKeyMismatch,
    TokenStoreError,
    UnsealedRecord,
)

ENVIRONMENT_VARIABLE = "MCP_SYNC_AUTH_STORE_KEY"
KEY_BYTES = 32
MAGIC = b"mcpsa1:"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES
_KEY_ID_LABEL = b"mcp-sync-auth key id"
# Any version of the prefix, so a record sealed by a newer release is told apart from plain data.
_ANY_MAGIC = re.compile(rb"mcpsa([0-9]{1,3}):")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_BASE64_KEY = re.compile(r"[A-Za-z0-9_-]{43}=?")

KEY_FORMS = (
    "a store key is 32 random bytes: given as bytes, or as text holding 64 hex digits or 43 URL-safe "
    "base64 characters (44 with its '=' padding). Make one with `openssl rand -hex 32`"
)
MISSING_CRYPTOGRAPHY = "encryption at rest needs the 'cryptography' package: pip install 'mcp-sync-auth[redis]'"


def generate_key() -> str:
    """A new random store key, as URL-safe base64 text without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is a sealed record (of this format or of a newer one), not plain data."""
    return _ANY_MAGIC.match(data) is not None


def key_id_of(key: bytes) -> bytes:
    """The key id of ``key`` (32 raw bytes): a one-way fingerprint, safe to store and to show."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_BYTES]


class Sealer:
    """Encrypts and authenticates records with AES-256-GCM under one key.

    ``key`` is 32 raw bytes, or text holding them as 64 hex digits or as URL-safe base64 (padded or
    not); surrounding whitespace in text is ignored. Anything else raises
    :class:`~mcp_sync_auth.errors.ConfigurationError`, and a missing ``cryptography`` package
    :class:`~mcp_sync_auth.errors.MissingExtra`.
    """

    __slots__ = ("_aead", "_invalid_tag", "_key", "_key_id", "_source")

    def __init__(self, key: bytes | str) -> None:
        self._setup(key, "the store key (key=...)")

    @classmethod
    def from_environment(cls, variable: str = ENVIRONMENT_VARIABLE) -> Optional[Sealer]:
        """A sealer for the key in the environment variable ``variable``; None when it is unset or
        empty (the store then keeps its records unencrypted)."""
        value = os.environ.get(variable, "").strip()
        if not value:
            return None
        sealer = cls.__new__(cls)
        sealer._setup(value, variable)
        return sealer

    def _setup(self, key: object, source: str) -> None:
        aesgcm, self._invalid_tag = _cryptography()
        raw = _parse_key(key, source)
        self._key = raw
        self._key_id = key_id_of(raw)
        self._aead = aesgcm(raw)
        self._source = source

    @property
    def key_id(self) -> str:
        """This key's id, in hex (16 digits): what error messages show of a key."""
        return self._key_id.hex()

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """``plaintext`` encrypted and authenticated, together with ``context`` (not stored: the
        same context must be given to :meth:`open`)."""
        header = MAGIC + self._key_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        return header + nonce + bytes(self._aead.encrypt(nonce, bytes(plaintext), header + bytes(context)))

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """The plaintext of a record this sealer's key sealed with ``context``.

        Raises :class:`~mcp_sync_auth.errors.StoreKeyMismatch` for a record of another key,
        :class:`~mcp_sync_auth.errors.SealedRecordInvalid` for one of this key that does not
        authenticate (altered, cut short, or sealed under another context), and
        :class:`~mcp_sync_auth.errors.TokenStoreError` for one that is not sealed or is sealed in a
        newer format.
        """
        sealed = bytes(sealed)
        if not sealed.startswith(MAGIC):
            if is_sealed(sealed):
                _newer_format(sealed, context)
            raise UnsealedRecord(f"{_name(context)} is not an encrypted record; nothing was changed")
        record_key_id = sealed[len(MAGIC) : HEADER_BYTES]
        if len(record_key_id) == KEY_ID_BYTES and not hmac.compare_digest(record_key_id, self._key_id):
            raise StoreKeyMismatch(
                f"{_name(context)} was encrypted with another key (key id {record_key_id.hex()}) than this "
                f"store's (key id {self.key_id}); check {self._source}; nothing was changed",
                record_key_id=record_key_id.hex(),
                store_key_id=self.key_id,
            )
        if len(sealed) < HEADER_BYTES + NONCE_BYTES + TAG_BYTES:
            raise self._invalid(context, "cut short")
        nonce = sealed[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        try:
            return bytes(
                self._aead.decrypt(nonce, sealed[HEADER_BYTES + NONCE_BYTES :], sealed[:HEADER_BYTES] + context)
            )
        except self._invalid_tag as exc:
            raise self._invalid(context, "altered, or copied from another record's place") from exc

    def _invalid(self, context: bytes, why: str) -> SealedRecordInvalid:
        return SealedRecordInvalid(
            f"{_name(context)} does not authenticate under this store's key (key id {self.key_id}): {why}. "
            "Its contents cannot be trusted and are lost: log in again."
        )

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id})"

    def __reduce__(self) -> NoReturn:
        # A pickle would carry the key out of the process; each process builds its own sealer.
        raise TypeError("a Sealer is not pickled (it would write out its key): build one in each process")


def seal_for_store(data: bytes, context: bytes, sealer: Optional[Sealer]) -> bytes:
    """What a store writes for ``data``: sealed under ``context`` when it has a sealer, else as is."""
    return data if sealer is None else sealer.seal(data, context)


def open_stored(data: bytes, context: bytes, sealer: Optional[Sealer], *, allow_plaintext: bool = False) -> bytes:
    """The record a store read as ``data`` (written under the name ``context``), opened by the
    store's rules:

    - no sealer: plain data is returned as is; sealed data raises
      :class:`~mcp_sync_auth.errors.StoreKeyMismatch` (the store needs its key);
    - a sealer: sealed data is opened (:meth:`Sealer.open`); plain data raises
      :class:`~mcp_sync_auth.errors.UnsealedRecord`, unless ``allow_plaintext`` is true (a store
      being moved to encryption: it is returned as is, and sealed on its next write).

    Data sealed in a newer format than this version reads raises
    :class:`~mcp_sync_auth.errors.TokenStoreError` either way.
    """
    if sealer is not None:
        if is_sealed(data):
            return sealer.open(data, context)
        if allow_plaintext:
            return data
        raise UnsealedRecord(
            f"{_name(context)} is stored unencrypted, but this store encrypts its records: refused, since "
            "anyone able to write to the store could have put it there. To move an existing store to "
            "encryption, open it with allow_plaintext=True (each record is encrypted on its next write); "
            "nothing was changed"
        )
    if not is_sealed(data):
        return data
    if not data.startswith(MAGIC):
        _newer_format(data, context)
    record_key_id = bytes(data[len(MAGIC) : HEADER_BYTES]).hex()
    raise StoreKeyMismatch(
        f"this store's records are encrypted ({_name(context)} has key id {record_key_id or '?'}) and no key "
        f"was given: set {ENVIRONMENT_VARIABLE} or pass key=...; nothing was changed",
        record_key_id=record_key_id,
        store_key_id=None,
    )


def _name(context: bytes) -> str:
    """How a message names the record sealed under ``context`` (its store name: not a secret)."""
    text = clean_server_text(bytes(context).decode("utf-8", "replace"))
    return f"the record '{text}'" if text else "a record"


def _newer_format(data: bytes, context: bytes) -> NoReturn:
    match = _ANY_MAGIC.match(data)
    version = match.group(1).decode("ascii") if match else "?"
    raise TokenStoreError(
        f"{_name(context)} is encrypted in a newer format (version {version}) than this version of "
        "mcp-sync-auth reads: upgrade mcp-sync-auth; nothing was changed"
    )


def _parse_key(key: object, source: str) -> bytes:
    """The 32 raw bytes of ``key``; a ConfigurationError naming ``source`` (never the value) if it
    is not a key in one of its forms."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
        if len(raw) == KEY_BYTES:
            return raw
        _bad_key(source, f"got {len(raw)} bytes")
    if not isinstance(key, str):
        _bad_key(source, f"got {type(key).__name__}")
    text = key.strip()
    if not text:
        _bad_key(source, "got an empty text")
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE64_KEY.fullmatch(text):
        try:
            raw = base64.urlsafe_b64decode(text.rstrip("=") + "=")
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == KEY_BYTES:
            return raw
    _bad_key(source, f"got a text of {len(text)} characters, neither hex nor base64")


def _bad_key(source: str, what: str) -> NoReturn:
    # ``from None``: the decoding error would show part of the value.
    raise ConfigurationError(f"{source} is not a usable key ({what}): {KEY_FORMS}") from None


def _cryptography() -> tuple[Any, type[Exception]]:
    """cryptography's AESGCM class and the error it raises for data that does not authenticate,
    imported on first use (by name: the package is an optional dependency, and may be absent where
    the types are checked too)."""
    try:
        aead = importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
        exceptions = importlib.import_module("cryptography.exceptions")
    except ImportError as exc:
        raise MissingExtra(MISSING_CRYPTOGRAPHY, extra="redis") from exc
    return aead.AESGCM, exceptions.InvalidTag
