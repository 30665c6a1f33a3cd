"""Security guards, and the tests that fail when a guard is removed.

Every guard below was removed in a scratch copy of the tree (one at a time), and the tests listed under
it were run: they failed, and they pass with the guard in place. Tests named without a file are in this
one. "ADDED" marks a guard these tests found missing; it was added and its test is now a regression test.

PRM ``resource`` must name the MCP server (discovery._parse_protected_resource)
    test_login: test_protected_resource_metadata_for_another_resource_is_refused
    test_discovery: test_a_document_for_another_resource_is_refused,
        test_a_root_document_describes_the_origin_or_exactly_the_mcp_url,
        test_a_challenge_document_must_name_the_requested_url,
        test_a_challenge_pointing_at_another_origin_must_still_name_the_mcp_url
AS metadata ``issuer`` identical to the one its URL was built from (discovery._parse_authorization_server)
    test_login: test_metadata_naming_another_issuer_is_refused
    test_discovery: test_issuer_must_be_identical_to_the_one_the_url_was_built_from,
        test_legacy_metadata_must_name_the_origin, test_a_missing_issuer_field_is_a_mismatch (missing issuer)
RFC 9207 ``iss``: a wrong one refused (authorization.code_from_redirect)
    test_login: test_a_bad_iss_in_the_response_stops_the_login_before_the_code_is_used[wrong, trailing-slash]
    test_authorization: test_iss_is_compared_as_a_plain_string, test_an_error_from_the_wrong_issuer_is_not_shown,
        test_iss_not_promised_and_absent_is_fine_but_a_wrong_one_is_still_refused
... a missing one refused when the server promises it (authorization.code_from_redirect)
    test_login: test_a_bad_iss_in_the_response_stops_the_login_before_the_code_is_used[missing]
    test_authorization: test_iss_missing_when_the_server_promises_it_is_refused
``state`` must match (authorization.code_from_redirect)
    test_login: test_a_forged_state_stops_the_login
    test_authorization: test_wrong_state_is_refused (forged and missing)
PKCE S256 must be advertised (authorization.build_authorization_request)
    test_login: test_a_server_without_pkce_s256_is_refused
    test_authorization: test_servers_without_s256_are_refused
http:// only to loopback hosts:
  the MCP server URL (auth.MCPAuth.__init__)
    test_auth: test_plain_http_to_a_non_loopback_host_is_refused
  the token endpoint (token_client.TokenEndpointClient.__init__)
    test_plain_http_token_endpoint_is_refused_by_the_token_client;
    test_auth: test_plain_http_to_a_non_loopback_host_is_refused. MCPAuth.__init__ checks the same URL first;
    that second layer alone is not observable (the client is built right after it).
  the authorization endpoint (authorization.build_authorization_request)
    test_authorization: test_a_plain_http_authorization_endpoint_is_refused
  the registration endpoint (registration.Registrar._post_registration)
    test_plain_http_registration_endpoint_is_refused_before_anything_is_sent
  endpoints named in AS metadata (discovery._endpoint)
    test_metadata_naming_a_plain_http_endpoint_stops_the_login[token/authorization/registration endpoint]
    test_discovery: test_endpoints_must_be_absolute_https_urls
  issuers named in PRM (discovery._check_issuer)
    test_metadata_naming_a_plain_http_endpoint_stops_the_login[authorization_servers]
    test_discovery: test_authorization_servers_must_be_a_non_empty_list_of_secure_issuers
  the challenge's resource_metadata URL (discovery.Discovery._explicit_metadata_url)
    test_a_plain_http_resource_metadata_url_in_a_challenge_is_never_fetched (test_discovery's
    test_an_unusable_challenge_url_is_refused_before_any_fetch still passes without it: the fetch fails)
  ADDED: URLs that only look like loopback (urls.require_secure now refuses a URL whose host urllib and
  urllib3 read differently, or that carries credentials: 'http://evil\\@127.0.0.1/')
    test_a_url_that_only_looks_like_loopback_is_refused, test_a_refresh_never_goes_in_plain_http_to_a_remote_host
A redirect from the MCP server to another origin carries no token (requests' Session.rebuild_auth and
should_strip_auth: MCPAuth is not run again for a redirect; checked by patching should_strip_auth)
    test_a_redirect_to_another_origin_never_carries_our_token[301, 302, 303, 307, 308]
  ADDED: ... and a 401 from that origin gets no token either (auth.MCPAuth._on_response)
    test_a_401_from_a_redirect_target_never_gets_a_token
Token and registration requests never follow redirects (allow_redirects=False in token_client._post,
registration._post_registration)
    test_a_token_endpoint_redirect_never_carries_the_refresh_token,
    test_a_registration_endpoint_redirect_is_not_followed
A token is attached only for the MCP server's origin (auth.MCPAuth.__call__)
    test_a_token_for_one_resource_is_never_sent_to_another
    test_auth: test_the_token_only_goes_to_the_servers_origin
A stored chain is used only for its own resource (auth.MCPAuth._is_ours)
    test_a_chain_stored_for_one_resource_is_never_used_for_another
Metadata requests carry no credentials (discovery: auth=no_auth, "Authorization": None)
    test_discovery: test_requests_ask_for_json_and_carry_no_credentials, test_session_auth_never_runs_for_metadata
A symlinked cache file is refused (store._read_document: O_NOFOLLOW)
    test_a_symlinked_registration_file_is_refused
    test_store: test_symlinked_file_is_refused
... and never written through (store._write_document: mkstemp in the folder, then os.replace)
    test_saving_never_writes_through_a_symlinked_cache_file
A symlinked cache folder is refused (store.FileTokenStore._ensure_directory: lstat, S_ISLNK)
    test_a_symlinked_token_folder_is_never_written_into
    test_store: test_symlinked_folder_is_refused
A cache file others can read or write is refused (_stores.file._check_file: mode & 0o077)
    test_a_cache_file_others_can_read_or_write_is_refused[0640, 0604, 0620, 0602, 0660, 0606]
    test_store: test_group_readable_file_is_refused
A folder others can write is refused (store.FileTokenStore._ensure_directory: mode & 0o022)
    test_store: test_world_writable_folder_is_refused
Files 0600 and folder 0700 whatever the umask (filelock mode=0o600; os.mkdir(..., 0o700); mkstemp)
    test_files_are_private_whatever_the_umask
No token, code or client secret in logs, reprs, errors or the output of ``status``:
  log lines name tokens by fingerprint (token_client, manager)
    test_no_secret_in_logs_reprs_errors_or_cli_output_over_a_whole_session
    test_auth: test_no_secret_in_reprs_errors_or_debug_logs
  TokenSet, ClientRegistration, AuthorizationRequest reprs (tokens, registration, authorization)
    test_no_secret_in_logs_reprs_errors_or_cli_output_over_a_whole_session (TokenSet, ClientRegistration)
    test_store: test_repr_has_no_secret; test_authorization: test_request_carries_pkce_s256_state_resource_and_scope
  server text cleaned of our secrets (redact.clean_server_text)
    test_fuzz_token_endpoint: test_any_token_endpoint_answer_gives_tokens_or_one_of_our_errors
  ``status`` prints no secret (cli.cmd_status)
    test_no_secret_in_logs_reprs_errors_or_cli_output_over_a_whole_session
    test_cli: test_status_lists_chains_without_secrets
  ADDED: ClientSettings repr (flow.ClientSettings hid no client_secret)
    test_client_settings_repr_hides_the_client_secret
  ADDED: more leaks found by the fuzz tests, each with its regression test in tests/*/test_fuzz_*.py
"""

