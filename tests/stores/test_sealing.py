"""Encryption at rest (stores/sealing), with the real ``cryptography`` package: no mocks.

Without the package (the ``redis`` extra not installed) the tests that seal are skipped, and the ones
that check the missing-extra message run as everywhere: in a subprocess that blocks the import.
"""

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_sync_auth import (
    ConfigurationError,
    CorruptTokenCache,
    MissingExtra,
    SealedRecordInvalid,
    StoreKeyMismatch,
    TokenStoreError,
    UnsealedRecord,
)
from mcp_sync_auth._stores.sealing import (
    ENVIRONMENT_VARIABLE,
    HEADER_BYTES,
    MAGIC,
    NONCE_BYTES,
    Sealer,
    generate_key,
    is_sealed,
    open_stored,
    seal_for_store,
)

ROOT = Path(__file__).resolve().parent.parent.parent
needs_cryptography = pytest.mark.skipif(
    importlib.util.find_spec("cryptography") is None, reason="the 'cryptography' package (the redis extra)"
)

RAW = bytes(range(32))
OTHER = bytes(range(100, 132))
CONTEXT = b"mcp-sync-auth:chain:3f2a"
TOKEN = "at-7c1e0b5d9f-super-secret"
RECORD = json.dumps({"access_token": TOKEN, "refresh_token": "rt-0a9b8c7d6e-also-secret"}).encode()


def text_forms(raw):
    """Every text a key may be given as (all but the raw bytes themselves)."""
    unpadded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return [raw.hex(), raw.hex().upper(), unpadded, unpadded + "=", f"  {raw.hex()}\n"]


def spellings(raw):
    """Every way ``raw`` might show up in a message: its own bytes' repr and every text form."""
    return [repr(raw), *(form.strip() for form in text_forms(raw)), base64.b64encode(raw).decode()]


def assert_shows_no_key(text, *keys):
    for raw in keys:
        for spelling in spellings(raw):
            assert spelling not in text
            assert spelling[:16] not in text  # not even a prefix of it


def assert_shows_no_tokens(error):
    for text in (str(error), repr(error)):
        assert TOKEN not in text
        assert "also-secret" not in text


@needs_cryptography
@pytest.mark.parametrize("form", [RAW, bytearray(RAW), *text_forms(RAW)], ids=lambda form: repr(form)[:12])
def test_every_key_form_round_trips_and_names_the_same_key(form):
    sealer = Sealer(form)
    sealed = sealer.seal(RECORD, CONTEXT)
    assert is_sealed(sealed)
    assert sealer.open(sealed, CONTEXT) == RECORD
    assert sealer.key_id == Sealer(RAW).key_id
    assert Sealer(RAW).open(sealed, CONTEXT) == RECORD  # the forms are one key


@needs_cryptography
def test_a_generated_key_is_43_url_safe_characters_and_works():
    key = generate_key()
    assert len(key) == 43
    assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert generate_key() != key
    sealer = Sealer(key)
    assert sealer.open(sealer.seal(RECORD, CONTEXT), CONTEXT) == RECORD


@needs_cryptography
@pytest.mark.parametrize(
    "plaintext", [b"", b"x", RECORD, os.urandom(1 << 20)], ids=["empty", "one byte", "record", "1 MiB"]
)
def test_any_plaintext_round_trips(plaintext):
    sealer = Sealer(RAW)
    sealed = sealer.seal(plaintext, CONTEXT)
    assert len(sealed) == HEADER_BYTES + NONCE_BYTES + len(plaintext) + 16
    assert sealer.open(sealed, CONTEXT) == plaintext


