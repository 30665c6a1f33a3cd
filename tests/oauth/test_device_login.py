"""The device login (RFC 8628) against StrictAuthServer: shown code, polls at the server's pace, one chain.

The waits between polls go through an injected sleeper that moves the shared clock (the server reads
it too), so no test spends the real seconds, and each asserts the exact intervals it was asked for.
"""

import io
import sys
import threading

import pytest

from mcp_sync_auth import (
    AuthorizationFailed,
    AuthorizationRequired,
    ConfigurationError,
    DeviceCode,
    DeviceCodeExpired,
    DeviceLoginDenied,
    Discovery,
    FileTokenStore,
    LoginOptions,
    MCPAuth,
)
from mcp_sync_auth.testing import Fault, StrictAuthServer

from ..conftest import TTL
from ..login_helpers import browser
from ..workers import echo_call

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class Sleeper:
    """Stands in for time.sleep: records each interval asked for, runs the test's step for that wait
    (approve, deny...), then moves the clock by the interval (or by ``moves[i]`` when given)."""

    def __init__(self, clock, steps=None, moves=None):
        self.clock = clock
        self.asked = []
        self.steps = steps or {}
        self.moves = moves or {}

    def __call__(self, seconds):
        index = len(self.asked)
        self.asked.append(seconds)
        step = self.steps.get(index)
        if step is not None:
            step()
        self.clock.advance(self.moves.get(index, seconds))


@pytest.fixture
def device_server(clock):
    with StrictAuthServer(
        access_token_ttl=TTL, clock=clock, token_marker="SECRETMARK", device_authorization=True
    ) as strict:
        yield strict


def device_auth(server, store_dir, clock, sleeper, **options):
    login = LoginOptions(method="device", sleep=sleeper, **options)
    return MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login=login, clock=clock)


def approve_pending(server):
    server.approve_device(server.pending_device_codes()[0].user_code)


def test_device_login_end_to_end_then_the_chain_refreshes(device_server, store_dir, clock, http, capsys):
    server = device_server
    approved = threading.Event()

    def person():
        # A real condition: the first poll was answered authorization_pending, then the person approves.
        server.wait_for_audit(lambda audit: audit.device.pending == 1, timeout=30)
        code = server.pending_device_codes()[0]
        server.approve_device(code.user_code.lower().replace("-", ""))  # typed loosely, as people do
        approved.set()

    sleeper = Sleeper(clock, steps={1: lambda: approved.wait(30)})
    approver = threading.Thread(target=person)
    approver.start()
    auth = device_auth(server, store_dir, clock, sleeper)
    tokens = auth.login()
    approver.join(30)
    assert approved.is_set()
    assert sleeper.asked == [5.0, 5.0]
    device = server.audit.device
    assert (device.authorizations_issued, device.polls, device.pending, device.tokens_issued) == (1, 2, 1, 1)
    assert server.audit.grants_ok == {DEVICE_GRANT: 1}
    shown = capsys.readouterr().err
    assert server.verification_uri in shown and "user_code=" in shown
    assert "SECRETMARK" not in shown  # the device code (and every token) carries the marker: never shown
    assert "SECRETMARK" not in repr(tokens)
    # A normal chain: the MCP call works, and after an expiry it refreshes as any chain does.
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0
    assert audit.authorization_requests == 0  # no browser flow ran
    (chain,) = server.chains()
    assert chain.alive and chain.generation == 1


def test_slow_down_adds_five_seconds_to_every_later_poll(device_server, store_dir, clock):
    server = device_server
    # The first wait ends after only 1 s by the server's clock (a laptop lid, a skewed VM...): the
    # poll is early, the server answers slow_down, and the client must wait 10 s from then on.
    sleeper = Sleeper(clock, steps={2: lambda: approve_pending(server)}, moves={0: 1.0})
    device_auth(server, store_dir, clock, sleeper).login()
    assert sleeper.asked == [5.0, 10.0, 10.0]
    device = server.audit.device
    assert (device.slow_downs, device.pending, device.tokens_issued, device.polls) == (1, 1, 1, 3)


