"""``--redirect-uri`` and ``--callback-port``: where the browser comes back to, for a client registered
by hand with one fixed redirect URI (``redirect_uri=`` of :class:`~mcp_sync_auth.MCPAuth`)."""

from __future__ import annotations

import argparse
from typing import Optional

from .._oauth.loopback import CALLBACK_PATH, receivable_redirect_uri
from ..errors import AuthorizationFailed

MAX_PORT = 65535


def callback_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is 1 to {MAX_PORT}, not {port}")
    return port


def redirect_uri(text: str) -> str:
    """A loopback redirect URI this program can listen on, as given (it is sent byte for byte)."""
    uri = text.strip()
    try:
        receivable_redirect_uri(uri)
    except AuthorizationFailed as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return uri


def add_callback_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("callback (a client registered by hand with a fixed redirect URI)")
    given = group.add_mutually_exclusive_group()
    given.add_argument(
        "--redirect-uri",
        type=redirect_uri,
        metavar="URI",
        help="the redirect URI registered for the client, http://127.0.0.1:PORT/PATH (or localhost): "
        "the login listens on that port and path and sends the URI exactly as given",
    )
    given.add_argument(
        "--callback-port",
        type=callback_port,
        metavar="PORT",
        help=f"listen on this port: the redirect URI is http://127.0.0.1:PORT{CALLBACK_PATH}",
    )


def redirect_uri_from(args: argparse.Namespace) -> Optional[str]:
    """The redirect URI the options name, or None (a free port, or what the registration says)."""
    uri: Optional[str] = getattr(args, "redirect_uri", None)
    port: Optional[int] = getattr(args, "callback_port", None)
    if uri is not None:
        return uri
    if port is not None:
        return f"http://127.0.0.1:{port}{CALLBACK_PATH}"
    return None


__all__ = ["add_callback_options", "callback_port", "redirect_uri", "redirect_uri_from"]
