"""Workload identity: the JWT bearer grant (RFC 7523 §2.1) with the workload's own token, against
the strict server, which checks each token's signature, audience, expiry and that no jti comes
twice. The token is read again for every grant (projected tokens rotate on disk); a bad one is our
error before anything is sent, and a refused one is the answer: no retry, no other grant."""

from collections import Counter

import pytest

from mcp_sync_auth import FileTokenStore, MCPAuth, TokenEndpointError, WorkloadTokenError
from mcp_sync_auth.testing import JWT_BEARER_GRANT, REMOVE, WorkloadIssuer

from ..conftest import TTL
from ..refresh.test_refresh_concurrency import drive_processes
from ..workers import echo_call


@pytest.fixture
def issuer(server, clock):
    workload = WorkloadIssuer("https://kubernetes.default.svc", clock=clock)
    server.trust_workload_issuer(workload)
    return workload


@pytest.fixture
def token_file(tmp_path):
    return tmp_path / "token"


def _mint(issuer, server, **options):
    return issuer.mint("system:serviceaccount:tools:runner", audience=server.token_endpoint, **options)


def _workload_auth(server, store_dir, clock, **source):
    return MCPAuth(server.mcp_url, store=FileTokenStore(store_dir), grant_type="jwt_bearer", clock=clock, **source)


def test_a_rotated_token_file_is_read_again_for_each_grant(server, issuer, token_file, store_dir, clock, http):
    token_file.write_text(_mint(issuer, server) + "\n")
    auth = _workload_auth(server, store_dir, clock, workload_token_file=str(token_file))
    assert echo_call(http, server.mcp_url, auth) == "ok"
    clock.advance(TTL + 1)
    token_file.write_text(_mint(issuer, server))  # the kubelet rotated it; the first one is spent
    assert echo_call(http, server.mcp_url, auth) == "ok"
    audit = server.audit
    assert audit.grants_ok == {JWT_BEARER_GRANT: 2} and audit.assertion_replays == 0


def test_a_token_from_a_variable_or_a_callable(server, issuer, store_dir, clock, http, monkeypatch):
    monkeypatch.setenv("TOOLS_WORKLOAD_TOKEN", _mint(issuer, server))
    auth = _workload_auth(server, store_dir / "a", clock, workload_token_env="TOOLS_WORKLOAD_TOKEN")
    assert echo_call(http, server.mcp_url, auth) == "ok"
    asked = []

    def provider(audience):
        asked.append(audience)
        return _mint(issuer, server)

    auth = _workload_auth(server, store_dir / "b", clock, workload_token_provider=provider)
    assert echo_call(http, server.mcp_url, auth) == "ok"
    assert asked == [server.token_endpoint]
    assert server.audit.grants_ok == {JWT_BEARER_GRANT: 2}


@pytest.mark.parametrize(("token", "said"), [
    ("expired", "expired 60 s ago"),
    ("not-a-jwt", "is not a JWT"),
    ("no-exp", "has no expiry"),
    ("missing", "cannot read the workload token in"),
    ("empty", "is not a JWT"),
])
def test_a_token_that_cannot_work_is_our_error_and_nothing_is_sent(
    server, issuer, token_file, store_dir, clock, token, said
):
    if token == "expired":
        token_file.write_text(_mint(issuer, server, lifetime=60, now=clock() - 120))
    elif token == "no-exp":
        token_file.write_text(_mint(issuer, server, extra_claims={"exp": REMOVE}))
    elif token == "not-a-jwt":
        token_file.write_text("SECRETMARK-opaque-token")
    elif token == "empty":
        token_file.write_text("")
    auth = _workload_auth(server, store_dir, clock, workload_token_file=str(token_file))
    with pytest.raises(WorkloadTokenError, match=said) as caught:
        auth.access_token()
    assert "SECRETMARK" not in str(caught.value) and "eyJ" not in str(caught.value)
    assert server.audit.token_requests == 0


@pytest.mark.parametrize("fault", ["wrong-audience", "unknown-issuer"])
def test_a_refused_token_is_the_answer_no_retry_no_other_grant(server, issuer, token_file, store_dir, clock, fault):
    if fault == "wrong-audience":
        token_file.write_text(issuer.mint("runner", audience="https://elsewhere.example"))
    else:
        token_file.write_text(WorkloadIssuer("https://untrusted.example", clock=clock).mint(
            "runner", audience=server.token_endpoint))
    auth = _workload_auth(server, store_dir, clock, workload_token_file=str(token_file))
    for _ in range(2):
        with pytest.raises(TokenEndpointError, match=r"invalid_grant.*was refused: check that its audience") as caught:
            auth.access_token()
        assert "eyJ" not in str(caught.value)
    audit = server.audit
    assert audit.token_requests == 2 and audit.grants == {JWT_BEARER_GRANT: 2}  # one per call, nothing else


def test_a_cold_start_of_4_processes_64_threads_makes_one_grant(spawn, server, issuer, token_file, store_dir, clock):
    token_file.write_text(_mint(issuer, server))
    config = dict(
        mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=None, store_dir=str(store_dir),
        client_auth={"grant_type": "jwt_bearer", "workload_token_file": str(token_file)}, threads=64, cycles=3,
    )
    steps = iter([lambda: None] + [lambda: (clock.advance(TTL + 1), token_file.write_text(_mint(issuer, server)))] * 2)

    def between_cycles():
        next(steps)()

    totals = drive_processes(spawn, server, clock, config, processes=4, between_cycles=between_cycles)
    assert totals == Counter(ok=4 * 64 * 3)
    audit = server.audit
    assert audit.grants == {JWT_BEARER_GRANT: 3}  # the cold start, then one per expiry
    assert audit.assertion_replays == 0
