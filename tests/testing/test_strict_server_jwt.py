"""The strict reference server's RFC 7523 surface over real HTTP: clients that authenticate with
``private_key_jwt`` (in every grant they use), the JWT bearer grant for workloads, and every way a JWT
assertion is refused. Assertions are built here with PyJWT directly, independently of the server."""

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm

from mcp_sync_auth import MissingExtra
from mcp_sync_auth._util.jwt_extra import jwt_module
from mcp_sync_auth.testing import (
    CLIENT_ASSERTION_TYPE,
    JWT_BEARER_GRANT,
    REMOVE,
    EventKind,
    StrictAuthServer,
    WorkloadIssuer,
)

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = "JWTLEAK"
LOOPBACK = "http://127.0.0.1:8765/callback"
FOREIGN = "https://elsewhere.example"
WORKLOAD = "https://workload.example"


@pytest.fixture
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def workload(strict, clock):
    issuer = WorkloadIssuer(WORKLOAD, clock=clock)
    strict.trust_workload_issuer(issuer)
    return issuer


# ------------------------------------------------------------------------------------ helpers


def public_pem(private_key):
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def jwt_client(server, private_key, **kwargs):
    """A private_key_jwt client registered with ``private_key``'s public key (client_credentials only
    unless told otherwise)."""
    kwargs.setdefault("grant_types", ["client_credentials"])
    return server.register_client(
        token_endpoint_auth_method="private_key_jwt", public_key=public_pem(private_key), **kwargs
    )


def assertion(private_key, client_id, server, clock, *, alg="ES256", lifetime=60, omit=(), headers=None, **claims):
    """A client assertion (RFC 7523 §3) built with PyJWT: iss = sub = client_id, aud = the token
    endpoint, iat = now, exp = now + lifetime, a random jti. ``claims`` replace, ``omit`` removes."""
    now = int(claims.pop("now", clock.now))
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": server.token_endpoint,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(12),
    }
    payload.update(claims)
    for name in omit:
        payload.pop(name)
    return jwt.encode(payload, private_key, algorithm=alg, headers=headers)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header, payload, signature=b""):
    """A compact JWS made by hand (for algorithms PyJWT rightly refuses to sign with)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}", signing_input.encode("ascii")


def with_assertion(token, **data):
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": token, **data}


def token_request(http, server, data, auth=None):
    return http.post(server.token_endpoint, data=data, auth=auth, timeout=10)


def client_credentials(http, server, token, **data):
    body = {"grant_type": "client_credentials", "resource": server.mcp_url, **with_assertion(token), **data}
    return token_request(http, server, body)


def jwt_bearer(http, server, token=None, resource="default", auth=None, **data):
    body = {"grant_type": JWT_BEARER_GRANT, **data}
    if token is not None:
        body["assertion"] = token
    if resource == "default":
        resource = server.mcp_url
    if resource is not None:
        body["resource"] = resource
    return token_request(http, server, body, auth=auth)


def echo(http, server, access_token, text="hi"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return http.post(server.mcp_url, json=body, headers=headers, timeout=10)


def assert_refused(response, status, error, token, words=""):
    """An RFC 6749 §5.2 error whose description says ``words`` and never quotes any part of ``token``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert words in body["error_description"]
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in response.text
    return body["error_description"]


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    return verifier, b64(hashlib.sha256(verifier.encode("ascii")).digest())


def get_code(http, server, client_id):
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": LOOPBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st",
        "resource": server.mcp_url,
    }
    response = http.get(server.authorization_endpoint, params=query, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    reply = parse_qs(urlsplit(response.headers["Location"]).query)
    return reply["code"][0], verifier


def exchange(http, server, code, verifier, token, **data):
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": LOOPBACK,
        "code_verifier": verifier,
        "resource": server.mcp_url,
        **with_assertion(token),
        **data,
    }
    return token_request(http, server, body)


# ----------------------------------------------------------------------------------- metadata


def test_metadata_advertises_private_key_jwt_and_the_jwt_bearer_grant(strict, http):
    document = http.get(strict.authorization_server_metadata_url, timeout=10).json()
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]
    assert JWT_BEARER_GRANT in document["grant_types_supported"]
    assert JWT_BEARER_GRANT == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert CLIENT_ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert strict.assertion_audiences == (strict.issuer, strict.issuer + "/", strict.token_endpoint)


