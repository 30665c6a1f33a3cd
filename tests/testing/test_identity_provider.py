"""Enterprise-managed authorization (ID-JAG) against the test IdentityProvider and the strict server,
over real HTTP: an ID token is exchanged at the identity provider (RFC 8693) for an ID-JAG, which the
client presents to the MCP authorization server in the JWT bearer grant, authenticating as itself.
Both legs are plain ``requests`` POSTs here (the library's client side is not involved), and every
way either side refuses is checked, with no answer, log or audit entry quoting a token."""

import logging
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcp_sync_auth.testing import (
    CLIENT_ASSERTION_TYPE,
    ID_JAG_TOKEN_TYPE,
    ID_JAG_TYP,
    ID_TOKEN_TYPE,
    JWT_BEARER_GRANT,
    REMOVE,
    TOKEN_EXCHANGE_GRANT,
    EventKind,
    IdentityProvider,
    IdentityProviderAudit,
    StrictAuthServer,
    WorkloadIssuer,
)
from mcp_sync_auth.testing.idp_state import IdpEventKind

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = "IDJAGLEAK"
FOREIGN = "https://elsewhere.example"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
USER = "00u-alice"


@pytest.fixture
def idp(clock):
    with IdentityProvider(clock=clock) as provider:
        yield provider


class Client:
    """One MCP client with an id at the identity provider and another at the authorization server."""

    def __init__(self, idp, strict, **as_options):
        as_options.setdefault("token_endpoint_auth_method", "client_secret_basic")
        as_options.setdefault("grant_types", [JWT_BEARER_GRANT])
        self.as_id = strict.register_client(**as_options)
        self.as_secret = strict.get_client(self.as_id).client_secret
        self.idp_id = idp.register_client(as_client_ids={strict.issuer: self.as_id})
        self.idp_secret = idp.get_client(self.idp_id).client_secret

    @property
    def idp_auth(self):
        return (self.idp_id, self.idp_secret)

    @property
    def as_auth(self):
        return (self.as_id, self.as_secret)


@pytest.fixture
def client(idp, strict):
    strict.trust_identity_provider(idp)
    return Client(idp, strict)


# ------------------------------------------------------------------------------------ helpers


def exchange(http, idp, strict, id_token, auth, **changes):
    """An RFC 8693 token exchange at ``idp`` for an ID-JAG for ``strict``; ``changes`` replace
    parameters, and a parameter changed to None is left out."""
    body = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "requested_token_type": ID_JAG_TOKEN_TYPE,
        "audience": strict.issuer,
        "resource": strict.mcp_url,
        **changes,
    }
    body = {name: value for name, value in body.items() if value is not None}
    return http.post(idp.token_endpoint, data=body, auth=auth, timeout=10)


def id_jag_for(http, idp, strict, client, scope=None):
    """An ID-JAG got the way a client gets one: log in (an ID token), exchange it."""
    id_token = idp.issue_id_token(USER, audience=client.idp_id)
    response = exchange(http, idp, strict, id_token, client.idp_auth, scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def redeem(http, strict, assertion, auth=None, **data):
    """The JWT bearer grant at the authorization server with ``assertion``."""
    body = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, **data}
    body = {name: value for name, value in body.items() if value is not None}
    return http.post(strict.token_endpoint, data=body, auth=auth, timeout=10)


def minted(idp, strict, client, **changes):
    """An ID-JAG made directly with the identity provider's key: what an exchange would give
    ``client``, with ``changes``."""
    options = {"audience": strict.issuer, "client_id": client.as_id, "resource": strict.mcp_url, **changes}
    return idp.mint_id_jag(USER, **options)


