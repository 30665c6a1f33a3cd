"""Every HTTP request of the library goes through SessionSource.request, the one place where the
verify=/proxies= given once are added and certificate and proxy failures become our errors. A new
request written as ``session.post(...)`` (or ``requests.get``, or a bare ``Session.send``, which
skips requests' environment) fails here, naming the line."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mcp_sync_auth"
# Everything but the edges: the test servers, the demo and the CLI do not send the library's requests.
SCANNED = [path for path in PACKAGE.rglob("*.py") if not {"testing", "demo", "cli"} & set(path.parts)]
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "send"}
# The auth's resend after a 401 goes on the connection the first request used, with the keyword
# arguments (verify, proxies, ...) requests merged for it: the same settings, by construction.
# And SessionSource.request itself calls Session.request: that is the one path.
ALLOWED = {("auth.py", "connection.send"), ("sessions.py", "session.request")}
# What a SessionSource is called in the code: its .request() is the path, not a bypass of it.
SOURCES = {"_sessions", "_http", "http"}


def receiver(node):
    """A readable name for what a method is called on: ``session``, ``self._sessions.get()``."""
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - ast.unparse handles every expression
        return "?"


def direct_requests(path, root):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in HTTP_METHODS:
            continue
        target = receiver(node.func.value)
        last = target.rsplit(".", 1)[-1]
        if node.func.attr == "request" and last in SOURCES:
            continue
        if last in {"headers", "params", "cookies", "hooks", "proxies", "adapters"}:
            continue  # a mapping of a session (session.headers.get(...)), not a request
        if target == "requests" or "session" in target.lower() or last == "connection":
            if (path.name, f"{last}.{node.func.attr}") in ALLOWED:
                continue
            if node.func.attr == "get" and not node.args and not node.keywords:
                continue  # SessionSource.get(): the session itself, no request
            yield f"{path.relative_to(root)}:{node.lineno}: {target}.{node.func.attr}(...)"


def test_no_request_bypasses_the_one_request_path():
    assert len(SCANNED) > 50
    found = [line for path in SCANNED for line in direct_requests(path, PACKAGE.parent)]
    assert found == [], "send these through SessionSource.request:\n" + "\n".join(found)


def test_the_scan_finds_a_direct_request(tmp_path):
    # The check itself can fail: the shapes a request used to take here are all found.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(self, session):\n"
        "    self._sessions.get().post(url, data=b'')\n"
        "    session.get(url)\n"
        "    requests.post(url)\n"
        "    self._session.send(prepared)\n"
        "    self._sessions.request('GET', url, failure=DiscoveryConnectionError)\n"  # the path: not found
    )
    assert len(list(direct_requests(sample, tmp_path))) == 4
