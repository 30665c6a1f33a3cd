"""The ``mcp-sync-auth`` command line.

Results go to stdout, messages to stderr: one ``mcp-sync-auth: <message>`` line per error (and
``hint: ...`` where the message does not say what to do), never a traceback for anything a user can
cause. The exit codes are in :mod:`.errors` and in ``mcp-sync-auth --help``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Collection, Optional, Sequence, cast

from .. import demo
from .._chain.keys import DEFAULT_ACCOUNT, ChainKey, ChainRecord, RegistrationKey
from .._oauth.login import AuthorizationHandler
from .._oauth.settings import GRANT_TYPES
from .._oauth.signing import ALGORITHMS
from .._stores.inventory import Unreadable, refreshes_in_flight, settle, take_inventory
from .._stores.protocol import ChainStore, TokenStore
from .._stores.selection import STORE_ENVIRONMENT_VARIABLE, describe_store, store_from_spec
from .._util.urls import canonical_resource
from .._version import __version__
from ..auth import MCPAuth
from ..errors import ConfigurationError, CorruptTokenCache, MissingExtra, TokenStoreError
from . import errors as cli_errors
from . import logs as cli_logs
from . import status as cli_status
from . import tools as cli_tools
from .arguments import add_account, add_lock_timeout, add_verbosity, server_url
from .callback import add_callback_options, redirect_uri_from
from .errors import EXIT_ERROR, EXIT_LOGIN_NEEDED, EXIT_OK, EXIT_TOOL_ERROR, EXIT_USAGE, UsageError

__all__ = ["EXIT_ERROR", "EXIT_LOGIN_NEEDED", "EXIT_OK", "EXIT_TOOL_ERROR", "EXIT_USAGE", "build_parser", "main"]


STORE_HELP = (
    "where the tokens are kept: a folder, file:///absolute/path, memory: (this process only), "
    "redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS) or unix:///path/to/redis.sock "
    f"(default: ${STORE_ENVIRONMENT_VARIABLE}, else the folder $MCP_SYNC_AUTH_HOME or the user's cache)"
)


def _store(args: argparse.Namespace) -> TokenStore:
    """The store ``--store`` names, else ``$MCP_SYNC_AUTH_STORE``, else the default folder. A value
    that names no store is a usage error (exit 2), said in one line without any password."""
    try:
        return store_from_spec(args.store, what="--store", report=lambda line: print(line, file=sys.stderr))
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


# How long `status` waits for the lock of a corrupt file it moves aside (the only lock it takes).
STATUS_LOCK_TIMEOUT = 10.0


def cmd_status(args: argparse.Namespace) -> int:
    """Every chain, and the verdict on every file that cannot be used (exit 1 if there is one).
    Creates no folder, and locks only a corrupt file, to move it aside. ``--json``: the chains as
    a JSON list (the schema is in :mod:`.status`), the problems on stderr."""
    store = _store(args)
    where = describe_store(store)
    if not args.json:
        print(f"store: {where}")
    wanted = canonical_resource(args.url) if args.url else None
    account = args.account
    found = take_inventory(store)
    records = [r for r in found.records if _shown(r.key, wanted, account)]
    lock_timeout = args.lock_timeout
    problems: list[tuple[Unreadable, TokenStoreError]] = []
    for entry in found.unreadable:
        if _concerns(entry, wanted):
            record, error = _status_verdict(store, entry, STATUS_LOCK_TIMEOUT if lock_timeout is None else lock_timeout)
            if record is not None:  # replaced by a good one since the listing
                if _shown(record.key, wanted, account):
                    records.append(record)
            elif error is not None:
                problems.append((entry, error))
    now = cli_status.clock()
    busy = refreshes_in_flight(store, [r.key for r in records])  # a few reads for all, not a few per chain
    statuses = [cli_status.chain_status(r, store=where, now=now, busy=r.key in busy) for r in records]
    if args.json:
        print(json.dumps(statuses, indent=2))
        for entry, error in problems:
            print(f"mcp-sync-auth: {entry.location}: {cli_errors.one_line(str(error))}", file=sys.stderr)
        return EXIT_ERROR if problems else EXIT_OK
    if not records and not problems:
        print(f"no chains stored in {where}" + (f" for {wanted}" if wanted else ""))
        return EXIT_OK
    for status in statuses:
        print("\n".join(cli_status.chain_lines(status)))
    for entry, error in problems:
        _print_problem(entry, error)
    return EXIT_ERROR if problems else EXIT_OK


def _shown(key: ChainKey, wanted: Optional[str], account: Optional[str]) -> bool:
    return (wanted is None or key.resource == wanted) and (account is None or key.account == account)


def _concerns(entry: Unreadable, wanted: Optional[str]) -> bool:
    """Whether ``status URL`` shows this file: a chain of that server, a registration (it may be the
    server's client), or a file that no longer says whose it is."""
    return wanted is None or not isinstance(entry.key, ChainKey) or entry.key.resource == wanted


def _status_verdict(
    store: ChainStore, entry: Unreadable, lock_timeout: float
) -> tuple[Optional[ChainRecord], Optional[TokenStoreError]]:
    """The record of a file that reads again, or the error every other path gives for it. Only a
    corrupt file is read again, under its lock, so that it is moved aside as everywhere else."""
    if entry.problem != "corrupt":
        return None, entry.error
    try:
        record = settle(store, entry, lock_timeout)
    except TokenStoreError as exc:  # CorruptTokenCache naming where it went; LockTimeout if held
        return None, exc
    return record, None


_PROBLEM_STATES = {
    "corrupt": "corrupt: its tokens are lost, log in again",
    "newer": "written by a newer mcp-sync-auth: upgrade mcp-sync-auth",
    "refused": "refused: not safe to use, see the error",
}


def _print_problem(entry: Unreadable, error: TokenStoreError) -> None:
    key = entry.key
    if isinstance(key, ChainKey):
        print(key.resource)
        print(f"  client      {key.client_id}")
        print(f"  issuer      {key.issuer}")
    elif isinstance(key, RegistrationKey):
        print(f"client registration at {key.issuer}")
    else:
        print("(unknown chain)" if entry.kind == "chain" else "(unknown client registration)")
    print(f"  file        {entry.location}")
    state = _PROBLEM_STATES[entry.problem]
    if entry.problem == "corrupt":
        moved = error.quarantined_to if isinstance(error, CorruptTokenCache) else None
        state += f"; moved aside to {moved}" if moved else "; not moved aside"
    print(f"  state       {state}")
    print(f"  error       {error}")


def cmd_logout(args: argparse.Namespace) -> int:
    """Revoke, then forget, every chain of the server and account (RFC 7009; ``--local-only``:
    forget without telling the server). A revocation that fails keeps that chain and exits 1."""
    store = _store(args)
    wanted = canonical_resource(args.url)
    account = args.account or DEFAULT_ACCOUNT
    client_id = getattr(args, "client_id", None)
    chains = [
        r
        for r in store.records()
        if r.key.resource == wanted and r.key.account == account and client_id in (None, r.key.client_id)
    ]
    if not chains:
        print(f"no tokens were stored for {wanted}" + (f" (account {account})" if account != DEFAULT_ACCOUNT else ""))
        return EXIT_OK
    for _ in chains:  # each logout finds the newest chain left (a fresh auth: nothing cached)
        result = _auth_from(args, interactive=False).logout(local_only=args.local_only)
        if not result.removed:
            break
        print(result.describe())
    return EXIT_OK


def _load_handler(spec: Optional[str]) -> Optional[AuthorizationHandler]:
    """``module:function`` -> the function: a programmatic login (tests, custom front ends)."""
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--authorization-handler takes MODULE:FUNCTION, not {spec!r}")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"--authorization-handler {spec}: {exc}") from None
    if not callable(handler):
        raise ConfigurationError(f"{spec} is not callable")
    return cast(AuthorizationHandler, handler)


def _machine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The client options of a machine identity, only those given (each has its own checks)."""
    given = {
        "grant_type": getattr(args, "grant_type", None),
        "private_key_file": getattr(args, "private_key", None),
        "signing_algorithm": getattr(args, "signing_algorithm", None),
        "workload_token_file": getattr(args, "workload_token_file", None),
        "workload_token_env": getattr(args, "workload_token_env", None),
    }
    return {name: value for name, value in given.items() if value is not None}


def _auth_from(args: argparse.Namespace, *, interactive: bool) -> MCPAuth:
    return MCPAuth(
        args.url,
        store=_store(args),
        account=getattr(args, "account", None) or DEFAULT_ACCOUNT,
        client_id=getattr(args, "client_id", None),
        client_secret=getattr(args, "client_secret", None) or os.environ.get("MCP_SYNC_AUTH_CLIENT_SECRET"),
        scopes=getattr(args, "scope", None),
        redirect_uri=redirect_uri_from(args),
        **_machine_options(args),
        interactive=interactive,
        headless=getattr(args, "headless", False),
        login="device" if getattr(args, "device", False) else None,
        authorization_handler=_load_handler(getattr(args, "authorization_handler", None)),
        lock_timeout=args.lock_timeout,
    )


def cmd_login(args: argparse.Namespace) -> int:
    auth = _auth_from(args, interactive=True)
    tokens = auth.login()
    key = auth.key
    as_account = f", account {key.account}" if key.account != DEFAULT_ACCOUNT else ""
    print(f"logged in to {key.resource} (issuer {key.issuer}, client {key.client_id}{as_account})")
    if tokens.scope:
        print(f"scope: {tokens.scope}")
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    # Coalesced like every other caller: eight shells asking at once after an expiry make one refresh.
    print(_auth_from(args, interactive=args.login).access_token())
    return EXIT_OK


def cmd_tools(args: argparse.Namespace) -> int:
    return cli_tools.list_tools(args.url, _auth_from(args, interactive=args.login))


def cmd_call(args: argparse.Namespace) -> int:
    arguments = args.json if args.json is not None else (args.arg or {})
    return cli_tools.call_tool(args.url, _auth_from(args, interactive=args.login), args.tool, arguments)


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here: the demo brings the test server along, which `token` in a shell loop must not pay for.
    from ..demo.main import DemoError, run_demo  # noqa: PLC0415

    try:
        fleet = demo.fleet_from_arguments(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if fleet is None:
        try:
            return run_demo(demo.from_arguments(args))
        except DemoError as exc:
            return cli_errors.report(cli_errors.Failure(f"demo: {exc}"))
    from ..demo.fleet import DemoUnavailable, run_fleet_demo  # noqa: PLC0415

    try:
        return run_fleet_demo(fleet)
    except DemoError as exc:
        return cli_errors.report(cli_errors.Failure(f"demo: {exc}"))
    except (DemoUnavailable, MissingExtra) as exc:  # no Redis to run against, or no redis-py
        return cli_errors.report(cli_errors.Failure(str(exc), EXIT_USAGE))


def _add_login_option(parser: argparse.ArgumentParser, *, login_flag: bool = True) -> None:
    """The login options every command that may log in shares (``login`` always does: no flag)."""
    if login_flag:
        parser.add_argument("--login", action="store_true", help="log in if there is no usable chain")
    parser.add_argument("--authorization-handler", metavar="MODULE:FUNCTION", help=argparse.SUPPRESS)
    add_callback_options(parser)
    add_lock_timeout(parser)


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    """Who the client is: discovery decides unless these say (a client registered by hand, a
    machine identity with a key or a workload token)."""
    group = parser.add_argument_group("client")
    group.add_argument("--client-id", help="a client registered by hand (else discovery decides)")
    group.add_argument("--client-secret", help="its secret (or $MCP_SYNC_AUTH_CLIENT_SECRET)")
    group.add_argument("--scope", help="scopes to ask for, space-separated")
    group.add_argument(
        "--grant-type",
        choices=GRANT_TYPES,
        help="authorization_code (a person logs in; the default), client_credentials or jwt_bearer (no person)",
    )
    group.add_argument(
        "--private-key", metavar="PEM_FILE", help="authenticate with private_key_jwt, signed by this key"
    )
    group.add_argument("--signing-algorithm", choices=ALGORITHMS, help="for --private-key (default: the key type's)")
    group.add_argument(
        "--workload-token-file", metavar="PATH", help="jwt_bearer: the workload's token, read again for each grant"
    )
    group.add_argument(
        "--workload-token-env", metavar="VARIABLE", help="jwt_bearer: the workload's token in a variable"
    )


def _add_store_option(parser: argparse.ArgumentParser, *, command: bool = True) -> None:
    """``--store STORE``, before the command or after it (``status --store memory:``); given after,
    it wins. After the command its default is no value at all, so it never hides the one before."""
    default = argparse.SUPPRESS if command else None
    parser.add_argument("--store", default=default, metavar="STORE", help=STORE_HELP)


def _add_status_command(commands: Any) -> None:
    status = commands.add_parser("status", help="list stored chains (no secrets)")
    status.add_argument("url", nargs="?", type=server_url, help="only chains for this MCP server")
    status.add_argument("--json", action="store_true", help="the chains as a JSON list, for scripts")
    add_account(status, "only the chains of this account (default: every account)")
    add_lock_timeout(status, shown=f"{STATUS_LOCK_TIMEOUT:g} s; only a corrupt file is locked, to move it aside")
    _add_store_option(status)
    status.set_defaults(run=cmd_status)


def _add_logout_command(commands: Any) -> None:
    logout = commands.add_parser(
        "logout", help="revoke the tokens of an MCP server at its authorization server, then forget them"
    )
    logout.add_argument("url", type=server_url)
    logout.add_argument(
        "--local-only", action="store_true", help="forget the tokens without telling the server (nothing is revoked)"
    )
    _add_client_options(logout)
    add_account(logout)
    add_lock_timeout(logout, 30.0, "30 s")
    _add_store_option(logout)
    logout.set_defaults(run=cmd_logout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-sync-auth",
        description="OAuth for MCP servers from a shell: log in, print tokens, list and call tools.",
        epilog=cli_errors.exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity(parser)
    _add_store_option(parser, command=False)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_status_command(commands)
    login = commands.add_parser("login", help="log in to an MCP server (browser, --headless or --device)")
    login.add_argument("url", type=server_url)
    how = login.add_mutually_exclusive_group()
    how.add_argument(
        "--headless",
        action="store_true",
        help="print the URL to open in any browser, then read back the address it lands on "
        "(the whole URL, without http://, or just its code=...&state=... part)",
    )
    how.add_argument(
        "--device", action="store_true", help="no browser here: show a code to enter on another device (RFC 8628)"
    )
    _add_client_options(login)
    add_account(login)
    _add_login_option(login, login_flag=False)
    _add_store_option(login)
    login.set_defaults(run=cmd_login)
    token = commands.add_parser("token", help="print a valid access token (refreshed if needed)")
    token.add_argument("url", type=server_url)
    _add_client_options(token)
    add_account(token)
    _add_login_option(token)
    _add_store_option(token)
    token.set_defaults(run=cmd_token)
    _add_logout_command(commands)
    tools = commands.add_parser("tools", help="list the MCP server's tools as JSON")
    tools.add_argument("url", type=server_url)
    _add_client_options(tools)
    add_account(tools)
    _add_login_option(tools)
    _add_store_option(tools)
    tools.set_defaults(run=cmd_tools)
    call = commands.add_parser("call", help="call an MCP tool, print its result as JSON (exit 4 if it failed)")
    call.add_argument("url", type=server_url)
    call.add_argument("tool")
    given = call.add_mutually_exclusive_group()
    given.add_argument(
        "--arg", action=cli_tools.ToolArgument, metavar="KEY=VALUE", help="an argument (JSON if it parses, else text)"
    )
    given.add_argument("--json", type=cli_tools.json_object, metavar="OBJECT", help="all arguments as a JSON object")
    _add_client_options(call)
    add_account(call)
    _add_login_option(call)
    _add_store_option(call)
    call.set_defaults(run=cmd_call)
    demo_parser = commands.add_parser(
        "demo",
        help="show concurrent refresh against a strict server: naive clients vs mcp_sync_auth "
        "(--hosts N: across hosts, through Redis)",
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(run=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here, as argparse does
    try:
        with cli_logs.to_stderr(cli_logs.level_for(args.verbose, args.quiet)) as log_lines:
            return _run(args, log_lines.said)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one was being reported
        return cli_errors.report(cli_errors.INTERRUPTED)


def _run(args: argparse.Namespace, said: Collection[str]) -> int:
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, where we can stay quiet about it
    except BrokenPipeError:
        return cli_errors.stdout_closed()
    except KeyboardInterrupt:
        # Nothing is lost: a refresh grant in flight finished and was stored before this was raised,
        # and every file is written whole or not at all (temp file, then rename).
        return cli_errors.report(cli_errors.INTERRUPTED, said)
    except Exception as exc:
        failure = cli_errors.failure_of(exc, args)
        if failure is None:
            raise  # a bug: its traceback is what a report needs
        return cli_errors.report(failure, said)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
