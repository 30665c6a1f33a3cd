"""Runs the whole demo: intro, the load, the table, the verdict and the ``RESULT`` line."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, TextIO

from .coordinator import DemoError, run_load
from .options import DemoOptions
from .protocol import NAIVE, OURS
from .report import is_clean, result_line, table, verdict

__all__ = ["DemoError", "run_demo"]


def _intro(options: DemoOptions) -> list[str]:
    per_side = options.processes * options.threads
    return [
        f"mcp-sync-auth demo: {options.cycles} token expiries, {options.processes} processes x "
        f"{options.threads} threads per side, {options.calls} echo calls per thread per expiry, "
        f"access tokens live {options.token_ttl:g} s",
        f"  {NAIVE:<13}  {per_side} requests-oauthlib OAuth2Sessions with auto-refresh, one per thread",
        f"  {OURS:<13}  one MCPAuth per process, one FileTokenStore folder shared by all {options.processes}",
        "  each side has its own strict server on 127.0.0.1: refresh tokens rotate on every use, and a",
        "  reused one revokes the whole chain. Expiry is real (each cycle waits one token lifetime; no",
        "  clock tricks) and a barrier across every process starts each cycle's calls at once.",
    ]


def run_demo(options: DemoOptions, out: Optional[TextIO] = None) -> int:
    """Run the demo, print progress, the table and a ``RESULT {json}`` line; 0 if our side is clean."""
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    started = time.perf_counter()
    for line in _intro(options):
        say(line)
    workdir = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-demo-"))
    try:
        results = run_load(options, workdir, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    say("")
    say(table(results))
    say("")
    for line in verdict(results, options):
        say(line)
    say(f"finished in {seconds:.1f} s; temporary folder removed")
    say(result_line(results, options, seconds))
    return 0 if is_clean(results[OURS], options.cycles) else 1
