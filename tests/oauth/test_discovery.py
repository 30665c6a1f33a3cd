"""Discovery against real HTTP on 127.0.0.1: exact documents, hostile documents, exact fetch order."""

import contextlib
import json
import socket
import threading

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_sync_auth import (
    ConfigurationError,
    DiscoveryError,
    InsecureTransportError,
    IssuerMismatch,
    MCPAuthError,
    ResourceMismatch,
)
from mcp_sync_auth._oauth.challenge import BearerChallenge
from mcp_sync_auth._oauth.discovery import (
    MAX_DOCUMENT_BYTES,
    AuthorizationServerMetadata,
    Discovery,
    ProtectedResourceMetadata,
    _parse_authorization_server,
    _parse_protected_resource,
    _resource_key,
    _resource_parts,
    authorization_server_metadata_urls,
)

from ..clocks import ManualClock
from ..docserver import DocServer
from ..helpers import wait_until

PRM = "/.well-known/oauth-protected-resource"
PRM_MCP = "/.well-known/oauth-protected-resource/mcp"
OAUTH = "/.well-known/oauth-authorization-server"
OIDC = "/.well-known/openid-configuration"


@pytest.fixture
def rs():
    with DocServer() as server:
        yield server


@pytest.fixture
def asrv():
    with DocServer() as server:
        yield server


@pytest.fixture
def clock():
    return ManualClock(1000.0)


@pytest.fixture
def discovery(clock):
    d = Discovery(timeout=5.0, clock=clock)
    yield d
    d.close()


def prm_doc(resource, issuer, **extra):
    return {"resource": resource, "authorization_servers": [issuer], **extra}


def as_doc(issuer, base=None, **extra):
    base = base or issuer
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "registration_endpoint": f"{base}/register",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
    }
    document.update(extra)
    return {k: v for k, v in document.items() if v is not ...}


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- protected resource metadata: where it is looked for -------------------------------------


def test_resource_metadata_from_the_challenge_is_the_only_url_fetched(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json("/custom/metadata/location.json", prm_doc(mcp, asrv.base_url))
    rs.json(PRM_MCP, prm_doc(mcp, "https://other.example"))
    rs.json(PRM, prm_doc(rs.base_url, "https://other.example"))
    challenge = BearerChallenge(resource_metadata=rs.url("/custom/metadata/location.json"))

    prm = discovery.protected_resource(mcp, challenge)

    assert prm == ProtectedResourceMetadata(
        resource=mcp,
        authorization_servers=(asrv.base_url,),
        scopes_supported=None,
        url=rs.url("/custom/metadata/location.json"),
    )
    assert rs.requested == ["/custom/metadata/location.json"]


def test_path_inserted_url_first_and_root_not_fetched_when_it_exists(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.base_url, scopes_supported=["mcp:read", "mcp:write"]))
    rs.json(PRM, prm_doc(rs.base_url, "https://wrong.example"))

    prm = discovery.protected_resource(mcp, None)

    assert prm.authorization_servers == (asrv.base_url,)
    assert prm.scopes_supported == ("mcp:read", "mcp:write")
    assert prm.url == rs.url(PRM_MCP)
    assert rs.requested == [PRM_MCP]


def test_a_challenge_without_resource_metadata_uses_the_well_known_urls(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.base_url))
    assert discovery.protected_resource(mcp, BearerChallenge(scopes=("a",))) is not None
    assert rs.requested == [PRM_MCP]


def test_root_url_after_a_missing_path_inserted_one(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))

    prm = discovery.protected_resource(mcp, None)

    assert prm.resource == rs.base_url  # exactly as published: the caller's RFC 8707 resource
    assert prm.url == rs.url(PRM)
    assert rs.requested == [PRM_MCP, PRM]


def test_deep_paths_and_queries_are_inserted_whole(discovery, rs, asrv):
    mcp = rs.url("/tenants/a/mcp/?x=1")
    rs.json(PRM + "/tenants/a/mcp?x=1", prm_doc(rs.url("/tenants/a/mcp?x=1"), asrv.base_url))
    assert discovery.protected_resource(mcp, None) is not None
    assert rs.requested == [PRM + "/tenants/a/mcp?x=1"]


def test_a_server_at_the_root_only_has_the_root_url(discovery, rs, asrv):
    rs.json(PRM, prm_doc(rs.base_url + "/", asrv.base_url))
    assert discovery.protected_resource(rs.base_url + "/", None) is not None
    assert rs.requested == [PRM]


def test_no_metadata_anywhere_is_none(discovery, rs):
    assert discovery.protected_resource(rs.url("/mcp"), None) is None
    assert rs.requested == [PRM_MCP, PRM]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410])
