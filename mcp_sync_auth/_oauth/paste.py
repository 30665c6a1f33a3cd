"""The headless login's paste-back: the address the browser landed on, however it was pasted.

People paste the whole URL, the URL without ``http://`` (some address bars hide it), or only the
query (``code=...&state=...``, with or without ``?``), often with blanks or quotes around it. All of
those carry ``state`` (and ``iss``), which :func:`~mcp_sync_auth._oauth.pkce.code_from_redirect`
checks as for any redirect. A bare code carries neither and cannot be checked, so it is refused with
what to paste instead.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, TextIO
from urllib.parse import parse_qsl, urlsplit

from ..errors import AuthorizationFailed

# Quotes and brackets a terminal, a chat window or a mail client may put around a URL.
_WRAPPERS = "\"'`<>()[] \t\r\n"
WHAT_TO_PASTE = (
    "paste the whole address from the browser's address bar after the login (it starts with "
    "http://127.0.0.1 and contains code= and state=)"
)
ATTEMPTS = 3


class UnusablePaste(AuthorizationFailed):
    """What was pasted is not a redirect this login can check; the message says what to paste."""


def redirect_query(pasted: str) -> str:
    """The query string of a pasted redirect, in any of the forms people paste; UnusablePaste else."""
    text = pasted.strip(_WRAPPERS).replace("&amp;", "&")  # &amp;: copied from an HTML view
    if not text:
        raise UnusablePaste(f"nothing was pasted: {WHAT_TO_PASTE}")
    text = text.split("#", 1)[0]
    if "://" in text:
        query = urlsplit(text).query
    elif "?" in text:
        # "127.0.0.1:PORT/callback?code=..", or "?code=..": what follows the first '?'.
        query = text.split("?", 1)[1]
    elif "=" in text:
        query = text  # the bare query
    else:
        raise UnusablePaste(
            "that looks like a bare authorization code: without its state it cannot be checked "
            f"against this login, so it is not used; {WHAT_TO_PASTE}"
        )
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    if "code_challenge" in names or "response_type" in names:
        raise UnusablePaste(f"that is the address to open, not the one the browser lands on; {WHAT_TO_PASTE}")
    if "state" not in names:
        if "code" in names or "error" in names:
            raise UnusablePaste(
                "what was pasted has no state, so it cannot be checked against this login and is not "
                f"used; {WHAT_TO_PASTE}"
            )
        raise UnusablePaste(f"what was pasted is not the address of the login's answer; {WHAT_TO_PASTE}")
    return query


def _redirect_uri_of(authorization_url: str) -> str:
    for name, value in parse_qsl(urlsplit(authorization_url).query):
        if name == "redirect_uri":
            return value
    return ""


def read_pasted_redirect(
    authorization_url: str,
    *,
    read_line: Optional[Callable[[], str]] = None,
    out: Optional[TextIO] = None,
    attempts: int = ATTEMPTS,
) -> str:
    """Print the URL, read back the address the browser ended on, and return it as a redirect URL
    (the redirect URI plus the pasted query). What cannot be used is said and asked again, up to
    ``attempts`` times; end of input ends the login."""
    stream = out if out is not None else sys.stderr
    read = read_line if read_line is not None else sys.stdin.readline
    print(
        "Open this URL in a browser, on any machine, and log in. The browser then goes to an address "
        "starting with http://127.0.0.1 that will likely not load (that is expected): copy the whole "
        f"address from its address bar and paste it here.\n  {authorization_url}",
        file=stream,
        flush=True,
    )
    base = _redirect_uri_of(authorization_url)
    refused: Optional[UnusablePaste] = None
    for _ in range(attempts):
        line = read()
        if not line:  # end of input: the last refusal says what to paste, if there was one
            if refused is not None:
                raise refused
            raise AuthorizationFailed("no redirect URL was pasted (end of input); nothing was stored")
        try:
            return f"{base}?{redirect_query(line)}"
        except UnusablePaste as exc:
            refused = exc
            print(f"Cannot use that: {exc}. Paste it again:", file=stream, flush=True)
    assert refused is not None
    raise refused


__all__ = ["WHAT_TO_PASTE", "UnusablePaste", "read_pasted_redirect", "redirect_query"]
