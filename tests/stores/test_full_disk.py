"""Reserve before you spend: a full disk never costs a chain.

The server rotates on every refresh, so a rotated set that cannot be stored dies with the process
and the next run presents a spent token. Before any grant the store reserves room for the answer; if
it cannot, no grant is sent. On a real small tmpfs where this machine lets us mount one, and always
with ENOSPC injected at the store's write fault points in a spawned process.
"""

import contextlib
import errno
import os
import subprocess
import threading

import pytest

from mcp_sync_auth import FileTokenStore, StoreFull

from ..conftest import TTL
from ..helpers import wait_until
from . import disk_worker


def _mount(path, *options):
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(("size=256k", "mode=0700", *options)), "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs of our own, or a skip where mounts are not allowed (the injected tests still run)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.name != "posix" or _mount(mount_point).returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the injected-ENOSPC tests cover the same protocol")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk):
    """Write a file until the disk is full, down to the last byte; the file, to remove for room again."""
    filler = disk / "fill"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * size)
    finally:
        os.close(fd)
    probe = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError) as full:
            os.write(probe, b"x")
    finally:
        os.close(probe)  # an open file keeps its space on tmpfs even once unlinked
    assert full.value.errno == errno.ENOSPC
    return filler


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_full_disk_sends_no_grant_and_once_there_is_room_one_refresh_saves_the_chain(
    small_disk, server, make_auth, client_id, clock
):
    store_dir = small_disk / "tokens"
    auth = make_auth(store=FileTokenStore(store_dir))
    auth.save_token(server.mint_tokens(client_id))
    generation = FileTokenStore(store_dir).load(auth.key).generation
    filler = fill(small_disk)
    clock.advance(TTL + 1)
    for _ in range(3):
        with pytest.raises(StoreFull) as info:
            auth.access_token()
        assert str(store_dir) in str(info.value) and "No space left" in str(info.value)
        assert "no refresh was sent" in str(info.value)
    assert server.audit.token_requests == 0  # not one grant while there was no room
    assert leftovers(store_dir) == []
    filler.unlink()
    auth.access_token()
    audit = server.audit
    assert audit.token_requests == 1 and audit.refresh_ok == 1 and audit.reuse_detections == 0
    assert FileTokenStore(store_dir).load(auth.key).generation == generation + 1
    assert leftovers(store_dir) == []


def test_a_disk_that_fills_while_the_grant_is_in_flight_still_takes_its_answer(
    small_disk, server, make_auth, client_id, clock
):
    store_dir = small_disk / "tokens"
    auth = make_auth(store=FileTokenStore(store_dir))
    auth.save_token(server.mint_tokens(client_id))
    clock.advance(TTL + 1)
    server.hold_token_requests()
    result = {}
    leader = threading.Thread(target=lambda: result.update(token=auth.access_token()))
    leader.start()
    wait_until(lambda: server.held_token_requests == 1, what="the grant at the server")
    fill(small_disk)  # the room for its answer was reserved before the grant went out
    server.release_token_requests()
    leader.join(60)
    stored = FileTokenStore(store_dir).load(auth.key)
    assert stored.tokens.access_token == result["token"]
    assert server.audit.refresh_ok == 1
    assert leftovers(store_dir) == []


def _spawned(spawn, monkeypatch, point, target, config, clock):
    monkeypatch.setenv("MCP_SYNC_AUTH_FAULTPOINT", f"{point}:1")
    results = spawn.Queue()
    worker = spawn.Process(target=target, args=(config, clock, results))
    worker.start()
    outcome = results.get(timeout=120)
    worker.join(60)
    assert worker.exitcode == 0
    return outcome


def _config(server, client_id, store_dir):
    return dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id, store_dir=str(store_dir)
    )


def test_injected_enospc_at_the_reservation_sends_no_grant(
    spawn, monkeypatch, server, auth, clock, store_dir, client_id
):
    generation = FileTokenStore(store_dir).load(auth.key).generation
    clock.advance(TTL + 1)
    config = _config(server, client_id, store_dir)
    seen = _spawned(spawn, monkeypatch, "reserve", disk_worker.full_disk_then_room, config, clock)
    assert [kind for kind, _ in seen] == ["StoreFull", "StoreFull", "ok"]
    assert str(store_dir) in seen[0][1] and "chain is intact" in seen[0][1]
    audit = server.audit
    assert audit.token_requests == 1 and audit.refresh_ok == 1 and audit.reuse_detections == 0
    assert FileTokenStore(store_dir).load(auth.key).generation == generation + 1
    assert leftovers(store_dir) == []


def test_injected_enospc_at_the_final_write_keeps_the_set_and_stores_it_on_a_later_call(
    spawn, monkeypatch, server, auth, clock, store_dir, client_id
):
    generation = FileTokenStore(store_dir).load(auth.key).generation
    clock.advance(TTL + 1)
    config = _config(server, client_id, store_dir)
    seen = _spawned(spawn, monkeypatch, "write", disk_worker.write_fails_after_the_grant, config, clock)
    assert [kind for kind, _ in seen["outcomes"]] == ["ok", "ok", "ok"]
    assert any("lives only in this process" in line for line in seen["lines"])
    assert any("are stored now" in line for line in seen["lines"])
    stored = FileTokenStore(store_dir).load(auth.key)
    assert stored.generation == generation + 1
    audit = server.audit
    assert audit.token_requests == 1 and audit.refresh_ok == 1 and audit.reuse_detections == 0
    # The chain goes on from the stored set.
    clock.advance(TTL + 1)
    auth.access_token()
    assert server.audit.refresh_ok == 2 and server.audit.reuse_detections == 0
    assert leftovers(store_dir) == []
