"""Spawned workers of the fleet fault tests (importable, so spawn can start them)."""

import requests

from mcp_sync_auth import MCPAuthError

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
