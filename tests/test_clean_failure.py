"""Clean failure: bad input is one located message (exit 2) naming fields as `--set` does, with
"did you mean" for misspelt names; ranges are checked before numpy; a bug is told apart (exit 1,
the traceback in a file), on the command line and in sweep workers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from iotsim.errors import InputError
from iotsim.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]
FARM = (REPO / "scenarios" / "farm.yaml").read_text()


def _error(old: str, new: str, text: str = FARM) -> InputError:
    assert old in text
    with pytest.raises(InputError) as info:
        load_scenario_text(text.replace(old, new, 1), "farm.yaml")
    return info.value


@pytest.mark.parametrize("old, new, field, suggestion", [
    ("count: 300", "cuont: 300", "fleet.soil.cuont", "count"),
    ("heartbeat: 6h", "hearbeat: 6h", "fleet.soil.hearbeat", "heartbeat"),
    ("seed: 42", "sede: 42", "sede", "seed"),
    ("{id: gw2, position_m: [1000, 500]}", "{id: gw2, positon_m: [1000, 500]}", "network.gateways.gw2.positon_m",
     "position_m"),
    ("device: nrf52840_sx1262_2xaa", "device: nrf52840_sx1262_2aa", "fleet.soil.device", "nrf52840_sx1262_2xaa"),
    ("model: farm_soil_int8", "model: farm_soil_int88", "fleet.soil.model", "farm_soil_int8"),
    ("signal: farm.soil_climate", "signal: farm.soilclimate", "fleet.soil.workload.signal", "farm.soil_climate"),
    ("  - on_device", "  - on_devcie", "policies.1", "on_device"),
    ("technology: lorawan", "technology: lorwan", "network.technology", "lorawan"),
])
def test_misspelt_names_get_a_suggestion_and_the_field_as_set_names_it(old, new, field, suggestion):
    err = _error(old, new)
    assert err.field == field, str(err)
    assert f"did you mean '{suggestion}'" in err.message, str(err)
    assert err.where.startswith("farm.yaml:")


def test_field_paths_in_errors_are_the_paths_set_takes(tmp_path):
    from iotsim.scenario.yaml_source import read_yaml
    from iotsim.sweep.overrides import apply_overrides

    err = _error("count: 300", "count: 0")
    assert err.field == "fleet.soil.count"
    # the same path, given to --set, reaches the same field
    path = tmp_path / "farm.yaml"
    path.write_text(FARM)
    with pytest.raises(InputError) as info:
        apply_overrides(read_yaml(path), [(err.field, 0)])
    assert info.value.field == "fleet.soil.count" and info.value.where == "--set fleet.soil.count=0"
    # an entry without a usable name keeps its index
    two = FARM.replace("  - group: soil", "  - group: '7'")
    assert _error("count: 300", "count: 0", two).field == "fleet.0.count"


def test_a_board_without_the_signals_sensor_is_refused():
    # the factory board carries an accelerometer only: it cannot sample soil moisture
    err = _error("device: nrf52840_sx1262_2xaa", "device: stm32l4r5_sx1276_18650")
    assert err.field == "fleet.soil.device"
    for word in ("group 'soil'", "stm32l4r5_sx1276_18650", "farm.soil_climate", "soil_moisture",
                 "soil_climate sensor", "accel_3axis"):
        assert word in err.message, err.message


@pytest.mark.parametrize("old, new, field, words", [
    ("window: 12", "window: 12\n      events_per_day: 1.0e9", "fleet.soil.workload.events_per_day", "1440"),
    ("duration: 7d", "duration: .nan", "duration", "finite"),
    ("duration: 7d", "duration: 1e12d", "duration", "less than or equal to 3.15576e+09 s"),
    ("heartbeat: 6h", "heartbeat: 1e-9h", "fleet.soil.heartbeat", "greater than or equal to 1 s"),
    ("area_m: [2000, 1000]", "area_m: [2000, .inf]", "fleet.soil.placement.area_m.1", "finite"),
    ("exponent: 3.522", "exponent: 1.0e6", "network.propagation.exponent", "less than"),
    ("tx_power_dbm: 14,", "tx_power_dbm: .nan,", "network.lorawan.tx_power_dbm", "finite"),
    ("count: 300", "count: 10000000", "fleet.soil.count", "windows"),
    ("sample_period: 5min", "sample_period: 1ms", "fleet.soil.count", "windows"),
])
def test_values_out_of_range_are_refused_before_numpy(old, new, field, words):
    err = _error(old, new)
    assert err.field == field and words in err.message, str(err)


def test_many_heartbeats_are_refused_with_the_group_named():
    err = _error("count: 300", "count: 10000000", FARM.replace("heartbeat: 6h", "heartbeat: 1s"))
    assert "fleet group 'soil'" in err.message and "heartbeats" in err.message


def test_capture_threshold_may_be_infinite_but_not_nan():
    text = FARM.replace("  backhaul:", "  reception: {capture_threshold_db: .inf}\n  backhaul:")
    assert load_scenario_text(text).network.reception.capture_threshold_db == float("inf")
    err = _error("capture_threshold_db: .inf", "capture_threshold_db: .nan", text)
    assert err.field == "network.reception.capture_threshold_db" and "nan" in err.message


def _cli(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_a_bug_in_run_exits_1_with_one_line_and_the_traceback_in_a_file(tmp_path):
    code = f"""
