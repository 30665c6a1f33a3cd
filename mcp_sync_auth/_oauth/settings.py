"""The options a user gives, grouped: who the client is (:class:`ClientSettings`) and how it logs in
(:class:`LoginOptions`). Frozen values, checked once when they are made."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence, Union

from .._util.timeouts import positive_seconds
from ..errors import ConfigurationError
from .assertions import AssertionProvider
from .client_auth import AUTH_METHODS
from .device import DeviceCode
from .identity_assertion import IdentityProviderSettings
from .workload import WorkloadTokenProvider

AuthorizationHandler = Callable[[str], str]
"""Given the authorization URL, return the URL the browser was redirected to (with code and state)."""

DevicePrompt = Callable[[DeviceCode], None]
"""Given the device login's code and where to enter it, show them to the person (a custom UI)."""

LOGIN_METHODS = ("browser", "headless", "device")

GRANT_TYPES = ("authorization_code", "client_credentials", "jwt_bearer", "id_jag")


def _scope_tuple(scopes: Union[str, Sequence[str], None]) -> Optional[tuple[str, ...]]:
    if scopes is None:
        return None
    if isinstance(scopes, str):
        return tuple(scopes.split())
    return tuple(scopes) or None


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """Who the client is. Everything is optional: discovery and registration fill in the rest.

    ``client_id``/``client_secret``: a client registered by hand. ``auth_method``: its token endpoint
    authentication (default: what the server offers). ``token_endpoint`` (and ``issuer``): refresh
    without discovery, for tokens stored with ``MCPAuth.save_token()``. ``client_metadata_url``: a
    client ID metadata document, used where the server supports it. ``redirect_uri``: the registered
    callback. ``scopes``: what to ask for when the server's challenge names none. ``grant_type``:
    ``authorization_code`` (a person logs in), ``client_credentials`` (no person) or ``jwt_bearer``
    (a workload's own token, RFC 7523 §2.1: from ``workload_token_file``, re-read for each grant,
    ``workload_token_env``, a variable's name, or ``workload_token_provider``, a callable given the
    token endpoint URL; ``client_id`` is then optional) or ``id_jag`` (enterprise-managed
    authorization: the ID token from ``identity_provider`` is exchanged there for an ID-JAG, which
    this client, with its own secret or key, presents at the MCP authorization server).

    ``private_key`` (PEM text), ``private_key_file`` (a PEM file) or ``client_assertion_provider``
    (a callable given the audience that returns a signed assertion): authenticate with
    ``private_key_jwt`` (RFC 7523) instead of a secret. ``signing_algorithm``: ES256, RS256, PS256
    or EdDSA (default: the key type's own).

    ``dpop``: bind new chains to a key of their own (RFC 9449): True, False (the default) or
    ``"auto"`` (when the authorization server advertises DPoP).
    """

    client_id: Optional[str] = None
    client_secret: Optional[str] = dataclasses.field(default=None, repr=False)
    auth_method: Optional[str] = None
    token_endpoint: Optional[str] = None
    issuer: Optional[str] = None
    client_metadata_url: Optional[str] = None
    redirect_uri: Optional[str] = None
    scopes: Union[tuple[str, ...], str, Sequence[str], None] = None
    grant_type: str = "authorization_code"
    client_name: str = "mcp-sync-auth"
    private_key: Optional[str] = dataclasses.field(default=None, repr=False)
    private_key_file: Optional[str] = None
    client_assertion_provider: Optional[AssertionProvider] = dataclasses.field(default=None, repr=False)
    signing_algorithm: Optional[str] = None
    workload_token_file: Optional[str] = None
    workload_token_env: Optional[str] = None
    workload_token_provider: Optional[WorkloadTokenProvider] = dataclasses.field(default=None, repr=False)
    identity_provider: Optional[IdentityProviderSettings] = None
    dpop: Union[bool, str] = False

    def __post_init__(self) -> None:
        # Given as "a b" or ["a", "b"], kept as a tuple: hashable, and one shape for every reader.
        object.__setattr__(self, "scopes", _scope_tuple(self.scopes))
        if self.grant_type not in GRANT_TYPES:
            raise ConfigurationError(f"unsupported grant_type {self.grant_type!r}")
        keys = [self.private_key, self.private_key_file, self.client_assertion_provider]
        if sum(source is not None for source in keys) > 1:
            raise ConfigurationError("give one of private_key, private_key_file and client_assertion_provider")
        if self.has_private_key and not self.client_id:
            raise ConfigurationError("private_key_jwt needs the client_id the key is registered for")
        if self.grant_type == "client_credentials" and not (
            self.client_id and (self.client_secret or self.has_private_key)
        ):
            raise ConfigurationError(
                "the client credentials grant needs client_id and client_secret (or a private key)"
            )
        workload = [self.workload_token_file, self.workload_token_env, self.workload_token_provider]
        given = sum(source is not None for source in workload)
        if self.grant_type == "jwt_bearer" and given != 1:
            raise ConfigurationError(
                "the jwt_bearer grant needs one of workload_token_file, workload_token_env and workload_token_provider"
            )
        if self.grant_type != "jwt_bearer" and given:
            raise ConfigurationError("a workload token is used by grant_type='jwt_bearer' only")
        if self.grant_type == "id_jag" and not (
            self.identity_provider is not None and self.client_id and (self.client_secret or self.has_private_key)
        ):
            raise ConfigurationError(
                "the id_jag grant needs identity_provider, and client_id with client_secret (or a private key): "
                "the authorization server authenticates the client that presents the ID-JAG"
            )
        if self.dpop not in (True, False, "auto"):
            raise ConfigurationError(f"dpop must be True, False or 'auto', not {self.dpop!r}")
        if self.auth_method is not None and self.auth_method not in AUTH_METHODS:
            raise ConfigurationError(f"unsupported token endpoint auth method {self.auth_method!r}")
        if self.auth_method == "private_key_jwt" and not self.has_private_key:
            raise ConfigurationError("private_key_jwt needs private_key, private_key_file or client_assertion_provider")
        if self.token_endpoint is not None and not self.client_id:
            raise ConfigurationError("token_endpoint needs a client_id")

    @property
    def scope_list(self) -> Optional[tuple[str, ...]]:
        """The configured scopes (None: let the server's challenge and metadata decide)."""
        scopes = self.scopes
        assert scopes is None or isinstance(scopes, tuple)
        return scopes

    @property
    def has_private_key(self) -> bool:
        """Whether the client authenticates with a key (private_key_jwt) it was given."""
        return any(s is not None for s in (self.private_key, self.private_key_file, self.client_assertion_provider))

    @property
    def configured_by_hand(self) -> bool:
        """A token endpoint was given: this client gets its tokens elsewhere (``save_token()``)."""
        return self.token_endpoint is not None

    @property
    def needs_person(self) -> bool:
        return self.grant_type == "authorization_code"

    @property
    def machine_grant(self) -> bool:
        """The grant runs without a person (client credentials, a workload token): it may replace a
        lost chain by itself, as a refresh would."""
        return not self.needs_person


