"""Zoo models and the LiteRT runtime: loading, int8 I/O, batching, accuracy, errors, recipes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.paths import REPO_DIR, ZOO_DIR
from iotsim.signals import get_workload
from iotsim.tinyml.runtime import Int8Model, TfliteModel, load_model, round_half_away, zoo_names
from iotsim.tinyml.train import accuracy_f1, make_dataset

ZOO = {"farm_soil_int8": "farm.soil_climate", "factory_bearing_int8": "factory.vibration"}
CARD_FIELDS = (
    "name task workload class_names positive_class input_shape normalization float_accuracy int8_accuracy "
    "float_f1 int8_f1 test_samples params macs tflite_bytes seed epochs recipe train_time_s float_model tensorflow"
).split()


def _card(name):
    return json.loads((ZOO_DIR / f"{name}.json").read_text())


def _fresh(card, n, seed):
    """Windows drawn like the card's test set, but from another seed."""
    wl = get_workload(card["workload"], **card.get("workload_params", {}))
    ds = card["dataset"]
    return make_dataset(
        wl,
        n,
        np.random.default_rng(seed),
        positive_fraction=ds["positive_fraction"],
        partial_fraction=ds["partial_fraction"],
        min_overlap=ds["min_overlap"],
    )


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo_model(request):
    return Int8Model.load(request.param)


# ------------------------------------------------------------------ zoo contents
def test_zoo_ships_int8_models_with_cards_and_float_twins():
    assert set(ZOO) <= set(zoo_names())
    for name, workload in ZOO.items():
        card = _card(name)
        for f in CARD_FIELDS:
            assert f in card, f"{name}.json lacks {f}"
        assert card["name"] == name and card["workload"] == workload
        assert (ZOO_DIR / f"{name}.md").read_text().startswith(f"# {name}")
        assert card["tflite_bytes"] == (ZOO_DIR / f"{name}.tflite").stat().st_size
        assert (ZOO_DIR / card["float_model"]).is_file()
        assert card["tflite_bytes"] < 64 * 1024
        assert 0 < card["macs"] and 0 < card["params"]
        # the task is neither trivial nor hopeless, and int8 keeps the float accuracy
        assert 0.85 < card["int8_accuracy"] < 0.995
        assert abs(card["float_accuracy"] - card["int8_accuracy"]) < 0.02
    assert _card("farm_soil_int8")["params"] < 10_000
    assert 10_000 < _card("factory_bearing_int8")["params"] < 64_000


def test_zoo_model_attributes(zoo_model):
    wl = get_workload(ZOO[zoo_model.name])
    assert zoo_model.is_int8
    assert zoo_model.input_dtype == np.int8 and zoo_model.output_dtype == np.int8
    assert zoo_model.input_shape == (wl.window_samples, wl.n_channels)
    assert zoo_model.n_classes == 2
    assert zoo_model.class_names == list(wl.class_names)
    assert zoo_model.positive_class == wl.positive_class
    assert zoo_model.interpreter_name == "litert-builtin"  # default kernels, see runtime docstring
    assert zoo_model.path == ZOO_DIR / f"{zoo_model.name}.tflite"
    assert zoo_model.card["name"] == zoo_model.name
    assert 0 < zoo_model.input_scale and -128 <= zoo_model.input_zero_point <= 127
    zoo_model.check_window(wl.window_samples, wl.n_channels)


def test_float_twin_loads_with_the_int8_card():
    for name in ZOO:
        card = _card(name)
        twin = load_model(card["float_model"].removesuffix(".tflite"))
        assert not twin.is_int8 and twin.input_dtype == np.float32
        assert twin.interpreter_name == "litert-xnnpack"  # float default: XNNPACK
        assert TfliteModel.load(ZOO_DIR / card["float_model"], op_resolver="builtin").interpreter_name == "litert-builtin"
        assert twin.card_path == ZOO_DIR / f"{name}.json"
        assert twin.input_shape == tuple(card["input_shape"])


# ------------------------------------------------------------------ inference
def test_quantization_follows_the_input_tensor(zoo_model):
    card = _card(zoo_model.name)
    x, _, _ = _fresh(card, 50, 1)
    q = zoo_model.quantize(x)
    assert q.dtype == np.int8 and q.shape == x.shape
    z = (x - np.array(card["normalization"]["mean"], np.float32)) / np.array(card["normalization"]["std"], np.float32)
    back = (q.astype(np.float64) - zoo_model.input_zero_point) * zoo_model.input_scale
    inside = (q > -128) & (q < 127)
    assert np.abs(back - z)[inside].max() <= 0.5 * zoo_model.input_scale * (1 + 1e-4)


def test_round_half_away_from_zero():
    assert round_half_away(np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.4, 0.49])).tolist() == [1, -1, 2, -2, 3, -2, 0]


