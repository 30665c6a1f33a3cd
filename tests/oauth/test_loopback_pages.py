"""The loopback receiver's pages: how the login ended, in plain words, escaped, with no code or state;
a request of another login is shown a page and ignored, and the login goes on waiting for its own."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mcp_sync_auth._oauth.loopback import LoopbackReceiver
from mcp_sync_auth.errors import AuthorizationFailed, AuthorizationResponseIssuerMismatch

RESOURCE = "https://mcp.example.com/mcp"
STATE = "the-logins-own-state"


@pytest.fixture
def receiver():
    with LoopbackReceiver(resource=RESOURCE) as receiving:
        receiving.expect(STATE)
        yield receiving


@pytest.fixture
def pool():
    with ThreadPoolExecutor(2) as threads:
        yield threads


def visit(pool, receiver, query):
    return pool.submit(requests.get, f"{receiver.redirect_uri}?{query}", timeout=60)


def test_another_logins_redirect_is_ignored_and_the_login_waits_for_its_own(receiver, pool):
    stray = visit(pool, receiver, "code=forged-code&state=another-login").result()
    assert stray.status_code == 400 and "This is not the login being waited for" in stray.text
    assert "forged-code" not in stray.text
    missing = visit(pool, receiver, "code=forged-code").result()
    assert missing.status_code == 400
    with pytest.raises(AuthorizationFailed, match="no login redirect arrived"):
        receiver.wait(0.05)  # neither was taken as the answer
    own = visit(pool, receiver, f"code=real-code&state={STATE}")
    assert "code=real-code" in receiver.wait(10)
    receiver.succeeded()
    page = own.result()
    assert page.status_code == 200 and f"You are logged in to {RESOURCE}." in page.text
    assert "real-code" not in page.text and STATE not in page.text


def test_a_refusal_shows_the_servers_reason_escaped(receiver, pool):
    query = f"error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E+no&state={STATE}"
    page = visit(pool, receiver, query)
    receiver.wait(10)
    receiver.failed(AuthorizationFailed("refused", error_code="access_denied"))
    text = page.result().text
    assert "The login was refused (access_denied): &lt;script&gt;alert(1)&lt;/script&gt; no." in text
    assert "<script>" not in text
    assert f"mcp-sync-auth login {RESOURCE}" in text and STATE not in text


def test_a_login_refused_here_says_why(receiver, pool):
    page = visit(pool, receiver, f"code=c0de&state={STATE}&iss=https://evil.example")
    receiver.wait(10)
    receiver.failed(AuthorizationResponseIssuerMismatch("the authorization response came from issuer 'x'"))
    text = page.result().text
    assert "The login did not work" in text and "The authorization response came from issuer" in text
    assert "Nothing was stored." in text and "c0de" not in text


def test_leaving_the_receiver_with_an_error_tells_the_waiting_browser(pool):
    with pytest.raises(RuntimeError), LoopbackReceiver(resource=RESOURCE) as receiver:
        receiver.expect(STATE)
        page = visit(pool, receiver, f"code=c&state={STATE}")
        receiver.wait(10)
        raise RuntimeError("the token endpoint could not be reached")
    assert "The login did not work" in page.result().text


def test_a_reload_after_the_login_shows_the_outcome_again(receiver, pool):
    first = visit(pool, receiver, f"code=c&state={STATE}")
    receiver.wait(10)
    receiver.succeeded()
    first.result()
    again = visit(pool, receiver, f"code=c&state={STATE}").result()
    assert "You are logged in" in again.text


def test_other_paths_are_not_found(receiver):
    page = requests.get(f"http://127.0.0.1:{receiver.port}/favicon.ico", timeout=10)
    assert page.status_code == 404 and "only receives the login redirect" in page.text
