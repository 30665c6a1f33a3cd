"""DPoP (RFC 9449) at the two places that check proofs: the token endpoint and the MCP endpoint.

:class:`DpopGate` checks a request's ``DPoP`` header with the state's clock, nonce and ``jti`` cache
and audits the outcome; :class:`ResourceGuard` is the MCP endpoint's access check while DPoP is on
(``Authorization: DPoP`` with a proof for DPoP-bound tokens, ``Bearer`` for the others while DPoP is
optional) and builds its 401 answers, with a ``WWW-Authenticate`` challenge per scheme offered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, List, Optional, Tuple, Union

from ..errors import MissingExtra
from .audit import EventKind
from .bearer import challenge
from .dpop import INVALID_DPOP_PROOF, USE_DPOP_NONCE, DpopProof, dpop_challenge, proof_header, verify_proof
from .errors import OAuthError
from .http_types import Request, Response, json_response
from .models import AccessCheck
from .options import ServerOptions
from .state import AuthState

__all__ = ["DpopGate", "ResourceGuard"]

NONCE_HEADER = "DPoP-Nonce"
_TOKEN68 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")


class DpopGate:
    """Proof checks at one ``place`` ("token" or "resource") whose URL is ``url``."""

    def __init__(self, state: AuthState, *, place: str, url: str, who: str) -> None:
        self._state = state
        self._place = place
        self._url = url
        self._who = who

    def nonces_on(self, options: ServerOptions) -> bool:
        if options.dpop is None:
            return False
        return options.dpop_nonce_at_token if self._place == "token" else options.dpop_nonce_at_resource

    def check(
        self,
        request: Request,
        options: ServerOptions,
        *,
        access_token: Optional[str] = None,
        client_id: Optional[str] = None,
    ) -> Optional[DpopProof]:
        """The request's verified and spent proof; None without a ``DPoP`` header. A bad proof raises
        ``invalid_dpop_proof`` (a replayed ``jti`` too), a missing or stale nonce ``use_dpop_nonce``;
        every outcome is audited."""
        try:
            token = proof_header(request)
            if token is None:
                return None
            nonce = self._state.dpop_nonce(self._place) if self.nonces_on(options) else None
            proof = verify_proof(
                token,
                method=request.method,
                url=self._url,
                now=self._state.now(),
                window=options.dpop_proof_window,
                nonce=nonce,
                access_token=access_token,
                who=self._who,
            )
        except OAuthError as exc:
            kind = EventKind.DPOP_NONCE_CHALLENGE if exc.error == USE_DPOP_NONCE else EventKind.DPOP_PROOF_REFUSED
            self._state.record_dpop_refusal(self._place, kind, client_id, exc.description)
            raise
        if not self._state.spend_dpop_proof(self._place, proof, client_id):
            raise OAuthError(INVALID_DPOP_PROOF, "the DPoP proof's jti was used before (replay)")
        return proof

    def missing(self, description: str, client_id: Optional[str]) -> OAuthError:
        """The ``invalid_dpop_proof`` error for a request that needed a proof and sent none (audited)."""
        self._state.record_dpop_refusal(self._place, EventKind.DPOP_PROOF_REFUSED, client_id, description, missing=True)
        return OAuthError(INVALID_DPOP_PROOF, description)

    def token_request(self, request: Request, options: ServerOptions, client_id: Optional[str]) -> Optional[str]:
        """At the token endpoint: the thumbprint of the request's proof key, None for a Bearer grant
        (no proof while DPoP is optional, or DPoP off: then a ``DPoP`` header is ignored)."""
        if options.dpop is None:
            return None
        proof = self.check(request, options, client_id=client_id)
        if proof is not None:
            return proof.jkt
        if options.dpop == "required":
            raise self.missing("a DPoP proof is required (the DPoP header)", client_id)
        return None

    def stamp(self, response: Response, options: ServerOptions) -> Response:
        """``response`` with the current nonce in ``DPoP-Nonce`` while nonces are on here (RFC 9449 §8:
        any answer may carry the next nonce)."""
        if not self.nonces_on(options) or response.abort:
            return response
        nonce = self._state.dpop_nonce(self._place)
        return replace(response, headers=(*response.headers, (NONCE_HEADER, nonce)))


def _credentials(request: Request) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(scheme in lower case, token, problem) of the Authorization header; (None, None, None) without."""
    values = request.header_values("Authorization")
    if not values:
        return None, None, None
    if len(values) > 1:
        return None, None, "more than one Authorization header"
    scheme, _, token = values[0].strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop"):
        return None, None, None
    token = token.strip()
    body = token.rstrip("=")
    if not body or not set(body) <= _TOKEN68:
        return scheme, None, "malformed access token"
    return scheme, token, None


