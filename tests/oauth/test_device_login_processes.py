"""Two processes start a device login for one server at once: one device authorization, one chain."""

from mcp_sync_auth import FileTokenStore
from mcp_sync_auth.testing import StrictAuthServer

from ..device_workers import device_login


def test_two_processes_at_once_run_one_device_authorization(clock, store_dir, spawn):
    # A 1 s interval: the workers wait with the real time.sleep (their clock is the wall clock).
    with StrictAuthServer(clock=clock, device_authorization=True, device_interval=1) as server:
        barrier = spawn.Barrier(2)
        results = spawn.Queue()
        workers = [
            spawn.Process(target=device_login, args=(server.mcp_url, str(store_dir), barrier, results))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        # The person approves the one code shown; the other process waits for the login lock meanwhile.
        pending = server.wait_for_device_code(timeout=60)
        server.approve_device(pending.user_code)
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(30)
            assert worker.exitcode == 0
        assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
        assert outcomes[0][1] == outcomes[1][1]  # the second adopted the stored chain
        device = server.audit.device
        assert device.requests == 1 and device.authorizations_issued == 1 and device.tokens_issued == 1
        assert server.audit.registrations == 1
        assert len(server.chains()) == 1
        assert len(FileTokenStore(store_dir).records()) == 1