def test_client_errors_move_to_the_next_candidate(discovery, rs, asrv, status):
    mcp = rs.url("/mcp")
    rs.route(PRM_MCP, status, b'{"error": "nope"}')
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))
    assert discovery.protected_resource(mcp, None).url == rs.url(PRM)
    assert rs.requested == [PRM_MCP, PRM]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_stop_discovery(discovery, rs, asrv, status):
    rs.route(PRM_MCP, status, b"down")
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))
    with pytest.raises(DiscoveryError) as caught:
        discovery.protected_resource(rs.url("/mcp"), None)
    assert str(status) in str(caught.value) and caught.value.url == rs.url(PRM_MCP)
    assert rs.requested == [PRM_MCP]


def test_a_network_error_is_a_discovery_error():
    d = Discovery(timeout=2.0)
    with pytest.raises(DiscoveryError, match="could not fetch"):
        d.protected_resource(closed_port_url() + "/mcp", None)


def test_a_redirect_from_a_well_known_url_is_not_followed(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.redirect(PRM_MCP, rs.url("/elsewhere"))
    rs.json("/elsewhere", prm_doc(mcp, "https://evil.example"))
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))
    assert discovery.protected_resource(mcp, None).authorization_servers == (asrv.base_url,)
    assert rs.requested == [PRM_MCP, PRM]


def test_a_redirect_from_the_challenge_url_is_an_error(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.redirect("/prm", asrv.url("/prm"))
    asrv.json("/prm", prm_doc(mcp, asrv.base_url))
    with pytest.raises(DiscoveryError, match="HTTP 302"):
        discovery.protected_resource(mcp, BearerChallenge(resource_metadata=rs.url("/prm")))
    assert asrv.requested == []


def test_a_missing_challenge_url_is_an_error_not_a_fallback(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.base_url))
    with pytest.raises(DiscoveryError, match="HTTP 404"):
        discovery.protected_resource(mcp, BearerChallenge(resource_metadata=rs.url("/gone")))
    assert rs.requested == ["/gone"]


@pytest.mark.parametrize(
    "url",
    ["http://mcp.example.com/prm", "ftp://127.0.0.1/prm", "/relative/prm", "", "https://", "http://[::1/prm"],
)
def test_an_unusable_challenge_url_is_refused_before_any_fetch(discovery, rs, url):
    with pytest.raises(DiscoveryError):
        discovery.protected_resource(rs.url("/mcp"), BearerChallenge(resource_metadata=url))
    assert rs.requested == []


# --- protected resource metadata: what is accepted -------------------------------------------


@pytest.mark.parametrize(
    "published",
    [
        "{base}/mcp",
        "{base}/mcp/",
        "{BASE}/mcp",
        "HTTP://127.0.0.1:{port}/mcp",
    ],
)
def test_equivalent_spellings_of_the_resource_are_accepted(discovery, rs, asrv, published):
    resource = published.format(base=rs.base_url, BASE=rs.base_url.upper(), port=rs.base_url.rsplit(":", 1)[1])
    rs.json(PRM_MCP, prm_doc(resource, asrv.base_url))
    assert discovery.protected_resource(rs.url("/mcp"), None).resource == resource


@pytest.mark.parametrize(
    "published",
    [
        "{base}/other",
        "{base}",  # the origin, from the path-inserted URL: not the identifier that URL was built from
        "{base}/mcp/tools",
        "{base}/mc",
        "{base}/mcp#frag",
        "{base}/mcp?x=1",
        "http://127.0.0.2:{port}/mcp",
        "https://127.0.0.1:{port}/mcp",
        "https://evil.example.com/mcp",
        "urn:example:mcp",
        "",
        5,
        None,
    ],
)
def test_a_document_for_another_resource_is_refused(discovery, rs, asrv, published):
    if isinstance(published, str):
        published = published.format(base=rs.base_url, port=rs.base_url.rsplit(":", 1)[1])
    document = prm_doc(published, asrv.base_url)
    rs.json(PRM_MCP, document)
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))
    with pytest.raises(DiscoveryError) as caught:
        discovery.protected_resource(rs.url("/mcp"), None)
    if isinstance(published, str) and published:
        assert isinstance(caught.value, ResourceMismatch)
    # Raised, not skipped: the root document, valid as it is, is never consulted.
    assert rs.requested == [PRM_MCP]


def test_a_root_document_describes_the_origin_or_exactly_the_mcp_url(rs, asrv):
    mcp = rs.url("/mcp")
    for published, ok in [(rs.base_url, True), (mcp, True), (rs.url("/other"), False), (rs.url("/mcp/x"), False)]:
        rs.json(PRM, prm_doc(published, asrv.base_url))
        d = Discovery(timeout=5.0)
        if ok:
            assert d.protected_resource(mcp, None).resource == published
        else:
            with pytest.raises(ResourceMismatch):
                d.protected_resource(mcp, None)