# ------------------------------------------------------------------- private_key_jwt: accepted


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("ES256", lambda rsa_key: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda rsa_key: rsa_key),
        ("PS256", lambda rsa_key: rsa_key),
        ("EdDSA", lambda rsa_key: ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_client_credentials_with_private_key_jwt(strict, http, clock, rsa_key, alg, make_key):
    key = make_key(rsa_key)
    client_id = jwt_client(strict, key)
    client = strict.get_client(client_id)
    assert client.client_secret is None and client.confidential
    assert client.public_key is not None and alg in client.public_key.algorithms

    response = client_credentials(http, strict, assertion(key, client_id, strict, clock, alg=alg))
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 60
    assert echo(http, strict, tokens["access_token"]).status_code == 200
    audit = strict.audit
    assert audit.grants_ok == {"client_credentials": 1}
    assert [event.client_id for event in audit.events_of(EventKind.GRANT_OK)] == [client_id]


@pytest.mark.parametrize("audience", ["issuer", "issuer/", "token_endpoint", "list"])
def test_every_audience_naming_the_server_is_accepted(strict, http, clock, ec_key, audience):
    client_id = jwt_client(strict, ec_key)
    aud = {
        "issuer": strict.issuer,
        "issuer/": strict.issuer + "/",
        "token_endpoint": strict.token_endpoint,
        "list": [FOREIGN, strict.issuer],
    }[audience]
    response = client_credentials(http, strict, assertion(ec_key, client_id, strict, clock, aud=aud))
    assert response.status_code == 200, response.text


def test_client_id_parameter_is_optional_but_must_match_sub(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    ok = client_credentials(http, strict, assertion(ec_key, client_id, strict, clock), client_id=client_id)
    assert ok.status_code == 200, ok.text
    other = jwt_client(strict, ec.generate_private_key(ec.SECP256R1()))
    token = assertion(ec_key, client_id, strict, clock)
    refused = client_credentials(http, strict, token, client_id=other)
    assert_refused(refused, 401, "invalid_client", token, "client_id does not match")
    # Refused before verifying: the jti is not spent, so the same assertion still works alone.
    assert client_credentials(http, strict, token).status_code == 200


def test_the_public_key_may_be_a_jwk_a_jwk_set_or_a_key_object(strict, http, clock):
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    jwk = ECAlgorithm.to_jwk(keys[0].public_key(), as_dict=True)
    forms = [jwk, {"keys": [ECAlgorithm.to_jwk(keys[1].public_key(), as_dict=True)]}, keys[2].public_key()]
    for key, form in zip(keys, forms):
        client_id = strict.register_client(
            token_endpoint_auth_method="private_key_jwt", public_key=form, grant_types=["client_credentials"]
        )
        response = client_credentials(http, strict, assertion(key, client_id, strict, clock))
        assert response.status_code == 200, response.text


def test_a_jwk_with_alg_admits_only_that_alg(strict, http, clock, rsa_key):
    jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True), "alg": "PS256"}
    client_id = strict.register_client(
        token_endpoint_auth_method="private_key_jwt", public_key=jwk, grant_types=["client_credentials"]
    )
    assert client_credentials(http, strict, assertion(rsa_key, client_id, strict, clock, alg="PS256")).ok
    token = assertion(rsa_key, client_id, strict, clock, alg="RS256")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "does not fit")


def test_authorization_code_and_refresh_with_private_key_jwt(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key, redirect_uris=[LOOPBACK], grant_types=None)
    assert strict.get_client(client_id).grant_types == ("authorization_code", "refresh_token", "client_credentials")
    code, verifier = get_code(http, strict, client_id)

    # A wrong key, then no assertion at all: refused, and the code is not spent by either.
    forged = assertion(ec.generate_private_key(ec.SECP256R1()), client_id, strict, clock)
    assert_refused(exchange(http, strict, code, verifier, forged), 401, "invalid_client", forged, "signature")
    public_try = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": LOOPBACK,
        "code_verifier": verifier,
        "resource": strict.mcp_url,
        "client_id": client_id,
    }
    bare = token_request(http, strict, public_try)
    assert bare.status_code == 401 and "private_key_jwt, not none" in bare.json()["error_description"]

    tokens = exchange(http, strict, code, verifier, assertion(ec_key, client_id, strict, clock)).json()
    assert set(tokens) >= {"access_token", "refresh_token"}, tokens
    assert echo(http, strict, tokens["access_token"]).status_code == 200

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "resource": strict.mcp_url}
    clock.advance(120)  # the first assertion's lifetime is over: every request signs a new one
    rotated = token_request(http, strict, {**refresh, **with_assertion(assertion(ec_key, client_id, strict, clock))})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert echo(http, strict, rotated.json()["access_token"]).status_code == 200
    again = {**refresh, "refresh_token": rotated.json()["refresh_token"], "client_id": client_id}
    third = token_request(http, strict, {**again, **with_assertion(assertion(ec_key, client_id, strict, clock))})
    assert third.status_code == 200, third.text
    audit = strict.audit
    assert audit.grants_ok == {"authorization_code": 1, "refresh_token": 2}
    assert audit.grants_failed == {"authorization_code": 2}
    assert [chain.generation for chain in strict.chains()] == [2]


