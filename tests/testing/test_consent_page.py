"""StrictAuthServer's consent page (``consent="page"``) over real HTTP: what it shows, what its form
posts, the redirects it answers (RFC 6749 §4.1.2 / §4.1.2.1, RFC 9207), and what it refuses. The page
in a real browser is in tests/browser/."""

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mcp_sync_auth.testing import StrictAuthServer

from .test_strict_server_authz import LOOPBACK, authorize, pkce_pair, public_client


@pytest.fixture
def strict():
    with StrictAuthServer(consent="page") as server:
        yield server


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def form_of(page):
    """The hidden fields of the consent form, read from the HTML as a browser would."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    assert re.search(r'<form method="post" action="/authorize/consent">', page.text)
    return {name: html.unescape(value) for name, value in fields.items()}


def answer(http, server, fields, decision):
    return http.post(
        server.base_url + "/authorize/consent", data={**fields, "decision": decision}, allow_redirects=False, timeout=10
    )


def redirect_params(response):
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(LOOPBACK + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def test_the_page_names_the_client_and_scopes_and_cannot_be_framed(strict, http):
    client_id = public_client(strict, client_name="Editor <plugin>")
    page = authorize(http, strict, client_id)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Editor &lt;plugin&gt;" in page.text and "Editor <plugin>" not in page.text  # escaped
    assert "<code>mcp</code>" in page.text and strict.mcp_url in page.text
    assert 'id="allow"' in page.text and 'id="deny"' in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert set(form_of(page)) == {"request_id", "nonce"}
    assert strict.pending_consents == 1 and strict.audit.authorization_codes_issued == 0


def test_allow_redirects_with_code_state_and_iss_and_the_code_works(strict, http):
    client_id = public_client(strict)
    verifier, challenge = pkce_pair()
    fields = form_of(authorize(http, strict, client_id, challenge=challenge))
    params = redirect_params(answer(http, strict, fields, "allow"))
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == "st-123" and params["iss"] == strict.issuer
    token = http.post(
        strict.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": LOOPBACK,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": strict.mcp_url,
        },
        timeout=10,
    )
    assert token.status_code == 200 and token.json()["access_token"]
    assert strict.pending_consents == 0 and strict.audit.authorization_codes_issued == 1


def test_deny_redirects_with_access_denied_state_and_iss(strict, http):
    client_id = public_client(strict)
    params = redirect_params(answer(http, strict, form_of(authorize(http, strict, client_id)), "deny"))
    assert params == {
        "error": "access_denied",
        "error_description": "the resource owner denied the request",
        "state": "st-123",
        "iss": strict.issuer,
    }
    audit = strict.audit
    assert audit.authorization_errors == {"access_denied": 1} and audit.authorization_codes_issued == 0


def test_each_page_is_answered_once(strict, http):
    client_id = public_client(strict)
    fields = form_of(authorize(http, strict, client_id))
    assert answer(http, strict, fields, "allow").status_code == 302
    again = answer(http, strict, fields, "allow")
    assert again.status_code == 400 and "Location" not in again.headers
    assert strict.audit.authorization_codes_issued == 1


def test_a_forged_post_without_the_pages_nonce_neither_answers_nor_cancels_it(strict, http):
    client_id = public_client(strict)
    fields = form_of(authorize(http, strict, client_id))
    forged = answer(http, strict, {**fields, "nonce": "guessed"}, "allow")
    assert forged.status_code == 400 and "Location" not in forged.headers
    assert strict.pending_consents == 1  # still waiting for the person
    assert redirect_params(answer(http, strict, fields, "deny"))["error"] == "access_denied"
    assert strict.audit.authorization_codes_issued == 0


@pytest.mark.parametrize(
    "body",
    [{"decision": "allow"}, {"request_id": "x", "nonce": "y", "decision": "maybe"}, {"request_id": "x", "nonce": "y"}],
)
def test_incomplete_answers_are_refused_without_a_redirect(strict, http, body):
    response = http.post(strict.base_url + "/authorize/consent", data=body, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers


def test_a_bad_request_is_refused_before_any_page(strict, http):
    client_id = public_client(strict)
    refused = authorize(http, strict, client_id, code_challenge_method="plain")
    assert redirect_params(refused)["error"] == "invalid_request"
    assert strict.pending_consents == 0


def test_automatic_consent_stays_the_default():
    with StrictAuthServer() as server, requests.Session() as http:
        client_id = public_client(server)
        assert server.consent == "auto"
        assert "code" in redirect_params(authorize(http, server, client_id))
        server.consent = "page"
        assert authorize(http, server, client_id).status_code == 200
    with pytest.raises(ValueError, match="consent must be one of"):
        StrictAuthServer(consent="sometimes")


def test_loopback_any_port_false_matches_the_registered_redirect_uri_exactly():
    with StrictAuthServer(loopback_any_port=False) as server, requests.Session() as http:
        client_id = public_client(server)
        other_port = LOOPBACK.replace(":8765", ":8766")
        assert authorize(http, server, client_id, redirect_uri=other_port).status_code == 400
        assert "code" in redirect_params(authorize(http, server, client_id))
        server.loopback_any_port = True  # RFC 8252 §7.3: any port
        assert authorize(http, server, client_id, redirect_uri=other_port).status_code == 302