@dataclasses.dataclass(frozen=True)
class LoginOptions:
    """How a login happens when one is needed.

    ``interactive``: may this auth start a login by itself (None: yes, unless the client was configured
    by hand with a token endpoint)? ``authorization_handler``: a callable given the authorization URL that
    returns the redirect URL (tests, custom UIs). ``headless``: print the URL and read the redirect back
    from the terminal instead of opening a browser (the whole address, the address without its
    scheme, or its query; a bare code is refused: its state cannot be checked). ``timeout``: seconds
    to wait for the person (for the browser to come back to the loopback receiver).

    ``method`` says how a person logs in: ``"browser"`` (the default: a browser and the loopback
    receiver, see below), ``"headless"`` (the same as ``headless=True``) or ``"device"``, the device
    authorization grant (RFC 8628) for machines without a browser: the verification URI and a user
    code are shown (on stderr, or given to ``device_prompt``, a callable taking a :class:`DeviceCode`),
    and the token endpoint is polled until the person approves on any other device. ``MCPAuth(url,
    login="device")`` is short for ``LoginOptions(method="device")``. ``sleep`` is how the device login
    waits between polls (``time.sleep``; an event loop's or a test's own wait may replace it).

    With neither a handler nor ``headless``, a browser is opened where one can be (macOS, Windows, a
    ``DISPLAY``/``WAYLAND_DISPLAY``, or ``BROWSER``); without one the headless paste is used when stdin
    and stderr are a terminal, and otherwise :class:`AuthorizationRequired` is raised at once.
    """

    interactive: Optional[bool] = None
    authorization_handler: Optional[AuthorizationHandler] = None
    headless: bool = False
    timeout: float = 300.0
    method: Optional[str] = None
    device_prompt: Optional[DevicePrompt] = dataclasses.field(default=None, repr=False)
    sleep: Callable[[float], None] = dataclasses.field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        positive_seconds(self.timeout, "the login timeout")
        if self.method is not None and self.method not in LOGIN_METHODS:
            raise ConfigurationError(f"the login method must be one of {', '.join(LOGIN_METHODS)}, not {self.method!r}")
        if self.headless and self.method not in (None, "headless"):
            raise ConfigurationError(f"headless=True and the login method {self.method!r} contradict each other")
        if self.device_prompt is not None and not callable(self.device_prompt):
            raise ConfigurationError("device_prompt must be a callable taking a DeviceCode")

    @property
    def login_method(self) -> str:
        """How a person logs in: ``method``, else "headless" with ``headless=True``, else "browser"."""
        if self.method is not None:
            return self.method
        return "headless" if self.headless else "browser"

    def may_start(self, client: ClientSettings) -> bool:
        """Whether a lost or missing chain may be replaced by a login without asking."""
        return self.interactive if self.interactive is not None else not client.configured_by_hand


__all__ = ["GRANT_TYPES", "LOGIN_METHODS", "AuthorizationHandler", "ClientSettings", "DevicePrompt", "LoginOptions"]
