"""The strict reference server's authorization surface over real HTTP: metadata, DCR, /authorize,
the authorization_code and client_credentials grants, and every way they refuse a request."""

import base64
import hashlib
import json
import logging
import secrets
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mcp_sync_auth.testing import ISS_MODES, REMOVE, EventKind, StrictAuthServer, s256_challenge

MARKER = "AUTHZLEAK"
LOOPBACK = "http://127.0.0.1:8765/callback"
WEB = "https://app.example/cb"
OMIT = object()


# ------------------------------------------------------------------------------------ helpers


def pkce_pair():
    """A verifier and its S256 challenge, computed here independently of the server's code."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_client(server, redirect_uris=(LOOPBACK,), **kwargs):
    return server.register_client(redirect_uris=list(redirect_uris), **kwargs)


def authorize(http, server, client_id, redirect_uri=LOOPBACK, challenge=None, **params):
    """GET /authorize without following the redirect. ``OMIT`` drops a default parameter."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge if challenge is not None else pkce_pair()[1],
        "code_challenge_method": "S256",
        "state": "st-123",
        "resource": server.mcp_url,
    }
    query.update(params)
    query = {name: value for name, value in query.items() if value is not OMIT}
    return http.get(server.authorization_endpoint, params=query, allow_redirects=False, timeout=10)


def redirected(response):
    """(URI without query, {name: value}) of a 302; fails unless the server redirected."""
    assert response.status_code == 302, response.text
    assert response.content == b""
    assert response.headers["Cache-Control"] == "no-store"
    parts = urlsplit(response.headers["Location"])
    params = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    assert all(len(values) == 1 for values in parse_qs(parts.query).values())
    return f"{parts.scheme}://{parts.netloc}{parts.path}", params


def refused_page(response):
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    return response.text


def get_code(http, server, client_id, redirect_uri=LOOPBACK, **params):
    verifier, challenge = pkce_pair()
    _, reply = redirected(authorize(http, server, client_id, redirect_uri, challenge, **params))
    return reply["code"], verifier


def exchange(http, server, client_id, code, verifier, redirect_uri=LOOPBACK, resource="default", **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if client_id is not None:
        data["client_id"] = client_id
    if verifier is not None:
        data["code_verifier"] = verifier
    if resource == "default":
        resource = server.mcp_url
    if resource is not None:
        data["resource"] = resource
    auth = extra.pop("auth", None)
    data.update(extra)
    return http.post(server.token_endpoint, data=data, auth=auth, timeout=10)


def refresh(http, server, client_id, refresh_token):
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "resource": server.mcp_url,
    }
    return http.post(server.token_endpoint, data=data, timeout=10)


