"""Bring your own model: a scenario names any int8 .tflite file and describes it inline."""

import json
import shutil

import numpy as np
import pytest

from iotsim.engine import run_scenario
from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR
from iotsim.results import summary_table
from iotsim.scenario import load_scenario_text

CARD = json.loads((ZOO_DIR / "farm_soil_int8.json").read_text())


def _scenario(model_block: str, window: int = 12) -> str:
    return f"""\
name: byo
seed: 1
duration: 1d
fleet:
  - group: g
    count: 10
    device: nrf52840_sx1262_2xaa
    placement: {{kind: uniform, area_m: [1000, 1000]}}
    workload: {{signal: farm.soil_climate, sample_period: 5min, window: {window}, events_per_day: 1}}
    model:
{model_block}
network:
  gateways: [{{id: gw, position_m: [500, 500]}}]
policies: [on_device]
outputs: {{plots: false, report: none}}
"""


def _block(path, **extra) -> str:
    norm = CARD["normalization"]
    fields = {
        "file": str(path),
        "class_names": json.dumps(CARD["class_names"]),
        "positive_class": CARD["positive_class"],
        "normalization": json.dumps({"mean": norm["mean"], "std": norm["std"]}),
        **extra,
    }
    return "\n".join(f"      {k}: {v}" for k, v in fields.items())


@pytest.fixture()
def bare_model(tmp_path):
    """The farm zoo model copied alone, without its card."""
    path = tmp_path / "mine.tflite"
    shutil.copy(ZOO_DIR / "farm_soil_int8.tflite", path)
    return path


def test_inline_description_reproduces_the_zoo_model_run(bare_model):
    byo = run_scenario(load_scenario_text(_scenario(_block(bare_model))))
    zoo = run_scenario(load_scenario_text(_scenario("      farm_soil_int8").replace("model:\n      ", "model: ")))
    a, b = summary_table(byo), summary_table(zoo)
    cols = ["energy_j_per_node_day", "packets_on_air", "events_detected", "precision", "recall"]
    np.testing.assert_array_equal(a[cols].to_numpy(), b[cols].to_numpy())
    assert byo.plans[0].model.name == "mine"


def test_corrupt_file_is_a_located_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a TFLite model") as err:
        load_scenario_text(_scenario(_block(bad)))
    assert err.value.field == "fleet.g.model" and err.value.where.endswith(":10")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_scenario_text(_scenario(_block(tmp_path / "nope.tflite")))


def test_float_model_is_refused(tmp_path):
    path = tmp_path / "float.tflite"
    shutil.copy(ZOO_DIR / "farm_soil_float.tflite", path)
    with pytest.raises(InputError, match="int8 model .* is required"):
        load_scenario_text(_scenario(_block(path)))


def test_wrong_window_shape_names_both(bare_model):
    with pytest.raises(InputError, match=r"expects windows of shape \(12, 3\).*gives \(24, 3\)"):
        load_scenario_text(_scenario(_block(bare_model), window=24))


def test_wrong_class_count_and_normalization(bare_model):
    with pytest.raises(InputError, match="lists 3 classes but the model outputs 2"):
        load_scenario_text(_scenario(_block(bare_model, class_names='["a", "b", "c"]')))
    with pytest.raises(InputError, match="normalization needs 3 means"):
        load_scenario_text(_scenario(_block(bare_model, normalization='{"mean": [0], "std": [1]}')))
    with pytest.raises(InputError, match="positive_class 5 is out of range"):
        load_scenario_text(_scenario(_block(bare_model, positive_class=5)))


def test_unknown_adapter(bare_model):
    with pytest.raises(InputError, match="unknown input adapter 'fft'"):
        load_scenario_text(_scenario(_block(bare_model, input_adapter="{name: fft}")))
