"""A proxy.py plugin for the proxy tests: every request the proxy handles (each CONNECT, each plain
HTTP request, keep-alive ones too) is appended as one line to the file ``$PROXY_RECORD``, and every
upstream connection leaves from ``$PROXY_SOURCE_IP`` (127.0.0.2), so the strict server can tell a
connection that came through the proxy from one that did not."""

import os

from proxy.http.proxy import HttpProxyBasePlugin


class RecordingPlugin(HttpProxyBasePlugin):
    def resolve_dns(self, host, port):
        return None, (os.environ["PROXY_SOURCE_IP"], 0)

    def handle_client_request(self, request):
        method = request.method.decode("ascii", "replace") if request.method else "?"
        host = request.host.decode("ascii", "replace") if request.host else "?"
        path = request.path.decode("ascii", "replace").partition("?")[0] if request.path else ""
        line = f"{method} {host}:{request.port} {path}\n".encode("ascii", "replace")
        # One write of a short line with O_APPEND: lines of concurrent connections never interleave.
        fd = os.open(os.environ["PROXY_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return request
