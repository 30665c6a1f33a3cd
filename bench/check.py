"""The pass/fail rule of the quick mode (what CI runs): our contender keeps exactly one refresh grant per
expiry, never triggers reuse detection, and its chain stays alive."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from .contenders import BY_NAME
from .fleet import FleetCell, FleetResult
from .scenarios import GrantsCell, StallResult, ThroughputResult, grants_cell


def problems_with_ours(
    cells: Sequence[GrantsCell],
    stall: Optional[StallResult] = None,
    throughput: Optional[ThroughputResult] = None,
    fleet: Optional[FleetResult] = None,
) -> list[str]:
    problems = []
    for cell in cells:
        if cell.contender != "mcp_sync_auth":
            continue
        problems += _cell_problems(f"mcp_sync_auth N={cell.threads} P={cell.processes}", cell)
    if stall is not None:
        where = f"stall run N={stall.threads} P={stall.processes}"
        if stall.errors:
            problems.append(f"{where}: the run failed: {stall.errors[0].strip().splitlines()[-1]}")
        elif stall.grants != stall.expiries or stall.reuse_detections or not stall.chain_alive or stall.calls_failed:
            problems.append(
                f"{where}: {stall.grants} grants for {stall.expiries} expiries, {stall.reuse_detections} reuse "
                f"detections, chain alive: {stall.chain_alive}, {stall.calls_failed} calls failed"
            )
    if throughput is not None:
        for run in throughput.expiring + throughput.never:
            where = f"throughput run (token lifetime {run.lifetime:g} s)"
            if run.errors:
                problems.append(f"{where}: the run failed: {run.errors[0].strip().splitlines()[-1]}")
            elif run.reuse_detections or not run.chain_alive or run.calls_failed:
                problems.append(
                    f"{where}: {run.reuse_detections} reuse detections, chain alive: {run.chain_alive}, "
                    f"{run.calls_failed} calls failed"
                )
    if fleet is not None:
        for one in fleet.cells:  # over Redis across hosts, and over files beside it: the same rule
            problems += _cell_problems(one.where, one)
    return problems


def _cell_problems(where: str, cell: Union[GrantsCell, FleetCell]) -> list[str]:
    """One cell of ours: it ran, one refresh grant per expiry, no reuse detection, the chain alive,
    no failed call."""
    if cell.errors:
        return [f"{where}: the run failed: {cell.errors[0].strip().splitlines()[-1]}"]
    problems: list[str] = []
    if cell.grants != cell.expiries or cell.refresh_ok != cell.expiries:
        problems.append(
            f"{where}: {cell.grants} refresh grants ({cell.refresh_ok} OK) for {cell.expiries} expiries "
            f"= {cell.grants_per_expiry:.2f} per expiry, not 1.00"
        )
    if cell.reuse_detections or not cell.chain_alive:
        problems.append(f"{where}: {cell.reuse_detections} reuse detections, chain alive: {cell.chain_alive}")
    if cell.calls_failed:
        problems.append(f"{where}: {cell.calls_failed} calls failed: {cell.failures}")
    return problems


def quick_check_ours(
    threads: Sequence[int] = (1, 8), processes: Sequence[int] = (1, 2), expiries: int = 3
) -> tuple[list[GrantsCell], list[str]]:
    """The quick mode's grants-per-expiry check for our contender alone (used by the test-suite)."""
    ours = BY_NAME["mcp_sync_auth"]
    cells = [grants_cell(ours, threads=n, processes=p, expiries=expiries) for p in processes for n in threads]
    return cells, problems_with_ours(cells)