def echo(http, server, access_token, text="hi"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return http.post(server.mcp_url, json=body, headers=headers, timeout=10)


def assert_refused(response, status, error, tokens=(), words=""):
    """An RFC 6749 §5.2 error whose description says ``words`` and quotes no part of any of ``tokens``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error, body
    assert words in body["error_description"], body
    for token in [tokens] if isinstance(tokens, str) else tokens:
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in response.text
    return body["error_description"]


def claims_of(token, key_pem, audience):
    return jwt.decode(token, key_pem, algorithms=["ES256"], audience=audience, options={"verify_exp": False})


# ------------------------------------------------------------------------------ the happy path


def test_id_token_to_id_jag_to_access_token_to_mcp(http, idp, strict, client, clock):
    id_token = idp.issue_id_token(USER, audience=client.idp_id)
    assert jwt.get_unverified_header(id_token)["typ"] == "JWT"
    id_claims = claims_of(id_token, idp.public_key_pem, client.idp_id)
    assert id_claims["iss"] == idp.issuer and id_claims["sub"] == USER and id_claims["exp"] == int(clock.now) + 300

    answer = exchange(http, idp, strict, id_token, client.idp_auth, scope="mcp")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body == {
        "access_token": body["access_token"],
        "issued_token_type": ID_JAG_TOKEN_TYPE,
        "token_type": "N_A",
        "expires_in": 300,
        "scope": "mcp",
    }
    id_jag = body["access_token"]
    header = jwt.get_unverified_header(id_jag)
    assert header["typ"] == ID_JAG_TYP == "oauth-id-jag+jwt" and header["alg"] == "ES256"
    assert header["kid"] == idp.key_id
    claims = claims_of(id_jag, idp.public_key_pem, strict.issuer)
    assert set(claims) == {"iss", "sub", "aud", "client_id", "resource", "scope", "jti", "iat", "exp"}
    assert claims["iss"] == idp.issuer and claims["sub"] == USER and claims["aud"] == strict.issuer
    assert claims["client_id"] == client.as_id != client.idp_id  # the client's id at the AS, not at the IdP
    assert claims["resource"] == strict.mcp_url and claims["scope"] == "mcp"
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 300

    granted = redeem(http, strict, id_jag, auth=client.as_auth)
    assert granted.status_code == 200, granted.text
    assert granted.headers["Cache-Control"] == "no-store"
    tokens = granted.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 60 and tokens["scope"] == "mcp"
    assert MARKER in tokens["access_token"]
    reply = echo(http, strict, tokens["access_token"])
    assert reply.status_code == 200 and reply.json()["result"]["content"][0]["text"] == "hi"
    assert strict.chains() == []

    audit = strict.audit
    assert audit.grants == {JWT_BEARER_GRANT: 1} and audit.grants_ok == {JWT_BEARER_GRANT: 1}
    assert audit.id_jag_grants == 1 and audit.assertion_replays == 0 and audit.mcp_ok == 1
    (event,) = audit.events_of(EventKind.GRANT_OK)
    assert event.client_id == client.as_id
    assert event.detail.startswith(f"{JWT_BEARER_GRANT}: ID-JAG iss={idp.issuer} sub={USER} jti=")

    idp_audit = idp.audit
    assert isinstance(idp_audit, IdentityProviderAudit)
    assert idp_audit.exchanges_requested == 1 and idp_audit.exchanges_issued == 1
    assert idp_audit.exchanges_refused == 0 and idp_audit.refusals == {} and idp_audit.id_tokens_issued == 1
    (issued,) = idp_audit.events_of(IdpEventKind.ID_JAG_ISSUED)
    assert issued.client_id == client.idp_id
    assert f"sub={USER} aud={strict.issuer} client_id={client.as_id} resource={strict.mcp_url}" in issued.detail
    assert idp.wait_for_audit(lambda a: a.exchanges_issued == 1, timeout=1).exchanges_issued == 1

    # The access token is bound to the resource and expires like any other.
    clock.advance(61)
    assert echo(http, strict, tokens["access_token"]).status_code == 401


def test_client_authentication_at_the_identity_provider(http, idp, strict, client, clock):
    post = idp.register_client(
        client_secret="post-secret-0123456789",
        token_endpoint_auth_method="client_secret_post",
        as_client_ids={strict.issuer: client.as_id},
    )
    id_token = idp.issue_id_token(USER, audience=post)
    answer = exchange(http, idp, strict, id_token, None, client_id=post, client_secret="post-secret-0123456789")
    assert answer.status_code == 200, answer.text
    assert redeem(http, strict, answer.json()["access_token"], auth=client.as_auth).status_code == 200

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signed = idp.register_client(
        "agent.example", token_endpoint_auth_method="private_key_jwt", public_key=pem.decode("ascii"),
        as_client_ids={strict.issuer: client.as_id},
    )  # fmt: skip
    now = int(clock.now)
    claims = {"iss": signed, "sub": signed, "aud": idp.token_endpoint, "iat": now, "exp": now + 60, "jti": "a-1"}
    client_assertion = jwt.encode(claims, key, algorithm="ES256")
    auth = {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": client_assertion}
    id_token = idp.issue_id_token(USER, audience=signed)
    answer = exchange(http, idp, strict, id_token, None, **auth)
    assert answer.status_code == 200, answer.text
    replayed = exchange(http, idp, strict, id_token, None, **auth)
    assert_refused(replayed, 401, "invalid_client", [client_assertion, id_token], "already used")
    assert idp.audit.assertion_replays == 1
    assert idp.get_client(signed).client_secret is None


def test_scope_flows_from_the_exchange_to_the_access_token(clock, http):
    with IdentityProvider(clock=clock) as idp, StrictAuthServer(clock=clock, scopes_supported=("mcp", "admin")) as as_:
        as_.trust_identity_provider(idp)
        client = Client(idp, as_)
        # No scope asked of the IdP: none in the answer or the ID-JAG; the AS grants its default.
        id_token = idp.issue_id_token(USER, audience=client.idp_id)
        answer = exchange(http, idp, as_, id_token, client.idp_auth)
        assert answer.status_code == 200 and "scope" not in answer.json()
        id_jag = answer.json()["access_token"]
        assert "scope" not in claims_of(id_jag, idp.public_key_pem, as_.issuer)
        assert redeem(http, as_, id_jag, auth=client.as_auth).json()["scope"] == "mcp admin"
        # A scope asked of the IdP bounds what the AS grants.
        narrow = id_jag_for(http, idp, as_, client, scope="mcp")
        wider = redeem(http, as_, narrow, auth=client.as_auth, scope="mcp admin")
        assert_refused(wider, 400, "invalid_scope", narrow, "exceeds the ID-JAG's scope")
        assert redeem(http, as_, narrow, auth=client.as_auth, scope="mcp").json()["scope"] == "mcp"
        both = id_jag_for(http, idp, as_, client, scope="admin mcp")
        assert redeem(http, as_, both, auth=client.as_auth, scope="admin").json()["scope"] == "admin"
        again = id_jag_for(http, idp, as_, client, scope="admin mcp")
        assert redeem(http, as_, again, auth=client.as_auth).json()["scope"] == "admin mcp"
        # A scope the AS does not have is refused even when the IdP granted it.
        odd = id_jag_for(http, idp, as_, client, scope="mcp root")
        assert_refused(redeem(http, as_, odd, auth=client.as_auth), 400, "invalid_scope", odd, "root")
        malformed = minted(idp, as_, client, extra_claims={"scope": ["mcp"]})
        assert_refused(redeem(http, as_, malformed, auth=client.as_auth), 400, "invalid_grant", malformed, "scope")
        # A scope the client is not allowed at the IdP's exchange is malformed there.
        bad = exchange(http, idp, as_, idp.issue_id_token(USER, audience=client.idp_id), client.idp_auth, scope="a  b")
        assert_refused(bad, 400, "invalid_scope", words="malformed scope")


# --------------------------------------------------------------------------- IdP refusals


def test_the_identity_provider_checks_the_id_token(http, idp, strict, client, clock):
    other_client = idp.register_client(as_client_ids={strict.issuer: client.as_id})
    with IdentityProvider(clock=clock) as stranger:
        foreign = stranger.issue_id_token(USER, audience=client.idp_id)
    good = idp.issue_id_token(USER, audience=client.idp_id)
    header, payload, signature = good.split(".")
    cases = [
        ("garbage", "not a well-formed JWT"),
        (f"{header}.{payload}", "not a well-formed JWT"),
        (f"{header}.{payload}.{signature[:-4]}AAAA", "signature does not verify"),
        (foreign, "signature does not verify with this identity provider's key"),
        (idp.issue_id_token(USER, audience=client.idp_id, algorithm="none"), "alg 'none' is not accepted"),
        (idp.issue_id_token(USER, audience=other_client), "aud does not name the authenticated client"),
        (idp.issue_id_token(USER, audience=[FOREIGN]), "aud does not name the authenticated client"),
        (idp.issue_id_token(USER, audience=client.idp_id, extra_claims={"iss": FOREIGN}), "iss is not the expected"),
        (idp.issue_id_token(USER, audience=client.idp_id, extra_claims={"sub": REMOVE}), "has no sub"),
        (idp.issue_id_token(USER, audience=client.idp_id, extra_claims={"exp": REMOVE}), "has no exp"),
        (idp.issue_id_token(USER, audience=client.idp_id, lifetime=60, now=clock.now - 91), "has expired"),
        (minted(idp, strict, client, audience=client.idp_id), "is an ID-JAG, not an ID token"),
    ]
    for token, words in cases:
        assert_refused(exchange(http, idp, strict, token, client.idp_auth), 400, "invalid_grant", token, words)
    # An aud array naming the client is an ID token for it; one within the leeway has not expired.
    for token in (
        idp.issue_id_token(USER, audience=[FOREIGN, client.idp_id]),
        idp.issue_id_token(USER, audience=client.idp_id, lifetime=60, now=clock.now - 89),
    ):
        assert exchange(http, idp, strict, token, client.idp_auth).status_code == 200
    # An ID token that was good expires.
    clock.advance(300 + 31)
    assert_refused(exchange(http, idp, strict, good, client.idp_auth), 400, "invalid_grant", good, "has expired")
    audit = idp.audit
    assert audit.exchanges_requested == len(cases) + 3
    assert audit.exchanges_issued == 2 and audit.refusals == {"invalid_grant": len(cases) + 1}


def test_the_identity_provider_checks_the_exchange_parameters(http, idp, strict, client):
    id_token = idp.issue_id_token(USER, audience=client.idp_id)
    cases = [
        ({"subject_token": None}, "invalid_request", "the subject_token parameter is required"),
        ({"subject_token_type": None}, "invalid_request", "the subject_token_type parameter is required"),
        ({"subject_token_type": ACCESS_TOKEN_TYPE}, "invalid_request", f"subject_token_type must be {ID_TOKEN_TYPE}"),
        ({"requested_token_type": None}, "invalid_request", "the requested_token_type parameter is required"),
        ({"requested_token_type": ACCESS_TOKEN_TYPE}, "invalid_request", "requested_token_type must be"),
        ({"audience": None}, "invalid_request", "the audience parameter is required"),
        ({"resource": None}, "invalid_request", "the resource parameter is required"),
        ({"actor_token": id_token, "actor_token_type": ID_TOKEN_TYPE}, "invalid_request", "actor tokens"),
        ({"resource": "/mcp"}, "invalid_target", "absolute URI"),
        ({"resource": strict.mcp_url + "#frag"}, "invalid_target", "fragment"),
        ({"audience": FOREIGN}, "invalid_target", "may not request ID-JAGs for that audience"),
        ({"audience": strict.issuer + "/"}, "invalid_target", "may not request ID-JAGs for that audience"),
        ({"audience": strict.token_endpoint}, "invalid_target", "may not request ID-JAGs for that audience"),
        ({"grant_type": JWT_BEARER_GRANT}, "unsupported_grant_type", "serves only"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type", TOKEN_EXCHANGE_GRANT),
        ({"grant_type": None}, "invalid_request", "missing grant_type"),
    ]
    for changes, error, words in cases:
        response = exchange(http, idp, strict, id_token, client.idp_auth, **changes)
        assert_refused(response, 400, error, id_token, words)
    repeated = http.post(
        idp.token_endpoint,
        data=[
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", id_token),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("requested_token_type", ID_JAG_TOKEN_TYPE),
            ("audience", strict.issuer),
            ("resource", strict.mcp_url),
            ("resource", FOREIGN),
        ],
        auth=client.idp_auth,
        timeout=10,
    )
    assert_refused(repeated, 400, "invalid_target", id_token, "more than once")
    as_json = http.post(idp.token_endpoint, json={"grant_type": TOKEN_EXCHANGE_GRANT}, auth=client.idp_auth, timeout=10)
    assert_refused(as_json, 400, "invalid_request", words="Content-Type must be")
    # None of those spent anything: the same ID token still exchanges.
    assert exchange(http, idp, strict, id_token, client.idp_auth).status_code == 200
    audit = idp.audit
    assert audit.exchanges_refused == len(cases) + 2 and audit.exchanges_issued == 1
    assert audit.refusals == {"invalid_request": 10, "invalid_target": 6, "unsupported_grant_type": 2}
    refused = audit.events_of(IdpEventKind.EXCHANGE_REFUSED)
    assert len(refused) == len(cases) + 2 and all(event.client_id == client.idp_id for event in refused)


def test_the_identity_provider_authenticates_its_clients(http, idp, strict, client):
    id_token = idp.issue_id_token(USER, audience=client.idp_id)
    post = idp.register_client(token_endpoint_auth_method="client_secret_post")
    post_secret = idp.get_client(post).client_secret
    cases = [
        ((client.idp_id, "wrong"), {}, "client authentication failed"),
        (("idp-client-nobody", "x"), {}, "unknown client"),
        (None, {}, "client authentication required"),
        (None, {"client_id": client.idp_id}, "must authenticate with client_secret_basic, not none"),
        (None, {"client_id": client.idp_id, "client_secret": client.idp_secret}, "not client_secret_post"),
        ((post, post_secret), {}, "must authenticate with client_secret_post, not client_secret_basic"),
        (None, {"client_id": post, "client_secret": "wrong"}, "client authentication failed"),
    ]
    for auth, data, words in cases:
        response = exchange(http, idp, strict, id_token, auth, **data)
        assert_refused(response, 401, "invalid_client", [id_token, client.idp_secret, post_secret], words)
        if auth is not None:
            assert response.headers["WWW-Authenticate"].startswith("Basic")
    both = exchange(http, idp, strict, id_token, client.idp_auth, client_secret=client.idp_secret)
    assert_refused(both, 400, "invalid_request", id_token, "more than one client authentication method")
    assert idp.audit.refusals == {"invalid_client": len(cases), "invalid_request": 1}


def test_identity_provider_metadata_and_keys(http, idp):
    documents = [http.get(idp.base_url + path, timeout=10) for path in (
        "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"
    )]  # fmt: skip
    assert [response.status_code for response in documents] == [200, 200]
    document = documents[0].json()
    assert documents[1].json() == document == idp.metadata()
    assert document["issuer"] == idp.issuer and document["token_endpoint"] == idp.token_endpoint
    assert document["grant_types_supported"] == [TOKEN_EXCHANGE_GRANT]
    assert document["identity_chaining_requested_token_types_supported"] == [ID_JAG_TOKEN_TYPE]
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert idp.metadata_url == idp.base_url + "/.well-known/oauth-authorization-server"
    keys = http.get(document["jwks_uri"], timeout=10).json()
    assert keys == {"keys": [idp.public_jwk]} and "d" not in idp.public_jwk
    assert idp.audit.metadata_requests == {
        "/.well-known/oauth-authorization-server": 1,
        "/.well-known/openid-configuration": 1,
    }
    # Another origin and another issuer than any strict server.
    with StrictAuthServer() as other:
        assert other.issuer != idp.issuer and other.port != idp.port
    assert http.post(idp.base_url + "/register", json={}, timeout=10).status_code == 404
    assert http.get(idp.token_endpoint, timeout=10).status_code == 405


def test_register_client_at_the_identity_provider(idp, strict):
    with pytest.raises(ValueError, match="token_endpoint_auth_method"):
        idp.register_client(token_endpoint_auth_method="none")
    with pytest.raises(ValueError, match="as_client_ids"):
        idp.register_client(as_client_ids={strict.issuer: ""})
    with pytest.raises(ValueError, match="public_key and no client_secret"):
        idp.register_client(token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="has no public_key"):
        idp.register_client(public_key=idp.public_key_pem)
    with pytest.raises(ValueError, match="must not be empty"):
        idp.register_client(client_secret="")
    assert idp.register_client("agent", "s3cret") == "agent"
    assert idp.get_client("agent").client_secret == "s3cret"
    assert "s3cret" not in repr(idp.get_client("agent"))
    with pytest.raises(ValueError, match="already registered"):
        idp.register_client("agent")
    with pytest.raises(KeyError):
        idp.get_client("nobody")
    (event, *_) = idp.audit.events_of(IdpEventKind.CLIENT_REGISTERED)
    assert event.client_id == "agent" and event.detail == "client_secret_basic at no audience"
    idp.reset_audit()
    assert idp.audit.events == ()
    with pytest.raises(RuntimeError, match="not started"):
        IdentityProvider().issuer
    with pytest.raises(ValueError, match="id_jag_lifetime"):
        IdentityProvider(id_jag_lifetime=0)


def test_id_jag_lifetime_is_configurable(clock, http, strict):
    with IdentityProvider(clock=clock, id_jag_lifetime=90) as idp:
        strict.trust_identity_provider(idp)
        client = Client(idp, strict)
        answer = exchange(http, idp, strict, idp.issue_id_token(USER, audience=client.idp_id), client.idp_auth)
        assert answer.json()["expires_in"] == 90
        claims = claims_of(answer.json()["access_token"], idp.public_key_pem, strict.issuer)
        assert claims["exp"] - claims["iat"] == 90


# ---------------------------------------------------------------------------- AS refusals


def test_the_id_jag_must_name_this_authorization_server(http, idp, strict, client):
    for aud in (strict.token_endpoint, strict.mcp_url, FOREIGN, [FOREIGN], idp.issuer):
        token = minted(idp, strict, client, extra_claims={"aud": aud})
        refused = redeem(http, strict, token, auth=client.as_auth)
        assert_refused(refused, 400, "invalid_grant", token, "the ID-JAG's aud does not name this authorization server")
    for aud in (strict.issuer + "/", [FOREIGN, strict.issuer]):
        token = minted(idp, strict, client, extra_claims={"aud": aud})
        assert redeem(http, strict, token, auth=client.as_auth).status_code == 200


def test_the_typ_header_says_id_jag(http, idp, strict, client, clock):
    # Without the ID-JAG typ it is no ID-JAG: a workload token from an issuer not trusted for those.
    for typ in (None, "JWT", "oauth-id-jag"):
        token = minted(idp, strict, client, typ=typ)
        refused = redeem(http, strict, token, auth=client.as_auth, resource=strict.mcp_url)
        assert_refused(refused, 400, "invalid_grant", token, "the assertion's issuer is not trusted")
    # Media types are case-insensitive and application/ may be left in.
    for typ in ("application/oauth-id-jag+jwt", "OAuth-ID-JAG+JWT"):
        token = minted(idp, strict, client, typ=typ)
        assert redeem(http, strict, token, auth=client.as_auth).status_code == 200, typ
    # A trusted workload issuer's token with the ID-JAG typ is an ID-JAG from an untrusted IdP.
    workload = WorkloadIssuer("https://workload.example", clock=clock)
    strict.trust_workload_issuer(workload)
    token = workload._signer.sign(
        {"iss": workload.issuer, "sub": "wl", "aud": strict.issuer, "client_id": client.as_id,
         "resource": strict.mcp_url, "iat": int(clock.now), "exp": int(clock.now) + 60, "jti": "wl-1"},
        headers={"typ": ID_JAG_TYP},
    )  # fmt: skip
    refused = redeem(http, strict, token, auth=client.as_auth, resource=strict.mcp_url)
    assert_refused(refused, 400, "invalid_grant", token, "not a trusted identity provider")
    # Workload tokens keep their handling, also with anonymous requests.
    plain = workload.mint("wl", audience=strict.token_endpoint)
    assert redeem(http, strict, plain, resource=strict.mcp_url).status_code == 200
    assert strict.audit.id_jag_grants == 2


def test_the_id_jag_is_bound_to_the_authenticated_client(http, idp, strict, client):
    other = Client(idp, strict)
    token = id_jag_for(http, idp, strict, client)
    refused = redeem(http, strict, token, auth=other.as_auth)
    assert_refused(refused, 400, "invalid_grant", token, "the ID-JAG's client_id is not the authenticated client")
    for claims in ({"client_id": REMOVE}, {"client_id": ""}, {"client_id": 7}):
        bare = minted(idp, strict, client, extra_claims=claims)
        assert_refused(redeem(http, strict, bare, auth=client.as_auth), 400, "invalid_grant", bare, "has no client_id")
    # The IdP's own client id is not the client's id at the AS.
    wrong = minted(idp, strict, client, client_id=client.idp_id)
    refused = redeem(http, strict, wrong, auth=client.as_auth)
    assert_refused(refused, 400, "invalid_grant", wrong, "not the authenticated client")
    assert redeem(http, strict, token, auth=client.as_auth).status_code == 200  # the refusals spent nothing


def test_an_id_jag_needs_client_authentication(http, idp, strict, client):
    token = id_jag_for(http, idp, strict, client)
    anonymous = redeem(http, strict, token)
    assert_refused(anonymous, 401, "invalid_client", token, "an ID-JAG needs client authentication")
    strict.anonymous_jwt_bearer = False
    assert_refused(redeem(http, strict, token), 401, "invalid_client", token, "client authentication required")
    public = strict.register_client(grant_types=[JWT_BEARER_GRANT])
    as_public = minted(idp, strict, client, client_id=public)
    refused = redeem(http, strict, as_public, client_id=public)
    assert_refused(refused, 401, "invalid_client", as_public, "an ID-JAG needs client authentication")
    wrong_secret = redeem(http, strict, token, auth=(client.as_id, "wrong"))
    assert_refused(wrong_secret, 401, "invalid_client", token, "client authentication failed")
    unregistered = strict.register_client(token_endpoint_auth_method="client_secret_basic")
    as_unregistered = minted(idp, strict, client, client_id=unregistered)
    refused = redeem(http, strict, as_unregistered, auth=(unregistered, strict.get_client(unregistered).client_secret))
    assert_refused(refused, 400, "unauthorized_client", as_unregistered, "not registered for the")
    assert strict.audit.grants_failed == {JWT_BEARER_GRANT: 5} and strict.audit.grants_ok == {}
    assert redeem(http, strict, token, auth=client.as_auth).status_code == 200


def test_a_private_key_jwt_client_presents_an_id_jag(http, idp, strict, clock):
    strict.trust_identity_provider(idp)
    key = ec.generate_private_key(ec.SECP256R1())
    client = Client(
        idp,
        strict,
        token_endpoint_auth_method="private_key_jwt",
        public_key=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    token = id_jag_for(http, idp, strict, client)
    now = int(clock.now)
    claims = {"iss": client.as_id, "sub": client.as_id, "aud": strict.issuer, "iat": now, "exp": now + 60}
    client_assertion = jwt.encode({**claims, "jti": secrets.token_urlsafe(8)}, key, algorithm="ES256")
    response = redeem(
        http, strict, token, client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=client_assertion
    )
    assert response.status_code == 200, response.text
    assert echo(http, strict, response.json()["access_token"]).status_code == 200
    (event,) = strict.audit.events_of(EventKind.GRANT_OK)
    assert event.client_id == client.as_id


def test_the_id_jag_must_be_for_this_resource(http, idp, strict, client):
    for resource in (FOREIGN + "/mcp", strict.issuer, [FOREIGN]):
        token = minted(idp, strict, client, resource=resource)
        refused = redeem(http, strict, token, auth=client.as_auth)
        assert_refused(refused, 400, "invalid_grant", token, "the ID-JAG's resource is not this server's MCP resource")
    for value in (REMOVE, [], "", 3):
        token = minted(idp, strict, client, extra_claims={"resource": value})
        assert_refused(redeem(http, strict, token, auth=client.as_auth), 400, "invalid_grant", token, "resource")
    token = id_jag_for(http, idp, strict, client)
    other = redeem(http, strict, token, auth=client.as_auth, resource=FOREIGN + "/mcp")
    assert_refused(other, 400, "invalid_target", token, "the resource parameter is not the ID-JAG's resource")
    assert redeem(http, strict, token, auth=client.as_auth, resource=strict.mcp_url).status_code == 200
    # Without a resource parameter (even with require_resource) the ID-JAG's resource is the audience.
    assert strict.require_resource
    implicit = redeem(http, strict, id_jag_for(http, idp, strict, client), auth=client.as_auth)
    assert implicit.status_code == 200 and echo(http, strict, implicit.json()["access_token"]).status_code == 200
    several = minted(idp, strict, client, extra_claims={"resource": [FOREIGN, strict.mcp_url]})
    assert redeem(http, strict, several, auth=client.as_auth).status_code == 200


def test_an_expired_id_jag_is_refused(http, idp, strict, client, clock):
    token = id_jag_for(http, idp, strict, client)
    clock.advance(300 + 31)
    assert_refused(redeem(http, strict, token, auth=client.as_auth), 400, "invalid_grant", token, "has expired")
    within = minted(idp, strict, client, now=clock.now - 329)
    assert redeem(http, strict, within, auth=client.as_auth).status_code == 200
    for claim in ("exp", "iat", "jti", "sub"):
        token = minted(idp, strict, client, extra_claims={claim: REMOVE})
        refused = redeem(http, strict, token, auth=client.as_auth)
        assert_refused(refused, 400, "invalid_grant", token, f"the ID-JAG has no {claim}")
    future = minted(idp, strict, client, now=clock.now + 120)
    assert_refused(redeem(http, strict, future, auth=client.as_auth), 400, "invalid_grant", future, "in the future")


def test_a_replayed_id_jag_is_refused_and_counted(http, idp, strict, client):
    token = id_jag_for(http, idp, strict, client)
    assert redeem(http, strict, token, auth=client.as_auth).status_code == 200
    replay = redeem(http, strict, token, auth=client.as_auth)
    assert_refused(replay, 400, "invalid_grant", token, "the ID-JAG was already used (jti replay)")
    audit = strict.audit
    assert audit.assertion_replays == 1 and audit.id_jag_grants == 1
    assert audit.grants == {JWT_BEARER_GRANT: 2} and audit.grants_failed == {JWT_BEARER_GRANT: 1}
    (event,) = audit.events_of(EventKind.ASSERTION_REPLAYED)
    assert event.detail.startswith(f"{JWT_BEARER_GRANT}: iss={idp.issuer} jti=") and event.client_id == client.as_id
    # A new ID-JAG with the same jti is a replay too, whoever presents it.
    other = Client(idp, strict)
    jti = claims_of(token, idp.public_key_pem, strict.issuer)["jti"]
    same = minted(idp, strict, other, jti=jti)
    assert_refused(redeem(http, strict, same, auth=other.as_auth), 400, "invalid_grant", same, "already used")
    assert strict.audit.assertion_replays == 2


def test_id_jags_from_untrusted_identity_providers_are_refused(http, idp, strict, clock):
    client = Client(idp, strict)  # the AS does not trust idp (yet)
    token = id_jag_for(http, idp, strict, client)
    refused = redeem(http, strict, token, auth=client.as_auth)
    assert_refused(refused, 400, "invalid_grant", token, "the ID-JAG's issuer is not a trusted identity provider")
    # Trusted by name with another key: a forgery.
    with IdentityProvider(clock=clock) as impostor:
        strict.trust_identity_provider(idp.issuer, impostor.public_key_pem)
        forged = redeem(http, strict, token, auth=client.as_auth)
        assert_refused(forged, 400, "invalid_grant", token, "signature does not verify with the identity provider's")
        token_of_impostor = minted(impostor, strict, client)
        assert_refused(redeem(http, strict, token_of_impostor, auth=client.as_auth), 400, "invalid_grant",
                       token_of_impostor, "not a trusted identity provider")  # fmt: skip
    strict.trust_identity_provider(idp.issuer, idp.public_jwk)  # trusting again replaces the key
    assert redeem(http, strict, token, auth=client.as_auth).status_code == 200
    for claims in ({"iss": REMOVE}, {"iss": FOREIGN}):
        other = minted(idp, strict, client, extra_claims=claims)
        assert_refused(redeem(http, strict, other, auth=client.as_auth), 400, "invalid_grant", other, "not a trusted")
    unsigned = minted(idp, strict, client, algorithm="none")
    assert_refused(redeem(http, strict, unsigned, auth=client.as_auth), 400, "invalid_grant", unsigned, "'none'")
    header, payload, _signature = token.split(".")
    for broken in (f"{header}.{payload}", f"{header}.{payload}.AAAA"):
        response = redeem(http, strict, broken, auth=client.as_auth)
        assert_refused(response, 400, "invalid_grant", broken)


def test_the_metadata_lists_the_id_jag_profile_once_an_identity_provider_is_trusted(http, idp, strict):
    profiles = "authorization_grant_profiles_supported"
    assert profiles not in http.get(strict.authorization_server_metadata_url, timeout=10).json()
    strict.trust_identity_provider(idp)
    document = http.get(strict.authorization_server_metadata_url, timeout=10).json()
    assert document[profiles] == ["urn:ietf:params:oauth:grant-profile:id-jag"]
    assert JWT_BEARER_GRANT in document["grant_types_supported"]
    assert strict.authorization_server_metadata() == document
    strict.as_metadata_overrides = {profiles: REMOVE}
    assert profiles not in http.get(strict.authorization_server_metadata_url, timeout=10).json()


def test_trust_identity_provider_forms(strict, clock):
    with pytest.raises(RuntimeError, match="not started"):
        strict.trust_identity_provider(IdentityProvider(clock=clock))
    with IdentityProvider(clock=clock) as idp:
        with pytest.raises(TypeError, match="brings its own key"):
            strict.trust_identity_provider(idp, idp.public_key_pem)
        with pytest.raises(TypeError, match="needs its public_key"):
            strict.trust_identity_provider(idp.issuer)
        with pytest.raises(ValueError, match="non-empty"):
            strict.trust_identity_provider("", idp.public_key_pem)
        with pytest.raises(ValueError, match="symmetric"):
            strict.trust_identity_provider(idp.issuer, {"kty": "oct", "k": "c2VjcmV0"})
        strict.trust_identity_provider(idp.issuer, idp.public_key_pem)
        assert "authorization_grant_profiles_supported" in strict.authorization_server_metadata()
    assert "not started" in repr(IdentityProvider())


# ----------------------------------------------------------------------------------- secrecy


def test_no_answer_log_or_audit_quotes_a_token(http, idp, strict, client, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="mcp_sync_auth.testing")
    secrets_sent = [client.idp_secret, client.as_secret]
    answers = []

    def refused(response, *tokens):
        assert response.status_code >= 400, response.text
        secrets_sent.extend(tokens)
        answers.append(response.text)

    id_token = idp.issue_id_token(USER, audience=client.idp_id)
    secrets_sent.append(id_token)
    expired = idp.issue_id_token(USER, audience=client.idp_id, now=clock.now - 1000)
    refused(exchange(http, idp, strict, expired, client.idp_auth), expired)
    refused(exchange(http, idp, strict, id_token, (client.idp_id, "wrong-secret-xyz")), "wrong-secret-xyz")
    refused(exchange(http, idp, strict, id_token, client.idp_auth, audience=FOREIGN))
    refused(exchange(http, idp, strict, id_token, client.idp_auth, subject_token_type=ACCESS_TOKEN_TYPE))
    good = exchange(http, idp, strict, id_token, client.idp_auth)
    id_jag = good.json()["access_token"]
    secrets_sent.append(id_jag)
    refused(redeem(http, strict, id_jag), id_jag)
    refused(redeem(http, strict, id_jag, auth=(client.as_id, "nope-secret-xyz")), "nope-secret-xyz")
    granted = redeem(http, strict, id_jag, auth=client.as_auth)
    secrets_sent.append(granted.json()["access_token"])
    refused(redeem(http, strict, id_jag, auth=client.as_auth))  # replay
    for changes in ({"aud": FOREIGN}, {"client_id": "someone"}, {"resource": FOREIGN}):
        bad = minted(idp, strict, client, extra_claims=changes)
        refused(redeem(http, strict, bad, auth=client.as_auth), bad)

    everything = "\n".join(
        [
            *answers,
            caplog.text,
            repr(strict.audit),
            repr(idp.audit),
            *(event.detail for event in strict.audit.events),
            *(event.detail for event in idp.audit.events),
        ]
    )
    for token in secrets_sent:
        for part in token.split("."):
            assert part not in everything


# ------------------------------------------------------------------------------ without PyJWT

WITHOUT_PYJWT = textwrap.dedent(
    """
    import sys
    sys.modules["jwt"] = None  # as if the jwt extra were not installed
    import mcp_sync_auth
    from mcp_sync_auth.testing import IdentityProvider

    try:
        IdentityProvider()
    except mcp_sync_auth.MissingExtra as exc:
        print(exc.extra, "|", exc)
    """
)


def test_without_pyjwt_an_identity_provider_names_the_extra():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYJWT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "jwt | an IdentityProvider needs the 'PyJWT' package: pip install 'mcp-sync-auth[jwt]'"
    )
