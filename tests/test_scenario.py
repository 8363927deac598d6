"""Scenario files: the shipped ones load; bad input gives one located message and exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iotsim.errors import InputError
from iotsim.scenario import load_scenario, load_scenario_text
from iotsim.units import parse_duration_s

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))

GOOD = """\
name: t
seed: 1
duration: 1d
fleet:
  - group: soil
    count: 3
    device: nrf52840_sx1262_2xaa
    placement: {kind: uniform, area_m: [100, 100]}
    workload: {signal: farm.soil_climate, sample_period: 5min, window: 12}
    model: farm_soil_int8
network:
  gateways:
    - {id: gw1, position_m: [50, 50]}
policies: [cloud_offload, on_device]
"""


def test_duration_units():
    assert parse_duration_s("5min") == 300
    assert parse_duration_s("7d") == 7 * 86400
    assert parse_duration_s("40ms") == pytest.approx(0.04)
    assert parse_duration_s(12) == 12.0
    for bad in ("5 parsecs", "-1s", "fast", True):
        with pytest.raises(ValueError):
            parse_duration_s(bad)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_load(path):
    sc = load_scenario(path)
    assert sc.fleet and sc.policies


def test_at_least_farm_and_factory_ship():
    assert {"farm.yaml", "factory.yaml"} <= {p.name for p in SCENARIOS}


@pytest.mark.parametrize(
    "old,new,line,field,words",
    [
        ("count: 3", "cuont: 3", 6, "fleet.soil.cuont", "unknown field"),
        ("count: 3", "count: three", 6, "fleet.soil.count", "integer"),
        ("duration: 1d", "duration: 1 fortnight", 3, "duration", "duration"),
        ("sample_period: 5min", "sample_period: 5parsec", 9, "fleet.soil.workload.sample_period", "unit"),
        ("device: nrf52840_sx1262_2xaa", "device: no_such_board", 7, "fleet.soil.device", "no_such_board"),
        ("model: farm_soil_int8", "model: missing_model", 10, "fleet.soil.model", "unknown model"),
        ("signal: farm.soil_climate", "signal: farm.nope", 9, "fleet.soil.workload.signal", "farm.nope"),
        ("policies: [cloud_offload, on_device]", "policies: [cloud_offload, magic]", 14, "policies.1", "magic"),
    ],
)
def test_bad_input_names_file_line_and_field(old, new, line, field, words):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(InputError) as info:
        load_scenario_text(text, where="bad.yaml")
    msg = str(info.value)
    assert f"bad.yaml:{line}" in msg, msg
    assert info.value.field == field, msg
    assert "Value error" not in msg and "literal[" not in msg, msg
    assert words.lower() in msg.lower(), msg


def test_duplicate_key_and_syntax_errors_are_located():
    with pytest.raises(InputError, match=r"bad.yaml:4.*twice"):
        load_scenario_text(GOOD.replace("fleet:", "seed: 2\nfleet:"), where="bad.yaml")
    with pytest.raises(InputError, match=r"bad.yaml:\d+.*syntax"):
        load_scenario_text(GOOD + "  - [unclosed\n", where="bad.yaml")


def test_good_text_loads():
    sc = load_scenario_text(GOOD)
    assert sc.duration == 86400 and sc.fleet[0].workload.sample_period == 300


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "iotsim.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_bad_scenario_exits_2_with_one_message_and_no_output(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("count: 3", "count: -3"))
    out = tmp_path / "out"
    proc = _cli("run", str(bad), "--out", str(out), "--quiet")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert f"{bad}:6" in proc.stderr and "fleet.soil.count" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_cli_missing_file_exits_2(tmp_path):
    proc = _cli("run", str(tmp_path / "nope.yaml"), "--quiet")
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_schema_is_json_schema_with_the_fields():
    proc = _cli("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert {"name", "seed", "duration", "fleet", "network", "policies"} <= set(schema["properties"])
    assert "$defs" in schema and "FleetGroup" in schema["$defs"]
    assert schema["$defs"]["FleetGroup"]["additionalProperties"] is False


def test_cli_airtime_prints_the_semtech_value():
    proc = _cli("airtime", "--sf", "7", "--bw", "125000", "--payload", "20")
    assert proc.returncode == 0 and proc.stdout.startswith("56.576 ms"), proc.stdout
    proc = _cli("airtime", "--sf", "12", "--payload", "20", "--lorawan")
    assert proc.returncode == 0 and proc.stdout.startswith("1810.432 ms"), proc.stdout
    proc = _cli("airtime", "--sf", "9", "--payload", "13", "--cr", "4/9")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
