"""A simulated host's link to Redis: a plain loopback TCP forwarder, two threads per connection.

The fleet benchmark gives each host one, so every byte between a host's processes and Redis goes
through a socket of that host's own (as it would through its own network path), and the bytes each
host moved can be counted. It never cuts, delays or freezes anything: it only forwards.
"""

from __future__ import annotations

import contextlib
import socket
import threading

CHUNK = 65536


class Link:
    """Accepts on ``127.0.0.1:<port>`` and forwards every connection to ``target``, both ways."""

    def __init__(self, target: tuple[str, int], name: str = "link") -> None:
        self.target = (target[0], int(target[1]))
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._guard = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.connections = 0
        self.bytes_up = 0  # host to Redis
        self.bytes_down = 0
        self._thread = threading.Thread(target=self._accept, name=f"bench-link {name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Link({self.name}, 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]})"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._guard:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self.connections += 1
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), name=f"bench-link {self.name}",
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
                with self._guard:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
