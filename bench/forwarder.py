"""A loopback TCP forwarder that a test or a bench run can cut, slow down or freeze: a host's link.

One thread runs a ``selectors`` loop over the listening socket, every forwarded connection (both of
its sockets) and a wake-up socket pair. Controls are called from any thread; each hands its change
to the loop and returns once the loop has applied it, so when ``cut()`` returns every connection is
already closed, and when ``freeze()`` returns no further byte will be forwarded.

- ``cut()``: every open connection is reset (SO_LINGER 0: the peer gets RST, not a clean end of
  stream), and new ones are accepted and reset at once (the port stays ours, so ``restore()`` cannot
  lose it to another listener); a client sees ``ConnectionResetError`` on its first read or write.
- ``delay(seconds)``: every chunk read is sent on ``seconds`` after it was read, in each direction
  (a round trip costs twice that). The delay is read when a chunk is due, so ``delay(0)`` releases
  what is waiting at once, and a longer one holds back what is already queued.
- ``freeze()``: no byte is read or written on any connection, and nothing is learnt about them (an
  end of stream or a reset waits too); new connections are accepted and held, unconnected to the
  target. ``thaw()`` resumes where it stopped: what was held (in user space or in the kernel's
  buffers) is delivered in order.

Bytes are counted when they are handed to the other side (``bytes_up``: client to target).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import selectors
import socket
import struct
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple

CHUNK = 65536
# Past this many bytes waiting in one direction the forwarder stops reading that side, and the
# kernel's buffers (then the sender) wait: memory stays bounded whatever a test does.
HIGH_WATER = 4 * 1024 * 1024
# How long a control waits for the loop to apply it, and close() for the loop's thread to end: only
# reached when the loop is stuck, which is then an error, never a hang.
CONTROL_TIMEOUT = 10.0

_LINGER_ZERO = struct.pack("ii", 1, 0)


def _reset(sock: Optional[socket.socket]) -> None:
    """Close abruptly: the peer gets RST (and nothing stays in TIME_WAIT)."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    sock.close()


class _Pipe:
    """One direction of a connection: chunks read from ``src`` and not yet sent to ``dst``."""

    def __init__(self) -> None:
        self.chunks: Deque[Tuple[float, memoryview]] = collections.deque()  # (read at, rest to send)
        self.queued = 0
        self.eof = False  # the source ended its stream; the end goes on once the queue is empty
        self.shut = False  # ... and it went on (shutdown(SHUT_WR) on the destination)

    def wants_read(self) -> bool:
        return not self.eof and self.queued < HIGH_WATER


class _Connection:
    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: Optional[socket.socket] = None
        self.connected = False  # the upstream connect finished
        self.up = _Pipe()  # client -> upstream
        self.down = _Pipe()  # upstream -> client
        self.blocked: Dict[socket.socket, bool] = {}  # a send would block: wait for writability

    @property
    def done(self) -> bool:
        return self.up.shut and self.down.shut


