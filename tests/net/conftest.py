"""Real HTTPS and a real forwarding proxy on loopback: a private CA made per test with ``trustme``,
a :class:`StrictAuthServer` serving TLS with a certificate it issued, and ``proxy.py`` run as a
subprocess that records every request it forwards."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from mcp_sync_auth.testing import StrictAuthServer

from ..conftest import TTL
from ..helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
# Upstream connections of the proxy leave from this address, so the server can tell them apart.
PROXY_SOURCE_IP = "127.0.0.2"
NETWORK_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@pytest.fixture(autouse=True)
def clean_network_environment(monkeypatch):
    """No proxy and no CA bundle from the machine: each test sets exactly what it tests."""
    for name in NETWORK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def private_ca():
    return pytest.importorskip("trustme").CA()


@pytest.fixture
def ca():
    return private_ca()


@pytest.fixture
def ca_bundle(ca, tmp_path):
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def wrong_ca_bundle(tmp_path):
    """A second private CA, which never issued the server's certificate."""
    path = tmp_path / "other-ca.pem"
    private_ca().cert_pem.write_to_path(str(path))
    return str(path)


def tls_files(ca, tmp_path, name):
    """A certificate of ``ca`` for 127.0.0.1 and localhost, as ``(certfile, keyfile)``."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


@pytest.fixture
def serve(ca, tmp_path, clock):
    """Start a StrictAuthServer on ``host``: over HTTPS with a certificate of the private CA (for
    127.0.0.1 and localhost), or plain HTTP with ``tls=False``. Stopped at the end of the test."""
    files = tls_files(ca, tmp_path, "server")
    started = []

    def start(host="127.0.0.1", tls=True, **options):
        server = StrictAuthServer(
            access_token_ttl=TTL,
            clock=clock,
            token_marker="SECRETMARK",
            host=host,
            tls=files if tls else None,
            **options,
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def https_server(serve):
    return serve()


def browser_trusting(ca_bundle):
    """The person's browser: it trusts the private CA and connects directly (no proxy), as a browser
    with its own settings would; it is not the library, so it is not counted as one of its requests."""

    def browser(url):
        with requests.Session() as session:
            session.trust_env = False
            answer = session.get(url, allow_redirects=False, timeout=30, verify=ca_bundle)
        assert answer.status_code in (302, 303), answer.status_code
        return answer.headers["Location"]

    return browser


class RecordingProxy:
    """proxy.py on a free port of 127.0.0.1; :meth:`records` are the lines its plugin wrote."""

    def __init__(self, tmp_path):
        self._record = tmp_path / "proxy-record.txt"
        self._record.write_text("")
        port_file = tmp_path / "proxy-port"
        env = dict(os.environ)
        for name in NETWORK_VARIABLES:
            env.pop(name, None)
            env.pop(name.lower(), None)
        env.update(
            PROXY_RECORD=str(self._record),
            PROXY_SOURCE_IP=PROXY_SOURCE_IP,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--hostname",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                # An idle tunnel is never cut mid-test (the default is 10 s): on a loaded machine
                # the client could reuse a connection the proxy has just closed.
                "--timeout",
                "600",
                "--num-workers",
                "1",
                "--num-acceptors",
                "1",
                "--plugins",
                "tests.net.proxy_recorder.RecordingPlugin",
                "--log-level",
                "WARNING",
                "--log-file",
                str(tmp_path / "proxy.log"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=str(tmp_path),
        )
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), timeout=60, what="proxy.py to listen")
        self.port = int(port_file.read_text().split()[0])
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_until_it_answers()

    def _wait_until_it_answers(self):
        def answers():
            try:
                with requests.Session() as session:
                    session.trust_env = False
                    # A request the proxy itself answers (no upstream): it is up once it replies.
                    session.get(self.url, timeout=5)
                return True
            except requests.ConnectionError:
                return False

        wait_until(answers, timeout=60, what="proxy.py to answer")
        self._record.write_text("")

    def records(self):
        """(method, host:port, path) of each request handled since the last clear."""
        lines = self._record.read_text().splitlines()
        return [tuple(line.split(" ", 2)) for line in lines]

    def clear(self):
        self._record.write_text("")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def proxy(tmp_path):
    pytest.importorskip("proxy")
    started = RecordingProxy(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def host_of(url):
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"
