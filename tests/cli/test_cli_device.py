"""`mcp-sync-auth login --device URL` in a real subprocess: the code is shown, a test approves it."""

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth.testing import StrictAuthServer

from .shell import finish, run
from .shell import start as cli


def test_login_device_shows_the_code_and_logs_in(clock, store_dir):
    with StrictAuthServer(
        clock=clock, device_authorization=True, device_interval=1, token_marker="SECRETMARK"
    ) as server:
        process = cli(store_dir, "login", "--device", server.mcp_url)
        pending = server.wait_for_device_code(timeout=60)
        server.approve_device(pending.user_code)
        code, out, err = finish(process)  # asserts no traceback
        assert code == 0, err
        assert "logged in to " + server.mcp_url in out
        assert server.verification_uri in err and pending.user_code in err
        assert "SECRETMARK" not in out + err  # neither the device code nor a token is printed
        assert server.audit.device.tokens_issued == 1 and server.audit.authorization_requests == 0
        code, out, err = run(store_dir, "token", server.mcp_url)
        assert code == 0 and "SECRETMARK" in out  # the stored chain serves `token`


def test_login_device_declined_exits_non_zero_and_stores_nothing(clock, store_dir):
    with StrictAuthServer(clock=clock, device_authorization=True, device_interval=1) as server:
        process = cli(store_dir, "login", "--device", server.mcp_url)
        server.deny_device(server.wait_for_device_code(timeout=60).user_code)
        code, out, err = finish(process)
        assert code == 1 and out == ""
        assert "declined" in err
        assert FileTokenStore(store_dir).records() == []


def test_login_device_against_a_server_without_it_says_so(server, store_dir):
    code, out, err = run(store_dir, "login", "--device", server.mcp_url)
    assert code != 0 and out == ""
    assert "device_authorization_endpoint" in err and "--headless" in err
    assert server.audit.registration_requests == 0 and server.audit.token_requests == 0


def test_device_and_headless_are_one_or_the_other(server, store_dir):
    code, _, err = run(store_dir, "login", "--device", "--headless", server.mcp_url)
    assert code == 2 and "not allowed with" in err
