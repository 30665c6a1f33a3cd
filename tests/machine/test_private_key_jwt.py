"""private_key_jwt against the strict server, over HTTP: the client credentials grant, and a code
flow whose every token request (the code exchange, each refresh) authenticates with a fresh
assertion. The server checks signature, claims and that no jti comes twice."""

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth, RegistrationFailed, TokenEndpointError
from mcp_sync_auth.testing import StrictAuthServer, auto_consent_handler

from ..conftest import TTL
from ..workers import echo_call
from .keys import make_key, private_pem, public_pem


def _key_client(server, kind="ec", **options):
    key = make_key(kind)
    client_id = server.register_client(
        token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key), **options
    )
    return client_id, key


@pytest.mark.parametrize(("kind", "algorithm"), [("ec", None), ("rsa", None), ("rsa", "PS256"), ("ed25519", None)])
def test_client_credentials_with_a_private_key(server, store_dir, clock, http, kind, algorithm):
    client_id, key = _key_client(server, kind)
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                   private_key=private_pem(key), signing_algorithm=algorithm,
                   grant_type="client_credentials", clock=clock)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.grants["client_credentials"] == 2 and audit.assertion_replays == 0


def test_a_code_flow_authenticates_every_token_request_with_the_key(server, store_dir, clock, http):
    client_id, key = _key_client(server, redirect_uris=["http://127.0.0.1/callback"])
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                   private_key=private_pem(key), clock=clock, authorization_handler=auto_consent_handler)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    for _ in range(3):
        clock.advance(TTL + 1)
        assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.grants["authorization_code"] == 1 and audit.refresh_ok == 3
    assert audit.assertion_replays == 0 and audit.reuse_detections == 0


def test_a_key_the_server_does_not_know_is_refused_and_never_shown(server, store_dir, clock):
    client_id, _ = _key_client(server)
    other = private_pem(make_key("ec"))
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id, private_key=other,
                   grant_type="client_credentials", clock=clock)
    with pytest.raises(TokenEndpointError, match="invalid_client") as caught:
        auth.access_token()
    assert "eyJ" not in str(caught.value)  # no assertion (a JWT) in the message
    audit = server.audit
    assert audit.token_requests == 1 and audit.grants_ok == {}  # refused once, never tried again


def test_a_server_that_takes_no_private_key_jwt_is_told_apart(clock, store_dir):
    methods = {"token_endpoint_auth_methods_supported": ["client_secret_basic"]}
    with StrictAuthServer(clock=clock, as_metadata_overrides=methods) as strict:
        client_id, key = _key_client(strict)
        auth = MCPAuth(strict.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                       private_key=private_pem(key), grant_type="client_credentials", clock=clock)
        with pytest.raises(RegistrationFailed, match="does not accept private_key_jwt"):
            auth.access_token()
        assert strict.audit.token_requests == 0