def echo(http, server, access_token, text="hi"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return http.post(server.mcp_url, json=body, headers=headers, timeout=10)


def rpc_result(response):
    """The JSON-RPC result of a reply sent as JSON or as one SSE event."""
    if response.headers["Content-Type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])["result"]
    return response.json()["result"]


def register(http, server, body):
    return http.post(server.registration_endpoint, json=body, timeout=10)


def assert_oauth_error(response, status, error, description=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["error"] == error
    if description is not None:
        assert response.json()["error_description"] == description


def assert_redirect_error(response, server, error, state="st-123", redirect_uri=LOOPBACK):
    base, reply = redirected(response)
    assert base == redirect_uri
    assert reply["error"] == error and reply["error_description"]
    assert "code" not in reply
    assert reply.get("state") == state
    assert reply["iss"] == server.issuer
    return reply


# ----------------------------------------------------------------------------------- metadata


def test_protected_resource_metadata(strict, http):
    response = http.get(strict.resource_metadata_url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "resource": strict.mcp_url,
        "authorization_servers": [strict.issuer],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }
    assert response.json() == strict.protected_resource_metadata()
    # Only the path-inserted location is served (clients must try it before the root).
    assert http.get(strict.base_url + "/.well-known/oauth-protected-resource", timeout=10).status_code == 404
    # The 401 challenge of /mcp points at exactly this document.
    challenge = http.post(strict.mcp_url, json={}, timeout=10).headers["WWW-Authenticate"]
    assert f'resource_metadata="{strict.resource_metadata_url}"' in challenge


def test_root_metadata_knob(clock, http):
    with StrictAuthServer(clock=clock, root_metadata=True) as server:
        root = server.base_url + "/.well-known/oauth-protected-resource"
        assert http.get(root, timeout=10).json() == server.protected_resource_metadata()
        server.serve_metadata = False  # serve_metadata=False hides both documents
        assert http.get(root, timeout=10).status_code == 404
        server.serve_metadata, server.root_metadata = True, False
        assert http.get(root, timeout=10).status_code == 404
        assert server.audit.metadata_requests == {"/.well-known/oauth-protected-resource": 3}


def test_authorization_server_metadata(strict, http):
    assert strict.authorization_server_metadata_url == strict.base_url + "/.well-known/oauth-authorization-server"
    response = http.get(strict.authorization_server_metadata_url, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "issuer": strict.issuer,
        "authorization_endpoint": strict.base_url + "/authorize",
        "token_endpoint": strict.base_url + "/token",
        "registration_endpoint": strict.base_url + "/register",
        "revocation_endpoint": strict.base_url + "/revoke",
        "scopes_supported": ["mcp"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": False,
    }
    assert not strict.issuer.endswith("/")
    assert http.get(strict.base_url + "/.well-known/openid-configuration", timeout=10).status_code == 404
    assert strict.audit.metadata_requests == {"/.well-known/oauth-authorization-server": 1}


def test_scopes_supported_knob(clock, http):
    with StrictAuthServer(clock=clock, scopes_supported=("mcp", "mcp:write")) as server:
        assert server.protected_resource_metadata()["scopes_supported"] == ["mcp", "mcp:write"]
        server.scopes_supported = ["read"]
        assert http.get(server.authorization_server_metadata_url, timeout=10).json()["scopes_supported"] == ["read"]
        for bad in ((), "mcp", ("two words",), ("",)):
            with pytest.raises(ValueError):
                server.scopes_supported = bad
        assert server.scopes_supported == ("read",)


def test_metadata_overrides(strict, http):
    strict.prm_overrides = {"resource": "https://evil.example/mcp", "scopes_supported": REMOVE}
    strict.as_metadata_overrides = {
        "issuer": strict.issuer + "/",
        "code_challenge_methods_supported": REMOVE,
        "registration_endpoint": None,
        "x-extra": [1, 2],
    }
    prm = http.get(strict.resource_metadata_url, timeout=10).json()
    assert prm == {
        "resource": "https://evil.example/mcp",
        "authorization_servers": [strict.issuer],
        "bearer_methods_supported": ["header"],
    }
    meta = http.get(strict.authorization_server_metadata_url, timeout=10).json()
    assert meta["issuer"] == strict.issuer + "/"
    assert "code_challenge_methods_supported" not in meta
    assert meta["registration_endpoint"] is None and meta["x-extra"] == [1, 2]
    # Overrides change the documents only: PKCE is still enforced.
    client_id = public_client(strict)
    assert_redirect_error(authorize(http, strict, client_id, code_challenge=OMIT), strict, "invalid_request")
    # The knob is a read-only view: mutating it fails loudly instead of silently doing nothing.
    with pytest.raises(TypeError):
        strict.prm_overrides["resource"] = "x"
    assert repr(REMOVE) == "REMOVE"
    with pytest.raises(TypeError):
        strict.as_metadata_overrides = {"issuer": object()}
    assert strict.as_metadata_overrides["issuer"] == strict.issuer + "/"  # unchanged by the failed set
    strict.prm_overrides = None
    strict.as_metadata_overrides = {}
    assert http.get(strict.resource_metadata_url, timeout=10).json()["resource"] == strict.mcp_url
    assert strict.authorization_server_metadata()["code_challenge_methods_supported"] == ["S256"]


def test_metadata_overrides_as_constructor_arguments(clock, http):
    with StrictAuthServer(
        clock=clock,
        prm_overrides={"authorization_servers": ["https://other.example"]},
        as_metadata_overrides={"authorization_response_iss_parameter_supported": REMOVE},
    ) as server:
        assert http.get(server.resource_metadata_url, timeout=10).json()["authorization_servers"] == [
            "https://other.example"
        ]
        assert "authorization_response_iss_parameter_supported" not in server.authorization_server_metadata()


def test_serve_metadata_false(clock, http):
    with StrictAuthServer(clock=clock, serve_metadata=False) as server:
        for url in (server.resource_metadata_url, server.authorization_server_metadata_url):
            response = http.get(url, timeout=10)
            assert response.status_code == 404 and response.json() == {"error": "not_found"}
        # The 2025-03-26 fallback endpoints at the origin keep working.
        client_id = public_client(server)
        assert redirected(authorize(http, server, client_id))[1]["code"]
        server.serve_metadata = True
        assert http.get(server.resource_metadata_url, timeout=10).status_code == 200
        assert server.audit.metadata_requests == {
            "/.well-known/oauth-protected-resource/mcp": 2,
            "/.well-known/oauth-authorization-server": 1,
        }


def test_allow_registration_false(clock, http):
    with StrictAuthServer(clock=clock, allow_registration=False) as server:
        assert "registration_endpoint" not in server.authorization_server_metadata()
        response = register(http, server, {"redirect_uris": [LOOPBACK]})
        assert response.status_code == 404
        server.allow_registration = True
        assert register(http, server, {"redirect_uris": [LOOPBACK]}).status_code == 201
        assert server.authorization_server_metadata()["registration_endpoint"] == server.registration_endpoint
        audit = server.audit
        assert (audit.registration_requests, audit.registrations, audit.registrations_failed) == (2, 1, 0)


# ---------------------------------------------------------------------------------------- DCR


def test_register_public_client(strict, http, clock):
    body = {
        "redirect_uris": [LOOPBACK, "http://localhost/cb", "http://[::1]:9000/cb", WEB],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "client_name": "Test Client",
        "scope": "mcp",
        "logo_uri": "https://ignored.example/logo.png",
    }
    response = register(http, strict, body)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    info = response.json()
    client_id = info.pop("client_id")
    assert client_id and "client_secret" not in info
    assert info == {
        "client_id_issued_at": int(clock.now),
        "redirect_uris": body["redirect_uris"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "client_name": "Test Client",
        "scope": "mcp",
        "application_type": "native",
    }
    client = strict.get_client(client_id)
    assert client.dynamic and client.redirect_uris == tuple(body["redirect_uris"])
    assert client.client_secret is None and not client.confidential
    audit = strict.audit
    assert (audit.registration_requests, audit.registrations, audit.registrations_failed) == (1, 1, 0)
    [event] = audit.events_of(EventKind.CLIENT_REGISTERED)
    assert event.client_id == client_id and event.detail == "none (dynamic)"


def test_register_defaults_to_a_confidential_basic_client(strict, http):
    # RFC 7591 §2: token_endpoint_auth_method defaults to client_secret_basic, grant_types to
    # authorization_code, response_types to code.
    info = register(http, strict, {"redirect_uris": [WEB]}).json()
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    assert info["grant_types"] == ["authorization_code"] and info["response_types"] == ["code"]
    assert MARKER in info["client_secret"] and info["client_secret_expires_at"] == 0
    client = strict.get_client(info["client_id"])
    assert client.client_secret == info["client_secret"]
    assert info["client_secret"] not in repr(client)


def test_register_client_credentials_client_without_redirect_uris(strict, http):
    body = {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}
    info = register(http, strict, body).json()
    assert info["grant_types"] == ["client_credentials"] and info["response_types"] == []
    assert "redirect_uris" not in info and info["client_secret"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": LOOPBACK}, "invalid_redirect_uri"),
        ({"redirect_uris": [42]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.2/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["com.example.app:/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user@app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example:99999/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/c b"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK], "application_type": "web"}, "invalid_redirect_uri"),
        ({"redirect_uris": [LOOPBACK], "application_type": "desktop"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": ["password"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": []}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "grant_types": ["refresh_token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "response_types": []}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        (
            {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": [LOOPBACK], "scope": "mcp admin"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "scope": "mcp  double"}, "invalid_client_metadata"),
        ({"redirect_uris": [LOOPBACK], "client_name": 7}, "invalid_client_metadata"),
    ],
)
def test_register_rejects_invalid_metadata(strict, http, body, error):
    response = register(http, strict, body)
    assert_oauth_error(response, 400, error)
    audit = strict.audit
    assert (audit.registration_requests, audit.registrations, audit.registrations_failed) == (1, 0, 1)
    assert len(audit.events_of(EventKind.REGISTRATION_FAILED)) == 1


def test_register_rejects_bodies_that_are_not_json_objects(strict, http):
    url = strict.registration_endpoint
    as_form = http.post(url, data={"redirect_uris": LOOPBACK}, timeout=10)
    assert_oauth_error(as_form, 400, "invalid_client_metadata")
    headers = {"Content-Type": "application/json"}
    assert_oauth_error(http.post(url, data=b"{nope", headers=headers, timeout=10), 400, "invalid_client_metadata")
    assert_oauth_error(http.post(url, data=b"\xff", headers=headers, timeout=10), 400, "invalid_client_metadata")
    assert_oauth_error(http.post(url, json=[LOOPBACK], timeout=10), 400, "invalid_client_metadata")
    assert http.get(url, timeout=10).status_code == 405
    assert strict.audit.registrations_failed == 4


def test_register_client_helper_validates_like_dcr(strict):
    with pytest.raises(ValueError):
        strict.register_client(redirect_uris=["http://app.example/cb"])
    with pytest.raises(TypeError):
        strict.register_client(redirect_uris=LOOPBACK)
    with pytest.raises(ValueError):
        strict.register_client(grant_types=["client_credentials"])  # public
    with pytest.raises(ValueError):
        strict.register_client(scope="unknown")
    confidential = strict.get_client(strict.register_client(token_endpoint_auth_method="client_secret_basic"))
    assert confidential.grant_types == ("authorization_code", "refresh_token", "client_credentials")
    public = strict.get_client(strict.register_client(redirect_uris=[LOOPBACK], client_name="x"))
    assert public.grant_types == ("authorization_code", "refresh_token") and public.redirect_uris == (LOOPBACK,)
    assert not public.dynamic and strict.audit.registrations == 0


# ------------------------------------------------------------------------ authorization code flow


def test_full_flow_dcr_pkce_tokens_mcp_refresh(strict, http):
    registration = register(
        http,
        strict,
        {
            "redirect_uris": [LOOPBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    client_id = registration.json()["client_id"]
    verifier, challenge = pkce_pair()
    assert s256_challenge(verifier) == challenge

    response = authorize(http, strict, client_id, LOOPBACK, challenge, state="xyz")
    base, reply = redirected(response)
    assert base == LOOPBACK
    assert set(reply) == {"code", "state", "iss"}
    assert reply["state"] == "xyz" and reply["iss"] == strict.issuer

    token = exchange(http, strict, client_id, reply["code"], verifier)
    assert token.status_code == 200, token.text
    assert token.headers["Cache-Control"] == "no-store"
    tokens = token.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert (tokens["token_type"], tokens["expires_in"], tokens["scope"]) == ("Bearer", 60, "mcp")

    reply = echo(http, strict, tokens["access_token"], "héllo")
    assert reply.status_code == 200, reply.text
    assert rpc_result(reply)["content"] == [{"type": "text", "text": "héllo"}]

    rotated = refresh(http, strict, client_id, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    reuse = refresh(http, strict, client_id, tokens["refresh_token"])
    assert_oauth_error(reuse, 400, "invalid_grant")

    [chain] = strict.chains()
    assert (chain.client_id, chain.resource, chain.scope, chain.alive) == (client_id, strict.mcp_url, "mcp", False)
    audit = strict.audit
    assert (audit.authorization_requests, audit.authorization_codes_issued, audit.authorization_errors) == (1, 1, {})
    assert audit.last_authorization_params == {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": LOOPBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "xyz",
        "resource": strict.mcp_url,
    }
    assert audit.grants == {"authorization_code": 1, "refresh_token": 2}
    assert audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}
    assert len(audit.events_of(EventKind.AUTHORIZATION_CODE_ISSUED)) == 1


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_full_flow_for_confidential_clients(strict, http, method):
    info = register(http, strict, {"redirect_uris": [WEB], "token_endpoint_auth_method": method}).json()
    client_id, secret = info["client_id"], info["client_secret"]
    code, verifier = get_code(http, strict, client_id, WEB)
    if method == "client_secret_basic":
        response = exchange(http, strict, None, code, verifier, WEB, auth=(client_id, secret))
    else:
        response = exchange(http, strict, client_id, code, verifier, WEB, client_secret=secret)
    assert response.status_code == 200, response.text
    # Registered for authorization_code only (the RFC 7591 default): no refresh token.
    assert "refresh_token" not in response.json()
    assert echo(http, strict, response.json()["access_token"]).status_code == 200


def test_client_authentication_is_checked_before_the_code_is_spent(strict, http):
    info = register(http, strict, {"redirect_uris": [WEB]}).json()
    code, verifier = get_code(http, strict, info["client_id"], WEB)
    wrong = exchange(http, strict, None, code, verifier, WEB, auth=(info["client_id"], "wrong"))
    assert_oauth_error(wrong, 401, "invalid_client")
    right = exchange(http, strict, None, code, verifier, WEB, auth=(info["client_id"], info["client_secret"]))
    assert right.status_code == 200


# ---------------------------------------------------------------------------------------- PKCE


@pytest.mark.parametrize(
    "params",
    [
        {"code_challenge": OMIT},
        {"code_challenge_method": OMIT},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": "s256"},
        {"code_challenge": "too-short"},
        {"code_challenge": "=" * 43},
    ],
)
def test_authorize_requires_s256_pkce(strict, http, params):
    client_id = public_client(strict)
    assert_redirect_error(authorize(http, strict, client_id, **params), strict, "invalid_request")
    audit = strict.audit
    assert audit.authorization_codes_issued == 0 and audit.authorization_errors == {"invalid_request": 1}


def test_plain_pkce_with_verifier_as_challenge_is_refused(strict, http):
    client_id = public_client(strict)
    verifier, _ = pkce_pair()
    response = authorize(http, strict, client_id, challenge=verifier[:43], code_challenge_method="plain")
    assert_redirect_error(response, strict, "invalid_request")


@pytest.mark.parametrize(
    ("verifier", "description"),
    [
        ("wrong", "code_verifier does not match the code_challenge"),
        (None, "code_verifier is required"),
        ("short", "code_verifier does not match the code_challenge"),
        ("x" * 129, "code_verifier does not match the code_challenge"),
    ],
)
def test_token_request_with_bad_verifier_fails_and_spends_the_code(strict, http, verifier, description):
    client_id = public_client(strict)
    code, good = get_code(http, strict, client_id)
    if verifier == "wrong":
        verifier = pkce_pair()[0]
    assert_oauth_error(exchange(http, strict, client_id, code, verifier), 400, "invalid_grant", description)
    # A failed presentation spends the code: the right verifier cannot be tried afterwards.
    retry = exchange(http, strict, client_id, code, good)
    assert_oauth_error(retry, 400, "invalid_grant", "authorization code already used")
    audit = strict.audit
    assert strict.chains() == [] and audit.revocations == 0 and audit.code_reuse_detections == 1
    assert audit.grants_failed == {"authorization_code": 2}


# ---------------------------------------------------------------------------------- code reuse


def test_reused_code_revokes_the_tokens_issued_from_it(strict, http):
    client_id = public_client(strict)
    other = strict.mint_tokens(client_id)  # another chain of the same client is not touched
    code, verifier = get_code(http, strict, client_id)
    tokens = exchange(http, strict, client_id, code, verifier).json()
    renewed = refresh(http, strict, client_id, tokens["refresh_token"]).json()
    assert echo(http, strict, renewed["access_token"]).status_code == 200

    again = exchange(http, strict, client_id, code, verifier)
    assert_oauth_error(again, 400, "invalid_grant", "authorization code already used")
    for access_token in (tokens["access_token"], renewed["access_token"]):
        assert echo(http, strict, access_token).status_code == 401
    revoked = refresh(http, strict, client_id, renewed["refresh_token"])
    assert_oauth_error(revoked, 400, "invalid_grant", "refresh token revoked")
    assert echo(http, strict, other["access_token"]).status_code == 200
    assert strict.is_chain_alive(other["refresh_token"])

    audit = strict.audit
    assert (audit.code_reuse_detections, audit.revocations, audit.reuse_detections) == (1, 1, 0)
    [event] = audit.events_of(EventKind.CHAIN_REVOKED)
    assert event.detail.endswith("reason=authorization code reuse")
    assert len(audit.events_of(EventKind.CODE_REUSE_DETECTED)) == 1


def test_concurrent_presentations_of_one_code(strict):
    client_id = public_client(strict)
    with requests.Session() as session:
        code, verifier = get_code(session, strict, client_id)
    n = 16
    barrier = threading.Barrier(n)
    results = []
    guard = threading.Lock()

    def worker():
        with requests.Session() as session:
            barrier.wait()
            response = exchange(session, strict, client_id, code, verifier)
            with guard:
                results.append((response.status_code, response.json().get("error_description")))

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(results)
    assert counts == {(200, None): 1, (400, "authorization code already used"): n - 1}
    [chain] = strict.chains()
    assert not chain.alive
    audit = strict.audit
    assert (audit.grants_ok, audit.code_reuse_detections, audit.revocations) == ({"authorization_code": 1}, n - 1, 1)


def test_code_is_bound_to_its_client_and_not_spent_by_others(strict, http):
    alice = public_client(strict)
    mallory = public_client(strict)
    code, verifier = get_code(http, strict, alice)
    stolen = exchange(http, strict, mallory, code, verifier)
    assert_oauth_error(stolen, 400, "invalid_grant", "authorization code was not issued to this client")
    assert exchange(http, strict, alice, code, verifier).status_code == 200
    unknown = exchange(http, strict, alice, "not-a-code", verifier)
    assert_oauth_error(unknown, 400, "invalid_grant", "unknown authorization code")
    missing = http.post(
        strict.token_endpoint, data={"grant_type": "authorization_code", "client_id": alice}, timeout=10
    )
    assert_oauth_error(missing, 400, "invalid_request", "missing code")


def test_code_expires_after_sixty_seconds_of_the_injected_clock(strict, http, clock):
    client_id = public_client(strict)
    code, verifier = get_code(http, strict, client_id)
    clock.advance(59.9)
    assert exchange(http, strict, client_id, code, verifier).status_code == 200
    code, verifier = get_code(http, strict, client_id)
    clock.advance(60)
    expired = exchange(http, strict, client_id, code, verifier)
    assert_oauth_error(expired, 400, "invalid_grant", "authorization code expired")
    strict.authorization_code_ttl = 5
    code, verifier = get_code(http, strict, client_id)
    clock.advance(5)
    assert_oauth_error(exchange(http, strict, client_id, code, verifier), 400, "invalid_grant")
    with pytest.raises(ValueError):
        strict.authorization_code_ttl = 0


# ------------------------------------------------------------------------------- redirect URIs


def test_token_request_redirect_uri_must_be_identical(strict, http):
    client_id = public_client(strict, redirect_uris=["http://127.0.0.1/callback"])
    requested = "http://127.0.0.1:50123/callback"
    for sent in ("http://127.0.0.1/callback", "http://127.0.0.1:50124/callback", None):
        code, verifier = get_code(http, strict, client_id, requested)
        data_uri = sent if sent is not None else ""
        response = exchange(http, strict, client_id, code, verifier, data_uri)
        assert_oauth_error(response, 400, "invalid_grant", "redirect_uri does not match the authorization request")
    code, verifier = get_code(http, strict, client_id, requested)
    assert exchange(http, strict, client_id, code, verifier, requested).status_code == 200


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:54321/callback"),
        ("http://127.0.0.1:3000/callback", "http://127.0.0.1:4000/callback"),
        ("http://localhost:3000/callback", "http://localhost/callback"),
        ("http://[::1]/cb", "http://[::1]:8080/cb"),
        ("https://app.example/cb?tenant=1", "https://app.example/cb?tenant=1"),
    ],
)
def test_loopback_redirect_uris_match_on_any_port(strict, http, registered, requested):
    client_id = public_client(strict, redirect_uris=[registered])
    base, reply = redirected(authorize(http, strict, client_id, requested))
    assert base == urlsplit(requested)._replace(query="").geturl()
    assert reply["code"] and reply["state"] == "st-123"
    if "?" in requested:
        assert reply["tenant"] == "1"  # the registered query is kept, the answer appended


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/callback", "http://localhost/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:8080/callback/"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:8080/other"),
        ("http://127.0.0.1/callback", "https://127.0.0.1/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:8080/callback#x"),
        ("http://127.0.0.1/callback", "http://u@127.0.0.1:8080/callback"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:notaport/callback"),
        ("https://app.example/cb", "https://app.example:8443/cb"),
        ("https://app.example/cb", "https://APP.example/cb"),
        ("https://app.example/cb", "https://app.example/cb?x=1"),
        ("https://app.example/cb", ""),
    ],
)
def test_unregistered_redirect_uri_gets_a_page_never_a_redirect(strict, http, registered, requested):
    client_id = public_client(strict, redirect_uris=[registered])
    page = refused_page(authorize(http, strict, client_id, requested or OMIT))
    assert "redirect_uri" in page
    assert strict.audit.authorization_errors in ({"invalid_redirect_uri": 1}, {"invalid_request": 1})


def test_a_bad_redirect_uri_wins_over_every_other_error(strict, http):
    client_id = public_client(strict)
    response = authorize(
        http, strict, client_id, "https://evil.example/cb", code_challenge=OMIT, resource=OMIT, response_type="token"
    )
    refused_page(response)
    audit = strict.audit
    assert audit.authorization_errors == {"invalid_redirect_uri": 1}
    [event] = audit.events_of(EventKind.AUTHORIZATION_FAILED)
    assert event.client_id == client_id
    assert event.detail == "invalid_redirect_uri: redirect_uri is not registered for this client"


def test_unknown_or_missing_client_gets_a_page(strict, http):
    refused_page(authorize(http, strict, "nobody"))
    refused_page(authorize(http, strict, OMIT))
    client_id = public_client(strict)
    twice = http.get(
        strict.authorization_endpoint,
        params=[("client_id", client_id), ("client_id", client_id), ("redirect_uri", LOOPBACK)],
        allow_redirects=False,
        timeout=10,
    )
    refused_page(twice)
    malformed = http.get(strict.authorization_endpoint + "?client_id=abc&bogus", allow_redirects=False, timeout=10)
    refused_page(malformed)
    assert http.post(strict.authorization_endpoint, timeout=10).status_code == 405
    audit = strict.audit
    assert audit.authorization_requests == 4
    assert audit.authorization_errors == {"invalid_client": 1, "invalid_request": 3}
    assert audit.last_authorization_params == {"client_id": "abc", "bogus": ""}


# ---------------------------------------------------------------------------- resource, scope


@pytest.mark.parametrize(
    "resource",
    [OMIT, "https://elsewhere.example/mcp", "TRAILING", "http://127.0.0.1/mcp"],
)
def test_authorize_resource_is_required_and_must_be_the_mcp_url(strict, http, resource):
    client_id = public_client(strict)
    if resource == "TRAILING":
        resource = strict.mcp_url + "/"
    assert_redirect_error(authorize(http, strict, client_id, resource=resource), strict, "invalid_target")


def test_authorize_repeated_resource_is_invalid_target(strict, http):
    client_id = public_client(strict)
    params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", LOOPBACK),
        ("code_challenge", pkce_pair()[1]),
        ("code_challenge_method", "S256"),
        ("resource", strict.mcp_url),
        ("resource", strict.mcp_url),
        ("state", "st-123"),
    ]
    response = http.get(strict.authorization_endpoint, params=params, allow_redirects=False, timeout=10)
    assert_redirect_error(response, strict, "invalid_target")
    params[-2] = ("scope", "mcp")
    params.append(("scope", "mcp"))
    response = http.get(strict.authorization_endpoint, params=params, allow_redirects=False, timeout=10)
    assert_redirect_error(response, strict, "invalid_request")


def test_token_request_resource_must_match_the_code(strict, http):
    client_id = public_client(strict)
    for resource, error in ((None, "invalid_target"), (strict.mcp_url + "/", "invalid_target")):
        code, verifier = get_code(http, strict, client_id)
        assert_oauth_error(exchange(http, strict, client_id, code, verifier, resource=resource), 400, error)
    assert strict.chains() == []


def test_resource_may_be_omitted_when_not_required(clock, http):
    with StrictAuthServer(clock=clock, require_resource=False) as server:
        client_id = public_client(server)
        code, verifier = get_code(http, server, client_id, resource=OMIT)
        response = exchange(http, server, client_id, code, verifier, resource=None)
        assert response.status_code == 200
        assert echo(http, server, response.json()["access_token"]).status_code == 200
        wrong = authorize(http, server, client_id, resource="https://elsewhere.example/mcp")
        assert_redirect_error(wrong, server, "invalid_target")


def test_the_resource_is_the_one_the_metadata_publishes(clock, http):
    # An origin-wide protected resource (the conformance suite's auth/metadata-var2): metadata only
    # at the root well-known URL, publishing the origin as its resource. Every grant is for exactly
    # that identifier; the MCP URL, which it covers, is refused like any other resource.
    with StrictAuthServer(clock=clock, path_metadata=False, root_metadata=True) as server:
        server.prm_overrides = {"resource": server.base_url}
        origin = server.base_url
        assert server.resource_identifier == origin
        assert http.get(server.resource_metadata_url, timeout=10).status_code == 404
        root = http.get(server.root_resource_metadata_url, timeout=10).json()
        assert root["resource"] == origin
        challenge = http.post(server.mcp_url, json={}, timeout=10).headers["WWW-Authenticate"]
        assert f'resource_metadata="{server.root_resource_metadata_url}"' in challenge

        client_id = public_client(server)
        for wrong in (server.mcp_url, origin + "/"):
            assert_redirect_error(authorize(http, server, client_id, resource=wrong), server, "invalid_target")
        code, verifier = get_code(http, server, client_id, resource=origin)
        assert_oauth_error(exchange(http, server, client_id, code, verifier), 400, "invalid_target")
        code, verifier = get_code(http, server, client_id, resource=origin)
        response = exchange(http, server, client_id, code, verifier, resource=origin)
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert [chain.resource for chain in server.chains()] == [origin]
        assert echo(http, server, tokens["access_token"]).status_code == 200

        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
        refused = http.post(server.token_endpoint, data={**data, "resource": server.mcp_url}, timeout=10)
        assert_oauth_error(refused, 400, "invalid_target")
        renewed = http.post(server.token_endpoint, data={**data, "resource": origin}, timeout=10)
        assert renewed.status_code == 200, renewed.text
        assert echo(http, server, renewed.json()["access_token"]).status_code == 200

        # A token for the MCP URL is for another resource now: the resource server refuses it.
        minted = server.mint_tokens(client_id, resource=server.mcp_url)
        assert echo(http, server, minted["access_token"]).status_code == 401
        assert echo(http, server, server.mint_tokens(client_id)["access_token"]).status_code == 200

        # Without metadata nothing is published: the resource is the MCP URL again.
        server.serve_metadata = False
        assert server.resource_identifier == server.mcp_url
        assert "resource_metadata" not in http.post(server.mcp_url, json={}, timeout=10).headers["WWW-Authenticate"]


def test_client_credentials_are_for_the_published_resource(clock, http):
    with StrictAuthServer(clock=clock, prm_overrides={"resource": "https://api.example/"}) as server:
        client_id = server.register_client(token_endpoint_auth_method="client_secret_basic")
        auth = (client_id, server.get_client(client_id).client_secret)
        assert_oauth_error(client_credentials(http, server, auth), 400, "invalid_target")
        response = client_credentials(http, server, auth, resource="https://api.example/")
        assert response.status_code == 200, response.text
        assert echo(http, server, response.json()["access_token"]).status_code == 200


def test_scope_selection(clock, http):
    with StrictAuthServer(clock=clock, scopes_supported=("mcp", "read", "write")) as server:
        client_id = public_client(server)
        code, verifier = get_code(http, server, client_id, scope=OMIT)
        assert exchange(http, server, client_id, code, verifier).json()["scope"] == "mcp read write"
        code, verifier = get_code(http, server, client_id, scope="write read")
        assert exchange(http, server, client_id, code, verifier).json()["scope"] == "write read"
        narrow = public_client(server, scope="read")
        code, verifier = get_code(http, server, narrow)
        assert exchange(http, server, narrow, code, verifier).json()["scope"] == "read"
        for scope in ("admin", "mcp admin", "mcp  read", " mcp"):
            assert_redirect_error(authorize(http, server, client_id, scope=scope), server, "invalid_scope")
        assert server.audit.authorization_errors == {"invalid_scope": 4}


# -------------------------------------------------------------------------- state, iss, consent


def test_state_is_echoed_exactly(strict, http):
    client_id = public_client(strict)
    state = "a b&c=d/é+%"
    assert redirected(authorize(http, strict, client_id, state=state))[1]["state"] == state
    _, reply = redirected(authorize(http, strict, client_id, state=OMIT))
    assert "state" not in reply and reply["code"]
    error = authorize(http, strict, client_id, state=state, resource=OMIT)
    assert_redirect_error(error, strict, "invalid_target", state=state)


@pytest.mark.parametrize("mode", ISS_MODES)
def test_iss_modes(strict, http, mode):
    strict.iss_mode = mode
    client_id = public_client(strict)
    expected = {
        "correct": strict.issuer,
        "missing": None,
        "wrong": strict.wrong_issuer,
        "trailing-slash": strict.issuer + "/",
    }[mode]
    for response in (authorize(http, strict, client_id), authorize(http, strict, client_id, resource=OMIT)):
        assert redirected(response)[1].get("iss") == expected
    assert strict.wrong_issuer != strict.issuer and strict.wrong_issuer.startswith(strict.issuer)
    # The metadata keeps advertising RFC 9207 support whatever the mode.
    assert strict.authorization_server_metadata()["authorization_response_iss_parameter_supported"] is True


def test_iss_mode_is_validated(clock):
    with pytest.raises(ValueError):
        StrictAuthServer(clock=clock, iss_mode="sometimes")
    server = StrictAuthServer(clock=clock)
    with pytest.raises(ValueError):
        server.iss_mode = "nope"
    assert server.iss_mode == "correct"


def test_auto_consent_false_denies(strict, http):
    strict.auto_consent = False
    client_id = public_client(strict)
    assert_redirect_error(authorize(http, strict, client_id), strict, "access_denied")
    strict.auto_consent = True
    assert redirected(authorize(http, strict, client_id))[1]["code"]


def test_response_type_checks(strict, http):
    client_id = public_client(strict)
    assert_redirect_error(authorize(http, strict, client_id, response_type=OMIT), strict, "invalid_request")
    token = authorize(http, strict, client_id, response_type="token")
    assert_redirect_error(token, strict, "unsupported_response_type")
    machine = strict.register_client(
        token_endpoint_auth_method="client_secret_basic", grant_types=["client_credentials"], redirect_uris=[WEB]
    )
    response = authorize(http, strict, machine, WEB)
    assert_redirect_error(response, strict, "unauthorized_client", redirect_uri=WEB)


# ---------------------------------------------------------------------------- refresh tokens


def test_issue_refresh_tokens_knob(strict, http):
    strict.issue_refresh_tokens = False
    client_id = public_client(strict)
    code, verifier = get_code(http, strict, client_id)
    tokens = exchange(http, strict, client_id, code, verifier).json()
    assert "refresh_token" not in tokens
    assert strict.chains()[0].current_refresh_fingerprint == ""
    assert echo(http, strict, tokens["access_token"]).status_code == 200
    # Reusing the code still revokes the access token it bought.
    assert exchange(http, strict, client_id, code, verifier).status_code == 400
    assert echo(http, strict, tokens["access_token"]).status_code == 401


def test_client_not_registered_for_refresh_gets_no_refresh_token(strict, http):
    info = register(http, strict, {"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}).json()
    client_id = info["client_id"]
    code, verifier = get_code(http, strict, client_id)
    assert "refresh_token" not in exchange(http, strict, client_id, code, verifier).json()
    minted = strict.mint_tokens(client_id)  # the test lever ignores grant types...
    refused = refresh(http, strict, client_id, minted["refresh_token"])
    assert_oauth_error(refused, 400, "unauthorized_client")  # ...the token endpoint does not
    assert strict.is_chain_alive(minted["refresh_token"])


# ----------------------------------------------------------------------- client_credentials


def client_credentials(http, server, auth=None, resource="default", **data):
    body = {"grant_type": "client_credentials", **data}
    if resource == "default":
        resource = server.mcp_url
    if resource is not None:
        body["resource"] = resource
    return http.post(server.token_endpoint, data=body, auth=auth, timeout=10)


def test_client_credentials(clock, http):
    with StrictAuthServer(clock=clock, scopes_supported=("mcp", "admin")) as server:
        info = register(
            http,
            server,
            {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"},
        ).json()
        auth = (info["client_id"], info["client_secret"])
        response = client_credentials(http, server, auth)
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
        assert tokens["scope"] == "mcp admin"
        assert echo(http, server, tokens["access_token"]).status_code == 200
        assert client_credentials(http, server, auth, scope="admin").json()["scope"] == "admin"
        assert server.chains() == []

        assert_oauth_error(client_credentials(http, server, auth, resource=None), 400, "invalid_target")
        other = client_credentials(http, server, auth, resource="https://elsewhere.example/mcp")
        assert_oauth_error(other, 400, "invalid_target")
        assert_oauth_error(client_credentials(http, server, auth, scope="root"), 400, "invalid_scope")
        wrong = client_credentials(http, server, (info["client_id"], "nope"))
        assert_oauth_error(wrong, 401, "invalid_client")

        public = server.register_client()
        refused = client_credentials(http, server, client_id=public)
        assert_oauth_error(refused, 400, "unauthorized_client")
        code_only = server.register_client(
            token_endpoint_auth_method="client_secret_post", grant_types=["authorization_code"]
        )
        secret = server.get_client(code_only).client_secret
        refused = client_credentials(http, server, client_id=code_only, client_secret=secret)
        assert_oauth_error(refused, 400, "unauthorized_client")

        server.expire_access_tokens()
        assert echo(http, server, tokens["access_token"]).status_code == 401
        audit = server.audit
        assert audit.grants == {"client_credentials": 8}
        assert audit.grants_ok == {"client_credentials": 2}
        assert audit.grants_failed == {"client_credentials": 6}


def test_unknown_grant_type_is_still_refused(strict, http):
    client_id = public_client(strict)
    response = http.post(strict.token_endpoint, data={"grant_type": "password", "client_id": client_id}, timeout=10)
    assert_oauth_error(response, 400, "unsupported_grant_type")


# ------------------------------------------------------------------------------------- secrecy


def test_codes_tokens_and_secrets_never_reach_logs_or_audit(strict, http, caplog):
    caplog.set_level(logging.DEBUG, logger="mcp_sync_auth.testing")
    info = register(http, strict, {"redirect_uris": [WEB]}).json()
    auth = (info["client_id"], info["client_secret"])
    code, verifier = get_code(http, strict, info["client_id"], WEB)
    assert MARKER in code
    tokens = exchange(http, strict, None, code, verifier, WEB, auth=auth).json()
    exchange(http, strict, None, code, verifier, WEB, auth=auth)  # reuse
    echo(http, strict, tokens["access_token"])
    assert caplog.records
    assert MARKER not in caplog.text and code not in caplog.text
    audit = strict.audit
    assert all(MARKER not in event.detail for event in audit.events)
    assert MARKER not in repr(audit)
    assert MARKER not in repr(strict.get_client(info["client_id"]))