import contextlib
import io
import os
import stat
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3
from hypothesis import example, given
from hypothesis import strategies as st

from mcp_sync_auth import (
    AuthorizationRequired,
    ChainKey,
    ChainRecord,
    DiscoveryError,
    FileTokenStore,
    InsecureTransportError,
    MCPAuth,
    MemoryTokenStore,
    RefreshChainRevoked,
    TokenEndpointError,
    TokenSet,
    TokenStoreError,
)
from mcp_sync_auth._chain.keys import RegistrationKey
from mcp_sync_auth._oauth.challenge import BearerChallenge
from mcp_sync_auth._oauth.discovery import Discovery
from mcp_sync_auth._oauth.login import ClientSettings
from mcp_sync_auth._oauth.registration import DYNAMIC, ClientRegistration, Registrar
from mcp_sync_auth._oauth.token_client import TokenEndpointClient
from mcp_sync_auth._util.urls import is_loopback_host, require_secure
from mcp_sync_auth.cli.main import main as cli_main
from mcp_sync_auth.errors import ConfigurationError, RegistrationFailed
from mcp_sync_auth.testing import StrictAuthServer

from .conftest import TTL
from .fuzzing import (
    MARKER,
    LogWatch,
    RawServer,
    assert_no_marker,
    exception_texts,
    fuzz_settings,
    http_response,
    our_reprs,
)
from .login_helpers import browser
from .workers import echo_call

