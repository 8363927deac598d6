"""Exporting .tflite models to C (iotsim.firmware.export): plan, folding, refusals, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from iotsim.cli import app
from iotsim.firmware.export import export_model, plan_model
from iotsim.firmware.lower import UnsupportedOpError
from iotsim.paths import ZOO_DIR
from iotsim.tinyml.stats import model_stats, read_model

FARM = ZOO_DIR / "farm_soil_int8.tflite"


def test_export_folds_flatten_shape_ops_and_plans_the_arena(tmp_path):
    res = export_model(FARM, tmp_path / "out")
    m = res.manifest
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "model.c", "model.h"]
    graph = read_model(FARM)
    folded_names = [graph.ops[i].name for i in m["folded_ops"]]
    assert sorted(folded_names) == ["PACK", "SHAPE", "STRIDED_SLICE"]
    assert all(graph.ops[i].name not in ("SHAPE", "STRIDED_SLICE", "PACK") for i in res.lowered)
    # folded tensors take no arena space: never more than the full plan, and the I/O fit
    assert m["arena_bytes"] <= model_stats(FARM)["memory"]["arena_plan_bytes"]
    assert m["arena_bytes"] >= m["input_bytes"] + m["output_bytes"]
    # every weight/bias the kernels read is in flash, once
    consts = {t for i in res.lowered for t in graph.ops[i].inputs if t >= 0 and graph.tensors[t].constant
              and graph.ops[i].name != "RESHAPE"}
    assert m["weight_bytes"] == sum(graph.constant_array(t).nbytes for t in consts)
    c = (tmp_path / "out" / "model.c").read_text()
    assert c.count("static const __attribute__((aligned(4)))") == len(consts)
    assert "malloc" not in c
    h = (tmp_path / "out" / "model.h").read_text()
    assert f"#define IOTSIM_INPUT_BYTES {graph.tensors[graph.inputs[0]].nbytes}" in h


def test_manifest_is_json_and_names_kernel_sources(tmp_path):
    export_model(FARM, tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["sha256"] and m["model"] == "farm_soil_int8.tflite"
    from iotsim.paths import FIRMWARE_REF_DIR

    for src in m["sources"]:
        assert (FIRMWARE_REF_DIR / "kernels" / src).is_file()
    for hdr in m["headers"]:
        assert (FIRMWARE_REF_DIR / "include" / hdr).is_file()


def test_float_model_is_refused_with_op_and_place(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError) as info:
        export_model(ZOO_DIR / "farm_soil_float.tflite", out)
    msg = str(info.value)
    assert "farm_soil_float.tflite" in msg and "op " in msg
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


@pytest.fixture(scope="module")
def unsupported_model(tmp_path_factory):
    """An int8 model with an op the firmware does not run (REDUCE_MAX)."""
    tf = pytest.importorskip("tensorflow")
    inp = tf.keras.Input((8, 4))
    x = tf.keras.layers.Lambda(lambda t: tf.reduce_max(t, axis=1))(inp)
    out = tf.keras.layers.Dense(4)(x)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(16):
            yield [rng.standard_normal((1, 8, 4)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("unsupported") / "reduce_max.tflite"
    path.write_bytes(conv.convert())
    return path


def test_unknown_op_is_refused_naming_it_and_the_supported_list(unsupported_model, tmp_path):
    with pytest.raises(UnsupportedOpError) as info:
        plan_model(unsupported_model)
    msg = str(info.value)
    assert "REDUCE_MAX" in msg and "not supported by the reference firmware" in msg
    assert "CONV_2D" in msg and "reduce_max.tflite" in msg
    result = CliRunner().invoke(app, ["firmware", "export", str(unsupported_model), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "REDUCE_MAX" in result.output
    assert not (tmp_path / "o" / "model.c").exists()


def test_cli_export_reports_sizes(tmp_path):
    result = CliRunner().invoke(app, ["firmware", "export", "farm_soil_int8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 shape ops folded" in result.output and "arena" in result.output