# ------------------------------------------------------------------- private_key_jwt: refused


def test_a_replayed_client_assertion_is_refused_and_counted(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock, jti="only-once")
    assert client_credentials(http, strict, token).status_code == 200
    replay = client_credentials(http, strict, token)
    assert_refused(replay, 401, "invalid_client", token, "already used")
    audit = strict.audit
    assert audit.assertion_replays == 1
    (event,) = audit.events_of(EventKind.ASSERTION_REPLAYED)
    assert event.client_id == client_id
    assert event.detail.startswith("client_assertion: ") and "only-once" not in event.detail
    # Another assertion with the same jti is a replay too, even freshly signed.
    fresh = assertion(ec_key, client_id, strict, clock, jti="only-once", iat=int(clock.now) + 1)
    assert_refused(client_credentials(http, strict, fresh), 401, "invalid_client", fresh, "already used")
    # Once the first one would be refused as expired anyway, its jti is forgotten: an old assertion
    # is refused as expired, not as a replay, and the jti may be used again.
    clock.advance(60 + 31)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has expired")
    assert client_credentials(http, strict, assertion(ec_key, client_id, strict, clock, jti="only-once")).ok
    assert strict.audit.assertion_replays == 2


def test_concurrent_presentations_of_one_assertion_are_accepted_once(strict, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock)
    barrier = threading.Barrier(8)
    statuses = []

    def present():
        with requests.Session() as session:
            barrier.wait(10)
            statuses.append(client_credentials(session, strict, token).status_code)

    threads = [threading.Thread(target=present) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [401] * 7
    assert strict.audit.assertion_replays == 7


def test_an_assertion_for_another_audience_is_refused(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    for aud in (FOREIGN, strict.mcp_url, [FOREIGN, strict.mcp_url], strict.token_endpoint + "/x"):
        token = assertion(ec_key, client_id, strict, clock, aud=aud)
        assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "aud does not name")
    token = assertion(ec_key, client_id, strict, clock, omit=["aud"])
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has no aud")
    token = assertion(ec_key, client_id, strict, clock, aud=42)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "aud must be")


def test_an_expired_assertion_is_refused_after_the_leeway(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock, lifetime=60)
    clock.advance(60 + 31)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has expired")
    # 29 s past exp is within the 30 s leeway.
    late = assertion(ec_key, client_id, strict, clock, now=clock.now - 89, lifetime=60)
    assert client_credentials(http, strict, late).status_code == 200
    token = assertion(ec_key, client_id, strict, clock, omit=["exp"])
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has no exp")
    token = assertion(ec_key, client_id, strict, clock, exp="tomorrow")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "exp must be a number")


def test_long_lived_and_future_assertions_are_refused(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    assert client_credentials(http, strict, assertion(ec_key, client_id, strict, clock, lifetime=600)).ok
    token = assertion(ec_key, client_id, strict, clock, lifetime=601)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "lives too long")
    # Without iat the lifetime counts from now (with the leeway).
    token = assertion(ec_key, client_id, strict, clock, omit=["iat"], exp=int(clock.now) + 600 + 31)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "lives too long")
    assert client_credentials(http, strict, assertion(ec_key, client_id, strict, clock, omit=["iat"])).ok
    token = assertion(ec_key, client_id, strict, clock, now=clock.now + 31)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "issued in the future")
    token = assertion(ec_key, client_id, strict, clock, nbf=int(clock.now) + 31)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "not valid yet")


