"""The command line against StrictAuthServer: login with an injected handler, then `token` from many shells."""

import dataclasses
import subprocess
import time

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth.testing import StrictAuthServer

from .shell import finish, run
from .shell import start as cli


def test_login_then_status_then_token(server, store_dir):
    code, out, err = run(store_dir, "login", server.mcp_url, "--authorization-handler", "tests.login_helpers:browser")
    assert code == 0, err
    assert "logged in to " + server.mcp_url in out
    code, out, _ = run(store_dir, "status", server.mcp_url)
    assert code == 0 and "live" in out and server.token_marker not in out
    code, out, err = run(store_dir, "token", server.mcp_url)
    assert code == 0, err
    assert server.token_marker in out.strip()  # the access token itself, for shell scripts
    assert server.audit.authorization_requests == 1


def test_token_without_a_login_exits_3_with_the_command_to_run(server, store_dir):
    code, out, err = run(store_dir, "token", server.mcp_url)
    assert code == 3 and out == ""
    assert "mcp-sync-auth login" in err


def test_eight_shells_after_expiry_make_one_refresh(server, store_dir):
    code, _, err = run(store_dir, "login", server.mcp_url, "--authorization-handler", "tests.login_helpers:browser")
    assert code == 0, err
    store = FileTokenStore(store_dir)
    (record,) = store.records()
    # Expire the stored access token, as time would.
    expired = dataclasses.replace(record.tokens, expires_at=time.time() - 1)
    store.save(dataclasses.replace(record, tokens=expired))
    shells = [cli(store_dir, "token", server.mcp_url) for _ in range(8)]
    outputs = [finish(shell) for shell in shells]
    assert all(code == 0 for code, _, _ in outputs), [err for _, _, err in outputs]
    tokens = {out.strip() for _, out, _ in outputs}
    assert len(tokens) == 1
    audit = server.audit
    assert audit.refresh_ok == 1 and audit.reuse_detections == 0


def test_login_headless_with_a_mistyped_url_spends_nothing(clock, store_dir):
    with StrictAuthServer(clock=clock, root_metadata=True) as server:
        process = cli(store_dir, "login", "--headless", server.base_url + "/mpc", stdin=subprocess.DEVNULL)
        code, out, err = finish(process)  # asserts no traceback
        assert code == 1 and out == ""
        assert f"did you mean {server.mcp_url}?" in err and server.base_url + "/mpc" in err
        assert "Open this URL" not in err  # no paste prompt was shown
        audit = server.audit
        assert audit.registration_requests == 0 and audit.authorization_requests == 0
        assert FileTokenStore(store_dir).records() == []
