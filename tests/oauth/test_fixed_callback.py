"""A fixed callback for a client registered by hand: ``redirect_uri=`` / ``--redirect-uri`` /
``--callback-port``. The receiver listens on that port and path, the URI is sent exactly as
registered, and a port in use is said, naming it. The server matches registered loopback URIs
exactly here (``loopback_any_port=False``), as servers with hand-registered clients often do."""

import socket
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth._oauth.loopback import LoopbackReceiver
from mcp_sync_auth.errors import AuthorizationFailed
from mcp_sync_auth.testing import StrictAuthServer

from ..cli.shell import run

HAND_CLIENT = "by-hand"
# A stand-in for a browser named by $BROWSER: it follows the consent redirect to the loopback receiver.
FOLLOWING_BROWSER = textwrap.dedent(
    """\
    #!{python}
    import sys
    import requests
    from tests.login_helpers import browser
    session = requests.Session()
    session.trust_env = False
    page = session.get(browser(sys.argv[1]), timeout=60)
    with open({page_file!r}, "w") as shown:
        shown.write(page.text)
    """
)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def strict():
    with StrictAuthServer(loopback_any_port=False) as server:
        yield server


@pytest.fixture
def browser_env(tmp_path):
    fake = tmp_path / "following-browser"
    fake.write_text(FOLLOWING_BROWSER.format(python=sys.executable, page_file=str(tmp_path / "page.html")))
    fake.chmod(0o755)
    return {"BROWSER": str(fake), "DISPLAY": "", "WAYLAND_DISPLAY": ""}


def get_in_thread(url):
    pool = ThreadPoolExecutor(1)
    return pool, pool.submit(requests.get, url, timeout=30)


def test_the_receiver_listens_on_the_registered_port_and_path_and_sends_it_as_given():
    port = free_port()
    registered = f"http://localhost:{port}/oauth/hand-cb"
    with LoopbackReceiver(redirect_uri=registered) as receiver:
        assert receiver.redirect_uri == registered and receiver.port == port
        assert requests.get(f"http://127.0.0.1:{port}/callback?code=a&state=b", timeout=10).status_code == 404
        pool, page = get_in_thread(f"http://127.0.0.1:{port}/oauth/hand-cb?code=a&state=b")
        assert receiver.wait(10).startswith(registered + "?code=a")
        receiver.succeeded()
        assert page.result().status_code == 200
        pool.shutdown()


def test_a_registered_uri_without_a_port_gets_a_free_one():
    with LoopbackReceiver(redirect_uri="http://127.0.0.1/cb") as receiver:
        assert receiver.port > 0 and receiver.redirect_uri == f"http://127.0.0.1:{receiver.port}/cb"


def test_a_port_in_use_is_said_naming_the_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(AuthorizationFailed) as caught:
            LoopbackReceiver(redirect_uri=f"http://127.0.0.1:{port}/callback")
    message = str(caught.value)
    assert f"cannot listen on 127.0.0.1:{port}" in message and f"another program is using port {port}" in message
    assert "--callback-port" in message


@pytest.mark.parametrize(
    "uri", ["https://app.example/cb", "http://192.168.1.5:8765/cb", "http://127.0.0.1:8765/cb?x=1", "127.0.0.1:8765"]
)
def test_a_redirect_uri_no_receiver_can_take_is_refused(uri):
    with pytest.raises(AuthorizationFailed, match="not one this program can receive"):
        LoopbackReceiver(redirect_uri=uri)


def test_login_with_redirect_uri_comes_back_to_the_registered_uri(strict, store_dir, browser_env, tmp_path):
    port = free_port()
    registered = f"http://127.0.0.1:{port}/hand/callback"
    strict.register_client(HAND_CLIENT, redirect_uris=[registered])
    code, out, err = run(
        store_dir, "login", strict.mcp_url, "--client-id", HAND_CLIENT, "--redirect-uri", registered,
        environment=browser_env,
    )
    assert code == 0, err
    assert f"client {HAND_CLIENT}" in out
    audit = strict.audit
    assert audit.last_authorization_params["redirect_uri"] == registered
    assert audit.grants_ok == {"authorization_code": 1}  # the token request named the same URI
    (record,) = FileTokenStore(store_dir).records()
    assert record.key.client_id == HAND_CLIENT
    # This browser command runs until its page has loaded, as a text browser would: the page it was
    # shown still knew how the login ended (the browser is opened beside the wait, not before it).
    assert "You are logged in to " + strict.mcp_url in (tmp_path / "page.html").read_text()


def test_login_with_callback_port_listens_there(strict, store_dir, browser_env):
    port = free_port()
    strict.register_client(HAND_CLIENT, redirect_uris=[f"http://127.0.0.1:{port}/callback"])
    code, _, err = run(
        store_dir, "login", strict.mcp_url, "--client-id", HAND_CLIENT, "--callback-port", str(port),
        environment=browser_env,
    )
    assert code == 0, err
    assert strict.audit.last_authorization_params["redirect_uri"] == f"http://127.0.0.1:{port}/callback"


def test_without_the_option_a_hand_registered_client_is_refused_by_a_strict_server(strict, store_dir):
    port = free_port()
    registered = f"http://127.0.0.1:{port}/callback"
    strict.register_client(HAND_CLIENT, redirect_uris=[registered])
    handler = ("--authorization-handler", "tests.login_helpers:browser")
    code, _, err = run(store_dir, "login", strict.mcp_url, "--client-id", HAND_CLIENT, *handler)
    assert code == 1 and "redirect_uri is not registered for this client" in err  # a free port of its own
    fixed = ("--redirect-uri", registered)
    code, _, err = run(store_dir, "login", strict.mcp_url, "--client-id", HAND_CLIENT, *fixed, *handler)
    assert code == 0, err
    assert strict.audit.authorization_errors == {"invalid_redirect_uri": 1}


def test_login_with_a_callback_port_in_use_fails_at_once_naming_it(strict, store_dir, browser_env):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        strict.register_client(HAND_CLIENT, redirect_uris=[f"http://127.0.0.1:{port}/callback"])
        code, out, err = run(
            store_dir, "login", strict.mcp_url, "--client-id", HAND_CLIENT, "--callback-port", str(port),
            environment=browser_env,
        )
    assert code == 1 and out == ""
    assert f"another program is using port {port}" in err
    assert strict.audit.authorization_requests == 0


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--callback-port", "0"], "a port is 1 to 65535"),
        (["--callback-port", "70000"], "a port is 1 to 65535"),
        (["--callback-port", "http"], "not a port number"),
        (["--redirect-uri", "https://app.example/cb"], "not one this program can receive"),
        (["--redirect-uri", "http://127.0.0.1:1/cb", "--callback-port", "2"], "not allowed with argument"),
    ],
)
def test_callback_options_that_cannot_work_are_usage_errors(store_dir, options, says):
    code, _, err = run(store_dir, "login", "https://mcp.example.com/mcp", *options)
    assert code == 2 and says in err


@pytest.mark.parametrize("command", [["token", "--login"], ["tools", "--login"], ["call", "echo", "--login"]])
def test_every_command_that_may_log_in_takes_the_callback_options(store_dir, command):
    name, *rest = command
    code, _, err = run(store_dir, name, "https://mcp.example.com/mcp", *rest, "--callback-port", "0")
    assert code == 2 and "a port is 1 to 65535" in err  # parsed (and checked) by that command