def test_a_challenge_document_must_name_the_requested_url(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json("/custom.json", prm_doc(rs.base_url, asrv.base_url))
    with pytest.raises(ResourceMismatch) as caught:
        discovery.protected_resource(mcp, BearerChallenge(resource_metadata=rs.url("/custom.json")))
    assert caught.value.expected == mcp
    assert caught.value.url == rs.url("/custom.json")


def test_a_challenge_pointing_at_the_root_document_may_describe_the_origin(discovery, rs, asrv):
    rs.json(PRM, prm_doc(rs.base_url, asrv.base_url))
    prm = discovery.protected_resource(rs.url("/mcp"), BearerChallenge(resource_metadata=rs.url(PRM)))
    assert prm.resource == rs.base_url
    assert rs.requested == [PRM]


def test_a_challenge_pointing_at_another_origin_must_still_name_the_mcp_url(discovery, rs, asrv):
    asrv.json(PRM, prm_doc(asrv.base_url, asrv.base_url))
    with pytest.raises(ResourceMismatch):
        discovery.protected_resource(rs.url("/mcp"), BearerChallenge(resource_metadata=asrv.url(PRM)))
    asrv.json("/prm", prm_doc(rs.url("/mcp"), asrv.base_url))
    assert discovery.protected_resource(rs.url("/mcp"), BearerChallenge(resource_metadata=asrv.url("/prm")))


@pytest.mark.parametrize(
    ("servers", "why"),
    [
        ([], "authorization_servers"),
        (None, "authorization_servers"),
        ("https://as.example", "authorization_servers"),
        ([5], "non-empty string"),
        ([""], "non-empty string"),
        (["http://as.example"], "https"),
        (["https://as.example", "http://as.example"], "https"),
        (["https://as.example?tenant=1"], "query"),
        (["https://as.example#x"], "fragment"),
        (["https://user:pw@as.example"], "credentials"),
        (["as.example"], "absolute"),
        (["https://[::1"], "absolute"),
    ],
)
def test_authorization_servers_must_be_a_non_empty_list_of_secure_issuers(discovery, rs, servers, why):
    document = {"resource": rs.url("/mcp")}
    if servers is not None:
        document["authorization_servers"] = servers
    rs.json(PRM_MCP, document)
    with pytest.raises(DiscoveryError, match=why):
        discovery.protected_resource(rs.url("/mcp"), None)


def test_loopback_http_issuers_are_allowed(discovery, rs):
    servers = ["http://127.0.0.1:1/a", "http://localhost:2", "http://[::1]:3", "https://as.example/t"]
    rs.json(PRM_MCP, {"resource": rs.url("/mcp"), "authorization_servers": servers})
    assert discovery.protected_resource(rs.url("/mcp"), None).authorization_servers == tuple(servers)


@pytest.mark.parametrize("scopes", ["a b", [1], {"a": 1}, [["a"]]])
def test_scopes_supported_must_be_a_list_of_strings(discovery, rs, asrv, scopes):
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url, scopes_supported=scopes))
    with pytest.raises(DiscoveryError, match="scopes_supported"):
        discovery.protected_resource(rs.url("/mcp"), None)


def test_null_optional_fields_read_as_absent(discovery, rs, asrv):
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url, scopes_supported=None))
    assert discovery.protected_resource(rs.url("/mcp"), None).scopes_supported is None


@pytest.mark.parametrize(
    ("body", "headers", "why"),
    [
        (b"<html>login</html>", {"Content-Type": "text/html"}, "not JSON"),
        (b"", {}, "not JSON"),
        (b"\xff\xfe\x00garbage", {}, "not JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, "not a JSON object"),
        (b'"resource"', {"Content-Type": "application/json"}, "not a JSON object"),
        (b"null", {"Content-Type": "application/json"}, "not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, {"Content-Type": "application/json"}, "not JSON"),
        (b" " * (MAX_DOCUMENT_BYTES + 1), {"Content-Type": "application/json"}, "too large"),
    ],
)
def test_unusable_bodies_are_discovery_errors_that_name_the_url(discovery, rs, body, headers, why):
    rs.route(PRM_MCP, 200, body, headers)
    with pytest.raises(DiscoveryError, match=why) as caught:
        discovery.protected_resource(rs.url("/mcp"), None)
    assert rs.url(PRM_MCP) in str(caught.value)
    assert rs.requested == [PRM_MCP]


def test_a_huge_body_without_content_length_is_cut_off(discovery, rs):
    rs.route(PRM_MCP, 200, b"{" + b" " * (4 * MAX_DOCUMENT_BYTES), {"Content-Type": "application/json"}, sized=False)
    with pytest.raises(DiscoveryError, match="too large"):
        discovery.protected_resource(rs.url("/mcp"), None)


def test_a_non_200_success_status_is_an_error(discovery, rs):
    rs.route(PRM_MCP, 204)
    with pytest.raises(DiscoveryError, match="204"):
        discovery.protected_resource(rs.url("/mcp"), None)


def test_an_insecure_mcp_url_is_a_configuration_error(discovery):
    with pytest.raises(InsecureTransportError):
        discovery.protected_resource("http://mcp.example.com/mcp", None)
    with pytest.raises(ConfigurationError):
        discovery.protected_resource("not a url", None)


def test_requests_ask_for_json_and_carry_no_credentials(rs, asrv):
    session = requests.Session()
    session.auth = ("user", "SECRET-PASSWORD")
    session.headers["Authorization"] = "Bearer SECRET-TOKEN"
    d = Discovery(session, timeout=5.0)
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url))
    asrv.json(OAUTH, as_doc(asrv.base_url))
    d.authorization_server(d.protected_resource(rs.url("/mcp"), None).authorization_servers[0])
    for headers in rs.request_headers + asrv.request_headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["accept"] == "application/json"
        assert "authorization" not in lowered
        assert "SECRET" not in repr(lowered)


