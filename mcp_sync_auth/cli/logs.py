"""The library's log lines on stderr, one line each, while a command runs.

The package logger has only a ``NullHandler`` of its own (a library must not print); the command is
the program, so it shows warnings (``-v``: info, ``-vv``: debug, ``-q``: errors only) as
``mcp-sync-auth: <message>``: no timestamps, no logger names, no tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

from .errors import one_line

PACKAGE_LOGGER = "mcp_sync_auth"


class StderrLines(logging.Handler):
    """Each record as one ``mcp-sync-auth: <message>`` line on the current ``sys.stderr``.

    ``said`` holds the messages shown, so that an error whose text a warning has just shown (a store
    logs a corrupt file, then raises it) is not said twice."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = one_line(record.getMessage())  # the message only: a traceback is for bugs
            self.said.add(message)
            print(f"mcp-sync-auth: {message}", file=sys.stderr, flush=True)
        except Exception:  # logging's own policy: a failing handler must not raise
            self.handleError(record)


def level_for(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.WARNING


@contextlib.contextmanager
def to_stderr(level: int) -> Iterator[StderrLines]:
    """The package's records at ``level`` and above go to stderr while the block runs."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = StderrLines(level)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
