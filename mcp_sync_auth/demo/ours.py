"""Our side: one ``MCPAuth`` and one ``MCPClient`` per process, shared by its threads, over one
``FileTokenStore`` folder shared by every process. Each process finds the chain in the store."""

from __future__ import annotations

from typing import Callable, Tuple

from .._mcp.client import MCPClient
from .._stores.file import FileTokenStore
from ..auth import MCPAuth
from .protocol import WorkerConfig, loopback_session
from .timing import REFRESH_SKEW

__all__ = ["our_clients"]


def our_clients(config: WorkerConfig) -> Tuple[Callable[[], MCPClient], Callable[[], None]]:
    """The same client for every thread, and a cleanup that ends its session."""
    if config.store_dir is None and not config.store_from_environment:
        raise ValueError("our worker needs the token store folder")
    session = loopback_session(config.threads)
    # Nothing but the URL and the store: the chain, its client and its token endpoint come from the
    # store, as in any process started after a login. interactive=False: a dead chain is an error.
    # With --hosts there is no store= at all: the host's environment picks it, as on a real host.
    auth = MCPAuth(
        config.mcp_url,
        store=None if config.store_dir is None else FileTokenStore(config.store_dir),
        session=session,
        interactive=False,
        refresh_skew=REFRESH_SKEW,
    )
    client = MCPClient(config.mcp_url, auth=auth, session=session, timeout=30.0)

    def cleanup() -> None:
        client.close()
        session.close()

    return lambda: client, cleanup