def test_session_auth_never_runs_for_metadata(rs, asrv):
    calls = []

    def auth(request):
        calls.append(request.url)
        request.headers["Authorization"] = "Bearer SECRET-TOKEN"
        return request

    session = requests.Session()
    session.auth = auth
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url))
    Discovery(session, timeout=5.0).protected_resource(rs.url("/mcp"), None)
    assert calls == []
    assert all("authorization" not in {k.lower() for k in h} for h in rs.request_headers)


# --- authorization server metadata -----------------------------------------------------------


def test_well_known_urls_for_issuers():
    assert authorization_server_metadata_urls("https://as.example/tenant1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant1",
        "https://as.example/.well-known/openid-configuration/tenant1",
        "https://as.example/tenant1/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://as.example/tenant1/") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant1",
        "https://as.example/.well-known/openid-configuration/tenant1",
        "https://as.example/tenant1/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://as.example/") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]


@pytest.mark.parametrize(
    ("served_at", "expected_requests"),
    [
        (OAUTH + "/tenant1", [OAUTH + "/tenant1"]),
        (OIDC + "/tenant1", [OAUTH + "/tenant1", OIDC + "/tenant1"]),
        ("/tenant1" + OIDC, [OAUTH + "/tenant1", OIDC + "/tenant1", "/tenant1" + OIDC]),
    ],
)
def test_issuer_with_a_path_tries_the_three_urls_in_order_and_never_the_root(
    discovery, asrv, served_at, expected_requests
):
    issuer = asrv.url("/tenant1")
    asrv.json(served_at, as_doc(issuer))
    asrv.json(OAUTH, as_doc(asrv.base_url))  # the root trap
    asrv.json(OIDC, as_doc(asrv.base_url))
    metadata = discovery.authorization_server(issuer)
    assert metadata.issuer == issuer
    assert metadata.url == asrv.url(served_at)
    assert asrv.requested == expected_requests


@pytest.mark.parametrize(
    ("served_at", "expected_requests"),
    [(OAUTH, [OAUTH]), (OIDC, [OAUTH, OIDC])],
)
def test_issuer_without_a_path_tries_rfc8414_then_oidc(discovery, asrv, served_at, expected_requests):
    asrv.json(served_at, as_doc(asrv.base_url))
    assert discovery.authorization_server(asrv.base_url).url == asrv.url(served_at)
    assert asrv.requested == expected_requests


def test_no_metadata_for_an_issuer_is_an_error_listing_what_was_tried(discovery, asrv):
    with pytest.raises(DiscoveryError) as caught:
        discovery.authorization_server(asrv.url("/tenant1"))
    assert asrv.url("/tenant1" + OIDC) in str(caught.value)
    assert asrv.requested == [OAUTH + "/tenant1", OIDC + "/tenant1", "/tenant1" + OIDC]


def test_a_full_document_is_read_field_by_field(discovery, asrv):
    issuer = asrv.base_url
    asrv.json(
        OAUTH,
        as_doc(
            issuer,
            scopes_supported=["mcp", "offline_access"],
            client_id_metadata_document_supported=True,
            authorization_response_iss_parameter_supported=True,
            revocation_endpoint=f"{issuer}/revoke",
            jwks_uri=f"{issuer}/jwks",
        ),
    )
    metadata = discovery.authorization_server(issuer)
    assert metadata == AuthorizationServerMetadata(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        registration_endpoint=f"{issuer}/register",
        scopes_supported=("mcp", "offline_access"),
        response_types_supported=("code",),
        grant_types_supported=("authorization_code", "refresh_token"),
        code_challenge_methods_supported=("S256",),
        token_endpoint_auth_methods_supported=("none", "client_secret_basic"),
        client_id_metadata_document_supported=True,
        authorization_response_iss_parameter_supported=True,
        legacy=False,
        url=asrv.url(OAUTH),
        revocation_endpoint=f"{issuer}/revoke",
    )
    assert metadata.supports_s256
    assert metadata.document["jwks_uri"] == f"{issuer}/jwks"
    assert "jwks" not in repr(metadata)


def test_a_minimal_document_leaves_optional_fields_empty(discovery, asrv):
    issuer = asrv.base_url
    asrv.json(OAUTH, {"issuer": issuer, "token_endpoint": f"{issuer}/token"})
    metadata = discovery.authorization_server(issuer)
    assert metadata.authorization_endpoint is None and metadata.registration_endpoint is None
    assert metadata.grant_types_supported is None and metadata.token_endpoint_auth_methods_supported is None
    assert metadata.client_id_metadata_document_supported is False
    assert metadata.authorization_response_iss_parameter_supported is False


