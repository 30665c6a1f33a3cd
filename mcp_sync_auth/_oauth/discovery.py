"""Finding an MCP server's authorization server, in the order the MCP authorization spec prescribes.

1. Protected resource metadata (RFC 9728): the ``resource_metadata`` URL of the 401 challenge if
   there is one, else the path-inserted well-known URL, then the root one.
2. Authorization server metadata for an issuer (RFC 8414 + OpenID Connect Discovery): the
   path-inserted RFC 8414 URL, the path-inserted OIDC URL, then the path-appended OIDC URL.
3. For 2025-03-26 servers without protected resource metadata: RFC 8414 metadata at the MCP origin,
   else the default endpoints ``/authorize``, ``/token`` and ``/register`` there.

Every document is checked before it is used: a protected resource must name the MCP server (so a
token is never requested for, or sent to, another resource), an issuer must be exactly the one the
URL was built from, and every endpoint must be HTTPS (or loopback HTTP). Results are cached per
``Discovery`` object, and concurrent lookups of one document share a single fetch.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Optional, TypeVar, cast
from urllib.parse import SplitResult, urlsplit

import cachetools
import requests

from .._refresh.singleflight import SingleFlight
from .._util import fork
from .._util.redact import clean_server_text
from .._util.sessions import ConnectionOptions, SessionSource, Verify, no_auth
from .._util.timeouts import TimeoutLike, Timeouts
from .._util.untrusted import loads_shallow, read_at_most
from .._util.urls import canonical_resource, require_secure
from .._util.urls import origin as origin_of
from ..errors import ConfigurationError, DiscoveryConnectionError, DiscoveryError, IssuerMismatch, ResourceMismatch
from .challenge import BearerChallenge

PRM_SUFFIX = "/.well-known/oauth-protected-resource"
OAUTH_AS_SUFFIX = "/.well-known/oauth-authorization-server"
OIDC_SUFFIX = "/.well-known/openid-configuration"

# Real metadata documents are a few KiB; the cap protects memory from a hostile or broken server.
MAX_DOCUMENT_BYTES = 256 * 1024

# "Authorization": None removes a default the Session may carry: tokens go to the MCP server only.
_METADATA_HEADERS: dict[str, Optional[str]] = {"Accept": "application/json", "Authorization": None}

T = TypeVar("T")
log = logging.getLogger(__name__)


def _show(text: object) -> str:
    """Server-supplied text (URLs included) as it may appear in a message."""
    return repr(clean_server_text(text))


def _frozen(document: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(document))


def _empty_document() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclass(frozen=True)
class ProtectedResourceMetadata:
    """A validated RFC 9728 document. ``resource`` is exactly as published (use it as the RFC 8707
    ``resource`` parameter); ``url`` is where it was fetched; ``document`` is the raw JSON object."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: Optional[tuple[str, ...]]
    url: str
    document: Mapping[str, Any] = field(default_factory=_empty_document, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class AuthorizationServerMetadata:
    """A validated RFC 8414 / OpenID Connect Discovery document, or the 2025-03-26 defaults.

    ``code_challenge_methods_supported`` is None when the server does not publish it: the MCP spec
    then requires the client to refuse the server (see ``supports_s256``). ``legacy`` marks metadata
    found through the 2025-03-26 fallback; ``url`` is None when it was synthesised, not fetched.
    """

    issuer: str
    authorization_endpoint: Optional[str]
    token_endpoint: str
    registration_endpoint: Optional[str] = None
    scopes_supported: Optional[tuple[str, ...]] = None
    response_types_supported: Optional[tuple[str, ...]] = None
    grant_types_supported: Optional[tuple[str, ...]] = None
    code_challenge_methods_supported: Optional[tuple[str, ...]] = None
    token_endpoint_auth_methods_supported: Optional[tuple[str, ...]] = None
    client_id_metadata_document_supported: bool = False
    authorization_response_iss_parameter_supported: bool = False
    legacy: bool = False
    url: Optional[str] = None
    revocation_endpoint: Optional[str] = None
    dpop_signing_alg_values_supported: Optional[tuple[str, ...]] = None
    device_authorization_endpoint: Optional[str] = None
    document: Mapping[str, Any] = field(default_factory=_empty_document, repr=False, compare=False, hash=False)

    @property
    def supports_s256(self) -> bool:
        """PKCE with S256 is advertised. The MCP spec forbids going on when it is not."""
        return self.code_challenge_methods_supported is not None and "S256" in self.code_challenge_methods_supported


# --- URLs -------------------------------------------------------------------------------------


def _split(url: str) -> Optional[SplitResult]:
    """urlsplit, or None for what it cannot parse (a bad IPv6 literal, a port out of range)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        return None
    return parts


def _resource_key(url: str) -> str:
    """Canonical resource with the default port elided: two spellings of one resource compare equal.

    Raises ConfigurationError (a ValueError) for what is not an http(s) URL.
    """
    if _split(url) is None:
        raise ConfigurationError(f"not a valid URL: {_show(url)}")
    canonical = canonical_resource(url)
    parts = urlsplit(canonical)
    default = {"https": 443, "http": 80}[parts.scheme]
    if parts.port == default:
        host = parts.netloc.rsplit(":", 1)[0]
        canonical = canonical.replace(parts.netloc, host, 1)
    return canonical


def _resource_parts(mcp_url: str) -> tuple[str, str, str]:
    """(canonical resource, origin, path-and-query) of the MCP server URL, which must be secure."""
    if _split(mcp_url) is None:
        raise ConfigurationError(f"not a valid URL: {mcp_url!r}")
    require_secure(mcp_url, "the MCP server URL")
    canonical = canonical_resource(mcp_url)
    parts = urlsplit(canonical)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return canonical, f"{parts.scheme}://{parts.netloc}", rest


def _check_issuer(issuer: object) -> str:
    """An issuer identifier: an https (or loopback http) URL without query or fragment (RFC 8414 §2)."""
    if not isinstance(issuer, str) or not issuer:
        raise ConfigurationError(f"an issuer must be a non-empty string, not {_show(issuer)}")
    parts = _split(issuer)
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"an issuer must be an absolute https URL: {_show(issuer)}")
    if parts.query or parts.fragment or "#" in issuer or parts.username is not None:
        raise ConfigurationError(f"an issuer must not have a query, fragment or credentials: {_show(issuer)}")
    require_secure(issuer, "an authorization server issuer")
    return issuer


def protected_resource_metadata_urls(mcp_url: str) -> tuple[str, ...]:
    """The well-known URLs tried for an MCP server URL when no challenge names one: path-inserted, root."""
    _, origin_url, rest = _resource_parts(mcp_url)
    root = f"{origin_url}{PRM_SUFFIX}"
    return (f"{root}{rest}", root) if rest else (root,)


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    """The well-known URLs to try for an issuer, in the MCP spec's order."""
    parts = urlsplit(issuer)
    base = f"{parts.scheme}://{parts.netloc}"
    # RFC 8414 §3.1: a terminating "/" is removed before the suffix is inserted.
    path = parts.path.rstrip("/")
    if path:
        return [f"{base}{OAUTH_AS_SUFFIX}{path}", f"{base}{OIDC_SUFFIX}{path}", f"{base}{path}{OIDC_SUFFIX}"]
    return [f"{base}{OAUTH_AS_SUFFIX}", f"{base}{OIDC_SUFFIX}"]


# --- Document fields --------------------------------------------------------------------------


def _optional(document: Mapping[str, Any], name: str) -> object:
    # A JSON null is read as "absent": several server frameworks serialise unset fields that way.
    return document.get(name)


def _string(document: Mapping[str, Any], name: str, url: str, *, required: bool = False) -> Optional[str]:
    value = _optional(document, name)
    if value is None:
        if required:
            raise DiscoveryError(f"the metadata at {_show(url)} has no {name!r}", url=url)
        return None
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"{name!r} in the metadata at {_show(url)} must be a non-empty string", url=url)
    return value


