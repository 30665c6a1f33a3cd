"""StrictAuthServer over HTTPS: its issuer and every URL are https://, from a certificate/key pair or an
ssl.SSLContext; a client that fails the handshake costs nothing to the others; the request log sees
every request and connection."""

import socket
import ssl

import pytest
import requests

from mcp_sync_auth import Discovery
from mcp_sync_auth.testing import StrictAuthServer
from mcp_sync_auth.testing.request_log import RequestLog

from .conftest import tls_files


@pytest.mark.parametrize("given", ["pair", "context"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_issuer_and_urls_are_https(ca, ca_bundle, tmp_path, given, host):
    files = tls_files(ca, tmp_path, "server")
    tls = files
    if given == "context":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*files)
    with StrictAuthServer(tls=tls, host=host) as server:
        assert server.issuer.startswith(f"https://{host}:")
        assert all(url.startswith("https://") for url in (server.mcp_url, server.token_endpoint))
        discovery = Discovery(verify=ca_bundle)
        prm = discovery.protected_resource(server.mcp_url)
        assert prm is not None and prm.authorization_servers == (server.issuer,)
        assert discovery.authorization_server(server.issuer).token_endpoint == server.token_endpoint
        discovery.close()


def test_a_failed_handshake_does_not_stop_the_server(https_server, ca_bundle, wrong_ca_bundle):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_server.authorization_server_metadata_url, verify=wrong_ca_bundle, timeout=30)
    # A client that connects and never speaks TLS holds only its own handler thread.
    stalled = socket.create_connection(("127.0.0.1", https_server.port))
    try:
        answer = requests.get(https_server.authorization_server_metadata_url, verify=ca_bundle, timeout=30)
        assert answer.status_code == 200
    finally:
        stalled.close()
    log = https_server.request_log
    assert log.paths == (("GET", "/.well-known/oauth-authorization-server"),)
    assert len(log.connections) == 1  # the refused and the stalled handshakes made no connection


def test_the_request_log_keeps_a_bounded_number_of_entries():
    log = RequestLog(limit=2)
    for index in range(5):
        log.request("GET", f"/{index}", ("127.0.0.1", 1000 + index))
    snapshot = log.snapshot()
    assert snapshot.paths == (("GET", "/0"), ("GET", "/1")) and snapshot.dropped == 3
    log.reset()
    assert log.snapshot().requests == () and log.snapshot().dropped == 0
