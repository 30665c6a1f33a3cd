"""Which token store to use, from one string: a ``--store`` option or ``$MCP_SYNC_AUTH_STORE``.

Accepted forms (what :data:`FORMS` lists in messages):

- a folder: ``/abs/path``, ``relative/path``, ``~/path`` (and a Windows path such as ``C:\\x``): a
  :class:`~.file.FileTokenStore` there;
- ``file:///abs/path`` (percent-encoded as a URL is; ``file://localhost/abs/path`` too): the same;
- ``memory:``: a :class:`~.memory.MemoryTokenStore`, for this process only;
- ``redis://``, ``rediss://`` and ``unix://`` URLs: the Redis store, for many hosts;
- ``keyring`` (or ``keyring:``): a :class:`~.keyring.KeyringTokenStore`, secrets in the system
  keychain; an error when no keychain is usable here;
- ``auto``: the keychain store when a keychain is usable, else the default file store; one log line
  (``mcp_sync_auth`` logger, INFO when the keychain is chosen, WARNING when it falls back) says which
  was chosen and why (each keychain call, the probe included, may take
  ``$MCP_SYNC_AUTH_KEYRING_TIMEOUT`` seconds, 5 by default);
- ``file`` (or ``file:``): the default file store (a folder of that name: ``./file``).

Nothing here ever quotes a password: a refused value is only shown through
:func:`~mcp_sync_auth._util.urls.shown_url`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import unquote, urlsplit

from .._util.urls import shown_url
from ..errors import ConfigurationError
from .file import FileTokenStore
from .keychain import unusable_reason
from .keyring import KeyringTokenStore
from .memory import MemoryTokenStore
from .protocol import TokenStore
from .redis import RedisTokenStore

__all__ = ["FORMS", "REDIS_SCHEMES", "STORE_ENVIRONMENT_VARIABLE", "describe_store", "store_from_spec"]

STORE_ENVIRONMENT_VARIABLE = "MCP_SYNC_AUTH_STORE"
REDIS_SCHEMES = ("redis", "rediss", "unix")
FORMS = "a folder path, file:///absolute/path, file, keyring, auto, memory:, or a redis://, rediss:// or unix:// URL"
KEYRING_FORMS = ("keyring", "keyring:")
AUTO_FORMS = ("auto", "auto:")
DEFAULT_FILE_FORMS = ("file", "file:")

log = logging.getLogger("mcp_sync_auth")

# What looks like a URL scheme. One letter is a Windows drive (C:\x, C:/x), not a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LOCAL_HOSTS = ("", "localhost")
# A URL's user information, in text that is not ours to trust (a store's repr or location).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"<>]*@")


def store_from_spec(
    spec: Optional[str], *, what: Optional[str] = None, report: Optional[Callable[[str], None]] = None
) -> TokenStore:
    """The store ``spec`` names (see the module's docstring for the forms).

    None or an empty string means ``$MCP_SYNC_AUTH_STORE`` when it is set (and not empty), else the
    default :class:`FileTokenStore` (``$MCP_SYNC_AUTH_HOME``, else the user's cache folder). A value
    that names no store raises ConfigurationError; ``what`` names where it came from in the message
    (``--store``, say). The message never contains a password. ``report`` receives the line saying
    what ``auto`` chose."""
    text = (spec or "").strip()
    if not text:
        text = os.environ.get(STORE_ENVIRONMENT_VARIABLE, "").strip()
        if not text:
            return FileTokenStore()
        what = STORE_ENVIRONMENT_VARIABLE
    return _parse(text, what or "the token store", report)


def _parse(text: str, what: str, report: Optional[Callable[[str], None]] = None) -> TokenStore:
    word = text.lower()
    if word in DEFAULT_FILE_FORMS:
        return FileTokenStore()
    if word in KEYRING_FORMS:
        return keyring_store(what)
    if word in AUTO_FORMS:
        return auto_store(what, report)
    scheme_match = _SCHEME.match(text)
    if scheme_match is None or len(scheme_match.group(1)) == 1:
        return FileTokenStore(_expanded(text, what))
    scheme = scheme_match.group(1).lower()
    if scheme == "file":
        return FileTokenStore(_file_url_path(text, what))
    if scheme == "memory":
        if text[len("memory:") :]:
            raise ConfigurationError(f"{what}: a memory store is named memory: alone, not {shown_url(text)}")
        return MemoryTokenStore()
    if scheme in REDIS_SCHEMES:
        return _redis_store(text, what)
    raise ConfigurationError(
        f"{what}: {shown_url(text)} names no token store; give {FORMS} (a folder whose name has a colon: ./name)"
    )


def keyring_store(what: str = "the token store") -> KeyringTokenStore:
    """The keychain store, after checking that its keychain answers; ConfigurationError naming the
    reason (and the way out) when it does not."""
    store = KeyringTokenStore()
    why = unusable_reason(store.keychain)
    if why is not None:
        raise ConfigurationError(
            f"{what}: keyring was asked for, but no keychain is usable here: {why}. "
            "Fix the keychain, or use the file store (MCP_SYNC_AUTH_STORE=file or auto)"
        )
    return store


def auto_store(what: str = "the token store", report: Optional[Callable[[str], None]] = None) -> TokenStore:
    """The keychain store when a keychain is usable, else the default file store. Says which in one
    log line, and to ``report`` too when given (the CLI prints it on stderr)."""
    store = KeyringTokenStore()
    why = unusable_reason(store.keychain)
    chosen: TokenStore
    if why is None:
        chosen, line = store, f"mcp-sync-auth: {what}=auto chose the system keychain: {describe_store(store)}"
    else:
        chosen = FileTokenStore()
        line = (
            f"mcp-sync-auth: {what}=auto chose the file store (folder {chosen.directory}): "
            f"no keychain is usable ({why})"
        )
    log.log(logging.INFO if why is None else logging.WARNING, "%s", line)
    if report is not None:
        report(line)
    return chosen


def _expanded(text: str, what: str) -> Path:
    if "\x00" in text:
        raise ConfigurationError(f"{what}: a folder path cannot contain a NUL character")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of no such user, or no home folder to expand ~ to
        raise ConfigurationError(f"{what}: cannot expand ~ in {text!r}: no such home folder") from None


def _file_url_path(text: str, what: str) -> str:
    """The folder of a ``file:`` URL: an absolute path on this host, percent-decoded."""
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        has_userinfo = "@" in parts.netloc
    except ValueError:
        raise ConfigurationError(f"{what}: not a valid file: URL: {shown_url(text)}") from None
    if has_userinfo or host not in _LOCAL_HOSTS or parts.port is not None:
        raise ConfigurationError(
            f"{what}: a file: URL must name a folder on this host (file:///path or file://localhost/path), "
            f"not {shown_url(text)}"
        )
    if parts.query or parts.fragment or "#" in text or "?" in text:
        raise ConfigurationError(
            f"{what}: a file: URL takes no query or fragment (percent-encode ? as %3F and # as %23): {shown_url(text)}"
        )
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what}: a file: URL must percent-encode UTF-8: {shown_url(text)}") from None
    if os.name == "nt" and re.match(r"^/[A-Za-z]:[/\\]", path):  # file:///C:/x
        path = path[1:]
    if "\x00" in path:
        raise ConfigurationError(f"{what}: a folder path cannot contain a NUL character")
    if not os.path.isabs(path):
        raise ConfigurationError(
            f"{what}: a file: URL must hold an absolute path (file:///path), not {shown_url(text)}"
        )
    return path


def _redis_store(text: str, what: str) -> TokenStore:
    """``RedisTokenStore.from_url`` (redis-py is imported only now: a folder store never loads it)."""
    try:
        return RedisTokenStore.from_url(text)
    except ConfigurationError:
        raise
    except (ValueError, TypeError):  # redis-py's own parsing; its text may quote the URL whole
        raise ConfigurationError(f"{what}: not a valid Redis URL: {shown_url(text)}") from None


def describe_store(store: object) -> str:
    """One line for people saying where ``store`` keeps its tokens; never a password."""
    if isinstance(store, KeyringTokenStore):
        return store.location
    if isinstance(store, FileTokenStore):
        return f"folder {store.directory}"
    if isinstance(store, MemoryTokenStore):
        return "memory (this process only)"
    location = getattr(store, "location", None)
    text = location if isinstance(location, str) and location else repr(store)
    # A store of someone else's may name its server with the password in it: hide what a URL's
    # user information holds (its ``location`` is meant to have done so already).
    return " ".join(_USERINFO.sub(r"\1***@", text).split())