class ResourceGuard:
    """The MCP endpoint's access check while DPoP is on."""

    def __init__(
        self,
        state: AuthState,
        *,
        url: str,
        resource: Callable[[ServerOptions], str],
        metadata_url: Callable[[], Optional[str]],
    ) -> None:
        self._state = state
        self._resource_of = resource  # the audience tokens must name (the metadata's resource)
        self._metadata_url = metadata_url
        self.gate = DpopGate(state, place="resource", url=url, who="resource server")

    def refuse(
        self,
        options: ServerOptions,
        used: Optional[str],
        error: Optional[str],
        description: str,
        client_id: Optional[str],
    ) -> Response:
        """A 401 with one challenge per scheme offered (Bearer first while DPoP is optional); the error
        rides on the scheme the request ``used``, or on DPoP if that one is not offered."""
        self._state.record_mcp(False, client_id, description)
        offered = ("bearer", "dpop") if options.dpop == "optional" else ("dpop",)
        carrier = used if used in offered else "dpop"
        metadata_url = self._metadata_url()
        headers: List[Tuple[str, str]] = []
        for scheme in offered:
            shown = error if scheme == carrier else None
            text = description if shown is not None else None
            build = challenge if scheme == "bearer" else dpop_challenge
            headers.append(("WWW-Authenticate", build(metadata_url, shown, text)))
        payload = {"error": error or "unauthorized", "error_description": description}
        return json_response(401, payload, tuple(headers))

    def authorize(self, request: Request, options: ServerOptions) -> Union[AccessCheck, Response]:
        scheme, token, problem = _credentials(request)
        if problem is not None:
            return self.refuse(options, scheme, "invalid_token", problem, None)
        if token is None:
            return self.refuse(options, None, None, "access token required (DPoP or Bearer)", None)
        if scheme == "bearer":
            return self._bearer(options, self._state.check_access_token(token, self._resource_of(self._state.options)))
        return self._dpop(request, options, token)

    def _bearer(self, options: ServerOptions, check: AccessCheck) -> Union[AccessCheck, Response]:
        if check.dpop_jkt is not None:  # RFC 9449 §7.2: a bound token never works as a bearer token
            reason = "the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof"
            self._state.record_dpop_refusal("resource", EventKind.DPOP_BOUND_AS_BEARER, check.client_id, reason)
            return self.refuse(options, "bearer", "invalid_token", reason, check.client_id)
        if options.dpop == "required":
            reason = "this resource accepts DPoP-bound access tokens only (Authorization: DPoP)"
            return self.refuse(options, "bearer", "invalid_token", reason, check.client_id)
        if not check.ok:
            return self.refuse(options, "bearer", "invalid_token", check.reason, check.client_id)
        return check

    def _dpop(self, request: Request, options: ServerOptions, token: str) -> Union[AccessCheck, Response]:
        try:
            proof = self.gate.check(request, options, access_token=token)
            if proof is None:
                raise self.gate.missing("a DPoP proof is required with the DPoP scheme (the DPoP header)", None)
        except OAuthError as exc:
            return self.refuse(options, "dpop", exc.error, exc.description, None)
        except MissingExtra as exc:  # nothing to verify the proof with on this side
            payload = {"error": "server_error", "error_description": str(exc)}
            return json_response(500, payload)
        check = self._state.check_access_token(token, self._resource_of(self._state.options))
        if not check.ok:
            return self.refuse(options, "dpop", "invalid_token", check.reason, check.client_id)
        if check.dpop_jkt is None:
            reason = "the access token is not DPoP-bound" + (
                ": send it as Authorization: Bearer" if options.dpop == "optional" else ""
            )
            return self.refuse(options, "dpop", "invalid_token", reason, check.client_id)
        if check.dpop_jkt != proof.jkt:
            reason = "invalid DPoP key binding: the proof's key is not the one the access token is bound to"
            detail = f"access token bound to jkt={check.dpop_jkt}, proof jkt={proof.jkt}"
            self._state.record_dpop_refusal("resource", EventKind.DPOP_KEY_MISMATCH, check.client_id, detail)
            return self.refuse(options, "dpop", "invalid_token", reason, check.client_id)
        return check