RPC = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
JSON = {"Content-Type": "application/json"}
REDIRECT_URI = "http://127.0.0.1:8765/callback"


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class WireLog(requests.adapters.HTTPAdapter):
    """Records every request exactly as it goes to the wire (resends included), then sends it."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append((request.url, request.headers.get("Authorization"), request.body))
        return super().send(request, **kwargs)


class NoNetwork(requests.adapters.BaseAdapter):
    """Records what would have been sent and sends nothing."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.url, response.request, response.raw = 599, request.url, request, io.BytesIO()
        return response

    def close(self):
        pass


def session_with(adapter):
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.fixture
def front():
    """The MCP server the client is configured for (a token endpoint on the side)."""
    with RawServer() as server:
        yield server


@pytest.fixture
def elsewhere():
    """Another origin: a loopback server on another port that records what it is sent."""
    with RawServer() as server:
        for method in ("GET", "POST"):  # 301/302/303 turn the POST into a GET
            server.route(method, "/mcp", http_response(200, b'{"jsonrpc": "2.0", "id": 1, "result": {}}', JSON))
        yield server


def carries_authorization(seen):
    return any(name.lower() == "authorization" for name in seen.headers)


def good_token_answer(seen):
    body = f'{{"access_token": "{MARKER}-fresh", "token_type": "Bearer", "expires_in": 3600}}'
    return http_response(200, body, JSON)


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_never_carries_our_token(front, elsewhere, status):
    front.route("POST", "/mcp", http_response(status, b"", {"Location": elsewhere.url("/mcp")}))
    auth = MCPAuth(front.url("/mcp"), store=MemoryTokenStore(), client_id="c", token_endpoint=front.url("/token"),
                   interactive=False)
    auth.save_token({"access_token": f"{MARKER}-held", "token_type": "Bearer", "expires_in": 3600})
    with requests.Session() as http:
        response = http.post(front.url("/mcp"), json=RPC, auth=auth, timeout=10)
    assert response.status_code == 200 and [r.status_code for r in response.history] == [status]
    assert front.requests[0].headers["Authorization"] == f"Bearer {MARKER}-held"  # the MCP server got it
    assert len(elsewhere.requests) == 1
    assert not carries_authorization(elsewhere.requests[0])
    assert_no_marker([elsewhere.requests[0].text()], "the redirect target's request")


