"""Protocol errors raised by the server logic (no HTTP here)."""

from __future__ import annotations

__all__ = ["OAuthError"]


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response.

    ``audited`` is set by :class:`~mcp_sync_auth.testing.state.AuthState` when it
    has already counted the failure, so the endpoint does not count it twice.
    ``basic_challenge`` asks the endpoint to add ``WWW-Authenticate: Basic``
    (RFC 6749 §5.2, client tried HTTP Basic authentication). ``server_error`` is the server's own
    fault (a missing optional dependency) and answers 500.
    """

    def __init__(self, error: str, description: str, *, basic_challenge: bool = False) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.basic_challenge = basic_challenge
        self.audited = False

    @property
    def status(self) -> int:
        return {"invalid_client": 401, "server_error": 500}.get(self.error, 400)
