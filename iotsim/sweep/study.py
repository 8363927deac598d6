"""Run a sweep and write its folder. Library entry point behind `iotsim sweep`.

    DIR/sweep.parquet, sweep.csv                 every run's summary rows (grid point, replication, seed)
    DIR/sweep_points.parquet, sweep_points.csv   mean and 95 % CI per grid point, policy, group, metric
    DIR/findings.md, findings.json               best policy per grid point and metric, paired across seeds
    DIR/plots/<metric>__vs__<param>.png          each metric against each swept parameter, per policy
    DIR/sweep.json                               grid, seeds, versions, run keys, what was cached, timings
    DIR/runs/                                    the result cache (default; see iotsim.sweep.cache)

Every file is written to a temporary name and renamed into place. The tables depend only on the
scenario, the overrides and the seeds: byte-identical whatever the worker count or the cache.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
import pandas as pd

from iotsim.scenario.loader import scenario_hash
from iotsim.sweep.cache import RunCache, code_version
from iotsim.sweep.execute import Executor, Progress
from iotsim.files import atomic_replace_dir, atomic_write
from iotsim.sweep.grid import SweepPlan
from iotsim.sweep.plots import plot_name, plottable_metrics, write_sweep_plots
from iotsim.sweep.tables import points_table, runs_table

PLOTS_SOURCE = ".points_sha256"  # in plots/: the points table the plots were drawn from


@dataclass
class SweepResult:
    plan: SweepPlan
    runs: pd.DataFrame
    points: pd.DataFrame
    out_dir: Path
    computed: int  # runs simulated now
    cached: int  # runs served from the cache
    wall_s: float
    plots: list[Path]
    warnings: list[str]  # the runs' warnings, each once


def _write_table(frame: pd.DataFrame, folder: Path, stem: str) -> None:
    atomic_write(folder / f"{stem}.parquet", lambda p: frame.to_parquet(p, index=False, compression="zstd"))
    atomic_write(folder / f"{stem}.csv", lambda p: frame.to_csv(p, index=False, float_format="%.10g"))


def run_sweep(plan: SweepPlan, out_dir: str | Path, *, executor: Executor | None = None,
              cache_dir: str | Path | None = None, plots: bool = True, progress: Progress | None = None,
              command: str | None = None) -> SweepResult:
    """Compute what the cache lacks, then write the tables, plots and manifest into `out_dir`."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    cache = RunCache(cache_dir if cache_dir is not None else out_dir / "runs")
    cache.remove_stale_temporaries()
    specs = [spec for _, _, spec in plan.runs]
    own = executor is None
    executor = executor or Executor()
    try:
        done = executor.execute(specs, cache, progress)
    finally:
        if own:
            executor.close()
    records = done.records
    runs = runs_table(plan, records)
    points = points_table(plan, runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_table(runs, out_dir, "sweep")
    _write_table(points, out_dir, "sweep_points")
    plot_paths = _plots(points, plan.params, out_dir / "plots", out_dir / "sweep_points.csv") if plots else []
    warnings = sorted({w for rec in records.values() for w in rec.get("warnings", [])})
    from iotsim.results.findings import FINDINGS_JSON, FINDINGS_MD, sweep_findings  # it reads sweep.stats

    findings = sweep_findings(runs, plan.params)
    findings.flags += [f"model warning: {w}" for w in warnings]
    atomic_write(out_dir / FINDINGS_MD, lambda p: p.write_text(findings.to_markdown("Findings of the sweep")))
    atomic_write(out_dir / FINDINGS_JSON, lambda p: p.write_text(json.dumps(findings.to_dict(), indent=2) + "\n"))
    result = SweepResult(plan, runs, points, out_dir, done.computed, done.cached, time.perf_counter() - t0, plot_paths,
                         warnings)
    manifest = _manifest(result, records, executor.description, command)
    atomic_write(out_dir / "sweep.json",
                 lambda p: p.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"))
    return result


def _plots(points: pd.DataFrame, params: list[str], folder: Path, points_csv: Path) -> list[Path]:
    """Redraw only when the points table (as written) changed: a cached re-run reuses the plots."""
    digest = hashlib.sha256(points_csv.read_bytes() + json.dumps(params).encode()).hexdigest()
    expected = [folder / plot_name(m, p) for m in plottable_metrics(points) for p in params]
    source = folder / PLOTS_SOURCE
    if source.exists() and source.read_text().strip() == digest and all(p.exists() for p in expected):
        return expected

    def fill(tmp: Path) -> None:
        write_sweep_plots(points, params, tmp)
        (tmp / PLOTS_SOURCE).write_text(digest + "\n")

    atomic_replace_dir(folder, fill)
    return expected


def _manifest(result: SweepResult, records: dict[str, dict], where: str, command: str | None) -> dict:
    from iotsim.results.writer import package_versions

    plan = result.plan
    return {
        "scenario_file": plan.source,
        "scenario": plan.base.name,
        "base_scenario_sha256": scenario_hash(plan.base),
        "fixed": [{"path": p, "value": v} for p, v in plan.fixed],
        "parameters": plan.params,
        "grid_points": [{"point": pt.index, "values": pt.values} for pt in plan.points],
        "replications": plan.replications,
        "seeds": "scenario seed + replication (0-based)",
        "runs": [{"point": pt.index, "replication": r, "seed": spec.scenario.seed, "key": spec.key,
                  "wall_s": records[spec.key].get("wall_s")} for pt, r, spec in plan.runs],
        "warnings": result.warnings,
        "iotsim_version": code_version(),
        "versions": package_versions(),
        "executed_on": where,
        "computed_runs": result.computed,
        "cached_runs": result.cached,
        "wall_s": result.wall_s,
        "command": command if command is not None else " ".join(sys.argv),
    }
