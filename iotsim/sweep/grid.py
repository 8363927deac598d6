"""The runs of a sweep: the Cartesian grid of overrides x replications (seeds).

Replication r of a grid point runs the point's scenario with seed `scenario seed + r`, so grid
points share seeds and their comparison is paired, and adding replications keeps the old ones.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from iotsim.errors import InputError
from iotsim.scenario.yaml_source import YamlDocument, read_yaml
from iotsim.sweep.cache import run_inputs, run_key
from iotsim.sweep.execute import RunSpec
from iotsim.sweep.overrides import Override, apply_overrides, validated_value


@dataclass
class GridPoint:
    index: int
    assignments: tuple[tuple[str, Any], ...]  # (path, value as given)
    values: dict[str, Any]  # path -> validated value (SI units; lists as JSON text)
    scenario: Any  # validated Scenario (the file's seed)


@dataclass
class SweepPlan:
    source: str  # the scenario file
    base: Any  # the scenario with the fixed overrides
    params: list[str]  # swept paths, in option order
    fixed: list[tuple[str, Any]]
    replications: int
    points: list[GridPoint]
    runs: list[tuple[GridPoint, int, RunSpec]] = field(default_factory=list)  # (point, replication, spec)

    @property
    def n_runs(self) -> int:
        return len(self.runs)


def _column_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def run_label(assignments: Sequence[tuple[str, Any]], seed: int) -> str:
    parts = [f"{p}={v}" for p, v in assignments]
    return ", ".join([*parts, f"seed {seed}"])


def plan_sweep(scenario: str | Path | YamlDocument, overrides: Sequence[Override], replications: int = 1,
               *, fixed: Sequence[tuple[str, Any]] = (), resources: dict | None = None) -> SweepPlan:
    """Validate every grid point (like a scenario file) and key every run for the cache."""
    if replications < 1:
        raise InputError(f"--replications must be at least 1, not {replications}")
    doc = scenario if isinstance(scenario, YamlDocument) else read_yaml(scenario)
    paths = [o.path for o in overrides]
    repeated = sorted({p for p in paths if paths.count(p) > 1} | ({p for p, _ in fixed} & set(paths)))
    if repeated:
        raise InputError(f"a field is set more than once: {', '.join(repeated)}", where="--set")
    base = apply_overrides(doc, list(fixed))
    resources = {} if resources is None else resources
    points, runs = [], []
    combos = list(itertools.product(*[o.values for o in overrides]))
    for index, combo in enumerate(combos):
        assignments = tuple(zip(paths, combo))
        sc = apply_overrides(doc, [*fixed, *assignments])
        point = GridPoint(index, assignments, {p: _column_value(validated_value(sc, p)) for p in paths}, sc)
        points.append(point)
        inputs = run_inputs(sc, resources)
        for r in range(replications):
            seeded = sc.model_copy(update={"seed": sc.seed + r})
            spec = RunSpec(run_key(seeded, inputs), seeded, run_label(assignments, seeded.seed))
            runs.append((point, r, spec))
    return SweepPlan(doc.where, base, paths, list(fixed), replications, points, runs)
