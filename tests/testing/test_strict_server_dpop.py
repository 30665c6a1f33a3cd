"""The strict reference server's DPoP surface (RFC 9449) over real HTTP: proofs at the token endpoint
and at /mcp, DPoP-bound tokens for every grant, key binding of refresh chains and codes, nonces, replay,
and every way a proof is refused. Proofs are built here with PyJWT and cryptography directly,
independently of the server (which has its own thumbprint code: the two are checked against RFC
vectors and against each other)."""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from http.client import HTTPConnection
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from mcp_sync_auth.testing import (
    CLIENT_ASSERTION_TYPE,
    DPOP_ALGORITHMS,
    JWT_BEARER_GRANT,
    EventKind,
    StrictAuthServer,
    WorkloadIssuer,
)
from mcp_sync_auth.testing.dpop import jwk_thumbprint, normalize_htu

from ..clocks import SharedClock

MARKER = "DPOPLEAK"
STRICT_OPTIONS = {"dpop": "optional"}
LOOPBACK = "http://127.0.0.1:8765/callback"
ALGS = "ES256 RS256 PS256 EdDSA"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture
def holder():
    return Holder()


@pytest.fixture
def service(strict):
    """A confidential client_credentials client: (client_id, secret) for HTTP Basic."""
    client_id = strict.register_client(
        token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
    )
    return client_id, strict.get_client(client_id).client_secret


# ------------------------------------------------------------------------------------ helpers


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk):
    """RFC 7638, written here again so the server's is checked against something it does not share."""
    members = {name: jwk[name] for name in REQUIRED_MEMBERS[jwk["kty"]]}
    return b64(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def ath(token):
    return b64(hashlib.sha256(token.encode("ascii")).digest())


def public_jwk(private_key):
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public, as_dict=True)
    return OKPAlgorithm.to_jwk(public, as_dict=True)


class Holder:
    """A DPoP key pair as a client holds it: signs proofs with PyJWT, knows its public JWK and jkt."""

    def __init__(self, private_key=None, alg="ES256"):
        self.key = private_key if private_key is not None else ec.generate_private_key(ec.SECP256R1())
        self.alg = alg
        self.jwk = public_jwk(self.key)
        self.jkt = thumbprint(self.jwk)

    def proof(self, method, url, clock, *, token=None, nonce=None, omit=(), header=None, **claims):
        """A proof for ``method url`` at ``clock()``: a fresh jti, ``ath`` of ``token``, ``nonce``;
        ``claims`` replace, ``omit`` removes, ``header`` adds to or replaces the JOSE header."""
        payload = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(clock())}
        if token is not None:
            payload["ath"] = ath(token)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims)
        for name in omit:
            payload.pop(name)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=headers)

    def for_token(self, server, clock, **kwargs):
        return self.proof("POST", server.token_endpoint, clock, **kwargs)

    def for_mcp(self, server, clock, token, **kwargs):
        return self.proof("POST", server.mcp_url, clock, token=token, **kwargs)


def hand_made(header, payload, sign=None):
    """A compact JWS made by hand (for what PyJWT rightly refuses to sign); ``sign`` maps the signing
    input to a signature (none: an empty one)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode("ascii")) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def token_request(http, server, data, proof=None, auth=None):
    headers = {} if proof is None else {"DPoP": proof}
    return http.post(server.token_endpoint, data=data, auth=auth, headers=headers, timeout=10)


def client_credentials(http, server, service, proof=None, **data):
    body = {"grant_type": "client_credentials", "resource": server.mcp_url, **data}
    return token_request(http, server, body, proof, auth=service)


def mcp(http, server, token, proof=None, scheme="DPoP", name="echo"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"text": "hi"}}}
    headers = {"Accept": ACCEPT}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    if proof is not None:
        headers["DPoP"] = proof
    return http.post(server.mcp_url, json=body, headers=headers, timeout=10)


def challenges(response):
    """The WWW-Authenticate fields, one per challenge, as sent."""
    return response.raw.headers.getlist("WWW-Authenticate")


def assert_refused(response, status, error, words, *secrets_sent):
    """An error answer with ``error`` whose description says ``words``, quoting nothing that was sent
    (no part of a proof or token, in the body or a header)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert words in body["error_description"], body
    shown = response.text + " ".join(challenges(response))
    for sent in secrets_sent:
        for part in sent.split("."):
            if len(part) >= 8:
                assert part not in shown
    return body["error_description"]


def assert_dpop_refusal(response, error, words, *secrets_sent, server):
    """A 401 from /mcp whose DPoP challenge carries ``error`` (with ``algs`` and resource_metadata)."""
    description = assert_refused(response, 401, error, words, *secrets_sent)
    dpop = [value for value in challenges(response) if value.startswith("DPoP ")]
    assert dpop == [
        f'DPoP error="{error}", error_description="{description}", algs="{ALGS}", '
        f'resource_metadata="{server.resource_metadata_url}"'
    ]


def dpop_tokens(http, server, service, holder, clock):
    response = client_credentials(http, server, service, holder.for_token(server, clock))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return response.json()["access_token"]


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    return verifier, b64(hashlib.sha256(verifier.encode("ascii")).digest())


def authorize(http, server, client_id, **extra):
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": LOOPBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st",
        "resource": server.mcp_url,
        **extra,
    }
    response = http.get(server.authorization_endpoint, params=query, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["Location"]).query), verifier


def get_code(http, server, client_id, **extra):
    reply, verifier = authorize(http, server, client_id, **extra)
    return reply["code"][0], verifier


def exchange(http, server, client_id, code, verifier, proof=None):
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": LOOPBACK,
        "code_verifier": verifier,
        "resource": server.mcp_url,
        "client_id": client_id,
    }
    return token_request(http, server, body, proof)


def refresh(http, server, client_id, refresh_token, proof=None):
    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "resource": server.mcp_url,
        "client_id": client_id,
    }
    return token_request(http, server, body, proof)


def logged_in(http, server, clock, holder):
    """A public client's code flow with proofs of ``holder``'s key: (client_id, token response)."""
    client_id = server.register_client(redirect_uris=[LOOPBACK])
    code, verifier = get_code(http, server, client_id)
    response = exchange(http, server, client_id, code, verifier, holder.for_token(server, clock))
    assert response.status_code == 200, response.text
    return client_id, response.json()


