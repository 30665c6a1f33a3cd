"""Spawned workers of the fleet fault tests (importable, so spawn can start them)."""

import requests

from mcp_sync_auth import MCPAuth, MCPAuthError

from ..workers import echo_call, make_auth


def call_once(config, clock, results):
    """One call through a fresh MCPAuth (its store from the host's $MCP_SYNC_AUTH_STORE)."""
    auth = make_auth(config, clock)
    try:
        with requests.Session() as session:
            results.put(echo_call(session, config["mcp_url"], auth))
    except MCPAuthError as exc:
        results.put(type(exc).__name__)


def serve_calls(config, clock, commands, results):
    """One MCPAuth, one call per "call" on ``commands``, until "stop"."""
    auth = make_auth(config, clock)
    with requests.Session() as session:
        for command in iter(commands.get, "stop"):
            assert command == "call"
            try:
                results.put(echo_call(session, config["mcp_url"], auth))
            except MCPAuthError as exc:
                results.put(type(exc).__name__)


def log_in_and_call(mcp_url, barrier, results):
    """First use on a host with no tokens: log in (consent given headlessly) and call, all at once."""
    from ..login_helpers import browser  # noqa: PLC0415 (spawned: imported where it runs)

    auth = MCPAuth(mcp_url, authorization_handler=browser, lock_timeout=120.0)
    barrier.wait(timeout=120)
    try:
        with requests.Session() as session:
            results.put(echo_call(session, mcp_url, auth))
    except MCPAuthError as exc:
        results.put(type(exc).__name__)
