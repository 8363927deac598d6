"""Sweep benchmark: a 32-run sweep on a local Dask cluster of 1 worker, then of 2, then re-run cached.

    python bench/sweep.py                 # 8 grid points x 4 replications of the farm scenario, one day
    python bench/sweep.py --plots         # include drawing the plots in every timing

Each timing is a whole `plan_sweep` + `run_sweep` into a fresh folder with a fresh cache (cluster start, planning,
runs, tables and, with --plots, plots), so it is what `iotsim sweep` costs. The cached re-run
repeats the 2-worker sweep into its own folder: every run comes from the cache (no cluster is
started) and the plots are reused. Targets (issue 5): 2 workers >= 1.8 x faster than 1; the
cached re-run < 5 % of the first run. The three sweeps' tables must be byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from iotsim.paths import REPO_DIR
from iotsim.sweep import Executor, parse_set, plan_sweep, run_sweep

TABLES = ("sweep.parquet", "sweep.csv", "sweep_points.parquet", "sweep_points.csv")


def timed_sweep(make_plan, out: Path, workers: int, plots: bool) -> tuple[float, dict]:
    t0 = time.perf_counter()
    plan = make_plan()  # validating the grid and keying the runs is part of every sweep's cost
    with Executor(workers=workers) as ex:
        result = run_sweep(plan, out, executor=ex, plots=plots)
    wall = time.perf_counter() - t0
    runs_s = [r["wall_s"] for r in json.loads((out / "sweep.json").read_text())["runs"]]
    return wall, {"computed": result.computed, "cached": result.cached, "sum_run_s": sum(runs_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=str(REPO_DIR / "scenarios" / "farm.yaml"))
    ap.add_argument("--set", dest="sets", action="append",
                    default=None, help="grid (default: fleet.soil.count=150,300,450,600 x network.lorawan.sf=auto,9)")
    ap.add_argument("--replications", type=int, default=4)
    ap.add_argument("--plots", action="store_true", help="draw the plots in every timing")
    ap.add_argument("--keep", help="keep the sweep folders here")
    args = ap.parse_args()
    sets = args.sets or ["fleet.soil.count=150,300,450,600", "network.lorawan.sf=auto,9"]

    def make_plan():
        return plan_sweep(args.scenario, [parse_set(s) for s in sets], args.replications, fixed=[("duration", "1d")])

    plan = make_plan()
    print(f"{plan.n_runs} runs: {len(plan.points)} grid points x {args.replications} replications "
          f"({', '.join(sets)}; duration 1d), {os.cpu_count()} cores")
    root = Path(args.keep or tempfile.mkdtemp(prefix="iotsim-bench-sweep-"))
    try:
        t1, s1 = timed_sweep(make_plan, root / "w1", 1, args.plots)
        print(f"1 worker : {t1:7.2f} s  ({s1['computed']} runs, {s1['sum_run_s']:.1f} s inside the runs)")
        t2, s2 = timed_sweep(make_plan, root / "w2", 2, args.plots)
        print(f"2 workers: {t2:7.2f} s  ({s2['computed']} runs, {s2['sum_run_s']:.1f} s inside the runs)")
        shutil.copytree(root / "w2" / "runs", root / "cached" / "runs")
        if args.plots:
            shutil.copytree(root / "w2" / "plots", root / "cached" / "plots")
        tc, sc = timed_sweep(make_plan, root / "cached", 2, args.plots)
        print(f"cached   : {tc:7.2f} s  ({sc['cached']} runs from the cache, {sc['computed']} computed)")
        print(f"speed-up 2 vs 1 workers: {t1 / t2:.2f} x (target >= 1.8)")
        print(f"cached re-run / first run: {100 * tc / t2:.1f} % of the 2-worker run, {100 * tc / t1:.1f} % of the "
              "1-worker run (target < 5 %)")
        same = all((root / "w1" / n).read_bytes() == (root / d / n).read_bytes() for d in ("w2", "cached") for n in TABLES)
        print(f"tables byte-identical across 1 worker, 2 workers and the cache: {same}")
        if not same:
            raise SystemExit(1)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