def test_a_client_that_ignores_slow_down_is_told_again(device_server, clock, http):
    """The naive loop (same interval after slow_down) only earns more slow_downs: the rule matters."""
    server = device_server
    client_id = server.register_client(grant_types=["authorization_code", "refresh_token", DEVICE_GRANT])
    form = {"client_id": client_id, "resource": server.resource_identifier}
    code = http.post(server.device_authorization_endpoint, data=form, timeout=10).json()
    poll = {**form, "grant_type": DEVICE_GRANT, "device_code": code["device_code"]}
    clock.advance(1.0)
    answers = []
    for _ in range(3):
        answers.append(http.post(server.token_endpoint, data=poll, timeout=10).json()["error"])
        clock.advance(5.0)  # never slower
    assert answers == ["slow_down", "slow_down", "slow_down"]


def test_access_denied_raises_and_stores_nothing(device_server, store_dir, clock):
    server = device_server
    sleeper = Sleeper(clock, steps={0: lambda: server.deny_device(server.pending_device_codes()[0].user_code)})
    with pytest.raises(DeviceLoginDenied, match="declined") as caught:
        device_auth(server, store_dir, clock, sleeper).login()
    assert "SECRETMARK" not in str(caught.value)
    assert sleeper.asked == [5.0]
    assert server.audit.device.denied == 1
    assert FileTokenStore(store_dir).records() == [] and server.chains() == []


def test_expired_token_says_to_start_again(device_server, store_dir, clock):
    server = device_server
    sleeper = Sleeper(clock, moves={0: 601.0})  # the machine slept through the code's ten minutes
    with pytest.raises(DeviceCodeExpired, match="expired") as caught:
        device_auth(server, store_dir, clock, sleeper).login()
    assert f"mcp-sync-auth login --device {server.mcp_url}" in str(caught.value)
    assert server.audit.device.expired == 1
    assert FileTokenStore(store_dir).records() == [] and server.chains() == []


def test_the_whole_wait_ends_at_expires_in_without_a_poll_past_it(clock, store_dir):
    with StrictAuthServer(clock=clock, device_authorization=True, device_code_ttl=12) as server:
        sleeper = Sleeper(clock)
        with pytest.raises(DeviceCodeExpired):
            device_auth(server, store_dir, clock, sleeper).login()
        # Polls at 5 and 10 s; a third at 15 s would be past the 12 s the code lives: not sent.
        assert sleeper.asked == [5.0, 5.0]
        assert server.audit.device.polls == 2 and server.audit.device.pending == 2
        assert FileTokenStore(store_dir).records() == []


def test_the_login_timeout_bounds_the_wait_too(device_server, store_dir, clock):
    sleeper = Sleeper(clock)
    with pytest.raises(DeviceCodeExpired, match="login timeout"):
        device_auth(device_server, store_dir, clock, sleeper, timeout=7).login()
    assert sleeper.asked == [5.0]


@pytest.mark.parametrize("resource", ["mcp url", "origin"])
def test_the_device_request_carries_the_code_flows_resource_and_scope(clock, store_dir, http, resource):
    options = dict(clock=clock, device_authorization=True, scopes_supported=("mcp", "offline_access"))
    if resource == "origin":
        options.update(path_metadata=False, root_metadata=True)
    with StrictAuthServer(**options) as server:
        if resource == "origin":
            server.prm_overrides = {"resource": server.base_url, "scopes_supported": ["mcp"]}
        sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
        auth = device_auth(server, store_dir, clock, sleeper)
        auth.login()
        asked = server.audit.device.last_request_params
        # The RFC 8707 resource as the protected resource metadata publishes it, and the scopes the
        # code flow picks (the resource's, plus offline_access which the server offers).
        assert asked["resource"] == server.resource_identifier
        assert asked["resource"] == (server.base_url if resource == "origin" else server.mcp_url)
        assert asked["scope"] == "mcp offline_access"
        (chain,) = server.chains()
        assert chain.resource == server.resource_identifier and chain.scope == "mcp offline_access"
        assert echo_call(http, server.mcp_url, auth) == "ok"  # the audience check at /mcp passes


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_authenticates_at_both_endpoints(device_server, store_dir, clock, http, method):
    server = device_server
    client_id = server.register_client(
        token_endpoint_auth_method=method, grant_types=["authorization_code", "refresh_token", DEVICE_GRANT]
    )
    secret = server.get_client(client_id).client_secret
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    login = LoginOptions(method="device", sleep=sleeper)
    auth = MCPAuth(
        server.mcp_url,
        store=FileTokenStore(store_dir),
        login=login,
        clock=clock,
        client_id=client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
    )
    auth.login()
    assert "client_secret" not in server.audit.device.last_request_params  # never recorded, but was checked
    assert server.audit.device.authorization_errors == {}
    assert echo_call(http, server.mcp_url, auth) == "ok"


