"""MCPAuth.logout() against the strict server: revoke the refresh token, then the access token
(RFC 7009, with the client's own authentication), then forget the chain, all under the chain's lock.

What a logout that only forgets would get wrong is checked each time: the server's audit must show
both revocations in order, and the chain must be refused afterwards (by a fresh auth, and to anyone
holding a copy of the old tokens). A revocation that fails keeps the tokens."""

import socket
import threading

import pytest

from mcp_sync_auth import (
    AuthorizationRequired,
    Discovery,
    FileTokenStore,
    LogoutResult,
    MCPAuth,
    RevocationFailed,
)
from mcp_sync_auth.testing import Revocation, StrictAuthServer

from ..conftest import TTL
from ..helpers import wait_until
from ..machine.keys import make_key, private_pem, public_pem
from ..workers import echo_call

MARKER = "SECRETMARK"  # every token the conftest server issues carries it


def bearer(token):
    """A requests ``auth=`` that sends ``token`` as it is, as a thief holding a copy would."""

    def attach(request):
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    return attach


def refresh_with(http, server, client_id, refresh_token):
    """A refresh grant for ``refresh_token`` sent by hand: the error code, or "ok"."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "resource": server.mcp_url,
    }
    answer = http.post(server.token_endpoint, data=form, timeout=30)
    return "ok" if answer.status_code == 200 else answer.json()["error"]


@pytest.fixture
def issuer_auth(make_auth, server, client_id):
    """A chain whose client names its issuer: logout finds the revocation endpoint in its metadata."""
    auth = make_auth(issuer=server.issuer)
    auth.save_token(server.mint_tokens(client_id))
    return auth


def assert_no_secret(text, *tokens):
    assert MARKER not in text
    for token in tokens:
        assert token not in text


def test_logout_revokes_the_refresh_token_then_the_access_token_and_the_chain_is_refused(
    issuer_auth, server, client_id, store_dir, clock, http
):
    auth = issuer_auth
    old = auth.store.load(auth.key).tokens
    assert echo_call(http, server.mcp_url, bearer(old.access_token)) == "ok"  # the copy works before
    result = auth.logout()
    assert isinstance(result, LogoutResult)
    assert result.revoked == ("refresh_token", "access_token") and not result.local_only and result.removed
    assert server.revocations() == (
        Revocation("refresh_token", client_id, "refresh_token"),
        Revocation("access_token", client_id, "access_token"),
    )
    assert "revoked the refresh token and the access token" in result.describe()
    assert_no_secret(result.describe() + repr(result), old.access_token, old.refresh_token)
    assert FileTokenStore(store_dir).records() == []
    fresh = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        clock=clock,
        interactive=False,
    )
    with pytest.raises(AuthorizationRequired, match=r"[Ll]og in"):
        fresh.access_token()
    assert refresh_with(http, server, client_id, old.refresh_token) == "invalid_grant"
    assert echo_call(http, server.mcp_url, bearer(old.access_token)) == "http 401"


def test_a_login_through_the_code_flow_is_revoked_with_its_registered_client(server, store_dir, clock, http):
    from mcp_sync_auth.testing import login  # noqa: PLC0415

    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    old = auth.store.load(auth.key).tokens
    result = auth.logout()
    assert result.revoked == ("refresh_token", "access_token")
    assert [(r.kind, r.client_id) for r in server.revocations()] == [
        ("refresh_token", auth.key.client_id),
        ("access_token", auth.key.client_id),
    ]
    assert refresh_with(http, server, auth.key.client_id, old.refresh_token) == "invalid_grant"


def _unreachable_endpoint():
    """A loopback port bound but not listening: a connection to it is refused, and nobody else
    can take the port while the socket lives."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    return holder, f"http://127.0.0.1:{holder.getsockname()[1]}/revoke"


@pytest.mark.parametrize("failure", ["503", "connection refused", "invalid_client"])
def test_a_failed_revocation_keeps_the_tokens(failure, make_auth, server, client_id, clock, http):
    holder = None
    if failure == "503":
        server.fail_revocations(1)
        auth = make_auth(issuer=server.issuer)
    elif failure == "connection refused":
        holder, endpoint = _unreachable_endpoint()
        server.as_metadata_overrides = {"revocation_endpoint": endpoint}
        auth = make_auth(issuer=server.issuer)
    else:
        client_id = server.register_client(
            client_secret="right-secret", token_endpoint_auth_method="client_secret_post"
        )
        auth = make_auth(
            issuer=server.issuer,
            client_id=client_id,
            client_secret="wrong-secret",
            token_endpoint_auth_method="client_secret_post",
        )
    auth.save_token(server.mint_tokens(client_id))
    before = auth.store.load(auth.key)
    try:
        with pytest.raises(RevocationFailed) as caught:
            auth.logout()
    finally:
        if holder is not None:
            holder.close()
    message = str(caught.value)
    assert "the tokens are kept" in message and "local_only" in message
    assert_no_secret(message, before.tokens.access_token, before.tokens.refresh_token, "wrong-secret")
    assert caught.value.revoked == ()
    assert auth.store.load(auth.key) == before  # nothing forgotten
    assert server.revocations() == ()  # and nothing revoked
    assert echo_call(http, server.mcp_url, auth) == "ok"  # the chain still works
    if failure == "503":
        assert auth.logout().revoked == ("refresh_token", "access_token")  # the next try goes through
        assert auth.store.load(auth.key) is None


