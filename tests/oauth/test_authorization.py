"""The authorization request and the checks on its response: PKCE, state, RFC 9207 iss."""

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from mcp_sync_auth._oauth.loopback import LoopbackReceiver
from mcp_sync_auth._oauth.pkce import build_authorization_request, code_challenge, code_from_redirect
from mcp_sync_auth.errors import (
    AuthorizationFailed,
    AuthorizationResponseIssuerMismatch,
    InsecureTransportError,
    PKCENotSupported,
    StateMismatch,
)

ISSUER = "https://as.example.com"


def request(**overrides):
    options = dict(
        authorization_endpoint="https://as.example.com/authorize",
        issuer=ISSUER,
        code_challenge_methods=["S256"],
        iss_parameter_supported=True,
        client_id="client-1",
        redirect_uri="http://127.0.0.1:8765/callback",
        resource="https://mcp.example.com/mcp",
        scopes=["mcp:read", "mcp:write"],
    )
    options.update(overrides)
    return build_authorization_request(**options)


def redirect(req, **params):
    base = {"code": "the-code", "state": req.state, "iss": ISSUER}
    base.update(params)
    return req.redirect_uri + "?" + urlencode({k: v for k, v in base.items() if v is not None})


def test_request_carries_pkce_s256_state_resource_and_scope():
    req = request()
    query = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    expected = base64.urlsafe_b64encode(hashlib.sha256(req.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == expected == code_challenge(req.code_verifier)
    assert 43 <= len(req.code_verifier) <= 128
    assert query["state"] == req.state
    assert query["resource"] == "https://mcp.example.com/mcp"
    assert query["scope"] == "mcp:read mcp:write"
    assert query["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert req.code_verifier not in repr(req) and req.state not in repr(req)


def test_scope_is_omitted_when_there_is_none():
    assert "scope" not in parse_qs(urlsplit(request(scopes=None).url).query)


def test_each_request_has_its_own_verifier_and_state():
    first, second = request(), request()
    assert first.code_verifier != second.code_verifier and first.state != second.state


@pytest.mark.parametrize("methods", [None, [], ["plain"]])
def test_servers_without_s256_are_refused(methods):
    with pytest.raises(PKCENotSupported):
        request(code_challenge_methods=methods)


def test_a_plain_http_authorization_endpoint_is_refused():
    with pytest.raises(InsecureTransportError):
        request(authorization_endpoint="http://as.example.com/authorize")


def test_good_response_gives_the_code():
    req = request()
    assert code_from_redirect(req, redirect(req)) == "the-code"


def test_wrong_state_is_refused():
    req = request()
    with pytest.raises(StateMismatch):
        code_from_redirect(req, redirect(req, state="forged"))
    with pytest.raises(StateMismatch):
        code_from_redirect(req, redirect(req, state=None))


@pytest.mark.parametrize("iss", ["https://evil.example.com", ISSUER + "/", "HTTPS://as.example.com", ISSUER + ":443"])
def test_iss_is_compared_as_a_plain_string(iss):
    req = request()
    with pytest.raises(AuthorizationResponseIssuerMismatch):
        code_from_redirect(req, redirect(req, iss=iss))


def test_iss_missing_when_the_server_promises_it_is_refused():
    req = request()
    with pytest.raises(AuthorizationResponseIssuerMismatch):
        code_from_redirect(req, redirect(req, iss=None))


def test_iss_not_promised_and_absent_is_fine_but_a_wrong_one_is_still_refused():
    req = request(iss_parameter_supported=False)
    assert code_from_redirect(req, redirect(req, iss=None)) == "the-code"
    with pytest.raises(AuthorizationResponseIssuerMismatch):
        code_from_redirect(req, redirect(req, iss="https://other.example.com"))


def test_an_error_from_the_wrong_issuer_is_not_shown():
    req = request()
    with pytest.raises(AuthorizationResponseIssuerMismatch) as info:
        code_from_redirect(req, redirect(req, code=None, iss="https://evil.example.com", error="access_denied",
                                         error_description="click-here-evil-link"))
    assert "click-here-evil-link" not in str(info.value)


def test_an_error_response_is_reported():
    req = request()
    with pytest.raises(AuthorizationFailed, match="access_denied"):
        code_from_redirect(req, redirect(req, code=None, error="access_denied"))


def test_repeated_parameters_are_refused():
    req = request()
    with pytest.raises(AuthorizationFailed, match="repeats"):
        code_from_redirect(req, redirect(req) + "&code=second")


def test_loopback_receiver_keeps_the_first_redirect_and_answers_a_page():
    with LoopbackReceiver() as receiver:
        url = receiver.redirect_uri + "?code=abc&state=xyz"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(requests.get, url, timeout=30)  # held until the flow says how it ended
            assert receiver.wait(5) == url
            receiver.succeeded()
            page = first.result()
        assert page.status_code == 200 and "close this tab" in page.text
        requests.get(receiver.redirect_uri + "?code=later&state=xyz", timeout=10)
        assert requests.get(f"http://127.0.0.1:{receiver.port}/other", timeout=10).status_code == 404
        assert receiver.wait(5) == url


def test_loopback_receiver_times_out_clearly():
    with LoopbackReceiver() as receiver, pytest.raises(AuthorizationFailed, match="no login redirect"):
        receiver.wait(0.01)
