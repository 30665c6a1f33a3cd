"""Talking to the token endpoint: one POST, one strict reading of the answer.

Request bodies are built by oauthlib (the protocol engine of requests-oauthlib). We send them and read
the answers ourselves, for three reasons: requests-oauthlib's transport check can only be relaxed for
loopback servers through a process-wide environment variable (which would switch it off for every
other oauthlib user in the process); its scope check raises unless another process-wide variable is
set; and the refresh protocol must tell apart "the server did not process this" from "the server may
have rotated and we lost the answer", which needs the raw transport failure.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Callable, Mapping, Optional, Sequence
from urllib.parse import quote, urlencode

import requests
from oauthlib.oauth2 import BackendApplicationClient, WebApplicationClient

from .._chain.tokens import TokenSet, parse_token_response
from .._util.redact import clean_server_text, fingerprint
from .._util.sessions import SessionSource
from .._util.timeouts import TimeoutLike, Timeouts
from .._util.untrusted import json_object, read_at_most
from .._util.urls import require_secure
from ..errors import ConfigurationError, TokenEndpointConnectionError, TokenEndpointError
from .assertions import CLIENT_ASSERTION_TYPE, ClientAssertions
from .client_auth import AUTH_METHODS, choose_auth_method
from .dpop import KEYS, NONCES, USE_DPOP_NONCE, DPoPKey
from .workload import JWT_BEARER_GRANT

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024
# A request body, and the secrets in it (never to be echoed back in a message).
_Request = tuple[str, tuple[Optional[str], ...]]
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class TokenEndpointClient:
    """Sends token requests for one registered client to one token endpoint."""

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        *,
        client_secret: Optional[str] = None,
        auth_method: Optional[str] = None,
        assertions: Optional[ClientAssertions] = None,
        audience: Optional[str] = None,
        resource: Optional[str] = None,
        session: Optional[requests.Session] = None,
        http: Optional[SessionSource] = None,
        timeout: TimeoutLike = 30.0,
        clock: Callable[[], float],
    ) -> None:
        self.token_endpoint = require_secure(token_endpoint, "the token endpoint")
        self.client_id = client_id
        self._client_secret = client_secret
        if auth_method is None:
            auth_method = choose_auth_method(bool(client_secret), has_key=assertions is not None)
        if auth_method not in AUTH_METHODS:
            raise ConfigurationError(f"unsupported token endpoint auth method {auth_method!r}")
        if auth_method == "private_key_jwt":
            if assertions is None:
                raise ConfigurationError("private_key_jwt needs a private key (or an assertion provider)")
        elif auth_method != "none" and not client_secret:
            raise ConfigurationError(f"{auth_method} needs a client_secret")
        self.auth_method = auth_method
        self._assertions = assertions
        # RFC 7523 (as its revision requires): the audience is the authorization server's issuer.
        self._audience = audience or self.token_endpoint
        self.resource = resource
        self._sessions = http if http is not None else SessionSource(session)
        self._timeout = Timeouts.of(timeout)
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenEndpointClient({self.token_endpoint!r}, client_id={self.client_id!r}, {self.auth_method})"

    def refresh(self, tokens: TokenSet, generation: int, resource: Optional[str] = None) -> TokenSet:
        """Spend ``tokens.refresh_token`` once. Raises TokenEndpointError; never retries (but for a
        server's demand of a DPoP nonce, which it makes before it looks at the token).

        ``resource``: the one the chain's grant was for (its stored resource indicator), sent
        instead of this client's own when given."""
        assert tokens.refresh_token, "refresh() needs a refresh token"
        refresh_token = tokens.refresh_token

        def build() -> _Request:
            credentials = self._body_credentials()
            body = self._oauthlib_client().prepare_refresh_body(
                refresh_token=refresh_token,
                scope=None,
                client_id=self.client_id,  # the base client's refresh body does not add it by itself
                **{**credentials, **self._resource(resource)},
            )
            return body, (refresh_token, tokens.access_token, credentials.get("client_assertion"))

        log.debug(
            "refresh grant: presenting refresh token <%s> to %s",
            fingerprint(tokens.refresh_token),
            self.token_endpoint,
        )
        # A DPoP-bound chain proves its own key; the new set carries the same key.
        key = KEYS.key(tokens.dpop_key) if tokens.dpop_key else None
        answer = self._send(build, key)
        return parse_token_response(
            answer, now=self._clock(), generation=generation, previous=tokens, dpop_key=tokens.dpop_key
        )

    def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str, generation: int, dpop: Optional[DPoPKey] = None
    ) -> TokenSet:
        """Redeem an authorization code (with its PKCE verifier) for a new chain."""

        def build() -> _Request:
            credentials = self._body_credentials()
            body = self._oauthlib_client().prepare_request_body(
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                **{**credentials, **self._resource()},
            )
            return body, (code, code_verifier, credentials.get("client_assertion"))

        return self._grant(build, dpop, generation)

    def client_credentials(
        self, *, scopes: Optional[Sequence[str]], generation: int, dpop: Optional[DPoPKey] = None
    ) -> TokenSet:
        """The client credentials grant: tokens for the client itself, no person, no refresh token."""
        extra: dict[str, Any] = dict(self._resource())
        if scopes:
            extra["scope"] = " ".join(scopes)

        def build() -> _Request:
            credentials = self._body_credentials()
            body = BackendApplicationClient(self.client_id).prepare_request_body(**credentials, **extra)
            return body, (credentials.get("client_assertion"),)

        return self._grant(build, dpop, generation)

    def jwt_bearer(
        self,
        assertion: str,
        *,
        scopes: Optional[Sequence[str]],
        generation: int,
        send_client_id: bool = True,
        dpop: Optional[DPoPKey] = None,
    ) -> TokenSet:
        """The JWT bearer grant (RFC 7523 §2.1): ``assertion`` (a workload's token, or an identity
        assertion) for tokens. ``send_client_id`` False: a workload with no client at all."""

        def build() -> _Request:
            credentials = self._body_credentials()
            form: dict[str, Any] = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, **self._resource()}
            if scopes:
                form["scope"] = " ".join(scopes)
            if credentials.pop("include_client_id") and send_client_id:
                form["client_id"] = self.client_id
            form.update(credentials)
            return urlencode(form), (assertion, credentials.get("client_assertion"))

        return self._grant(build, dpop, generation)

    def _grant(self, build: Callable[[], _Request], dpop: Optional[DPoPKey], generation: int) -> TokenSet:
        """A grant that starts a chain; with ``dpop``, bound to that key."""
        answer = self._send(build, dpop)
        stored_key = dpop.private_jwk() if dpop is not None else None
        return parse_token_response(answer, now=self._clock(), generation=generation, dpop_key=stored_key)

    def token_exchange(
        self,
        subject_token: str,
        *,
        subject_token_type: str,
        requested_token_type: str,
        audience: str,
        resource: Optional[str],
        scopes: Optional[Sequence[str]],
    ) -> str:
        """An RFC 8693 token exchange: the issued token, checked to be of the type asked for."""

        def build() -> _Request:
            credentials = self._body_credentials()
            form: dict[str, Any] = {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token": subject_token,
                "subject_token_type": subject_token_type,
                "requested_token_type": requested_token_type,
                "audience": audience,
            }
            if resource is not None:
                form["resource"] = resource
            if scopes:
                form["scope"] = " ".join(scopes)
            if credentials.pop("include_client_id"):
                form["client_id"] = self.client_id
            form.update(credentials)
            return urlencode(form), (subject_token, credentials.get("client_assertion"))

        answer = self._send(build, None)
        issued = answer.get("access_token")
        if not isinstance(issued, str) or not issued:
            raise TokenEndpointError(f"token endpoint {self.token_endpoint} answered the exchange without a token")
        if answer.get("issued_token_type") != requested_token_type:
            kind = clean_server_text(str(answer.get("issued_token_type")), (issued, subject_token))
            raise TokenEndpointError(
                f"token endpoint {self.token_endpoint} issued a {kind} where {requested_token_type} was asked for"
            )
        return issued

    def device_authorization(self, endpoint: str, *, scopes: Optional[Sequence[str]]) -> Mapping[str, Any]:
        """Ask the device authorization endpoint (RFC 8628 §3.1) for a device code, authenticating as
        at the token endpoint, with ``scope`` and this client's ``resource``. The answer's JSON object,
        unchecked (:mod:`.device` reads it)."""
        endpoint = require_secure(endpoint, "the device authorization endpoint")

        def build() -> _Request:
            credentials = self._body_credentials()
            form: dict[str, Any] = dict(self._resource())
            if scopes:
                form["scope"] = " ".join(scopes)
            if credentials.pop("include_client_id"):
                form["client_id"] = self.client_id
            form.update(credentials)
            return urlencode(form), (credentials.get("client_assertion"),)

        body, secrets = build()
        return self._post(body, secrets, self._headers(), url=endpoint)

    def device_code(self, device_code: str, *, generation: int, dpop: Optional[DPoPKey] = None) -> TokenSet:
        """One poll of the device grant (RFC 8628 §3.4). ``authorization_pending``, ``slow_down`` and
        the other refusals come back as TokenEndpointError with their ``error_code``."""

        def build() -> _Request:
            credentials = self._body_credentials()
            form: dict[str, Any] = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, **self._resource()}
            if credentials.pop("include_client_id"):
                form["client_id"] = self.client_id
            form.update(credentials)
            return urlencode(form), (device_code, credentials.get("client_assertion"))

        return self._grant(build, dpop, generation)

    # -- for other endpoints of the same server (revocation) --------------------------------------

    @property
    def http(self) -> SessionSource:
        """The request path token requests use (the caller's session, its proxies and CA settings)."""
        return self._sessions

    @property
    def timeouts(self) -> Timeouts:
        return self._timeout

    def authentication(self) -> tuple[dict[str, str], dict[str, str], tuple[Optional[str], ...]]:
        """This client's authentication for one more request to its server, as for a token request:
        the form fields, the headers (Basic credentials), and the secrets in them (never to be
        echoed). A ``private_key_jwt`` client gets a fresh assertion each time."""
        credentials = self._body_credentials()
        form: dict[str, str] = {}
        if credentials.pop("include_client_id"):
            form["client_id"] = self.client_id
        form.update({name: value for name, value in credentials.items() if value is not None})
        return form, self._headers(), (credentials.get("client_assertion"), self._client_secret)

    # -- request ---------------------------------------------------------------------------------

    def _resource(self, resource: Optional[str] = None) -> dict[str, str]:
        resource = resource if resource is not None else self.resource
        return {} if resource is None else {"resource": resource}

    def _oauthlib_client(self) -> WebApplicationClient:
        return WebApplicationClient(self.client_id)

    def _body_credentials(self) -> dict[str, Any]:
        """oauthlib's switches for the client's credentials in the body (the id comes from the client
        object; HTTP Basic clients send both in the header instead)."""
        if self.auth_method == "client_secret_post":
            return {"client_secret": self._client_secret, "include_client_id": True}
        if self.auth_method == "private_key_jwt":
            assert self._assertions is not None
            # A fresh assertion (its own jti) for every request: the server refuses a replayed one.
            return {
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self._assertions(self._audience),
                "include_client_id": False,
            }
        return {"include_client_id": self.auth_method == "none"}

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            # The body is read receive by receive against a total deadline: no decoder in between.
            "Accept-Encoding": "identity",
        }
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
            assert self._client_secret is not None
            pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return headers

    def _send(self, build: Callable[[], _Request], dpop: Optional[DPoPKey]) -> Mapping[str, Any]:
        """POST the request ``build`` makes. With ``dpop``, each attempt carries a fresh proof; a
        refusal for want of a nonce (made before the grant is looked at: nothing was spent) is
        answered once, with a new body (a client assertion is never sent twice) and the nonce."""
        if dpop is None:
            body, secrets = build()
            return self._post(body, secrets, self._headers())
        used = NONCES.get(self.token_endpoint)
        try:
            return self._post_with_proof(build, dpop, used)
        except TokenEndpointError as exc:
            fresh = NONCES.get(self.token_endpoint)
            if exc.error_code != USE_DPOP_NONCE or fresh in (None, used):
                raise
        return self._post_with_proof(build, dpop, fresh)

    def _post_with_proof(self, build: Callable[[], _Request], dpop: DPoPKey, nonce: Optional[str]) -> Mapping[str, Any]:
        body, secrets = build()
        headers = self._headers()
        headers["DPoP"] = dpop.proof("POST", self.token_endpoint, now=self._clock(), nonce=nonce)
        return self._post(body, secrets, headers)

    def _post(
        self, body: str, secrets: tuple[Optional[str], ...], headers: dict[str, str], url: Optional[str] = None
    ) -> Mapping[str, Any]:
        """POST to the token endpoint, or to ``url`` (another endpoint of the same server that takes
        the same client authentication: the device authorization endpoint)."""
        secrets = (*secrets, self._client_secret)
        url = url if url is not None else self.token_endpoint
        where = f"token endpoint {url}" if url == self.token_endpoint else f"authorization server endpoint {url}"
        # The body must be read before this, so that the grant ends within Timeouts.grant_total.
        read_by = time.monotonic() + self._timeout.grant_total - self._timeout.for_grants[1]
        try:
            response = self._sessions.request(
                "POST",
                url,
                # Refused before a byte reached the server: nothing was spent, the chain is intact.
                failure=TokenEndpointConnectionError,
                details={"transient": True, "ambiguous": False},
                data=body,
                headers=headers,
                timeout=self._timeout.for_grants,
                allow_redirects=False,
                stream=True,
            )
        except TokenEndpointConnectionError:
            raise
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise self._transport_error(where, "could not connect", exc, ambiguous=False) from None
        except requests.exceptions.Timeout as exc:
            raise self._transport_error(where, "no answer in time", exc, ambiguous=True) from None
        except requests.exceptions.ConnectionError as exc:
            # A refused connection never reached the server; a reset may have come after it rotated.
            refused = "refused" in str(exc).lower() or "NewConnectionError" in str(exc)
            raise self._transport_error(where, "the connection failed", exc, ambiguous=not refused) from None
        except requests.exceptions.RequestException as exc:
            raise self._transport_error(where, "the request failed", exc, ambiguous=True) from None
        NONCES.remember(url, response.headers)  # any answer may bring the next nonce
        with response:
            try:
                raw = read_at_most(response, MAX_RESPONSE_BYTES, deadline=read_by)
            except requests.exceptions.RequestException as exc:
                raise self._transport_error(where, "the answer was cut off", exc, ambiguous=True) from None
        return self._interpret(response, raw, secrets, where)

    def _transport_error(self, where: str, what: str, exc: Exception, *, ambiguous: bool) -> TokenEndpointError:
        consequence = (
            " The server may have rotated the refresh token; if the next refresh is refused, log in again."
            if ambiguous
            else ""
        )
        return TokenEndpointError(
            f"{where}: {what} ({type(exc).__name__}).{consequence}",
            transient=True,
            ambiguous=ambiguous,
        )

    def _interpret(
        self, response: requests.Response, raw: Optional[bytes], secrets: tuple[Optional[str], ...], where: str
    ) -> Mapping[str, Any]:
        status = response.status_code
        if raw is None:
            raise TokenEndpointError(
                f"{where} answered HTTP {status} with more than {MAX_RESPONSE_BYTES} bytes",
                status_code=status,
                ambiguous=200 <= status < 300,
            )
        document = json_object(raw)
        if 200 <= status < 300:
            if document is None:
                raise TokenEndpointError(
                    f"{where} answered HTTP 200 but not with a JSON object; the server may have rotated "
                    "the refresh token, in which case the next refresh will be refused and you must log in again",
                    status_code=status,
                    ambiguous=True,
                )
            return document
        if document is not None and isinstance(document.get("error"), str):
            code = clean_server_text(document["error"], secrets)
            description = clean_server_text(document.get("error_description", ""), secrets)
            detail = f"{code}: {description}" if description else code
            raise TokenEndpointError(
                f"{where} refused the request (HTTP {status}, {detail})",
                status_code=status,
                error_code=code,
                transient=status >= 500 or code == "temporarily_unavailable",
            )
        if status >= 500:
            raise TokenEndpointError(
                f"{where} failed with HTTP {status}; the chain is intact, the next call will refresh again",
                status_code=status,
                transient=True,
            )
        # The body is not quoted: whatever it is, it may carry tokens we do not know to redact.
        kind = response.headers.get("Content-Type", "no content type")
        raise TokenEndpointError(
            f"{where} answered HTTP {status} without an OAuth error ({clean_server_text(kind)}, {len(raw)} bytes)",
            status_code=status,
        )
