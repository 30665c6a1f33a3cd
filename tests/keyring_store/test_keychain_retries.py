"""A Secret Service whose bus refuses a burst of new connections, or answers too late, makes keyring
raise InitError for a call that would work a moment later (seen with 8 processes x 16 threads on a
loaded machine). Such a call is asked again until its deadline: a refresh whose answer the keychain
refuses can cost the chain. Every other failure is reported at once."""

import sys

import pytest

keyring_errors = pytest.importorskip("keyring.errors")
keyring_backend = pytest.importorskip("keyring.backend")

from mcp_sync_auth import KeychainUnavailable  # noqa: E402
from mcp_sync_auth._stores.keychain import Keychain  # noqa: E402


class MemoryKeyring(keyring_backend.KeyringBackend):
    """A keyring backend that keeps its secrets in a dict, after failing its first ``failures`` calls
    with ``error``. It gives no priority, so keyring never chooses it by itself: only set_keyring does."""

    def __init__(self, failures=0, error=None):
        super().__init__()
        self.failures = failures
        self.error = error
        self.calls = 0
        self.secrets = {}

    def _maybe_fail(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("could not talk to the service")

    def get_password(self, service, username):
        self._maybe_fail()
        return self.secrets.get((service, username))

    def set_password(self, service, username, password):
        self._maybe_fail()
        self.secrets[(service, username)] = password

    def delete_password(self, service, username):
        self._maybe_fail()
        if self.secrets.pop((service, username), None) is None:
            raise keyring_errors.PasswordDeleteError("no such entry")


def test_a_service_that_could_not_be_reached_is_asked_again():
    backend = MemoryKeyring(3, keyring_errors.InitError)
    keychain = Keychain("mcp-sync-auth-test", timeout=30, backend=backend)
    keychain.set("entry", "value")
    assert backend.calls == 4 and keychain.get("entry") == "value"


def test_a_service_that_stays_away_is_reported_by_the_calls_deadline():
    backend = MemoryKeyring(10_000, keyring_errors.InitError)
    keychain = Keychain("mcp-sync-auth-test", timeout=1.0, backend=backend)
    with pytest.raises(KeychainUnavailable, match="InitError"):
        keychain.set("entry", "value")
    assert 1 < backend.calls < 10_000


def test_a_locked_keychain_is_not_asked_again():
    backend = MemoryKeyring(1, keyring_errors.KeyringLocked)
    keychain = Keychain("mcp-sync-auth-test", timeout=30, backend=backend)
    with pytest.raises(KeychainUnavailable, match="locked"):
        keychain.set("entry", "value")
    assert backend.calls == 1


# -- the errors are keyring's and secretstorage's own classes, not any class of the same name -----------


class InitError(Exception):
    """Named as keyring's, but another package's: it says nothing about the keychain's service."""


class SecretServiceNotAvailableException(Exception):
    """Named as secretstorage's, but another package's."""


class KeyringLocked(Exception):
    """Named as keyring's, but another package's: it does not say the keychain is locked."""


@pytest.fixture
def use_keyring(monkeypatch):
    """Register a backend with keyring.set_keyring for the test; keyring's choice before it comes back after."""
    import keyring.core  # noqa: PLC0415

    # keyring has no public way to read its choice without making one (which probes the machine's
    # backends): monkeypatch remembers the attribute set_keyring writes, and puts it back.
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)

    def register(backend):
        keyring.set_keyring(backend)
        return Keychain("mcp-sync-auth-test", timeout=30)  # no backend=: the one keyring hands out

    return register


def secretstorage_unreachable():
    return pytest.importorskip("secretstorage.exceptions").SecretServiceNotAvailableException


@pytest.mark.parametrize(
    "error", [lambda: keyring_errors.InitError, secretstorage_unreachable], ids=["keyring", "secretstorage"]
)
def test_the_libraries_own_unreachable_errors_are_asked_again(use_keyring, error):
    backend = MemoryKeyring(3, error())
    keychain = use_keyring(backend)
    keychain.set("entry", "value")
    assert backend.calls == 4 and backend.secrets == {("mcp-sync-auth-test", "entry"): "value"}
    assert keychain.get("entry") == "value" and backend.calls == 5


@pytest.mark.parametrize("error", [InitError, SecretServiceNotAvailableException])
def test_an_error_merely_named_as_theirs_is_reported_at_once(use_keyring, error):
    backend = MemoryKeyring(3, error)
    keychain = use_keyring(backend)
    with pytest.raises(KeychainUnavailable, match=f"refused writing entry: it failed with {error.__name__}"):
        keychain.set("entry", "value")
    assert backend.calls == 1 and backend.secrets == {}


def test_only_keyrings_own_locked_error_says_the_keychain_is_locked(use_keyring):
    with pytest.raises(KeychainUnavailable, match="it is locked"):
        use_keyring(MemoryKeyring(1, keyring_errors.KeyringLocked)).get("entry")
    with pytest.raises(KeychainUnavailable, match="it failed with KeyringLocked") as caught:
        use_keyring(MemoryKeyring(1, KeyringLocked)).get("entry")
    assert "locked" not in str(caught.value).replace("KeyringLocked", "")


def test_without_secretstorage_keyrings_own_errors_still_work(use_keyring, monkeypatch):
    # A macOS or Windows keyring: secretstorage cannot be imported (None in sys.modules makes any
    # import of it fail with ImportError, as if it were not installed).
    monkeypatch.setitem(sys.modules, "secretstorage", None)
    monkeypatch.setitem(sys.modules, "secretstorage.exceptions", None)
    backend = MemoryKeyring(2, keyring_errors.InitError)
    keychain = use_keyring(backend)
    keychain.set("entry", "value")
    assert backend.calls == 3
    keychain.delete("entry")
    keychain.delete("entry")  # absent already: keyring's PasswordDeleteError, which is no error
    with pytest.raises(KeychainUnavailable, match="it is locked"):
        use_keyring(MemoryKeyring(1, keyring_errors.KeyringLocked)).get("entry")
    with pytest.raises(KeychainUnavailable, match="it failed with InitError"):
        use_keyring(MemoryKeyring(1, InitError)).get("entry")
