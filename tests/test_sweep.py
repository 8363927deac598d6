"""Sweeps: overrides, the grid, statistics, the run cache, resume after a kill, and Dask execution
(a real two-worker LocalCluster on loopback) giving byte-identical tables whatever the worker count."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iotsim.errors import InputError
from iotsim.scenario.yaml_source import parse_yaml_text
from iotsim.sweep import Executor, RunCache, apply_overrides, parse_set, plan_sweep, run_sweep
from iotsim.sweep.cache import run_key
from iotsim.sweep.overrides import numeric_bounds, split_top_level, validated_value
from iotsim.sweep.stats import mean_ci, t_critical, t_two_sided_probability

TINY = """\
name: tiny
seed: 5
duration: 1d
fleet:
  - group: soil
    count: 12
    device: nrf52840_sx1262_2xaa
    placement: {kind: uniform, area_m: [2000, 1000]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12, events_per_day: 2}
    model: farm_soil_int8
    heartbeat: 6h
network:
  lorawan: {sf: auto, tx_power_dbm: 14}
  gateways:
    - {id: gw1, position_m: [500, 500]}
    - {id: gw2, position_m: [1500, 500]}
policies: [cloud_offload, on_device]
simulation: {background_pool: 500}
outputs: {plots: false, report: none}
"""
TABLES = ("sweep.parquet", "sweep.csv", "sweep_points.parquet", "sweep_points.csv")


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.yaml"
    path.write_text(TINY)
    return path


def doc():
    return parse_yaml_text(TINY, "tiny.yaml")


# ---------------------------------------------------------------- overrides


def test_set_values_split_at_top_level_commas_and_parse_as_yaml():
    assert split_top_level("1,[2, 3],'a,b',{x: 1, y: 2}") == ["1", "[2, 3]", "'a,b'", "{x: 1, y: 2}"]
    o = parse_set("network.lorawan.sf=7,auto,12")
    assert o.path == "network.lorawan.sf" and o.values == (7, "auto", 12)
    assert parse_set("network.gateways.gw1.position_m=[0, 0],[10, 20]").values == ([0, 0], [10, 20])


@pytest.mark.parametrize("text, message", [
    ("fleet.soil.count", "expected PATH=VALUE"),
    ("fleet..count=1", "not a dotted field path"),
    ("fleet.soil.count=1,,2", "empty value"),
    ("fleet.soil.count=4,4", "listed twice"),
    ("fleet.soil.count=[1,", "not valid YAML"),
])
def test_malformed_set_options_are_refused_naming_the_option(text, message):
    with pytest.raises(InputError) as err:
        parse_set(text)
    assert message in str(err.value) and f"--set {text}" in str(err.value)


def test_overrides_reach_any_field_by_path_and_list_entries_by_name_or_index():
    sc = apply_overrides(doc(), [("fleet.soil.count", 30), ("network.gateways.gw2.position_m", [900, 100]),
                                 ("fleet.0.heartbeat", "2h"), ("network.cloud.servers", 9), ("duration", "36h")])
    assert sc.fleet[0].count == 30
    assert sc.network.gateways[1].position_m == (900.0, 100.0)
    assert sc.fleet[0].heartbeat == 7200.0  # validated like the file: durations in seconds
    assert sc.network.cloud.servers == 9  # a section the file leaves out is created
    assert sc.duration == 36 * 3600.0
    assert validated_value(sc, "fleet.soil.heartbeat") == 7200.0
    assert numeric_bounds(sc, "fleet.soil.count") == (1, 10_000_000, True)
    assert numeric_bounds(sc, "duration")[2] is False


@pytest.mark.parametrize("path, value, field, message", [
    ("fleet.soil.cnt", 3, "fleet.soil.cnt", "unknown field"),
    ("fleet.soil.count", 0, "fleet.soil.count", "greater than or equal to 1"),
    ("fleet.orchard.count", 3, "fleet.orchard.count", "no entry with group 'orchard'"),
    ("fleet.3.count", 3, "fleet.3.count", "out of range"),
    ("duration.days", 1, "duration.days", "is a value"),
    ("fleet.soil.device", "no_such_board", "fleet.soil.device", "unknown board"),
])
def test_bad_overrides_fail_with_the_option_and_the_field(path, value, field, message):
    with pytest.raises(InputError) as err:
        apply_overrides(doc(), [(path, value)])
    text = str(err.value)
    assert text.startswith(f"--set {path}=") and f"field '{field}'" in text and message in text


def test_errors_outside_the_overridden_fields_still_point_at_the_file_line():
    bad = TINY.replace("heartbeat: 6h", "heartbeat: soon")
    with pytest.raises(InputError) as err:
        apply_overrides(parse_yaml_text(bad, "tiny.yaml"), [("fleet.soil.count", 3)])
    assert str(err.value).startswith("tiny.yaml:11")


# ---------------------------------------------------------------- statistics


def test_t_distribution_matches_closed_forms_and_published_critical_values():
    for t in (0.3, 1.0, 4.2):
        assert t_two_sided_probability(t, 1) == pytest.approx(2 / math.pi * math.atan(t), rel=1e-13)  # Cauchy
        assert t_two_sided_probability(t, 2) == pytest.approx(t / math.sqrt(2 + t * t), rel=1e-13)
    # NIST/SEMATECH e-Handbook of Statistical Methods, Table 1.3.6.7.2 (upper 0.025 critical values)
    for df, ref in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (100, 1.984)]:
        assert t_critical(df) == pytest.approx(ref, abs=5e-4)
    assert t_critical(4, 0.99) == pytest.approx(4.604, abs=5e-4)  # upper 0.005


def test_mean_ci_leaves_out_nan_and_needs_two_values():
    n, mean, std, half = mean_ci(np.array([1.0, 2.0, np.nan, 3.0, 6.0]))
    assert (n, mean) == (4, 3.0)
    assert std == pytest.approx(np.std([1, 2, 3, 6], ddof=1))
    assert half == pytest.approx(3.182446 * std / 2, rel=1e-6)
    assert mean_ci(np.array([5.0, 5.0, 5.0]))[2:] == (0.0, 0.0)
    n, mean, _, half = mean_ci(np.array([7.0]))
    assert (n, mean) == (1, 7.0) and math.isnan(half)


# ---------------------------------------------------------------- sweeps in this process


@pytest.fixture(scope="module")
def local_sweep(scenario_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    plan = plan_sweep(scenario_file, [parse_set("fleet.soil.count=6,12"), parse_set("network.lorawan.sf=7,auto")], 2)
    with Executor(workers=0) as ex:
        result = run_sweep(plan, out, executor=ex)
    return plan, result, out


def test_sweep_covers_the_grid_with_seeded_replications(local_sweep):
    plan, result, out = local_sweep
    runs = result.runs
    assert plan.n_runs == 8 and result.computed == 8 and result.cached == 0
    assert len(runs) == 8 * 2  # two policies per run
    assert list(runs.columns[:6]) == ["point", "fleet.soil.count", "network.lorawan.sf", "replication", "seed",
                                      "run_key"]
    combos = runs.drop_duplicates("point")[["fleet.soil.count", "network.lorawan.sf"]].astype(str).values.tolist()
    assert combos == [["6", "7"], ["6", "auto"], ["12", "7"], ["12", "auto"]]
    assert sorted(set(zip(runs.replication, runs.seed))) == [(0, 5), (1, 6)]
    assert (runs.nodes == runs["fleet.soil.count"]).all()
    # replications differ (new placement, new events), grid points at one seed differ too
    auto = runs[(runs["network.lorawan.sf"] == "auto") & (runs.policy == "on_device")]
    assert auto.groupby("point").energy_j_per_node_day.nunique().min() == 2
    for name in TABLES + ("sweep.json",):
        assert (out / name).is_file()
    assert pd.read_parquet(out / "sweep.parquet").equals(runs)


def test_points_table_holds_mean_and_t_interval_of_each_metric(local_sweep):
    _, result, _ = local_sweep
    runs, points = result.runs, result.points
    row = points[(points.point == 3) & (points.policy == "cloud_offload") & (points.metric == "energy_j_per_node_day")]
    assert len(row) == 1
    values = runs[(runs.point == 3) & (runs.policy == "cloud_offload")].energy_j_per_node_day.to_numpy()
    row = row.iloc[0]
    assert row.n == 2 and row["mean"] == pytest.approx(values.mean())
    assert row.ci95_half_width == pytest.approx(12.7062 * np.std(values, ddof=1) / math.sqrt(2), rel=1e-5)
    assert row.ci95_low == pytest.approx(row["mean"] - row.ci95_half_width)
    assert len(points) == 4 * 2 * points.metric.nunique()  # points x policies x metrics


def test_sweep_findings_pair_the_policies_by_seed(local_sweep):
    _, result, out = local_sweep
    findings = json.loads((out / "findings.json").read_text())
    energy = [c for c in findings["comparisons"] if c["metric"] == "energy_j_per_node_day"]
    assert len(energy) == 4  # one per grid point
    c = energy[3]
    assert c["method"] == "paired across 2 replications, t"
    runs = result.runs[result.runs.point == 3].pivot(index="replication", columns="policy", values="energy_j_per_node_day")
    [d] = c["differences"]
    diff = (runs[d["policy"]] - runs[c["best"]]).to_numpy()
    assert d["diff"] == pytest.approx(diff.mean())
    assert d["high"] - d["low"] == pytest.approx(2 * 12.7062 * np.std(diff, ddof=1) / math.sqrt(2), rel=1e-5)
    assert (out / "findings.md").read_text().startswith("# Findings of the sweep")


def test_plots_draw_each_varying_metric_against_each_parameter(local_sweep):
    _, result, out = local_sweep
    names = {p.name for p in (out / "plots").glob("*.png")}
    assert "energy_j_per_node_day__vs__fleet.soil.count.png" in names
    assert "energy_j_per_node_day__vs__network.lorawan.sf.png" in names
    assert "nodes_died__vs__fleet.soil.count.png" not in names  # no node dies anywhere: a flat line
    assert names == {p.name for p in result.plots}
    assert len(names) % 2 == 0


def test_a_cached_rerun_computes_nothing_and_writes_identical_tables(local_sweep):
    plan, _, out = local_sweep
    before = {n: (out / n).read_bytes() for n in TABLES}
    plot_times = {p: p.stat().st_mtime_ns for p in (out / "plots").glob("*.png")}
    with Executor(workers=0) as ex:
        again = run_sweep(plan, out, executor=ex)
    assert (again.computed, again.cached) == (0, 8)
    assert {n: (out / n).read_bytes() for n in TABLES} == before
    assert {p: p.stat().st_mtime_ns for p in (out / "plots").glob("*.png")} == plot_times  # not redrawn


def test_the_cache_computes_only_what_is_missing(local_sweep, scenario_file, tmp_path):
    plan, result, out = local_sweep
    cache = RunCache(out / "runs")
    assert len(cache.keys()) == 8
    # more replications and one more grid value: only the new runs are computed
    bigger = plan_sweep(scenario_file, [parse_set("fleet.soil.count=6,12,18"), parse_set("network.lorawan.sf=7,auto")], 3)
    with Executor(workers=0) as ex:
        grown = run_sweep(bigger, tmp_path, executor=ex, cache_dir=out / "runs")
    assert (grown.computed, grown.cached) == (18 - 8, 8)
    old = grown.runs[grown.runs.run_key.isin(result.runs.run_key)].reset_index(drop=True)
    assert old.drop(columns="point").equals(result.runs.drop(columns="point"))


def test_cache_keys_follow_scenario_seed_version_and_model_cost(local_sweep):
    plan, _, _ = local_sweep
    spec = plan.runs[0][2]
    inputs = {"soil": {"model_sha256": "a", "inference_cost": "measured: 39,427 instructions"}}
    key = run_key(spec.scenario, inputs, "0.1.0+aaa")
    assert key == run_key(spec.scenario, inputs, "0.1.0+aaa")
    assert key != run_key(spec.scenario.model_copy(update={"seed": 99}), inputs, "0.1.0+aaa")
    assert key != run_key(spec.scenario, inputs, "0.1.0+bbb")
    assert key != run_key(spec.scenario, {"soil": {**inputs["soil"], "inference_cost": "estimated"}}, "0.1.0+aaa")
    assert len({s.key for _, _, s in plan.runs}) == plan.n_runs


def test_damaged_or_partial_cache_files_are_recomputed(local_sweep, tmp_path):
    plan, result, _ = local_sweep
    small = plan_sweep(plan.source, [parse_set("fleet.soil.count=6")], 2)
    cache = RunCache(tmp_path / "runs")
    with Executor(workers=0) as ex:
        run_sweep(small, tmp_path, executor=ex, plots=False)
        victim = cache.path(small.runs[0][2].key)
        victim.write_text('{"format": 1, "key": "trunc')  # as if a writer had been killed without rename
        (victim.parent / ".tmp-abandoned.json").write_text("{")
        again = run_sweep(small, tmp_path, executor=ex, plots=False)
    assert (again.computed, again.cached) == (1, 1)
    assert json.loads(victim.read_text())["key"] == small.runs[0][2].key


def test_bad_set_fails_before_anything_runs_or_is_written(scenario_file, tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "iotsim", "sweep", str(scenario_file), "--set",
                           "fleet.soil.count=4,-1", "--out", str(out), "--workers", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--set fleet.soil.count=-1" in proc.stderr and "greater than or equal to 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_clear_error_and_nothing_is_written(scenario_file, tmp_path, monkeypatch):
    import iotsim.sweep.execute as execute

    monkeypatch.setattr(execute, "SCHEDULER_TIMEOUT_S", 1)
    plan = plan_sweep(scenario_file, [parse_set("fleet.soil.count=6")], 1)
    with pytest.raises(InputError) as err, Executor(scheduler="tcp://127.0.0.1:9") as ex:
        run_sweep(plan, tmp_path / "out", executor=ex)
    assert str(err.value).startswith("--scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- Dask: a real LocalCluster on loopback


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as lc:
        yield lc


def test_results_are_byte_identical_whatever_the_worker_count(local_sweep, cluster, tmp_path):
    plan, _, out = local_sweep
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    with Executor(scheduler=cluster.scheduler_address) as ex:
        on_cluster = run_sweep(plan, tmp_path, executor=ex, plots=False)
    assert on_cluster.computed == 8
    workers_used = {json.loads((tmp_path / "sweep.json").read_text())["executed_on"]}
    assert workers_used == {f"Dask cluster at {cluster.scheduler_address}"}
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_cli_sweep_on_its_own_local_cluster_matches(local_sweep, scenario_file, tmp_path):
    _, _, ref = local_sweep
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "iotsim", "sweep", str(scenario_file),
                           "--set", "fleet.soil.count=6,12", "--set", "network.lorawan.sf=7,auto",
                           "--replications", "2", "--out", str(out), "--workers", "2", "--no-plots"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "8 computed and 0 cached" in proc.stdout and "local Dask cluster, 2 worker process(es)" in proc.stdout
    assert "Findings (all metrics: " in proc.stdout and "paired across" in proc.stdout  # under the points table
    listed = proc.stdout.split("results: ")[1]
    assert "findings.md" in listed and "sweep.csv" in listed
    assert "XNNPACK" not in proc.stdout + proc.stderr  # no interpreter log line from any worker
    for name in TABLES:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def _sweep_command(scenario_file: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "iotsim", "sweep", str(scenario_file), "--set", "fleet.soil.count=6,12,18,24",
            "--replications", "3", "--out", str(out), "--workers", "1", "--no-plots", "--quiet"]


def _kill_midway(cmd: list[str], out: Path, sig: int, at_least: int = 2) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(RunCache(out / "runs").keys()) >= at_least:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, sig)
    proc.wait(timeout=120)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_sweep_loses_no_finished_run_and_resumes(scenario_file, tmp_path, sig):
    out = tmp_path / "killed"
    cmd = _sweep_command(scenario_file, out)
    proc = _kill_midway(cmd, out, sig)
    stderr = proc.stderr.read()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "interrupted:" in stderr and "run the same command to resume" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    finished = RunCache(out / "runs").keys()
    assert 2 <= len(finished) < 12
    for key in finished:  # every record on disk is whole
        assert json.loads(RunCache(out / "runs").path(key).read_text())["key"] == key
    assert not (out / "sweep.parquet").exists()
    # the same command resumes: it computes only what is missing
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["cached_runs"] >= len(finished)
    assert manifest["computed_runs"] + manifest["cached_runs"] == 12
    # and gives what an uninterrupted sweep gives
    plan = plan_sweep(scenario_file, [parse_set("fleet.soil.count=6,12,18,24")], 3)
    with Executor(workers=0) as ex:
        ref = run_sweep(plan, tmp_path / "ref", executor=ex, plots=False)
    assert ref.computed == 12
    for name in TABLES:
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