def test_a_401_from_a_redirect_target_never_gets_a_token(front, elsewhere):
    base = front.base_url
    front.json("GET", "/.well-known/oauth-protected-resource/mcp",
               {"resource": base + "/mcp", "authorization_servers": [base]})
    front.json("GET", "/.well-known/oauth-authorization-server",
               {"issuer": base, "token_endpoint": base + "/token", "code_challenge_methods_supported": ["S256"]})
    front.route("POST", "/token", good_token_answer)
    front.route("POST", "/mcp", http_response(307, b"", {"Location": elsewhere.url("/mcp")}))
    elsewhere.route("POST", "/mcp", http_response(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    auth = MCPAuth(base + "/mcp", store=MemoryTokenStore(), client_id="c", client_secret=f"{MARKER}-secret",
                   grant_type="client_credentials", interactive=False)
    with requests.Session() as http, contextlib.suppress(AuthorizationRequired):
        http.post(base + "/mcp", json=RPC, auth=auth, timeout=10)
    assert elsewhere.requests, "the redirect was followed"
    for seen in elsewhere.requests:
        assert not carries_authorization(seen)
        assert_no_marker([seen.text()], "a request to the redirect target")


def test_a_token_endpoint_redirect_never_carries_the_refresh_token(front, elsewhere):
    front.route("POST", "/token", http_response(307, b"", {"Location": elsewhere.url("/token")}))
    elsewhere.route("POST", "/token", good_token_answer)
    client = TokenEndpointClient(front.url("/token"), "c", client_secret=f"{MARKER}-secret", clock=FakeClock())
    held = TokenSet(f"{MARKER}-at", refresh_token=f"{MARKER}-rt", expires_at=1.0, generation=1)
    with pytest.raises(TokenEndpointError) as info:
        client.refresh(held, 2)
    assert info.value.status_code == 307
    assert elsewhere.requests == []
    assert len(front.requests) == 1


def test_a_registration_endpoint_redirect_is_not_followed(front, elsewhere, tmp_path):
    front.route("POST", "/register", http_response(307, b"", {"Location": elsewhere.url("/register")}))
    elsewhere.json("POST", "/register", {"client_id": "planted", "client_secret": "s"}, status=201)
    registrar = Registrar(FileTokenStore(tmp_path / "s"), timeout=5.0, lock_timeout=5.0)
    with pytest.raises(RegistrationFailed):
        registrar.register(issuer=front.base_url, registration_endpoint=front.url("/register"),
                           redirect_uri=REDIRECT_URI, scopes=None, supported_auth_methods=None)
    assert elsewhere.requests == []
    assert registrar.stored(front.base_url) is None


# --- one resource's token never goes to another --------------------------------------------------


@pytest.fixture
def other_server(clock):
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, token_marker="OTHERMARK") as strict:
        yield strict


def test_a_token_for_one_resource_is_never_sent_to_another(server, auth, other_server, store_dir, clock):
    other_id = other_server.register_client()
    other = MCPAuth(other_server.mcp_url, store=FileTokenStore(store_dir), client_id=other_id,
                    token_endpoint=other_server.token_endpoint, clock=clock, interactive=False)
    other.save_token(other_server.mint_tokens(other_id))
    wire = WireLog()
    with session_with(wire) as http:
        assert echo_call(http, server.mcp_url, auth) == "ok"
        assert echo_call(http, other_server.mcp_url, other) == "ok"
        # Each auth object used with the other server's URL: nothing is attached.
        assert echo_call(http, other_server.mcp_url, auth) == "http 401"
        assert echo_call(http, server.mcp_url, other) == "http 401"
        # And with one auth set on the session for everything.
        http.auth = auth
        assert echo_call(http, other_server.mcp_url, None) == "http 401"
    for url, authorization, _ in wire.sent:
        if url.startswith(other_server.base_url):
            assert authorization is None or server.token_marker not in authorization
        else:
            assert authorization is None or other_server.token_marker not in authorization
    assert sum(1 for url, authorization, _ in wire.sent if authorization is None) == 3


def test_a_chain_stored_for_one_resource_is_never_used_for_another(server, auth, client_id, other_server, store_dir):
    # Same client id, same store: only the resource tells the chains apart.
    stranger = MCPAuth(other_server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id, interactive=False)
    wire = WireLog()
    with session_with(wire) as http, pytest.raises(AuthorizationRequired):
        echo_call(http, other_server.mcp_url, stranger)
    assert all(authorization is None for _, authorization, _ in wire.sent)
    with pytest.raises(AuthorizationRequired):
        stranger.access_token()


# --- http:// only to loopback ----------------------------------------------------------------------


def test_plain_http_token_endpoint_is_refused_by_the_token_client():
    with pytest.raises(InsecureTransportError):
        TokenEndpointClient("http://as.example.invalid/token", "c", clock=FakeClock())


def test_plain_http_registration_endpoint_is_refused_before_anything_is_sent(tmp_path):
    wire = NoNetwork()
    registrar = Registrar(FileTokenStore(tmp_path / "s"), session=session_with(wire), timeout=5.0, lock_timeout=5.0)
    with pytest.raises(InsecureTransportError):
        registrar.register(issuer="https://as.example.invalid", registration_endpoint="http://as.example.invalid/r",
                           redirect_uri=REDIRECT_URI, scopes=None, supported_auth_methods=None)
    assert wire.sent == []


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("as", "token_endpoint"),
        ("as", "authorization_endpoint"),
        ("as", "registration_endpoint"),
        ("prm", "authorization_servers"),
    ],
)
def test_metadata_naming_a_plain_http_endpoint_stops_the_login(server, store_dir, clock, document, field):
    remote = "http://as.example.invalid" + ("" if field == "authorization_servers" else "/x")
    if document == "as":
        server.as_metadata_overrides = {field: remote}
    else:
        server.prm_overrides = {field: [remote]}
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=browser, clock=clock)
    with requests.Session() as http, pytest.raises(DiscoveryError, match="https"):
        echo_call(http, server.mcp_url, auth)
    audit = server.audit
    assert audit.registrations == 0 and audit.authorization_requests == 0 and audit.token_requests == 0


