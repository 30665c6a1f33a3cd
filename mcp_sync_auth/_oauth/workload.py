"""The workload's own token, for the JWT bearer grant (RFC 7523 §2.1): a Kubernetes projected
service-account token, a cloud workload identity token, or whatever a callable returns.

Projected tokens are rotated on disk, so the file (or the variable) is read again for every grant.
What is read is checked before it is sent: a value that is not a JWT, or one already expired, is
our error at once rather than a refusal from the server (and never a retry).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Callable, Optional

from ..errors import WorkloadTokenError

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_TOKEN_BYTES = 64 * 1024

WorkloadTokenProvider = Callable[[str], str]
"""Given the audience (the token endpoint URL), return the workload's JWT."""


class WorkloadToken:
    """Where the workload token comes from: exactly one of ``file``, ``env`` (a variable's name) or
    ``provider``."""

    def __init__(
        self,
        *,
        file: Optional[str] = None,
        env: Optional[str] = None,
        provider: Optional[WorkloadTokenProvider] = None,
        clock: Callable[[], float],
    ) -> None:
        if sum(source is not None for source in (file, env, provider)) != 1:
            raise ValueError("one source of the workload token")
        self._file = file
        self._env = env
        self._provider = provider
        self._clock = clock

    def __repr__(self) -> str:
        return f"WorkloadToken({self.describe()})"

    def describe(self) -> str:
        if self._file is not None:
            return f"the workload token in {self._file}"
        if self._env is not None:
            return f"the workload token in ${self._env}"
        return "the workload token from its provider"

    def read(self, audience: str) -> str:
        """The token to present now: read afresh, and checked to be an unexpired JWT."""
        token = self._fetch(audience).strip()
        _check(token, self.describe(), self._clock())
        return token

    def _fetch(self, audience: str) -> str:
        if self._file is not None:
            try:
                with open(self._file, "rb") as file:
                    raw = file.read(MAX_TOKEN_BYTES + 1)
            except OSError as exc:
                raise WorkloadTokenError(
                    f"cannot read {self.describe()}: {exc.strerror or type(exc).__name__}"
                ) from None
            if len(raw) > MAX_TOKEN_BYTES:
                raise WorkloadTokenError(f"{self.describe()} is larger than {MAX_TOKEN_BYTES} bytes")
            try:
                return raw.decode("ascii")
            except UnicodeDecodeError:
                raise WorkloadTokenError(f"{self.describe()} is not a JWT (it is not ASCII text)") from None
        if self._env is not None:
            value = os.environ.get(self._env)
            if not value:
                raise WorkloadTokenError(f"{self.describe()} is not set")
            return value
        assert self._provider is not None
        made = self._provider(audience)
        if not isinstance(made, str):
            raise WorkloadTokenError(f"{self.describe()} is not a string")
        return made


def _check(token: str, what: str, now: float) -> None:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise WorkloadTokenError(f"{what} is not a JWT (three base64url parts separated by dots)")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise WorkloadTokenError(f"{what} is not a JWT (its claims are not base64url JSON)") from None
    if not isinstance(claims, dict):
        raise WorkloadTokenError(f"{what} is not a JWT (its claims are not a JSON object)")
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)) or isinstance(expires, bool):
        raise WorkloadTokenError(f"{what} has no expiry (exp)")
    if expires <= now:
        raise WorkloadTokenError(
            f"{what} expired {int(now - expires)} s ago; it is read again for each grant, so renew it where "
            "it comes from (a projected token is rotated by the kubelet)"
        )


__all__ = ["JWT_BEARER_GRANT", "WorkloadToken", "WorkloadTokenProvider"]
