"""The ``mcp-sync-auth`` command."""

from .main import main

__all__ = ["main"]
