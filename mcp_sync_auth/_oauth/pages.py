"""The pages the loopback receiver shows in the browser: plain words on what happened and what to do.

Every piece of text is HTML-escaped, and server-supplied text is cleaned first. No page ever shows a
code, a token or a state.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Optional

from .._util.redact import clean_server_text

_STYLE = (
    "body{font-family:sans-serif;margin:3em auto;max-width:38em;line-height:1.5;padding:0 1em}"
    "h1{font-size:1.6em}.ok{color:#17663a}.bad{color:#a1221b}.note{color:#555}"
    "code{background:#f1f1f1;padding:0 .25em}pre code{display:block;padding:.6em 1em}"
)


@dataclasses.dataclass(frozen=True)
class Page:
    """A title and paragraphs of plain text (``tone``: ok, bad or note), and a command to run."""

    title: str
    paragraphs: tuple[str, ...]
    tone: str = "note"
    command: Optional[str] = None

    def html(self) -> str:
        text = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in self.paragraphs)
        if self.command:
            text += f"<pre><code>{html.escape(self.command)}</code></pre>"
        title = html.escape(self.title)
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title} - mcp-sync-auth</title><style>{_STYLE}</style></head>"
            f"<body><h1 class='{self.tone}'>{title}</h1>{text}</body></html>"
        )

    @property
    def text(self) -> str:
        """What the page says, as plain text (tests, logs)."""
        return "\n".join((self.title, *self.paragraphs, *((self.command,) if self.command else ())))


AGAIN = "To try again, run this in the terminal (or start your program again):"


def _login_command(resource: str) -> str:
    return f"mcp-sync-auth login {resource}" if resource else "mcp-sync-auth login URL"


def success_page(resource: str) -> Page:
    where = f" to {resource}" if resource else ""
    return Page(
        "You are logged in",
        (f"You are logged in{where}.", "You can close this tab and go back to the terminal."),
        "ok",
    )


def failure_page(resource: str, message: str, error_code: Optional[str], description: Optional[str]) -> Page:
    """The login failed: refused by the server (``error_code``), or refused by this program."""
    if error_code:
        reason = clean_server_text(description) if description else "no reason given"
        first = f"The login was refused ({clean_server_text(error_code)}): {reason}."
        return Page("The login was refused", (first, "Nothing was stored.", AGAIN), "bad", _login_command(resource))
    said = message.rstrip(". ")
    return Page(
        "The login did not work",
        (f"{said[:1].upper()}{said[1:]}.", "Nothing was stored.", AGAIN),
        "bad",
        _login_command(resource),
    )


def ignored_page(resource: str) -> Page:
    """A request with another login's state: a stray tab, an old bookmark, or a forged link."""
    where = f" to {resource}" if resource else ""
    return Page(
        "This is not the login being waited for",
        (
            "This address takes only the answer to the login that mcp-sync-auth started, and this request "
            "does not belong to it (its state does not match), so it was ignored.",
            f"If you are logging in{where}, finish in the tab that opened for it. If that tab is gone, "
            "run this in the terminal to start again (or start your program again):",
        ),
        "bad",
        _login_command(resource),
    )


def waiting_page(resource: str) -> Page:
    return Page(
        "Login received",
        (
            "mcp-sync-auth has the answer from the authorization server and is finishing the login.",
            "Go back to the terminal to see how it ended.",
        ),
    )


def not_found_page() -> Page:
    return Page("Not found", ("This address only receives the login redirect of mcp-sync-auth.",))


__all__ = ["AGAIN", "Page", "failure_page", "ignored_page", "not_found_page", "success_page", "waiting_page"]
