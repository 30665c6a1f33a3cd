"""The MCP conformance suite's client: ``client.py SERVER_URL``.

It runs the MCP flow (connect, ``tools/list``, ``tools/call``) through ``MCPAuth`` and
``mcp_sync_auth.client.MCPClient``, configured from ``MCP_CONFORMANCE_CONTEXT`` where the scenario
gives one, with an empty token store per run and no browser: the injected authorization handler
reads the authorization endpoint's 302 as a browser would follow it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from typing import Any, Optional

import requests

from mcp_sync_auth import FileTokenStore, IdentityProviderSettings, MCPAuth
from mcp_sync_auth._mcp.client import MCPClient

# The client ID metadata document the suite expects a CIMD client to use.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
REDIRECT_URI = "http://localhost:3000/callback"
log = logging.getLogger("conformance-client")


def follow_authorization_redirect(url: str) -> str:
    """A browser with automatic consent: GET the authorization URL and hand back where it redirects."""
    answer = requests.get(url, allow_redirects=False, timeout=30)
    location = answer.headers.get("Location")
    if answer.status_code not in (301, 302, 303, 307, 308) or not location:
        raise RuntimeError(f"the authorization endpoint answered HTTP {answer.status_code} without a redirect")
    return location


def context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    if not raw:
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def arguments_for(tool: dict[str, Any]) -> dict[str, Any]:
    """Plausible arguments from the tool's input schema (numbers for numbers, text for strings)."""
    schema = tool.get("inputSchema") or {}
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind in ("number", "integer"):
            arguments[name] = 1
        elif kind == "boolean":
            arguments[name] = True
        else:
            arguments[name] = "test"
    return arguments


def client_options(scenario: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Who the client is in this scenario, from the context the suite gives."""
    options: dict[str, Any] = {"client_id": settings.get("client_id")}
    if scenario == "auth/wif-jwt-bearer":
        token = settings["valid_jwt"]  # a workload token minted for the run's authorization server
        return {**options, "grant_type": "jwt_bearer", "workload_token_provider": lambda audience: token}
    if scenario == "auth/enterprise-managed-authorization":
        id_token = settings["idp_id_token"]  # the person's sign-in at the enterprise IdP
        identity_provider = IdentityProviderSettings(
            token_endpoint=settings["idp_token_endpoint"],
            client_id=settings["idp_client_id"],
            id_token_provider=lambda: id_token,
        )
        options.update(grant_type="id_jag", identity_provider=identity_provider)
    if scenario.startswith("auth/dpop"):
        options["dpop"] = True
    if scenario.startswith("auth/client-credentials"):
        options["grant_type"] = "client_credentials"
    if settings.get("private_key_pem"):
        options["private_key"] = settings["private_key_pem"]
        options["signing_algorithm"] = settings.get("signing_algorithm")
    else:
        options["client_secret"] = settings.get("client_secret")
    return options


def run(server_url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    version: Optional[str] = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION") or None
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as folder:
        auth = MCPAuth(
            server_url,
            store=FileTokenStore(os.path.join(folder, "tokens")),
            **client_options(scenario, context()),
            client_metadata_url=CLIENT_METADATA_URL,
            redirect_uri=REDIRECT_URI,
            authorization_handler=follow_authorization_redirect,
            client_name="mcp-sync-auth conformance client",
        )
        with MCPClient(server_url, auth=auth, protocol_version=version) as client:
            tools = client.list_tools()
            log.info("tools: %s", [tool.get("name") for tool in tools])
            if tools:
                tool = tools[0]
                if scenario == "tools_call":
                    tool = next((t for t in tools if t.get("name") == "add_numbers"), tool)
                result = client.call_tool(tool["name"], arguments_for(tool))
                log.info("tools/call result: %s", json.dumps(result)[:200])
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    if len(sys.argv) < 2:
        print("usage: client.py SERVER_URL", file=sys.stderr)
        return 2
    try:
        return run(sys.argv[-1])
    except Exception as exc:  # the harness reads the exit code; the message helps whoever reads stderr
        print(f"conformance client failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
