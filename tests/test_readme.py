"""Every code block of the README runs (or names the test that covers it), so the README cannot rot.

Python blocks run in a fresh interpreter and shell blocks in bash, against StrictAuthServer: the
README's example URL is replaced by the server's, and a login is stored beforehand in the default
token folder ($MCP_SYNC_AUTH_HOME), exactly where a user's `mcp-sync-auth login` would have put it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_sync_auth import MCPAuth
from mcp_sync_auth.testing import StrictAuthServer, WorkloadIssuer

from .login_helpers import browser
from .machine.keys import make_key, private_pem, public_pem

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_URL = "https://mcp.example.com/mcp"
BLOCK = re.compile(
    r"(?:<!-- readme-test: covered by (?P<covered>[^>]*?) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)


def blocks():
    text = (ROOT / "README.md").read_text()
    return [(m.group("lang"), m.group("code"), m.group("covered")) for m in BLOCK.finditer(text)]


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("readme-home")
    with StrictAuthServer() as server:
        server.register_client("worker-pool", "worker-secret", "client_secret_basic")
        # The machine identities of "No person at the keyboard": a client with a key, and a workload
        # whose token (as a projected service-account token would be) lies in a file.
        key = make_key("ec")
        (home / "key.pem").write_text(private_pem(key))
        server.register_client("tool-runner", token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key))
        workload = WorkloadIssuer("https://kubernetes.default.svc")
        server.trust_workload_issuer(workload)
        (home / "token").write_text(workload.mint("system:serviceaccount:tools:runner", audience=server.token_endpoint))
        env = {
            **os.environ,
            "MCP_SYNC_AUTH_HOME": str(home),
            "MCP_CLIENT_SECRET": "worker-secret",
            "MCP_CLIENT_KEY_FILE": str(home / "key.pem"),
            "WORKLOAD_TOKEN_FILE": str(home / "token"),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
        }
        saved = os.environ.get("MCP_SYNC_AUTH_HOME")
        os.environ["MCP_SYNC_AUTH_HOME"] = str(home)
        try:
            MCPAuth(server.mcp_url, authorization_handler=browser).login()
        finally:
            if saved is None:
                os.environ.pop("MCP_SYNC_AUTH_HOME")
            else:
                os.environ["MCP_SYNC_AUTH_HOME"] = saved
        yield server, env


def check_covering_tests(index, note):
    files = re.findall(r"(?:tests|bench)/[\w/]+\.py|\.ci/run", note)
    assert files, f"README block {index} says it is covered but names no test file: {note}"
    for named in files:
        assert (ROOT / named).exists(), f"README block {index} names {named}, which does not exist"
    defined = "".join((ROOT / named).read_text() for named in files)
    for test in re.findall(r"(?<![\w/])test_\w+(?!\.py)", note):
        assert f"def {test}(" in defined, f"README block {index} names {test}, which none of {files} defines"


def test_the_readme_has_code_blocks():
    assert len(blocks()) >= 6


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_block(index, readme_server, tmp_path):
    lang, code, covered = blocks()[index]
    if covered:
        # Blocks that install packages, open a browser or need a proxy are exercised elsewhere: every
        # file the note names must exist, and every test it names must be defined in one of them.
        check_covering_tests(index, covered)
        return
    server, env = readme_server
    code = code.replace(EXAMPLE_URL, server.mcp_url)
    if lang == "python" and "def test_" in code:
        path = tmp_path / "test_readme_example.py"
        path.write_text(code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    elif lang == "python":
        path = tmp_path / "example.py"
        path.write_text(code)
        command = [sys.executable, str(path)]
    elif lang == "sh":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        pytest.fail(f"README block {index} has a language the harness does not run: {lang}")
    done = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    report = f"README block {index} failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report
    assert server.token_marker == "" or server.token_marker not in done.stderr
