"""MCPAuth's options: grouped value objects and the single keywords mean the same; one timeout, read once."""

import math
import traceback

import pytest
import requests

from mcp_sync_auth import ClientSettings, ConfigurationError, FileTokenStore, LoginOptions, MCPAuth, MCPClient, Timeouts
from mcp_sync_auth._util.timeouts import DEFAULT_GRANT_READ, MIN_GRANT_READ

from ..login_helpers import browser
from ..workers import echo_call


def test_groups_and_single_keywords_build_the_same_auth(server, client_id, store_dir, clock, http):
    flat = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client_id=client_id,
        token_endpoint=server.token_endpoint,
        interactive=False,
        clock=clock,
    )
    grouped = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        client=ClientSettings(client_id=client_id, token_endpoint=server.token_endpoint),
        login=LoginOptions(interactive=False),
        clock=clock,
    )
    assert flat.client == grouped.client
    assert flat.interactive is grouped.interactive is False
    assert repr(flat) == repr(grouped)
    grouped.save_token(server.mint_tokens(client_id))
    assert echo_call(http, server.mcp_url, flat, "hi") == "ok"  # one store, one chain: either auth uses it
    assert flat.key == grouped.key


def test_a_single_keyword_refines_its_group(server):
    base = ClientSettings(client_id="c", token_endpoint=server.token_endpoint)
    auth = MCPAuth(server.mcp_url, client=base, client_secret="s3cret-value", store=FileTokenStore(), login_timeout=5)
    assert auth.client.client_id == "c"
    assert auth.client.client_secret == "s3cret-value"
    assert "s3cret-value" not in repr(auth) + repr(auth.client)
    assert base.client_secret is None  # groups are frozen values: refining makes a new one


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="client_idd"):
        MCPAuth("https://mcp.example.com/mcp", client_idd="typo")


@pytest.mark.parametrize(
    "timeout", [0, -1, math.inf, math.nan, True, "5", (1,), (1, 0), (1, 2, 3), 0.001, (0.001, 5), (5, 0.05)]
)
def test_a_timeout_that_could_never_work_is_refused_up_front(timeout):
    with pytest.raises(ConfigurationError, match="timeout"):
        MCPAuth("https://mcp.example.com/mcp", timeout=timeout)


@pytest.mark.parametrize(
    ("given", "expected"), [(5, (5, 5)), (2.5, (2.5, 2.5)), ((3, 7), (3, 7)), (Timeouts(1, 2), (1, 2))]
)
def test_a_timeout_is_read_one_way(given, expected):
    assert Timeouts.of(given).for_requests == expected


@pytest.mark.parametrize("grant_read", [0, 0.001, 1, MIN_GRANT_READ - 0.1, math.inf])
def test_a_grant_read_timeout_below_the_floor_is_refused(grant_read):
    # A grant cut off before its answer arrives has spent the refresh token for nothing: the chain dies.
    with pytest.raises(ConfigurationError, match="grant read timeout"):
        MCPAuth("https://mcp.example.com/mcp", timeout=Timeouts(grant_read=grant_read))


def test_a_grant_waits_at_least_as_long_as_any_other_request():
    assert Timeouts(1, 2).for_grants == (1, DEFAULT_GRANT_READ)
    assert Timeouts(1, 300).for_grants == (1, 300)
    assert Timeouts(1, 2, grant_read=MIN_GRANT_READ).for_grants == (1, MIN_GRANT_READ)


def test_other_login_options_are_checked_too():
    with pytest.raises(ConfigurationError, match="login timeout"):
        LoginOptions(timeout=0)
    with pytest.raises(ConfigurationError, match="grant_type"):
        ClientSettings(grant_type="password")
    with pytest.raises(ConfigurationError, match="auth method"):
        ClientSettings(auth_method="client_secret_jwt_typo")
    with pytest.raises(ConfigurationError, match="client_id"):
        ClientSettings(token_endpoint="https://as.example.com/token")


class RecordingSession(requests.Session):
    """A real session that notes the timeout of every request it sends."""

    def __init__(self):
        super().__init__()
        self.timeouts = []

    def send(self, request, **kwargs):
        self.timeouts.append((request.url, kwargs.get("timeout")))
        return super().send(request, **kwargs)


def test_every_oauth_request_of_a_login_gets_the_same_timeouts_and_the_grant_its_own(server, store_dir, clock, http):
    session = RecordingSession()
    auth = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        session=session,
        timeout=(3.0, 7.0),
        authorization_handler=browser,
        clock=clock,
    )
    auth.login()  # metadata, registration, token request: all through the given session
    assert server.audit.registrations == 1
    assert len(session.timeouts) >= 4
    grants = [timeout for url, timeout in session.timeouts if url == server.token_endpoint]
    others = [timeout for url, timeout in session.timeouts if url != server.token_endpoint]
    assert grants == [(3.0, DEFAULT_GRANT_READ)]
    assert len(others) >= 3 and set(others) == {(3.0, 7.0)}
    assert echo_call(http, server.mcp_url, auth, "after login") == "ok"


BAD_URLS = [
    (None, "must be a string"),
    (123, "must be a string"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("mcp.example.com/mcp", "not an http"),
    ("ftp://mcp.example.com/mcp", "not an http"),
    ("https:///mcp", "not an http"),
    ("http://[::1/mcp", "not a valid URL"),
    ("https://mcp.example.com:99999/mcp", "not a valid URL"),
    ("https://mcp.example.com/mcp#x", "fragment"),
    ("https://mcp.example.com/mcp#", "fragment"),
    ("https://user:hunter2pw@mcp.example.com/mcp", "credentials"),
    ("https://user@mcp.example.com/mcp", "credentials"),
    ("https://user:hun/ter2pw@mcp.example.com/mcp", "not a valid URL"),  # the password holds a "/"
    ("ftp://user:hunter2pw@mcp.example.com/mcp", "not an http"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_a_server_url_that_cannot_work_is_refused_at_construction(url, why):
    with pytest.raises(ConfigurationError, match=why) as caught:
        MCPAuth(url, interactive=False)
    shown = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "hunter2pw" not in shown + repr(caught.value)  # nor "hun", from the port parser's own message
    assert "'hun'" not in shown


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_the_mcp_client_refuses_the_same_urls(url, why):
    with pytest.raises(ConfigurationError, match=why) as caught:
        MCPClient(url)
    assert "hunter2pw" not in str(caught.value)


@pytest.mark.parametrize("lock_timeout", [0, -1, math.inf, math.nan, True, "5"])
def test_a_lock_timeout_that_could_never_work_is_refused(lock_timeout):
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        MCPAuth("https://mcp.example.com/mcp", lock_timeout=lock_timeout)
