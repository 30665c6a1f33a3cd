"""The one path every HTTP request of the library takes (discovery, the probe, registration, every
token grant, the identity provider's exchange, MCP calls): :meth:`SessionSource.request`.

It sends through ``Session.request``, never a bare ``Session.send``, because that is where
``requests`` merges the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``,
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) when ``trust_env`` is true. The ``verify=`` and
``proxies=`` given once (:class:`ConnectionOptions`) go with every request, as a caller's own
per-request arguments would, and a certificate or proxy failure becomes our error naming the host
and the setting to change, followed by the caller's ``hint`` (what that failure means for its step).
Sessions are safe across ``fork()``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from typing import Any, Mapping, Optional, Tuple, TypeVar, Union
from urllib.parse import urlsplit

import requests
from requests.utils import select_proxy

from ..errors import ConfigurationError, ConnectionSetupError
from . import fork
from .redact import clean_server_text

Verify = Union[bool, str]
_Setup = TypeVar("_Setup", bound=ConnectionSetupError)
_VERIFY_REASON = re.compile(r"certificate verify failed: ([^()'\"]{1,120})")


def no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A request's ``auth=`` for requests that must carry no token: it replaces a Session-level auth
    (an MCPAuth, .netrc), so discovery and probes never attach one."""
    return request


@dataclasses.dataclass(frozen=True)
class ConnectionOptions:
    """How requests reach their servers, given once for all of them.

    ``verify``: True (the default CA bundle, or ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``), False
    (no verification: for tests only), or the path of a CA bundle file or folder, which wins over the
    environment. ``proxies``: a ``requests`` proxies mapping (``{"https": "http://proxy:3128"}``);
    the environment's ``HTTPS_PROXY``/``NO_PROXY`` fill in the schemes it does not name, exactly as
    for ``requests.get(url, proxies=...)``. None leaves both to the session and the environment.
    """

    verify: Optional[Verify] = None
    proxies: Optional[Tuple[Tuple[str, str], ...]] = None

    @classmethod
    def of(cls, verify: Optional[Verify] = None, proxies: Optional[Mapping[str, str]] = None) -> ConnectionOptions:
        if verify is not None and not isinstance(verify, (bool, str)):
            raise ConfigurationError("verify must be True, False or the path of a CA bundle")
        if isinstance(verify, str) and not os.path.exists(verify):
            raise ConfigurationError(f"verify= names a CA bundle that does not exist: {verify!r}")
        frozen = None
        if proxies is not None:
            if not isinstance(proxies, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in proxies.items()
            ):
                raise ConfigurationError('proxies must map a scheme (or "scheme://host") to a proxy URL')
            frozen = tuple(sorted(proxies.items()))
        return cls(verify, frozen)

    def over(self, base: ConnectionOptions) -> ConnectionOptions:
        """These options, with ``base``'s for what these leave unset."""
        return ConnectionOptions(
            self.verify if self.verify is not None else base.verify,
            self.proxies if self.proxies is not None else base.proxies,
        )

    @property
    def proxy_map(self) -> Optional[dict[str, str]]:
        return dict(self.proxies) if self.proxies is not None else None

    def request_arguments(self) -> dict[str, Any]:
        """What goes into every ``Session.request`` call (nothing when nothing was given)."""
        arguments: dict[str, Any] = {}
        if self.verify is not None:
            arguments["verify"] = self.verify
        if self.proxies is not None:
            arguments["proxies"] = dict(self.proxies)
        return arguments

    def __repr__(self) -> str:
        # Proxy URLs may carry credentials: show the hosts only.
        proxies = None if self.proxies is None else {k: proxy_host(v) for k, v in self.proxies}
        return f"ConnectionOptions(verify={self.verify!r}, proxies={proxies!r})"


DEFAULT_OPTIONS = ConnectionOptions()


def proxy_host(proxy_url: str) -> str:
    """``host:port`` of a proxy URL, without the user and password it may carry."""
    try:
        parts = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "an unparsable proxy URL"
    return f"{host}:{port}" if port else host


