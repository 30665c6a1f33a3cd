"""Machine identities from a shell: `token` with a private key (client credentials over
private_key_jwt) or a workload token file (the JWT bearer grant), and their errors without
tracebacks. Eight shells at once still make one grant."""

from mcp_sync_auth.testing import JWT_BEARER_GRANT, WorkloadIssuer

from ..machine.keys import make_key, private_pem, public_pem
from .shell import finish, run
from .shell import start as cli


def test_token_with_a_private_key_from_eight_shells_makes_one_grant(server, store_dir, tmp_path):
    key = make_key("ec")
    client_id = server.register_client(token_endpoint_auth_method="private_key_jwt", public_key=public_pem(key))
    pem = tmp_path / "key.pem"
    pem.write_text(private_pem(key))
    args = ["token", server.mcp_url, "--client-id", client_id, "--grant-type", "client_credentials",
            "--private-key", str(pem)]
    shells = [cli(store_dir, *args) for _ in range(8)]
    results = [finish(shell) for shell in shells]
    assert [code for code, _, _ in results] == [0] * 8, results[0][2]
    assert len({out.strip() for _, out, _ in results}) == 1  # one token for all
    audit = server.audit
    assert audit.grants == {"client_credentials": 1} and audit.assertion_replays == 0


def test_token_with_a_workload_token_file(server, store_dir, tmp_path, clock):
    issuer = WorkloadIssuer(clock=clock)
    server.trust_workload_issuer(issuer)
    token = tmp_path / "token"
    token.write_text(issuer.mint("runner", audience=server.token_endpoint))
    code, out, err = run(store_dir, "token", server.mcp_url, "--grant-type", "jwt_bearer",
                         "--workload-token-file", str(token))
    assert code == 0, err
    assert server.token_marker in out and server.audit.grants == {JWT_BEARER_GRANT: 1}


def test_machine_identity_errors_are_one_line_each(server, store_dir, tmp_path):
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    code, out, err = run(store_dir, "token", server.mcp_url, "--client-id", "c", "--grant-type",
                         "client_credentials", "--private-key", str(bad_key))
    assert code != 0 and out == "" and "is not a PEM private key" in err
    code, out, err = run(store_dir, "token", server.mcp_url, "--grant-type", "jwt_bearer",
                         "--workload-token-file", str(tmp_path / "missing"))
    assert code != 0 and out == "" and "cannot read the workload token in" in err
    assert server.audit.token_requests == 0
