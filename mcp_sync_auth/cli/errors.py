"""How ``mcp-sync-auth`` fails: one line on stderr, sometimes a hint, and an exit code a script can test.

Everything a user can cause (a bad argument, a server that is down, a missing or corrupt login, a held
lock, a folder it may not write, Ctrl-C, a closed pipe) ends here as ``mcp-sync-auth: <message>`` and,
where the message does not already say what to do, ``hint: <what to do>``. Only a bug shows a traceback.

Exit codes (also in ``mcp-sync-auth --help``):

===  ==========================================================================================
0    success
1    an error: the server cannot be reached or refused us, a store file cannot be used (written
     by a newer version, unsafe permissions), a lock timed out, a login failed...
2    usage: a bad argument, server URL or store (--store, $MCP_SYNC_AUTH_STORE)
3    a login is needed: no tokens, a dead chain, a token file that was corrupt (moved aside)
4    ``call`` only: the tool ran and reported an error (its result is still printed)
130  interrupted (Ctrl-C)
141  stdout was closed before everything was written (``| head``): nothing more is said
===  ==========================================================================================
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from typing import Collection, Optional

import requests

from .._util.urls import origin
from ..errors import (
    AuthorizationRequired,
    ConfigurationError,
    CorruptTokenCache,
    InsufficientScope,
    LockTimeout,
    MCPAuthError,
    RefreshInterrupted,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOGIN_NEEDED = 3
EXIT_TOOL_ERROR = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`'s yes

EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_ERROR, "error (server unreachable or refusing, unusable store file, lock timeout...)"),
    (EXIT_USAGE, "usage error: bad arguments, server URL or --store"),
    (EXIT_LOGIN_NEEDED, "a login is needed (no tokens, dead chain, corrupt token file)"),
    (EXIT_TOOL_ERROR, "call: the tool reported an error (its result is printed)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_STDOUT_CLOSED, "stdout closed early (e.g. piped into head)"),
)


def exit_codes_help() -> str:
    """The table of exit codes, for ``--help``."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


@dataclasses.dataclass(frozen=True)
class Failure:
    """What the command says before it exits with ``code``."""

    message: str
    code: int = EXIT_ERROR
    hint: Optional[str] = None


INTERRUPTED = Failure("interrupted", EXIT_INTERRUPTED)


class UsageError(ConfigurationError):
    """A bad option value that only running the command finds out (``--store``, or the variable that
    stands in for it): a usage error, exit 2, said in one line."""


def one_line(text: str) -> str:
    return " ".join(text.split())


def failure_of(exc: BaseException, args: argparse.Namespace) -> Optional[Failure]:
    """The failure a user sees for ``exc``; None for what only a bug raises (its traceback helps)."""
    if isinstance(exc, RefreshInterrupted):
        return INTERRUPTED
    if isinstance(exc, UsageError):
        return Failure(str(exc), EXIT_USAGE)
    if isinstance(exc, (AuthorizationRequired, CorruptTokenCache)):
        # A corrupt file has lost its chain just as a revoked one has: the way out is the same login.
        return Failure(str(exc), EXIT_LOGIN_NEEDED, _login_hint(exc, args))
    if isinstance(exc, LockTimeout):
        hint = "if the holder is still working (a slow refresh or a login), wait longer with --lock-timeout SECONDS"
        return Failure(str(exc), EXIT_ERROR, hint)
    if isinstance(exc, MCPAuthError):  # before requests': ours derive from RequestException
        return Failure(str(exc))
    if isinstance(exc, requests.RequestException):
        return Failure(_network_failure(exc))
    if isinstance(exc, UnicodeEncodeError):  # most often the output, on a terminal that is not UTF-8
        hint = "if this is the output, set PYTHONIOENCODING=utf-8"
        return Failure(f"text that {exc.encoding} cannot encode ({exc.reason})", EXIT_ERROR, hint)
    if isinstance(exc, OSError):  # a folder or file we may not read or write, a full disk...
        where = f": {exc.filename}" if exc.filename else ""
        return Failure(f"{exc.strerror or exc}{where}")
    return None


def _login_hint(exc: BaseException, args: argparse.Namespace) -> Optional[str]:
    url = getattr(args, "url", None)
    if not url:
        return None
    command = f"mcp-sync-auth login {shlex.quote(url)}"
    if isinstance(exc, InsufficientScope) and exc.scopes:
        return f"log in with the scopes the server asks for: {command} --scope {shlex.quote(' '.join(exc.scopes))}"
    offers_flag = getattr(args, "login", None) is False  # the command has --login, not given
    if "mcp-sync-auth login" in str(exc):  # the message says what to run already
        return "or add --login to this command to log in first" if offers_flag else None
    return f"run `{command}`" + (", or add --login to this command" if offers_flag else "")


def _network_failure(exc: requests.RequestException) -> str:
    """``cannot reach https://host:port: Connection refused`` rather than urllib3's nested reprs."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    scheme, host, port = origin(url) if isinstance(url, str) else ("", "", 0)
    where = f" {scheme}://{host}" if host else ""
    if host and port != {"https": 443, "http": 80}.get(scheme):
        where += f":{port}"
    if isinstance(exc, requests.Timeout):  # urllib3's text says no more than this
        return f"no answer from{where or ' the server'} in time"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach{where or ' the server'}: {_deepest_reason(exc)}"
    return one_line(str(exc))


def _deepest_reason(exc: BaseException) -> str:
    """The innermost OS-level reason in the chain of wrapped errors (``Connection refused``,
    ``Name or service not known``...), else the error's own text."""
    reason = str(exc)
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(current.args[:1])
    return one_line(reason)


def report(failure: Failure, already_said: Collection[str] = ()) -> int:
    """Say ``failure`` on stderr (its message only once: a warning logged just before may have said
    it) and return its exit code."""
    message = one_line(failure.message)
    try:
        if message not in already_said:
            print(f"mcp-sync-auth: {message}", file=sys.stderr)
        if failure.hint:
            print(f"hint: {one_line(failure.hint)}", file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed as well: the exit code is all that is left
        pass
    return failure.code


def stdout_closed() -> int:
    """The reader of stdout went away (``| head -1``): stop quietly. What is still buffered goes to
    the null device, so the interpreter's last flush does not fail with a traceback of its own."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return EXIT_STDOUT_CLOSED
    try:
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor behind sys.stdout (captured)
        pass
    finally:
        os.close(null)
    return EXIT_STDOUT_CLOSED
