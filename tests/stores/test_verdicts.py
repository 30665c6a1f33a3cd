"""One verdict for a bad token file, the same on every path.

Each case breaks the chain file a real login (against StrictAuthServer, through the real file store)
wrote, then asks for it along one path: ``mcp-sync-auth token`` and ``status`` and ``login`` in a
subprocess, ``MCPAuth(url, interactive=False)`` and ``MCPAuth(...).login()`` in this process. Every
path must give the same verdict:

- corrupt (truncated, ``[]``, garbage, invalid UTF-8, a wrong shape, over the size limit): the file is
  moved aside byte for byte and the error is ``CorruptTokenCache`` naming both places; a login replaces it;
- a newer schema: the file is left byte for byte, the error says to upgrade, a login refuses to start;
- others may read it (0644), or it is a symbolic link: refused with the fix, left alone, no login starts.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from mcp_sync_auth import AuthorizationRequired, CorruptTokenCache, FileTokenStore, MCPAuth, TokenStoreError
from mcp_sync_auth._chain.keys import RegistrationKey
from mcp_sync_auth._stores.file import MAX_FILE_BYTES
from mcp_sync_auth._stores.inventory import InspectableStore
from mcp_sync_auth.cli.main import main as cli_main
from mcp_sync_auth.testing import auto_consent_handler, login

from ..helpers import start_lock_holder

ROOT = Path(__file__).resolve().parent.parent.parent
EXIT_ERROR = 1
EXIT_LOGIN_NEEDED = 3


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def rewrite(make: Callable[[bytes], bytes]):
    def damage(path):
        write_private(path, make(path.read_bytes()))

    return damage


def wrong_shape(good):
    document = json.loads(good)
    document["generation"] = "one"  # the key still reads: this file says whose it is
    return json.dumps(document).encode()


def oversized(path):
    os.truncate(path, MAX_FILE_BYTES + 1)  # a valid start, then zeros: sparse, never read


def group_readable(path):
    os.chmod(path, 0o644)


def symlinked(path):
    target = path.parent.parent / "elsewhere.json"
    os.replace(path, target)
    os.symlink(target, path)


@dataclasses.dataclass(frozen=True)
class Case:
    damage: Callable[[Path], None]
    verdict: str  # "corrupt", "newer" or "refused"
    says: tuple = ()  # besides the file's path, which every message names


CORRUPT = ("unreadable", "moved aside to", "log in again")
CASES = {
    "truncated": Case(rewrite(lambda good: good[: len(good) // 2]), "corrupt", CORRUPT),
    "empty array": Case(rewrite(lambda good: b"[]"), "corrupt", CORRUPT),
    "garbage": Case(rewrite(lambda good: b"\x00\x01 not json {"), "corrupt", CORRUPT),
    "invalid utf-8": Case(rewrite(lambda good: b'{"schema": 1, "x": "\xff\xfe"}'), "corrupt", CORRUPT),
    "wrong shape": Case(rewrite(wrong_shape), "corrupt", CORRUPT),
    "over the size limit": Case(oversized, "corrupt", (*CORRUPT, "larger than 1024 KiB")),
    "newer schema": Case(rewrite(lambda good: b'{"schema": 99}'), "newer", ("upgrade mcp-sync-auth",)),
    "mode 0644": Case(group_readable, "refused", ("chmod 600",)),
    "symbolic link": Case(symlinked, "refused", ("symbolic link",)),
}


@dataclasses.dataclass
class Stored:
    """The broken chain file and what it was, to check what each path did to it."""

    path: Path
    server: object
    store_dir: Path
    content: bytes
    mode: int
    logins_before: int

    def quarantined(self):
        return sorted(self.path.parent.glob(self.path.name + ".corrupt-*"))

    def assert_untouched(self):
        assert os.path.lexists(self.path) and not self.quarantined()
        assert self._bytes() == self.content and os.lstat(self.path).st_mode == self.mode

    def assert_moved_aside(self, error=None):
        (moved,) = self.quarantined()
        assert moved.read_bytes() == self.content
        if error is not None:
            assert error.quarantined_to == str(moved)
        return moved

    def assert_no_login_started(self):
        assert self.server.audit.authorization_requests == self.logins_before

    def _bytes(self):
        return self.path.read_bytes() if not self.path.is_symlink() else os.readlink(self.path).encode()


@pytest.fixture(params=list(CASES))
def case(request):
    return CASES[request.param]


@pytest.fixture
def stored(case, server, store_dir, clock):
    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    path = FileTokenStore(store_dir).path_for(auth.key)
    case.damage(path)
    content = path.read_bytes() if not path.is_symlink() else os.readlink(path).encode()
    return Stored(path, server, store_dir, content, os.lstat(path).st_mode, server.audit.authorization_requests)


def cli(store_dir, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_sync_auth.cli", "--store", str(store_dir), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def assert_says(text, stored, case):
    assert str(stored.path) in text
    for part in case.says:
        assert part in text, (part, text)
    assert "no tokens are stored" not in text
    assert stored.server.token_marker not in text


def assert_error_is_the_verdict(error, stored, case):
    """The one error of every path that does not write: its type, its words, and the file's fate."""
    assert isinstance(error, TokenStoreError)
    assert isinstance(error, CorruptTokenCache) == (case.verdict == "corrupt")
    assert_says(str(error), stored, case)
    if case.verdict == "corrupt":
        stored.assert_moved_aside(error)
    else:
        stored.assert_untouched()


