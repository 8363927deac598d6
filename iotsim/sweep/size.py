"""Sizing: the largest (or smallest) value of one scenario field that meets every constraint.

"How many nodes can one gateway carry at 99 % delivery?" is a search over one parameter with a
yes/no answer at each value. The search assumes the answer flips once: the constraints hold up
to some value and fail beyond it (for `largest`; the mirror image for `smallest`). It gallops
from the start value (steps doubling) until the answer flips, then bisects the bracket down to
`resolution`, by default 1 % of the value (and at least one integer step): near the boundary a
metric's replication noise is usually wider than a finer step. Each probe runs `replications` seeds, and a
constraint is judged on the mean over them; the probe table keeps each mean with its 95 % CI, so
a user can see how close the deciding probes were.
"""

from __future__ import annotations

import json
import math
import operator
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from iotsim.errors import InputError, did_you_mean
from iotsim.scenario.model import policy_name
from iotsim.scenario.yaml_source import YamlDocument, read_yaml
from iotsim.sweep.cache import RunCache, code_version
from iotsim.sweep.execute import Executor
from iotsim.files import atomic_write
from iotsim.sweep.grid import plan_sweep
from iotsim.sweep.overrides import Override, apply_overrides, numeric_bounds, validated_value
from iotsim.sweep.stats import mean_ci
from iotsim.sweep.tables import METRICS, runs_table

RELATIVE_RESOLUTION = 0.01  # default: stop bisecting when the bracket is within 1 % of the value
OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_constraint(text: str) -> Constraint:
    """'METRIC>=X' (also <=, >, <); METRIC is a summary column."""
    where = f"--constraint {text}"
    m = _CONSTRAINT.match(text)
    if not m:
        raise InputError("expected METRIC>=VALUE (or <=, >, <), e.g. message_delivery_ratio>=0.99", where=where)
    metric, op, raw = m.groups()
    if metric not in METRICS:
        raise InputError(f"unknown metric '{metric}'{did_you_mean(metric, METRICS)}; metrics: {', '.join(METRICS)}",
                         where=where)
    try:
        threshold = float(raw)
    except ValueError:
        raise InputError(f"'{raw}' is not a number", where=where) from None
    return Constraint(metric, op, threshold)


