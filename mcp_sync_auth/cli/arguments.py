"""Argument types and options shared by several commands; what they refuse is a usage error (exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Optional

from .._util.urls import canonical_resource, require_secure
from ..errors import ConfigurationError


def server_url(text: str) -> str:
    """An MCP server URL that MCPAuth will accept, as given (without surrounding blanks)."""
    try:
        require_secure(canonical_resource(text), "the MCP server URL")
    except ConfigurationError as exc:
        # ArgumentTypeError: argparse prints our message, never the value (it may hold a password).
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


# MCPAuth's own default: twice the longest a grant may take to answer, plus 10 s.
LIBRARY_LOCK_TIMEOUT = "twice the longest a refresh may take, plus 10 s"


def add_lock_timeout(
    parser: argparse.ArgumentParser, default: Optional[float] = None, shown: str = LIBRARY_LOCK_TIMEOUT
) -> None:
    """``--lock-timeout SECONDS``: how long the command waits for another process's lock."""
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=default,
        metavar="SECONDS",
        help=f"how long to wait for another process that holds the lock (default: {shown})",
    )


def add_account(parser: argparse.ArgumentParser, shown: str = "") -> None:
    """``--account NAME``: which of several logins to one server (each its own chain, kept apart)."""
    parser.add_argument(
        "--account",
        metavar="NAME",
        help=shown or "which login to this server, when one person or program holds several (default: default)",
    )


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    said = parser.add_mutually_exclusive_group()
    said.add_argument("-v", "--verbose", action="count", default=0, help="say more on stderr (-vv: debugging detail)")
    said.add_argument("-q", "--quiet", action="store_true", help="say only errors on stderr")