def raw_post(server, path, headers, body=b""):
    """A POST with exactly these header fields (requests cannot send one name twice)."""
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


# ------------------------------------------------------------------------- thumbprints, htu


def test_thumbprints_match_the_rfc_examples_and_the_tests_own():
    # RFC 9449 §6.1 (the key of its example proofs), RFC 7638 §3.1, RFC 8037 Appendix A.3.
    examples = [
        (
            {
                "kty": "EC",
                "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
                "crv": "P-256",
            },
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
        ),
        (
            {
                "kty": "RSA",
                "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWK"
                "RXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
                "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPks"
                "INHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
                "e": "AQAB",
                "alg": "RS256",
                "kid": "2011-04-29",
            },
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        ),
        (
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
        ),
    ]
    for jwk, expected in examples:
        assert jwk_thumbprint(jwk) == expected
        assert thumbprint(jwk) == expected
    for key in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()):
        assert jwk_thumbprint(public_jwk(key)) == thumbprint(public_jwk(key))
    for bad in ({"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256", "x": "AA"}, {}):
        with pytest.raises(ValueError):
            jwk_thumbprint(bad)


def test_htu_normalisation():
    assert normalize_htu("HTTP://Example.COM:80") == "http://example.com/"
    assert normalize_htu("https://example.com:443/a/./b/../c") == "https://example.com/a/c"
    assert normalize_htu("http://example.com:8080/%7euser/%2f") == "http://example.com:8080/~user/%2F"
    assert normalize_htu("https://[::1]:443/x") == "https://[::1]/x"
    assert normalize_htu("http://example.com/Token") != normalize_htu("http://example.com/token")
    for not_absolute in ("/token", "ftp://example.com/", "http://user@example.com/", "http://:80/", "http://e:x/"):
        assert normalize_htu(not_absolute) is None, not_absolute


# ------------------------------------------------------------------------------------ metadata