@dataclass
class Probe:
    value: float | int
    feasible: bool
    runs: int
    cached: int
    # (metric, group) -> (n, mean, 95 % CI half-width)
    stats: dict[tuple[str, str], tuple[int, float, float]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # constraints not met, with the value


@dataclass
class SizeResult:
    path: str
    goal: str  # "largest" or "smallest"
    policy: str
    constraints: list[Constraint]
    answer: float | int | None  # None: no value in range meets the constraints
    bracket: tuple[Any, Any]  # (best value that meets them, nearest probed value that does not; None if none)
    limit: str  # "" or why the search stopped short: "range", "probes"
    probes: list[Probe]
    lo: float | None
    hi: float | None
    is_int: bool


def search(feasible: Callable[[Any], bool], start: float, *, goal: str = "largest", lo: float | None = None,
           hi: float | None = None, is_int: bool = True, step: float | None = None,
           resolution: float | None = None, max_probes: int = 40) -> tuple[Any, Any, str]:
    """Gallop + bisection for the boundary of a monotone predicate.

    Returns (ok, bad, limit): `ok` the best value found that is feasible (None if none), `bad` the
    nearest infeasible probe beyond it (None if the range ran out first), `limit` "" when the bracket
    is tight, "range" when a range end decided, "probes" when `max_probes` ran out."""
    if goal not in ("largest", "smallest"):
        raise ValueError("goal is 'largest' or 'smallest'")
    d = 1 if goal == "largest" else -1
    unit = 1 if is_int else 0.0

    def narrow(a, b) -> bool:
        """The bracket is closed: to `resolution`, else to 1 % of the values (at least one integer step)."""
        width = abs(b - a)
        if resolution is not None:
            return width <= max(resolution, unit)
        return width <= max(unit, RELATIVE_RESOLUTION * max(abs(a), abs(b)))

    step = step if step is not None else max(unit, abs(start) / 2) or 1.0
    if is_int:
        step = max(1, int(round(step)))
    toward_end = hi if d > 0 else lo  # the end the goal pushes to
    away_end = lo if d > 0 else hi
    probes = 0

    def clamp(v: float) -> float:
        if lo is not None:
            v = max(v, lo)
        if hi is not None:
            v = min(v, hi)
        return int(round(v)) if is_int else v

    def test(v) -> bool:
        nonlocal probes
        probes += 1
        return feasible(v)

    start = clamp(start)
    ok = bad = None
    if test(start):
        ok, v = start, start
        while True:  # gallop toward the goal while feasible
            if ok == toward_end:
                return ok, None, "range"
            if probes >= max_probes:
                return ok, None, "probes"
            v = clamp(ok + d * step)
            step *= 2
            if test(v):
                ok = v
            else:
                bad = v
                break
    else:
        bad = start
        while True:  # gallop back until feasible
            if bad == away_end:
                return None, bad, "range"
            if probes >= max_probes:
                return None, bad, "probes"
            v = clamp(bad - d * step)
            step *= 2
            if test(v):
                ok = v
                break
            bad = v
    while not narrow(ok, bad):  # bisect the bracket
        if probes >= max_probes:
            return ok, bad, "probes"
        mid = ok + (bad - ok) // 2 if is_int else (ok + bad) / 2
        if mid in (ok, bad):
            break
        if test(mid):
            ok = mid
        else:
            bad = mid
    return ok, bad, ""


def size_scenario(scenario: str | YamlDocument, vary: str, constraints: Sequence[Constraint], policy: str, *,
                  goal: str = "largest", replications: int = 3, fixed: Sequence[tuple[str, Any]] = (),
                  lo: float | None = None, hi: float | None = None, start: float | None = None,
                  step: float | None = None, resolution: float | None = None, group: str | None = None,
                  max_probes: int = 40, executor: Executor, cache: RunCache,
                  on_probe: Callable[[Probe], None] | None = None) -> SizeResult:
    """Search the value of `vary` (a dotted path) that is best for `goal` while every constraint
    holds for `policy` (in every fleet group, or in `group`)."""
    if not constraints:
        raise InputError("give at least one --constraint METRIC>=VALUE")
    doc = scenario if isinstance(scenario, YamlDocument) else read_yaml(scenario)
    base = apply_overrides(doc, list(fixed))
    policies = [policy_name(p) for p in base.policies]
    if policy not in policies:
        raise InputError(f"policy '{policy}' is not in the scenario{did_you_mean(policy, policies)} (it has: "
                         f"{', '.join(policies)})", where="--policy")
    groups = [g.group for g in base.fleet]
    if group is not None and group not in groups:
        raise InputError(f"no fleet group '{group}'{did_you_mean(group, groups)} (there are: {', '.join(groups)})",
                         where="--group")
    try:
        current = validated_value(base, vary)
    except InputError as exc:
        raise InputError(exc.message, where=f"--vary {vary}") from None
    field_lo, field_hi, field_int = numeric_bounds(base, vary)
    origin = start if start is not None else current
    if isinstance(origin, bool) or not isinstance(origin, (int, float)):
        raise InputError(f"the search needs a number, and the scenario has {current!r} here: give --start",
                         where=f"--vary {vary}")
    is_int = field_int if field_int is not None else isinstance(origin, int)
    lo = field_lo if lo is None else lo
    hi = field_hi if hi is None else hi
    if field_lo is not None and lo < field_lo or field_hi is not None and hi > field_hi:
        raise InputError(f"the field allows {field_lo} .. {field_hi}", where="--range")
    if lo is not None and hi is not None and lo > hi:
        raise InputError(f"empty range {lo} .. {hi}", where="--range")
    probes: list[Probe] = []
    resources: dict = {}  # models loaded once for all probes' cache keys

    def feasible(value) -> bool:
        plan = plan_sweep(doc, [Override(vary, (value,))], replications, fixed=fixed, resources=resources)
        specs = [s for _, _, s in plan.runs]
        done = executor.execute(specs, cache)
        runs = runs_table(plan, done.records)
        runs = runs[runs.policy == policy]
        probe = Probe(value, True, len(specs), done.cached)
        for c in constraints:
            for g in ([group] if group else groups):
                n, mean, _, half = mean_ci(runs.loc[runs.group == g, c.metric].to_numpy(dtype=np.float64))
                probe.stats[(c.metric, g)] = (n, mean, half)
                if not c.holds(mean):
                    probe.feasible = False
                    probe.failed.append(f"{c.metric} {mean:.6g}" + (f" in {g}" if len(groups) > 1 else ""))
        probes.append(probe)
        if on_probe:
            on_probe(probe)
        return probe.feasible

    ok, bad, limit = search(feasible, origin, goal=goal, lo=lo, hi=hi, is_int=is_int, step=step,
                            resolution=resolution, max_probes=max_probes)
    return SizeResult(vary, goal, policy, list(constraints), ok, (ok, bad), limit, probes, lo, hi, is_int)


def probes_table(result: SizeResult) -> pd.DataFrame:
    """Tidy probe table: one row per (probe, metric, group), in probe order."""
    rows = []
    for order, probe in enumerate(result.probes):
        for (metric, group), (n, mean, half) in probe.stats.items():
            rows.append({"probe": order, result.path: probe.value, "meets": probe.feasible, "policy": result.policy,
                         "group": group, "metric": metric, "n": n, "mean": mean, "ci95_half_width": half,
                         "runs": probe.runs, "cached_runs": probe.cached})
    return pd.DataFrame(rows)


def write_size(result: SizeResult, out_dir: str | Path, *, command: str | None = None) -> Path:
    """size.csv (the probe table) and size.json (the answer, bracket, constraints, versions), atomically."""
    from iotsim.results.writer import package_versions

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "answer": result.answer, "goal": result.goal, "vary": result.path, "policy": result.policy,
        "constraints": [str(c) for c in result.constraints], "bracket": list(result.bracket),
        "limit": result.limit, "range": [result.lo, result.hi], "integer": result.is_int,
        "probes": len(result.probes), "statement": describe(result), "iotsim_version": code_version(),
        "versions": package_versions(), "command": command if command is not None else " ".join(sys.argv),
    }
    atomic_write(out_dir / "size.csv", lambda p: probes_table(result).to_csv(p, index=False, float_format="%.10g"))
    atomic_write(out_dir / "size.json", lambda p: p.write_text(json.dumps(summary, indent=2, default=str) + "\n"))
    return out_dir


