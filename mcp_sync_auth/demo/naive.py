"""The naive side: requests-oauthlib's auto-refresh with one ``OAuth2Session`` per thread, the way
it is used today. Every session holds the same refresh token and refreshes it on its own."""

from __future__ import annotations

import os
from typing import Any, Callable, List, Tuple

from requests_oauthlib import OAuth2Session  # type: ignore[import-untyped]

from .._mcp.client import MCPClient
from .protocol import WorkerConfig

__all__ = ["naive_clients"]


def _allow_http_on_loopback() -> None:
    # requests-oauthlib refuses http:// unless this process-wide switch is on. It is switched on here,
    # in the naive worker processes only; mcp_sync_auth itself never needs it.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def _keep_token(token: Any) -> None:
    """A real program would write the new token to its token file here. The other sessions, which
    already hold the old refresh token, would not see it before their own refresh anyway."""


def naive_clients(config: WorkerConfig) -> Tuple[Callable[[], MCPClient], Callable[[], None]]:
    """A factory giving each thread its own session and client, and a cleanup for them all."""
    _allow_http_on_loopback()
    if config.token is None or config.client_id is None or config.token_endpoint is None:
        raise ValueError("the naive worker needs a token, a client id and a token endpoint")
    token, client_id, token_endpoint = config.token, config.client_id, config.token_endpoint
    sessions: List[Any] = []

    def new_client() -> MCPClient:
        session = OAuth2Session(
            client_id,
            token=dict(token),
            auto_refresh_url=token_endpoint,
            auto_refresh_kwargs={"client_id": client_id, "resource": config.mcp_url},
            token_updater=_keep_token,
        )
        session.trust_env = False  # loopback only: no proxy from the environment
        sessions.append(session)
        return MCPClient(config.mcp_url, session=session, timeout=30.0)

    def cleanup() -> None:
        # No MCPClient.close(): its goodbye DELETE would make requests-oauthlib try yet another refresh.
        for session in sessions:
            session.close()

    return new_client, cleanup