def test_a_plain_http_resource_metadata_url_in_a_challenge_is_never_fetched():
    wire = NoNetwork()
    discovery = Discovery(session_with(wire), timeout=5.0)
    challenge = BearerChallenge(resource_metadata="http://mcp.example.invalid/.well-known/oauth-protected-resource")
    with pytest.raises(DiscoveryError, match="https"):
        discovery.protected_resource("http://127.0.0.1:1/mcp", challenge)
    assert wire.sent == []


LOOKALIKES = ["http://as.example.invalid\\@127.0.0.1/token", "http://as.example.invalid\\@localhost:8080/token"]


@fuzz_settings(300)
@example(LOOKALIKES[0])
@given(st.lists(st.sampled_from(["127.0.0.1", "localhost", "[::1]", "evil.invalid", "@", "\\", "/", ":", "#", "?",
                                 "%2f", "%5c", ".", "80", ";", "[", "]", "user", "x.localhost", "127.1", "%40"]),
                min_size=1, max_size=6).map(lambda parts: "http://" + "".join(parts)))
def test_a_url_that_only_looks_like_loopback_is_refused(url):
    try:
        require_secure(url, "a test URL")
    except (ConfigurationError, ValueError):
        return
    try:
        prepared = requests.Request("POST", url).prepare()
        host = urllib3.util.parse_url(prepared.url).host
    except (requests.RequestException, ValueError, urllib3.exceptions.HTTPError):
        return  # requests refuses it: nothing is sent
    assert host and is_loopback_host(host), f"{url!r} passes as loopback but requests connects to {host!r}"


@pytest.mark.parametrize("token_endpoint", LOOKALIKES)
def test_a_refresh_never_goes_in_plain_http_to_a_remote_host(token_endpoint):
    wire = NoNetwork()
    clock = FakeClock()
    try:
        auth = MCPAuth("http://127.0.0.1:1/mcp", store=MemoryTokenStore(), client_id="c", token_endpoint=token_endpoint,
                       session=session_with(wire), clock=clock, interactive=False)
    except InsecureTransportError:
        return
    auth.save_token({"access_token": "a", "token_type": "Bearer", "expires_in": 60, "refresh_token": f"{MARKER}-rt"})
    clock.now += 3600
    with contextlib.suppress(TokenEndpointError):
        auth.access_token()
    for request in wire.sent:
        host = urllib3.util.parse_url(request.url).host
        assert urlsplit(request.url).scheme == "https" or is_loopback_host(host), (
            f"the refresh token went in plain http to {host!r}"
        )


# --- the cache folder -------------------------------------------------------------------------------


KEY = ChainKey("http://127.0.0.1:1/mcp", "http://127.0.0.1:1/token", "client-1")


def marked_record():
    return ChainRecord(KEY, 1, TokenSet(f"{MARKER}-at", refresh_token=f"{MARKER}-rt", expires_at=2e9), updated_at=1.0)


def test_saving_never_writes_through_a_symlinked_cache_file(tmp_path):
    store = FileTokenStore(tmp_path / "s")
    store.save(marked_record())
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = store.path_for(KEY)
    path.unlink()
    os.symlink(victim, path)
    store.save(marked_record())
    assert victim.read_text() == "precious"
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600


def test_a_symlinked_token_folder_is_never_written_into(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "link")
    store = FileTokenStore(tmp_path / "link")
    with pytest.raises(TokenStoreError, match="symbolic link"):
        store.save(marked_record())
    with pytest.raises(TokenStoreError, match="symbolic link"), store.lock(KEY, timeout=1.0):
        pass
    assert list(real.iterdir()) == []


def test_a_symlinked_registration_file_is_refused(tmp_path):
    issuer = "https://as.example.invalid"
    store = FileTokenStore(tmp_path / "s")
    good = ClientRegistration(issuer, "planted", None, "none", (REDIRECT_URI,), DYNAMIC).to_json()
    store.save_registration(RegistrationKey(issuer), good)
    planted = tmp_path / "planted.json"
    os.replace(store.path_for(RegistrationKey(issuer)), planted)
    os.symlink(planted, store.path_for(RegistrationKey(issuer)))
    # Neither used nor silently registered over: the same verdict as a symlinked chain file.
    with pytest.raises(TokenStoreError, match="symbolic link"):
        Registrar(store).stored(issuer)
    assert os.path.islink(store.path_for(RegistrationKey(issuer)))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o606])
