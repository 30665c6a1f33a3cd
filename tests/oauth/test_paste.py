"""The headless login's paste-back forgives how the address was pasted, and still checks state and iss.

Unit tests for the reader, then the real ``mcp-sync-auth login --headless`` against StrictAuthServer,
fed on stdin what a person pastes after opening the printed URL elsewhere.
"""

import io
import subprocess
from urllib.parse import urlsplit

import pytest

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth._oauth.paste import WHAT_TO_PASTE, UnusablePaste, read_pasted_redirect, redirect_query
from mcp_sync_auth.errors import AuthorizationFailed
from mcp_sync_auth.testing import auto_consent_handler

from ..cli.shell import assert_no_traceback, start
from ..cli.test_cli_signals import read_until

QUERY = "code=abc123&state=s-1&iss=http%3A%2F%2F127.0.0.1%3A9999"
REDIRECT = f"http://127.0.0.1:8765/callback?{QUERY}"
AUTHORIZE = "https://as.example.com/authorize?response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback"


@pytest.mark.parametrize(
    "pasted",
    [
        REDIRECT,  # the whole address
        f"  {REDIRECT}  \n",  # with blanks and the newline
        f'"{REDIRECT}"',  # in quotes
        f"<{REDIRECT}>",  # in angle brackets (mail, chat)
        f"'{REDIRECT}'",
        f"127.0.0.1:8765/callback?{QUERY}",  # without the scheme (address bars hide it)
        f"?{QUERY}",  # the query with its '?'
        QUERY,  # the bare query
        f" `{QUERY}` ",
        REDIRECT.replace("&", "&amp;"),  # copied from an HTML view
        f"{REDIRECT}#",  # a stray fragment mark
    ],
)
def test_every_form_people_paste_gives_the_query(pasted):
    assert redirect_query(pasted) == QUERY


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("abc123", "bare authorization code"),
        ("  'abc123'  ", "bare authorization code"),
        ("code=abc123", "has no state"),
        ("http://127.0.0.1:8765/callback?code=abc123", "has no state"),
        ("error=access_denied", "has no state"),
        (AUTHORIZE, "the address to open, not the one the browser lands on"),
        ("   ", "nothing was pasted"),
        ("http://127.0.0.1:8765/callback", "not the address of the login's answer"),
    ],
)
def test_what_cannot_be_checked_is_refused_saying_what_to_paste(pasted, says):
    with pytest.raises(UnusablePaste) as caught:
        redirect_query(pasted)
    message = str(caught.value)
    assert says in message and WHAT_TO_PASTE in message
    assert "abc123" not in message  # the pasted code is never repeated back
    assert isinstance(caught.value, AuthorizationFailed)


def lines(*given):
    answers = iter(given)
    return lambda: next(answers, "")


def test_a_refused_paste_is_asked_again_and_the_next_one_is_used(capsys):
    got = read_pasted_redirect(AUTHORIZE, read_line=lines("abc123\n", f"127.0.0.1:8765/callback?{QUERY}\n"))
    assert got == REDIRECT  # the redirect URI of the request, with the pasted query
    err = capsys.readouterr().err
    assert AUTHORIZE in err and err.count("Cannot use that:") == 1 and "abc123" not in err


def test_end_of_input_after_a_refusal_raises_the_refusal():
    with pytest.raises(UnusablePaste, match="bare authorization code"):
        read_pasted_redirect(AUTHORIZE, read_line=lines("abc123\n"), out=io.StringIO())


def test_three_unusable_pastes_end_the_login():
    reads = []

    def read():
        reads.append(1)
        return "abc123\n"

    with pytest.raises(UnusablePaste):
        read_pasted_redirect(AUTHORIZE, read_line=read, out=io.StringIO())
    assert len(reads) == 3


def test_end_of_input_at_once_says_nothing_was_pasted():
    with pytest.raises(AuthorizationFailed, match="no redirect URL was pasted"):
        read_pasted_redirect(AUTHORIZE, read_line=lines(), out=io.StringIO())


# -- the real headless login ------------------------------------------------------------------------


def without_scheme(redirect):
    return redirect.split("://", 1)[1]


def bare_query(redirect):
    return "  '" + urlsplit(redirect).query + "'  "


def question_query(redirect):
    return "?" + urlsplit(redirect).query


def drop_iss(redirect):
    query = "&".join(part for part in urlsplit(redirect).query.split("&") if not part.startswith("iss="))
    return query


def other_state(redirect):
    return redirect.replace("state=", "state=x")


def headless_login(store_dir, server, *pasted_from):
    """``login --headless``: each function turns the real redirect (the browser's, elsewhere) into a
    pasted line."""
    login = start(store_dir, "login", "--headless", server.mcp_url, stdin=subprocess.PIPE)
    prompt = "".join(read_until(login.stderr, "/authorize?"))
    url = prompt.strip().splitlines()[-1].strip()
    redirect = auto_consent_handler(url)  # consent given in a browser on another machine
    pasted = "".join(make(redirect) + "\n" for make in pasted_from)
    out, err = login.communicate(pasted, timeout=60)  # then end of input, as when the person stops
    assert_no_traceback(out, err)
    return login.returncode, out, prompt + err, redirect


@pytest.mark.parametrize("paste", [str, without_scheme, bare_query, question_query], ids=lambda f: f.__name__)
def test_the_headless_login_takes_what_people_paste(server, store_dir, paste):
    code, out, err, _ = headless_login(store_dir, server, paste)
    assert code == 0, err
    assert f"logged in to {server.mcp_url}" in out
    assert "http://127.0.0.1" in err and "address bar" in err  # the prompt says what to paste
    (record,) = FileTokenStore(store_dir).records()
    assert record.key.resource == server.mcp_url
    assert server.audit.grants_ok == {"authorization_code": 1}


def test_a_bare_code_is_refused_and_the_message_says_what_to_paste(server, store_dir):
    code, out, err, redirect = headless_login(store_dir, server, lambda r: r.split("code=")[1].split("&")[0])
    assert code == 1 and out == ""
    assert "bare authorization code" in err and "the whole address from the browser's address bar" in err
    assert redirect.split("code=")[1].split("&")[0] not in err
    assert FileTokenStore(store_dir).records() == [] and server.audit.token_requests == 0


def test_a_bare_code_then_the_whole_address_logs_in(server, store_dir):
    code, _, err, _ = headless_login(store_dir, server, lambda r: r.split("code=")[1].split("&")[0], str)
    assert code == 0, err
    assert "Cannot use that: that looks like a bare authorization code" in err
    assert server.audit.grants_ok == {"authorization_code": 1}


def test_a_pasted_query_of_another_login_is_refused_by_its_state(server, store_dir):
    code, _, err, _ = headless_login(store_dir, server, lambda r: urlsplit(other_state(r)).query)
    assert code == 1 and "state does not match" in err
    assert FileTokenStore(store_dir).records() == [] and server.audit.token_requests == 0


def test_a_pasted_query_without_the_iss_the_server_promises_is_refused(server, store_dir):
    assert server.authorization_server_metadata()["authorization_response_iss_parameter_supported"] is True
    code, _, err, _ = headless_login(store_dir, server, drop_iss)
    assert code == 1 and "promises an 'iss' parameter" in err
    assert server.audit.token_requests == 0


def test_a_pasted_address_from_another_issuer_is_refused(server, store_dir):
    server.iss_mode = "wrong"
    code, _, err, _ = headless_login(store_dir, server, without_scheme)
    assert code == 1 and "possible mix-up attack" in err
    assert server.audit.token_requests == 0