def test_metadata_advertises_dpop_as_configured(clock, http):
    with StrictAuthServer(clock=clock) as server:
        documents = (server.authorization_server_metadata(), server.protected_resource_metadata())
        assert not any(name.startswith("dpop") for document in documents for name in document)
        assert server.dpop is None
        server.dpop = "optional"
        as_document = http.get(server.authorization_server_metadata_url, timeout=10).json()
        prm = http.get(server.resource_metadata_url, timeout=10).json()
        assert as_document["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]
        assert prm["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]
        assert "dpop_bound_access_tokens_required" not in prm
        server.dpop = "required"
        prm = http.get(server.resource_metadata_url, timeout=10).json()
        assert prm["dpop_bound_access_tokens_required"] is True
        assert list(DPOP_ALGORITHMS) == ALGS.split()
        with pytest.raises(ValueError, match="dpop must be one of"):
            server.dpop = "sometimes"
        for window in (0, -1, float("inf")):
            with pytest.raises(ValueError, match="dpop_proof_window"):
                server.dpop_proof_window = window
        assert server.dpop == "required" and server.dpop_proof_window == 60.0
    with StrictAuthServer(dpop="required", dpop_nonce_at_token=True, dpop_proof_window=5) as server:
        assert (server.dpop, server.dpop_nonce_at_token, server.dpop_nonce_at_resource) == ("required", True, False)
        assert server.dpop_proof_window == 5.0
        with pytest.raises(ValueError, match="place"):
            server.dpop_nonce("authorize")


# ------------------------------------------------------------------------ token endpoint: ok


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("ES256", lambda rsa_key: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda rsa_key: rsa_key),
        ("PS256", lambda rsa_key: rsa_key),
        ("EdDSA", lambda rsa_key: ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_a_proof_gets_dpop_tokens_that_work_at_mcp(strict, http, clock, service, rsa_key, alg, make_key):
    holder = Holder(make_key(rsa_key), alg)
    response = client_credentials(http, strict, service, holder.for_token(strict, clock))
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "DPoP" and set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
    access = tokens["access_token"]
    called = mcp(http, strict, access, holder.for_mcp(strict, clock, access))
    assert called.status_code == 200, called.text
    assert called.json()["result"]["content"][0]["text"] == "hi"
    dpop = strict.audit.dpop
    assert dpop.proofs_accepted == 2 and dpop.accepted_at == {"token": 1, "resource": 1}
    assert dpop.keys == (holder.jkt,) and dpop.replays == 0 and dpop.proofs_refused == 0
    (granted,) = strict.audit.events_of(EventKind.GRANT_OK)
    assert granted.detail.endswith(f"jkt={holder.jkt}")


def test_without_a_proof_optional_dpop_gives_bearer_tokens(strict, http, clock, service, holder):
    response = client_credentials(http, strict, service)
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"
    access = response.json()["access_token"]
    assert mcp(http, strict, access, scheme="Bearer").status_code == 200
    # An unbound token under the DPoP scheme is refused, whatever the proof.
    refused = mcp(http, strict, access, holder.for_mcp(strict, clock, access))
    assert_dpop_refusal(refused, "invalid_token", "not DPoP-bound: send it as Authorization: Bearer", server=strict)
    assert strict.audit.dpop.proofs_accepted == 1  # the proof itself was good


def test_the_code_flow_binds_the_whole_chain(strict, http, clock, holder):
    client_id, tokens = logged_in(http, strict, clock, holder)
    assert tokens["token_type"] == "DPoP" and "refresh_token" in tokens
    (chain,) = strict.chains()
    assert chain.dpop_jkt == holder.jkt
    access = tokens["access_token"]
    assert mcp(http, strict, access, holder.for_mcp(strict, clock, access)).status_code == 200

    rotated = refresh(http, strict, client_id, tokens["refresh_token"], holder.for_token(strict, clock))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["token_type"] == "DPoP" and rotated.json()["refresh_token"] != tokens["refresh_token"]
    fresh = rotated.json()["access_token"]
    assert mcp(http, strict, fresh, holder.for_mcp(strict, clock, fresh)).status_code == 200
    assert [chain.generation for chain in strict.chains()] == [1]
    assert strict.audit.dpop.proofs_accepted == 4


def test_the_jwt_bearer_grant_and_minted_tokens_can_be_bound(strict, http, clock, holder):
    workload = WorkloadIssuer("https://workload.example", clock=clock)
    strict.trust_workload_issuer(workload)
    body = {
        "grant_type": JWT_BEARER_GRANT,
        "assertion": workload.mint("wl", audience=strict.token_endpoint),
        "resource": strict.mcp_url,
    }
    response = token_request(http, strict, body, holder.for_token(strict, clock))
    assert response.status_code == 200 and response.json()["token_type"] == "DPoP", response.text
    access = response.json()["access_token"]
    assert mcp(http, strict, access, holder.for_mcp(strict, clock, access)).status_code == 200

    client_id = strict.register_client()
    minted = strict.mint_tokens(client_id, dpop_jkt=holder.jkt)
    assert minted["token_type"] == "DPoP"
    assert mcp(http, strict, minted["access_token"], scheme="Bearer").status_code == 401
    proof = holder.for_mcp(strict, clock, minted["access_token"])
    assert mcp(http, strict, minted["access_token"], proof).status_code == 200
    chained = refresh(http, strict, client_id, minted["refresh_token"], holder.for_token(strict, clock))
    assert chained.status_code == 200 and chained.json()["token_type"] == "DPoP"
    with pytest.raises(ValueError, match="thumbprint"):
        strict.mint_tokens(client_id, dpop_jkt="not-a-thumbprint")


# --------------------------------------------------------------------- refresh key binding


def test_a_refresh_with_another_key_or_none_is_refused_without_rotation(strict, http, clock, holder):
    client_id, tokens = logged_in(http, strict, clock, holder)
    refresh_token = tokens["refresh_token"]
    thief = Holder()
    refused = refresh(http, strict, client_id, refresh_token, thief.for_token(strict, clock))
    assert_refused(refused, 400, "invalid_grant", "not the one the refresh token is bound to", refresh_token)
    bare = refresh(http, strict, client_id, refresh_token)
    assert_refused(bare, 400, "invalid_grant", "DPoP-bound: a DPoP proof of its key is needed", refresh_token)
    (chain,) = strict.chains()
    assert chain.alive and chain.generation == 0  # nothing rotated, nothing revoked
    dpop = strict.audit.dpop
    assert dpop.key_mismatches == 2 and strict.audit.reuse_detections == 0
    mismatches = strict.audit.events_of(EventKind.DPOP_KEY_MISMATCH)
    assert [event.detail.endswith(f"proof jkt={thief.jkt}") for event in mismatches] == [True, False]
    assert mismatches[1].detail.endswith("proof jkt=(no proof)")
    assert all(refresh_token not in event.detail for event in strict.audit.events)
    # The chain survives: the right key still refreshes the very same refresh token.
    rotated = refresh(http, strict, client_id, refresh_token, holder.for_token(strict, clock))
    assert rotated.status_code == 200 and rotated.json()["token_type"] == "DPoP", rotated.text
    assert strict.chains()[0].generation == 1 and strict.audit.reuse_detections == 0
    # The spent token again: without its key that proves nothing (no reuse detection, the chain
    # lives); with its key it is reuse, and the chain is revoked as for any refresh token.
    stolen = refresh(http, strict, client_id, refresh_token, thief.for_token(strict, clock))
    assert_refused(stolen, 400, "invalid_grant", "not the one the refresh token is bound to")
    assert strict.chains()[0].alive and strict.audit.dpop.key_mismatches == 3
    reused = refresh(http, strict, client_id, refresh_token, holder.for_token(strict, clock))
    assert_refused(reused, 400, "invalid_grant", "reuse detected")
    assert not strict.chains()[0].alive and strict.audit.reuse_detections == 1


def test_a_bearer_chain_stays_bearer_and_is_refused_once_dpop_is_required(strict, http, clock, holder):
    client_id = strict.register_client(redirect_uris=[LOOPBACK])
    code, verifier = get_code(http, strict, client_id)
    tokens = exchange(http, strict, client_id, code, verifier).json()
    assert tokens["token_type"] == "Bearer" and strict.chains()[0].dpop_jkt is None
    # A proof on an unbound refresh token is checked (and spent), but binds nothing: still Bearer.
    proof = holder.for_token(strict, clock)
    kept = refresh(http, strict, client_id, tokens["refresh_token"], proof)
    assert kept.status_code == 200 and kept.json()["token_type"] == "Bearer", kept.text
    assert mcp(http, strict, kept.json()["access_token"], scheme="Bearer").status_code == 200
    assert strict.chains()[0].dpop_jkt is None and strict.audit.dpop.proofs_accepted == 1
    bad = refresh(http, strict, client_id, kept.json()["refresh_token"], proof)  # a replayed proof
    assert_refused(bad, 400, "invalid_dpop_proof", "replay", proof)
    strict.dpop = "required"
    refused = refresh(http, strict, client_id, kept.json()["refresh_token"], holder.for_token(strict, clock))
    assert_refused(refused, 400, "invalid_grant", "not DPoP-bound and DPoP is required")
    assert strict.chains()[0].generation == 1


# -------------------------------------------------------------------------- dpop_jkt (§10)


def test_dpop_jkt_binds_the_code_to_a_key(strict, http, clock, holder):
    client_id = strict.register_client(redirect_uris=[LOOPBACK])
    code, verifier = get_code(http, strict, client_id, dpop_jkt=holder.jkt)
    assert strict.audit.last_authorization_params["dpop_jkt"] == holder.jkt
    other = exchange(http, strict, client_id, code, verifier, Holder().for_token(strict, clock))
    assert_refused(other, 400, "invalid_grant", "not the one the authorization request named", code)
    bare = exchange(http, strict, client_id, code, verifier)
    assert_refused(bare, 400, "invalid_grant", "not the one the authorization request named", code)
    assert strict.audit.dpop.key_mismatches == 2
    # Neither spent the code: the key it names still exchanges it, once.
    tokens = exchange(http, strict, client_id, code, verifier, holder.for_token(strict, clock))
    assert tokens.status_code == 200 and tokens.json()["token_type"] == "DPoP", tokens.text
    assert strict.chains()[0].dpop_jkt == holder.jkt
    again = exchange(http, strict, client_id, code, verifier, holder.for_token(strict, clock))
    assert_refused(again, 400, "invalid_grant", "already used", code)

    reply, _ = authorize(http, strict, client_id, dpop_jkt="too-short")
    assert reply["error"] == ["invalid_request"] and "dpop_jkt" in reply["error_description"][0]
    strict.dpop = None  # an unknown parameter to a server without DPoP: ignored
    code, verifier = get_code(http, strict, client_id, dpop_jkt="too-short")
    assert exchange(http, strict, client_id, code, verifier).json()["token_type"] == "Bearer"


# ---------------------------------------------------------------------------- proofs: refused


def test_a_replayed_proof_is_refused_at_the_token_endpoint(strict, http, clock, service, holder):
    proof = holder.for_token(strict, clock)
    assert client_credentials(http, strict, service, proof).status_code == 200
    assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", "replay", proof)
    # The same jti from another client with another key is a replay too: one jti cache for all.
    jti = jwt.decode(proof, options={"verify_signature": False})["jti"]
    other_service = strict.register_client(
        token_endpoint_auth_method="client_secret_post", grant_types=["client_credentials"]
    )
    secret = strict.get_client(other_service).client_secret
    stranger = Holder().for_token(strict, clock, jti=jti)
    body = {"client_id": other_service, "client_secret": secret}
    refused = client_credentials(http, strict, None, stranger, **body)
    assert_refused(refused, 400, "invalid_dpop_proof", "replay", stranger)
    dpop = strict.audit.dpop
    assert dpop.replays == 2 and dpop.proofs_accepted == 1
    events = strict.audit.events_of(EventKind.DPOP_REPLAYED)
    assert len(events) == 2 and all(jti not in event.detail for event in events)
    # Remembered only as long as the proof would be accepted: later, the old one is refused as stale.
    clock.advance(61)
    assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", "stale", proof)
    assert client_credentials(http, strict, service, holder.for_token(strict, clock, jti=jti)).status_code == 200


def test_a_replayed_proof_is_refused_at_the_resource(strict, http, clock, service, holder):
    access = dpop_tokens(http, strict, service, holder, clock)
    proof = holder.for_mcp(strict, clock, access)
    assert mcp(http, strict, access, proof).status_code == 200
    assert_dpop_refusal(mcp(http, strict, access, proof), "invalid_dpop_proof", "replay", proof, server=strict)
    # A token request's jti cannot be used again at the resource either.
    token_proof = holder.for_token(strict, clock)
    assert client_credentials(http, strict, service, token_proof).status_code == 200
    jti = jwt.decode(token_proof, options={"verify_signature": False})["jti"]
    reused = holder.for_mcp(strict, clock, access, jti=jti)
    assert_dpop_refusal(mcp(http, strict, access, reused), "invalid_dpop_proof", "replay", reused, server=strict)
    assert strict.audit.dpop.replays == 2 and strict.audit.mcp_unauthorized == 2


def test_concurrent_presentations_of_one_proof_are_accepted_once(strict, clock, service, holder):
    proof = holder.for_token(strict, clock)
    barrier = threading.Barrier(8)
    statuses = []

    def present():
        with requests.Session() as session:
            barrier.wait(10)
            statuses.append(client_credentials(session, strict, service, proof).status_code)

    threads = [threading.Thread(target=present) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [400] * 7
    assert strict.audit.dpop.replays == 7 and strict.audit.dpop.proofs_accepted == 1


def test_htm_and_htu_must_name_this_request(strict, http, clock, service, holder):
    port = strict.port
    for method, url, words in [
        ("GET", strict.token_endpoint, "htm is not this request's method (POST)"),
        ("post", strict.token_endpoint, "htm is not"),
        ("POST", strict.mcp_url, "htu is not this request's URL"),
        ("POST", f"http://localhost:{port}/token", "htu is not this request's URL"),
        ("POST", f"https://127.0.0.1:{port}/token", "htu is not this request's URL"),
        ("POST", f"http://127.0.0.1:{port + 1}/token", "htu is not this request's URL"),
        ("POST", f"http://127.0.0.1:{port}/Token", "htu is not this request's URL"),
        ("POST", strict.token_endpoint + "?x=1", "must not carry a query or fragment"),
        ("POST", strict.token_endpoint + "#top", "must not carry a query or fragment"),
        ("POST", "/token", "not an absolute http(s) URL"),
    ]:
        proof = holder.proof(method, url, clock)
        assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", words, proof)
    for variant in (
        f"HTTP://127.0.0.1:{port}/token",
        f"http://127.0.0.1:{port}/%74oken",
        f"http://127.0.0.1:{port}/x/../token",
    ):
        accepted = client_credentials(http, strict, service, holder.proof("POST", variant, clock))
        assert accepted.status_code == 200, (variant, accepted.text)
    # At the resource the proof must name /mcp (and the method used there).
    access = dpop_tokens(http, strict, service, holder, clock)
    for method, url in (("POST", strict.token_endpoint), ("GET", strict.mcp_url)):
        proof = holder.proof(method, url, clock, token=access)
        assert_dpop_refusal(
            mcp(http, strict, access, proof), "invalid_dpop_proof", "is not this request's", server=strict
        )
    mcp_body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"DPoP {access}", "DPoP": holder.for_mcp(strict, clock, access)}
    query = http.post(strict.mcp_url + "?trace=1", json=mcp_body, headers=headers, timeout=10)
    assert query.status_code == 200, query.text  # the request's query is no part of the htu
    get = http.get(strict.mcp_url, headers={"Authorization": f"DPoP {access}", "DPoP": proof}, timeout=10)
    assert get.status_code == 405  # a GET proof for a GET: authorized, then refused as a method
    assert strict.audit.dpop.proofs_refused == 12


def test_iat_must_be_within_the_window(strict, http, clock, service, holder):
    now = clock.now
    for iat, words in [
        (now - 61, "stale: iat is more than 60 s in the past"),
        (now + 61, "issued in the future: iat is more than 60 s ahead"),
        ("yesterday", "iat must be a number"),
        (True, "iat must be a number"),
    ]:
        proof = holder.for_token(strict, clock, iat=iat)
        assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", words, proof)
    proof = holder.for_token(strict, clock, omit=["iat"])
    assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", "has no iat", proof)
    for iat in (now - 60, now + 60, now - 0.5):
        assert client_credentials(http, strict, service, holder.for_token(strict, clock, iat=iat)).status_code == 200
    strict.dpop_proof_window = 10
    proof = holder.for_token(strict, clock, iat=now - 11)
    assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", "more than 10 s", proof)


def test_required_claims(strict, http, clock, service, holder):
    for claim in ("jti", "htm", "htu"):
        proof = holder.for_token(strict, clock, omit=[claim])
        refused = client_credentials(http, strict, service, proof)
        assert_refused(refused, 400, "invalid_dpop_proof", f"has no {claim}", proof)
        proof = holder.for_token(strict, clock, **{claim: 42})
        refused = client_credentials(http, strict, service, proof)
        assert_refused(refused, 400, "invalid_dpop_proof", f"{claim} must be a non-empty string", proof)
    assert strict.audit.dpop.proofs_refused == 6 and strict.audit.grants_failed == {"client_credentials": 6}


def test_ath_must_be_the_access_tokens_hash(strict, http, clock, service, holder):
    access = dpop_tokens(http, strict, service, holder, clock)
    other = dpop_tokens(http, strict, service, holder, clock)
    missing = holder.for_mcp(strict, clock, None)
    assert_dpop_refusal(mcp(http, strict, access, missing), "invalid_dpop_proof", "has no ath", server=strict)
    for wrong in (holder.for_mcp(strict, clock, other), holder.for_mcp(strict, clock, access, ath="x" * 43)):
        refused = mcp(http, strict, access, wrong)
        assert_dpop_refusal(refused, "invalid_dpop_proof", "ath does not match", access, wrong, server=strict)
    assert mcp(http, strict, access, holder.for_mcp(strict, clock, access)).status_code == 200


def test_a_jwk_with_private_members_is_refused(strict, http, clock, service, rsa_key):
    for key, alg, members in [
        (ec.generate_private_key(ec.SECP256R1()), "ES256", "d"),
        (rsa_key, "RS256", "d, p, q, dp, dq, qi"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA", "d"),
    ]:
        holder = Holder(key, alg)
        private = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key))
        proof = holder.for_token(strict, clock, header={"jwk": private})
        refused = client_credentials(http, strict, service, proof)
        assert_refused(refused, 400, "invalid_dpop_proof", f"private key material ({members})", proof)
        assert private["d"] not in refused.text


def test_unsigned_hmac_and_mismatched_algorithms_are_refused(strict, http, clock, service, holder, rsa_key):
    now = int(clock.now)
    payload = {"jti": "j1", "htm": "POST", "htu": strict.token_endpoint, "iat": now}
    header = {"typ": "dpop+jwt", "jwk": holder.jwk}
    unsigned = hand_made({**header, "alg": "none"}, payload)
    # The classic confusion: an HMAC keyed with the public key the proof carries.
    mac_key = json.dumps(holder.jwk).encode()
    hs256 = hand_made(
        {**header, "alg": "HS256"}, payload, lambda data: hmac.new(mac_key, data, hashlib.sha256).digest()
    )
    no_alg = hand_made(header, payload, lambda data: b"sig")
    for proof, words in [
        (unsigned, "not a signed JWT"),
        (hand_made({**header, "alg": "none"}, payload, lambda data: b"x"), "alg 'none' is not accepted"),
        (hs256, "alg 'HS256' is not accepted"),
        (no_alg, "alg is not accepted"),
        (Holder(rsa_key, "RS256").for_token(strict, clock, header={"jwk": holder.jwk}), "alg RS256 does not fit"),
    ]:
        assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", words, proof)
    # Signed by one key, carrying another's jwk: the signature does not verify with the jwk.
    forged = Holder().for_token(strict, clock, header={"jwk": holder.jwk})
    refused = client_credentials(http, strict, service, forged)
    assert_refused(refused, 400, "invalid_dpop_proof", "signature does not verify with its jwk", forged)
    assert strict.audit.dpop.proofs_refused == 6 and strict.audit.dpop.proofs_accepted == 0


def test_the_jose_header_must_be_a_dpop_proofs(strict, http, clock, service, holder):
    p384 = ec.generate_private_key(ec.SECP384R1())
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    padded = {**holder.jwk, "x": b64(b"\0" + base64.urlsafe_b64decode(holder.jwk["x"] + "=="))}
    for header, words in [
        ({"typ": "JWT"}, "typ must be dpop+jwt"),
        ({"typ": ""}, "typ must be dpop+jwt"),
        ({"jwk": None}, "has no jwk header"),
        ({"jwk": "not-an-object"}, "has no jwk header"),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, "private key material (k)"),
        ({"jwk": ECAlgorithm.to_jwk(p384.public_key(), as_dict=True)}, "P-256"),
        ({"jwk": RSAAlgorithm.to_jwk(small_rsa.public_key(), as_dict=True)}, "at least 2048 bits"),
        ({"jwk": {**holder.jwk, "alg": "ES384"}}, "jwk is not accepted"),
        ({"jwk": padded}, "jwk is not accepted"),
    ]:
        proof = holder.for_token(strict, clock, header=header)
        assert_refused(client_credentials(http, strict, service, proof), 400, "invalid_dpop_proof", words, proof)
    for typ in ("DPoP+JWT", "application/dpop+jwt"):  # RFC 7515 §4.1.9: compared as a media type
        proof = holder.for_token(strict, clock, header={"typ": typ})
        assert client_credentials(http, strict, service, proof).status_code == 200


def test_an_rsa_jwk_must_be_canonical(strict, http, clock, service, rsa_key):
    holder = Holder(rsa_key, "RS256")
    n = base64.urlsafe_b64decode(holder.jwk["n"] + "==")
    leading_zero = {**holder.jwk, "n": b64(b"\0" + n)}  # the same key; RFC 7518 §6.3.1.1 forbids it
    proof = holder.for_token(strict, clock, header={"jwk": leading_zero})
    refused = client_credentials(http, strict, service, proof)
    assert_refused(refused, 400, "invalid_dpop_proof", "jwk member n is not in its canonical form", proof)
    assert client_credentials(http, strict, service, holder.for_token(strict, clock)).status_code == 200


def test_malformed_proofs_and_several_dpop_headers(strict, http, clock, service, holder):
    good = holder.for_token(strict, clock)
    header, payload, signature = good.split(".")
    for bad, words in [
        ("garbage", "not a signed JWT"),
        (f"{header}.{payload}", "not a signed JWT"),
        (f"{header}.{payload}.{signature}.more", "not a signed JWT"),
        (f"{header}.%%%.{signature}", "not a well-formed JWT"),
        (f"{header}.{b64(b'[1]')}.{signature}", "not a well-formed JWT"),
        (f"{header}=.{payload}.{signature}", "not a well-formed JWT"),
        (f"{header}.{payload}.{signature[:-4]}AAAA", "signature does not verify"),
    ]:
        assert_refused(client_credentials(http, strict, service, bad), 400, "invalid_dpop_proof", words, good)
    basic = "Basic " + base64.b64encode(f"{service[0]}:{service[1]}".encode()).decode()
    form = urlencode({"grant_type": "client_credentials", "resource": strict.mcp_url}).encode()
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", basic),
        ("DPoP", good),
        ("DPoP", holder.for_token(strict, clock)),
    ]
    status, body = raw_post(strict, "/token", headers, form)
    assert (status, body["error"], body["error_description"]) == (
        400,
        "invalid_dpop_proof",
        "more than one DPoP header",
    )
    assert client_credentials(http, strict, service, good).status_code == 200  # none of those spent it


