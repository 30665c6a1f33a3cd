"""The two request paths that are not a login's code flow nor a refresh, the device grant's polling
and the logout's revocations, go the same way as every other request: over HTTPS verified with the
CA given once, and through the proxy. Checked from both ends, as in test_proxy.py: every tunnel is a
CONNECT to the server, and nothing reached the server but through the proxy."""

import pytest

from mcp_sync_auth import LoginOptions, MCPAuth, MemoryTokenStore, RevocationConnectionError

from .conftest import host_of
from .test_proxy import direct, proxied_connections

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def device_auth(server, clock, ca_bundle, store, **connection):
    def person(code):  # shown the code, the person approves it at once
        server.approve_device(code.user_code)

    login = LoginOptions(method="device", device_prompt=person, sleep=clock.advance)
    return MCPAuth(server.mcp_url, store=store, login=login, clock=clock, verify=ca_bundle, **connection)


def test_device_polling_and_revocation_go_through_the_proxy(serve, clock, ca_bundle, proxy):
    server = serve(host="localhost", device_authorization=True)
    store = MemoryTokenStore()
    auth = device_auth(server, clock, ca_bundle, store, proxies={"https": proxy.url})
    auth.login()
    result = auth.logout()
    assert result.revoked == ("refresh_token", "access_token")
    audit = server.audit
    assert audit.device.authorizations_issued == 1 and audit.grants_ok == {DEVICE_GRANT: 1}
    assert [revocation.kind for revocation in server.revocations()] == ["refresh_token", "access_token"]
    served = {path for _, path in server.request_log.paths}
    assert {"/device_authorization", "/token", "/revoke"} <= served
    tunnels = proxy.records()
    assert {(method, target) for method, target, _ in tunnels} == {("CONNECT", host_of(server.issuer))}
    assert len(tunnels) == len(proxied_connections(server))
    assert direct(server) == []  # no browser in a device login: every request came through the proxy


def test_a_revocation_that_meets_an_untrusted_certificate_keeps_the_tokens(serve, clock, ca_bundle, wrong_ca_bundle):
    server = serve(device_authorization=True)
    store = MemoryTokenStore()
    device_auth(server, clock, ca_bundle, store).login()
    (record,) = store.records()
    # The same chain, from a program whose CA setting does not trust the server's certificate.
    wrong = MCPAuth(server.mcp_url, store=store, clock=clock, interactive=False, verify=wrong_ca_bundle)
    with pytest.raises(RevocationConnectionError) as refused:
        wrong.logout()
    assert refused.value.kind == "certificate" and refused.value.host.startswith("127.0.0.1")
    assert "verify=" in str(refused.value) or "REQUESTS_CA_BUNDLE" in str(refused.value)
    assert "SECRETMARK" not in str(refused.value)
    assert server.revocations() == () and store.records() == [record]  # nothing revoked, nothing forgotten
