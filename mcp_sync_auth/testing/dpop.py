"""DPoP proofs (RFC 9449): the checks of §4.3, JWK thumbprints (RFC 7638) and the DPoP challenge.

Pure logic, no state: :func:`verify_proof` checks one proof against what the server expects (the
request's method and URL, the current nonce if nonces are required, the access token at a resource)
and returns what the state needs to spend it (its ``jti``) and to bind tokens (its key's thumbprint,
``jkt``). Every failure is an :class:`~mcp_sync_auth.testing.errors.OAuthError` with the error code
of RFC 9449 (``invalid_dpop_proof``, or ``use_dpop_nonce`` for a missing or stale nonce) and a
description that never quotes the proof.

The signature is checked with PyJWT (the ``jwt`` extra), with the key the proof carries in its
``jwk`` header, loaded by :func:`~mcp_sync_auth.testing.jwt_keys.load_public_key` (asymmetric keys
only: EC P-256, RSA of 2048 bits or more, Ed25519/Ed448). The thumbprint is computed here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .._util.jwt_extra import jwt_module
from .errors import OAuthError
from .http_types import Request
from .jwt_keys import ALGORITHMS, load_public_key

__all__ = [
    "DPOP_ALGORITHMS",
    "DPOP_MODES",
    "INVALID_DPOP_PROOF",
    "PLACES",
    "USE_DPOP_NONCE",
    "DpopProof",
    "access_token_hash",
    "dpop_challenge",
    "is_thumbprint",
    "jwk_thumbprint",
    "normalize_htu",
    "proof_header",
    "verify_proof",
]

DPOP_ALGORITHMS = ALGORITHMS
"""The proof signing algorithms (``dpop_signing_alg_values_supported``): asymmetric only."""

DPOP_MODES = (None, "optional", "required")
"""``StrictAuthServer(dpop=...)``: off, DPoP or Bearer, DPoP only."""

PLACES = ("token", "resource")
"""Where a proof is checked: the token endpoint or the MCP endpoint. Each has its own nonce."""

INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"

PROOF_TYPE = "dpop+jwt"
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# RFC 7638 §3.2: the required members of each key type, the only ones the thumbprint hashes.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (SHA-256, base64url without padding): the key type's
    required members, in lexicographic order, as JSON without whitespace. ValueError for a key type
    other than EC, RSA or OKP, or a required member that is missing or not a string."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError("the JWK's kty must be EC, RSA or OKP")
    values: Dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the JWK has no {name}")
        values[name] = value
    canonical = json.dumps(values, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def is_thumbprint(value: str) -> bool:
    """Whether ``value`` has the form of a SHA-256 JWK thumbprint (``dpop_jkt``, RFC 9449 §10)."""
    return bool(_THUMBPRINT.fullmatch(value))


def access_token_hash(access_token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url(SHA-256(the ASCII access token))."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest())


# ------------------------------------------------------------------------------------ htu


def _normalize_percent(text: str) -> str:
    """RFC 3986 §6.2.2.1-2: hex digits upper case, percent-encoded unreserved characters decoded."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(fix, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path."""
    output: List[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def normalize_htu(url: str) -> Optional[str]:
    """``url`` after syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3), the way RFC 9449
    §4.3 compares ``htu``: scheme and host in lower case, the default port dropped, an empty path made
    ``/``, percent-encodings normalised, dot segments removed; query and fragment left out. None for
    what is no absolute http(s) URL (or carries user information)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_percent(parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


# ---------------------------------------------------------------------------------- proofs


@dataclass(frozen=True)
class DpopProof:
    """A verified proof: its key's thumbprint, its ``jti`` and how long the ``jti`` must be remembered
    (until the proof would be refused as stale anyway)."""

    jkt: str
    jti: str
    algorithm: str
    issued_at: float
    keep_until: float


def proof_header(request: Request) -> Optional[str]:
    """The request's one ``DPoP`` header (None without one); ``invalid_dpop_proof`` for several."""
    values = request.header_values("DPoP")
    if not values:
        return None
    if len(values) > 1:
        raise OAuthError(INVALID_DPOP_PROOF, "more than one DPoP header")
    return values[0].strip()


def _refuse(description: str) -> OAuthError:
    return OAuthError(INVALID_DPOP_PROOF, description)


def _segment(text: str) -> Dict[str, Any]:
    if not text or "=" in text:
        raise ValueError("not base64url without padding")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    value = json.loads(raw.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _decode(token: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3 or not parts[2]:
        raise _refuse("the DPoP proof is not a signed JWT (three base64url parts)")
    try:
        return _segment(parts[0]), _segment(parts[1])
    except (ValueError, binascii.Error):  # JSON, UTF-8 and base64 errors are all ValueErrors
        raise _refuse("the DPoP proof is not a well-formed JWT") from None


def _check_type(header: Mapping[str, Any]) -> None:
    typ = header.get("typ")
    # RFC 7515 §4.1.9: media types compare case-insensitively, "application/" may be left out.
    if not isinstance(typ, str) or typ.lower() not in (PROOF_TYPE, "application/" + PROOF_TYPE):
        raise _refuse(f"the DPoP proof's typ must be {PROOF_TYPE}")


def _check_algorithm(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in DPOP_ALGORITHMS:
        shown = f" {alg!r}" if isinstance(alg, str) and alg.isalnum() and len(alg) <= 16 else ""
        raise _refuse(f"the DPoP proof's alg{shown} is not accepted (only {', '.join(DPOP_ALGORITHMS)})")
    return alg


def _proof_key(header: Mapping[str, Any], alg: str) -> Tuple[Any, str]:
    """The public key in the ``jwk`` header and its thumbprint, or ``invalid_dpop_proof``."""
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise _refuse("the DPoP proof has no jwk header (the public key)")
    private = [name for name in _PRIVATE_MEMBERS if name in jwk]
    if private:
        raise _refuse(f"the DPoP proof's jwk holds private key material ({', '.join(private)}): send the public key")
    try:
        key = load_public_key(jwk)
        thumbprint = jwk_thumbprint(jwk)
    except ValueError as exc:
        raise _refuse(f"the DPoP proof's jwk is not accepted: {exc}") from None
    if not key.fits(alg):
        raise _refuse(f"the DPoP proof's alg {alg} does not fit its jwk ({', '.join(key.algorithms)})")
    canonical = key.jwk
    for name in _THUMBPRINT_MEMBERS[canonical["kty"]]:
        if jwk.get(name) != canonical.get(name):  # e.g. an RSA n with a leading zero octet
            raise _refuse(f"the DPoP proof's jwk member {name} is not in its canonical form (RFC 7518 §6)")
    return key.key, thumbprint


def _check_signature(token: str, key: Any, alg: str) -> None:
    pyjwt = jwt_module("verifying a DPoP proof")
    try:
        pyjwt.PyJWS().decode(token, key, algorithms=[alg])
    except pyjwt.InvalidSignatureError:
        raise _refuse("the DPoP proof's signature does not verify with its jwk") from None
    except pyjwt.PyJWTError:
        raise _refuse("the DPoP proof is not a well-formed JWT") from None


def _string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise _refuse(f"the DPoP proof has no {name}")
    if not isinstance(value, str) or not value:
        raise _refuse(f"the DPoP proof's {name} must be a non-empty string")
    return value


def _issued_at(claims: Mapping[str, Any], now: float, window: float) -> float:
    value = claims.get("iat")
    if value is None:
        raise _refuse("the DPoP proof has no iat")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse("the DPoP proof's iat must be a number (seconds since the epoch)")
    issued_at = float(value)
    if issued_at < now - window:
        raise _refuse(f"the DPoP proof is stale: iat is more than {window:g} s in the past")
    if issued_at > now + window:
        raise _refuse(f"the DPoP proof was issued in the future: iat is more than {window:g} s ahead")
    return issued_at


def _check_target(claims: Mapping[str, Any], method: str, url: str) -> None:
    if _string_claim(claims, "htm") != method:
        raise _refuse(f"the DPoP proof's htm is not this request's method ({method})")
    htu = _string_claim(claims, "htu")
    if "?" in htu or "#" in htu:
        raise _refuse("the DPoP proof's htu must not carry a query or fragment")
    normalized = normalize_htu(htu)
    if normalized is None:
        raise _refuse("the DPoP proof's htu is not an absolute http(s) URL")
    if normalized != normalize_htu(url):
        raise _refuse(f"the DPoP proof's htu is not this request's URL ({url})")


def _check_nonce(claims: Mapping[str, Any], nonce: str, who: str) -> None:
    presented = claims.get("nonce")
    if presented is None:
        raise OAuthError(USE_DPOP_NONCE, f"the {who} requires a nonce in the DPoP proof (see the DPoP-Nonce header)")
    if presented != nonce:
        raise OAuthError(USE_DPOP_NONCE, "the DPoP proof's nonce is stale or unknown (see the DPoP-Nonce header)")


def _check_ath(claims: Mapping[str, Any], access_token: str) -> None:
    ath = claims.get("ath")
    if ath is None:
        raise _refuse("the DPoP proof has no ath (the access token's hash)")
    if ath != access_token_hash(access_token):
        raise _refuse("the DPoP proof's ath does not match the access token")


def verify_proof(
    token: str,
    *,
    method: str,
    url: str,
    now: float,
    window: float,
    nonce: Optional[str] = None,
    access_token: Optional[str] = None,
    who: str = "authorization server",
) -> DpopProof:
    """Check a DPoP proof in RFC 9449 §4.3 order: a JWT whose header has ``typ`` dpop+jwt, an accepted
    asymmetric ``alg`` and a public ``jwk`` it is signed with; claims ``jti``, ``htm`` = ``method``,
    ``htu`` = ``url`` (normalised; no query or fragment), ``nonce`` = ``nonce`` when one is required
    (else ``use_dpop_nonce``), ``iat`` within ``window`` seconds of ``now``, and at a resource (an
    ``access_token`` given) ``ath`` = its hash. Replay (``jti``) is the caller's check."""
    header, claims = _decode(token)
    _check_type(header)
    alg = _check_algorithm(header)
    key, thumbprint = _proof_key(header, alg)
    _check_signature(token, key, alg)
    jti = _string_claim(claims, "jti")
    _check_target(claims, method, url)
    if nonce is not None:
        _check_nonce(claims, nonce, who)
    issued_at = _issued_at(claims, now, window)
    if access_token is not None:
        _check_ath(claims, access_token)
    return DpopProof(jkt=thumbprint, jti=jti, algorithm=alg, issued_at=issued_at, keep_until=issued_at + window)


# ------------------------------------------------------------------------------- challenges


def _quoted(text: str) -> str:
    """A quoted-string parameter value: no double quotes, no backslashes (RFC 9110 §5.6.4)."""
    return '"' + text.replace("\\", "").replace('"', "'") + '"'


def dpop_challenge(
    resource_metadata_url: Optional[str],
    error: Optional[str] = None,
    description: Optional[str] = None,
    scope: Optional[str] = None,
) -> str:
    """A ``WWW-Authenticate: DPoP ...`` value (RFC 9449 §7.1): the error if any, then ``algs``, then
    ``resource_metadata`` (RFC 9728 §5.1) while the server serves its metadata."""
    parts: List[str] = []
    if error is not None:
        parts.append(f"error={_quoted(error)}")
    if description is not None:
        parts.append(f"error_description={_quoted(description)}")
    if scope is not None:
        parts.append(f"scope={_quoted(scope)}")
    parts.append(f"algs={_quoted(' '.join(DPOP_ALGORITHMS))}")
    if resource_metadata_url is not None:
        parts.append(f"resource_metadata={_quoted(resource_metadata_url)}")
    return "DPoP " + ", ".join(parts)