# -------------------------------------------------------------------------- resource binding


def test_a_dpop_bound_token_sent_as_bearer_is_refused_and_counted(strict, http, clock, service, holder):
    access = dpop_tokens(http, strict, service, holder, clock)
    refused = mcp(http, strict, access, scheme="Bearer")
    description = assert_refused(refused, 401, "invalid_token", "DPoP-bound: send it as Authorization: DPoP", access)
    meta = f'resource_metadata="{strict.resource_metadata_url}"'
    assert challenges(refused) == [
        f'Bearer {meta}, error="invalid_token", error_description="{description}"',
        f'DPoP algs="{ALGS}", {meta}',
    ]
    # A proof alongside does not help: the scheme says Bearer.
    with_proof = mcp(http, strict, access, holder.for_mcp(strict, clock, access), scheme="Bearer")
    assert with_proof.status_code == 401
    assert strict.audit.dpop.bound_as_bearer == 2
    (event, _) = strict.audit.events_of(EventKind.DPOP_BOUND_AS_BEARER)
    assert event.client_id == service[0] and access not in event.detail
    strict.dpop = "required"
    refused = mcp(http, strict, access, scheme="Bearer")
    assert_dpop_refusal(refused, "invalid_token", "DPoP-bound", access, server=strict)
    assert strict.audit.dpop.bound_as_bearer == 3


