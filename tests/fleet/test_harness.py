"""The fleet harness itself, against the real redis-server: a host's link forwards, cuts (resets),
delays and freezes exactly as the fleet store's tests will assume, its processes see only its own
folders and link, and closing a fleet leaves no thread, socket or process behind.

Only outcomes and lower bounds are asserted, never how fast something was: these tests run on
loaded 2-core machines. Where a test shows that nothing arrives, it watches for a short while; the
outcome does not depend on the machine's speed (a frozen link or a stopped process cannot answer).
"""

import contextlib
import json
import os
import select
import socket
import sys
import textwrap
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mcp_sync_auth.testing import RedisServer

from ..helpers import wait_until
from .forwarder import Forwarder
from .hosts import REPO_ROOT, Fleet, Host, process_state

# How long a test watches for something that must not happen (a reply from a frozen link or process).
WATCH = 0.3
# A bound for what must happen, generous for a loaded machine: reached only when the harness is broken.
BOUND = 30.0
LINUX = sys.platform.startswith("linux")


def client(port, **options):
    """A redis-py client on ``port``, without retries: each command shows the first error it meets."""
    options.setdefault("socket_timeout", 2)
    options.setdefault("socket_connect_timeout", 2)
    return redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), **options)


def resp(*words):
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_exactly(sock, size, timeout=BOUND):
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def raw_connection(port):
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def forwarder_threads():
    return [thread for thread in threading.enumerate() if thread.name.startswith("fleet-forwarder")]


# -- the link ------------------------------------------------------------------------------------


def test_commands_pass_through_a_hosts_link_and_are_counted(fleet, redis_server):
    a, b, c = fleet
    with client(a.port) as through_a:
        assert through_a.set("greeting", "hello") is True
        assert through_a.get("greeting") == b"hello"
    assert redis_server.command("GET", "greeting") == b"hello"  # it reached the real server
    assert a.forwarder.connections_accepted == 1
    assert a.forwarder.bytes_up > len(b"greeting hello") and a.forwarder.bytes_down > len(b"+OK\r\n")
    for other in (b, c):
        assert (other.forwarder.connections_accepted, other.forwarder.bytes_up, other.forwarder.bytes_down) == (0, 0, 0)
    ports = {host.port for host in fleet}
    assert len(ports) == 3 and redis_server.port not in ports


def test_a_link_carries_many_commands_and_large_values_intact(fleet):
    a = fleet[0]
    value = bytes(range(256)) * 20_000  # 5 MB: more than one chunk, more than the kernel's buffers
    with client(a.port, socket_timeout=BOUND) as through_a:
        pipeline = through_a.pipeline(transaction=False)
        for _ in range(5000):
            pipeline.incr("counter")
        assert pipeline.execute() == list(range(1, 5001))
        assert through_a.set("big", value) is True
        assert through_a.get("big") == value
    assert a.forwarder.bytes_up > len(value) and a.forwarder.bytes_down > len(value)


def test_a_cut_resets_open_connections_refuses_new_ones_and_spares_other_hosts(fleet):
    a, b, _ = fleet
    with client(a.port) as through_a, client(b.port) as through_b:
        assert through_a.ping() and through_b.ping()
        raw = raw_connection(a.port)
        raw.sendall(resp("PING"))
        assert read_exactly(raw, 7) == b"+PONG\r\n"

        a.cut()
        assert a.forwarder.open_connections == 0  # at once: cut() returns once they are closed
        with pytest.raises(ConnectionResetError):  # RST, not a clean end of stream
            raw.recv(1)
        raw.close()

        with pytest.raises(redis.exceptions.ConnectionError):  # the pooled connection was reset
            through_a.ping()
        with client(a.port) as fresh, pytest.raises(redis.exceptions.ConnectionError):  # a new one too
            fresh.ping()
        assert a.forwarder.connections_refused >= 1

        assert through_b.set("written-during-the-cut", "b") is True  # another host keeps its link
        assert through_b.get("written-during-the-cut") == b"b"

        a.restore()
        assert through_a.ping() is True
        assert through_a.get("written-during-the-cut") == b"b"


