"""The fleet's promise: one refresh grant per expiry across 3 hosts x 4 processes x 16 threads.

Each host has its own HOME and caches (no shared files) and reaches Redis only through its own
link; its processes pick the store from $MCP_SYNC_AUTH_STORE, as a deployed fleet would.
"""

from collections import Counter

import pytest

from ..workers import expire_or_revoke, make_auth
from .driver import drive_fleet


@pytest.mark.parametrize("path", ["expiry", "revoked-early"])
def test_3_hosts_4_processes_16_threads_10_cycles_exactly_one_grant_each(
    spawn, server, redis_server, fleet, clock, path
):
    client_id = server.register_client()
    config = dict(mcp_url=server.mcp_url, token_endpoint=server.token_endpoint, client_id=client_id,
                  threads=16, cycles=10)
    # The login happened once, somewhere in the fleet.
    make_auth(dict(config, redis_url=redis_server.url), clock).save_token(server.mint_tokens(client_id))

    totals = drive_fleet(spawn, fleet, clock, config, per_host=4, between_cycles=expire_or_revoke(path, server, clock))
    assert totals == Counter(ok=3 * 4 * 16 * 10)
    audit = server.audit
    assert audit.grants["refresh_token"] == 10 and audit.refresh_ok == 10
    assert audit.reuse_detections == 0 and audit.revocations == 0
    for host in fleet:  # every host went through its own link, and kept no token file
        assert host.forwarder.connections_accepted > 0
        assert not any(path.is_file() for path in host.root.rglob("*.json"))