def test_a_cache_file_others_can_read_or_write_is_refused(server, auth, store_dir, clock, mode):
    os.chmod(FileTokenStore(store_dir).path_for(auth.key), mode)
    fresh = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=auth.key.client_id,
                    token_endpoint=server.token_endpoint, clock=clock, interactive=False)
    clock.advance(TTL + 1)
    with pytest.raises(TokenStoreError) as info:
        fresh.access_token()
    assert "chmod 600" in str(info.value)
    assert server.audit.token_requests == 0


def test_a_cache_file_mode_0600_is_fine(server, auth, store_dir, clock):
    """The other side of the test above: it is the mode, not something else, that is refused."""
    os.chmod(FileTokenStore(store_dir).path_for(auth.key), 0o600)
    clock.advance(TTL + 1)
    assert auth.access_token()


def test_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        store = FileTokenStore(tmp_path / "s")
        with store.lock(KEY, timeout=5.0):
            store.save(marked_record())
        store.save_registration(RegistrationKey("https://as.example.invalid"), {"client_secret": MARKER})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    files = list(store.directory.iterdir())
    assert len(files) == 4  # the chain, its lock file, its gate, the registration
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name


# --- secrets in logs, reprs, errors and the CLI ---------------------------------------------------------


def test_no_secret_in_logs_reprs_errors_or_cli_output_over_a_whole_session(server, store_dir, clock):
    """A confidential client logs in, calls, refreshes on expiry and on a 401, then its chain is revoked.
    Every log record of every logger (DEBUG and up), every repr of our objects, every error and the
    output of ``status`` and ``logout`` stay free of tokens, codes and the client secret."""
    client_id = server.register_client(token_endpoint_auth_method="client_secret_basic", redirect_uris=[REDIRECT_URI])
    secret = server.get_client(client_id).client_secret
    assert server.token_marker in secret
    codes = []

    def watching_browser(url):
        redirect = browser(url)
        codes.append(parse_qs(urlsplit(redirect).query)["code"][0])
        return redirect

    texts = []
    with LogWatch() as logs, requests.Session() as http:
        auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id, client_secret=secret,
                       redirect_uri=REDIRECT_URI, authorization_handler=watching_browser, clock=clock)
        assert echo_call(http, server.mcp_url, auth) == "ok"  # login
        clock.advance(TTL + 1)
        assert echo_call(http, server.mcp_url, auth) == "ok"  # refresh on expiry
        server.revoke_access_tokens()
        assert echo_call(http, server.mcp_url, auth) == "ok"  # refresh on a 401, resent once
        texts += our_reprs(auth, skip_types=(ClientSettings,))
        texts += [repr(record) for record in auth.store.records()]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            assert cli_main(["--store", str(store_dir), "status"]) == 0
        server.revoke_chain_of(auth.store.load(auth.key).tokens.refresh_token)
        clock.advance(TTL + 1)
        noninteractive = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                                 client_secret=secret, clock=clock, interactive=False)
        with pytest.raises(RefreshChainRevoked) as info:
            noninteractive.access_token()
        texts += exception_texts(info.value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            assert cli_main(["--store", str(store_dir), "status"]) == 0  # a dead chain
            assert cli_main(["--store", str(store_dir), "logout", server.mcp_url]) == 0
        texts += [out.getvalue()]
        texts += logs.texts()
    assert server.audit.refresh_ok == 2 and len(codes) == 1
    assert "dead" in out.getvalue() and "live" in out.getvalue()
    assert any("refresh" in text for text in texts)
    for secret_text in (server.token_marker, codes[0], secret):
        assert_no_marker(texts, "a log record, repr, error or CLI output", marker=secret_text)


def test_client_settings_repr_hides_the_client_secret():
    auth = MCPAuth("http://127.0.0.1:1/mcp", store=MemoryTokenStore(), client_id="c", client_secret=f"{MARKER}-s",
                   token_endpoint="http://127.0.0.1:1/token")
    assert_no_marker(our_reprs(auth), "a repr")

