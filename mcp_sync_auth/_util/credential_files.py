"""Reading a credential from a file (a key, a workload token, an ID token): bounded, and with errors
that name the file and never what it holds."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigurationError

MAX_CREDENTIAL_BYTES = 64 * 1024


def read_credential(path: str, what: str, error: Callable[[str], ConfigurationError] = ConfigurationError) -> bytes:
    """The file's bytes; ``error`` (a message naming ``what``, which says where) if it cannot be
    read, or is larger than any credential."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_CREDENTIAL_BYTES:
        raise error(f"{what} is larger than {MAX_CREDENTIAL_BYTES} bytes")
    return raw


__all__ = ["MAX_CREDENTIAL_BYTES", "read_credential"]