def test_the_proof_key_must_be_the_one_the_access_token_is_bound_to(strict, http, clock, service, holder):
    access = dpop_tokens(http, strict, service, holder, clock)
    thief = Holder()
    proof = thief.for_mcp(strict, clock, access)  # a perfectly good proof, of the wrong key
    assert_dpop_refusal(mcp(http, strict, access, proof), "invalid_token", "invalid DPoP key binding", server=strict)
    dpop = strict.audit.dpop
    assert dpop.key_mismatches == 1 and dpop.proofs_accepted == 2
    (event,) = strict.audit.events_of(EventKind.DPOP_KEY_MISMATCH)
    assert event.detail == f"resource: access token bound to jkt={holder.jkt}, proof jkt={thief.jkt}"
    missing = mcp(http, strict, access)
    assert_dpop_refusal(missing, "invalid_dpop_proof", "a DPoP proof is required with the DPoP scheme", server=strict)
    assert strict.audit.dpop.proofs_missing == 1


def test_expired_revoked_and_unknown_dpop_tokens_are_invalid_token(strict, http, clock, service, holder):
    access = dpop_tokens(http, strict, service, holder, clock)
    unknown = MARKER + "x" * 20
    refused = mcp(http, strict, unknown, holder.for_mcp(strict, clock, unknown))
    assert_dpop_refusal(refused, "invalid_token", "unknown access token", server=strict)
    strict.revoke_access_tokens()
    refused = mcp(http, strict, access, holder.for_mcp(strict, clock, access))
    assert_dpop_refusal(refused, "invalid_token", "access token revoked", server=strict)
    fresh = dpop_tokens(http, strict, service, holder, clock)
    clock.advance(61)
    refused = mcp(http, strict, fresh, holder.for_mcp(strict, clock, fresh))
    assert_dpop_refusal(refused, "invalid_token", "access token expired", server=strict)
    malformed = mcp(http, strict, "not a token", holder.for_mcp(strict, clock, "x"))
    assert_dpop_refusal(malformed, "invalid_token", "malformed access token", server=strict)


