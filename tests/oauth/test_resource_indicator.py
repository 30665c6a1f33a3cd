"""The RFC 8707 ``resource`` we ask for is the identifier the protected resource metadata publishes.

RFC 9728 §3.3 and §7.3: once the metadata's ``resource`` is checked to cover the MCP server URL
(the URL itself, or its origin for the root document), the client uses it exactly as published.
The conformance suite's ``auth/metadata-var2`` publishes the origin at the root well-known URL only;
StrictAuthServer does the same here with ``path_metadata=False, root_metadata=True`` and grants
tokens for exactly that identifier (``invalid_target`` for the MCP URL). The chain keeps the MCP URL
as its key and stores the resource with its record, so every refresh, in any process, sends it again.

Against StrictAuthServer over real HTTP, no mocks.
"""

import json

import pytest

from mcp_sync_auth import ChainKey, FileTokenStore, MCPAuth
from mcp_sync_auth._oauth.discovery import Discovery
from mcp_sync_auth.testing import StrictAuthServer

from ..conftest import TTL
from ..login_helpers import browser
from ..workers import echo_call

PRM = "/.well-known/oauth-protected-resource"


@pytest.fixture
def origin_server(clock):
    """An origin-wide protected resource: its metadata only at the root, naming the origin."""
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, path_metadata=False, root_metadata=True) as strict:
        strict.prm_overrides = {"resource": strict.base_url}
        yield strict


def make_login(server, store_dir, clock, **options):
    options.setdefault("store", FileTokenStore(store_dir))
    options.setdefault("authorization_handler", browser)
    # A metadata cache of its own: as in a new process, nothing is known before discovery.
    options.setdefault("discovery", Discovery(timeout=10.0, clock=clock))
    return MCPAuth(server.mcp_url, clock=clock, **options)


def stored_records(store_dir):
    return FileTokenStore(store_dir).records()


def test_a_401_login_asks_for_the_published_origin(origin_server, store_dir, clock, http):
    server = origin_server
    assert echo_call(http, server.mcp_url, make_login(server, store_dir, clock)) == "ok"
    audit = server.audit
    assert audit.authorization_requests == 1 and audit.authorization_errors == {}
    assert audit.last_authorization_params["resource"] == server.base_url  # no "/" appended, no "/mcp"
    assert audit.grants_ok == {"authorization_code": 1} and audit.grants_failed == {}
    assert [chain.resource for chain in server.chains()] == [server.base_url]
    # The 401 named the root document; the path-inserted one was never needed.
    assert audit.metadata_requests.get(PRM) == 1 and PRM + "/mcp" not in audit.metadata_requests
    # The chain is still keyed by the MCP URL; its record carries the resource it was granted for.
    [record] = stored_records(store_dir)
    assert record.key.resource == server.mcp_url
    assert record.resource_indicator == server.base_url


def test_a_login_without_a_challenge_finds_the_root_document_and_asks_for_the_origin(
    origin_server, store_dir, clock, http
):
    server = origin_server
    auth = make_login(server, store_dir, clock)
    assert auth.login().access_token
    assert server.audit.last_authorization_params["resource"] == server.base_url
    assert server.audit.metadata_requests == {
        PRM + "/mcp": 1,  # tried first: 404
        PRM: 1,
        "/.well-known/oauth-authorization-server": 1,
    }
    assert echo_call(http, server.mcp_url, auth) == "ok"


def test_every_refresh_sends_the_origin_in_this_process_and_after_a_restart(origin_server, store_dir, clock, http):
    server = origin_server
    auth = make_login(server, store_dir, clock)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    restarted = make_login(server, store_dir, clock, interactive=False)  # a new process: the URL only
    assert echo_call(http, server.mcp_url, restarted) == "ok"
    audit = server.audit
    # The strict server refuses a refresh whose resource is not the original grant's (invalid_target).
    assert audit.grants_ok == {"authorization_code": 1, "refresh_token": 2}
    assert audit.grants_failed == {}
    assert audit.authorization_requests == 1
    [chain] = server.chains()
    assert chain.resource == server.base_url and chain.generation == 2 and chain.alive
    [record] = stored_records(store_dir)
    assert record.resource_indicator == server.base_url  # carried over by every rotation