def test_a_cut_gives_a_connection_error_within_the_clients_timeouts(fleet):
    a = fleet[0]
    a.cut()
    through_a = client(a.port, socket_timeout=2, socket_connect_timeout=2)
    with through_a, pytest.raises(redis.exceptions.ConnectionError):
        through_a.ping()  # a ConnectionError, never a TimeoutError: the client did not wait 2 s
    a.restore()
    with client(a.port) as through_a:
        assert through_a.ping() is True


def test_cut_and_restore_at_once_still_resets_what_was_open(fleet):
    a = fleet[0]
    raw = raw_connection(a.port)
    raw.sendall(resp("PING"))
    assert read_exactly(raw, 7) == b"+PONG\r\n"
    a.cut()
    a.restore()
    with pytest.raises(ConnectionResetError):
        raw.recv(1)
    raw.close()
    with client(a.port) as through_a:
        assert through_a.ping() is True


def test_a_frozen_link_times_out_and_thaws(fleet):
    a, b, _ = fleet
    with client(a.port, socket_timeout=0.5) as through_a, client(b.port) as through_b:
        assert through_a.ping() is True
        a.freeze_link()
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):  # a timeout, not a closed connection
            through_a.ping()
        assert time.monotonic() - started >= 0.49
        assert through_b.ping() is True  # another host's link is not frozen
        a.thaw_link()
        assert through_a.set("after-thaw", "1") is True
        assert through_a.get("after-thaw") == b"1"


def test_what_is_sent_during_a_freeze_is_held_then_delivered_in_order(fleet, redis_server):
    a = fleet[0]
    before = raw_connection(a.port)
    before.sendall(resp("PING"))
    assert read_exactly(before, 7) == b"+PONG\r\n"
    up, accepted = a.forwarder.bytes_up, a.forwarder.connections_accepted

    a.freeze_link()
    during = raw_connection(a.port)  # accepted, but it gets nothing
    for word in ("one", "two", "three"):  # one write each: several chunks, held in order
        before.sendall(resp("RPUSH", "order", word))
    before.sendall(resp("PING"))
    during.sendall(resp("PING"))
    for sock in (before, during):
        sock.settimeout(WATCH)
        with pytest.raises(socket.timeout):
            sock.recv(1)
    assert a.forwarder.bytes_up == up  # nothing went on...
    assert redis_server.command("EXISTS", "order") == 0  # ...so the server saw none of it
    wait_until(lambda: a.forwarder.connections_accepted == accepted + 1, BOUND, "the frozen link to accept")

    a.thaw_link()
    assert read_exactly(before, 19) == b":1\r\n:2\r\n:3\r\n+PONG\r\n"
    assert read_exactly(during, 7) == b"+PONG\r\n"
    assert redis_server.command("LRANGE", "order", 0, -1) == [b"one", b"two", b"three"]
    before.close()
    during.close()


def test_a_delay_holds_each_round_trip_back(fleet):
    a = fleet[0]
    with client(a.port, socket_timeout=BOUND) as through_a:
        assert through_a.ping() is True
        a.delay(0.2)
        started = time.monotonic()
        assert through_a.ping() is True
        assert time.monotonic() - started >= 0.4  # 0.2 s each way
        pipeline = through_a.pipeline(transaction=False)
        for _ in range(50):
            pipeline.incr("delayed")
        assert pipeline.execute() == list(range(1, 51))  # in order
        a.delay(0)
        assert through_a.ping() is True


def test_ending_a_delay_releases_what_waits(fleet):
    a = fleet[0]
    raw = raw_connection(a.port)
    a.delay(3600)
    raw.sendall(resp("PING"))
    raw.settimeout(WATCH)
    with pytest.raises(socket.timeout):
        raw.recv(1)
    a.delay(0)
    assert read_exactly(raw, 7) == b"+PONG\r\n"
    raw.close()


