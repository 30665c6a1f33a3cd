"""Fuzzing discovery and the login it leads to: protected resource metadata, authorization server
metadata and the MCP server's ``WWW-Authenticate`` challenges, all served over real loopback HTTP.

1. From nothing but the MCP URL: the MCP endpoint answers 401 with a fuzzed challenge; the PRM and AS
   documents are good documents with members broken (wrong resource or issuer, http:// endpoints,
   wrong types, no PKCE...) or hostile bodies; registration, the browser and the token endpoint
   behave. ``MCPAuth`` either completes the call or raises one of our errors, and no secret (the
   marker sits in the code, the client secret and every token) reaches a metadata or registration
   request, the authorization URL, an exception, a repr or a log record.
2. With a stored chain: the MCP endpoint answers 401 or 403 with fuzzed challenges, some echoing the
   access token we sent. Only our errors escape, nothing leaks, and the 401 is resent at most once.

(``parse_www_authenticate`` itself is fuzzed in tests/oauth/test_challenge.py.)
"""

import itertools
import tempfile
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from mcp_sync_auth import FileTokenStore, MCPAuth, MCPAuthError
from mcp_sync_auth._oauth.discovery import Discovery
from mcp_sync_auth._oauth.login import ClientSettings
from mcp_sync_auth.errors import ChallengeError, InsufficientScope

from ..fuzzing import *  # noqa: F403 (the shared fuzz toolkit, see tests/fuzzing.py)

PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
PRM_ROOT = "/.well-known/oauth-protected-resource"
AS_PATH = "/.well-known/oauth-authorization-server"
OIDC_PATH = "/.well-known/openid-configuration"
RPC = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
OK = http_response(200, dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}),
                   {"Content-Type": "application/json"})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
                    st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)
_counter = itertools.count()


@pytest.fixture(scope="module")
def raw():
    with RawServer() as server:
        yield server


def bad_url_texts(base):
    return st.sampled_from([
        "http://as.example.invalid/x",  # plain http to a remote host
        "https://127.0.0.1:1/x",  # https, but nobody answers there (no test ever leaves the machine)
        "/relative", "as.example.invalid/x", base + "/x#fragment", "javascript:alert(1)", "", "https://[::1",
        "http://127.0.0.1:1/closed",
    ])


def bad_urls(base):
    return bad_url_texts(base) | json_values


@st.composite
def prm_document(draw, base, issuer):
    document = {"resource": base + "/mcp", "authorization_servers": [issuer], "scopes_supported": ["mcp"],
                "bearer_methods_supported": ["header"]}
    broken = {
        "resource": st.sampled_from([base + "/mcp/", base.upper() + "/mcp", base + "/other", base,
                                     "https://mcp.example.invalid/mcp", base + "/mcp#x", base + "/mcp?x=1"]) |
        json_values,
        "authorization_servers": st.one_of(
            st.lists(st.sampled_from([issuer, issuer + "/", "http://as.example.invalid", base + "/other-issuer"]) |
                     bad_urls(base), max_size=3),
            json_values,
        ),
        "scopes_supported": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
        "extra": json_values,
    }
    for name in draw(st.lists(st.sampled_from(sorted(broken)), max_size=2, unique=True)):
        if draw(one_in(4)):
            document.pop(name, None)
        else:
            document[name] = draw(broken[name])
    return document


