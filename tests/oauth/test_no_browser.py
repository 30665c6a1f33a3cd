"""No waiting for a login that cannot happen: without a browser, the paste at a terminal, else an error at once.

The detection runs for real: the tests set DISPLAY, WAYLAND_DISPLAY, BROWSER and PATH, and hand the
login a real terminal (a pty) or none. Logins go to StrictAuthServer over real HTTP.
"""

import io
import os
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mcp_sync_auth import AuthorizationRequired, FileTokenStore, MCPAuth
from mcp_sync_auth._oauth import login as login_module
from mcp_sync_auth._oauth.browser import usable_browser

from ..login_helpers import browser

try:
    import pty
except ImportError:  # not POSIX: the tests that need it are skipped
    pty = None

ROOT = Path(__file__).resolve().parent.parent.parent
NO_DISPLAY = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
HANG_GUARD = 60.0  # seconds; only ever reached when the code under test hangs
# macOS and Windows always count as having a browser: a login there would open a real one.
display_rules = pytest.mark.skipif(
    os.name != "posix" or sys.platform == "darwin", reason="the DISPLAY rules apply to Linux and other POSIX desktops"
)

# A child process that logs in with nothing but the URL: MCPAuth decides how to reach the person.
CHILD = textwrap.dedent(
    """
    import sys
    from mcp_sync_auth import FileTokenStore, MCPAuth
    from mcp_sync_auth.errors import MCPAuthError
    try:
        MCPAuth(sys.argv[1], store=FileTokenStore(sys.argv[2])).login()
    except MCPAuthError as exc:
        print(type(exc).__name__, exc, flush=True)
        sys.exit(3)
    print("LOGGED-IN", flush=True)
    """
)

# A stand-in for a browser named by $BROWSER: it follows the consent redirect to the loopback receiver.
FAKE_BROWSER = textwrap.dedent(
    """\
    #!{python}
    import sys
    import requests
    from tests.login_helpers import browser
    session = requests.Session()
    session.trust_env = False
    session.get(browser(sys.argv[1]), timeout=30)
    """
)


def child_env(tmp_path, **extra):
    env = {name: value for name, value in os.environ.items() if name not in NO_DISPLAY}
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    # An empty PATH: webbrowser finds no text browser (lynx, w3m) on this host or any other.
    env.update(PYTHONPATH=str(ROOT), PATH=str(empty), **extra)
    return env


def executable(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("environ", "platform", "usable"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"BROWSER": "w3m"}, "linux", True),  # named by the user: used, text browser or not
        ({"DISPLAY": "", "BROWSER": " "}, "linux", False),
        ({}, "freebsd13", False),
        ({}, "darwin", True),
        ({}, "win32", True),
    ],
)
def test_which_hosts_have_a_usable_browser(environ, platform, usable):
    assert usable_browser(environ, platform) is usable


@display_rules
def test_no_display_and_no_terminal_fails_at_once_naming_the_headless_login(
    server, store_dir, clock, monkeypatch
):
    for name in NO_DISPLAY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a pipe, not a terminal
    started = []

    class CountedReceiver(login_module.LoopbackReceiver):
        def __enter__(self):
            started.append(self)
            return super().__enter__()

    monkeypatch.setattr(login_module, "LoopbackReceiver", CountedReceiver)
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), clock=clock)
    with pytest.raises(AuthorizationRequired) as caught:
        auth.login()
    message = str(caught.value)
    assert f"mcp-sync-auth login --headless {server.mcp_url}" in message and "headless=True" in message
    assert "device" not in message  # there is no device flow to offer
    assert started == []
    audit = server.audit
    assert audit.registrations == 0 and audit.authorization_requests == 0 and audit.token_requests == 0


@display_rules
def test_no_display_at_a_terminal_logs_in_by_pasting_the_redirect(server, store_dir, tmp_path):
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.mcp_url, str(store_dir)],
            cwd=ROOT, env=child_env(tmp_path), stdin=slave, stdout=slave, stderr=slave, close_fds=True,
        )
    finally:
        os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + HANG_GUARD
    try:
        while b"LOGGED-IN" not in seen:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the login waited for nothing; the terminal shows: {seen!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            found = re.search(rb"http://\S+/authorize\?\S+", seen)
            if found and not answered:
                answered = True
                # The person opens the URL in a browser elsewhere and pastes where it landed.
                os.write(master, browser(found.group().decode()).encode() + b"\n")
        assert process.wait(timeout=HANG_GUARD) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    text = seen.decode(errors="replace")
    assert "No browser can be opened here" in text and "LOGGED-IN" in text
    audit = server.audit
    assert audit.authorization_requests == 1 and audit.grants.get("authorization_code") == 1
    (record,) = FileTokenStore(store_dir).records()
    assert record.key.resource == server.mcp_url


@display_rules
def test_a_browser_named_by_browser_still_logs_in_through_the_loopback_receiver(server, store_dir, tmp_path):
    fake = executable(tmp_path / "fake-browser", FAKE_BROWSER.format(python=sys.executable))
    run = subprocess.run(
        [sys.executable, "-c", CHILD, server.mcp_url, str(store_dir)],
        cwd=ROOT, env=child_env(tmp_path, BROWSER=fake), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=HANG_GUARD, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Opening the browser to log in" in run.stderr and run.stdout.strip() == "LOGGED-IN"
    audit = server.audit
    assert audit.authorization_requests == 1 and audit.grants.get("authorization_code") == 1
    assert "/callback" in audit.last_authorization_params["redirect_uri"]


@display_rules
def test_a_browser_that_cannot_start_without_a_terminal_fails_at_once(server, store_dir, tmp_path):
    broken = executable(tmp_path / "broken-browser", "#!/bin/sh\nexit 1\n")
    run = subprocess.run(
        [sys.executable, "-c", CHILD, server.mcp_url, str(store_dir)],
        cwd=ROOT, env=child_env(tmp_path, BROWSER=broken), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=HANG_GUARD, check=False,
    )
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert run.stdout.startswith("AuthorizationRequired") and "no browser could be started" in run.stdout
    assert "--headless" in run.stdout
    assert server.audit.authorization_requests == 0