class SessionSource:
    """The caller's session if it gave one; else our own, dropped in a forked child so that parent
    and child never share pooled connections (their bytes would interleave on one socket). Every
    request goes through :meth:`request`, with the :class:`ConnectionOptions` given once."""

    def __init__(
        self, session: Optional[requests.Session] = None, options: ConnectionOptions = DEFAULT_OPTIONS
    ) -> None:
        self._given = session
        self._own: Optional[requests.Session] = None
        self.options = options
        # One source serves discovery, registration and the grants of a chain from many threads:
        # they must not each make (and leak) a session of their own.
        self._guard = threading.Lock()
        fork.reset_in_child(self)

    @property
    def given(self) -> Optional[requests.Session]:
        """The caller's session, if one was given."""
        return self._given

    def get(self) -> requests.Session:
        if self._given is not None:
            return self._given
        with self._guard:
            if self._own is None:
                self._own = requests.Session()
            return self._own

    def request(
        self,
        method: str,
        url: str,
        *,
        failure: type[ConnectionSetupError],
        details: Optional[Mapping[str, Any]] = None,
        hint: str = "",
        **arguments: Any,
    ) -> requests.Response:
        """``Session.request`` with the configured ``verify``/``proxies`` (and the environment, as
        ``requests`` merges it). A certificate or proxy failure raises ``failure`` (a subclass of
        :class:`ConnectionSetupError`, built with ``details``) whose message ends with ``hint``, the
        caller's advice for its step (our own words: never a token or a secret); other errors are
        the caller's."""
        session = self.get()
        try:
            return session.request(method, url, **self.options.request_arguments(), **arguments)
        except requests.exceptions.ProxyError as exc:
            # urllib3 reports a failure to reach or tunnel through the proxy (even a TLS one with an
            # https:// proxy) as a ProxyError: the proxy setting is what to change.
            raise self._proxy_failure(session, url, exc, failure, details or {}, hint=hint) from None
        except requests.exceptions.SSLError as exc:
            raise self._certificate_failure(session, url, exc, failure, details or {}, hint=hint) from None

    def _certificate_failure(
        self,
        session: requests.Session,
        url: str,
        exc: Exception,
        failure: type[ConnectionSetupError],
        details: Mapping[str, Any],
        *,
        hint: str,
    ) -> ConnectionSetupError:
        host = _host(url)
        found = _VERIFY_REASON.search(str(exc))
        reason = clean_server_text(found.group(1).strip()) if found else type(exc).__name__
        message = (
            f"the TLS certificate of {host} could not be verified ({reason}); the CA bundle in use: "
            f"{self._bundle_in_use(session)}. Set REQUESTS_CA_BUNDLE to a CA bundle that holds the "
            "certificate's issuer, or pass verify= (the bundle's path)"
        )
        return failure(with_hint(message, hint), kind="certificate", host=host, **details)

    def _bundle_in_use(self, session: requests.Session) -> str:
        verify = self.options.verify
        if isinstance(verify, str):
            return f"verify={verify!r}"
        if session.trust_env and verify is not False:
            for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                if os.environ.get(name):
                    return f"{name}={os.environ[name]!r}"
        if isinstance(session.verify, str):
            return f"the session's verify={session.verify!r}"
        return "the default (certifi)"

    def _proxy_failure(
        self,
        session: requests.Session,
        url: str,
        exc: Exception,
        failure: type[ConnectionSetupError],
        details: Mapping[str, Any],
        *,
        hint: str,
    ) -> ConnectionSetupError:
        host = _host(url)
        merged = session.merge_environment_settings(url, self.options.proxy_map or {}, None, None, None)
        chosen = select_proxy(url, {**session.proxies, **merged["proxies"]})
        proxy = proxy_host(chosen) if chosen else "the configured proxy"
        message = (
            f"could not reach {host} through the proxy {proxy} ({type(exc).__name__}). Check HTTPS_PROXY "
            f"(HTTP_PROXY for http://) or proxies=, or add {_hostname(url)} to NO_PROXY to connect directly"
        )
        return failure(with_hint(message, hint), kind="proxy", host=host, proxy=proxy, **details)

    def close(self) -> None:
        """Close our own session (never the caller's); a later ``get`` opens a new one."""
        with self._guard:
            own, self._own = self._own, None
        if own is not None:
            own.close()

    def _reset_after_fork(self) -> None:
        # The pooled connections stay the parent's; the child opens its own on first use. The lock
        # may have been held by a thread that does not exist in the child.
        self._guard = threading.Lock()
        self._own = None


def with_hint(message: str, hint: str) -> str:
    """A connection failure's message, then the caller's advice for its step, as a sentence of its own."""
    return f"{message}. {hint}" if hint else message


def setup_failure_of_step(
    step: type[_Setup], met: ConnectionSetupError, *, doing: str, hint: str = "", **details: Any
) -> _Setup:
    """The connection-setup failure ``met`` in a preliminary step (metadata discovery before a
    revocation), as the error of the step the user asked for (``step``): what could not be done
    (``doing``) and why, then the ``hint``. The kind, host and proxy stay, and so does the family, so it is still
    caught as :class:`ConnectionSetupError`. Raise it ``from met``, so the chain keeps the original."""
    message = with_hint(f"{doing}: {met}", hint)
    return step(message, kind=met.kind, host=met.host, proxy=met.proxy, **details)


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "?"


__all__ = [
    "DEFAULT_OPTIONS",
    "ConnectionOptions",
    "SessionSource",
    "Verify",
    "no_auth",
    "proxy_host",
    "setup_failure_of_step",
    "with_hint",
]
