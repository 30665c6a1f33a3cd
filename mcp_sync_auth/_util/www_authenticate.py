"""The ``WWW-Authenticate`` grammar of RFC 9110 §11.6.1, for any auth-scheme.

A header value is a comma-separated list of challenges, and each challenge's parameters are
comma-separated too, so a comma alone does not say whether a new challenge starts. We look ahead:
``name =`` after a comma continues the current challenge, anything else starts the next one.
``requests`` joins repeated header lines with ", ", which is the same list, so one parser covers both.
What a scheme's parameters mean is for its caller (``_oauth.challenge`` reads Bearer's).
"""

from __future__ import annotations

import string
import types
from dataclasses import dataclass, field
from typing import Any, Mapping, NoReturn, Optional, Sequence, Union

import requests

from ..errors import ChallengeError
from .redact import clean_server_text

__all__ = [
    "MAX_HEADER_LENGTH",
    "Challenge",
    "HeaderSource",
    "parse_www_authenticate",
    "www_authenticate_value",
]

# No real server sends kilobytes of challenges; a cap keeps the work bounded on hostile input.
MAX_HEADER_LENGTH = 16 * 1024

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
_TOKEN68_CHAR = frozenset(string.ascii_letters + string.digits + "-._~+/")
_WHITESPACE = " \t"


def _empty_params() -> Mapping[str, str]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class Challenge:
    """One challenge: the scheme (lower-cased), its parameters (names lower-cased) or its token68."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=_empty_params, hash=False)
    token68: Optional[str] = None


def _is_qdtext(ch: str) -> bool:
    code = ord(ch)
    return ch in _WHITESPACE or code == 0x21 or 0x23 <= code <= 0x5B or 0x5D <= code <= 0x7E or 0x80 <= code <= 0xFF


def _is_quoted_pair_char(ch: str) -> bool:
    code = ord(ch)
    return ch in _WHITESPACE or 0x21 <= code <= 0x7E or 0x80 <= code <= 0xFF


class _Parser:
    """A cursor over one header value. Every failure goes through ``fail``, so only ChallengeError escapes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> NoReturn:
        near = clean_server_text(self.text[max(0, self.pos - 16) : self.pos + 16])
        raise ChallengeError(f"malformed WWW-Authenticate header: {what} at position {self.pos} (near {near!r})")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.pos - start

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while True:
            # Empty list elements (",,") are allowed by RFC 9110 §5.6.1.
            self.skip(_WHITESPACE + ",")
            if self.at_end():
                return found
            found.append(self.challenge())

    def challenge(self) -> Challenge:
        scheme = self.token()
        if not scheme:
            self.fail("expected an auth-scheme")
        spaces = self.skip(_WHITESPACE)
        if self.at_end() or self.peek() == ",":
            return Challenge(scheme.lower())
        if not spaces:
            self.fail("expected a space after the auth-scheme")
        token68 = self.token68()
        if token68 is not None:
            if self.param_follows():
                self.fail("a token68 cannot be followed by auth-params")
            return Challenge(scheme.lower(), _empty_params(), token68)
        return Challenge(scheme.lower(), types.MappingProxyType(self.params()))

    def token68(self) -> Optional[str]:
        """token68 is only taken when nothing but OWS separates it from a comma or the end."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN68_CHAR:
            self.pos += 1
        if self.pos == start:
            return None
        self.skip("=")
        end = self.pos
        self.skip(_WHITESPACE)
        if self.at_end() or self.peek() == ",":
            return self.text[start:end]
        self.pos = start
        return None

    def param_follows(self) -> bool:
        """After a comma: does an ``name =`` (a parameter of the same challenge) come next?"""
        saved = self.pos
        self.skip(_WHITESPACE + ",")
        found = bool(self.token())
        if found:
            self.skip(_WHITESPACE)
            found = self.peek() == "="
        self.pos = saved
        return found

    def params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        while True:
            name = self.token()
            if not name:
                self.fail("expected an auth-param name")
            self.skip(_WHITESPACE)
            if self.peek() != "=":
                self.fail("expected '=' after an auth-param name")
            self.pos += 1
            self.skip(_WHITESPACE)
            if self.peek() == '"':
                value = self.quoted_string()
            else:
                value = self.token()
                if not value:
                    self.fail("expected a token or a quoted-string as the auth-param value")
            key = name.lower()
            if key in params:
                # RFC 9110 §11.2: each parameter name occurs once; two values leave no safe choice.
                self.fail(f"the auth-param {key!r} occurs twice")
            params[key] = value
            self.skip(_WHITESPACE)
            if self.at_end():
                return params
            if self.peek() != ",":
                self.fail("expected ',' between auth-params")
            if not self.param_follows():
                return params
            self.skip(_WHITESPACE + ",")

    def quoted_string(self) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while True:
            if self.at_end():
                self.fail("unterminated quoted-string")
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.pos += 1
                if self.at_end() or not _is_quoted_pair_char(self.text[self.pos]):
                    self.fail("invalid backslash escape in a quoted-string")
                out.append(self.text[self.pos])
            elif _is_qdtext(ch):
                out.append(ch)
            else:
                self.fail("invalid character in a quoted-string")
            self.pos += 1


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value, in order. Malformed input raises ChallengeError."""
    if not isinstance(value, str):
        raise ChallengeError(f"a WWW-Authenticate value must be a str, not {type(value).__name__}")
    if len(value) > MAX_HEADER_LENGTH:
        raise ChallengeError(
            f"WWW-Authenticate header is too long ({len(value)} characters; at most {MAX_HEADER_LENGTH})"
        )
    return _Parser(value).challenges()


HeaderSource = Union[str, bytes, requests.Response, Mapping[str, Any], Sequence[str]]


def www_authenticate_value(source: HeaderSource) -> Optional[str]:
    """The WWW-Authenticate value of a response, header mapping, list of header lines or plain str."""
    if isinstance(source, str):
        return source
    if isinstance(source, bytes):
        return source.decode("latin-1")  # how http.client decodes header bytes
    if isinstance(source, requests.Response):
        source = source.headers
    lines: list[str] = []
    if isinstance(source, Mapping):
        # Plain dicts are case-sensitive; several spellings of the name are several header lines.
        for name, item in source.items():
            if isinstance(name, str) and name.lower() == "www-authenticate" and item is not None:
                lines.extend(_as_lines(item))
    elif isinstance(source, (list, tuple)):
        for item in source:
            lines.extend(_as_lines(item))
    else:
        raise TypeError(f"cannot read a WWW-Authenticate header from {type(source).__name__}")
    return ", ".join(lines) if lines else None


def _as_lines(item: object) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, bytes):
        return [item.decode("latin-1")]
    if isinstance(item, (list, tuple)):
        return [line for part in item for line in _as_lines(part)]
    raise TypeError(f"a WWW-Authenticate header line must be a str, not {type(item).__name__}")