def test_an_assertion_signed_with_another_key_is_refused(strict, http, clock, ec_key, rsa_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec.generate_private_key(ec.SECP256R1()), client_id, strict, clock)
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "signature does not verify")
    # An RSA signature for an EC key: refused by its alg before any verification.
    token = assertion(rsa_key, client_id, strict, clock, alg="RS256")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "alg RS256 does not fit")
    # A signature that does not verify spends nothing: the client's real assertions still work.
    assert client_credentials(http, strict, assertion(ec_key, client_id, strict, clock)).ok


def test_unsigned_and_hmac_assertions_are_refused(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    now = int(clock.now)
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": strict.token_endpoint,
        "iat": now,
        "exp": now + 60,
        "jti": "x1",
    }
    unsigned = jwt.encode(payload, None, algorithm="none")
    assert_refused(client_credentials(http, strict, unsigned), 401, "invalid_client", unsigned, "alg 'none'")
    # The classic confusion: an HMAC keyed with the (public) registered key.
    header = {"alg": "HS256", "typ": "JWT"}
    _, signing_input = hand_made(header, payload)
    mac = hmac.new(public_pem(ec_key).encode(), signing_input, hashlib.sha256).digest()
    confused = f"{signing_input.decode()}.{b64(mac)}"
    assert_refused(client_credentials(http, strict, confused), 401, "invalid_client", confused, "alg 'HS256'")
    no_alg, _ = hand_made({"typ": "JWT"}, payload, b"sig")
    assert_refused(client_credentials(http, strict, no_alg), 401, "invalid_client", no_alg, "is not accepted")
    assert strict.audit.grants_failed == {"client_credentials": 3}


def test_iss_must_equal_sub_and_sub_must_name_a_private_key_jwt_client(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock, iss="someone-else")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "iss is not the expected")
    token = assertion(ec_key, client_id, strict, clock, sub="client-unknown")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "unknown client")
    token = assertion(ec_key, client_id, strict, clock, omit=["sub"])
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has no sub")
    secret_client = strict.register_client(
        token_endpoint_auth_method="client_secret_post", grant_types=["client_credentials"]
    )
    token = assertion(ec_key, secret_client, strict, clock)
    words = "client must authenticate with client_secret_post, not private_key_jwt"
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, words)


def test_an_assertion_without_jti_is_refused(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock, omit=["jti"])
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has no jti")
    token = assertion(ec_key, client_id, strict, clock, jti="")
    assert_refused(client_credentials(http, strict, token), 401, "invalid_client", token, "has no jti")


def test_malformed_client_assertion_requests(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock)
    base = {"grant_type": "client_credentials", "resource": strict.mcp_url}
    wrong_type = token_request(
        http, strict, {**base, "client_assertion_type": "urn:example:saml", "client_assertion": token}
    )
    assert_refused(wrong_type, 401, "invalid_client", token, "client_assertion_type must be")
    no_type = token_request(http, strict, {**base, "client_assertion": token})
    assert_refused(no_type, 401, "invalid_client", token, "client_assertion_type is missing")
    no_assertion = token_request(http, strict, {**base, "client_assertion_type": CLIENT_ASSERTION_TYPE})
    assert_refused(no_assertion, 401, "invalid_client", token, "client_assertion is missing")
    for garbage in ("not-a-jwt", "a.b.c", f"{token}.extra", b64(b"[]") + "." + b64(b"{}") + ".sig"):
        response = client_credentials(http, strict, garbage)
        assert_refused(response, 401, "invalid_client", garbage, "not a well-formed JWT")
    # The assertion was never spent: every refusal above came before verification.
    assert client_credentials(http, strict, token).status_code == 200


def test_an_assertion_with_a_secret_is_more_than_one_method(strict, http, clock, ec_key):
    client_id = jwt_client(strict, ec_key)
    token = assertion(ec_key, client_id, strict, clock)
    with_secret = client_credentials(http, strict, token, client_secret="s3cret")
    assert_refused(with_secret, 400, "invalid_request", token, "more than one client authentication method")
    body = {"grant_type": "client_credentials", "resource": strict.mcp_url, **with_assertion(token)}
    with_basic = token_request(http, strict, body, auth=(client_id, "s3cret"))
    assert_refused(with_basic, 400, "invalid_request", token, "more than one client authentication method")


