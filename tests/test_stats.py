"""Model statistics (iotsim.tinyml.stats): params, MACs, flash, tensor lifetimes, arena plan, errors."""

from __future__ import annotations

import json
import re

import pytest
from reference_models import mlperf_model

from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR
from iotsim.tinyml.stats import (
    ALIGNMENT,
    activation_lower_bound,
    format_stats,
    model_stats,
    plan_arena,
    read_model,
    tensor_lifetimes,
)

# shared/reference/NUMBERS.md, "MLPerf Tiny" table (mlcommons/tiny, benchmark/training/*/trained_models/):
# file -> (params, MACs, the last digit given for each)
MLPERF = {
    "kws_ref_model.tflite": (22.6e3, 2.66e6, 100, 0.01e6),
    "vww_96_int8.tflite": (210.9e3, 7.49e6, 100, 0.01e6),
    "pretrainedResnet_quant.tflite": (77.7e3, 12.50e6, 100, 0.01e6),
    "ad01_int8.tflite": (265.9e3, 0.264e6, 100, 0.001e6),
}



def _zoo_int8() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*_int8.tflite") if p.with_suffix(".json").exists())


# ---------------------------------------------------------------------------- MLPerf Tiny
@pytest.mark.parametrize("name", sorted(MLPERF))
def test_mlperf_params_and_macs_match_numbers_md(name):
    stats = model_stats(mlperf_model(name))
    params, macs, params_digit, macs_digit = MLPERF[name]
    assert stats["totals"]["params"] == pytest.approx(params, rel=0.05)
    assert stats["totals"]["macs"] == pytest.approx(macs, rel=0.05)
    # and in fact to the precision NUMBERS.md gives (biases counted, see the module doc)
    assert abs(stats["totals"]["params"] - params) <= params_digit / 2
    assert abs(stats["totals"]["macs"] - macs) <= macs_digit / 2
    assert stats["subgraph_count"] == 1 and stats["int8"]
    assert stats["flash"]["total"] == mlperf_model(name).stat().st_size
    assert stats["flash"]["weights"] + stats["flash"]["graph"] == stats["flash"]["total"]
    json.dumps(stats)  # JSON-ready


def test_kws_op_list_tensors_and_closed_forms():
    stats = model_stats(mlperf_model("kws_ref_model.tflite"))
    assert stats["op_counts"] == {
        "CONV_2D": 5, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1,
    }
    assert stats["op_list"][-3:] == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert stats["tensor_count"] == 35  # shared/reference/TOOLCHAIN.md
    ops = stats["ops"]
    # CONV_2D 10x4 stride 2 on 49x10x1 -> 25x5x64: 25*5*64*10*4*1
    assert ops[0]["macs"] == 25 * 5 * 64 * 10 * 4
    assert ops[0]["options"]["stride_h"] == 2 and ops[0]["options"]["padding"] == "SAME"
    assert ops[1]["op"] == "DEPTHWISE_CONV_2D" and ops[1]["macs"] == 25 * 5 * 64 * 3 * 3
    assert ops[2]["macs"] == 25 * 5 * 64 * 64  # pointwise
    assert ops[11]["macs"] == 64 * 12 and ops[11]["params"] == 64 * 12 + 12
    assert ops[9]["other_ops"] == 25 * 5 * 64  # average pool over the whole 25x5 map
    # weights: 22,016 int8 weights + 588 int32 biases + the 2-element int32 reshape shape
    assert stats["flash"]["weights"] == 22_016 + 4 * 588 + 8
    assert stats["totals"]["params"] == 22_016 + 588
    # activations: two 25x5x64 int8 maps live at once
    assert stats["memory"]["arena_lower_bound"] == 2 * 25 * 5 * 64
    assert stats["inputs"][0]["shape"] == [1, 49, 10, 1] and stats["inputs"][0]["dtype"] == "int8"
    assert stats["outputs"][0]["scale"] == pytest.approx(1 / 256) and stats["outputs"][0]["zero_point"] == -128
    text = format_stats(stats)
    assert "DEPTHWISE_CONV_2D" in text and "2,656,768" in text and "22,604" in text


def test_resnet_residual_keeps_three_maps_live():
    stats = model_stats(mlperf_model("pretrainedResnet_quant.tflite"))
    assert stats["op_counts"]["ADD"] == 3
    # the first block: its input, the inner conv output and the second conv output (32x32x16 each)
    assert stats["memory"]["arena_lower_bound"] == 3 * 32 * 32 * 16


@pytest.mark.parametrize("name", sorted(MLPERF))
def test_arena_plan_is_valid_and_above_lower_bound(name):
    graph = read_model(mlperf_model(name))
    life = tensor_lifetimes(graph)
    lb = activation_lower_bound(graph, life)
    plan = plan_arena(graph, life)
    assert lb["bytes"] <= plan.size
    assert plan.conflicts() == []
    assert all(off % ALIGNMENT == 0 for off in plan.offsets.values())
    # lifetimes: graph input from op 0, graph output to the last op, every tensor from its producer
    assert life[graph.inputs[0]][0] == 0
    assert life[graph.outputs[0]][1] == len(graph.ops) - 1
    for op in graph.ops:
        for t in op.outputs:
            assert life[t][0] == op.index
    # the lower bound is the sum of the tensors live at its op
    assert lb["bytes"] == sum(graph.tensors[t].nbytes for t in lb["live"])
    # a plan with a smaller alignment still holds
    assert plan_arena(graph, life, alignment=1).conflicts() == []


