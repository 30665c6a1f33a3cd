"""The benchmark's pass/fail rule, inside the test-suite: exactly one refresh grant per expiry event.

``python -m bench`` (quick mode, run by CI) measures every contender; here only ours runs, in spawned
processes against StrictAuthServer, as the quick mode does it: N threads x P processes, a shared clock
jumping past the token's lifetime, everybody calling at once after each jump.
"""

import dataclasses

from bench.check import problems_with_ours, quick_check_ours
from bench.contenders import BY_NAME
from bench.scenarios import GrantsCell, grants_cell


def test_quick_check_exactly_one_grant_per_expiry_for_mcp_sync_auth():
    cells, problems = quick_check_ours(threads=(1, 8), processes=(1, 2), expiries=3)
    assert problems == []
    assert [(cell.threads, cell.processes) for cell in cells] == [(1, 1), (8, 1), (1, 2), (8, 2)]
    for cell in cells:
        assert cell.grants_per_expiry == 1.0, cell
        assert cell.refresh_ok == cell.expiries == 3
        assert cell.reuse_detections == 0
        assert cell.chain_alive
        assert cell.calls_ok == cell.threads * cell.processes * (1 + cell.expiries)
        assert cell.calls_failed == 0


def test_the_check_fails_unless_grants_per_expiry_is_one():
    good = GrantsCell("mcp_sync_auth", threads=8, processes=2, expiries=3, grants=3, refresh_ok=3,
                      chain_alive=True, calls_ok=64)
    assert problems_with_ours([good]) == []
    for bad in (
        dataclasses.replace(good, grants=6, refresh_ok=6),  # 2.00 per expiry
        dataclasses.replace(good, grants=2, refresh_ok=2),  # 0.67: an expiry was never refreshed
        dataclasses.replace(good, grants=4, refresh_ok=3),  # 1.33: one grant refused
        dataclasses.replace(good, reuse_detections=1, chain_alive=False),
        dataclasses.replace(good, calls_failed=1, failures={"RefreshChainRevoked": 1}),
        dataclasses.replace(good, errors=["Traceback ...\nBrokenBarrierError"]),
    ):
        assert problems_with_ours([bad]), bad
    # Only our contender is held to the rule; the others are measured, not judged.
    assert problems_with_ours([dataclasses.replace(good, contender="authlib", grants=48, chain_alive=False)]) == []


def test_the_measurement_sees_a_naive_client_refresh_once_per_thread():
    """The same harness counts 8 grants for one expiry when 8 requests-oauthlib sessions refresh on their own,
    and sees the server revoke the chain: the 1.00 above is not an artefact of the harness."""
    cell = grants_cell(BY_NAME["requests-oauthlib"], threads=8, processes=1, expiries=1)
    assert not cell.errors
    assert cell.grants_per_expiry == 8.0
    assert cell.reuse_detections >= 1
    assert not cell.chain_alive