class Forwarder:
    """Forwards every connection accepted on ``127.0.0.1:<port>`` to ``target``, in both directions."""

    def __init__(self, target: Tuple[str, int], *, name: str = "forwarder") -> None:
        self.target = (target[0], int(target[1]))
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.address: Tuple[str, int] = self._listener.getsockname()[:2]
        self.port: int = self.address[1]
        self._waker, self._wake_end = socket.socketpair()
        self._waker.setblocking(False)
        self._wake_end.setblocking(False)

        self._lock = threading.Lock()
        self._applied = threading.Condition(self._lock)
        self._requested = 0  # control changes asked for, and applied by the loop (under _lock)
        self._done = 0
        self._want_cut = False
        self._want_frozen = False
        self._want_delay = 0.0
        self._want_close = False
        self._cuts = 0  # each cut() resets the connections open at the time, even if restored at once
        self._open = 0
        self._closed = False

        # The loop's own state (its thread only).
        self._cut = False
        self._frozen = False
        self._delay = 0.0
        self._cuts_seen = 0
        self._connections: List[_Connection] = []
        self._owner: Dict[socket.socket, _Connection] = {}
        self._registered: Dict[socket.socket, int] = {}
        self._selector = selectors.DefaultSelector()

        self.connections_accepted = 0  # forwarded connections (not those reset while cut)
        self.connections_refused = 0  # accepted and reset at once while cut
        self.bytes_up = 0
        self.bytes_down = 0
        self._failure: Optional[BaseException] = None

        for sock in (self._wake_end, self._listener):
            self._selector.register(sock, selectors.EVENT_READ)
            self._registered[sock] = selectors.EVENT_READ
        self._thread = threading.Thread(target=self._run, name=f"fleet-forwarder {name} :{self.port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Forwarder({self.name}, 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]})"

    # -- controls (any thread) ---------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and every new one, until ``restore()``."""
        self._control(cut=True)

    def restore(self) -> None:
        self._control(cut=False)

    def delay(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before it goes on (each direction); ``delay(0)`` ends it."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self._control(delay=float(seconds))

    def freeze(self) -> None:
        """Forward nothing (connections stay open, new ones are held) until ``thaw()``."""
        self._control(frozen=True)

    def thaw(self) -> None:
        self._control(frozen=False)

    @property
    def open_connections(self) -> int:
        """Connections forwarded (or held) right now."""
        with self._lock:
            return self._open

    def _control(self, *, cut: Optional[bool] = None, frozen: Optional[bool] = None, delay: Optional[float] = None,
                 close: bool = False) -> None:
        with self._lock:
            if self._want_close and not close:
                raise RuntimeError(f"{self!r} is closed")
            if cut is not None:
                self._want_cut = cut
                if cut:
                    self._cuts += 1
            if frozen is not None:
                self._want_frozen = frozen
            if delay is not None:
                self._want_delay = delay
            if close:
                self._want_close = True
            self._requested += 1
            ticket = self._requested
        self._wake()
        if close:
            return
        with self._lock:
            deadline = time.monotonic() + CONTROL_TIMEOUT
            while self._done < ticket:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self!r}: its loop ended") from self._failure
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self!r}: the loop did not apply a control within {CONTROL_TIMEOUT:g} s")
                self._applied.wait(min(left, 0.5))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._waker.send(b"x")

    # -- life cycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Reset every connection, stop listening and end the loop's thread (joined, with a bound)."""
        if self._thread.is_alive():
            self._control(close=True)
            self._thread.join(CONTROL_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"{self!r}: its thread did not end within {CONTROL_TIMEOUT:g} s")
        self._teardown()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(f"{self!r}: its loop failed") from failure

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in list(self._connections):
            self._drop(connection)
        for sock in (self._listener, self._waker, self._wake_end):
            sock.close()
        self._selector.close()

    # -- the loop (its thread) ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # kept, and raised again by close()
            self._failure = exc
        finally:
            for connection in list(self._connections):
                self._drop(connection)
            with self._lock:
                self._done = self._requested
                self._open = 0
                self._applied.notify_all()

    def _step(self) -> bool:
        if not self._apply_controls():
            return False
        now = time.monotonic()
        wake_at = None
        if not self._frozen:
            for connection in list(self._connections):
                due = self._flush(connection, now)
                if due is not None and (wake_at is None or due < wake_at):
                    wake_at = due
        self._update_interest()
        timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
        for key, events in self._selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is self._wake_end:
                self._drain_wakeups()
            elif sock is self._listener:
                self._accept()
            else:
                connection = self._owner.get(sock)
                if connection is not None:  # not dropped by an event before this one
                    self._on_event(connection, sock, events)
        return True

    def _apply_controls(self) -> bool:
        with self._lock:
            ticket = self._requested
            cut, frozen, delay, close, cuts = (
                self._want_cut, self._want_frozen, self._want_delay, self._want_close, self._cuts,
            )
        if close:
            return False
        if cuts != self._cuts_seen:
            self._cuts_seen = cuts
            for connection in list(self._connections):
                self._drop(connection)
        self._cut, self._delay = cut, delay
        was_frozen, self._frozen = self._frozen, frozen
        if was_frozen and not frozen:
            for connection in list(self._connections):
                if connection.upstream is None:
                    self._connect_upstream(connection)
        with self._lock:
            self._open = len(self._connections)
            if self._done < ticket:
                self._done = ticket
                self._applied.notify_all()
        return True

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_end.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: refuse this one, keep serving the others
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                raise
            if self._cut:
                self.connections_refused += 1
                _reset(client)
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(client)
            self._connections.append(connection)
            self._owner[client] = connection
            self.connections_accepted += 1
            if not self._frozen:
                self._connect_upstream(connection)
            with self._lock:
                self._open = len(self._connections)

    def _connect_upstream(self, connection: _Connection) -> None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.upstream = upstream
        self._owner[upstream] = connection
        code = upstream.connect_ex(self.target)
        if code == 0:
            connection.connected = True
        elif code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._drop(connection)  # refused at once: the client gets RST, as from a dead server

    def _interest(self, connection: _Connection, sock: socket.socket) -> int:
        if self._frozen:
            return 0
        if sock is connection.upstream and not connection.connected:
            return selectors.EVENT_WRITE
        if sock is connection.client:
            pipe_from, pipe_to = connection.up, connection.down
        else:
            pipe_from, pipe_to = connection.down, connection.up
        events = selectors.EVENT_READ if pipe_from.wants_read() else 0
        if connection.blocked.get(sock) and pipe_to.chunks:
            events |= selectors.EVENT_WRITE
        return events

    def _update_interest(self) -> None:
        wanted: Dict[socket.socket, int] = {}
        for connection in self._connections:
            for sock in (connection.client, connection.upstream):
                if sock is not None:
                    events = self._interest(connection, sock)
                    if events:
                        wanted[sock] = events
        for sock in list(self._registered):
            if sock not in wanted and sock is not self._wake_end and sock is not self._listener:
                self._selector.unregister(sock)
                del self._registered[sock]
        for sock, events in wanted.items():
            old = self._registered.get(sock)
            if old is None:
                self._selector.register(sock, events)
            elif old != events:
                self._selector.modify(sock, events)
            self._registered[sock] = events

    def _on_event(self, connection: _Connection, sock: socket.socket, events: int) -> None:
        if sock is connection.upstream and not connection.connected:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self._drop(connection)
            else:
                connection.connected = True
            return
        if events & selectors.EVENT_WRITE:
            connection.blocked[sock] = False
        if events & selectors.EVENT_READ:
            pipe = connection.up if sock is connection.client else connection.down
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(connection)
                return
            if data:
                pipe.chunks.append((time.monotonic(), memoryview(data)))
                pipe.queued += len(data)
            else:
                pipe.eof = True

    def _flush(self, connection: _Connection, now: float) -> Optional[float]:
        """Send what is due on both directions; the time the next chunk falls due, if one waits."""
        wake_at = None
        directions = ((connection.up, connection.upstream, True), (connection.down, connection.client, False))
        for pipe, dst, upward in directions:
            if dst is None or (upward and not connection.connected):
                continue
            while pipe.chunks and not connection.blocked.get(dst):
                read_at, rest = pipe.chunks[0]
                due = read_at + self._delay
                if due > now:
                    wake_at = due if wake_at is None else min(wake_at, due)
                    break
                try:
                    sent = dst.send(rest)
                except (BlockingIOError, InterruptedError):
                    connection.blocked[dst] = True
                    break
                except OSError:
                    self._drop(connection)
                    return None
                pipe.queued -= sent
                if upward:
                    self.bytes_up += sent
                else:
                    self.bytes_down += sent
                if sent < len(rest):
                    pipe.chunks[0] = (read_at, rest[sent:])
                    connection.blocked[dst] = True
                    break
                pipe.chunks.popleft()
            if pipe.eof and not pipe.chunks and not pipe.shut:
                pipe.shut = True
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    self._drop(connection)
                    return None
        if connection.done:
            self._close_clean(connection)
            return None
        return wake_at

    def _forget(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        for sock in (connection.client, connection.upstream):
            if sock is None:
                continue
            self._owner.pop(sock, None)
            if self._registered.pop(sock, None) is not None:
                self._selector.unregister(sock)
        with self._lock:
            self._open = len(self._connections)

    def _drop(self, connection: _Connection) -> None:
        """Reset both sides."""
        self._forget(connection)
        _reset(connection.client)
        _reset(connection.upstream)

    def _close_clean(self, connection: _Connection) -> None:
        """Both streams ended and everything was delivered: close normally."""
        self._forget(connection)
        connection.client.close()
        if connection.upstream is not None:
            connection.upstream.close()