def test_register_client_checks_private_key_jwt_keys(strict, ec_key, rsa_key):
    pem = public_pem(ec_key)
    with pytest.raises(ValueError, match="needs the client's public key"):
        strict.register_client(token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="has no secret"):
        strict.register_client(None, "s3cret", "private_key_jwt", public_key=pem)
    with pytest.raises(ValueError, match="only by private_key_jwt"):
        strict.register_client(token_endpoint_auth_method="client_secret_basic", public_key=pem)
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases = [
        (private_pem, "private key"),
        (ec_key, "private key"),
        ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (ec.generate_private_key(ec.SECP384R1()).public_key(), "P-256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), "at least 2048 bits"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "symmetric"),
        ({**ECAlgorithm.to_jwk(ec_key, as_dict=True)}, "private key"),
        ({"keys": []}, "exactly one key"),
        ({"kty": "EC", "crv": "P-256", "x": "AA"}, "not a usable JWK"),
        ({**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "alg": "RS256"}, "does not fit"),
        ({**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "alg": "HS256"}, "alg must be one of"),
        (object(), "unsupported key type"),
    ]
    for source, words in cases:
        with pytest.raises(ValueError, match=words):
            strict.register_client(token_endpoint_auth_method="private_key_jwt", public_key=source)
    assert "-----" not in repr(strict.get_client(jwt_client(strict, rsa_key)))


def test_dynamic_registration_of_a_private_key_jwt_client(strict, http, clock, ec_key):
    jwks = {"keys": [ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)]}
    body = {"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"], "jwks": jwks}
    answer = http.post(strict.registration_endpoint, json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    info = answer.json()
    assert "client_secret" not in info and info["token_endpoint_auth_method"] == "private_key_jwt"
    assert info["jwks"] == jwks
    response = client_credentials(http, strict, assertion(ec_key, info["client_id"], strict, clock))
    assert response.status_code == 200, response.text

    refused = [
        ({**body, "jwks": None}, "needs the client's public key"),
        ({**body, "jwks": None, "jwks_uri": "https://app.example/jwks"}, "jwks_uri is not supported"),
        ({**body, "jwks": {"keys": [ECAlgorithm.to_jwk(ec_key, as_dict=True)]}}, "private key"),
        ({**body, "jwks": ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)}, "must be a JWK Set"),
        ({"grant_types": ["client_credentials"], "jwks": jwks}, "only by private_key_jwt"),
    ]
    for document, words in refused:
        answer = http.post(strict.registration_endpoint, json=document, timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_client_metadata"
        assert words in answer.json()["error_description"]
    assert strict.audit.registrations == 1 and strict.audit.registrations_failed == len(refused)


# ------------------------------------------------------------------------- JWT bearer grant


def test_jwt_bearer_grant_gives_a_bearer_token_for_the_resource(strict, http, clock, workload):
    token = workload.mint("spiffe://example.org/ns/prod/sa/builder", audience=strict.token_endpoint)
    response = jwt_bearer(http, strict, token)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 60 and tokens["scope"] == "mcp"
    assert MARKER in tokens["access_token"]
    assert echo(http, strict, tokens["access_token"]).status_code == 200
    assert strict.chains() == []
    audit = strict.audit
    assert audit.grants == {JWT_BEARER_GRANT: 1} and audit.grants_ok == {JWT_BEARER_GRANT: 1}
    (event,) = audit.events_of(EventKind.GRANT_OK)
    assert event.client_id is None
    assert "sub=spiffe://example.org/ns/prod/sa/builder" in event.detail and f"iss={WORKLOAD}" in event.detail
    # Bound to its resource, and it expires like any access token.
    clock.advance(61)
    assert echo(http, strict, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("audience", ["issuer", "issuer/", "token_endpoint"])
def test_jwt_bearer_audiences(strict, http, workload, audience):
    aud = {"issuer": strict.issuer, "issuer/": strict.issuer + "/", "token_endpoint": strict.token_endpoint}
    response = jwt_bearer(http, strict, workload.mint("wl", audience=[FOREIGN, aud[audience]]))
    assert response.status_code == 200, response.text


def test_jwt_bearer_needs_an_assertion(strict, http, workload):
    response = jwt_bearer(http, strict)
    assert response.status_code == 400 and response.json() == {
        "error": "invalid_request",
        "error_description": "missing assertion",
    }
    assert strict.audit.grants_failed == {JWT_BEARER_GRANT: 1}


def test_jwt_bearer_from_an_untrusted_issuer_is_refused(strict, http, clock, workload):
    stranger = WorkloadIssuer("https://stranger.example", clock=clock)
    token = stranger.mint("wl", audience=strict.token_endpoint)
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "issuer is not trusted")
    # The trusted issuer's name with another key: a forgery.
    impostor = WorkloadIssuer(WORKLOAD, clock=clock)
    token = impostor.mint("wl", audience=strict.token_endpoint)
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "signature does not verify")
    token = workload.mint("wl", audience=strict.token_endpoint, extra_claims={"iss": REMOVE})
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "issuer is not trusted")
    token = workload.mint("wl", audience=strict.token_endpoint, algorithm="none")
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "alg 'none' is not accepted")


