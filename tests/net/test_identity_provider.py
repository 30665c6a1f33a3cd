"""The ID-JAG exchange at the identity provider takes the same path as every other request: the
verify= and proxies= given once to MCPAuth reach it, and a certificate the configured CA did not
issue fails it with our error naming the identity provider's host, before the MCP authorization
server is asked for anything."""

import pytest

from mcp_sync_auth import IdentityProviderSettings, MCPAuth, MCPClient, MemoryTokenStore, TokenEndpointConnectionError
from mcp_sync_auth.testing import JWT_BEARER_GRANT, IdentityProvider

from .conftest import PROXY_SOURCE_IP, host_of, private_ca, tls_files
from .sessions import texts

pytest.importorskip("jwt")


def enterprise_options(server, idp, tmp_path):
    server.trust_identity_provider(idp)
    client_id = server.register_client(token_endpoint_auth_method="client_secret_basic", grant_types=[JWT_BEARER_GRANT])
    idp_client = idp.register_client(as_client_ids={server.issuer: client_id})
    id_token_file = tmp_path / "id_token"
    id_token_file.write_text(idp.issue_id_token("alice@example.com", audience=idp_client, lifetime=3600))
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


def test_the_exchange_goes_through_the_proxy_with_the_private_ca(serve, ca, ca_bundle, proxy, clock, tmp_path):
    server = serve(host="localhost")
    with IdentityProvider(clock=clock, host="localhost", tls=tls_files(ca, tmp_path, "idp")) as idp:
        options = enterprise_options(server, idp, tmp_path)
        auth = MCPAuth(
            server.mcp_url,
            store=MemoryTokenStore(),
            clock=clock,
            verify=ca_bundle,
            proxies={"https": proxy.url},
            **options,
        )
        with MCPClient(server.mcp_url, auth=auth) as client:
            assert texts(client.call_tool("echo", {"text": "ok"})) == ["ok"]
        assert idp.audit.exchanges_issued == 1 and server.audit.id_jag_grants == 1
        tunnels = proxy.records()
        assert {target for _, target, _ in tunnels} == {host_of(idp.issuer), host_of(server.issuer)}
        for served in (idp, server):
            assert served.request_log.requests  # each was asked something ...
            assert all(r.peer[0] == PROXY_SOURCE_IP for r in served.request_log.requests)  # ... through the proxy
        connections = [peer for served in (idp, server) for peer in served.request_log.connections]
        assert len(tunnels) == len(connections)


def test_an_identity_provider_certificate_from_another_ca_is_named(serve, ca_bundle, clock, tmp_path):
    server = serve()
    with IdentityProvider(clock=clock, tls=tls_files(private_ca(), tmp_path, "idp")) as idp:
        options = enterprise_options(server, idp, tmp_path)
        auth = MCPAuth(server.mcp_url, store=MemoryTokenStore(), clock=clock, verify=ca_bundle, **options)
        with pytest.raises(TokenEndpointConnectionError) as caught:
            auth.access_token()
        message = str(caught.value)
        assert host_of(idp.issuer) in message and "verify=" in message and "REQUESTS_CA_BUNDLE" in message
        assert "eyJ" not in message  # the ID token is not in it
        assert idp.request_log.requests == () and idp.audit.exchanges_issued == 0
        assert server.audit.token_requests == 0