def test_insufficient_scope_for_a_dpop_token_is_a_dpop_challenge(clock, http, holder):
    with StrictAuthServer(clock=clock, dpop="optional", required_scopes={"tools/call": ["admin"]}) as server:
        service = server.register_client(
            token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
        )
        access = dpop_tokens(http, server, (service, server.get_client(service).client_secret), holder, clock)
        denied = mcp(http, server, access, holder.for_mcp(server, clock, access))
        assert denied.status_code == 403
        meta = f'resource_metadata="{server.resource_metadata_url}"'
        assert challenges(denied) == [f'DPoP error="insufficient_scope", scope="admin", algs="{ALGS}", {meta}']


# ---------------------------------------------------------------------------- 401 challenges


def test_challenges_without_credentials(clock, http):
    with StrictAuthServer(clock=clock, dpop="optional") as server:
        meta = f'resource_metadata="{server.resource_metadata_url}"'
        for token in (None, "x"):
            scheme = "Basic" if token else "DPoP"
            answer = mcp(http, server, token, scheme=scheme)
            assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
            assert challenges(answer) == [f"Bearer {meta}", f'DPoP algs="{ALGS}", {meta}']
        server.dpop = "required"
        assert challenges(mcp(http, server, None)) == [f'DPoP algs="{ALGS}", {meta}']
        server.serve_metadata = False
        assert challenges(mcp(http, server, None)) == [f'DPoP algs="{ALGS}"']
        server.dpop = None
        assert challenges(mcp(http, server, None)) == ["Bearer"]
        status, body = raw_post(server, "/mcp", [("Authorization", "DPoP a"), ("Authorization", "DPoP b")])
        assert status == 401 and body["error"] == "invalid_token"