def test_a_connection_ended_by_the_server_is_closed_on_both_sides(fleet):
    a = fleet[0]
    raw = raw_connection(a.port)
    raw.sendall(resp("QUIT"))
    assert read_exactly(raw, 5) == b"+OK\r\n"
    assert raw.recv(1) == b""  # the server's end of stream came through, after its reply
    raw.close()
    wait_until(lambda: a.forwarder.open_connections == 0, BOUND, "the forwarder to close the connection")


def test_a_dead_server_resets_the_hosts_connections(fleet, redis_server):
    a = fleet[0]
    with client(a.port) as through_a:
        assert through_a.ping() is True
        redis_server.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            through_a.ping()
        redis_server.start()
        assert through_a.ping() is True


def test_a_closed_forwarder_refuses_controls(redis_server):
    forwarder = Forwarder((redis_server.host, redis_server.port))
    forwarder.close()
    forwarder.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        forwarder.cut()


# -- processes -----------------------------------------------------------------------------------

REPORT = textwrap.dedent("""
    import json, os, sys, tempfile
    import redis
    import mcp_sync_auth, tests
    url = os.environ["MCP_SYNC_AUTH_STORE"]
    redis.Redis.from_url(url).set("seen-by:" + sys.argv[1], os.environ["HOME"])
    names = ("HOME", "XDG_CACHE_HOME", "TMPDIR", "MCP_SYNC_AUTH_HOME", "MCP_SYNC_AUTH_STORE")
    report = {name: os.environ.get(name) for name in names}
    report.update(tempdir=tempfile.gettempdir(), cwd=os.getcwd(), package=mcp_sync_auth.__file__,
                  tests=tests.__file__, leaked=os.environ.get("MCP_SYNC_AUTH_FAULTPOINT"))
    print(json.dumps(report))
""")

ECHO = textwrap.dedent("""
    import sys
    print("ready", flush=True)
    for line in sys.stdin:
        print(line.strip().upper(), flush=True)
""")


def report_of(host):
    process = host.popen(["-c", REPORT, host.name])
    out, _ = process.communicate(timeout=BOUND)
    assert process.returncode == 0
    return json.loads(out)


def test_each_hosts_processes_see_their_own_folders_and_link(fleet, redis_server, monkeypatch):
    monkeypatch.setenv("MCP_SYNC_AUTH_FAULTPOINT", "from-the-test-process")
    reports = {}
    for host in fleet:
        report = report_of(host)
        reports[host.name] = report
        assert report["HOME"] == str(host.home)
        assert report["XDG_CACHE_HOME"] == str(host.cache)
        assert report["TMPDIR"] == report["tempdir"] == str(host.tmp)
        assert report["MCP_SYNC_AUTH_HOME"] == str(host.cache / "mcp-sync-auth")
        assert report["MCP_SYNC_AUTH_STORE"] == f"redis://127.0.0.1:{host.port}/0"
        assert report["cwd"] == str(host.home)
        assert report["package"].startswith(str(REPO_ROOT / "mcp_sync_auth"))
        assert report["tests"].startswith(str(REPO_ROOT / "tests"))
        assert report["leaked"] is None
        # It reached Redis through its own link, and only that one.
        assert host.forwarder.connections_accepted == 1
        assert redis_server.command("GET", f"seen-by:{host.name}") == str(host.home).encode()
    folders = [reports[host.name][name] for host in fleet for name in ("HOME", "XDG_CACHE_HOME", "TMPDIR")]
    assert len(set(folders)) == len(folders)
    roots = [host.root for host in fleet]
    for root in roots:
        for other in roots:
            assert root == other or (root not in other.parents and other not in root.parents)


def test_a_hosts_store_url_carries_the_password(tmp_path, redis_server):
    with RedisServer(password="p@ss/w:rd") as protected, Fleet(tmp_path, protected, hosts=1) as fleet:
        host = fleet[0]
        assert host.env()["MCP_SYNC_AUTH_STORE"] == f"redis://:p%40ss%2Fw%3Ard@127.0.0.1:{host.port}/0"
        report_of(host)  # it authenticated with the password from its URL
        assert protected.command("GET", f"seen-by:{host.name}") == str(host.home).encode()


