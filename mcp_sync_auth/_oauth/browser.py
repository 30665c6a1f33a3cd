"""Where a person can be reached for a login: a browser this process can open, or a terminal.

Decided before a client is registered or a loopback receiver waits, so that a host with neither
fails at once instead of waiting minutes for a redirect that cannot come.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import webbrowser
from typing import Callable, Mapping, Optional, TextIO

DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")


def usable_browser(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether a browser can be opened for the person at this machine.

    macOS and Windows always have one. Elsewhere a graphical session is needed (``DISPLAY`` or
    ``WAYLAND_DISPLAY``), unless ``BROWSER`` names a browser explicitly. Text browsers that
    :mod:`webbrowser` would otherwise find on ``PATH`` (lynx, w3m...) do not count: taking over the
    terminal of a program in the middle of its work surprises more than it helps, and the paste
    flow works in that terminal anyway.
    """
    if platform == "darwin" or platform.startswith("win"):
        return True
    if environ.get("BROWSER", "").strip():
        return True
    return any(environ.get(name) for name in DISPLAY_VARIABLES)


def _is_terminal(stream: Optional[TextIO]) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed, or detached
        return False


def at_terminal() -> bool:
    """Whether a person can see a prompt and paste an answer: stdin and stderr are a terminal."""
    return _is_terminal(sys.stdin) and _is_terminal(sys.stderr)


def open_in_browser(url: str) -> bool:
    """Open ``url``; False when no browser could be started."""
    return webbrowser.open(url)


@dataclasses.dataclass(frozen=True)
class Browser:
    """How a login reaches a person; each part can be replaced (tests, embedding programs)."""

    available: Callable[[], bool] = usable_browser
    terminal: Callable[[], bool] = at_terminal
    open: Callable[[str], bool] = open_in_browser


__all__ = ["DISPLAY_VARIABLES", "Browser", "at_terminal", "open_in_browser", "usable_browser"]
