"""The data of one benchmark run and its goals: what the runner fills, the report renders and the chart
draws. Its own module so that neither the report nor the chart imports the other for it."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from .fleet import FastPath, FleetCell, FleetResult
from .scenarios import GrantsCell, OverheadResult, ScalingPoint, StallResult, ThroughputResult, ThroughputRun

GOAL_RATIO = 1.03
GOAL_STALL_SLACK = 0.005
GOAL_THROUGHPUT = 0.90


@dataclasses.dataclass
class BenchResults:
    mode: str
    command: str
    started: str
    machine: dict[str, Any]
    load_start: Optional[tuple[float, float, float]]
    contenders: list[str]
    not_measured: dict[str, str]
    plan: dict[str, Any]
    load_end: Optional[tuple[float, float, float]] = None
    seconds: float = 0.0
    grants: list[GrantsCell] = dataclasses.field(default_factory=list)
    overhead: Optional[OverheadResult] = None
    stall: Optional[StallResult] = None
    throughput: Optional[ThroughputResult] = None
    scaling: list[ScalingPoint] = dataclasses.field(default_factory=list)
    fleet: Optional[FleetResult] = None
    scale: Optional[dict[str, Any]] = None  # bench.scale's JSON (``--only scale``), report lines included
    problems: list[str] = dataclasses.field(default_factory=list)
    load_samples: list[tuple[str, float]] = dataclasses.field(default_factory=list)


def from_json(data: dict[str, Any]) -> BenchResults:
    """Rebuild a run from its JSON file (``python -m bench --render NAME.json``): same numbers, new report."""

    def fields_of(cls: Any, raw: dict[str, Any]) -> dict[str, Any]:
        names = {field.name for field in dataclasses.fields(cls)}
        return {key: value for key, value in raw.items() if key in names}

    def stall_of(raw: Optional[dict[str, Any]]) -> Optional[StallResult]:
        return None if raw is None else StallResult(**fields_of(StallResult, raw))

    def overhead_of(raw: Optional[dict[str, Any]]) -> Optional[OverheadResult]:
        return None if raw is None else OverheadResult(**fields_of(OverheadResult, raw))

    results = BenchResults(**{
        **fields_of(BenchResults, data),
        "load_start": tuple(data["load_start"]) if data.get("load_start") else None,
        "load_end": tuple(data["load_end"]) if data.get("load_end") else None,
        "load_samples": [tuple(sample) for sample in data.get("load_samples", [])],
        "grants": [GrantsCell(**fields_of(GrantsCell, cell)) for cell in data.get("grants", [])],
        "overhead": overhead_of(data.get("overhead")),
        "stall": stall_of(data.get("stall")),
        "throughput": None,
        "scaling": [],
        "fleet": None,
    })
    raw = data.get("throughput")
    if raw is not None:
        runs = {key: [ThroughputRun(**fields_of(ThroughputRun, run)) for run in raw[key]]
                for key in ("expiring", "never")}
        results.throughput = ThroughputResult(raw["threads"], raw["processes"], raw["seconds"], **runs)
    fleet_raw = data.get("fleet")
    if fleet_raw is not None:
        cost = fleet_raw.get("fast_path")
        results.fleet = FleetResult(
            [FleetCell(**fields_of(FleetCell, cell)) for cell in fleet_raw.get("cells", [])],
            None if cost is None else FastPath(**fields_of(FastPath, cost)),
            fleet_raw.get("not_measured"),
        )
    for point in data.get("scaling", []):
        stall, cost = stall_of(point["stall"]), overhead_of(point["overhead"])
        assert stall is not None and cost is not None
        results.scaling.append(ScalingPoint(point["processes"], stall, cost))
    return results
