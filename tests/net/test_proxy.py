"""Every request the library makes goes through the proxy that HTTPS_PROXY / HTTP_PROXY (or
proxies=, or the session's proxies) names, and none does when NO_PROXY lists the host.

The proxy is a real forwarding proxy (proxy.py, a subprocess) whose plugin records each request it
handles and opens its upstream connections from 127.0.0.2; the strict server logs the peer of every
connection and request. So "through the proxy" is checked from both ends: the proxy's record against
what the server saw, and no connection reaching the server from anywhere but the proxy except the
browser's consent page (the person's browser, not the library).

requests bypasses a proxy for localhost and 127.0.0.1 only when NO_PROXY says so: with NO_PROXY
unset, as here, loopback requests go through the proxy like any other.
"""

import socket
from collections import Counter

import pytest
import requests

from mcp_sync_auth import DiscoveryConnectionError, MCPClient, MCPConnectionError

from .conftest import PROXY_SOURCE_IP, host_of
from .sessions import log_in_call_refresh_call, make_auth

BROWSER = [("GET", "/authorize")]


def direct(server):
    """What reached the server without the proxy (the browser's consent page only, if all is well)."""
    return [(r.method, r.path) for r in server.request_log.requests if r.peer[0] != PROXY_SOURCE_IP]


def proxied_connections(server):
    return [peer for peer in server.request_log.connections if peer[0] == PROXY_SOURCE_IP]


def assert_every_https_request_tunnelled(server, proxy):
    tunnels = proxy.records()
    assert tunnels, "the proxy saw nothing"
    assert {(method, target) for method, target, _ in tunnels} == {("CONNECT", host_of(server.issuer))}
    # One tunnel per connection the server accepted from the proxy, and nothing else but the browser.
    assert len(tunnels) == len(proxied_connections(server))
    assert direct(server) == BROWSER
    served = Counter(path for _, path in server.request_log.paths)
    assert served["/token"] == 2 and served["/register"] == 1 and served["/mcp"] >= 4


def test_https_proxy_from_the_environment_carries_every_request(serve, clock, ca_bundle, proxy, monkeypatch):
    server = serve(host="localhost")  # a name: the proxy then honours its source address (127.0.0.2)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle)
    auth = make_auth(server, clock, ca_bundle)
    assert log_in_call_refresh_call(server, clock, auth) == ["after"]
    assert_every_https_request_tunnelled(server, proxy)


def test_proxies_given_once_carry_every_request(serve, clock, ca_bundle, proxy):
    server = serve(host="localhost")
    auth = make_auth(server, clock, ca_bundle, proxies={"https": proxy.url}, verify=ca_bundle)
    assert log_in_call_refresh_call(server, clock, auth) == ["after"]
    assert_every_https_request_tunnelled(server, proxy)


def test_a_sessions_proxies_carry_every_request(serve, clock, ca_bundle, proxy):
    server = serve(host="localhost")
    session = requests.Session()
    session.proxies = {"https": proxy.url}
    session.verify = ca_bundle
    auth = make_auth(server, clock, ca_bundle, session=session)
    assert log_in_call_refresh_call(server, clock, auth) == ["after"]
    assert_every_https_request_tunnelled(server, proxy)


def test_http_proxy_sees_each_request_the_server_served(serve, clock, ca_bundle, proxy, monkeypatch):
    # Plain http (allowed for loopback): the proxy sees every request line, not only tunnels, so
    # its record must be exactly what the server served from the proxy.
    server = serve(host="localhost", tls=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    auth = make_auth(server, clock, ca_bundle)
    assert log_in_call_refresh_call(server, clock, auth) == ["after"]
    recorded = Counter((method, path) for method, target, path in proxy.records())
    assert {target for _, target, _ in proxy.records()} == {host_of(server.issuer)}
    from_proxy = Counter((r.method, r.path) for r in server.request_log.requests if r.peer[0] == PROXY_SOURCE_IP)
    assert recorded == from_proxy
    assert direct(server) == BROWSER
    assert recorded[("POST", "/token")] == 2 and recorded[("POST", "/register")] == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_no_proxy_makes_every_request_bypass_it(serve, clock, ca_bundle, proxy, monkeypatch, host):
    server = serve(host=host)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle)
    # The control: without NO_PROXY the first request is tunnelled through the proxy...
    with requests.get(server.authorization_server_metadata_url, timeout=30) as answer:
        assert answer.status_code == 200
    assert [method for method, _, _ in proxy.records()] == ["CONNECT"]
    proxy.clear()
    server.reset_request_log()
    # ... and with it, not one request of the whole session is.
    monkeypatch.setenv("NO_PROXY", host)
    auth = make_auth(server, clock, ca_bundle)
    assert log_in_call_refresh_call(server, clock, auth) == ["after"]
    assert proxy.records() == []
    assert all(peer[0] != PROXY_SOURCE_IP for peer in server.request_log.connections)


def test_a_proxy_that_cannot_be_reached_is_named_without_its_password(https_server, clock, ca_bundle, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        port = closed.getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://alice:hunter2@127.0.0.1:{port}")
        auth = make_auth(https_server, clock, ca_bundle, verify=ca_bundle)
        with MCPClient(https_server.mcp_url, auth=auth) as client, pytest.raises(MCPConnectionError) as first:
            client.list_tools()
        with pytest.raises(DiscoveryConnectionError) as login:
            auth.login()
    for error in (first.value, login.value):
        message = str(error)
        assert error.kind == "proxy" and error.proxy == f"127.0.0.1:{port}"
        assert f"127.0.0.1:{port}" in message and host_of(https_server.issuer) in message
        assert "HTTPS_PROXY" in message and "NO_PROXY" in message
        assert "hunter2" not in message and "hunter2" not in repr(error) and "alice" not in message
    assert https_server.request_log.requests == ()