BAD_KEYS = {
    "empty bytes": b"",
    "31 bytes": RAW[:31],
    "33 bytes": RAW + b"!",
    "64 bytes": RAW * 2,
    "key text as bytes": RAW.hex().encode(),
    "empty text": "",
    "blank text": "   \n",
    "63 hex digits": RAW.hex()[:-1],
    "66 hex digits": RAW.hex() + "ab",
    "64 non-hex characters": "g" * 64,
    "base64 of 31 bytes": base64.urlsafe_b64encode(RAW[:31]).decode(),
    "base64 of 33 bytes": base64.urlsafe_b64encode(RAW + b"!").decode(),
    "standard base64 alphabet": base64.b64encode(b"\xfb\xff" * 16).decode(),
    "padding inside": base64.urlsafe_b64encode(RAW).decode()[:20] + "=" + base64.urlsafe_b64encode(RAW).decode()[21:],
    "a passphrase": "correct horse battery staple, and then some more words",
    "None": None,
    "a number": 12345678901234567890,
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_a_bad_key_is_refused_saying_what_a_key_is_without_showing_it(key):
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("the 'cryptography' package (the redis extra)")
    with pytest.raises(ConfigurationError) as caught:
        Sealer(key)
    message = str(caught.value)
    assert "64 hex digits" in message
    assert "URL-safe base64" in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    shown = key.strip() if isinstance(key, str) else key
    if shown:
        text = shown.decode() if isinstance(shown, bytes) else str(shown)
        assert text not in message
        assert text[:12] not in message
        assert repr(shown) not in message
        assert text not in repr(caught.value)


@needs_cryptography
def test_another_key_is_a_mismatch_showing_key_ids_only():
    sealed = Sealer(RAW).seal(RECORD, CONTEXT)
    mine = Sealer(OTHER)
    with pytest.raises(StoreKeyMismatch) as caught:
        mine.open(sealed, CONTEXT)
    error = caught.value
    assert isinstance(error, TokenStoreError)
    assert not isinstance(error, CorruptTokenCache)  # the record is intact: nothing may replace it
    assert error.record_key_id == Sealer(RAW).key_id
    assert error.store_key_id == mine.key_id
    for text in (str(error), repr(error)):
        assert Sealer(RAW).key_id in text
        assert mine.key_id in text
        assert "nothing was changed" in text
        assert_shows_no_key(text, RAW, OTHER)
    assert_shows_no_tokens(error)


@needs_cryptography
def test_a_key_from_the_environment_names_its_variable_on_a_mismatch(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, OTHER.hex())
    sealer = Sealer.from_environment()
    with pytest.raises(StoreKeyMismatch, match=f"check {ENVIRONMENT_VARIABLE}"):
        sealer.open(Sealer(RAW).seal(RECORD, CONTEXT), CONTEXT)


@needs_cryptography
def test_another_context_does_not_open():
    sealer = Sealer(RAW)
    sealed = sealer.seal(RECORD, CONTEXT)
    for context in (b"mcp-sync-auth:chain:9d01", CONTEXT + b"x", CONTEXT[:-1], b""):
        with pytest.raises(SealedRecordInvalid) as caught:
            sealer.open(sealed, context)
        assert_shows_no_tokens(caught.value)
        assert_shows_no_key(str(caught.value), RAW)


def flip(data, index):
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


@needs_cryptography
@pytest.mark.parametrize("where", ["nonce", "first ciphertext byte", "last ciphertext byte", "tag"])
def test_altered_data_does_not_open(where):
    sealer = Sealer(RAW)
    sealed = sealer.seal(RECORD, CONTEXT)
    index = {
        "nonce": HEADER_BYTES,
        "first ciphertext byte": HEADER_BYTES + NONCE_BYTES,
        "last ciphertext byte": len(sealed) - 17,
        "tag": len(sealed) - 1,
    }[where]
    with pytest.raises(SealedRecordInvalid) as caught:
        sealer.open(flip(sealed, index), CONTEXT)
    error = caught.value
    assert isinstance(error, CorruptTokenCache)  # lost like a corrupt file: a login replaces it
    assert error.quarantined_to is None
    assert sealer.key_id in str(error)
    assert_shows_no_tokens(error)


@needs_cryptography
@pytest.mark.parametrize("length", [len(MAGIC), HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + NONCE_BYTES + 15])
def test_a_record_cut_short_does_not_open(length):
    sealer = Sealer(RAW)
    with pytest.raises(SealedRecordInvalid, match="cut short"):
        sealer.open(sealer.seal(RECORD, CONTEXT)[:length], CONTEXT)


@needs_cryptography
def test_an_altered_key_id_is_a_mismatch_and_an_altered_prefix_is_not_sealed():
    sealer = Sealer(RAW)
    sealed = sealer.seal(RECORD, CONTEXT)
    with pytest.raises(StoreKeyMismatch):
        sealer.open(flip(sealed, len(MAGIC)), CONTEXT)
    with pytest.raises(UnsealedRecord):
        sealer.open(flip(sealed, 0), CONTEXT)


@needs_cryptography
def test_two_seals_of_one_plaintext_differ():
    sealer = Sealer(RAW)
    first, second = sealer.seal(RECORD, CONTEXT), sealer.seal(RECORD, CONTEXT)
    assert first != second
    assert first[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES] != second[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    assert sealer.open(first, CONTEXT) == sealer.open(second, CONTEXT) == RECORD


@needs_cryptography
def test_the_sealed_format():
    sealer = Sealer(RAW)
    sealed = sealer.seal(RECORD, CONTEXT)
    key_id = hmac.new(RAW, b"mcp-sync-auth key id", hashlib.sha256).digest()[:8]
    assert sealed.startswith(b"mcpsa1:" + key_id)
    assert sealer.key_id == key_id.hex()
    assert RAW not in sealed
    assert TOKEN.encode() not in sealed
    assert CONTEXT not in sealed  # authenticated, not stored


@needs_cryptography
def test_the_key_id_is_stable_for_a_key_and_differs_across_keys():
    assert Sealer(RAW).key_id == Sealer(RAW.hex()).key_id == Sealer(RAW).key_id
    ids = {Sealer(key).key_id for key in (RAW, OTHER, generate_key(), generate_key())}
    assert len(ids) == 4
    assert all(len(key_id) == 16 for key_id in ids)


def test_is_sealed():
    assert not is_sealed(b"")
    assert not is_sealed(RECORD)
    assert not is_sealed(b"mcpsa")
    assert is_sealed(b"mcpsa1:")
    assert is_sealed(b"mcpsa27:anything")  # a newer format is still not plain data


@needs_cryptography
def test_open_stored_applies_the_store_rules():
    sealer = Sealer(RAW)
    sealed = sealer.seal(RECORD, CONTEXT)

    # No key: plain data as is; sealed data needs the key.
    assert open_stored(RECORD, CONTEXT, None) == RECORD
    with pytest.raises(StoreKeyMismatch) as caught:
        open_stored(sealed, CONTEXT, None)
    error = caught.value
    assert "this store's records are encrypted" in str(error)
    assert ENVIRONMENT_VARIABLE in str(error)
    assert "key=..." in str(error)
    assert error.record_key_id == sealer.key_id
    assert error.store_key_id is None
    assert_shows_no_key(str(error), RAW)
    with pytest.raises(StoreKeyMismatch):
        open_stored(sealed, CONTEXT, None, allow_plaintext=True)

    # A key: sealed data opens; plain data only while moving a store to encryption.
    assert open_stored(sealed, CONTEXT, sealer) == RECORD
    assert open_stored(sealed, CONTEXT, sealer, allow_plaintext=True) == RECORD
    with pytest.raises(UnsealedRecord) as refused:
        open_stored(RECORD, CONTEXT, sealer)
    assert isinstance(refused.value, TokenStoreError)
    assert not isinstance(refused.value, CorruptTokenCache)
    assert "allow_plaintext=True" in str(refused.value)
    assert CONTEXT.decode() in str(refused.value)
    assert_shows_no_tokens(refused.value)
    assert open_stored(RECORD, CONTEXT, sealer, allow_plaintext=True) == RECORD

    # Another key, altered data, another context: as Sealer.open says.
    with pytest.raises(StoreKeyMismatch):
        open_stored(Sealer(OTHER).seal(RECORD, CONTEXT), CONTEXT, sealer, allow_plaintext=True)
    with pytest.raises(SealedRecordInvalid):
        open_stored(flip(sealed, -1), CONTEXT, sealer)
    with pytest.raises(SealedRecordInvalid):
        open_stored(sealed, b"mcp-sync-auth:chain:other", sealer)


@needs_cryptography
def test_seal_for_store_seals_only_with_a_sealer():
    assert seal_for_store(RECORD, CONTEXT, None) is RECORD
    sealer = Sealer(RAW)
    written = seal_for_store(RECORD, CONTEXT, sealer)
    assert is_sealed(written)
    assert open_stored(written, CONTEXT, sealer) == RECORD


@pytest.mark.parametrize("sealer", [None, "a sealer"])
def test_a_newer_format_asks_for_an_upgrade_and_is_left_alone(sealer):
    if sealer is not None:
        if importlib.util.find_spec("cryptography") is None:
            pytest.skip("the 'cryptography' package (the redis extra)")
        sealer = Sealer(RAW)
    with pytest.raises(TokenStoreError, match=r"newer format .*upgrade mcp-sync-auth") as caught:
        open_stored(b"mcpsa2:" + os.urandom(60), CONTEXT, sealer)
    assert type(caught.value) is TokenStoreError


@needs_cryptography
def test_from_environment(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert Sealer.from_environment() is None
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "")
    assert Sealer.from_environment() is None
    key = generate_key()
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, key + "\n")
    sealer = Sealer.from_environment()
    assert sealer is not None
    assert sealer.key_id == Sealer(key).key_id
    assert Sealer(key).open(sealer.seal(RECORD, CONTEXT), CONTEXT) == RECORD

    monkeypatch.setenv("MY_STORE_KEY", OTHER.hex())
    assert Sealer.from_environment("MY_STORE_KEY").key_id == Sealer(OTHER).key_id

    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "not-a-key-at-all-but-secret-looking")
    with pytest.raises(ConfigurationError) as caught:
        Sealer.from_environment()
    assert ENVIRONMENT_VARIABLE in str(caught.value)
    assert "not-a-key" not in str(caught.value)


