"""A quiet, honest command line: no native log lines, the files listed are the files written,
results readable by the group as the umask allows."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from iotsim.files import atomic_replace_dir, atomic_write

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "fleet.soil.count=3", "--set", "duration=1h"]


def _run(args, umask=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "iotsim.cli", "run", *args], capture_output=True, text=True,
                          env=env, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None, **kw)


def test_run_prints_no_interpreter_log_lines_and_lists_what_it_wrote(tmp_path):
    out = tmp_path / "farm"
    proc = _run([str(REPO / "scenarios" / "farm.yaml"), *TINY, "--set", "outputs.packets_table=false",
                 "--out", str(out), "--quiet"], umask=0o022)
    assert proc.returncode == 0, proc.stderr
    # the cloud model's float interpreter applies XNNPACK, whose C++ logger announces it on fd 2
    assert "XNNPACK" not in proc.stdout + proc.stderr and "INFO:" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
    line = next(l for l in proc.stdout.splitlines() if l.startswith("results:"))
    listed = re.search(r"\((.*)\)", line).group(1).split(", ")
    on_disk = sorted(p.name for p in out.iterdir())
    assert "packets.parquet" not in on_disk and "packets.parquet" not in listed
    plots = [n for n in on_disk if n.endswith(".png")]
    assert plots and listed == [n for n in on_disk if not n.endswith(".png")] + [f"{len(plots)} plots"]
    # results readable by the group and others under the usual umask
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                        (0o002, 0o775, 0o664)])
def test_atomic_writes_give_the_modes_the_umask_allows(tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        folder = tmp_path / "results"
        atomic_replace_dir(folder, lambda tmp: (tmp / "a.csv").write_text("x\n"))
        atomic_write(tmp_path / "b.json", lambda p: p.write_text("{}\n"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
    assert stat.S_IMODE((folder / "a.csv").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == file_mode


def test_native_stderr_filter_keeps_other_lines():
    code = ("import os\nfrom iotsim.tinyml.runtime import _native_info_filtered\n"
            "with _native_info_filtered():\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "    os.write(2, b'ERROR: something real\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stderr == "ERROR: something real\n"


def test_sweep_intervals_stay_within_what_each_metric_can_take():
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from iotsim.sweep.stats import mean_ci
    from iotsim.sweep.tables import points_table

    runs = pd.DataFrame({"point": 0, "policy": "on_device", "group": "soil",
                         "packets_lost": [0.0, 0.0, 7.0], "message_delivery_ratio": [1.0, 1.0, 0.6],
                         "energy_j_per_node_day": [20.0, 21.0, 22.0]})
    points = points_table(SimpleNamespace(params=[]), runs).set_index("metric")
    for metric, (low, high) in {"packets_lost": (0.0, np.inf), "message_delivery_ratio": (0.0, 1.0),
                                "energy_j_per_node_day": (0.0, np.inf)}.items():
        n, mean, _, half = mean_ci(runs[metric].to_numpy())
        row = points.loc[metric]
        assert row.ci95_half_width == half and row["mean"] == mean
        assert row.ci95_low == max(mean - half, low) and row.ci95_high == min(mean + half, high)
    # the t interval of these counts and ratios would cross 0 and 1: clipped there
    assert points.loc["packets_lost"].ci95_low == 0.0 and points.loc["message_delivery_ratio"].ci95_high == 1.0
    assert points.loc["energy_j_per_node_day"].ci95_low == pytest.approx(21.0 - points.loc["energy_j_per_node_day"].ci95_half_width)


def test_sweep_table_prints_the_clipped_bounds(capsys):
    """The terminal table shows the same bounds as sweep_points (clipped to the metric's range), never a
    symmetric mean +- half-width that would run below zero or above one."""
    import pandas as pd

    from iotsim import cli

    rows = []
    for metric, mean, low, high in [("energy_j_per_node_day", 2.0, 1.5, 2.5), ("battery_life_days", 100.0, 90.0, 110.0),
                                    ("message_delivery_ratio", 0.99, 0.94, 1.0), ("latency_p50_s", 0.5, 0.0, 1.2),
                                    ("recall", 0.98, 0.9, 1.0)]:
        rows.append({"point": 0, "policy": "on_device", "group": "g", "x": 1, "metric": metric, "mean": mean,
                     "ci95_half_width": 0.7, "ci95_low": low, "ci95_high": high})
    cli._print_points(pd.DataFrame(rows), ["x"], "t")
    out = capsys.readouterr().out
    assert "0.99 [0.94, 1]" in out and "0.5 [0, 1.2]" in out
    assert "±" not in out and "-0.2" not in out
