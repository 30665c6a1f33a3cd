"""ConnectionOptions: verify= and proxies= are checked when the auth is made, and a proxy's password
never shows in a repr or a message."""

import pytest

from mcp_sync_auth import ConfigurationError, MCPAuth, MemoryTokenStore
from mcp_sync_auth._util.sessions import ConnectionOptions, proxy_host

URL = "https://mcp.example.com/mcp"


@pytest.mark.parametrize("verify", [0, 1.5, b"/etc/ssl/ca.pem", ["ca.pem"]])
def test_verify_must_be_a_bool_or_a_path(verify):
    with pytest.raises(ConfigurationError, match="verify"):
        MCPAuth(URL, store=MemoryTokenStore(), verify=verify)


@pytest.mark.parametrize("proxies", ["http://proxy:3128", {"https": 3128}, [("https", "http://proxy:3128")]])
def test_proxies_must_map_schemes_to_urls(proxies):
    with pytest.raises(ConfigurationError, match="proxies"):
        MCPAuth(URL, store=MemoryTokenStore(), proxies=proxies)


def test_a_proxy_password_is_never_shown():
    options = ConnectionOptions.of(False, {"https": "http://alice:hunter2@proxy.corp:3128"})
    assert "hunter2" not in repr(options) and "alice" not in repr(options)
    assert "proxy.corp:3128" in repr(options)
    assert options.request_arguments() == {
        "verify": False,
        "proxies": {"https": "http://alice:hunter2@proxy.corp:3128"},
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [("http://u:p@10.0.0.1:3128", "10.0.0.1:3128"), ("proxy.corp:8080", "proxy.corp:8080"), ("http://proxy", "proxy")],
)
def test_proxy_host(url, shown):
    assert proxy_host(url) == shown


def test_equal_options_are_one_cache_key():
    # The shared discovery cache is keyed by them: equal settings must hash alike.
    first = ConnectionOptions.of("/", {"https": "http://p:1", "http": "http://p:1"})
    second = ConnectionOptions.of("/", {"http": "http://p:1", "https": "http://p:1"})
    assert first == second and hash(first) == hash(second)


def test_options_given_over_others_win_field_by_field():
    auths = ConnectionOptions.of("/", {"https": "http://p:1"})
    assert ConnectionOptions.of(False).over(auths) == ConnectionOptions.of(False, {"https": "http://p:1"})
    assert ConnectionOptions.of().over(auths) == auths
