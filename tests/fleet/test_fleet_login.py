"""First use across a fleet: one dynamic registration per issuer and one login per chain, for every
host and process at once (the registration and the login lock live in Redis too)."""

from collections import Counter

from .driver import start_on
from .fault_workers import log_in_and_call


def test_six_processes_on_three_hosts_register_once_and_log_in_once(spawn, server, fleet):
    barrier = spawn.Barrier(6)
    results = spawn.Queue()
    workers = [start_on(host, spawn, log_in_and_call, (server.mcp_url, barrier, results)) for host in fleet
               for _ in range(2)]
    outcomes = Counter(results.get(timeout=180) for _ in workers)
    for worker in workers:
        worker.join(30)
    assert outcomes == Counter(ok=6)
    audit = server.audit
    assert audit.registrations == 1 and audit.authorization_requests == 1
    assert audit.grants["authorization_code"] == 1
