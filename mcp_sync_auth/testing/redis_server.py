"""A real ``redis-server`` on a free loopback port, for tests of shared (fleet) token stores.

A fake Redis would agree with whatever the code under test assumes about leases, expiry and
scripts; the real server does not. So tests start the real one, from ``PATH``::

    with RedisServer() as redis:
        redis.command("SET", "k", "v")
        url = redis.url          # redis://127.0.0.1:PORT/0 (with the password, if one was set)

It writes its data to a folder of its own (an append-only file when ``appendonly=True``), so
:meth:`RedisServer.restart` brings back what was committed, as a restart in production would.
:meth:`RedisServer.kill` stops it without a chance to save. Standard library only: the readiness
check and :meth:`RedisServer.command` speak RESP over a socket, so the fixture needs no client library.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Optional, Union

# How long a starting server may take to answer PING: generous, for a loaded CI machine.
START_TIMEOUT = 30.0

Reply = Union[bytes, int, str, None, list["Reply"]]


class RedisNotAvailable(RuntimeError):
    """``redis-server`` is not on PATH (install the ``redis-server`` package, or Valkey's)."""


class RedisError(RuntimeError):
    """The server answered a command with an error reply."""


def find_redis_server() -> Optional[str]:
    """The path of ``redis-server`` (or ``valkey-server``) on PATH, or None."""
    return shutil.which("redis-server") or shutil.which("valkey-server")


_PORT_ATTEMPTS = 5


def _bytes(reply: object) -> bytes:
    return reply if isinstance(reply, bytes) else str(reply).encode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process bound to 127.0.0.1; stopped (and its folder removed) on exit."""

    def __init__(self, *, password: Optional[str] = None, appendonly: bool = True) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RedisNotAvailable(
                "redis-server is not on PATH: install it (Debian: apt-get install redis-server) to run these tests"
            )
        self._binary = binary
        self.password = password
        self.appendonly = appendonly
        self.port = _free_port()
        self._started_once = False
        self.host = "127.0.0.1"
        self._folder = Path(tempfile.mkdtemp(prefix="mcp-sync-auth-redis-"))
        self._process: Optional[subprocess.Popen[bytes]] = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(127.0.0.1:{self.port}, {state})"  # never the password

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> RedisServer:
        if self.running:
            return self
        # The port was free when it was picked; another program (a second test run, say) may take
        # it before redis-server binds it. A first start then moves to a new port; a restart cannot.
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._start_once()
                self._started_once = True
                return self
            except RedisNotAvailable as exc:
                if self._started_once or "Address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.port = _free_port()
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        arguments = [
            self._binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self._folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no" if self.password is None else "yes",
            "--daemonize",
            "no",
        ]
        if self.password is not None:
            arguments += ["--requirepass", self.password]
        log = open(self._folder / "redis.log", "ab")  # noqa: SIM115 - handed to the process
        try:
            # The binary found on PATH, with arguments of our own making.
            self._process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=log, stderr=log)  # noqa: S603
        finally:
            log.close()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pause = 0.005
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RedisNotAvailable(f"redis-server exited with {self._process.returncode}: {self._log_tail()}")
            try:
                # Ours (not another program that happens to listen on this port), and done loading.
                info = _bytes(self.command("INFO", timeout=0.5))
                ours = f"process_id:{self._process.pid}\r\n".encode() in info
                # INFO alone has been seen saying loading:0 while a GET just after was still
                # refused ("LOADING"): the server's own word, logged once all its data is in, decides.
                if ours and b"loading:0\r\n" in info and self._said_ready(self._process.pid):
                    return
            except (OSError, RedisError):
                pass  # not listening yet, or still loading its data ("LOADING")
            if time.monotonic() > deadline:
                self.kill()
                raise RedisNotAvailable(f"redis-server did not answer within {START_TIMEOUT:g} s: {self._log_tail()}")
            time.sleep(pause)  # polling a starting process: there is nothing to wait on
            pause = min(pause * 2, 0.1)

    def _said_ready(self, pid: int) -> bool:
        """Whether the process ``pid`` has logged that it accepts connections (after loading)."""
        try:
            text = (self._folder / "redis.log").read_bytes().decode(errors="replace")
        except OSError:
            return False
        mark = f"{pid}:"
        lines = text.splitlines()
        return any(line.startswith(mark) and "ready to accept connections" in line.lower() for line in lines)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self._folder / "redis.log").read_bytes()[-1000:].decode(errors="replace")
        return ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self.running and self._process is not None else None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): with ``appendonly``, everything committed is on disk."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(30)
        self._process = None

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to save. With ``appendfsync always`` nothing it
        acknowledged is lost."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(30)
        self._process = None

    def restart(self, *, hard: bool = False) -> RedisServer:
        """Stop (SIGKILL when ``hard``) and start again on the same port and folder."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- talking to it -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, with the password in it when one was set."""
        secret = f":{self.password}@" if self.password is not None else ""
        return f"redis://{secret}{self.host}:{self.port}/0"

    def command(self, *words: Union[str, bytes, int], timeout: float = 10.0) -> Reply:
        """Send one command on a fresh connection (after AUTH when a password is set); its reply."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as connection:
            reader = connection.makefile("rb")
            if self.password is not None:
                connection.sendall(_encode(("AUTH", self.password)))
                _read_reply(reader)
            connection.sendall(_encode(words))
            return _read_reply(reader)


def _encode(words: tuple[Union[str, bytes, int], ...]) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word if isinstance(word, bytes) else str(word).encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(reader: BinaryIO) -> Reply:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("the connection to redis-server closed mid-reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode("utf-8", "replace")
    if kind == b"-":
        raise RedisError(body.decode("utf-8", "replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise OSError(f"unexpected reply from redis-server: {line[:40]!r}")


__all__ = ["RedisError", "RedisNotAvailable", "RedisServer", "find_redis_server"]