def test_batched_scores_equal_single_window_scores(zoo_model):
    card = _card(zoo_model.name)
    x, _, _ = _fresh(card, 70, 2)
    small_batches = Int8Model.load(zoo_model.path, batch_size=16)  # 16,16,16,16 + 6 padded to 8
    batched = small_batches.scores(x)
    big = zoo_model.scores(x)  # one batch of 70 padded to 128
    single = np.concatenate([zoo_model.scores(x[i : i + 1]) for i in range(len(x))])
    assert batched.dtype == np.float32 and batched.shape == (70, 2)
    assert np.array_equal(batched, single)
    assert np.array_equal(big, single)
    # scores are dequantized softmax outputs: probabilities on the output grid
    assert np.allclose(batched.sum(axis=1), 1.0, atol=0.02)
    steps = batched / zoo_model.output_scale
    assert np.allclose(steps, np.round(steps), atol=1e-3)


def test_predict_is_argmax_with_confidence(zoo_model):
    card = _card(zoo_model.name)
    x, _, _ = _fresh(card, 40, 3)
    s = zoo_model.scores(x)
    idx, conf = zoo_model.predict(x)
    assert idx.dtype == np.int64 and conf.dtype == np.float32
    assert np.array_equal(idx, s.argmax(axis=1))
    assert np.array_equal(conf, s.max(axis=1))
    assert zoo_model.scores(x[:0]).shape == (0, 2)


def test_fresh_windows_reach_card_accuracy(zoo_model):
    card = _card(zoo_model.name)
    n = 4000
    x, y, _ = _fresh(card, n, 987654)
    pred, _ = zoo_model.predict(x)
    acc, f1 = accuracy_f1(y, pred, zoo_model.positive_class)
    # binomial sd at n=4000 and p~0.93 is 0.004
    assert abs(acc - card["int8_accuracy"]) < 0.02
    assert abs(f1 - card["int8_f1"]) < 0.03


def test_float_twin_and_reference_kernels_agree_with_int8(zoo_model):
    card = _card(zoo_model.name)
    x, y, _ = _fresh(card, 1000, 55)
    twin = TfliteModel.load(ZOO_DIR / card["float_model"])
    ref = Int8Model.load(zoo_model.name, op_resolver="reference")
    assert ref.interpreter_name == "litert-reference"
    p8, _ = zoo_model.predict(x)
    pf, _ = twin.predict(x)
    pr, _ = ref.predict(x)
    assert np.mean(p8 == pf) > 0.97
    assert np.mean(p8 == pr) > 0.99
    q = zoo_model.quantize(x)
    lsb = np.abs(zoo_model.invoke(q).astype(int) - ref.invoke(q).astype(int)).max()
    assert lsb <= max(16, card["interpreter_check"]["litert-builtin"]["max_output_diff_lsb"])
    assert card["interpreter_check"]["litert-builtin"]["argmax_agreement"] > 0.99


def test_factory_card_records_the_fault_mix_and_recall_per_fault_type():
    from iotsim.signals.vibration import FAULT_TYPES

    card = _card("factory_bearing_int8")
    assert card["workload_params"]["fault_types"] == list(FAULT_TYPES)
    assert len(card["workload_params"]["fault_weights"]) == len(FAULT_TYPES)
    recall = card["fault_type_recall"]
    assert set(recall) == set(FAULT_TYPES) and min(recall.values()) > 0.8
    model = Int8Model.load("factory_bearing_int8")
    for kind in FAULT_TYPES:
        wl = get_workload("factory.vibration", fault_types=(kind,))
        x = wl.generate(np.random.default_rng(77), np.ones((400, wl.window_samples), bool))
        pred, _ = model.predict(x)
        assert abs(np.mean(pred == model.positive_class) - recall[kind]) < 0.06, kind  # binomial sd <= 0.025


def test_farm_card_records_the_weather():
    card = _card("farm_soil_int8")
    assert card["workload_params"]["weather"] == get_workload("farm.soil_climate").weather
    assert "TMY3" in card["workload_description"]


def test_events_score_higher_than_background(zoo_model):
    card = _card(zoo_model.name)
    wl = get_workload(card["workload"])
    rng_n, rng_e = np.random.default_rng(8), np.random.default_rng(8)
    normal = wl.generate(rng_n, np.zeros((500, wl.window_samples), bool))
    event = wl.generate(rng_e, np.ones((500, wl.window_samples), bool))
    pos = zoo_model.positive_class
    assert zoo_model.scores(event)[:, pos].mean() > zoo_model.scores(normal)[:, pos].mean() + 0.5


# ------------------------------------------------------------------ errors
def test_wrong_window_shape_names_both_shapes():
    farm = Int8Model.load("farm_soil_int8")
    vib = get_workload("factory.vibration")
    x = vib.generate(np.random.default_rng(0), np.zeros((2, vib.window_samples), bool))
    with pytest.raises(InputError) as exc:
        farm.scores(x)
    msg = str(exc.value)
    assert "(n, 12, 3)" in msg and "(2, 256, 3)" in msg
    with pytest.raises(InputError) as exc:
        farm.check_window(vib.window_samples, vib.n_channels)
    assert "(12, 3)" in str(exc.value) and "(256, 3)" in str(exc.value)
    with pytest.raises(InputError):
        farm.scores(np.zeros((12, 3), np.float32))  # a window without the batch axis


