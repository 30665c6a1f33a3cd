"""The login a person sees, in a real headless Chromium: our login opens the authorization URL (through
``$BROWSER``, as :mod:`webbrowser` does for any program), the authorization server's consent page, the
redirect to our loopback receiver, and the receiver's page saying how it ended.

The program logging in is a real subprocess (:mod:`.login_child`, or the ``mcp-sync-auth`` command),
so nothing in it is replaced: the "browser" ``$BROWSER`` names is a two-line script that hands the URL
to this test, which opens it in Chromium and clicks like a person.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth.testing import StrictAuthServer

from ..helpers import wait_until
from ..workers import echo_call

ROOT = Path(__file__).resolve().parent.parent.parent
HANG_GUARD = 90.0  # seconds; reached only if the code under test hangs
LOGIN_TIMEOUT = 300.0
SHORT_LOGIN_TIMEOUT = 3.0

HAND_OVER = """#!/bin/sh
# A "browser" for $BROWSER: hand the URL to the test, which opens it in Chromium.
printf '%s' "$1" > "{path}.part" && mv "{path}.part" "{path}"
"""


class BrowserLogin:
    """A program logging in, whose browser is the test's Chromium."""

    def __init__(self, tmp_path, command):
        self.store_dir = tmp_path / "tokens"
        self._url_file = tmp_path / "authorization-url"
        browser = tmp_path / "hand-over-browser"
        browser.write_text(HAND_OVER.format(path=self._url_file))
        browser.chmod(0o755)
        env = {name: value for name, value in os.environ.items() if name not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env.update(BROWSER=str(browser), PYTHONPATH=str(ROOT))
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, *command(self.store_dir)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    @classmethod
    def of_program(cls, tmp_path, server, timeout=LOGIN_TIMEOUT):
        child = ["-m", "tests.browser.login_child", server.mcp_url]
        return cls(tmp_path, lambda store: [*child, str(store), str(timeout)])

    def authorization_url(self):
        opened = lambda: self._url_file.exists() or self.process.poll() is not None  # noqa: E731
        wait_until(opened, HANG_GUARD, "the browser to open")
        assert self._url_file.exists(), self.finish()
        return self._url_file.read_text()

    def finish(self):
        try:
            out, err = self.process.communicate(timeout=HANG_GUARD)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        assert "Traceback" not in err, err
        return self.process.returncode, out, err


def consent_page(chromium, login):
    page = chromium.new_page()
    page.goto(login.authorization_url())
    page.locator("#allow").wait_for()
    return page


def landed(page):
    page.locator("h1.ok, h1.bad").wait_for()
    return parse_qs(urlsplit(page.url).query), page.locator("body").inner_text()


def assert_shows_no_secret(page, query):
    html = page.content()
    for name in ("code", "state"):
        for value in query.get(name, ()):
            assert value not in html, f"the page shows the {name}"


def test_allow_logs_in_and_the_receiver_page_says_so(chromium, screenshot, tmp_path):
    with StrictAuthServer(consent="page") as server:
        login = BrowserLogin.of_program(tmp_path, server)
        page = consent_page(chromium, login)
        assert page.locator("h1").inner_text() == "Allow access?"
        assert server.mcp_url in page.locator("body").inner_text()
        assert server.pending_consents == 1 and server.audit.authorization_codes_issued == 0
        screenshot(page, "consent")
        page.click("#allow")
        query, text = landed(page)
        screenshot(page, "after-allow")
        code, out, err = login.finish()
        assert code == 0 and out.strip() == "LOGGED-IN", (out, err)
        assert "Opening the browser to log in" in err
        assert page.locator("h1").inner_text() == "You are logged in"
        assert f"You are logged in to {server.mcp_url}." in text
        assert "You can close this tab and go back to the terminal." in text
        assert set(query) == {"code", "state", "iss"} and query["iss"] == [server.issuer]
        assert_shows_no_secret(page, query)
        # What the login stored works for MCP calls, with no login of its own.
        auth = MCPAuth(server.mcp_url, store=FileTokenStore(login.store_dir), interactive=False)
        with requests.Session() as session:
            assert echo_call(session, server.mcp_url, auth) == "ok"
        audit = server.audit
        assert audit.authorization_codes_issued == 1 and audit.grants == {"authorization_code": 1}
        assert audit.mcp_ok == 1 and server.pending_consents == 0


def test_deny_fails_the_login_stores_nothing_and_the_page_says_what_to_do(chromium, screenshot, tmp_path):
    with StrictAuthServer(consent="page") as server:
        login = BrowserLogin.of_program(tmp_path, server)
        page = consent_page(chromium, login)
        page.click("#deny")
        query, text = landed(page)
        screenshot(page, "after-deny")
        code, out, err = login.finish()
        assert code == 3, (out, err)
        assert out.startswith("FAILED AuthorizationFailed access_denied the authorization server refused the login")
        assert page.locator("h1").inner_text() == "The login was refused"
        assert "The login was refused (access_denied): the resource owner denied the request." in text
        assert "Nothing was stored." in text
        assert "To try again, run this in the terminal" in text
        assert page.locator("pre").inner_text() == f"mcp-sync-auth login {server.mcp_url}"
        assert query["error"] == ["access_denied"] and query["iss"] == [server.issuer] and "code" not in query
        assert_shows_no_secret(page, query)
        assert FileTokenStore(login.store_dir).records() == []
        audit = server.audit
        assert audit.authorization_errors == {"access_denied": 1} and audit.authorization_codes_issued == 0
        assert audit.token_requests == 0


def test_a_tab_closed_before_consent_times_the_login_out(chromium, tmp_path):
    with StrictAuthServer(consent="page") as server:
        login = BrowserLogin.of_program(tmp_path, server, timeout=SHORT_LOGIN_TIMEOUT)
        page = consent_page(chromium, login)
        page.close()  # the person closes the tab without answering
        code, out, err = login.finish()
        took = time.monotonic() - login.started
        assert code == 3, (out, err)
        assert out.startswith(
            f"FAILED AuthorizationFailed None no login redirect arrived within {SHORT_LOGIN_TIMEOUT:g} s"
        )
        assert "nothing was stored" in out
        assert took >= SHORT_LOGIN_TIMEOUT  # it waited as long as it was told, then gave up by itself
        assert FileTokenStore(login.store_dir).records() == []
        audit = server.audit
        assert server.pending_consents == 1  # shown, never answered
        assert audit.authorization_codes_issued == 0 and audit.token_requests == 0


def test_a_stray_redirect_is_shown_a_page_and_the_login_goes_on(chromium, screenshot, tmp_path):
    with StrictAuthServer(consent="page") as server:
        login = BrowserLogin.of_program(tmp_path, server)
        page = consent_page(chromium, login)
        (redirect_uri,) = parse_qs(urlsplit(page.url).query)["redirect_uri"]
        # Another tab comes to the receiver with a code and state of another login (or a forged link).
        stray = chromium.new_page()
        answer = stray.goto(f"{redirect_uri}?code=forged-code&state=not-this-login&iss={server.issuer}")
        assert answer.status == 400
        text = stray.locator("body").inner_text()
        screenshot(stray, "stray")
        assert stray.locator("h1").inner_text() == "This is not the login being waited for"
        assert "so it was ignored" in text and "forged-code" not in stray.content()
        page.click("#allow")
        _, text = landed(page)
        code, out, err = login.finish()
        assert code == 0 and out.strip() == "LOGGED-IN", (out, err)
        assert f"You are logged in to {server.mcp_url}." in text
        assert server.audit.grants == {"authorization_code": 1}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_with_a_fixed_callback_port_logs_in_through_chromium(chromium, screenshot, tmp_path):
    with StrictAuthServer(consent="page", loopback_any_port=False) as server:
        port = _free_port()
        registered = f"http://127.0.0.1:{port}/callback"
        client_id = server.register_client("by-hand", redirect_uris=[registered], client_name="Hand-registered CLI")
        login = BrowserLogin(
            tmp_path,
            lambda store: [
                "-m", "mcp_sync_auth.cli", "--store", str(store),
                "login", server.mcp_url, "--client-id", client_id, "--callback-port", str(port),
            ],
        )
        page = consent_page(chromium, login)
        assert "Hand-registered CLI" in page.locator("body").inner_text()
        page.click("#allow")
        _, text = landed(page)
        screenshot(page, "after-allow")
        code, out, err = login.finish()
        assert code == 0, (out, err)
        assert f"logged in to {server.mcp_url}" in out and "client by-hand" in out
        assert page.url.startswith(registered + "?")
        assert server.audit.last_authorization_params["redirect_uri"] == registered
        assert "You are logged in" in text


def test_a_program_with_a_registered_redirect_uri_comes_back_to_its_path(chromium, tmp_path):
    with StrictAuthServer(consent="page", loopback_any_port=False) as server:
        registered = f"http://127.0.0.1:{_free_port()}/oauth/hand-callback"
        client_id = server.register_client("by-hand", redirect_uris=[registered])
        child = ["-m", "tests.browser.login_child", server.mcp_url]
        login = BrowserLogin(tmp_path, lambda store: [*child, str(store), str(LOGIN_TIMEOUT), client_id, registered])
        page = consent_page(chromium, login)
        assert registered in page.locator("body").inner_text()  # where the page says the browser goes
        page.click("#allow")
        _, text = landed(page)
        code, out, err = login.finish()
        assert code == 0 and out.strip() == "LOGGED-IN", (out, err)
        assert page.url.startswith(registered + "?") and "You are logged in" in text
        (record,) = FileTokenStore(login.store_dir).records()
        assert record.key.client_id == "by-hand"
