"""The Redis store on its own, against a real redis-server: what it keeps, how it names keys, the
lease and its guards, the compare-and-set, bad records, a Redis that goes away, and no secret shown."""

import ipaddress
import json
import subprocess
import sys
import time

import pytest

from mcp_sync_auth import (
    ChainKey,
    ConfigurationError,
    CorruptTokenCache,
    LockTimeout,
    RegistrationKey,
    StoreKeyMismatch,
    TokenStoreError,
    UnsealedRecord,
)
from mcp_sync_auth._chain.keys import ChainRecord, LoginKey
from mcp_sync_auth._chain.tokens import TokenSet
from mcp_sync_auth._stores.redis import RedisTokenStore
from mcp_sync_auth._stores.reservation import reserve
from mcp_sync_auth.testing import RedisServer
from mcp_sync_auth.testing.redis_server import _free_port, find_redis_server

from ..helpers import wait_until
from .conftest import KEY


def record(generation, *, key=KEY, access="at", refresh="rt", dead=None):
    tokens = None if dead else TokenSet(access_token=f"{access}-{generation}", refresh_token=f"{refresh}-{generation}",
                                        expires_at=2e9, generation=generation)
    return ChainRecord(key, generation, tokens, token_endpoint="https://as.example/token", dead_reason=dead)


def names(redis_server):
    return sorted(name.decode() for name in redis_server.command("KEYS", "*"))


def test_a_record_round_trips_and_every_key_of_a_chain_shares_one_hash_tag(redis_store, redis_server):
    assert redis_store.load(KEY) is None
    redis_store.save(record(1))
    assert redis_store.load(KEY).tokens.access_token == "at-1"
    with redis_store.lock(KEY, timeout=5):
        reserve(redis_store, record(1), deadline=5).release()
        tag = "{" + KEY.stem + "}"
        assert all(tag in name for name in names(redis_server))
        assert f"mcp-sync-auth:{tag}:lease" in names(redis_server)
    assert names(redis_server) == [f"mcp-sync-auth:{{{KEY.stem}}}:record"]
    redis_store.delete(KEY)
    assert redis_store.load(KEY) is None and names(redis_server) == []


def test_listing_scans_and_finds_every_chain(redis_store, redis_server):
    keys = [ChainKey("https://mcp.example/mcp", "https://as.example", f"client-{n}") for n in range(1203)]
    for key in keys:
        redis_store.save(record(1, key=key))
    redis_store.save_registration(RegistrationKey("https://as.example"), {"client_id": "c"})
    listed = redis_store.records()
    assert sorted(r.key.client_id for r in listed) == sorted(k.client_id for k in keys)
    assert redis_server.command("INFO", "commandstats").decode().count("cmdstat_keys") == 0


def test_a_newer_generation_is_never_overwritten(redis_store):
    redis_store.save(record(3))
    with pytest.raises(TokenStoreError, match="generation 3"):
        redis_store.save(record(2))
    with pytest.raises(TokenStoreError):
        redis_store.save(record(3, access="other"))
    assert redis_store.load(KEY).tokens.access_token == "at-3"


def test_registrations_round_trip(redis_store):
    key = RegistrationKey("https://as.example")
    assert redis_store.load_registration(key) is None
    redis_store.save_registration(key, {"client_id": "abc", "client_secret": "shh"})
    assert redis_store.load_registration(key) == {"client_id": "abc", "client_secret": "shh"}
    redis_store.delete_registration(key)
    assert redis_store.load_registration(key) is None