def test_plan_matches_tflite_micro_arena_head(capfd):
    """The greedy plan reproduces TFLM's own non-persistent arena ("head") on the MLPerf models."""
    runtime = pytest.importorskip("tflite_micro").runtime
    for name in sorted(MLPERF):
        path = mlperf_model(name)
        plan = model_stats(path)["memory"]["arena_plan_bytes"]
        capfd.readouterr()
        runtime.Interpreter.from_bytes(path.read_bytes()).print_allocations()
        out = capfd.readouterr()
        m = re.search(r"Arena allocation head (\d+) bytes", out.out + out.err)
        if m is None:
            pytest.skip("TFLM's print_allocations output was not captured")
        assert int(m.group(1)) == plan, name


# ---------------------------------------------------------------------------- zoo models
@pytest.mark.parametrize("name", _zoo_int8())
def test_zoo_models_match_their_cards(name):
    """MACs equal the card's Keras count; params too, up to folded batch-norm (read at test time)."""
    card = json.loads((ZOO_DIR / f"{name}.json").read_text())
    for path in (ZOO_DIR / f"{name}.tflite", ZOO_DIR / str(card.get("float_model") or f"{name}.tflite")):
        if not path.is_file():
            continue
        stats = model_stats(path)
        assert stats["totals"]["macs"] == card["macs"], path.name
        assert stats["totals"]["params"] == pytest.approx(card["params"], rel=0.05), path.name
        assert stats["totals"]["params"] <= card["params"]
        assert stats["memory"]["arena_lower_bound"] <= stats["memory"]["arena_plan_bytes"]
        assert stats["inputs"][0]["shape"][1:] == card["input_shape"]
    assert model_stats(ZOO_DIR / f"{name}.tflite", require_int8=True)["int8"]


def test_float_model_refused_when_int8_required():
    floats = sorted(ZOO_DIR.glob("*_float.tflite"))
    if not floats:
        pytest.skip("no float twin in the zoo")
    assert not model_stats(floats[0])["int8"]
    with pytest.raises(InputError, match="int8") as err:
        model_stats(floats[0], require_int8=True)
    assert err.value.where == str(floats[0])


# ---------------------------------------------------------------------------- a Keras model with Flatten
@pytest.fixture(scope="module")
def flatten_model(tmp_path_factory):
    """Conv1D(4, 3) -> Flatten -> Dense(3, softmax), full int8 (the converter emits SHAPE/STRIDED_SLICE/PACK)."""
    tf = pytest.importorskip("tensorflow")
    import numpy as np

    layers = tf.keras.layers
    inp = tf.keras.Input(shape=(16, 2))
    x = layers.Conv1D(4, 3, activation="relu", bias_initializer="ones")(inp)
    x = layers.Flatten()(x)
    x = layers.Dense(3, activation="softmax", bias_initializer="ones")(x)
    model = tf.keras.Model(inp, x)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 16, 2)).astype(np.float32)] for _ in range(10))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("flatten") / "flatten.tflite"
    path.write_bytes(conv.convert())
    return path, int(model.count_params())


def test_keras_flatten_model_closed_forms(flatten_model):
    path, keras_params = flatten_model
    stats = model_stats(path)
    assert stats["totals"]["macs"] == 14 * 4 * 3 * 2 + 14 * 4 * 3  # conv (valid, 16 -> 14) + dense
    assert stats["totals"]["params"] == keras_params == (3 * 2 * 4 + 4) + (56 * 3 + 3)
    by_op = {op["op"]: op for op in stats["ops"]}
    if "SHAPE" in by_op:  # Keras 3 + TF 2.21's Flatten
        assert by_op["SHAPE"]["compile_time"] and by_op["PACK"]["compile_time"]
        assert set(stats["compile_time_tensors"]) >= {t["index"] for t in by_op["SHAPE"]["outputs"]}
    assert not any(op["compile_time"] for op in stats["ops"] if op["op"] in ("CONV_2D", "FULLY_CONNECTED"))
    assert stats["memory"]["arena_lower_bound"] <= stats["memory"]["arena_plan_bytes"]
    assert "FULLY_CONNECTED" in format_stats(stats)


# ---------------------------------------------------------------------------- errors
def test_bad_files_raise_input_error_with_path(tmp_path):
    missing = tmp_path / "missing.tflite"
    with pytest.raises(InputError, match="not found") as err:
        model_stats(missing)
    assert err.value.where == str(missing)

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all" * 10)
    with pytest.raises(InputError, match="TFL3") as err:
        model_stats(junk)
    assert err.value.where == str(junk)

    with pytest.raises(InputError):
        model_stats(tmp_path)  # a directory


@pytest.mark.parametrize("keep", [0.5, 0.9, 200])
def test_truncated_model_raises_input_error(tmp_path, keep):
    src = ZOO_DIR / "farm_soil_int8.tflite"
    if not src.is_file():
        src = mlperf_model("kws_ref_model.tflite")
    content = src.read_bytes()
    n = int(len(content) * keep) if keep < 1 else keep
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(content[:n])
    with pytest.raises(InputError) as err:
        model_stats(cut)
    assert err.value.where == str(cut)
    with pytest.raises(InputError):
        model_stats(content[:n])  # bytes work too; where defaults to "model"


def test_bytes_input_and_where():
    src = ZOO_DIR / "farm_soil_int8.tflite"
    if not src.is_file():
        pytest.skip("zoo model missing")
    stats = model_stats(src.read_bytes(), where="soil")
    assert stats["model"] == "soil"
    assert stats["totals"] == model_stats(src)["totals"]