def test_jwt_bearer_for_another_audience_is_refused(strict, http, workload):
    for aud in (FOREIGN, strict.mcp_url, [FOREIGN]):
        token = workload.mint("wl", audience=aud)
        assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "aud does not name")


def test_an_expired_jwt_bearer_assertion_is_refused(strict, http, clock, workload):
    token = workload.mint("wl", audience=strict.token_endpoint, lifetime=120)
    clock.advance(120 + 31)
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "has expired")
    within = workload.mint("wl", audience=strict.token_endpoint, lifetime=120, now=clock.now - 149)
    assert jwt_bearer(http, strict, within).status_code == 200
    # Longer-lived workload tokens are fine: only client assertions have a lifetime cap.
    assert jwt_bearer(http, strict, workload.mint("wl", audience=strict.token_endpoint, lifetime=3600)).ok


def test_jwt_bearer_needs_iat_and_jti(strict, http, workload):
    for claim in ("iat", "jti", "sub", "exp"):
        token = workload.mint("wl", audience=strict.token_endpoint, extra_claims={claim: REMOVE})
        assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, f"has no {claim}")


def test_malformed_jwt_bearer_assertions_are_invalid_grant(strict, http, workload):
    token = workload.mint("wl", audience=strict.token_endpoint)
    header, payload, signature = token.split(".")
    broken = [
        "garbage",
        "a.b",
        f"{header}.{payload}",
        f"{header}.{payload}.{signature}.more",
        f"{header}.%%%.{signature}",
        f"{header}.{b64(b'not json')}.{signature}",
        f"{header}.{b64(b'[1, 2]')}.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
    ]
    for bad in broken:
        response = jwt_bearer(http, strict, bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"] == "invalid_grant"
        assert bad not in response.text and payload not in response.text
    assert strict.audit.grants_failed == {JWT_BEARER_GRANT: len(broken)}
    assert jwt_bearer(http, strict, token).status_code == 200  # none of those spent the real one


def test_a_replayed_jwt_bearer_assertion_is_refused_and_counted(strict, http, clock, workload):
    token = workload.mint("wl", audience=strict.token_endpoint, jti="wl-1")
    assert jwt_bearer(http, strict, token).status_code == 200
    assert_refused(jwt_bearer(http, strict, token), 400, "invalid_grant", token, "already used")
    audit = strict.audit
    assert audit.assertion_replays == 1
    assert audit.grants == {JWT_BEARER_GRANT: 2}
    assert audit.grants_ok == {JWT_BEARER_GRANT: 1} and audit.grants_failed == {JWT_BEARER_GRANT: 1}
    (event,) = audit.events_of(EventKind.ASSERTION_REPLAYED)
    assert event.detail.startswith(JWT_BEARER_GRANT) and "wl-1" not in event.detail
    # Another issuer may use the same jti: replay is per issuer.
    other = WorkloadIssuer("https://other.example", clock=clock)
    strict.trust_workload_issuer(other.issuer, other.public_key_pem)
    assert jwt_bearer(http, strict, other.mint("wl", audience=strict.issuer, jti="wl-1")).status_code == 200
    assert strict.audit.assertion_replays == 1


def test_jwt_bearer_resource_and_scope(clock, http):
    with StrictAuthServer(clock=clock, scopes_supported=("mcp", "admin")) as server:
        issuer = WorkloadIssuer(WORKLOAD, clock=clock)
        server.trust_workload_issuer((issuer.issuer, issuer.public_jwk))
        audience = server.token_endpoint
        token = issuer.mint("wl", audience=audience)
        assert_refused(jwt_bearer(http, server, token, resource=None), 400, "invalid_target", token, "required")
        refused = jwt_bearer(http, server, token, resource=FOREIGN + "/mcp")
        assert_refused(refused, 400, "invalid_target", token, "unknown resource")
        assert_refused(jwt_bearer(http, server, token, scope="root"), 400, "invalid_scope", token, "root")
        # None of those spent the assertion.
        granted = jwt_bearer(http, server, token, scope="admin")
        assert granted.status_code == 200 and granted.json()["scope"] == "admin"
        assert jwt_bearer(http, server, issuer.mint("wl", audience=audience)).json()["scope"] == "mcp admin"
        server.require_resource = False
        implicit = jwt_bearer(http, server, issuer.mint("wl", audience=audience), resource=None)
        assert implicit.status_code == 200
        assert echo(http, server, implicit.json()["access_token"]).status_code == 200


def test_authenticated_clients_must_be_registered_for_the_jwt_bearer_grant(strict, http, clock, workload, ec_key):
    audience = strict.token_endpoint
    default = strict.register_client(token_endpoint_auth_method="client_secret_basic")
    secret = strict.get_client(default).client_secret
    token = workload.mint("wl", audience=audience)
    refused = jwt_bearer(http, strict, token, auth=(default, secret))
    assert_refused(refused, 400, "unauthorized_client", token, "not registered for the")

    basic = strict.register_client(token_endpoint_auth_method="client_secret_basic", grant_types=[JWT_BEARER_GRANT])
    auth = (basic, strict.get_client(basic).client_secret)
    assert jwt_bearer(http, strict, token, auth=auth).status_code == 200  # not spent by the refusal
    assert jwt_bearer(http, strict, workload.mint("wl", audience=audience), auth=(basic, "wrong")).status_code == 401

    signed = jwt_client(strict, ec_key, grant_types=[JWT_BEARER_GRANT])
    client_auth = with_assertion(assertion(ec_key, signed, strict, clock))
    response = jwt_bearer(http, strict, workload.mint("wl", audience=audience), **client_auth)
    assert response.status_code == 200, response.text

    public = strict.register_client(grant_types=[JWT_BEARER_GRANT])
    assert jwt_bearer(http, strict, workload.mint("wl", audience=audience), client_id=public).status_code == 200
    unknown = jwt_bearer(http, strict, workload.mint("wl", audience=audience), client_id="client-nobody")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"

    ok_clients = [event.client_id for event in strict.audit.events_of(EventKind.GRANT_OK)]
    assert ok_clients == [basic, signed, public]


def test_anonymous_jwt_bearer_can_be_turned_off(strict, http, workload):
    strict.anonymous_jwt_bearer = False
    token = workload.mint("wl", audience=strict.token_endpoint)
    assert_refused(jwt_bearer(http, strict, token), 401, "invalid_client", token, "client authentication required")
    strict.anonymous_jwt_bearer = True
    assert jwt_bearer(http, strict, token).status_code == 200
    with StrictAuthServer(anonymous_jwt_bearer=False) as closed:
        assert not closed.anonymous_jwt_bearer
    # Other grants never go without a client.
    anonymous = token_request(http, strict, {"grant_type": "client_credentials", "resource": strict.mcp_url})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"


def test_trust_workload_issuer_forms(strict, clock, ec_key):
    issuer = WorkloadIssuer(WORKLOAD, clock=clock)
    with pytest.raises(TypeError):
        strict.trust_workload_issuer(issuer, issuer.public_key_pem)
    with pytest.raises(TypeError):
        strict.trust_workload_issuer(WORKLOAD)
    with pytest.raises(TypeError):
        strict.trust_workload_issuer((WORKLOAD, issuer.public_key_pem), issuer.public_key_pem)
    with pytest.raises(ValueError, match="non-empty"):
        strict.trust_workload_issuer("", issuer.public_key_pem)
    with pytest.raises(ValueError, match="private key"):
        strict.trust_workload_issuer(
            WORKLOAD, ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
        )
    with pytest.raises(ValueError, match="symmetric"):
        strict.trust_workload_issuer(WORKLOAD, {"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(ValueError, match="algorithm must be"):
        issuer.mint("wl", audience="x", algorithm="HS256")
    assert "PRIVATE" not in repr(issuer) and issuer.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    claims = jwt.decode(
        issuer.mint("wl", audience=["a", "b"], extra_claims={"scope": "mcp"}, lifetime=90),
        issuer.public_key_pem,
        algorithms=["ES256"],
        audience="a",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == WORKLOAD and claims["sub"] == "wl" and claims["aud"] == ["a", "b"]
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 90 and claims["scope"] == "mcp"
    assert jwt.get_unverified_header(issuer.mint("wl", audience="a"))["kid"] == issuer.key_id


# ----------------------------------------------------------------------------------- secrecy


def test_assertions_never_reach_answers_logs_or_audit(strict, http, clock, workload, ec_key, caplog):
    caplog.set_level(logging.DEBUG, logger="mcp_sync_auth.testing")
    client_id = jwt_client(strict, ec_key)
    sent = []
    answers = []

    def send(response, token):
        sent.append(token)
        answers.append(response.text)

    good = assertion(ec_key, client_id, strict, clock)
    send(client_credentials(http, strict, good), good)
    send(client_credentials(http, strict, good), good)  # replay
    for claims in ({"aud": FOREIGN}, {"iss": "x"}, {"exp": int(clock.now) - 100}):
        bad = assertion(ec_key, client_id, strict, clock, **claims)
        send(client_credentials(http, strict, bad), bad)
    grant = workload.mint("wl", audience=strict.token_endpoint)
    send(jwt_bearer(http, strict, grant), grant)
    send(jwt_bearer(http, strict, grant), grant)  # replay
    foreign = workload.mint("wl", audience=FOREIGN)
    send(jwt_bearer(http, strict, foreign), foreign)

    audit = strict.audit
    assert audit.assertion_replays == 2
    everything = "\n".join([*answers, caplog.text, repr(audit), *(event.detail for event in audit.events)])
    for token in sent:
        for part in token.split("."):
            assert part not in everything


# ------------------------------------------------------------------------ without PyJWT


def test_jwt_module_names_the_extra(monkeypatch):
    assert jwt_module() is jwt
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(MissingExtra) as caught:
        jwt_module("verifying a client assertion")
    assert caught.value.extra == "jwt"
    assert str(caught.value) == (
        "verifying a client assertion needs the 'PyJWT' package: pip install 'mcp-sync-auth[jwt]'"
    )


WITHOUT_PYJWT = textwrap.dedent(
    """
    import sys
    sys.modules["jwt"] = None  # as if the jwt extra were not installed
    import requests
    import mcp_sync_auth
    from mcp_sync_auth.testing import CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT, StrictAuthServer, WorkloadIssuer

    PEM = sys.argv[1]
    with StrictAuthServer() as server:
        assert requests.get(server.authorization_server_metadata_url, timeout=10).status_code == 200
        for build in (
            lambda: server.register_client(token_endpoint_auth_method="private_key_jwt", public_key=PEM),
            lambda: server.trust_workload_issuer("https://workload.example", PEM),
            WorkloadIssuer,
        ):
            try:
                build()
            except mcp_sync_auth.MissingExtra as exc:
                print(exc.extra, "|", exc)
            else:
                raise AssertionError("no MissingExtra")
        base = {"resource": server.mcp_url}
        bodies = [
            {**base, "grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
             "client_assertion": "e30.e30.c2ln"},
            {**base, "grant_type": JWT_BEARER_GRANT, "assertion": "e30.e30.c2ln"},
        ]
        for body in bodies:
            answer = requests.post(server.token_endpoint, data=body, timeout=10)
            print(answer.status_code, answer.json()["error"], "|", answer.json()["error_description"])
        print(server.audit.grants_failed)
    """
)


def test_without_pyjwt_the_server_runs_and_assertions_name_the_extra(ec_key):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYJWT, public_pem(ec_key)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    hint = "pip install 'mcp-sync-auth[jwt]'"
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        f"jwt | a private_key_jwt client or a trusted JWT issuer needs the 'PyJWT' package: {hint}",
        f"jwt | a private_key_jwt client or a trusted JWT issuer needs the 'PyJWT' package: {hint}",
        f"jwt | a WorkloadIssuer needs the 'PyJWT' package: {hint}",
    ]
    assert lines[3:5] == [
        f"500 server_error | verifying a JWT client assertion needs the 'PyJWT' package: {hint}",
        f"500 server_error | verifying a JWT assertion needs the 'PyJWT' package: {hint}",
    ]
    assert lines[5] == f"{{'client_credentials': 1, '{JWT_BEARER_GRANT}': 1}}"
