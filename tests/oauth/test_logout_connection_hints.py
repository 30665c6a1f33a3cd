"""A logout that meets a refused connection says once what that means for the tokens, and its error
is the one the failing request raised, or, when the failure came in the discovery before the
revocation, a revocation error chained to it.

The proxy is a loopback port bound but not listening: every connection to it is refused, which
urllib3 reports as a proxy failure, a setting to change (a ConnectionSetupError). Without a proxy,
the same refusal is a plain RevocationFailed."""

import socket

import pytest

from mcp_sync_auth import (
    ConnectionSetupError,
    DiscoveryConnectionError,
    MCPAuthError,
    RevocationConnectionError,
    RevocationFailed,
)
from mcp_sync_auth._oauth.revocation import LOCAL_ONLY_HINT

MARKER = "SECRETMARK"  # every token the conftest server issues carries it
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def refused_port():
    """A loopback port bound but not listening; nobody else can take it while the socket lives."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def chain_of(error):
    """The error, then every error it was raised from or during, innermost last."""
    found = []
    while error is not None and error not in found:
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


def log_out_and_fail(auth, server, client_id, expected):
    auth.save_token(server.mint_tokens(client_id))
    before = auth.store.load(auth.key)
    with pytest.raises(expected) as caught:
        auth.logout()
    message = str(caught.value)
    assert message.count(LOCAL_ONLY_HINT) == 1, message
    assert message.lower().count("the tokens are kept") == 1, message
    for text in (message, repr(caught.value)):
        assert MARKER not in text
        assert before.tokens.access_token not in text and before.tokens.refresh_token not in text
    assert caught.value.transient and caught.value.revoked == ()
    assert auth.store.load(auth.key) == before and server.revocations() == ()  # nothing forgotten or revoked
    return caught.value


def test_a_revocation_refused_by_its_proxy_raises_the_requests_own_error_with_the_hint_once(
    make_auth, server, client_id, refused_port
):
    # Discovery goes straight to 127.0.0.1; the revocation endpoint, named "localhost", only through
    # the proxy (a "scheme://host" key of proxies=), so only the revocation meets the refusal.
    port = server.issuer.rsplit(":", 1)[1].split("/")[0]
    server.as_metadata_overrides = {"revocation_endpoint": f"http://localhost:{port}/revoke"}
    dead_proxy = f"http://127.0.0.1:{refused_port}"
    auth = make_auth(issuer=server.issuer, proxies={"http://localhost": dead_proxy})
    error = log_out_and_fail(auth, server, client_id, RevocationConnectionError)
    assert isinstance(error, ConnectionSetupError) and isinstance(error, RevocationFailed)
    assert error.kind == "proxy" and error.host == f"localhost:{port}" and error.proxy == f"127.0.0.1:{refused_port}"
    message = str(error)
    assert "HTTPS_PROXY" in message and "NO_PROXY" in message  # the setting to change...
    assert f"revoking the refresh token at http://localhost:{port}/revoke failed" in message.lower()  # ...the step
    # Raised once, where the request failed: no rebuilt copy with the original in its chain.
    assert [e for e in chain_of(error) if isinstance(e, MCPAuthError)] == [error]


def test_a_revocation_whose_discovery_is_refused_by_the_proxy_is_chained_to_the_discovery_error(
    make_auth, server, client_id, refused_port
):
    dead_proxy = f"http://127.0.0.1:{refused_port}"
    auth = make_auth(issuer=server.issuer, proxies={"http": dead_proxy})
    error = log_out_and_fail(auth, server, client_id, RevocationConnectionError)
    assert isinstance(error, ConnectionSetupError) and not isinstance(error, DiscoveryConnectionError)
    original = error.__cause__
    assert isinstance(original, DiscoveryConnectionError)  # the cause chain holds what discovery raised
    assert (error.kind, error.host, error.proxy) == (original.kind, original.host, original.proxy)
    assert error.kind == "proxy" and error.proxy == f"127.0.0.1:{refused_port}"
    message = str(error)
    assert message.startswith(f"cannot find out whether {server.issuer} revokes tokens: {original}")
    assert LOCAL_ONLY_HINT not in str(original)  # the hint is the revocation's, added once


def test_a_revocation_refused_without_a_proxy_is_a_plain_failure_with_the_hint_once(
    make_auth, server, client_id, refused_port
):
    server.as_metadata_overrides = {"revocation_endpoint": f"http://127.0.0.1:{refused_port}/revoke"}
    error = log_out_and_fail(
        auth=make_auth(issuer=server.issuer), server=server, client_id=client_id, expected=RevocationFailed
    )
    assert not isinstance(error, ConnectionSetupError)  # no setting to change: nothing to say about one
    assert "no answer (ConnectionError)" in str(error)
