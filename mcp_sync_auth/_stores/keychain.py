"""The system keychain through the ``keyring`` package, with every call bounded in time.

A keychain can hang (a Secret Service whose daemon never answers) or wait for a person (an unlock
prompt in a headless session). Neither may hang a refresh, so each call runs on a helper thread and
is given up after ``timeout`` seconds with :class:`~mcp_sync_auth.errors.KeychainUnavailable`. A call
that was given up may still be running: until it returns, later calls fail at once with the same
error instead of piling more threads onto a keychain that does not answer.

No message here quotes what was stored or asked for: only the backend's name, the entry's name (a
hash of the chain's key) and the kind of failure.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from .._util.keyring_extra import keychain_locked_errors, keyring_module, service_unreachable_errors
from ..errors import ConfigurationError, KeychainUnavailable

__all__ = [
    "DEFAULT_SERVICE",
    "DEFAULT_TIMEOUT",
    "KEYRING_TIMEOUT_VARIABLE",
    "Keychain",
    "backend_name",
    "keyring_timeout",
    "unusable_reason",
]

DEFAULT_SERVICE = "mcp-sync-auth"
DEFAULT_TIMEOUT = 5.0
KEYRING_TIMEOUT_VARIABLE = "MCP_SYNC_AUTH_KEYRING_TIMEOUT"
_ADVICE = "unlock the keychain, or use the file store (MCP_SYNC_AUTH_STORE=file)"
# keyring's backends that store nothing: no keychain at all.
_EMPTY_BACKENDS = ("keyring.backends.fail", "keyring.backends.null")

T = TypeVar("T")


def keyring_timeout() -> float:
    """Seconds each keychain call may take: ``$MCP_SYNC_AUTH_KEYRING_TIMEOUT``, else 5."""
    text = os.environ.get(KEYRING_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(f"{KEYRING_TIMEOUT_VARIABLE} must be a positive number of seconds, not {text!r}")
    return seconds


def backend_name(backend: object) -> str:
    """A backend's name for people, such as ``SecretService Keyring``."""
    cls = type(backend)
    module = cls.__module__.rsplit(".", 1)[-1]
    return f"{module} {cls.__name__}"


def _is_empty(backend: object) -> bool:
    if type(backend).__module__ in _EMPTY_BACKENDS:
        return True
    inner = getattr(backend, "backends", None)  # a ChainerBackend: empty when it chains nothing
    return isinstance(inner, list) and not inner


class Keychain:
    """Get, set and delete secrets of one service name in one keyring backend, each within ``timeout``."""

    def __init__(self, service: str = DEFAULT_SERVICE, *, timeout: Optional[float] = None, backend: Any = None) -> None:
        if timeout is None:
            timeout = keyring_timeout()
        if not 0 < timeout < float("inf"):
            raise ConfigurationError("the keychain timeout must be a positive number of seconds")
        self.service = service
        self.timeout = timeout
        self._backend = backend
        self._guard = threading.Lock()
        self._stuck: Optional[str] = None  # what the call that is still running was doing

    def __repr__(self) -> str:
        return f"Keychain({self.service!r}, timeout={self.timeout:g})"

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = keyring_module().get_keyring()
        return self._backend

    @property
    def name(self) -> str:
        return backend_name(self.backend)

    def get(self, entry: str) -> Optional[str]:
        value: Optional[str] = self._call(f"reading {entry}", lambda b: b.get_password(self.service, entry))
        return value

    def set(self, entry: str, secret: str) -> None:
        self._call(f"writing {entry}", lambda b: b.set_password(self.service, entry, secret))

    def delete(self, entry: str) -> None:
        """Forget ``entry``; an entry that is not there is no error."""
        errors = keyring_module().errors

        def forget(b: Any) -> None:
            # keyring says "absent already" with this error
            with contextlib.suppress(errors.PasswordDeleteError):
                b.delete_password(self.service, entry)

        self._call(f"deleting {entry}", forget)

    def _call(self, what: str, call: Callable[[Any], T]) -> T:
        backend = self.backend
        with self._guard:
            if self._stuck is not None:
                raise KeychainUnavailable(
                    f"the keychain ({backend_name(backend)}) has not answered an earlier call ({self._stuck}) "
                    f"after {self.timeout:g} s, so {what} was not tried; {_ADVICE}"
                )
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["value"] = _with_retries(call, backend, time.monotonic() + self.timeout)
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                with self._guard:
                    if self._stuck == what:
                        self._stuck = None
                done.set()

        worker = threading.Thread(target=run, name="mcp-sync-auth-keychain", daemon=True)
        worker.start()
        if not done.wait(self.timeout):
            with self._guard:
                if not done.is_set():
                    self._stuck = what
            if not done.is_set():
                raise KeychainUnavailable(
                    f"the keychain ({backend_name(backend)}) did not answer within {self.timeout:g} s while "
                    f"{what} (locked, waiting for a prompt nobody can see, or hung); {_ADVICE}"
                )
        error = outcome.get("error")
        if error is not None:
            raise _translated(error, backend, what) from None
        value: T = outcome.get("value")  # type: ignore[assignment]
        return value


# A backend that could not reach its service (keyring's InitError, secretstorage's
# SecretServiceNotAvailableException: the D-Bus connection refused or cut off, or the daemon too
# busy to answer, as a burst of new connections on a loaded machine does) is asked again until the
# call's deadline: a refresh whose answer cannot be stored in the keychain may cost the chain. Any
# other failure (a locked keychain, a refused write, another package's error of the same name) is
# reported at once.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.05, 0.5


def _with_retries(call: Callable[[Any], T], backend: Any, deadline: float) -> T:
    pause = _FIRST_PAUSE
    while True:
        try:
            return call(backend)
        except Exception as exc:
            if not isinstance(exc, service_unreachable_errors()) or time.monotonic() + pause >= deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, _LONGEST_PAUSE)


def _translated(error: BaseException, backend: object, what: str) -> BaseException:
    """Our error for a backend's failure; never its text, which is not ours to trust."""
    if not isinstance(error, Exception):
        return error  # KeyboardInterrupt and friends pass through as they are
    kind = type(error).__name__
    why = "it is locked" if isinstance(error, keychain_locked_errors()) else f"it failed with {kind}"
    return KeychainUnavailable(f"the keychain ({backend_name(backend)}) refused {what}: {why}; {_ADVICE}")


def unusable_reason(keychain: Keychain) -> Optional[str]:
    """None when the keychain can be used, else why not: no keyring package, a backend that stores
    nothing, or a probe read that fails or does not answer within the keychain's timeout."""
    try:
        backend = keychain.backend
    except Exception as exc:  # MissingExtra, or a keyring configuration that cannot load
        return str(exc)
    if _is_empty(backend):
        return f"keyring found no keychain here (its backend is {backend_name(backend)})"
    try:
        keychain.get("probe")
    except KeychainUnavailable as exc:
        return str(exc)
    return None
