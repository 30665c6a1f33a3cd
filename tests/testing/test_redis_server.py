"""The real redis-server fixture that the fleet store's tests stand on: it starts, keeps what was
committed across a restart (even a SIGKILL, with the append-only file), enforces its password, and
says clearly when there is no binary."""

import os

import pytest

from mcp_sync_auth.testing import RedisNotAvailable, RedisServer
from mcp_sync_auth.testing.redis_server import RedisError


def test_it_answers_on_loopback(redis_server):
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("SET", "k", "v") == "OK"
    assert redis_server.command("GET", "k") == b"v"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("CONFIG", "GET", "bind")[1].split() == [b"127.0.0.1"]


@pytest.mark.parametrize("hard", [False, True], ids=["clean restart", "after SIGKILL"])
def test_a_restart_keeps_what_was_committed(redis_server, hard):
    port = redis_server.port
    redis_server.command("SET", "chain", "generation-7")
    redis_server.restart(hard=hard)
    assert redis_server.port == port and redis_server.running
    assert redis_server.command("GET", "chain") == b"generation-7"


def test_a_stopped_server_refuses_connections(redis_server):
    redis_server.kill()
    assert not redis_server.running and redis_server.pid is None
    with pytest.raises(OSError):
        redis_server.command("PING", timeout=2)


def test_a_password_is_required_and_never_shown(redis_server):
    with RedisServer(password="s3cret-pw") as server:  # redis_server above: skipped or failed without the binary
        assert server.command("PING") == "PONG"  # the fixture authenticates
        assert server.url == f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
        assert "s3cret-pw" not in repr(server)
        anonymous = RedisServer.__new__(RedisServer)
        anonymous.__dict__.update(server.__dict__, password=None)
        with pytest.raises(RedisError, match="NOAUTH"):
            anonymous.command("GET", "k")


def test_without_the_binary_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(RedisNotAvailable, match="apt-get install redis-server"):
        RedisServer()


def test_a_port_taken_before_the_first_start_moves_the_server_to_a_free_one():
    import socket  # noqa: PLC0415

    server = RedisServer()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", server.port))
    squatter.listen()  # another program (a second test run, say) took the port first
    taken = server.port
    try:
        server.start()
        assert server.port != taken
        assert f"process_id:{server.pid}".encode() in server.command("INFO", "server")
    finally:
        squatter.close()
        server.close()