def test_a_lease_excludes_every_other_store_object_and_times_out_clearly(redis_server):
    first, second = RedisTokenStore.from_url(redis_server.url), RedisTokenStore.from_url(redis_server.url)
    login = LoginKey("https://mcp.example/mcp")
    with first.lock(login, timeout=5):
        assert second.try_lock(login) is None
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"127\.0\.0\.1") as caught, second.lock(login, timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        assert "nothing was sent" in str(caught.value)
    with second.lock(login, timeout=5):
        assert first.try_lock(login) is None


def test_the_watchdog_keeps_a_lease_alive_past_its_length(redis_server):
    store, other = (RedisTokenStore.from_url(redis_server.url, lease=1.0) for _ in range(2))
    with store.lock(KEY, timeout=5):
        end = time.monotonic() + 2.5  # two and a half lease lengths: the scenario, not a synchronisation
        while time.monotonic() < end:
            assert other.try_lock(KEY) is None
            time.sleep(0.05)
    assert other.try_lock(KEY) is not None


def test_a_lease_that_ran_out_lets_no_grant_be_sent(redis_store, redis_server):
    redis_store.save(record(1))
    with redis_store.lock(KEY, timeout=5):
        redis_server.command("DEL", f"mcp-sync-auth:{{{KEY.stem}}}:lease")  # as if it had expired
        with pytest.raises(LockTimeout, match="no refresh was sent"):
            reserve(redis_store, record(1), deadline=5)
    assert names(redis_server) == [f"mcp-sync-auth:{{{KEY.stem}}}:record"]  # no in-flight mark


def test_a_grant_in_flight_keeps_other_processes_off_the_chain_until_its_deadline(redis_server):
    holder = RedisTokenStore.from_url(redis_server.url)
    holder.save(record(1))
    lock = holder.try_lock(KEY)
    with lock:
        room = reserve(holder, record(1), deadline=3.0)
    # The lease is given back, but the grant may still be answered: another process must wait.
    script = holder._scripts["ACQUIRE"]
    inflight = [f"mcp-sync-auth:{{{KEY.stem}}}:lease", f"mcp-sync-auth:{{{KEY.stem}}}:inflight"]
    assert script(keys=inflight, args=["someone-else", 30000, "another-process"]) == -1
    mark = {k.decode(): v.decode() for k, v in zip(*[iter(redis_server.command("HGETALL", inflight[1]))] * 2)}
    assert mark["generation"] == "1"
    # ... and after it, it may go (window 2, if the answer was lost).
    wait_until(lambda: script(keys=inflight, args=["someone-else", 30000, "another-process"]) == 1, timeout=10)
    room.release()


def test_a_holder_that_lost_its_lease_still_commits_if_nobody_moved_the_chain(redis_server):
    store = RedisTokenStore.from_url(redis_server.url)
    store.save(record(1))
    with store.lock(KEY, timeout=5):
        room = reserve(store, record(1), deadline=5)
        redis_server.command("DEL", f"mcp-sync-auth:{{{KEY.stem}}}:lease")
        room.commit(record(2))
        room.release()
    assert store.load(KEY).generation == 2


def test_a_stale_commit_is_refused_and_the_newer_set_kept(redis_server):
    store = RedisTokenStore.from_url(redis_server.url)
    store.save(record(1))
    with store.lock(KEY, timeout=5):
        room = reserve(store, record(1), deadline=5)
        store.save(record(2, access="sibling"))  # somebody else's rotation got there first
        with pytest.raises(TokenStoreError):
            room.commit(record(2))
        room.release()
    assert store.load(KEY).tokens.access_token == "sibling-2"


def test_dead_records_expire_and_live_ones_never_do(redis_store, redis_server):
    name = f"mcp-sync-auth:{{{KEY.stem}}}:record"
    redis_store.save(record(1))
    assert redis_server.command("PTTL", name) == -1
    redis_store.save(record(2, dead="refresh refused"))
    assert 86_000_000 < redis_server.command("PTTL", name) <= 86_400_000
    redis_store.save(record(3))
    assert redis_server.command("PTTL", name) == -1


BAD_DOCUMENTS = [b"garbage", b"[]", b'{"schema": 1}', b"\xff\xfe", json.dumps({"schema": 1, "x": 1}).encode()]


@pytest.mark.parametrize("doc", BAD_DOCUMENTS)
def test_a_corrupt_record_is_an_error_and_its_holder_moves_it_aside(redis_store, redis_server, doc):
    name = f"mcp-sync-auth:{{{KEY.stem}}}:record"
    redis_server.command("HSET", name, "generation", "4", "doc", doc)
    with pytest.raises(CorruptTokenCache) as unlocked:
        redis_store.load(KEY)
    assert unlocked.value.quarantined_to is None and redis_server.command("EXISTS", name) == 1
    with redis_store.lock(KEY, timeout=5), pytest.raises(CorruptTokenCache) as locked:
        redis_store.load(KEY)
    assert locked.value.quarantined_to.startswith(name + ":corrupt:")
    assert redis_server.command("EXISTS", name) == 0 and redis_store.load(KEY) is None


def test_a_record_from_a_newer_version_is_left_alone_with_advice_to_upgrade(redis_store, redis_server):
    name = f"mcp-sync-auth:{{{KEY.stem}}}:record"
    redis_server.command("HSET", name, "generation", "4", "doc", json.dumps({"schema": 99}))
    with redis_store.lock(KEY, timeout=5), pytest.raises(TokenStoreError, match="upgrade"):
        redis_store.load(KEY)
    assert redis_server.command("EXISTS", name) == 1


def test_a_redis_that_went_away_gives_our_error_naming_the_host_and_never_the_password(secret_redis):
    store = RedisTokenStore.from_url(secret_redis.url, socket_timeout=2, socket_connect_timeout=2)
    store.save(record(1))
    assert "s3cret-redis-pw" not in repr(store) + store.location + store.identity
    secret_redis.kill()
    for attempt in (lambda: store.load(KEY), lambda: store.try_lock(KEY), lambda: store.save(record(2)),
                    store.records, lambda: store.lock(KEY, timeout=1).__enter__()):
        with pytest.raises(TokenStoreError) as caught:
            attempt()
        message = str(caught.value)
        assert f"127.0.0.1:{secret_redis.port}" in message and "s3cret-redis-pw" not in message
    secret_redis.restart()
    assert store.load(KEY).generation == 1  # the append-only file kept it


def test_a_wrong_password_is_our_error_without_the_password(secret_redis):
    wrong = secret_redis.url.replace("s3cret-redis-pw", "wrong-pw-123")
    store = RedisTokenStore.from_url(wrong)
    with pytest.raises(TokenStoreError) as caught:
        store.load(KEY)
    assert "wrong-pw-123" not in str(caught.value) and "s3cret" not in str(caught.value)


def test_bad_arguments_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        RedisTokenStore.from_url("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError):
        RedisTokenStore.from_url("redis://127.0.0.1:1/0", prefix="a*b")
    with pytest.raises(ConfigurationError):
        RedisTokenStore.from_url("redis://127.0.0.1:1/0", lease=0.1)


def test_without_redis_py_the_library_imports_and_the_store_names_the_extra():
    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import mcp_sync_auth\n"
        "from mcp_sync_auth._stores.redis import RedisTokenStore\n"
        "try:\n"
        "    RedisTokenStore.from_url('redis://127.0.0.1:1/0')\n"
        "except mcp_sync_auth.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'mcp-sync-auth[redis]'" in out.stdout


KEY_TEXT = "0" * 63 + "1"
OTHER_KEY = "f" * 64


def test_encrypted_records_show_no_token_and_round_trip(redis_server):
    store = RedisTokenStore.from_url(redis_server.url, encryption_key=KEY_TEXT)
    store.save(record(1, access="visible-access", refresh="visible-refresh"))
    store.save_registration(RegistrationKey("https://as.example"), {"client_secret": "visible-secret"})
    stored = names(redis_server)
    raw = [redis_server.command("HGET", n, "doc") for n in stored if n.endswith(":record")]
    raw += [redis_server.command("GET", n) for n in stored if n.endswith(":registration")]
    assert len(raw) == 2 and all(b"visible" not in value for value in raw)
    assert store.load(KEY).tokens.refresh_token == "visible-refresh-1"
    assert store.load_registration(RegistrationKey("https://as.example")) == {"client_secret": "visible-secret"}
    assert "encrypted" in store.location and KEY_TEXT not in repr(store)


def test_a_wrong_key_is_a_clear_error_and_destroys_nothing(redis_server):
    RedisTokenStore.from_url(redis_server.url, encryption_key=KEY_TEXT).save(record(1))
    before = redis_server.command("HGET", f"mcp-sync-auth:{{{KEY.stem}}}:record", "doc")
    for wrong in (RedisTokenStore.from_url(redis_server.url, encryption_key=OTHER_KEY),
                  RedisTokenStore.from_url(redis_server.url)):  # no key at all
        with wrong.lock(KEY, timeout=5), pytest.raises(StoreKeyMismatch) as caught:
            wrong.load(KEY)  # even under the lease, where a corrupt record would be moved aside
        assert KEY_TEXT not in str(caught.value) and OTHER_KEY not in str(caught.value)
        with pytest.raises(StoreKeyMismatch):
            wrong.records()  # a listing says so too, instead of showing an empty store
    assert redis_server.command("HGET", f"mcp-sync-auth:{{{KEY.stem}}}:record", "doc") == before
    assert RedisTokenStore.from_url(redis_server.url, encryption_key=KEY_TEXT).load(KEY).generation == 1


def test_a_plain_store_is_encrypted_record_by_record_once_a_key_is_set(redis_server, monkeypatch):
    RedisTokenStore.from_url(redis_server.url).save(record(1))
    monkeypatch.setenv("MCP_SYNC_AUTH_STORE_KEY", KEY_TEXT)
    with pytest.raises(UnsealedRecord):
        RedisTokenStore.from_url(redis_server.url).load(KEY)
    migrating = RedisTokenStore.from_url(redis_server.url, allow_plaintext=True)
    assert migrating.load(KEY).generation == 1
    migrating.save(record(2))
    assert redis_server.command("HGET", f"mcp-sync-auth:{{{KEY.stem}}}:record", "doc").startswith(b"sealed:")
    assert RedisTokenStore.from_url(redis_server.url).load(KEY).generation == 2


RESTRICTED_USER = [
    "mcp", "on", ">user-pw-1", "resetchannels", "~mcp-sync-auth:*", "&mcp-sync-auth:{*}:changed",
    "-@all", "+@read", "+@write", "+@scripting", "+@pubsub", "+ping", "+time",
]


def test_the_readmes_acl_user_can_do_everything_the_store_does(redis_server):
    redis_server.command("ACL", "SETUSER", *RESTRICTED_USER)
    store = RedisTokenStore.from_url(f"redis://mcp:user-pw-1@127.0.0.1:{redis_server.port}/0")
    store.save(record(1))
    seen = store.changes(KEY)  # starts the change feed
    wait_until(lambda: redis_server.command("PUBSUB", "NUMPAT") == 1, what="the feed's subscription")
    with store.lock(KEY, timeout=5):
        room = reserve(store, record(1), deadline=5)
        room.commit(record(2))
        room.release()
    wait_until(lambda: store.wait_for_change(KEY, seen, 0.25) != seen, what="the commit's message")
    store.save_registration(RegistrationKey("https://as.example"), {"client_id": "c"})
    assert [r.generation for r in store.records()] == [2]
    store.delete(KEY)
    assert redis_server.command("ACL", "LOG", "10") == []  # nothing was refused


def test_a_unix_socket_url(tmp_path, redis_server):  # the fixture: skipped without a binary, failed under CI
    binary = find_redis_server()
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(socket_path.exists, what="redis-server's socket")
        store = RedisTokenStore.from_url(f"unix://{socket_path}?db=0")
        wait_until(lambda: _answers(store), what="redis-server to answer")
        store.save(record(1))
        assert store.load(KEY).generation == 1
        assert store.location.startswith(f"unix://{socket_path}")
    finally:
        server.kill()
        server.wait(30)


def _answers(store):
    try:
        store.load(KEY)
    except TokenStoreError:
        return False
    return True


def _self_signed(folder):
    """A certificate for 127.0.0.1 and its key, as PEM files (cryptography is in the test extra)."""
    import datetime  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_path, key_path


def test_a_rediss_url_speaks_tls_and_refuses_a_server_it_cannot_verify(tmp_path, redis_server):
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    server = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", "tls-pw-9", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        store = RedisTokenStore.from_url(f"rediss://:tls-pw-9@127.0.0.1:{port}/0", ssl_ca_certs=str(cert))
        wait_until(lambda: _answers(store), what="redis-server to answer over TLS")
        store.save(record(1))
        assert store.load(KEY).generation == 1
        assert store.location.startswith(f"rediss://127.0.0.1:{port}/0")
        untrusting = RedisTokenStore.from_url(f"rediss://:tls-pw-9@127.0.0.1:{port}/0")  # system CAs only
        with pytest.raises(TokenStoreError) as caught:
            untrusting.load(KEY)
        assert "tls-pw-9" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)
    finally:
        server.kill()
        server.wait(30)


def test_wait_for_replicas_waits_on_the_writes_own_connection_and_says_when_a_replica_lags(redis_server, caplog):
    replica = RedisServer().start()
    try:
        replica.command("REPLICAOF", "127.0.0.1", str(redis_server.port))
        wait_until(lambda: b"master_link_status:up" in replica.command("INFO", "replication"), what="the replica")
        store = RedisTokenStore.from_url(redis_server.url, wait_for_replicas=1, replica_timeout=5.0)
        store.save(record(1))
        name = f"mcp-sync-auth:{{{KEY.stem}}}:record"
        assert replica.command("HGET", name, "generation") == b"1"  # WAIT returned: the replica has it
        assert "replicas" not in caplog.text
        replica.kill()
        lagging = RedisTokenStore.from_url(redis_server.url, wait_for_replicas=1, replica_timeout=0.2)
        lagging.save(record(2))
        assert "reached 0 of 1 replicas" in caplog.text
        assert lagging.load(KEY).generation == 2  # written on the primary all the same
    finally:
        replica.close()
