"""DPoP proofs as built (RFC 9449 §4.2), checked here with PyJWT: header, claims, the thumbprint
(RFC 7638), a fresh jti for each, and the key's round trip through the store's JSON."""

import base64
import hashlib
import json

import jwt
import pytest

from mcp_sync_auth import TokenSet
from mcp_sync_auth._oauth.dpop import DPoPKey, Nonces, target_uri, thumbprint


def _parts(proof):
    header = jwt.get_unverified_header(proof)
    public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(header["jwk"]))
    claims = jwt.decode(proof, public, algorithms=["ES256"])
    return header, claims


def test_a_proof_names_the_key_the_request_and_the_token():
    key = DPoPKey.generate()
    proof = key.proof("post", "https://mcp.example/mcp?x=1#frag", now=1_700_000_000, access_token="at-1", nonce="n-7")
    header, claims = _parts(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert set(header["jwk"]) == {"crv", "kty", "x", "y"}  # the public half only
    assert claims["htm"] == "POST" and claims["htu"] == "https://mcp.example/mcp"
    assert claims["iat"] == 1_700_000_000 and claims["nonce"] == "n-7"
    expected_ath = base64.urlsafe_b64encode(hashlib.sha256(b"at-1").digest()).rstrip(b"=").decode()
    assert claims["ath"] == expected_ath
    assert thumbprint(header["jwk"]) == key.thumbprint


def test_every_proof_has_its_own_jti_and_no_ath_without_a_token():
    key = DPoPKey.generate()
    claims = [_parts(key.proof("POST", "https://as.example/token", now=1.0))[1] for _ in range(50)]
    assert len({c["jti"] for c in claims}) == 50
    assert all("ath" not in c and "nonce" not in c for c in claims)


def test_the_thumbprint_is_rfc_7638():
    jwk = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
           "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "extra": "ignored"}
    canonical = '{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",' \
                '"y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}'
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert thumbprint(jwk) == digest


def test_the_key_round_trips_through_the_stored_token_set_and_is_never_shown():
    key = DPoPKey.generate()
    tokens = TokenSet("at", token_type="DPoP", refresh_token="rt", dpop_key=key.private_jwk())
    again = TokenSet.from_json(json.loads(json.dumps(tokens.to_json())))
    assert again == tokens and again.is_dpop
    assert DPoPKey.from_private_jwk(again.dpop_key).thumbprint == key.thumbprint
    assert '"d"' not in repr(tokens) and json.loads(key.private_jwk())["d"] not in repr(tokens)


@pytest.mark.parametrize("text", ["{}", "not json", '{"kty": "oct", "k": "c2VjcmV0"}'])
def test_a_stored_key_that_is_not_an_ec_private_jwk_is_refused(text):
    with pytest.raises(ValueError, match="stored DPoP key"):
        DPoPKey.from_private_jwk(text)


def test_nonces_are_kept_per_endpoint_and_guessed_per_origin():
    nonces = Nonces()
    assert nonces.remember("https://as.example/token", {"DPoP-Nonce": "n1"}) == "n1"
    assert nonces.get("https://as.example/other?q") == "n1"  # the origin's latest, as a first guess
    assert nonces.get("https://mcp.example/mcp") is None
    nonces.remember("https://as.example/mcp", {"DPoP-Nonce": "r1"})  # the resource, same origin
    assert nonces.get("https://as.example/token") == "n1" and nonces.get("https://as.example/mcp?x") == "r1"
    assert nonces.remember("https://as.example/token", {}) is None and nonces.get("https://as.example/token") == "n1"
    for bad in ("bad\nnonce", 'with"quote', "back\\slash", "sp ace"):
        assert nonces.remember("https://as.example/token", {"DPoP-Nonce": bad}) is None


def test_target_uri_drops_query_and_fragment_only():
    assert target_uri("https://h.example:8443/a/b?c=d#e") == "https://h.example:8443/a/b"
