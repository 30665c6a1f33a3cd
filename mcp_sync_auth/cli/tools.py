"""``mcp-sync-auth tools`` and ``mcp-sync-auth call``: MCP tools from a shell, results as JSON.

Scripts read stdout (JSON only) and the exit code; messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, Sequence, Union

from .._mcp.client import MCPClient
from ..auth import MCPAuth
from ..errors import ToolError
from .errors import EXIT_TOOL_ERROR

__all__ = ["EXIT_TOOL_ERROR", "ToolArgument", "call_tool", "json_object", "list_tools"]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def list_tools(url: str, auth: MCPAuth) -> int:
    with MCPClient(url, auth=auth) as client:
        _print_json(client.list_tools())
    return 0


def call_tool(url: str, auth: MCPAuth, name: str, arguments: Dict[str, Any]) -> int:
    with MCPClient(url, auth=auth) as client:
        try:
            result = client.call_tool(name, arguments)
        except ToolError as exc:
            # The tool ran and said it failed: its result is still the answer a script wants to read.
            _print_json(exc.result)
            print(f"mcp-sync-auth: {exc}", file=sys.stderr)
            return EXIT_TOOL_ERROR
    _print_json(result)
    return 0


def _value(text: str) -> Any:
    """JSON if it parses (numbers, booleans, objects...), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class ToolArgument(argparse.Action):
    """``--arg key=value``, repeatable, collected into one dict; a key given twice is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Union[str, Sequence[Any], None],
        option_string: Optional[str] = None,
    ) -> None:
        key, sep, text = str(values).partition("=")
        if not sep or not key:
            parser.error(f"{option_string} takes KEY=VALUE, not {values!r}")
        collected: Dict[str, Any] = dict(getattr(namespace, self.dest, None) or {})
        if key in collected:
            parser.error(f"{option_string} {key}=... is given twice")
        collected[key] = _value(text)
        setattr(namespace, self.dest, collected)


def json_object(text: str) -> Dict[str, Any]:
    """``--json '{...}'``: the tool's arguments as one JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the arguments must be a JSON object")
    return value
