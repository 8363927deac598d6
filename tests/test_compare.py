"""Interpreter comparison (iotsim.tinyml.compare): pairs, LSB differences, top-1, errors, real inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference_models import mlperf_model

from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR
from iotsim.tinyml import compare as cmp
from iotsim.tinyml.compare import (
    compare_interpreters,
    format_comparison,
    op_divergence,
    random_inputs,
    zoo_inputs,
)

pytest.importorskip("tflite_micro")




def _pair(result: dict, a: str, b: str) -> dict:
    return next(p for p in result["pairs"] if (p["a"], p["b"]) == (a, b))


def _zoo_int8() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*_int8.tflite") if p.with_suffix(".json").exists())


def test_kws_tflm_and_reference_kernels_agree_bit_exactly():
    """shared/reference/TOOLCHAIN.md: LiteRT BUILTIN_REF matches TFLite Micro on KWS."""
    result = compare_interpreters(mlperf_model("kws_ref_model.tflite"), vectors=20, seed=0)
    assert result["vectors"] == 20 and result["input_source"] == "random"
    assert result["classifier"] is True and result["reference"] == "tflm"
    assert all(rep["error"] is None and rep["us_per_row"] > 0 for rep in result["interpreters"].values())
    p = _pair(result, "tflm", "reference")
    assert p["rows"] == 20 and p["rows_differing"] == 0 and p["max_lsb"] == 0 and p["top1_agreement"] == 1.0
    # pairs: each against tflm first, then the others in order
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [
        ("tflm", "reference"), ("tflm", "builtin"), ("tflm", "xnnpack"),
        ("reference", "builtin"), ("reference", "xnnpack"), ("builtin", "xnnpack"),
    ]
    json.dumps(result)
    text = format_comparison(result)
    assert "tflm vs reference" in text and "0/20" in text


def test_ad_autoencoder_differs_by_at_most_3_lsb():
    """TOOLCHAIN.md: on the AD autoencoder the reference kernels differ from TFLM on every row, up to 3 LSB."""
    result = compare_interpreters(mlperf_model("ad01_int8.tflite"), vectors=30, interpreters=("tflm", "reference"))
    p = _pair(result, "tflm", "reference")
    assert p["max_lsb"] <= 3
    assert p["rows_differing"] > 0
    assert result["classifier"] is False  # 640 reconstructed values, not class scores
    assert result["output_shape"] == [640]


def test_interpreter_against_itself_has_no_difference():
    path = mlperf_model("ad01_int8.tflite")
    result = compare_interpreters(path, vectors=10, interpreters=("tflm", "tflm", "builtin", "builtin"))
    assert list(result["interpreters"]) == ["tflm", "tflm#2", "builtin", "builtin#2"]
    for a, b in (("tflm", "tflm#2"), ("builtin", "builtin#2")):
        p = _pair(result, a, b)
        assert p["rows_differing"] == 0 and p["max_lsb"] == 0 and p["top1_agreement"] == 1.0


def test_same_seed_same_inputs_and_given_inputs():
    path = mlperf_model("ad01_int8.tflite")
    x = random_inputs((640,), np.int8, 12, seed=3)
    assert x.dtype == np.int8 and x.min() < -100 and x.max() > 100
    np.testing.assert_array_equal(x, random_inputs((640,), np.int8, 12, seed=3))
    a = compare_interpreters(path, vectors=12, seed=3, interpreters=("tflm", "reference"))
    b = compare_interpreters(path, inputs=x, interpreters=("tflm", "reference"))
    assert b["input_source"] == "given" and b["seed"] is None
    assert _pair(a, "tflm", "reference")["rows_differing"] == _pair(b, "tflm", "reference")["rows_differing"]
    with pytest.raises(InputError, match="shape"):
        compare_interpreters(path, inputs=np.zeros((3, 10), dtype=np.int8))
    with pytest.raises(InputError, match="int8"):
        compare_interpreters(path, inputs=np.full((2, 640), 1000))
    with pytest.raises(InputError, match="unknown interpreter"):
        compare_interpreters(path, vectors=2, interpreters=("tflm", "cuda"))


def test_interpreter_that_cannot_load_is_reported_not_raised(monkeypatch):
    real = cmp.RawInterpreter

    def fake(content, op_resolver, **kwargs):
        if op_resolver == "xnnpack":
            raise InputError("LiteRT cannot load this model: simulated failure", where="model")
        if op_resolver == "builtin":
            raise RuntimeError("binding crashed")
        return real(content, op_resolver, **kwargs)

    monkeypatch.setattr(cmp, "RawInterpreter", fake)
    result = compare_interpreters(mlperf_model("ad01_int8.tflite"), vectors=4)
    reps = result["interpreters"]
    assert "simulated failure" in reps["xnnpack"]["error"] and reps["xnnpack"]["us_per_row"] is None
    assert "RuntimeError" in reps["builtin"]["error"]
    assert reps["tflm"]["error"] is None
    assert "error" in _pair(result, "tflm", "xnnpack")
    assert "max_lsb" in _pair(result, "tflm", "reference")
    assert "failed" in format_comparison(result)


def test_bad_model_raises_input_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(InputError) as err:
        compare_interpreters(bad, vectors=2)
    assert err.value.where == str(bad)
    with pytest.raises(InputError, match="not found"):
        compare_interpreters(tmp_path / "none.tflite")


def test_op_divergence_locates_first_differing_op():
    x = random_inputs((640,), np.int8, 10, seed=0)
    rows = op_divergence(mlperf_model("ad01_int8.tflite"), x, "tflm", "reference")
    assert [r["op"] for r in rows] == ["FULLY_CONNECTED"] * 10
    assert any(r["rows_differing"] for r in rows)
    same = op_divergence(mlperf_model("ad01_int8.tflite"), x[:3], "tflm", "tflm")
    assert all(r["rows_differing"] == 0 for r in same)


@pytest.mark.parametrize("name", _zoo_int8())
def test_zoo_models_on_real_windows(name):
    x, y = zoo_inputs(name, 40, seed=5, return_labels=True)
    card = json.loads((ZOO_DIR / f"{name}.json").read_text())
    assert x.dtype == np.int8 and x.shape == (40, *card["input_shape"])
    assert set(np.unique(y)) <= set(range(len(card["class_names"])))
    np.testing.assert_array_equal(x, zoo_inputs(name, 40, seed=5))  # seeded
    result = compare_interpreters(ZOO_DIR / f"{name}.tflite", inputs=x)
    assert result["input_source"] == "given" and result["classifier"] is True
    assert all(rep["error"] is None for rep in result["interpreters"].values())
    p = _pair(result, "tflm", "reference")
    assert p["top1_agreement"] >= 0.95
    assert p["max_lsb"] <= 8
