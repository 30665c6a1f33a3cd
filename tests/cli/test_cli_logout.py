"""``mcp-sync-auth logout URL [--local-only]``: revoke at the authorization server, then forget.

Exit 0 with one line per chain when it worked; exit 1 with one line on stderr, and the tokens kept,
when revocation failed; ``--local-only`` forgets them anyway; a server without a revocation endpoint
gets "only the local copy was removed". Nothing secret is printed."""

import socket
import threading

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth.cli.main import main
from mcp_sync_auth.testing import StrictAuthServer

from ..conftest import TTL
from ..helpers import wait_until
from ..machine.keys import make_key, private_pem, public_pem
from .shell import finish, run, start

MARKER = "SECRETMARK"


def cli(store_dir, *args):
    return main(["--store", str(store_dir), *args])


@pytest.fixture
def chain(make_auth, server, client_id):
    """A stored chain whose client names its issuer, and its tokens."""
    auth = make_auth(issuer=server.issuer)
    auth.save_token(server.mint_tokens(client_id))
    return auth, auth.store.load(auth.key).tokens


def assert_clean(*outputs, tokens):
    for text in outputs:
        assert MARKER not in text and tokens.refresh_token not in text and tokens.access_token not in text


def test_logout_revokes_and_says_so(chain, server, store_dir, capsys):
    _, tokens = chain
    assert cli(store_dir, "logout", server.mcp_url) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (
        f"logged out of {server.mcp_url}: the server revoked the refresh token and the access token, "
        "and the local copy was removed"
    )
    assert [r.kind for r in server.revocations()] == ["refresh_token", "access_token"]
    assert FileTokenStore(store_dir).records() == []
    assert_clean(captured.out, captured.err, tokens=tokens)


def test_a_503_keeps_the_tokens_and_exits_1_then_local_only_removes_them(chain, server, store_dir, capsys):
    auth, tokens = chain
    server.fail_revocations(5)
    assert cli(store_dir, "logout", server.mcp_url) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("mcp-sync-auth: revoking the refresh token at ") and "HTTP 503" in line
    assert "--local-only" in line and captured.out == ""
    assert FileTokenStore(store_dir).load(auth.key) is not None  # kept
    assert cli(store_dir, "logout", server.mcp_url, "--local-only") == 0
    captured_after = capsys.readouterr()
    assert "only the local copy was removed" in captured_after.out and "not told" in captured_after.out
    assert FileTokenStore(store_dir).records() == []
    assert server.revocations() == () and server.refused_revocations == 1  # --local-only asked nothing
    assert_clean(captured.out, captured.err, captured_after.out, captured_after.err, tokens=tokens)


def test_a_refused_connection_keeps_the_tokens(make_auth, server, client_id, store_dir):
    holder = socket.socket()  # bound, never listening: connections are refused
    holder.bind(("127.0.0.1", 0))
    try:
        server.as_metadata_overrides = {"revocation_endpoint": f"http://127.0.0.1:{holder.getsockname()[1]}/revoke"}
        auth = make_auth(issuer=server.issuer)
        auth.save_token(server.mint_tokens(client_id))
        code, out, err = run(store_dir, "logout", server.mcp_url)  # a real process, as a shell runs it
    finally:
        holder.close()
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert "failed: no answer (ConnectionError)" in line and "the tokens are kept" in line
    assert FileTokenStore(store_dir).load(auth.key) is not None


def test_invalid_client_keeps_the_tokens(make_auth, server, store_dir, capsys):
    # Basic: what the CLI uses for a --client-secret, the server offering it.
    client_id = server.register_client(client_secret="right-secret", token_endpoint_auth_method="client_secret_basic")
    auth = make_auth(issuer=server.issuer, client_id=client_id, client_secret="right-secret")
    auth.save_token(server.mint_tokens(client_id))
    args = ("logout", server.mcp_url, "--client-id", client_id, "--client-secret", "wrong-secret")
    assert cli(store_dir, *args) == 1
    captured = capsys.readouterr()
    assert "invalid_client" in captured.err and "wrong-secret" not in captured.err + captured.out
    assert FileTokenStore(store_dir).load(auth.key) is not None
    assert cli(store_dir, "logout", server.mcp_url, "--client-id", client_id, "--client-secret", "right-secret") == 0
    assert FileTokenStore(store_dir).records() == []


def test_a_server_without_revocation_removes_the_local_copy_and_says_so(clock, tmp_path, capsys):
    store_dir = tmp_path / "tokens"
    with StrictAuthServer(clock=clock, revocation=False) as strict:
        client_id = strict.register_client()
        auth = MCPAuth(strict.mcp_url, store=FileTokenStore(store_dir), client_id=client_id,
                       token_endpoint=strict.token_endpoint, issuer=strict.issuer, interactive=False)
        auth.save_token(strict.mint_tokens(client_id))
        assert cli(store_dir, "logout", strict.mcp_url) == 0
        out = capsys.readouterr().out
        assert "only the local copy was removed" in out and "offers no token revocation" in out
        assert FileTokenStore(store_dir).records() == []


def test_a_private_key_jwt_client_logs_out_with_its_key(server, store_dir, tmp_path, capsys):
    key = make_key("ec")
    client_id = server.register_client(token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key))
    pem = tmp_path / "client.pem"
    pem.write_text(private_pem(key))
    pem.chmod(0o600)
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), client_id=client_id, private_key=private_pem(key),
                   token_endpoint=server.token_endpoint, issuer=server.issuer, interactive=False)
    auth.save_token(server.mint_tokens(client_id))
    assert cli(store_dir, "logout", server.mcp_url, "--client-id", client_id, "--private-key", str(pem)) == 0
    assert "revoked the refresh token and the access token" in capsys.readouterr().out
    assert [r.client_id for r in server.revocations()] == [client_id, client_id]


def test_nothing_stored_is_said_and_exits_0(server, tmp_path, capsys):
    assert cli(tmp_path / "empty", "logout", server.mcp_url) == 0
    assert capsys.readouterr().out.strip() == f"no tokens were stored for {server.mcp_url}"


def test_a_logout_in_another_process_waits_for_the_refresh_in_flight(chain, server, store_dir, clock):
    """The refresh (here) holds the chain's lock while its grant is held at the server; the logout
    (a real process) must wait for it and revoke what it stored, leaving nothing behind."""
    auth, _ = chain
    clock.advance(TTL + 1)
    server.hold_token_requests()
    refresher = threading.Thread(target=auth.access_token)
    refresher.start()
    try:
        wait_until(lambda: server.held_token_requests == 1, what="the refresh at the server")
        seen = sum(server.audit.metadata_requests.values())
        logout = start(store_dir, "logout", server.mcp_url)
        # Its metadata request comes just before it asks for the chain's lock.
        wait_until(lambda: sum(server.audit.metadata_requests.values()) > seen, what="the logout's metadata request")
    finally:
        server.release_token_requests()
        refresher.join(30)
    code, out, err = finish(logout)
    assert code == 0, err
    assert "revoked the refresh token and the access token" in out
    assert FileTokenStore(store_dir).records() == []
    (summary,) = server.chains()
    assert summary.generation == 1 and not summary.alive  # the rotated chain is the one revoked
    assert server.audit.refresh_ok == 1 and server.audit.reuse_detections == 0
