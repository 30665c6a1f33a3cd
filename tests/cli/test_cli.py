from mcp_sync_auth.cli.main import main

from .shell import run


def test_status_lists_chains_without_secrets(auth, server, store_dir, capsys):
    assert main(["--store", str(store_dir), "status"]) == 0
    out = capsys.readouterr().out
    assert server.mcp_url in out and auth.key.client_id in out and "live, generation 1" in out
    assert server.token_marker not in out


def test_status_of_an_empty_store(tmp_path, capsys):
    assert main(["--store", str(tmp_path / "none"), "status"]) == 0
    assert "no chains stored" in capsys.readouterr().out


def test_logout_removes_the_chain(auth, server, store_dir, capsys):
    assert main(["--store", str(store_dir), "logout", server.mcp_url]) == 0
    assert "only the local copy was removed" in capsys.readouterr().out  # a client configured without an issuer
    assert auth.store.load(auth.key) is None


def test_the_console_entry_point_runs(tmp_path):
    code, _, err = run(tmp_path / "s", "status")
    assert code == 0, err
