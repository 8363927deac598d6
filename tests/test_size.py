"""Sizing: galloping + bisection finds the boundary of a monotone predicate, and on a real scenario
the answer agrees with an exhaustive sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from iotsim.errors import InputError
from iotsim.sweep import Executor, RunCache
from iotsim.sweep.size import parse_constraint, search, size_scenario

# a cloud queue that must be sized: 12 nodes send every hourly window raw; each inference takes 10 min
CLOUD = """\
name: cloudq
seed: 2
duration: 1d
fleet:
  - group: soil
    count: 12
    device: nrf52840_sx1262_2xaa
    placement: {kind: uniform, area_m: [1000, 1000]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12}
    model: farm_soil_int8
network:
  lorawan: {sf: auto, tx_power_dbm: 14}
  gateways:
    - {id: gw1, position_m: [500, 500]}
  cloud: {inference_time: 10min, servers: 4}
policies: [cloud_offload, on_device]
simulation: {background_pool: 200}
outputs: {plots: false, report: none}
"""


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("size") / "cloud.yaml"
    path.write_text(CLOUD)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> RunCache:
    return RunCache(tmp_path_factory.mktemp("size-cache"))


def test_constraints_parse_and_bad_ones_name_the_option():
    c = parse_constraint("message_delivery_ratio>=0.99")
    assert (c.metric, c.op, c.threshold) == ("message_delivery_ratio", ">=", 0.99)
    assert c.holds(0.99) and not c.holds(0.98) and not c.holds(float("nan"))
    assert parse_constraint(" battery_life_days > 1095 ").holds(1096)
    for bad, message in [("delivery>=0.9", "unknown metric 'delivery'"), ("recall=0.9", "expected METRIC"),
                         ("recall>=high", "not a number")]:
        with pytest.raises(InputError) as err:
            parse_constraint(bad)
        assert message in str(err.value) and str(err.value).startswith(f"--constraint {bad}")


def _counting(predicate):
    calls = []

    def f(v):
        calls.append(v)
        return predicate(v)
    return f, calls


@pytest.mark.parametrize("start", [1, 100, 1234, 1235, 5000, 10**6])
def test_search_finds_the_largest_integer_in_logarithmic_probes(start):
    f, calls = _counting(lambda v: v <= 1234)
    ok, bad, limit = search(f, start, lo=1, resolution=1)
    assert (ok, bad, limit) == (1234, 1235, "")
    assert len(calls) <= 2 * math.ceil(math.log2(max(start, 1234))) + 3
    assert len(set(calls)) == len(calls)  # no value probed twice


def test_search_stops_by_default_within_one_percent():
    ok, bad, limit = search(lambda v: v <= 16_336, 300, lo=1)
    assert ok <= 16_336 < bad and bad - ok <= 0.01 * bad and limit == ""
    assert search(lambda v: v <= 37, 300, lo=1) == (37, 38, "")  # small values: to one integer step


def test_search_finds_the_smallest_and_real_values_to_the_resolution():
    f, calls = _counting(lambda v: v >= 37)
    assert search(f, 100, goal="smallest", lo=1) == (37, 36, "")
    f, calls = _counting(lambda v: v <= math.pi)
    ok, bad, limit = search(f, 1.0, is_int=False, lo=0.0, resolution=1e-3)
    assert ok <= math.pi < bad and bad - ok <= 1e-3 and limit == ""
    assert len(calls) < 20


def test_search_reports_range_ends_and_an_exhausted_probe_budget():
    assert search(lambda v: v <= 2000, 100, lo=1, hi=500) == (500, None, "range")  # all of the range meets them
    assert search(lambda v: v <= 0, 100, lo=1, hi=500) == (None, 1, "range")  # none does
    ok, bad, limit = search(lambda v: v <= 10**9, 1, lo=1, max_probes=5)
    assert limit == "probes" and bad is None and ok >= 8


def test_sizing_a_cloud_agrees_with_an_exhaustive_sweep(scenario_file, cache):
    constraint = parse_constraint("cloud_wait_p95_s<=60")
    with Executor(workers=0) as ex:
        result = size_scenario(scenario_file, "network.cloud.servers", [constraint], "cloud_offload", goal="smallest",
                               replications=2, executor=ex, cache=cache)
        answer = result.answer
        assert result.is_int and result.lo == 1 and result.limit == ""
        assert result.bracket == (answer, answer - 1)
        # exhaustively: every server count from 1 to answer + 3 (served from the cache where probed)
        exhaustive = {}
        for servers in range(1, answer + 4):
            r = size_scenario(scenario_file, "network.cloud.servers", [constraint], "cloud_offload",
                              goal="smallest", replications=2, start=servers, lo=servers, hi=servers,
                              executor=ex, cache=cache)
            exhaustive[servers] = r.probes[0]
    assert [s for s, p in exhaustive.items() if p.feasible] == list(range(answer, answer + 4))
    waits = [exhaustive[s].stats[("cloud_wait_p95_s", "soil")][1] for s in range(1, answer + 4)]
    assert waits == sorted(waits, reverse=True) and waits[0] > 60  # more servers never wait longer
    probed = {p.value: p for p in result.probes}
    for value, probe in probed.items():  # the search's probes are the same runs, judged the same
        assert probe.feasible == exhaustive.get(value, probe).feasible
        assert probe.runs == 2
    assert len(result.probes) < answer + 3


def test_sizing_a_real_field_brackets_the_boundary(scenario_file, cache):
    constraint = parse_constraint("cloud_wait_p95_s<=60")
    with Executor(workers=0) as ex:
        result = size_scenario(scenario_file, "network.cloud.inference_time", [constraint], "cloud_offload",
                               replications=1, resolution=5.0, executor=ex, cache=cache)
    ok, bad = result.bracket
    assert not result.is_int and ok < bad <= ok + 5.0
    by_value = {p.value: p for p in result.probes}
    assert by_value[ok].feasible and not by_value[bad].feasible
    assert "cloud_wait_p95_s" in by_value[bad].failed[0]


def test_size_refuses_what_it_cannot_search(scenario_file, cache):
    c = [parse_constraint("recall>=0.5")]
    with Executor(workers=0) as ex:
        for kwargs, message in [
            (dict(vary="fleet.soil.count", policy="cascade"), "policy 'cascade' is not in the scenario"),
            (dict(vary="network.lorawan.sf", policy="on_device"), "needs a number"),
            (dict(vary="fleet.soil.count", policy="on_device", lo=0), "the field allows 1"),
            (dict(vary="fleet.soil.nodes", policy="on_device"), "--vary fleet.soil.nodes"),
        ]:
            with pytest.raises(InputError) as err:
                size_scenario(scenario_file, constraints=c, executor=ex, cache=cache, **kwargs)
            assert message in str(err.value)


def test_cli_size_prints_the_answer_with_its_probes_and_writes_them(scenario_file, tmp_path):
    cmd = [sys.executable, "-m", "iotsim", "size", str(scenario_file), "--vary", "network.cloud.servers",
           "--constraint", "cloud_wait_p95_s<=60", "--policy", "cloud_offload", "--smallest", "-r", "1",
           "--workers", "0", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "size.json").read_text())
    answer = summary["answer"]
    assert f"smallest network.cloud.servers with cloud_wait_p95_s<=60 under cloud_offload: {answer} " \
           f"({answer - 1} fails: cloud_wait_p95_s" in proc.stdout
    assert "probe network.cloud.servers=" in proc.stderr  # one line per probe as it finishes
    probes = pd.read_csv(tmp_path / "size.csv")
    assert set(probes["network.cloud.servers"]) >= {answer, answer - 1}
    assert (probes.meets == (probes["mean"] <= 60)).all()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    rerun = pd.read_csv(tmp_path / "size.csv")
    assert again.returncode == 0 and (rerun.cached_runs == rerun.runs).all()  # all from the cache
    bad = subprocess.run(cmd[:-2] + ["--constraint", "latency>=1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown metric 'latency'" in bad.stderr and "Traceback" not in bad.stderr