@pytest.mark.parametrize("methods", [..., None, [], ["plain"]])
def test_pkce_support_is_reported_exactly_as_published(discovery, asrv, methods):
    asrv.json(OAUTH, as_doc(asrv.base_url, code_challenge_methods_supported=methods))
    metadata = discovery.authorization_server(asrv.base_url)
    # Absent means "no PKCE": None, never a guessed default, so the caller refuses the server.
    assert metadata.code_challenge_methods_supported == (None if methods in (..., None) else tuple(methods))
    assert metadata.supports_s256 is False


@pytest.mark.parametrize(
    ("issuer_path", "published"),
    [
        ("/tenant1", "{base}/tenant1/"),  # trailing-slash variant
        ("/tenant1/", "{base}/tenant1"),
        ("", "{base}/"),
        ("/tenant1", "{BASE}/tenant1"),  # no case folding
        ("/tenant1", "{base}/Tenant1"),
        ("/tenant1", "{base}"),
        ("/tenant1", "https://evil.example/tenant1"),
        ("/tenant1", ""),
        ("/tenant1", None),
        ("/tenant1", ["{base}/tenant1"]),
    ],
)
def test_issuer_must_be_identical_to_the_one_the_url_was_built_from(discovery, asrv, issuer_path, published):
    issuer = asrv.base_url + issuer_path
    if isinstance(published, str):
        published = published.format(base=asrv.base_url, BASE=asrv.base_url.upper())
    elif isinstance(published, list):
        published = [p.format(base=asrv.base_url) for p in published]
    first = authorization_server_metadata_urls(issuer)[0].replace(asrv.base_url, "")
    asrv.json(first, as_doc(published, base=issuer.rstrip("/")))
    for later in authorization_server_metadata_urls(issuer)[1:]:
        asrv.json(later.replace(asrv.base_url, ""), as_doc(issuer))
    with pytest.raises(IssuerMismatch) as caught:
        discovery.authorization_server(issuer)
    assert caught.value.expected == issuer
    # Refused outright: the correct documents at later URLs are not consulted.
    assert asrv.requested == [first]


def test_a_missing_issuer_field_is_a_mismatch(discovery, asrv):
    asrv.json(OAUTH, as_doc(...))
    with pytest.raises(IssuerMismatch):
        discovery.authorization_server(asrv.base_url)


@pytest.mark.parametrize(
    "field",
    ["token_endpoint", "authorization_endpoint", "registration_endpoint"],
)
@pytest.mark.parametrize(
    "value",
    [
        "http://as.example/x",  # plain http to a non-loopback host
        "/token",  # relative
        "as.example/token",
        "https://as.example/token#frag",
        "javascript:alert(1)",
        "",
        5,
        ["https://as.example/token"],
    ],
)
def test_endpoints_must_be_absolute_https_urls(discovery, asrv, field, value):
    asrv.json(OAUTH, as_doc(asrv.base_url, **{field: value}))
    with pytest.raises(DiscoveryError, match=field):
        discovery.authorization_server(asrv.base_url)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("revocation_endpoint", "http://as.example/revoke"),  # insecure: dropped, never used
        ("revocation_endpoint", 5),
        ("response_types_supported", "code"),
        ("grant_types_supported", [1, 2]),
        ("grant_types_supported", "authorization_code"),
        ("response_types_supported", [None]),
    ],
)
def test_a_malformed_field_that_no_login_reads_does_not_fail_the_login(discovery, asrv, field, value):
    asrv.json(OAUTH, as_doc(asrv.base_url, **{field: value}))
    metadata = discovery.authorization_server(asrv.base_url)
    assert getattr(metadata, field) is None
    assert metadata.token_endpoint


def test_a_well_formed_revocation_endpoint_is_kept(discovery, asrv):
    asrv.json(OAUTH, as_doc(asrv.base_url, revocation_endpoint="https://as.example/revoke"))
    assert discovery.authorization_server(asrv.base_url).revocation_endpoint == "https://as.example/revoke"


def test_loopback_http_endpoints_are_allowed(discovery, asrv):
    asrv.json(OAUTH, as_doc(asrv.base_url, token_endpoint="http://localhost:9/token"))
    assert discovery.authorization_server(asrv.base_url).token_endpoint == "http://localhost:9/token"