def _strings(document: Mapping[str, Any], name: str, url: str) -> Optional[tuple[str, ...]]:
    value = _optional(document, name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryError(f"{name!r} in the metadata at {_show(url)} must be a list of strings", url=url)
    return tuple(value)


def _flag(document: Mapping[str, Any], name: str, url: str) -> bool:
    value = _optional(document, name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DiscoveryError(f"{name!r} in the metadata at {_show(url)} must be true or false", url=url)
    return value


def _endpoint(document: Mapping[str, Any], name: str, url: str, *, required: bool = False) -> Optional[str]:
    value = _string(document, name, url, required=required)
    if value is None:
        return None
    parts = _split(value)
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or "#" in value:
        raise DiscoveryError(
            f"{name!r} in the metadata at {_show(url)} is not an absolute URL without fragment: {_show(value)}", url=url
        )
    try:
        require_secure(value, name)
    except ConfigurationError as exc:
        raise DiscoveryError(
            f"{name!r} in the metadata at {_show(url)} must use https:// (http:// only for loopback): {_show(value)}",
            url=url,
        ) from exc
    return value


def _unused(
    read: Callable[[Mapping[str, Any], str, str], Optional[T]], document: Mapping[str, Any], name: str, url: str
) -> Optional[T]:
    """A field no login reads: kept when well formed, dropped (never fatal) when not."""
    try:
        return read(document, name, url)
    except DiscoveryError:
        log.info("ignoring the malformed %r in the metadata at %s", name, _show(url))
        return None


# --- Document parsing -------------------------------------------------------------------------


def _parse_protected_resource(
    document: Mapping[str, Any], url: str, expected: tuple[str, ...]
) -> ProtectedResourceMetadata:
    """Validate a PRM document; ``expected`` are the resource identifiers it may describe."""
    resource = _string(document, "resource", url, required=True)
    assert resource is not None
    try:
        # RFC 8707 §2: a resource indicator has no fragment. canonical_resource would drop one silently.
        matches = "#" not in resource and _resource_key(resource) in {_resource_key(e) for e in expected}
    except ValueError:
        matches = False
    if not matches:
        # RFC 9728 §3.3: the data MUST NOT be used. Raised, never skipped, so no later candidate
        # and no authorization request can follow from it.
        suggestion = _suggestion(resource, expected[0])
        advice = (
            f"did you mean {clean_server_text(suggestion)}?"
            if suggestion is not None
            else "that is not this server's URL; check the URL"
        )
        raise ResourceMismatch(
            f"the protected resource metadata at {_show(url)} describes {_show(resource)}, "
            f"not the URL asked for, {_show(expected[0])}; refusing to use it: {advice}",
            url=url,
            expected=expected[0],
            actual=clean_server_text(resource),
            suggestion=suggestion,
        )
    servers = _optional(document, "authorization_servers")
    if not isinstance(servers, list) or not servers:
        raise DiscoveryError(
            f"the protected resource metadata at {_show(url)} names no authorization_servers (a non-empty list)",
            url=url,
        )
    for server in servers:
        try:
            _check_issuer(server)
        except ConfigurationError as exc:
            raise DiscoveryError(f"the protected resource metadata at {_show(url)}: {exc.message}", url=url) from exc
    return ProtectedResourceMetadata(
        resource=resource,
        authorization_servers=tuple(servers),
        scopes_supported=_strings(document, "scopes_supported", url),
        url=url,
        document=_frozen(document),
    )


def _suggestion(resource: str, asked: str) -> Optional[str]:
    """The resource a document offers, as the URL to use instead of ``asked``: only on the same
    origin (a mistyped path), never another host, which a hostile document could name to phish."""
    offered = _split(resource)
    if offered is None or _split(asked) is None or "#" in resource or offered.scheme.lower() not in ("http", "https"):
        return None
    return clean_server_text(resource) if origin_of(resource) == origin_of(asked) else None


def _parse_authorization_server(
    document: Mapping[str, Any], url: str, issuers: tuple[str, ...], *, legacy: bool = False
) -> AuthorizationServerMetadata:
    """Validate AS metadata; ``issuers`` are the identifiers the URL was built from (exact strings)."""
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or issuer not in issuers:
        # RFC 8414 §3.3 and MCP 2026-07-28: simple string comparison, no normalisation.
        raise IssuerMismatch(
            f"the authorization server metadata at {_show(url)} names the issuer {_show(issuer)}, "
            f"not {_show(issuers[0])}; refusing to use it",
            url=url,
            expected=issuers[0],
            actual=clean_server_text(issuer),
        )
    token_endpoint = _endpoint(document, "token_endpoint", url, required=True)
    assert token_endpoint is not None
    return AuthorizationServerMetadata(
        issuer=issuer,
        authorization_endpoint=_endpoint(document, "authorization_endpoint", url),
        token_endpoint=token_endpoint,
        registration_endpoint=_endpoint(document, "registration_endpoint", url),
        scopes_supported=_strings(document, "scopes_supported", url),
        response_types_supported=_unused(_strings, document, "response_types_supported", url),
        grant_types_supported=_unused(_strings, document, "grant_types_supported", url),
        code_challenge_methods_supported=_strings(document, "code_challenge_methods_supported", url),
        token_endpoint_auth_methods_supported=_strings(document, "token_endpoint_auth_methods_supported", url),
        client_id_metadata_document_supported=_flag(document, "client_id_metadata_document_supported", url),
        authorization_response_iss_parameter_supported=_flag(
            document, "authorization_response_iss_parameter_supported", url
        ),
        legacy=legacy,
        url=url,
        revocation_endpoint=_unused(_endpoint, document, "revocation_endpoint", url),
        dpop_signing_alg_values_supported=_unused(_strings, document, "dpop_signing_alg_values_supported", url),
        # Read by the device login only (RFC 8628 §4), which says so when it is missing or dropped.
        device_authorization_endpoint=_unused(_endpoint, document, "device_authorization_endpoint", url),
        document=_frozen(document),
    )


def _legacy_defaults(origin: str) -> AuthorizationServerMetadata:
    # 2025-03-26 "fallbacks for servers without metadata discovery"; that revision made PKCE
    # mandatory, so S256 is assumed rather than left for the caller to refuse.
    return AuthorizationServerMetadata(
        issuer=origin,
        authorization_endpoint=f"{origin}/authorize",
        token_endpoint=f"{origin}/token",
        registration_endpoint=f"{origin}/register",
        response_types_supported=("code",),
        code_challenge_methods_supported=("S256",),
        legacy=True,
        url=None,
    )


# --- Fetching ---------------------------------------------------------------------------------


def _read_bounded(response: requests.Response, url: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"the metadata at {_show(url)} is too large ({declared} bytes)", url=url)
    body = read_at_most(response, MAX_DOCUMENT_BYTES)
    if body is None:
        raise DiscoveryError(
            f"the metadata at {_show(url)} is too large (more than {MAX_DOCUMENT_BYTES} bytes)", url=url
        )
    return body


def _json_object(body: bytes, url: str) -> dict[str, Any]:
    try:
        document = loads_shallow(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise DiscoveryError(f"the metadata at {_show(url)} is not JSON ({type(exc).__name__})", url=url) from None
    if not isinstance(document, dict):
        raise DiscoveryError(f"the metadata at {_show(url)} is not a JSON object", url=url)
    return document


_MISSING = object()


class Discovery:
    """Metadata discovery with a per-object cache (TTL, bounded) and one fetch per document at a time.

    Share one object between threads. Errors are never cached; "no protected resource metadata"
    (a 2025-03-26 server) is. Call ``invalidate`` when a server's metadata may have changed, for
    example when it moved to another authorization server. ``session``, ``verify`` and ``proxies``
    are used as by :class:`~mcp_sync_auth.MCPAuth`: every fetch goes through ``requests``'
    environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``), with these on top.
    """

    def __init__(
        self,
        session: Optional[requests.Session] = None,
        *,
        verify: Optional[Verify] = None,
        proxies: Optional[Mapping[str, str]] = None,
        timeout: TimeoutLike = 10.0,
        cache_ttl: float = 300.0,
        cache_size: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_size < 1 or cache_ttl < 0:
            raise ConfigurationError("cache_size must be at least 1 and cache_ttl must not be negative")
        self._sessions = SessionSource(session, ConnectionOptions.of(verify, proxies))
        self._timeout = Timeouts.of(timeout)
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._clock = clock
        self._flights: SingleFlight[object] = SingleFlight()
        self._reset_after_fork()  # a forked child starts where a new object does
        fork.reset_in_child(self)

    def _reset_after_fork(self) -> None:
        # A lock held by a thread of the parent would never be released in a child. (The session and
        # the flights reset themselves.)
        self._lock = threading.Lock()
        self._cache: cachetools.TTLCache[Hashable, object] = cachetools.TTLCache(
            maxsize=self._cache_size, ttl=self._cache_ttl, timer=self._clock
        )
        # Bumped by invalidate(): a fetch that started before it does not store its older result.
        self._generation = 0

    def close(self) -> None:
        """Close the HTTP session if this object created it."""
        self._sessions.close()

    # --- public lookups -----------------------------------------------------------------------

    def protected_resource(
        self, mcp_url: str, challenge: Optional[BearerChallenge] = None
    ) -> Optional[ProtectedResourceMetadata]:
        """The MCP server's protected resource metadata, or None when it publishes none.

        Raises ResourceMismatch when a document describes another resource, DiscoveryError when a
        document is unusable or a server fails (network error, 5xx).
        """
        canonical, origin, rest = _resource_parts(mcp_url)
        explicit = challenge.resource_metadata if challenge is not None else None
        key = ("prm", _resource_key(canonical), explicit)
        return self._cached(key, lambda: self._find_protected_resource(canonical, origin, rest, explicit))

    def authorization_server(self, issuer: str) -> AuthorizationServerMetadata:
        """The issuer's metadata. Raises IssuerMismatch, or DiscoveryError when none can be found."""
        _check_issuer(issuer)
        return self._cached(("as", issuer), lambda: self._find_authorization_server(issuer))

    def legacy_authorization_server(self, mcp_url: str) -> AuthorizationServerMetadata:
        """2025-03-26 discovery: RFC 8414 metadata at the MCP origin, else the default endpoints there."""
        _, origin, _ = _resource_parts(mcp_url)
        return self._cached(("legacy", origin), lambda: self._find_legacy(origin))

    def invalidate(self, mcp_url: Optional[str] = None) -> None:
        """Forget everything, or one MCP server's entries and the issuer metadata its documents named."""
        if mcp_url is None:
            with self._lock:
                self._generation += 1
                self._cache.clear()
            return
        canonical, origin, _ = _resource_parts(mcp_url)
        resource = _resource_key(canonical)
        with self._lock:
            self._generation += 1
            doomed: list[Hashable] = [("legacy", origin)]
            for key, value in list(self._cache.items()):
                if isinstance(key, tuple) and key[:2] == ("prm", resource):
                    doomed.append(key)
                    if isinstance(value, ProtectedResourceMetadata):
                        doomed.extend(("as", issuer) for issuer in value.authorization_servers)
            for key in doomed:
                self._cache.pop(key, None)

    # --- caching ------------------------------------------------------------------------------

    def _cached(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._cache.get(key, _MISSING)
        if hit is not _MISSING:
            return cast(T, hit)

        def fetch_once() -> object:
            with self._lock:
                hit = self._cache.get(key, _MISSING)
                generation = self._generation
            if hit is not _MISSING:  # filled by a flight that ended after our first look
                return hit
            value = load()
            with self._lock:
                if generation == self._generation:
                    self._cache[key] = value
            return value

        return cast(T, self._flights.run(key, fetch_once))

    # --- the discovery procedures -------------------------------------------------------------

    def _find_protected_resource(
        self, canonical: str, origin: str, rest: str, explicit: Optional[str]
    ) -> Optional[ProtectedResourceMetadata]:
        root = f"{origin}{PRM_SUFFIX}"
        if explicit is not None:
            url = self._explicit_metadata_url(explicit)
            # RFC 9728 §3.3: metadata named by the challenge describes the URL that was requested. A
            # challenge that points at the root document may describe the origin, as fetched there.
            accepted: tuple[str, ...] = (canonical, origin) if _same_url(url, root) else (canonical,)
            status, document = self._fetch(url)
            if document is None:
                raise DiscoveryError(
                    f"the protected resource metadata named by the server's challenge, {_show(url)}, "
                    f"could not be fetched (HTTP {status})",
                    url=url,
                )
            return _parse_protected_resource(document, url, accepted)
        candidates: list[tuple[str, tuple[str, ...]]] = []
        if rest:
            candidates.append((f"{root}{rest}", (canonical,)))
        # The root document describes the origin (RFC 9728 §3.1). A root document naming the MCP URL
        # itself is accepted too: it names exactly the server being called, which is what §3.3 protects.
        candidates.append((root, (canonical, origin)))
        for url, allowed in candidates:
            _, document = self._fetch(url)
            if document is not None:
                return _parse_protected_resource(document, url, allowed)
        return None

    @staticmethod
    def _explicit_metadata_url(url: str) -> str:
        parts = _split(url)
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or "#" in url:
            raise DiscoveryError(f"the challenge's resource_metadata is not an absolute URL: {_show(url)}", url=url)
        try:
            return require_secure(url, "resource_metadata")
        except ConfigurationError as exc:
            raise DiscoveryError(
                f"the challenge's resource_metadata must use https:// (http:// only for loopback): {_show(url)}",
                url=url,
            ) from exc

    def _find_authorization_server(self, issuer: str) -> AuthorizationServerMetadata:
        tried = authorization_server_metadata_urls(issuer)
        for url in tried:
            _, document = self._fetch(url)
            if document is not None:
                return _parse_authorization_server(document, url, (issuer,))
        raise DiscoveryError(
            f"no authorization server metadata found for the issuer {_show(issuer)} (tried {', '.join(tried)})"
        )

    def _find_legacy(self, origin: str) -> AuthorizationServerMetadata:
        url = f"{origin}{OAUTH_AS_SUFFIX}"
        _, document = self._fetch(url)
        if document is None:
            return _legacy_defaults(origin)
        # Built from the bare origin, which "https://host" and "https://host/" both name (RFC 8414 §3.1).
        return _parse_authorization_server(document, url, (origin, f"{origin}/"), legacy=True)

    def _fetch(self, url: str) -> tuple[int, Optional[dict[str, Any]]]:
        """GET one document: (200, object), or (status, None) when it is not there (3xx, 4xx).

        Redirects are not followed: metadata must come from the URL its identifier built. Network
        errors, 5xx and unusable bodies raise DiscoveryError, so a broken server never reads as absent.
        """
        try:
            response = self._sessions.request(
                "GET",
                url,
                failure=DiscoveryConnectionError,
                details={"url": url},
                headers=_METADATA_HEADERS,
                timeout=self._timeout.for_requests,
                allow_redirects=False,
                stream=True,
                auth=no_auth,
            )
        except DiscoveryConnectionError:
            raise
        except (requests.RequestException, ValueError) as exc:
            # ValueError: http.client and urllib3 refuse some URLs before requests can wrap the error.
            raise DiscoveryError(f"could not fetch {_show(url)}: {type(exc).__name__}", url=url) from exc
        try:
            status = response.status_code
            if 300 <= status < 500:
                return status, None
            if status != 200:
                raise DiscoveryError(f"{_show(url)} answered HTTP {status}", url=url)
            try:
                body = _read_bounded(response, url)
            except DiscoveryError:
                raise
            except requests.RequestException as exc:
                raise DiscoveryError(f"could not read {_show(url)}: {type(exc).__name__}", url=url) from exc
        finally:
            response.close()
        return status, _json_object(body, url)


def _same_url(left: str, right: str) -> bool:
    try:
        return _resource_key(left) == _resource_key(right)
    except ValueError:
        return False