@st.composite
def as_document(draw, base, issuer):
    document = {
        "issuer": issuer,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "registration_endpoint": base + "/register",
        "scopes_supported": ["mcp", "offline_access"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": True,
    }
    broken = {
        "issuer": st.sampled_from([issuer + "/", issuer.upper(), base + "/evil", "https://as.example.invalid"]) |
        json_values,
        "authorization_endpoint": bad_urls(base),
        "token_endpoint": bad_urls(base),
        "registration_endpoint": bad_urls(base),
        "code_challenge_methods_supported": st.sampled_from([["plain"], [], ["s256"], ["S256", "plain"]]) |
        json_values,
        "token_endpoint_auth_methods_supported": st.one_of(
            st.lists(st.sampled_from(["none", "client_secret_basic", "private_key_jwt", "x"]), max_size=3),
            json_values),
        "scopes_supported": st.one_of(st.lists(st.text(max_size=10), max_size=3), json_values),
        "client_id_metadata_document_supported": st.one_of(st.booleans(), json_values),
        "authorization_response_iss_parameter_supported": st.one_of(st.booleans(), json_values),
        "response_types_supported": json_values,
    }
    for name in draw(st.lists(st.sampled_from(sorted(broken)), max_size=2, unique=True)):
        if draw(one_in(4)):
            document.pop(name, None)
        else:
            document[name] = draw(broken[name])
    return document


@st.composite
def served(draw, document):
    """A metadata answer: usually the document; sometimes another status, body or framing."""
    shape = draw(st.sampled_from(["document"] * 8 + ["status", "html", "binary", "json", "huge"]))
    status, body = 200, dumps(draw(document)).encode()
    if shape == "status":
        status = draw(st.sampled_from([201, 204, 301, 302, 400, 401, 403, 404, 410, 500, 503]))
    elif shape == "html":
        body = html_page(draw(st.text(max_size=40))).encode()
    elif shape == "binary":
        body = draw(st.binary(max_size=100))
    elif shape == "json":
        body = dumps(draw(json_values)).encode()
    elif shape == "huge":
        body = b'{"resource": "' + b"r" * 300_000 + b'"}'
    framing = "sized" if not draw(one_in(8)) else draw(st.sampled_from(["close", "short", "chunked", "garbage"]))
    return http_response(status, body, {"Content-Type": "application/json"}, framing=framing)


def quoted(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def challenge(draw, base, echo=None, error=None):
    """A WWW-Authenticate value: a Bearer challenge with fuzzed parameters, several challenges, or junk.
    ``echo`` is text a hostile server may copy into it; ``error``, an error code it mostly carries."""
    # No CR, LF or NUL: a header they break is logged by urllib3 with its raw bytes, which we cannot stop.
    texts = st.text(max_size=20).map(lambda text: "".join(ch for ch in text if ch not in "\r\n\x00"))
    described = texts if echo is None else texts | st.just(echo) | st.just(f"token {echo} expired")
    params = {
        "resource_metadata": st.sampled_from([base + PRM_PATH] * 4 + [base + PRM_ROOT, base + "/missing"]) |
        bad_url_texts(base),
        "scope": st.sampled_from(["mcp", "mcp offline_access", "", "files:read files:write"]) | texts,
        "error": st.sampled_from(["invalid_token", "insufficient_scope", "insufficient_scope"]) | texts,
        "error_description": described,
        "realm": texts,
    }
    chosen = draw(st.lists(st.sampled_from(sorted(params)), max_size=4, unique=True))
    if error is not None and not draw(one_in(4)):
        params["error"] = st.just(error)
        chosen = ["error", "scope", *(name for name in chosen if name not in ("error", "scope"))]
    bearer = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
    parts = [f"{name}={quoted(draw(params[name]))}" for name in chosen]
    value = bearer + (" " + ", ".join(parts) if parts else "")
    shape = draw(st.sampled_from(["bearer"] * 6 + ["after-basic", "junk", "appended-junk", "none"]))
    if shape == "after-basic":
        value = 'Basic realm="x", ' + value
    elif shape == "junk":
        value = draw(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60))
    elif shape == "appended-junk":
        value += draw(st.sampled_from([' "', " x", ",,", ' error="', " y"]))
    elif shape == "none":
        return None
    return value


def browser_for(issuer):
    """The stand-in for a person's browser: consent, then the redirect with code, state and iss."""
    seen = []

    def handler(url):
        seen.append(url)
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        return (f"{query.get('redirect_uri', 'http://127.0.0.1:9/callback')}?code={MARKER}-code"
                f"&state={quote(query.get('state', ''))}&iss={quote(issuer)}")

    handler.seen = seen
    return handler


def mcp_endpoint(issued, header, status=401):
    def answer(seen):
        if seen.headers.get("Authorization") in {f"Bearer {token}" for token in issued}:
            return OK
        return http_response(status, b"", {"WWW-Authenticate": header} if header is not None else {})

    return answer


def token_endpoint(issued):
    def answer(seen):
        token = f"{MARKER}-at-{next(_counter)}"
        issued.append(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": f"{MARKER}-rt-{next(_counter)}", "scope": "mcp"}
        return http_response(200, dumps(body), {"Content-Type": "application/json"})

    return answer


CLIENTS = ["dynamic", "pre-registered", "confidential", "metadata-document"]


@fuzz_settings(120)
@given(data=st.data())
def test_any_metadata_and_challenge_give_a_call_or_one_of_our_errors(raw, data):
    base = raw.base_url
    issuer = base + data.draw(st.sampled_from(["", "/tenant"]))
    tail = urlsplit(issuer).path
    raw.reset()
    issued = []
    header = data.draw(challenge(base))
    raw.route("POST", "/mcp", mcp_endpoint(issued, header))
    raw.route("GET", PRM_PATH, data.draw(served(prm_document(base, issuer))))
    if data.draw(st.booleans()):
        raw.route("GET", PRM_ROOT, data.draw(served(prm_document(base, issuer))))
    as_answer = data.draw(served(as_document(base, issuer)))
    raw.route("GET", AS_PATH + tail, as_answer)
    if data.draw(one_in(4)):
        raw.route("GET", OIDC_PATH + tail, as_answer)
    client = data.draw(st.sampled_from(CLIENTS))
    secret = data.draw(marked())
    registration = {"client_id": "dyn-client", "redirect_uris": [], "token_endpoint_auth_method": "none"}
    if data.draw(st.booleans()):
        registration.update(client_secret=secret, token_endpoint_auth_method="client_secret_basic")
    raw.json("POST", "/register", registration, status=201)
    raw.route("POST", "/token", token_endpoint(issued))
    options = {
        "dynamic": {},
        "pre-registered": {"client_id": "pre-client"},
        "confidential": {"client_id": "pre-client", "client_secret": secret},
        "metadata-document": {"client_metadata_url": "https://client.example.invalid/metadata.json"},
    }[client]
    browser = browser_for(issuer)
    with tempfile.TemporaryDirectory() as folder, requests.Session() as http:
        auth = MCPAuth(base + "/mcp", store=FileTokenStore(folder), authorization_handler=browser,
                       discovery=Discovery(timeout=5.0), timeout=5.0, lock_timeout=5.0, **options)
        with LogWatch() as logs:
            response, error = check_outcome(lambda: http.post(base + "/mcp", json=RPC, auth=auth, timeout=10))
        event(f"outcome: {type(error).__name__ if error else response.status_code}")
        logs.assert_clean()
        assert_no_marker(our_reprs(auth, skip_types=(ClientSettings,)), "a repr")
        assert_no_marker(browser.seen, "the authorization URL")
        for seen in raw.requests:
            if seen.path.split("?")[0] not in ("/mcp", "/token"):
                assert_no_marker([seen.text()], f"a request to {seen.path}")
            elif seen.path == "/mcp":
                assert MARKER not in seen.body.decode("latin-1")
                assert all(MARKER not in value for name, value in seen.headers.items() if name != "Authorization")
        token_requests = [seen for seen in raw.requests if seen.path == "/token"]
        assert len(token_requests) <= 1, "one login, one code exchange"
        if response is not None and response.status_code == 200:
            assert len(browser.seen) == 1 and len(token_requests) == 1


@fuzz_settings(120)
@given(data=st.data())
def test_any_challenge_to_a_stored_chain_gives_an_answer_or_one_of_our_errors(raw, data):
    base = raw.base_url
    raw.reset()
    issued = []
    held = data.draw(marked())
    status = data.draw(st.sampled_from([401, 401, 403]))
    error = "insufficient_scope" if status == 403 else "invalid_token"
    raw.route("POST", "/mcp", mcp_endpoint([], data.draw(challenge(base, echo=held, error=error)), status=status))
    raw.route("POST", "/token", token_endpoint(issued))
    with tempfile.TemporaryDirectory() as folder, requests.Session() as http:
        auth = MCPAuth(base + "/mcp", store=FileTokenStore(folder), client_id="c", token_endpoint=base + "/token",
                       interactive=False, timeout=5.0, lock_timeout=5.0, discovery=Discovery(timeout=5.0))
        auth.save_token({"access_token": held, "token_type": "Bearer", "expires_in": 3600,
                         "refresh_token": f"{MARKER}-rt"})
        with LogWatch() as logs:
            response, error = check_outcome(lambda: http.post(base + "/mcp", json=RPC, auth=auth, timeout=10))
        event(f"outcome: {type(error).__name__ if error else response.status_code}")
        logs.assert_clean()
        assert_no_marker(our_reprs(auth, skip_types=(ClientSettings,)), "a repr")
        mcp_calls = [seen for seen in raw.requests if seen.path == "/mcp"]
        assert len(mcp_calls) <= 2, "a refused request is sent again at most once"
        assert len(issued) <= 1, "one refresh for one 401"
        if error is not None:
            assert isinstance(error, MCPAuthError)
            assert not isinstance(error, ChallengeError), "a malformed challenge is ignored, not raised"
            if isinstance(error, InsufficientScope):
                assert status == 403


# --- known bugs ------------------------------------------------------------------------------------


def stored_chain_auth(raw, folder, header, status):
    raw.reset()
    held = f"{MARKER}-held"
    raw.route("POST", "/mcp", mcp_endpoint([], header.format(token=held), status=status))
    raw.route("POST", "/token", token_endpoint([]))
    auth = MCPAuth(raw.url("/mcp"), store=FileTokenStore(folder), client_id="c", token_endpoint=raw.url("/token"),
                   interactive=False, timeout=5.0, lock_timeout=5.0)
    auth.save_token({"access_token": held, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt"})
    return auth


def test_a_malformed_challenge_echoing_our_token_is_not_logged_with_it(raw, tmp_path):
    auth = stored_chain_auth(raw, tmp_path / "s", 'Bearer error_description="{token}" {token}', 403)
    with LogWatch() as logs, requests.Session() as http:
        check_outcome(lambda: http.post(raw.url("/mcp"), json=RPC, auth=auth, timeout=10))
    logs.assert_clean()


def test_insufficient_scope_does_not_quote_server_text_verbatim(raw, tmp_path):
    auth = stored_chain_auth(raw, tmp_path / "s", 'Bearer error="insufficient_scope", scope="{token}"', 403)
    with requests.Session() as http, pytest.raises(InsufficientScope) as info:
        http.post(raw.url("/mcp"), json=RPC, auth=auth, timeout=10)
    assert_no_marker([str(info.value)], "the exception")
