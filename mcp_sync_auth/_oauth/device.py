"""The device authorization grant (RFC 8628): log in on a machine without a browser.

The device authorization endpoint gives a device code (ours to poll with, never shown) and a user
code (the person's, to type in at the verification URI on any other device). We show the URI and
the code, then poll the token endpoint at the interval the server asks for, until the person
approves or declines, or the code expires. Everything the server sends is checked before any of it
is shown or used: it is printed to a terminal, and a hostile server could send anything.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

from .._chain.tokens import TokenSet
from .._util.checks import is_finite_number
from .._util.redact import clean_server_text
from .._util.urls import require_secure, shown_url
from ..errors import (
    AuthorizationFailed,
    ConfigurationError,
    DeviceCodeExpired,
    DeviceLoginDenied,
    TokenEndpointError,
)
from .dpop import DPoPKey
from .token_client import TokenEndpointClient

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: the interval when the server names none
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: each slow_down adds five seconds, for this and every later poll
MIN_INTERVAL = 1  # a server's 0 would make a busy loop of the polls
MAX_INTERVAL = 3600
MAX_EXPIRES_IN = 24 * 3600
MAX_CODE_LENGTH = 4096
MAX_USER_CODE_LENGTH = 64

__all__ = ["DeviceCode", "DeviceLogin", "read_device_authorization", "show_on_stderr"]


@dataclasses.dataclass(frozen=True)
class DeviceCode:
    """What the person needs for a device login: where to go and the code to enter there.

    ``verification_uri_complete``, when the server gives one, already carries the code (for a QR
    code or a link). ``expires_in`` and ``interval`` are seconds. The device code this client polls
    with is not part of it: it is never shown."""

    user_code: str
    verification_uri: str
    verification_uri_complete: Optional[str]
    expires_in: float
    interval: float


@dataclasses.dataclass(frozen=True, repr=False)
class _DeviceGrant:
    device_code: str
    shown: DeviceCode

    def __repr__(self) -> str:
        return f"_DeviceGrant({self.shown!r})"


def read_device_authorization(document: Mapping[str, Any], endpoint: str) -> _DeviceGrant:
    """The device authorization response (RFC 8628 §3.2), checked field by field; AuthorizationFailed
    saying which field is wrong otherwise (never quoting the device code)."""

    def bad(what: str) -> AuthorizationFailed:
        return AuthorizationFailed(f"the device authorization endpoint {endpoint} answered unusably: {what}")

    device_code = document.get("device_code")
    if not isinstance(device_code, str) or not device_code or len(device_code) > MAX_CODE_LENGTH:
        raise bad("'device_code' is missing, not a string or too long")
    if not device_code.isascii() or not device_code.isprintable():
        raise bad("'device_code' holds characters a form cannot carry as sent")
    user_code = document.get("user_code")
    if not isinstance(user_code, str) or not user_code.strip() or len(user_code) > MAX_USER_CODE_LENGTH:
        raise bad(f"'user_code' is missing, not a string or longer than {MAX_USER_CODE_LENGTH} characters")
    if not user_code.isprintable():
        raise bad("'user_code' holds control characters")
    # Google named it verification_url before the RFC settled on verification_uri.
    uri = _uri(document, "verification_uri", bad, required=True) or ""
    complete = _uri(document, "verification_uri_complete", bad, required=False)
    expires_in = document.get("expires_in")
    if not is_finite_number(expires_in) or not 0 < float(expires_in) <= MAX_EXPIRES_IN:
        raise bad(f"'expires_in' must be a number of seconds between 1 and {MAX_EXPIRES_IN}")
    interval: Any = document.get("interval", DEFAULT_INTERVAL)
    if interval is None:
        interval = DEFAULT_INTERVAL
    if not is_finite_number(interval) or not 0 <= float(interval) <= min(MAX_INTERVAL, float(expires_in)):
        raise bad("'interval' must be a number of seconds, at most 'expires_in'")
    shown = DeviceCode(
        user_code=user_code.strip(),
        verification_uri=uri,
        verification_uri_complete=complete,
        expires_in=float(expires_in),
        interval=max(float(interval), MIN_INTERVAL),
    )
    return _DeviceGrant(device_code, shown)


def _uri(
    document: Mapping[str, Any], name: str, bad: Callable[[str], AuthorizationFailed], *, required: bool
) -> Optional[str]:
    value = document.get(name)
    if value is None and name == "verification_uri":
        value = document.get("verification_url")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CODE_LENGTH or not value.isprintable():
        raise bad(f"'{name}' is missing or not a URL")
    try:
        # A person is sent there to type in a code that logs this machine in: only where TLS says who
        # answers (or this machine itself).
        return require_secure(value, name)
    except ConfigurationError:
        raise bad(f"'{name}' must be an https:// URL (http:// only for loopback): {shown_url(value)}") from None


def show_on_stderr(code: DeviceCode) -> None:
    """The default prompt: the URI and the code on stderr (stdout may be a pipe to a script)."""
    lines = [
        "To log in, open this page on any device:",
        f"  {code.verification_uri}",
        f"and enter the code:  {code.user_code}",
    ]
    if code.verification_uri_complete:
        lines.append(f"(or open {code.verification_uri_complete}, which carries the code)")
    minutes = max(1, math.floor(code.expires_in / 60))
    lines.append(f"Waiting for the approval (the code is good for {minutes} min)...")
    print("\n".join(lines), file=sys.stderr, flush=True)


class DeviceLogin:
    """One device login: the device code, the prompt, then the polls until an answer.

    Polls answered ``authorization_pending`` go on at the interval, ``slow_down`` adds five seconds
    to it for good, and a server that cannot be reached (or fails with a 5xx) doubles it; every other
    answer ends the login. ``sleep`` waits between polls and ``clock`` tells the time (both
    injectable: tests move a clock instead of waiting). The whole login ends by ``expires_in`` or
    ``timeout``, whichever is sooner."""

    def __init__(
        self,
        client: TokenEndpointClient,
        endpoint: str,
        *,
        prompt: Optional[Callable[[DeviceCode], None]],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        timeout: float,
        retry_hint: str,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._prompt = prompt if prompt is not None else show_on_stderr
        self._sleep = sleep
        self._clock = clock
        self._timeout = timeout
        self._retry_hint = retry_hint

    def run(self, *, scopes: Sequence[str], generation: int, dpop: Optional[DPoPKey]) -> TokenSet:
        grant = self._request(scopes)
        started = self._clock()
        self._prompt(grant.shown)
        expires_at = started + grant.shown.expires_in
        deadline = min(expires_at, started + self._timeout)
        interval = grant.shown.interval
        while True:
            # RFC 8628 §3.5: no sooner than the interval after the last request (the first included).
            if self._clock() + interval > deadline:
                raise self._too_late(expires_at <= deadline)
            self._sleep(interval)
            try:
                return self._client.device_code(grant.device_code, generation=generation, dpop=dpop)
            except TokenEndpointError as exc:
                code = exc.error_code
                if code == "authorization_pending":
                    continue
                if code == "slow_down":
                    interval += SLOW_DOWN_STEP
                    log.info("the server asked to poll more slowly: every %s s now", interval)
                    continue
                if code == "access_denied":
                    raise DeviceLoginDenied(
                        f"the device login was declined at {grant.shown.verification_uri}; nothing was stored"
                    ) from None
                if code == "expired_token":
                    raise self._too_late(True) from None
                if exc.transient:
                    # RFC 8628 §3.5: after a failure to reach the server, poll less often. Nothing is
                    # spent by a poll before approval, so the next one may simply be later.
                    interval *= 2
                    log.warning("%s; polling again in %s s", exc, interval)
                    continue
                if code == "invalid_grant":  # spent or unknown: this code can give nothing any more
                    raise AuthorizationFailed(f"{exc.message}; nothing was stored. {self._retry_hint}") from None
                raise

    def _request(self, scopes: Sequence[str]) -> _DeviceGrant:
        try:
            document = self._client.device_authorization(self._endpoint, scopes=scopes or None)
        except TokenEndpointError as exc:
            raise AuthorizationFailed(f"the device login could not start: {clean_server_text(exc.message)}") from None
        return read_device_authorization(document, self._endpoint)

    def _too_late(self, expired: bool) -> DeviceCodeExpired:
        why = "the device code expired" if expired else f"the login timeout ({self._timeout:g} s) passed"
        return DeviceCodeExpired(f"{why} before the login was approved; nothing was stored. {self._retry_hint}")