def test_a_missing_token_endpoint_is_an_error(discovery, asrv):
    asrv.json(OAUTH, as_doc(asrv.base_url, token_endpoint=...))
    with pytest.raises(DiscoveryError, match="token_endpoint"):
        discovery.authorization_server(asrv.base_url)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code_challenge_methods_supported", "S256"),
        ("code_challenge_methods_supported", [256]),
        ("token_endpoint_auth_methods_supported", {"none": True}),
        ("scopes_supported", "a b"),
        ("client_id_metadata_document_supported", "true"),
        ("client_id_metadata_document_supported", 1),
        ("authorization_response_iss_parameter_supported", "yes"),
    ],
)
def test_field_types_are_checked(discovery, asrv, field, value):
    asrv.json(OAUTH, as_doc(asrv.base_url, **{field: value}))
    with pytest.raises(DiscoveryError, match=field):
        discovery.authorization_server(asrv.base_url)


def test_an_insecure_issuer_is_refused_before_any_fetch(discovery):
    with pytest.raises(InsecureTransportError):
        discovery.authorization_server("http://as.example")
    with pytest.raises(ConfigurationError):
        discovery.authorization_server("https://as.example/?tenant=1")


def test_server_errors_on_as_metadata_stop_discovery(discovery, asrv):
    asrv.route(OAUTH, 503)
    asrv.json(OIDC, as_doc(asrv.base_url))
    with pytest.raises(DiscoveryError, match="503"):
        discovery.authorization_server(asrv.base_url)
    assert asrv.requested == [OAUTH]


def test_a_redirect_on_as_metadata_is_not_followed(discovery, asrv):
    asrv.redirect(OAUTH, asrv.url("/moved"))
    asrv.json("/moved", as_doc(asrv.base_url))
    asrv.json(OIDC, as_doc(asrv.base_url))
    assert discovery.authorization_server(asrv.base_url).url == asrv.url(OIDC)
    assert asrv.requested == [OAUTH, OIDC]


def test_non_json_as_metadata_is_an_error_naming_the_url(discovery, asrv):
    asrv.route(OAUTH, 200, b"<!doctype html><title>SPA</title>", {"Content-Type": "text/html"})
    with pytest.raises(DiscoveryError, match="not JSON") as caught:
        discovery.authorization_server(asrv.base_url)
    assert caught.value.url == asrv.url(OAUTH)


# --- 2025-03-26 fallback ---------------------------------------------------------------------


def test_legacy_metadata_at_the_mcp_origin(discovery, rs):
    rs.json(OAUTH, as_doc(rs.base_url, base=rs.url("/oauth")))
    metadata = discovery.legacy_authorization_server(rs.url("/mcp"))
    assert metadata.legacy is True
    assert metadata.url == rs.url(OAUTH)
    assert metadata.token_endpoint == rs.url("/oauth/token")
    assert rs.requested == [OAUTH]


def test_legacy_metadata_may_spell_the_origin_with_a_slash(discovery, rs):
    rs.json(OAUTH, as_doc(rs.base_url + "/"))
    assert discovery.legacy_authorization_server(rs.url("/mcp")).issuer == rs.base_url + "/"


@pytest.mark.parametrize("published", ["{base}/mcp", "https://evil.example", "{base}//"])
def test_legacy_metadata_must_name_the_origin(discovery, rs, published):
    rs.json(OAUTH, as_doc(published.format(base=rs.base_url)))
    with pytest.raises(IssuerMismatch):
        discovery.legacy_authorization_server(rs.url("/mcp"))


def test_legacy_defaults_when_the_origin_has_no_metadata(discovery, rs):
    metadata = discovery.legacy_authorization_server(rs.url("/deep/mcp"))
    assert metadata == AuthorizationServerMetadata(
        issuer=rs.base_url,
        authorization_endpoint=rs.url("/authorize"),
        token_endpoint=rs.url("/token"),
        registration_endpoint=rs.url("/register"),
        response_types_supported=("code",),
        code_challenge_methods_supported=("S256",),
        legacy=True,
        url=None,
    )
    assert metadata.supports_s256
    assert rs.requested == [OAUTH]


def test_legacy_metadata_endpoints_are_validated_too(discovery, rs):
    rs.json(OAUTH, as_doc(rs.base_url, token_endpoint="http://as.example/token"))
    with pytest.raises(DiscoveryError, match="token_endpoint"):
        discovery.legacy_authorization_server(rs.url("/mcp"))


def test_legacy_server_errors_are_not_read_as_absent(discovery, rs):
    rs.route(OAUTH, 500)
    with pytest.raises(DiscoveryError):
        discovery.legacy_authorization_server(rs.url("/mcp"))


# --- caching ---------------------------------------------------------------------------------


def test_second_lookups_fetch_nothing(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/t")))
    asrv.json(OAUTH + "/t", as_doc(asrv.url("/t")))
    for _ in range(3):
        prm = discovery.protected_resource(mcp, None)
        discovery.authorization_server(prm.authorization_servers[0])
        discovery.legacy_authorization_server(mcp)
    assert rs.requested == [PRM_MCP, OAUTH]
    assert asrv.requested == [OAUTH + "/t"]


def test_equivalent_mcp_urls_share_an_entry(discovery, rs, asrv):
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url))
    discovery.protected_resource(rs.url("/mcp"), None)
    discovery.protected_resource(rs.url("/mcp/"), None)
    discovery.protected_resource(rs.base_url.upper() + "/mcp", None)
    assert rs.requested == [PRM_MCP]