def _groups(probe: Probe, c: Constraint) -> list[str]:
    return [g for m, g in probe.stats if m == c.metric]


def _straddles(c: Constraint, mean: float, half: float) -> bool:
    return math.isfinite(half) and half > 0 and (mean - half) <= c.threshold <= (mean + half)


def describe(result: SizeResult) -> str:
    """One paragraph: the answer and the probes that decide it."""
    cons = " and ".join(str(c) for c in result.constraints)
    what = f"{result.goal} {result.path} with {cons} under {result.policy}"
    ok, bad = result.bracket
    by_value = {p.value: p for p in result.probes}
    if ok is None:
        edge = by_value.get(bad)
        why = f" ({'; '.join(edge.failed)})" if edge else ""
        return f"{what}: none in the range; even {bad:g} fails{why}"
    text = f"{what}: {ok:g}"
    if bad is not None:
        text += f" ({bad:g} fails: {'; '.join(by_value[bad].failed)})"
    noisy = [f"{c.metric} {by_value[v].stats[(c.metric, g)][1]:.6g} ± {by_value[v].stats[(c.metric, g)][2]:.2g}"
             f" at {v:g}"
             for v in (ok, bad) if v is not None for c in result.constraints for g in _groups(by_value[v], c)
             if _straddles(c, *by_value[v].stats[(c.metric, g)][1:])]
    if noisy:
        text += (f". The 95 % CI of the deciding probes includes the threshold ({'; '.join(noisy)}): "
                 "more replications (-r) would make the answer firmer")
    if result.limit == "range":
        text += " - the end of the range: widen --range to look further"
    elif result.limit == "probes":
        text += " - the probe budget ran out before the bracket closed (raise --max-probes)"
    return text