def test_token_command(stored, case):
    done = cli(stored.store_dir, "token", stored.server.mcp_url)
    # A corrupt file's tokens are lost: the fix is a login (3). The others are fixed in place (1).
    expected = EXIT_LOGIN_NEEDED if case.verdict == "corrupt" else EXIT_ERROR
    assert (done.returncode, done.stdout) == (expected, "")
    assert_says(done.stderr, stored, case)
    if case.verdict == "corrupt":
        moved = stored.assert_moved_aside()
        assert str(moved) in done.stderr
    else:
        stored.assert_untouched()
    stored.assert_no_login_started()


def test_non_interactive_auth(stored, case, clock):
    auth = MCPAuth(stored.server.mcp_url, store=FileTokenStore(stored.store_dir), interactive=False, clock=clock)
    requests_before = stored.server.audit.token_requests
    with pytest.raises(TokenStoreError) as info:
        auth.access_token()
    assert_error_is_the_verdict(info.value, stored, case)
    assert stored.server.audit.token_requests == requests_before
    stored.assert_no_login_started()


def test_status_command(stored, case):
    done = cli(stored.store_dir, "status")
    assert done.returncode == EXIT_ERROR
    assert_says(done.stdout, stored, case)
    assert "live, generation" not in done.stdout
    if case.verdict == "corrupt":
        moved = stored.assert_moved_aside()
        assert f"moved aside to {moved}" in done.stdout
    else:
        stored.assert_untouched()
        assert {"newer": "upgrade mcp-sync-auth", "refused": "refused"}[case.verdict] in done.stdout
    # Moved aside, the file is gone for every later command too; the others say the same again.
    again = cli(stored.store_dir, "status")
    assert again.returncode == (0 if case.verdict == "corrupt" else EXIT_ERROR)


def test_login_in_process(stored, case, clock):
    auth = MCPAuth(stored.server.mcp_url, store=FileTokenStore(stored.store_dir),
                   authorization_handler=auto_consent_handler, clock=clock)
    if case.verdict == "corrupt":
        tokens = auth.login()  # the login replaces what cannot be read, keeping it aside
        stored.assert_moved_aside()
        assert FileTokenStore(stored.store_dir).load(auth.key).tokens == tokens
        assert stored.server.audit.authorization_requests == stored.logins_before + 1
        return
    with pytest.raises(TokenStoreError) as info:
        auth.login()
    assert_error_is_the_verdict(info.value, stored, case)
    stored.assert_no_login_started()  # refused before anyone's time is spent


def test_login_command(stored, case):
    done = cli(stored.store_dir, "login", stored.server.mcp_url, "--authorization-handler",
               "tests.login_helpers:browser")
    if case.verdict == "corrupt":
        assert done.returncode == 0, done.stderr
        stored.assert_moved_aside()
        assert FileTokenStore(stored.store_dir).records()[0].key.resource == stored.server.mcp_url
        return
    assert (done.returncode, done.stdout) == (EXIT_ERROR, "")
    assert_says(done.stderr, stored, case)
    stored.assert_untouched()
    stored.assert_no_login_started()