@needs_cryptography
def test_the_repr_shows_only_the_key_id_and_a_sealer_is_never_pickled():
    sealer = Sealer(RAW)
    assert repr(sealer) == f"Sealer(key_id={sealer.key_id})"
    assert_shows_no_key(repr(sealer), RAW)
    assert_shows_no_key(str(sealer), RAW)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(sealer)
    assert not hasattr(sealer, "__dict__")  # no public attribute to hold the key by accident


@pytest.mark.parametrize(
    "error",
    [
        StoreKeyMismatch("m", record_key_id="ab", store_key_id="cd"),
        SealedRecordInvalid("m", quarantined_to="elsewhere"),
        UnsealedRecord("m"),
        MissingExtra("m", extra="redis"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_the_errors_cross_processes_pickled(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)


WITHOUT_CRYPTOGRAPHY = textwrap.dedent(
    """
    import sys
    sys.modules["cryptography"] = None  # as if the redis extra were not installed
    import mcp_sync_auth
    from mcp_sync_auth._stores.sealing import Sealer, generate_key, is_sealed, open_stored, seal_for_store

    assert seal_for_store(b"{}", b"name", None) == b"{}"
    assert open_stored(b"{}", b"name", None) == b"{}"
    assert not is_sealed(b"{}")
    key = generate_key()
    print(key)
    for build in (lambda: Sealer(key), Sealer.from_environment):
        try:
            build()
        except mcp_sync_auth.MissingExtra as exc:
            assert isinstance(exc, mcp_sync_auth.ConfigurationError)
            print(exc.extra, "|", exc)
        else:
            raise AssertionError("built a Sealer without cryptography")
    """
)


def test_without_cryptography_the_package_imports_and_a_sealer_names_the_extra():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), ENVIRONMENT_VARIABLE: RAW.hex()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key, *lines = done.stdout.splitlines()
    expected = "encryption at rest needs the 'cryptography' package: pip install 'mcp-sync-auth[redis]'"
    assert lines == [f"redis | {expected}"] * 2
    assert key not in "\n".join(lines)
    assert RAW.hex() not in done.stdout + done.stderr