def test_a_client_not_registered_for_the_device_grant_is_told(device_server, store_dir, clock):
    server = device_server
    client_id = server.register_client()  # code flow only
    login = LoginOptions(method="device", sleep=Sleeper(clock))
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login=login, clock=clock, client_id=client_id)
    with pytest.raises(AuthorizationFailed, match=r"could not start.*unauthorized_client"):
        auth.login()
    assert server.audit.token_requests == 0


def test_a_server_without_a_device_endpoint_is_refused_before_anything_is_sent(server, store_dir, clock):
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login="device", clock=clock)
    with pytest.raises(ConfigurationError, match="device_authorization_endpoint") as caught:
        auth.login()
    assert "login='device'" in str(caught.value) and "--device" in str(caught.value)
    audit = server.audit
    assert audit.registration_requests == 0 and audit.token_requests == 0 and audit.device.requests == 0
    assert FileTokenStore(store_dir).records() == []


def test_a_custom_prompt_gets_the_code_and_nothing_secret(device_server, store_dir, clock, capsys):
    server = device_server
    shown = []
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    device_auth(server, store_dir, clock, sleeper, device_prompt=shown.append).login()
    (code,) = shown
    assert isinstance(code, DeviceCode)
    assert code.verification_uri == server.verification_uri and code.interval == 5 and code.expires_in == 600
    assert code.verification_uri_complete == f"{server.verification_uri}?user_code={code.user_code}"
    assert "SECRETMARK" not in repr(code)
    assert capsys.readouterr().err == ""  # the custom UI replaced the stderr prompt


def test_login_method_names_are_checked():
    assert LoginOptions(headless=True).login_method == "headless"
    assert LoginOptions().login_method == "browser"
    assert LoginOptions(method="device").login_method == "device"
    with pytest.raises(ConfigurationError, match="login method"):
        LoginOptions(method="qr")
    with pytest.raises(ConfigurationError, match="contradict"):
        LoginOptions(method="device", headless=True)


def test_a_dpop_client_gets_a_bound_chain_from_the_device_grant(clock, store_dir, http):
    with StrictAuthServer(clock=clock, device_authorization=True, dpop="required") as server:
        sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
        login = LoginOptions(method="device", sleep=sleeper)
        auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login=login, clock=clock, dpop=True)
        tokens = auth.login()
        assert tokens.is_dpop
        (chain,) = server.chains()
        assert chain.dpop_jkt is not None and server.audit.dpop.keys == (chain.dpop_jkt,)
        assert echo_call(http, server.mcp_url, auth) == "ok"
        clock.advance(server.access_token_ttl + 1)
        assert echo_call(http, server.mcp_url, auth) == "ok"  # the refresh proves the same key
        assert server.audit.refresh_ok == 1 and server.audit.dpop.key_mismatches == 0


def test_the_first_call_logs_in_with_the_device_grant_by_itself(device_server, store_dir, clock, http):
    server = device_server
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    auth = device_auth(server, store_dir, clock, sleeper)
    assert echo_call(http, server.mcp_url, auth) == "ok"  # 401, device login, resent once
    audit = server.audit
    assert audit.device.tokens_issued == 1 and audit.mcp_unauthorized == 1 and audit.mcp_ok == 1


def test_a_registration_for_the_code_flow_is_renewed_once_for_the_device_grant(device_server, store_dir, clock):
    server = device_server
    store = FileTokenStore(store_dir)
    first = MCPAuth(server.mcp_url, store=store, clock=clock, authorization_handler=browser)
    first.login()
    first.logout()  # the chain goes; the dynamic registration stays in the store
    assert server.audit.registrations == 1
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    device_auth(server, store_dir, clock, sleeper).login()
    # The stored registration lacked the device grant (the server would answer unauthorized_client).
    assert server.audit.registrations == 2 and server.audit.device.authorization_errors == {}
    device_client = server.get_client(server.chains()[-1].client_id)
    assert DEVICE_GRANT in device_client.grant_types and device_client.redirect_uris
    # That registration serves both logins: the browser login uses it as it is.
    device_auth(server, store_dir, clock, sleeper).logout()
    MCPAuth(server.mcp_url, store=store, clock=clock, authorization_handler=browser).login()
    assert server.audit.registrations == 2
    assert server.chains()[-1].client_id == device_client.client_id