def test_env_takes_extra_variables_and_removes_some(fleet):
    env = fleet[0].env(EXTRA="1", MCP_SYNC_AUTH_STORE=None)
    assert env["EXTRA"] == "1" and "MCP_SYNC_AUTH_STORE" not in env
    assert env["HOME"] == str(fleet[0].home)


def answers(process, line, timeout):
    """Whether ``process`` echoes ``line`` (upper case) within ``timeout``."""
    if line is not None:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return False
    return process.stdout.readline().strip()


def test_a_frozen_process_answers_only_once_thawed(fleet):
    a = fleet[0]
    process = a.popen(["-c", ECHO])
    assert process.stdout.readline().strip() == "ready"
    assert answers(process, "one", BOUND) == "ONE"

    a.freeze_process(process)
    if LINUX:
        assert process_state(process.pid) == "T"
    assert answers(process, "two", WATCH) is False  # a stopped process cannot answer
    a.thaw_process(process)
    assert answers(process, None, BOUND) == "TWO"
    assert answers(process, "three", BOUND) == "THREE"

    assert a.kill_process(process) == -9
    assert process.returncode == -9


def test_a_frozen_process_can_be_killed(fleet):
    a = fleet[0]
    process = a.popen(["-c", ECHO])
    assert process.stdout.readline().strip() == "ready"
    a.freeze_process(process)
    assert a.kill_process(process) == -9
    if LINUX:
        assert process_state(process.pid) is None  # reaped


# -- closing -------------------------------------------------------------------------------------

PARENT = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    print(child.pid, flush=True)
    sys.stdin.read()
""")


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def _open_files():
    """What this process's descriptors are open on (``socket:[inode]``, ``pipe:[inode]``, paths)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def test_closing_a_fleet_leaves_no_thread_socket_or_process(tmp_path, redis_server):
    before = set(forwarder_threads())
    descriptors = _open_files()
    fleet = Fleet(tmp_path, redis_server, hosts=3)
    assert len(set(forwarder_threads()) - before) == 3
    ports = [host.port for host in fleet]
    a, b, _ = fleet
    open_client = client(a.port)
    assert open_client.ping() is True  # a connection open at close
    b.freeze_link()  # and a frozen link, holding a connection that never reached the server
    held = raw_connection(b.port)
    wait_until(lambda: b.forwarder.connections_accepted == 1, BOUND, "the frozen link to accept")
    parent = a.popen(["-c", PARENT])
    grandchild = int(parent.stdout.readline())
    frozen = b.popen(["-c", ECHO])
    assert frozen.stdout.readline().strip() == "ready"
    b.freeze_process(frozen)

    fleet.close()

    assert set(forwarder_threads()) <= before
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    assert parent.returncode == -9 and frozen.returncode == -9
    # The grandchild (in the parent's session) was killed too; init reaps it.
    wait_until(lambda: process_state(grandchild) in (None, "Z"), BOUND, "the grandchild to end")
    with pytest.raises(redis.exceptions.ConnectionError):
        open_client.ping()
    open_client.close()
    held.close()
    fleet.close()  # twice is fine
    # No socket, pipe or selector left open. (Compared by what each descriptor is, not by how many
    # there are: an earlier test's object collected meanwhile may close one of its own.)
    assert _open_files() - descriptors == set()


def test_a_host_name_is_its_own(tmp_path, redis_server):
    with Host("alone", tmp_path, (redis_server.host, redis_server.port)), pytest.raises(FileExistsError):
        Host("alone", tmp_path, (redis_server.host, redis_server.port))
    assert not [thread for thread in forwarder_threads() if "alone" in thread.name]


def test_a_process_that_ended_by_itself_is_left_alone(fleet):
    a = fleet[0]
    process = a.popen(["-c", "print('bye')"])
    assert process.communicate(timeout=BOUND)[0].strip() == "bye"
    assert a.kill_process(process) == 0
    a.close()
    assert process.returncode == 0