def test_absence_of_metadata_is_cached_too(discovery, rs):
    assert discovery.protected_resource(rs.url("/mcp"), None) is None
    assert discovery.protected_resource(rs.url("/mcp"), None) is None
    assert rs.requested == [PRM_MCP, PRM]


def test_entries_expire_after_the_ttl(clock, rs, asrv):
    d = Discovery(timeout=5.0, cache_ttl=60.0, clock=clock)
    asrv.json(OAUTH, as_doc(asrv.base_url))
    d.authorization_server(asrv.base_url)
    clock.now += 59
    d.authorization_server(asrv.base_url)
    assert asrv.requested == [OAUTH]
    clock.now += 2
    d.authorization_server(asrv.base_url)
    assert asrv.requested == [OAUTH, OAUTH]


def test_the_cache_is_bounded(rs, asrv):
    d = Discovery(timeout=5.0, cache_size=2)
    for tenant in ("a", "b", "c"):
        asrv.json(f"{OAUTH}/{tenant}", as_doc(asrv.url(f"/{tenant}")))
        d.authorization_server(asrv.url(f"/{tenant}"))
    d.authorization_server(asrv.url("/a"))  # evicted by "c"
    assert asrv.requested.count(f"{OAUTH}/a") == 2


def test_the_challenge_url_is_part_of_the_key(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json("/one", prm_doc(mcp, asrv.url("/1")))
    rs.json("/two", prm_doc(mcp, asrv.url("/2")))
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/3")))
    one = discovery.protected_resource(mcp, BearerChallenge(resource_metadata=rs.url("/one")))
    two = discovery.protected_resource(mcp, BearerChallenge(resource_metadata=rs.url("/two")))
    three = discovery.protected_resource(mcp, None)
    assert [p.authorization_servers[0] for p in (one, two, three)] == [asrv.url(f"/{n}") for n in (1, 2, 3)]
    assert rs.requested == ["/one", "/two", PRM_MCP]


def test_errors_are_not_cached(discovery, rs, asrv):
    rs.route(PRM_MCP, 503)
    with pytest.raises(DiscoveryError):
        discovery.protected_resource(rs.url("/mcp"), None)
    rs.json(PRM_MCP, prm_doc(rs.url("/mcp"), asrv.base_url))
    assert discovery.protected_resource(rs.url("/mcp"), None) is not None
    assert rs.requested == [PRM_MCP, PRM_MCP]


def test_invalidate_one_server_drops_its_documents_and_its_issuers(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.base_url))
    asrv.json(OAUTH, as_doc(asrv.base_url))
    asrv.json(OAUTH + "/unrelated", as_doc(asrv.url("/unrelated")))
    discovery.authorization_server(discovery.protected_resource(mcp, None).authorization_servers[0])
    discovery.authorization_server(asrv.url("/unrelated"))
    discovery.invalidate(rs.url("/other"))
    discovery.protected_resource(mcp, None)
    assert rs.requested == [PRM_MCP]

    discovery.invalidate(mcp)
    discovery.authorization_server(discovery.protected_resource(mcp, None).authorization_servers[0])
    discovery.authorization_server(asrv.url("/unrelated"))
    assert rs.requested == [PRM_MCP, PRM_MCP]
    assert asrv.requested == [OAUTH, OAUTH + "/unrelated", OAUTH]


def test_invalidate_everything(discovery, rs, asrv):
    asrv.json(OAUTH, as_doc(asrv.base_url))
    discovery.authorization_server(asrv.base_url)
    discovery.legacy_authorization_server(rs.url("/mcp"))
    discovery.invalidate()
    discovery.authorization_server(asrv.base_url)
    discovery.legacy_authorization_server(rs.url("/mcp"))
    assert asrv.requested == [OAUTH, OAUTH]
    assert rs.requested == [OAUTH, OAUTH]