def test_local_only_forgets_without_telling_the_server(issuer_auth, server, store_dir, http, client_id):
    auth = issuer_auth
    old = auth.store.load(auth.key).tokens
    server.fail_revocations(3)  # would refuse: local_only must not even ask
    result = auth.logout(local_only=True)
    assert result.local_only and result.revoked == () and result.removed
    assert "only the local copy was removed" in result.describe() and "not told" in result.describe()
    assert FileTokenStore(store_dir).records() == []
    assert server.revocations() == () and server.refused_revocations == 0
    assert server.is_chain_alive(old.refresh_token)  # the server was not told


def test_a_server_without_revocation_gets_only_the_local_copy_removed(clock, store_dir, http):
    with StrictAuthServer(clock=clock, revocation=False) as strict:
        assert "revocation_endpoint" not in strict.authorization_server_metadata()
        client_id = strict.register_client()
        auth = MCPAuth(
            strict.mcp_url,
            store=FileTokenStore(store_dir),
            client_id=client_id,
            token_endpoint=strict.token_endpoint,
            issuer=strict.issuer,
            clock=clock,
            interactive=False,
        )
        auth.save_token(strict.mint_tokens(client_id))
        result = auth.logout()
        assert result.local_only and result.revoked == ()
        assert "offers no token revocation" in result.describe()
        assert "only the local copy was removed" in result.describe()
        assert FileTokenStore(store_dir).records() == []
        assert strict.revocations() == () and strict.refused_revocations == 0


def test_a_private_key_jwt_client_revokes_with_an_assertion(server, store_dir, clock):
    key = make_key("ec")
    client_id = server.register_client(token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key))
    auth = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        private_key=private_pem(key),
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        clock=clock,
        interactive=False,
    )
    auth.save_token(server.mint_tokens(client_id))
    # The client has no secret: only a valid assertion (a fresh jti each) authenticates it.
    assert auth.logout().revoked == ("refresh_token", "access_token")
    assert [r.client_id for r in server.revocations()] == [client_id, client_id]
    assert server.refused_revocations == 0 and server.audit.assertion_replays == 0


def test_a_client_with_the_wrong_key_is_refused_and_keeps_its_tokens(server, store_dir, clock):
    client_id = server.register_client(
        token_endpoint_auth_method="private_key_jwt", public_key=public_pem(make_key("ec"))
    )
    auth = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        private_key=private_pem(make_key("ec")),
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        clock=clock,
        interactive=False,
    )
    auth.save_token(server.mint_tokens(client_id))
    with pytest.raises(RevocationFailed, match="invalid_client") as caught:
        auth.logout()
    assert "eyJ" not in str(caught.value)  # no assertion in the message
    assert auth.store.load(auth.key) is not None and server.refused_revocations == 1


def test_logout_waits_for_a_refresh_in_flight_and_revokes_its_result(issuer_auth, server, store_dir, clock, client_id):
    """The refresh holds the chain's lock while its grant is at the server; a logout that did not
    take the lock would revoke the old token and delete the record, and the refresh, refused, would
    then leave a dead record behind (or a rotated one, had it been answered first)."""
    auth = issuer_auth
    clock.advance(TTL + 1)
    server.hold_token_requests()
    refreshed = {}
    refresher = threading.Thread(target=lambda: refreshed.update(tokens=auth.access_token()))
    refresher.start()
    wait_until(lambda: server.held_token_requests == 1, what="the refresh at the server")
    metadata_before = sum(server.audit.metadata_requests.values())
    # Another MCPAuth of the chain, with its own metadata cache: its metadata request shows it started.
    other = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        token_endpoint=server.token_endpoint,
        issuer=server.issuer,
        clock=clock,
        interactive=False,
        discovery=Discovery(),
    )
    outcome = {}
    logout = threading.Thread(target=lambda: outcome.update(result=other.logout()))
    logout.start()
    wait_until(
        lambda: sum(server.audit.metadata_requests.values()) > metadata_before, what="the logout's metadata request"
    )
    server.release_token_requests()
    refresher.join(30)
    logout.join(30)
    assert "tokens" in refreshed  # the refresh went through: it was not cut off by the logout
    assert outcome["result"].revoked == ("refresh_token", "access_token")
    assert FileTokenStore(store_dir).records() == []  # nothing left behind, dead or alive
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0
    assert [r.kind for r in server.revocations()] == ["refresh_token", "access_token"]  # the rotated ones
    (chain,) = server.chains()
    assert chain.generation == 1 and not chain.alive  # revoked after its rotation
    assert chain.revoked_reason == "refresh token revoked by the client"