import sys
import iotsim.engine
def run_scenario(*args, **kwargs):
    raise ZeroDivisionError("injected fault")
iotsim.engine.run_scenario = run_scenario
from iotsim.cli import app
sys.argv = ["iotsim", "run", {str(REPO / "scenarios" / "farm.yaml")!r}, "--quiet", "--out", "out"]
app()
"""
    proc = _cli(code, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "bug" in proc.stderr and "ZeroDivisionError: injected fault" in proc.stderr
    path = Path(re.search(r"traceback is in (\S+?\.txt)", proc.stderr).group(1))
    assert path.parent == tmp_path
    saved = path.read_text()
    assert "Traceback" in saved and "in run_scenario" in saved and saved.endswith("ZeroDivisionError: injected fault\n")
    assert not (tmp_path / "out").exists()


def test_bad_input_still_exits_2_without_a_bug_report(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(FARM.replace("count: 300", "count: -1"))
    code = f"import sys\nfrom iotsim.cli import app\nsys.argv = ['iotsim', 'run', {str(bad)!r}, '-q']\napp()\n"
    proc = _cli(code, tmp_path)
    assert proc.returncode == 2 and "fleet.soil.count" in proc.stderr and "bug" not in proc.stderr
    assert not list(tmp_path.glob("iotsim-bug-*"))


def test_a_crash_on_a_sweep_worker_is_a_bug_not_an_input_error(tmp_path, monkeypatch):
    from iotsim.sweep import RunCache, execute

    scenario = load_scenario_text(FARM.replace("count: 300", "count: 3"))
    spec = execute.RunSpec("k" * 64, scenario, "point 0 replication 0")
    # a payload the worker cannot read: its Scenario.model_validate raises a pydantic error, not an InputError
    monkeypatch.setattr(execute, "worker_payload", lambda sc: {"not": "a scenario"})
    with execute.Executor(1) as executor:
        with pytest.raises(execute.RunCrashed) as info:
            executor.execute([spec], RunCache(tmp_path / "runs"))
    assert not isinstance(info.value, InputError)
    assert "point 0 replication 0" in str(info.value) and "ValidationError" in str(info.value)
    assert type(info.value.__cause__).__name__ == "ValidationError"


def test_set_paths_metrics_and_groups_get_a_suggestion_too(tmp_path):
    from iotsim.scenario.yaml_source import read_yaml
    from iotsim.sweep.overrides import apply_overrides
    from iotsim.sweep.size import parse_constraint

    path = tmp_path / "farm.yaml"
    path.write_text(FARM)
    with pytest.raises(InputError, match="did you mean 'soil'"):
        apply_overrides(read_yaml(path), [("fleet.sol.count", 3)])
    with pytest.raises(InputError, match="did you mean 'count'") as info:
        apply_overrides(read_yaml(path), [("fleet.soil.cuont", 3)])
    assert info.value.field == "fleet.soil.cuont" and info.value.where == "--set fleet.soil.cuont=3"
    with pytest.raises(InputError, match="did you mean 'message_delivery_ratio'"):
        parse_constraint("mesage_delivery_ratio>=0.99")


def test_errors_found_when_the_run_is_planned_name_the_group_too():
    from iotsim.engine import run_scenario

    text = FARM.replace("window: 12", "window: 12\n      window_period: 1min").replace("duration: 7d", "duration: 1h")
    with pytest.raises(InputError) as info:
        run_scenario(load_scenario_text(text.replace("count: 300", "count: 2")))
    assert info.value.field == "fleet.soil.workload.window_period"