def test_a_chain_configured_by_hand_refreshes_with_the_resource_its_record_names(
    origin_server, store_dir, clock, http
):
    # A process with client_id= and token_endpoint= (no discovery) over a chain that a login stored:
    # its record knows better than the MCP URL the hand-made configuration would send.
    server = origin_server
    client_id = server.register_client(redirect_uris=["http://127.0.0.1/callback"])
    login = make_login(server, store_dir, clock, client_id=client_id)
    assert echo_call(http, server.mcp_url, login) == "ok"
    clock.advance(TTL + 1)
    by_hand = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        clock=clock,
        interactive=False,
    )
    assert echo_call(http, server.mcp_url, by_hand) == "ok"  # the same chain: same URL, issuer, client
    assert len(stored_records(store_dir)) == 1
    assert server.audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}
    assert server.audit.grants_failed == {}


def test_a_chain_stored_by_hand_keeps_sending_the_mcp_url(server, make_auth, client_id, store_dir, clock, http):
    # The default server publishes the MCP URL; tokens saved by hand name no resource in the record,
    # and the refresh sends the MCP URL as it always did (the strict server checks it).
    auth = make_auth()
    auth.save_token(server.mint_tokens(client_id))
    [record] = stored_records(store_dir)
    assert record.resource_indicator is None
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    assert server.audit.grants_ok == {"refresh_token": 1} and server.audit.grants_failed == {}
    [record] = stored_records(store_dir)
    assert record.resource_indicator is None


def test_a_record_written_before_the_resource_was_stored_still_refreshes(server, store_dir, clock, http):
    # A store written by an earlier version: no "resource_indicator" in the document. Its login sent
    # the MCP URL, so the refresh must send the MCP URL too, and does.
    login = make_login(server, store_dir, clock)
    assert echo_call(http, server.mcp_url, login) == "ok"
    [path] = [p for p in store_dir.rglob("*.json") if "registration" not in p.name and "login" not in p.name]
    document = json.loads(path.read_text())
    assert document["resource_indicator"] == server.mcp_url
    del document["resource_indicator"]
    path.write_text(json.dumps(document))
    clock.advance(TTL + 1)
    restarted = make_login(server, store_dir, clock, interactive=False)
    assert echo_call(http, server.mcp_url, restarted) == "ok"
    assert server.audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}


def test_client_credentials_ask_for_the_published_origin(origin_server, store_dir, clock, http):
    server = origin_server
    client_id = server.register_client(token_endpoint_auth_method="client_secret_basic")
    auth = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        client_secret=server.get_client(client_id).client_secret,
        grant_type="client_credentials",
        discovery=Discovery(timeout=10.0, clock=clock),
        clock=clock,
        interactive=False,
    )
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    assert server.audit.grants_ok == {"client_credentials": 2} and server.audit.grants_failed == {}


def test_the_identifier_is_sent_exactly_as_the_path_document_spells_it(server, store_dir, clock, http):
    # "<mcp>/" names the same resource (discovery accepts it); it is sent as published, not as we
    # would spell it, and the strict server grants exactly that spelling.
    published = server.mcp_url + "/"
    server.prm_overrides = {"resource": published}
    assert echo_call(http, server.mcp_url, make_login(server, store_dir, clock)) == "ok"
    assert server.audit.last_authorization_params["resource"] == published
    assert [chain.resource for chain in server.chains()] == [published]
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, make_login(server, store_dir, clock, interactive=False)) == "ok"
    assert server.audit.grants_ok == {"authorization_code": 1, "refresh_token": 1}


def test_without_metadata_the_mcp_url_is_the_resource(server, store_dir, clock, http):
    server.serve_metadata = False  # a 2025-03-26 server: no protected resource metadata at all
    assert echo_call(http, server.mcp_url, make_login(server, store_dir, clock)) == "ok"
    assert server.audit.last_authorization_params["resource"] == server.mcp_url
    [record] = stored_records(store_dir)
    assert record.resource_indicator == server.mcp_url
    assert record.key == ChainKey(server.mcp_url, server.issuer, record.key.client_id)
