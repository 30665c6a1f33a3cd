import importlib.util

import pytest

from ..helpers import skip_unless_ci
from .session import REASON_MISSING, SecretServiceSession, available


def _start(tmp_path_factory, name):
    for module, why in (
        ("keyring", "the keyring extra is needed: pip install 'mcp-sync-auth[keyring]'"),
        ("secretstorage", "secretstorage is needed for the Secret Service backend"),
    ):
        if importlib.util.find_spec(module) is None:
            skip_unless_ci(why)
    if not available():
        skip_unless_ci(REASON_MISSING)
    return SecretServiceSession(tmp_path_factory.mktemp(name)).start()


@pytest.fixture
def secret_service(tmp_path_factory, monkeypatch):
    """A fresh, unlocked Secret Service on a private bus; this process and its spawned workers use it."""
    session = _start(tmp_path_factory, "secret-service")
    try:
        for name, value in session.environment.items():
            monkeypatch.setenv(name, value)
        yield session
    finally:
        session.close()


@pytest.fixture
def secret_service_backend(secret_service):
    from keyring.backends import SecretService  # noqa: PLC0415 (only with the keyring extra)

    return SecretService.Keyring()


@pytest.fixture
def keyring_store(secret_service_backend, store_dir):
    from mcp_sync_auth import KeyringTokenStore  # noqa: PLC0415

    return KeyringTokenStore(store_dir, backend=secret_service_backend, timeout=10.0)