# --- around the matrix -------------------------------------------------------------------------


def test_a_readable_chain_of_the_server_wins_over_a_nameless_broken_file(server, store_dir, clock):
    """A garbage file that no longer says whose it is could be anybody's: it does not stop a server
    whose own chain reads, and is not touched by it."""
    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    stray = store_dir / ("0" * 32 + ".json")
    write_private(stray, b"garbage")
    fresh = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), interactive=False, clock=clock)
    assert fresh.access_token() == auth.access_token()
    assert stray.read_bytes() == b"garbage"


def test_a_broken_chain_of_another_server_is_not_this_servers_verdict(server, store_dir, clock):
    """A file that names its key is only ever reported to its own server."""
    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    path = FileTokenStore(store_dir).path_for(auth.key)
    write_private(path, json.dumps({"schema": 99, "key": auth.key.to_json()}).encode())
    other = server.mcp_url.replace("/mcp", "/other")
    done = cli(store_dir, "token", other)
    assert done.returncode == 3 and "no tokens are stored" in done.stderr
    assert str(path) not in done.stderr


def test_status_for_a_missing_folder_creates_nothing(tmp_path):
    missing = tmp_path / "not" / "there"
    done = cli(missing, "status")
    assert done.returncode == 0 and "no chains stored" in done.stdout
    assert not (tmp_path / "not").exists()


def test_status_takes_no_lock_for_good_files(server, store_dir, clock):
    """Another process holds the chain's lock for the whole status command: status neither waits for
    it nor takes it, and shows the chain."""
    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from mcp_sync_auth import ChainKey, FileTokenStore
            key = ChainKey(*{tuple(auth.key.to_json().values())!r})
            with FileTokenStore({str(store_dir)!r}).lock(key, timeout=5):
                print("locked", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = cli(store_dir, "status")  # had it waited for the lock, it would end in LockTimeout, exit 1
        # The holder is seen without taking its lock (issue 13: a chain another process holds is "refreshing").
        assert done.returncode == 0 and "refreshing, generation 1" in done.stdout
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_status_leaves_a_corrupt_file_whose_lock_another_process_holds(server, store_dir, clock, capsys,
                                                                        monkeypatch):
    """Only a lock holder moves a file: with the lock taken elsewhere, status reports the file as corrupt
    and not moved aside (the holder may be writing a good one right now)."""
    auth = login(server, store=FileTokenStore(store_dir), clock=clock)
    path = FileTokenStore(store_dir).path_for(auth.key)
    write_private(path, b"garbage")
    holder = start_lock_holder(store_dir, auth.key)
    monkeypatch.setattr(sys.modules["mcp_sync_auth.cli.main"], "STATUS_LOCK_TIMEOUT", 0.05)
    try:
        assert cli_main(["--store", str(store_dir), "status"]) == EXIT_ERROR
    finally:
        holder.stdin.close()
        holder.wait(30)
    out = capsys.readouterr().out
    assert "corrupt: its tokens are lost, log in again; not moved aside" in out and "could not lock" in out
    assert path.read_bytes() == b"garbage"


def test_status_creates_no_lock_file_for_good_files(tmp_path, server, clock):
    auth = login(server, clock=clock)  # in memory
    store = FileTokenStore(tmp_path / "tokens")
    store.save(auth.store.load(auth.key))  # written without a lock
    assert not list(store.directory.glob("*.lock"))
    done = cli(store.directory, "status")
    assert done.returncode == 0 and "live, generation" in done.stdout
    assert not list(store.directory.glob("*.lock"))


# --- registrations get the same verdicts -------------------------------------------------------


@pytest.fixture
def registration(server, store_dir, clock):
    """The path of the client registration a real login stored."""
    login(server, store=FileTokenStore(store_dir), clock=clock)
    (path,) = store_dir.glob("registration-*.json")
    return path


def test_a_corrupt_registration_is_moved_aside_and_registered_again(server, store_dir, registration, clock):
    os.truncate(registration, MAX_FILE_BYTES + 1)
    done = cli(store_dir, "status")
    assert done.returncode == EXIT_ERROR and "(unknown client registration)" in done.stdout
    assert "moved aside to" in done.stdout and str(registration) in done.stdout
    (moved,) = store_dir.glob(registration.name + ".corrupt-*")
    assert os.path.getsize(moved) == MAX_FILE_BYTES + 1
    os.unlink(FileTokenStore(store_dir).path_for(chain_key_in(store_dir)))
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=auto_consent_handler,
                   clock=clock)
    auth.login()
    assert server.audit.registrations == 2  # the lost registration is simply made again
    assert registration.exists() and os.path.getsize(registration) < MAX_FILE_BYTES


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (rewrite(lambda good: b'{"schema": 99, "registration": {}}'), "upgrade mcp-sync-auth"),
        (group_readable, "chmod 600"),
        (symlinked, "symbolic link"),
    ],
    ids=["newer schema", "mode 0644", "symbolic link"],
)
def test_a_registration_nobody_may_write_over_is_refused_on_every_path(
    server, store_dir, registration, clock, damage, says
):
    damage(registration)
    before = _state(registration)
    status = cli(store_dir, "status")
    assert status.returncode == EXIT_ERROR and says in status.stdout and str(registration) in status.stdout
    # The chain reads, but refreshing it needs its client: the same verdict, not a guess.
    token = cli(store_dir, "token", server.mcp_url)
    assert token.returncode == EXIT_ERROR and says in token.stderr
    os.unlink(FileTokenStore(store_dir).path_for(chain_key_in(store_dir)))
    logins = server.audit.authorization_requests
    auth = MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), authorization_handler=auto_consent_handler,
                   clock=clock)
    with pytest.raises(TokenStoreError, match=says):
        auth.login()
    # Refused before the browser and before registering over it.
    assert server.audit.authorization_requests == logins and server.audit.registrations == 1
    assert _state(registration) == before


