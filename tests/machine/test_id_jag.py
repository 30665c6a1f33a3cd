"""Enterprise-managed authorization (ID-JAG) against a test identity provider and the strict server,
over HTTP: leg 1 exchanges the person's ID token at the identity provider (RFC 8693), leg 2 presents
the ID-JAG with the client's own secret (the JWT bearer grant). Every new chain (the first use, each
expiry, a 401) makes one exchange, coalesced across threads and processes; refusals on either leg are
our errors, never retried."""

from collections import Counter

import pytest

from mcp_sync_auth import FileTokenStore, IdentityProviderSettings, MCPAuth, TokenEndpointError
from mcp_sync_auth.testing import JWT_BEARER_GRANT, IdentityProvider

from ..conftest import TTL
from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import echo_call, expire_or_revoke


@pytest.fixture
def idp(clock):
    with IdentityProvider(clock=clock) as provider:
        yield provider


@pytest.fixture
def id_token_file(tmp_path):
    return tmp_path / "id_token"


def _enterprise(server, idp, id_token_file, **id_token):
    """The client at the MCP authorization server, its counterpart at the identity provider, and
    the MCPAuth keywords that use them."""
    server.trust_identity_provider(idp)
    client_id = server.register_client(
        token_endpoint_auth_method="client_secret_basic", grant_types=[JWT_BEARER_GRANT]
    )
    idp_client = idp.register_client(as_client_ids={server.issuer: client_id})
    id_token_file.write_text(idp.issue_id_token("alice@example.com", audience=idp_client, **id_token))
    return dict(
        client_id=client_id,
        client_secret=server.get_client(client_id).client_secret,
        grant_type="id_jag",
        identity_provider=IdentityProviderSettings(
            token_endpoint=idp.token_endpoint,
            client_id=idp_client,
            client_secret=idp.get_client(idp_client).client_secret,
            id_token_file=str(id_token_file),
        ),
    )


def test_each_new_chain_is_one_exchange_and_one_grant(server, idp, id_token_file, store_dir, clock, http):
    options = _enterprise(server, idp, id_token_file, lifetime=3600)
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), clock=clock, **options)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)  # expired: no refresh token, so a new exchange
    assert echo_call(http, server.mcp_url, auth) == "ok"
    server.revoke_access_tokens()  # a 401: one new exchange, then the request once more
    assert echo_call(http, server.mcp_url, auth) == "ok"
    assert idp.audit.exchanges_issued == 3 and idp.audit.exchanges_refused == 0
    audit = server.audit
    assert audit.grants == {JWT_BEARER_GRANT: 3} and audit.id_jag_grants == 3 and audit.assertion_replays == 0


def test_4_processes_16_threads_make_one_exchange_per_need(spawn, server, idp, id_token_file, store_dir, clock):
    options = _enterprise(server, idp, id_token_file, lifetime=3600)
    config = dict(mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=options.pop("client_id"),
                  client_auth=options, store_dir=str(store_dir), threads=16, cycles=4)
    steps = iter([lambda: None] + [expire_or_revoke("expiry", server, clock)] * 3)

    def between_cycles():
        next(steps)()

    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=between_cycles)
    assert totals == Counter(ok=4 * 16 * 4)
    assert idp.audit.exchanges_issued == 4  # the cold start, then one per expiry
    assert server.audit.id_jag_grants == 4


def test_an_id_token_the_identity_provider_refuses_is_our_error(server, idp, id_token_file, store_dir, clock):
    options = _enterprise(server, idp, id_token_file, lifetime=60, now=clock() - 120)  # expired
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), clock=clock, **options)
    with pytest.raises(TokenEndpointError, match="identity provider refused to exchange the ID token") as caught:
        auth.access_token()
    assert "eyJ" not in str(caught.value)
    assert idp.audit.exchanges_refused == 1 and server.audit.token_requests == 0


def test_an_id_jag_the_authorization_server_refuses_is_not_tried_again(server, idp, id_token_file, store_dir, clock):
    options = _enterprise(server, idp, id_token_file, lifetime=3600)
    other = server.register_client(token_endpoint_auth_method="client_secret_basic", grant_types=[JWT_BEARER_GRANT])
    options.update(client_id=other, client_secret=server.get_client(other).client_secret)  # not the ID-JAG's client
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), clock=clock, **options)
    with pytest.raises(TokenEndpointError, match="invalid_grant") as caught:
        auth.access_token()
    assert "eyJ" not in str(caught.value)
    assert idp.audit.exchanges_issued == 1 and server.audit.token_requests == 1
