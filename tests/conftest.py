import multiprocessing

import pytest
import requests

from mcp_sync_auth import FileTokenStore, MCPAuth
from mcp_sync_auth._util import logs
from mcp_sync_auth.testing import StrictAuthServer

from .clocks import ManualClock, SharedClock

TTL = 300.0


@pytest.fixture
def clock():
    return SharedClock()


@pytest.fixture(autouse=True)
def warning_clock(monkeypatch):
    """Each test starts with no warning held back, on a clock of its own (still, unless moved)."""
    moved = ManualClock()
    monkeypatch.setattr(logs, "default_limiter", logs.WarningLimiter(clock=moved))
    return moved


@pytest.fixture(autouse=True)
def no_store_variable(monkeypatch):
    """A $MCP_SYNC_AUTH_STORE of the machine's would pick every test's default store (and every
    subprocess's): the tests that want one set it themselves."""
    monkeypatch.delenv("MCP_SYNC_AUTH_STORE", raising=False)


@pytest.fixture
def server(clock):
    with StrictAuthServer(access_token_ttl=TTL, clock=clock, token_marker="SECRETMARK") as strict:
        yield strict


@pytest.fixture
def client_id(server):
    return server.register_client()


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "tokens"


@pytest.fixture
def make_auth(server, client_id, store_dir, clock):
    def make(**overrides):
        options = dict(
            store=FileTokenStore(store_dir),
            client_id=client_id,
            token_endpoint=server.token_endpoint,
            clock=clock,
            interactive=False,
        )
        options.update(overrides)
        return MCPAuth(server.mcp_url, **options)

    return make


@pytest.fixture
def auth(make_auth, server, client_id):
    auth = make_auth()
    auth.save_token(server.mint_tokens(client_id))
    return auth


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def spawn():
    yield multiprocessing.get_context("spawn")
    # A worker left running by a failed test would make pytest's exit wait for it forever.
    for child in multiprocessing.active_children():
        child.kill()
        child.join(10)


# System tests: whole runs that wait out real deadlines (chaos runs, fleet fault scenarios, the fleet
# demo), and the larger variants of the machine-identity and DPoP counting matrices (the files and
# expiry variant of each runs everywhere). What they exercise does not depend on the Python version,
# so tox runs them on 3.13 only and leaves them out on 3.9 to 3.12 (tox.ini): CI keeps to its time.
SYSTEM_TESTS = (
    "tests/refresh/test_chaos_short.py",
    "tests/fleet/test_chaos_redis_short.py",
    "tests/fleet/test_fleet_faults.py",
    "tests/test_demo_fleet.py",
    "tests/machine/test_dpop_chains.py::test_4_processes_64_threads_10_expiries_one_grant_each[redis-",
    "tests/machine/test_dpop_chains.py::test_4_processes_64_threads_10_expiries_one_grant_each[files-revoked-early]",
    "tests/machine/test_machine_grants_coalesce.py::test_4_processes_16_threads_10_cycles_one_grant_each[redis-",
    # Real services of the machine rather than of Python (a keychain on D-Bus, Chromium, a proxy),
    # and the runs over thousands of chains: the same on every version.
    "tests/keyring_store/",
    "tests/browser/",
    "tests/net/",
    "tests/refresh/test_chain_memory.py::test_100000_chains",
    "tests/stores/test_many_chains.py",
    "tests/test_bench_stall.py",
    "tests/test_bench_scale.py",
    "tests/test_bench_waits.py",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.startswith(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)
