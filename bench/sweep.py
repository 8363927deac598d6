"""Sweep benchmark: one 32-run `iotsim sweep` on a local Dask cluster of 1 worker, then of 2, then
the same command again with every run cached.

    python bench/sweep.py                 # farm as shipped (a week) at 1000..8000 nodes x SF auto/9 x 4 replications
    python bench/sweep.py --fixed duration=1d    # the same grid over one day: short runs, fixed costs show
    python bench/sweep.py --plots         # include drawing the plots in every timing

Each timing is the wall time of a fresh `python -m iotsim sweep ...` process, exactly what a user
waits for: Python start and imports, planning (validating the grid, keying the runs), starting
and stopping the cluster, the runs, the tables (and with --plots the plots). The cached re-run
repeats the 2-worker command into the same folder. Targets (issue 5): 2 workers >= 1.8 x faster
than 1; the cached re-run < 5 % of the first run. The three sweeps' tables must be byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iotsim.paths import REPO_DIR

TABLES = ("sweep.parquet", "sweep.csv", "sweep_points.parquet", "sweep_points.csv")
DEFAULT_GRID = ["fleet.soil.count=1000,2000,4000,8000", "network.lorawan.sf=auto,9"]


def timed_sweep(args, out: Path, workers: int) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "iotsim", "sweep", args.scenario, "--replications", str(args.replications),
           "--out", str(out), "--workers", str(workers), "--quiet", *([] if args.plots else ["--no-plots"])]
    for s in [*args.grid, *args.fixed]:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed:\n{proc.stderr}")
    manifest = json.loads((out / "sweep.json").read_text())
    return wall, {"computed": manifest["computed_runs"], "cached": manifest["cached_runs"],
                  "sum_run_s": sum(r["wall_s"] for r in manifest["runs"]), "runs": len(manifest["runs"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=str(REPO_DIR / "scenarios" / "farm.yaml"))
    ap.add_argument("--set", dest="grid", action="append", default=None,
                    help=f"grid axis (default: {' '.join(DEFAULT_GRID)})")
    ap.add_argument("--fixed", action="append", default=[], help="fixed override, e.g. duration=1d")
    ap.add_argument("--replications", type=int, default=4)
    ap.add_argument("--plots", action="store_true", help="draw the plots in every timing")
    ap.add_argument("--keep", help="keep the sweep folders here")
    args = ap.parse_args()
    args.grid = args.grid or DEFAULT_GRID
    root = Path(args.keep or tempfile.mkdtemp(prefix="iotsim-bench-sweep-"))
    try:
        t1, s1 = timed_sweep(args, root / "w1", 1)
        print(f"{s1['runs']} runs ({'; '.join([*args.grid, *args.fixed])}; {args.replications} replications), "
              f"{os.cpu_count()} cores")
        print(f"1 worker : {t1:7.2f} s  ({s1['computed']} computed, {s1['sum_run_s']:.1f} s inside the runs)")
        t2, s2 = timed_sweep(args, root / "w2", 2)
        print(f"2 workers: {t2:7.2f} s  ({s2['computed']} computed, {s2['sum_run_s']:.1f} s inside the runs)")
        fresh = {n: (root / "w2" / n).read_bytes() for n in TABLES}
        tc, sc = timed_sweep(args, root / "w2", 2)
        print(f"cached   : {tc:7.2f} s  ({sc['cached']} runs from the cache, {sc['computed']} computed)")
        print(f"speed-up 2 vs 1 workers: {t1 / t2:.2f} x (target >= 1.8)")
        print(f"cached re-run / first run: {100 * tc / t2:.1f} % of the 2-worker run, {100 * tc / t1:.1f} % of the "
              "1-worker run (target < 5 %)")
        same = all((root / "w1" / n).read_bytes() == fresh[n] == (root / "w2" / n).read_bytes() for n in TABLES)
        print(f"tables byte-identical with 1 worker, 2 workers and from the cache: {same}")
        if not same:
            raise SystemExit(1)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
