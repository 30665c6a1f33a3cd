"""`mcp-sync-auth demo --hosts N`: the fleet case, run as a user runs it (a real CLI subprocess)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_sync_auth.cli.main import build_parser, main
from mcp_sync_auth.demo import fleet_from_arguments
from mcp_sync_auth.demo.protocol import OURS
from mcp_sync_auth.testing.redis_server import find_redis_server

from .cli.shell import assert_no_traceback
from .test_demo import result_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def needs_redis_server():
    if find_redis_server() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and no redis-server on PATH for the fleet demo")
        pytest.skip("no redis-server on PATH")


def run_cli(tmp_path, *args, environment=None, timeout=120):
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp), **(environment or {})}
    for name in ("MCP_SYNC_AUTH_STORE", "MCP_SYNC_AUTH_HOME", "OAUTHLIB_INSECURE_TRANSPORT"):
        env.pop(name, None)  # the demo sets up every host's environment itself
    done = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert_no_traceback(done.stdout, done.stderr)
    return done


def check_fleet_result(done, hosts):
    assert done.returncode == 0, done.stdout + done.stderr
    result = result_of(done.stdout)
    options = result["options"]
    assert options["hosts"] == hosts
    cycles, per_cycle = options["cycles"], hosts * options["processes"] * options["threads"] * options["calls"]
    naive, ours = result["naive"], result[OURS]

    # The token file copied to every host: one expiry, every host refreshes with the same refresh token,
    # the server sees it come back and revokes the chain.
    assert naive["expiries"] == 1
    assert naive["grants_per_expiry"][0] >= hosts
    assert naive["reuse_detections"] >= 1
    assert naive["chain_alive"] is False
    assert naive["calls"] == per_cycle and naive["calls_failed"] > 0

    # The same hosts through Redis: exactly one grant per expiry, fleet-wide; no reuse; every call OK.
    assert result["clean"] is True
    assert ours["expiries"] == cycles
    # One grant per expiry; a cycle stretched past the fresh time by a loaded machine may need a
    # second, never one while the token before it was still fresh (what early_refreshes counts).
    assert len(ours["grants_per_expiry"]) == cycles and all(g >= 1 for g in ours["grants_per_expiry"])
    assert ours["early_refreshes"] == 0
    assert ours["refresh_grants"] == sum(ours["grants_per_expiry"]) and ours["refresh_failed"] == 0
    assert ours["reuse_per_expiry"] == [0] * cycles and ours["reuse_detections"] == 0
    assert ours["calls"] == cycles * per_cycle
    assert ours["calls_ok"] == ours["calls"] and ours["calls_failed"] == 0
    assert ours["chain_alive"] is True

    # What a person reads.
    assert "1. naive: the token file copied to every host" in done.stdout
    assert "2. mcp_sync_auth: the same hosts, MCP_SYNC_AUTH_STORE=redis://" in done.stdout
    for cycle in range(1, cycles + 1):
        assert f"expiry {cycle}/{cycles}:" in done.stdout
    assert "chain REVOKED" in done.stdout
    for label in ("grants per expiry", "reuse detections", "calls OK", "calls failed", "chain alive"):
        assert label in done.stdout
    assert " ".join(["1"] * cycles) in done.stdout  # our grants per expiry, in the table
    return result


def test_the_fleet_demo_with_3_hosts_and_its_own_redis_server(tmp_path, needs_redis_server):
    done = run_cli(tmp_path, "-m", "mcp_sync_auth.cli", "demo", "--hosts", "3")
    result = check_fleet_result(done, hosts=3)
    assert result["options"]["redis"] == "own"
    assert "redis: started redis-server on 127.0.0.1:" in done.stdout
    assert list((tmp_path / "tmp").iterdir()) == []  # the hosts' folders and the server's are gone
    print(f"\n  demo --hosts 3: {result['seconds']:.1f} s")  # measured, not asserted: it depends on the machine


def test_the_fleet_demo_on_a_redis_given_with_store(tmp_path, redis_server):
    done = run_cli(
        tmp_path, "-m", "mcp_sync_auth.cli", "demo", "--hosts", "2", "--cycles", "2", "--store", redis_server.url
    )
    result = check_fleet_result(done, hosts=2)
    assert result["options"]["redis"] == "given"
    assert "started redis-server" not in done.stdout
    assert f"redis: using the one --store names, redis://127.0.0.1:{redis_server.port}/0" in done.stdout
    assert redis_server.command("DBSIZE") == 0  # the demo's chain and client registration are deleted


def test_a_store_that_does_not_answer_is_one_line_and_never_shows_its_password(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:hunter2-demo@127.0.0.1:{port}/0"
    done = run_cli(tmp_path, "-m", "mcp_sync_auth.cli", "demo", "--hosts", "2", "--store", url, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("mcp-sync-auth: demo: cannot use that Redis:"), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "hunter2" not in done.stdout + done.stderr
    assert "1. naive" not in done.stdout  # checked before anything ran


def test_without_redis_py_it_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['redis'] = None\n"  # what `import redis` does where redis-py is not installed
        "from mcp_sync_auth.cli.main import main\n"
        "sys.exit(main(['demo', '--hosts', '3']))\n"
    )
    done = run_cli(tmp_path, "-c", code, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "mcp-sync-auth: the Redis token store needs the 'redis' package (redis-py): pip install 'mcp-sync-auth[redis]'"
    )


def test_without_redis_server_it_says_what_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run_cli(tmp_path, "-m", "mcp_sync_auth.cli", "demo", "--hosts", "3", environment={"PATH": str(empty)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for words in ("redis-server", "apt-get install redis-server", "brew install redis", "--store redis://"):
        assert words in lines[0]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--hosts", "1"], "must be at least 2"),
        (["--hosts", "x"], "is not a number"),
        (["--hosts", "2", "--store", "/a/folder"], "takes a Redis URL"),
        (["--hosts", "2", "--store", "memory:"], "takes a Redis URL"),
    ],
)
def test_bad_fleet_options_are_usage_errors(arguments, said, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *arguments])
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err


def test_store_without_hosts_is_a_usage_error(capsys):
    assert main(["demo", "--store", "redis://:pw@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert "add --hosts N" in err and "pw@" not in err


def test_without_hosts_the_demo_is_todays():
    assert fleet_from_arguments(build_parser().parse_args(["demo"])) is None
    # A --store before the command is the other commands' option: the default demo never used it.
    assert fleet_from_arguments(build_parser().parse_args(["--store", "/x", "demo"])) is None
