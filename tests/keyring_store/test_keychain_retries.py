"""A Secret Service whose bus refuses a burst of new connections, or answers too late, makes keyring
raise InitError for a call that would work a moment later (seen with 8 processes x 16 threads on a
loaded machine). Such a call is asked again until its deadline: a refresh whose answer the keychain
refuses can cost the chain. Every other failure is reported at once."""

import pytest

keyring_errors = pytest.importorskip("keyring.errors")

from mcp_sync_auth import KeychainUnavailable  # noqa: E402
from mcp_sync_auth._stores.keychain import Keychain  # noqa: E402


class FlakyBackend:
    """Fails the first ``failures`` calls with ``error``, then keeps what it is given."""

    def __init__(self, failures, error):
        self.failures = failures
        self.error = error
        self.calls = 0
        self.secrets = {}

    def _maybe_fail(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("Failed to create the collection")

    def get_password(self, service, entry):
        self._maybe_fail()
        return self.secrets.get((service, entry))

    def set_password(self, service, entry, secret):
        self._maybe_fail()
        self.secrets[(service, entry)] = secret


def test_a_service_that_could_not_be_reached_is_asked_again():
    backend = FlakyBackend(3, keyring_errors.InitError)
    keychain = Keychain("mcp-sync-auth-test", timeout=30, backend=backend)
    keychain.set("entry", "value")
    assert backend.calls == 4 and keychain.get("entry") == "value"


def test_a_service_that_stays_away_is_reported_by_the_calls_deadline():
    backend = FlakyBackend(10_000, keyring_errors.InitError)
    keychain = Keychain("mcp-sync-auth-test", timeout=1.0, backend=backend)
    with pytest.raises(KeychainUnavailable, match="InitError"):
        keychain.set("entry", "value")
    assert 1 < backend.calls < 10_000


def test_a_locked_keychain_is_not_asked_again():
    backend = FlakyBackend(1, keyring_errors.KeyringLocked)
    keychain = Keychain("mcp-sync-auth-test", timeout=30, backend=backend)
    with pytest.raises(KeychainUnavailable, match="locked"):
        keychain.set("entry", "value")
    assert backend.calls == 1