def test_discovery_reads_the_device_endpoint_and_drops_an_insecure_one(clock, store_dir):
    with StrictAuthServer(clock=clock, device_authorization=True) as server:
        metadata = Discovery().authorization_server(server.issuer)
        assert metadata.device_authorization_endpoint == server.device_authorization_endpoint
        server.as_metadata_overrides = {"device_authorization_endpoint": "http://device.example/code"}
        auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login="device", clock=clock)
        with pytest.raises(ConfigurationError, match="advertises no usable device_authorization_endpoint"):
            auth.login()  # never sent a user to a plain-http page on another host
        assert server.audit.device.requests == 0 and server.audit.registration_requests == 0


def test_a_server_error_while_polling_doubles_the_interval_and_the_login_goes_on(device_server, store_dir, clock):
    server = device_server
    server.inject_fault(Fault.HTTP_500_BEFORE)  # the first poll
    sleeper = Sleeper(clock, steps={1: lambda: approve_pending(server)})
    device_auth(server, store_dir, clock, sleeper).login()
    assert sleeper.asked == [5.0, 10.0]
    assert server.audit.faults_injected == 1 and server.audit.device.tokens_issued == 1


def test_a_lost_answer_to_the_approved_poll_ends_the_login_without_a_loop(device_server, store_dir, clock):
    server = device_server
    server.inject_fault(Fault.RESET_AFTER)  # the server issues the chain; the answer never arrives
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    with pytest.raises(AuthorizationFailed, match="already used") as caught:
        device_auth(server, store_dir, clock, sleeper).login()
    assert "login --device" in str(caught.value)
    # One more poll after the reset (it may have been anything), refused as spent: then we stop.
    assert sleeper.asked == [5.0, 10.0]
    assert server.audit.device.polls == 2 and FileTokenStore(store_dir).records() == []


def test_every_device_request_goes_through_the_given_session(device_server, store_dir, clock, http):
    """A session= (its proxies, CA bundle, adapters) reaches the device endpoint and every poll."""
    server = device_server
    seen = []
    http.hooks["response"].append(lambda response, **_: seen.append((response.request.method, response.url)))
    sleeper = Sleeper(clock, steps={1: lambda: approve_pending(server)})
    login = LoginOptions(method="device", sleep=sleeper)
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), login=login, clock=clock, session=http)
    auth.login()
    assert seen.count(("POST", server.device_authorization_endpoint)) == 1
    assert seen.count(("POST", server.token_endpoint)) == server.audit.device.polls == 2
    assert server.audit.token_requests == 2 and server.audit.device.requests == 1


@pytest.mark.skipif(sys.platform == "darwin" or sys.platform == "win32", reason="the DISPLAY rules apply to Linux")
def test_without_a_browser_or_terminal_the_hint_names_the_device_login_the_server_offers(
    device_server, store_dir, clock, monkeypatch
):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a pipe, not a terminal
    auth = MCPAuth(device_server.mcp_url, store=FileTokenStore(store_dir), clock=clock)
    with pytest.raises(AuthorizationRequired) as caught:
        auth.login()
    assert f"mcp-sync-auth login --device {device_server.mcp_url}" in caught.value.login_hint
    assert device_server.audit.device.requests == 0 and device_server.audit.token_requests == 0


def test_eight_threads_needing_a_token_at_once_share_one_device_login(device_server, store_dir, clock):
    server = device_server
    sleeper = Sleeper(clock, steps={0: lambda: approve_pending(server)})
    auth = device_auth(server, store_dir, clock, sleeper)
    start = threading.Barrier(8)
    tokens = []

    def need_a_token():
        start.wait(30)
        tokens.append(auth.access_token())

    threads = [threading.Thread(target=need_a_token) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert server.audit.device.authorizations_issued == 1 and sleeper.asked == [5.0]