def _state(path):
    return path.lstat().st_mode, os.readlink(path) if path.is_symlink() else path.read_bytes()


def chain_key_in(store_dir):
    (record,) = FileTokenStore(store_dir).records()
    return record.key


def test_registration_keys_are_only_trusted_when_they_match_the_file_name(store_dir):
    store = FileTokenStore(store_dir)
    key = RegistrationKey("http://127.0.0.1:1/issuer")
    store.save_registration(key, {"client_id": "c"})
    other = RegistrationKey("http://127.0.0.1:2/issuer")
    write_private(store.path_for(other), store.path_for(key).read_bytes())  # a copy under another name
    (entry,) = store.inventory().unreadable
    assert (entry.location, entry.problem, entry.key) == (str(store.path_for(other)), "corrupt", None)


# --- a store with only today's methods keeps working --------------------------------------------


class TodaysMethodsOnly:
    """A custom store with exactly the methods of the protocol before the inventory existed."""

    def __init__(self, inner):
        self._inner = inner

    @property
    def identity(self):
        return "todays-methods:" + self._inner.identity

    def lock(self, key, timeout):
        return self._inner.lock(key, timeout)

    def try_lock(self, key):
        return self._inner.try_lock(key)

    def load(self, key):
        return self._inner.load(key)

    def save(self, record):
        self._inner.save(record)

    def delete(self, key):
        self._inner.delete(key)

    def records(self):
        return self._inner.records()

    def load_registration(self, key):
        return self._inner.load_registration(key)

    def save_registration(self, key, registration):
        self._inner.save_registration(key, registration)

    def delete_registration(self, key):
        self._inner.delete_registration(key)


def test_a_store_without_an_inventory_logs_in_and_finds_its_chain(server, store_dir, clock):
    store = TodaysMethodsOnly(FileTokenStore(store_dir))
    assert not isinstance(store, InspectableStore)
    auth = login(server, store=store, clock=clock)
    fresh = MCPAuth(server.mcp_url, store=TodaysMethodsOnly(FileTokenStore(store_dir)), interactive=False,
                    clock=clock)
    assert fresh.access_token() == auth.access_token()
    # What records() cannot read it skips, as before: without an inventory there is no verdict to give.
    write_private(FileTokenStore(store_dir).path_for(auth.key), b"garbage")
    again = MCPAuth(server.mcp_url, store=TodaysMethodsOnly(FileTokenStore(store_dir)), interactive=False,
                    clock=clock)
    with pytest.raises(AuthorizationRequired, match="no tokens are stored"):
        again.access_token()