def test_a_server_moving_to_another_authorization_server_is_seen_after_invalidate(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/as1")))
    assert discovery.protected_resource(mcp, None).authorization_servers == (asrv.url("/as1"),)
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/as2")))
    assert discovery.protected_resource(mcp, None).authorization_servers == (asrv.url("/as1"),)
    discovery.invalidate(mcp)
    assert discovery.protected_resource(mcp, None).authorization_servers == (asrv.url("/as2"),)


def test_a_fetch_in_flight_during_invalidate_does_not_refill_the_cache(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    gate = threading.Event()  # holds the first answer until invalidate() has run, however slow the machine
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/as1")), delay=gate)
    results = []
    worker = threading.Thread(target=lambda: results.append(discovery.protected_resource(mcp, None)))
    worker.start()
    wait_until(lambda: rs.requested == [PRM_MCP], what="the first fetch to reach the server")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/as2")))
    discovery.invalidate(mcp)
    gate.set()
    worker.join(10)
    assert results[0].authorization_servers == (asrv.url("/as1"),)  # what it fetched, it returns
    assert discovery.protected_resource(mcp, None).authorization_servers == (asrv.url("/as2"),)
    assert rs.requested == [PRM_MCP, PRM_MCP]


def run_together(n, call):
    barrier = threading.Barrier(n)
    results, errors = [], []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        try:
            value = call()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def test_32_threads_fetch_each_document_once(discovery, rs, asrv):
    mcp = rs.url("/mcp")
    rs.json(PRM_MCP, prm_doc(mcp, asrv.url("/t")), delay=0.3)
    asrv.json(OAUTH + "/t", as_doc(asrv.url("/t")), delay=0.3)

    def discover():
        prm = discovery.protected_resource(mcp, None)
        return prm, discovery.authorization_server(prm.authorization_servers[0])

    results, errors = run_together(32, discover)
    assert errors == []
    assert len(results) == 32 and len({r for r in results}) == 1
    assert rs.requested == [PRM_MCP]
    assert asrv.requested == [OAUTH + "/t"]


def run_on_one_flight(n, call, discovery, key, gate):
    """n threads call at once while the server holds its answer (``gate``), released once n - 1 of them
    wait on the first one's flight: a failure is not cached, so a thread that came late would fetch again.
    Waiting for that state, rather than answering after a delay, holds however slowly the threads start."""
    outcome = []
    runner = threading.Thread(target=lambda: outcome.extend(run_together(n, call)))
    runner.start()
    wait_until(lambda: discovery._flights.waiting(key) == n - 1, what="every other thread on the first one's flight")
    gate.set()
    runner.join(60)
    return outcome


def test_32_threads_share_one_failure(discovery, rs):
    gate = threading.Event()
    rs.route(PRM_MCP, 502, delay=gate)
    mcp = rs.url("/mcp")
    key = ("prm", _resource_key(_resource_parts(mcp)[0]), None)
    results, errors = run_on_one_flight(32, lambda: discovery.protected_resource(mcp, None), discovery, key, gate)
    assert results == []
    assert len(errors) == 32 and all(isinstance(e, DiscoveryError) for e in errors)
    assert rs.requested == [PRM_MCP]


def test_32_threads_share_one_mismatch(discovery, rs, asrv):
    gate = threading.Event()
    asrv.json(OAUTH, as_doc(asrv.base_url + "/"), delay=gate)
    key = ("as", asrv.base_url)
    _, errors = run_on_one_flight(32, lambda: discovery.authorization_server(asrv.base_url), discovery, key, gate)
    assert len(errors) == 32 and all(isinstance(e, IssuerMismatch) for e in errors)
    assert all(e.expected == asrv.base_url for e in errors)
    assert asrv.requested == [OAUTH]


def test_bad_cache_settings_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        Discovery(cache_size=0)
    with pytest.raises(ConfigurationError):
        Discovery(cache_ttl=-1)


# --- every error is one of ours --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
url_like = st.sampled_from(
    [
        "https://mcp.example.com/mcp",
        "https://mcp.example.com",
        "https://as.example.com",
        "https://as.example.com/",
        "http://as.example.com",
        "http://127.0.0.1:1/x",
        "https://[::1",
        "urn:x",
        "",
    ]
)
prm_like = st.fixed_dictionaries(
    {},
    optional={
        "resource": url_like | json_values,
        "authorization_servers": st.lists(url_like | json_values, max_size=3) | json_values,
        "scopes_supported": st.lists(st.text(max_size=5), max_size=3) | json_values,
    },
)
as_like = st.fixed_dictionaries(
    {},
    optional={
        name: url_like | json_values
        for name in (
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
            "revocation_endpoint",
            "code_challenge_methods_supported",
            "grant_types_supported",
            "client_id_metadata_document_supported",
        )
    },
)


@settings(max_examples=400, deadline=None)
@given(prm_like)
def test_any_prm_document_is_accepted_or_refused_with_a_discovery_error(document):
    try:
        prm = _parse_protected_resource(document, "https://mcp.example.com/prm", ("https://mcp.example.com/mcp",))
    except DiscoveryError:
        return
    assert prm.authorization_servers and all(isinstance(s, str) for s in prm.authorization_servers)


@settings(max_examples=400, deadline=None)
@given(as_like)
def test_any_as_document_is_accepted_or_refused_with_a_discovery_error(document):
    try:
        metadata = _parse_authorization_server(document, "https://as.example.com/x", ("https://as.example.com",))
    except DiscoveryError:
        return
    assert metadata.issuer == "https://as.example.com"
    assert metadata.token_endpoint.startswith(("https://", "http://127.0.0.1"))


def test_any_body_over_http_gives_metadata_none_or_one_of_our_errors():
    with DocServer() as server:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
        def check(body):
            server.route(PRM_MCP, 200, body)
            with contextlib.suppress(MCPAuthError):
                Discovery(timeout=5.0).protected_resource(server.url("/mcp"), None)

        check()