def test_float_model_rejected_where_int8_required():
    with pytest.raises(InputError) as exc:
        Int8Model.load("farm_soil_float")
    assert "int8" in str(exc.value) and "float32" in str(exc.value)
    with pytest.raises(InputError):
        TfliteModel.load("factory_bearing_float", require_int8=True)


def test_missing_and_unknown_models():
    with pytest.raises(InputError) as exc:
        TfliteModel.load("no_such_model")
    assert "farm_soil_int8" in str(exc.value)  # lists the zoo
    with pytest.raises(InputError) as exc:
        TfliteModel.load(REPO_DIR / "nowhere" / "model.tflite")
    assert "not found" in str(exc.value)


def _copy_with_card(tmp_path, name="farm_soil_int8"):
    dst = tmp_path / f"{name}.tflite"
    shutil.copy(ZOO_DIR / f"{name}.tflite", dst)
    shutil.copy(ZOO_DIR / f"{name}.json", tmp_path / f"{name}.json")
    return dst


def test_corrupt_files(tmp_path):
    path = _copy_with_card(tmp_path)
    good = path.read_bytes()
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as exc:
        TfliteModel.load(path)
    assert "TFL3" in str(exc.value) and str(path) in str(exc.value)
    path.write_bytes(good[: len(good) // 2])  # truncated: right header, broken body
    with pytest.raises(InputError) as exc:
        TfliteModel.load(path)
    assert "flatbuffer" in str(exc.value).lower()
    path.write_bytes(b"")
    with pytest.raises(InputError):
        TfliteModel.load(path)


def test_card_problems(tmp_path):
    path = _copy_with_card(tmp_path)
    card_path = tmp_path / "farm_soil_int8.json"
    card = json.loads(card_path.read_text())
    # a model copied without its card
    card_path.unlink()
    with pytest.raises(InputError) as exc:
        TfliteModel.load(path)
    assert "farm_soil_int8.json" in str(exc.value)
    # card disagrees with the model's input
    card_path.write_text(json.dumps({**card, "input_shape": [24, 3]}))
    with pytest.raises(InputError) as exc:
        TfliteModel.load(path)
    assert exc.value.field == "input_shape" and "(24, 3)" in str(exc.value) and "(12, 3)" in str(exc.value)
    # normalization for the wrong number of channels
    card_path.write_text(json.dumps({**card, "normalization": {"mean": [0.0], "std": [1.0]}}))
    with pytest.raises(InputError) as exc:
        TfliteModel.load(path)
    assert exc.value.field == "normalization"
    card_path.write_text("{not json")
    with pytest.raises(InputError):
        TfliteModel.load(path)
    # a copied model with its card works from any folder
    card_path.write_text(json.dumps(card))
    assert TfliteModel.load(str(path)).is_int8


def test_bad_runtime_options():
    with pytest.raises(InputError):
        TfliteModel.load("farm_soil_int8", op_resolver="gpu")
    with pytest.raises(InputError):
        TfliteModel.load("farm_soil_int8", batch_size=0)


def test_simulator_side_does_not_import_tensorflow():
    code = (
        "import sys; import iotsim.signals, iotsim.tinyml.runtime, iotsim.tinyml.train, "
        "iotsim.tinyml.recipes.farm, iotsim.tinyml.recipes.factory; "
        "m = iotsim.tinyml.runtime.Int8Model.load('farm_soil_int8'); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------ recipes (run in CI, reduced size)
@pytest.mark.parametrize(
    "module, floor",
    [("iotsim.tinyml.recipes.farm", 0.87), ("iotsim.tinyml.recipes.factory", 0.85)],
)
def test_recipe_small_trains_and_quantizes(tmp_path, module, floor):
    pytest.importorskip("tensorflow")
    import importlib

    recipe = importlib.import_module(module)
    card = recipe.build(tmp_path, small=True)
    name = recipe.RECIPE.name
    for f in CARD_FIELDS:
        assert f in card
    assert card["float_accuracy"] >= floor and card["int8_accuracy"] >= floor - 0.01
    assert card["int8_f1"] >= floor - 0.03
    assert abs(card["float_accuracy"] - card["int8_accuracy"]) <= 0.03
    assert card["test_samples"] == recipe.SMALL.n_test and card["epochs"] == recipe.SMALL.epochs
    assert json.loads((tmp_path / f"{name}.json").read_text()) == card
    assert (tmp_path / f"{name}.md").is_file()
    assert card["tflite_bytes"] == (tmp_path / f"{name}.tflite").stat().st_size
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    m = Int8Model.load(tmp_path / f"{name}.tflite")
    assert m.input_shape == tuple(card["input_shape"])
    f = TfliteModel.load(tmp_path / card["float_model"])
    assert not f.is_int8