# -------------------------------------------------------------------------------- required


def test_required_dpop_refuses_requests_without_proofs(clock, http, holder):
    with StrictAuthServer(clock=clock, dpop="required") as server:
        service = server.register_client(
            token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
        )
        auth = (service, server.get_client(service).client_secret)
        refused = client_credentials(http, server, auth)
        assert_refused(refused, 400, "invalid_dpop_proof", "a DPoP proof is required")
        assert refused.headers["Cache-Control"] == "no-store" and "DPoP-Nonce" not in refused.headers
        assert server.audit.dpop.proofs_missing == 1 and server.audit.grants_failed == {"client_credentials": 1}
        (event,) = server.audit.events_of(EventKind.DPOP_PROOF_REFUSED)
        assert event.client_id == service and event.detail.startswith("token: a DPoP proof is required")
        # A Bearer token (here minted before DPoP was required, in effect) is not accepted at /mcp.
        bearer = server.mint_tokens(server.register_client())["access_token"]
        assert_dpop_refusal(
            mcp(http, server, bearer, scheme="Bearer"), "invalid_token", "DPoP-bound access tokens only", server=server
        )
        access = dpop_tokens(http, server, auth, holder, clock)
        assert mcp(http, server, access, holder.for_mcp(server, clock, access)).status_code == 200
        unbound = mcp(http, server, bearer, holder.for_mcp(server, clock, bearer))
        assert_dpop_refusal(unbound, "invalid_token", "the access token is not DPoP-bound", server=server)


def test_dpop_off_ignores_proofs(clock, http, holder):
    with StrictAuthServer(clock=clock) as server:
        service = server.register_client(
            token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
        )
        auth = (service, server.get_client(service).client_secret)
        response = client_credentials(http, server, auth, "not even a JWT")
        assert response.status_code == 200 and response.json()["token_type"] == "Bearer"
        access = response.json()["access_token"]
        assert mcp(http, server, access, scheme="DPoP").status_code == 401  # an unknown scheme here
        assert mcp(http, server, access, scheme="Bearer").status_code == 200
        assert server.audit.dpop.proofs_accepted == 0 and server.audit.dpop.proofs_refused == 0
        # Bound before DPoP was turned off: bound still, and no proof is read any more.
        client_id = server.register_client()
        minted = server.mint_tokens(client_id, dpop_jkt=holder.jkt)
        refused = refresh(http, server, client_id, minted["refresh_token"], holder.for_token(server, clock))
        assert_refused(refused, 400, "invalid_grant", "a DPoP proof of its key is needed")


# ---------------------------------------------------------------------------------- nonces


def test_the_nonce_flow_at_the_token_endpoint(clock, http, holder):
    with StrictAuthServer(clock=clock, dpop="optional", dpop_nonce_at_token=True) as server:
        client_id = server.register_client(redirect_uris=[LOOPBACK])
        code, verifier = get_code(http, server, client_id)
        first = exchange(http, server, client_id, code, verifier, holder.for_token(server, clock))
        assert_refused(first, 400, "use_dpop_nonce", "requires a nonce in the DPoP proof")
        nonce = first.headers["DPoP-Nonce"]
        assert nonce == server.dpop_nonce("token") and nonce != server.dpop_nonce("resource")
        assert first.headers["Cache-Control"] == "no-store"
        # The challenge spent nothing: the code still works, with the nonce.
        tokens = exchange(http, server, client_id, code, verifier, holder.for_token(server, clock, nonce=nonce))
        assert tokens.status_code == 200 and tokens.json()["token_type"] == "DPoP", tokens.text
        assert tokens.headers["DPoP-Nonce"] == nonce  # every answer carries the current one

        server.rotate_dpop_nonce()
        refresh_token = tokens.json()["refresh_token"]
        stale = refresh(http, server, client_id, refresh_token, holder.for_token(server, clock, nonce=nonce))
        assert_refused(stale, 400, "use_dpop_nonce", "nonce is stale or unknown")
        new_nonce = stale.headers["DPoP-Nonce"]
        assert new_nonce != nonce and new_nonce == server.dpop_nonce("token")
        assert server.chains()[0].generation == 0
        rotated = refresh(http, server, client_id, refresh_token, holder.for_token(server, clock, nonce=new_nonce))
        assert rotated.status_code == 200, rotated.text
        dpop = server.audit.dpop
        assert dpop.nonce_challenges == 2 and dpop.nonce_challenges_at == {"token": 2}
        assert dpop.proofs_accepted == 2 and dpop.proofs_refused == 0
        assert len(server.audit.events_of(EventKind.DPOP_NONCE_CHALLENGE)) == 2
        # Without a proof (DPoP optional) nonces do not come into it; the answer still names the nonce.
        public = refresh(http, server, client_id, rotated.json()["refresh_token"])
        assert public.status_code == 400 and public.headers["DPoP-Nonce"] == new_nonce
        server.dpop_nonce_at_token = False
        plain = refresh(http, server, client_id, rotated.json()["refresh_token"], holder.for_token(server, clock))
        assert plain.status_code == 200 and "DPoP-Nonce" not in plain.headers


def test_the_nonce_flow_at_the_resource(clock, http, holder):
    with StrictAuthServer(clock=clock, dpop="optional", dpop_nonce_at_resource=True) as server:
        service = server.register_client(
            token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
        )
        auth = (service, server.get_client(service).client_secret)
        granted = client_credentials(http, server, auth, holder.for_token(server, clock))
        assert granted.status_code == 200 and "DPoP-Nonce" not in granted.headers  # none asked there
        access = granted.json()["access_token"]
        first = mcp(http, server, access, holder.for_mcp(server, clock, access))
        assert_dpop_refusal(first, "use_dpop_nonce", "the resource server requires a nonce", server=server)
        nonce = first.headers["DPoP-Nonce"]
        assert nonce == server.dpop_nonce("resource")
        wrong_place = mcp(http, server, access, holder.for_mcp(server, clock, access, nonce=server.dpop_nonce("token")))
        assert_dpop_refusal(wrong_place, "use_dpop_nonce", "stale or unknown", server=server)
        ok = mcp(http, server, access, holder.for_mcp(server, clock, access, nonce=nonce))
        assert ok.status_code == 200 and ok.headers["DPoP-Nonce"] == nonce
        server.rotate_dpop_nonce()
        stale = mcp(http, server, access, holder.for_mcp(server, clock, access, nonce=nonce))
        assert_dpop_refusal(stale, "use_dpop_nonce", "stale or unknown", server=server)
        assert stale.headers["DPoP-Nonce"] == server.dpop_nonce("resource") != nonce
        assert server.audit.dpop.nonce_challenges_at == {"resource": 3}
        # Bearer requests and 401s without credentials carry the nonce too; proofs are not asked of them.
        bearer = client_credentials(http, server, auth).json()["access_token"]
        plain = mcp(http, server, bearer, scheme="Bearer")
        assert plain.status_code == 200 and plain.headers["DPoP-Nonce"] == server.dpop_nonce("resource")
        assert mcp(http, server, None).headers["DPoP-Nonce"] == server.dpop_nonce("resource")


def test_a_nonce_challenge_spends_no_client_assertion(clock, http, holder):
    with StrictAuthServer(clock=clock, dpop="required", dpop_nonce_at_token=True) as server:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        client_id = server.register_client(
            token_endpoint_auth_method="private_key_jwt", public_key=pem, grant_types=["client_credentials"]
        )
        now = int(clock.now)
        claims = {"iss": client_id, "sub": client_id, "aud": server.token_endpoint, "iat": now, "exp": now + 60}
        assertion = jwt.encode({**claims, "jti": secrets.token_urlsafe(12)}, key, algorithm="ES256")
        body = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}
        challenged = client_credentials(http, server, None, holder.for_token(server, clock), **body)
        assert_refused(challenged, 400, "use_dpop_nonce", "requires a nonce", assertion)
        nonce = challenged.headers["DPoP-Nonce"]
        # The proof is checked before the client is authenticated: the same assertion still works.
        granted = client_credentials(http, server, None, holder.for_token(server, clock, nonce=nonce), **body)
        assert granted.status_code == 200 and granted.json()["token_type"] == "DPoP", granted.text
        assert server.audit.assertion_replays == 0 and server.audit.dpop.nonce_challenges == 1


def test_a_nonce_is_ignored_where_none_is_required(strict, http, clock, service, holder):
    proof = holder.for_token(strict, clock, nonce="whatever")
    response = client_credentials(http, strict, service, proof)
    assert response.status_code == 200 and "DPoP-Nonce" not in response.headers


# ---------------------------------------------------------------------------------- secrecy


def test_proofs_and_tokens_never_reach_answers_logs_or_audit(strict, http, clock, service, holder, caplog):
    caplog.set_level(logging.DEBUG, logger="mcp_sync_auth.testing")
    sent = []
    answers = []

    def send(response, *things):
        sent.extend(things)
        answers.append(response.text + " ".join(challenges(response)))
        return response

    good = holder.for_token(strict, clock)
    access = client_credentials(http, strict, service, good).json()["access_token"]  # the one answer with it
    sent.extend([good, access])
    send(client_credentials(http, strict, service, good), good)  # replay
    for claims in ({"htm": "GET"}, {"iat": clock.now - 100}, {"htu": strict.mcp_url}):
        bad = holder.for_token(strict, clock, **claims)
        send(client_credentials(http, strict, service, bad), bad)
    at_mcp = holder.for_mcp(strict, clock, access)
    send(mcp(http, strict, access, at_mcp), at_mcp)
    send(mcp(http, strict, access, at_mcp), at_mcp)  # replay
    send(mcp(http, strict, access, scheme="Bearer"))
    wrong_key = Holder().for_mcp(strict, clock, access)
    send(mcp(http, strict, access, wrong_key), wrong_key)

    audit = strict.audit
    assert audit.dpop.replays == 2 and audit.dpop.proofs_refused == 3 and audit.dpop.bound_as_bearer == 1
    assert audit.dpop.key_mismatches == 1
    everything = "\n".join([*answers, caplog.text, repr(audit), *(event.detail for event in audit.events)])
    for thing in sent:
        for part in thing.split("."):
            assert part not in everything


# ------------------------------------------------------------------- many processes, one cache


def present_proofs(token_endpoint, mcp_url, auth, clock, count, results):
    """A worker process: its own key, ``count`` token requests and MCP calls, each with a fresh proof."""
    holder = Holder()
    with requests.Session() as session:
        for _ in range(count):
            body = {"grant_type": "client_credentials", "resource": mcp_url}
            granted = session.post(
                token_endpoint, data=body, auth=auth, headers={"DPoP": holder.proof("POST", token_endpoint, clock)}
            )
            access = granted.json()["access_token"]
            called = session.post(
                mcp_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Authorization": f"DPoP {access}", "DPoP": holder.proof("POST", mcp_url, clock, token=access)},
            )
            results.put((granted.status_code, granted.json()["token_type"], called.status_code))
    results.put(holder.jkt)


def test_every_proofs_jti_is_unique_across_processes(spawn):
    clock = SharedClock()
    with StrictAuthServer(clock=clock, dpop="required") as server:
        service = server.register_client(
            token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"]
        )
        auth = (service, server.get_client(service).client_secret)
        results = spawn.Queue()
        workers = [
            spawn.Process(target=present_proofs, args=(server.token_endpoint, server.mcp_url, auth, clock, 5, results))
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in range(3 * 6)]
        for worker in workers:
            worker.join(30)
        keys = {outcome for outcome in outcomes if isinstance(outcome, str)}
        assert [outcome for outcome in outcomes if not isinstance(outcome, str)] == [(200, "DPoP", 200)] * 15
        dpop = server.audit.dpop
        assert dpop.proofs_accepted == 30 and dpop.replays == 0 and set(dpop.keys) == keys and len(keys) == 3
        # The assertion the audit makes possible can fail: one replay is seen.
        holder = Holder()
        proof = holder.proof("POST", server.token_endpoint, clock)
        with requests.Session() as session:
            for _ in range(2):
                session.post(
                    server.token_endpoint, data={"grant_type": "client_credentials"}, auth=auth, headers={"DPoP": proof}
                )
        assert server.audit.dpop.replays == 1
