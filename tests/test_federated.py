"""Federated averaging of a model's last dense layers: gradients against finite differences, FedSGD
against one centralised step, the head read from the float model against the model itself, a
round-by-round recovery on the farm's data, and the on-device cost worked by hand."""

from pathlib import Path

import numpy as np
import pytest

from iotsim.errors import InputError
from iotsim.tinyml.federated import (DenseHead, fedavg, frozen_features, head_from_tflite, local_sgd, training_cost,
                                     write_int8_head)
from iotsim.tinyml.recipes import get_recipe
from iotsim.tinyml.runtime import load_model
from iotsim.tinyml.train import recipe_dataset

ZOO = Path(__file__).resolve().parents[1] / "iotsim" / "zoo"


def _head(rng, sizes=(6, 5, 3)):
    return DenseHead([rng.normal(0, 0.7, (a, b)) for a, b in zip(sizes, sizes[1:])],
                     [rng.normal(0, 0.1, b) for b in sizes[1:]])


def test_gradients_equal_finite_differences():
    rng = np.random.default_rng(0)
    head = _head(rng)
    x, y = rng.normal(size=(7, 6)), rng.integers(0, 3, 7)
    _, gw, gb = head.loss_and_gradients(x, y)
    eps = 1e-6
    for layer in range(2):
        for params, grads in ((head.weights, gw), (head.biases, gb)):
            flat = params[layer].reshape(-1)
            for k in rng.choice(flat.size, min(4, flat.size), replace=False):
                old = flat[k]
                flat[k] = old + eps
                up = head.loss_and_gradients(x, y)[0]
                flat[k] = old - eps
                down = head.loss_and_gradients(x, y)[0]
                flat[k] = old
                assert grads[layer].reshape(-1)[k] == pytest.approx((up - down) / (2 * eps), abs=1e-7)


def test_one_full_batch_round_is_one_centralised_step():
    """FedSGD: nodes with different data and sample counts, one full-batch step each, averaged by sample
    count, equal one gradient step on the union."""
    rng = np.random.default_rng(1)
    head = _head(rng)
    nodes = [(rng.normal(size=(n, 6)), rng.integers(0, 3, n)) for n in (5, 11, 2, 9)]
    fed = fedavg(head, nodes, epochs=1, batch_size=None, learning_rate=0.3)
    x = np.concatenate([a for a, _ in nodes])
    y = np.concatenate([b for _, b in nodes])
    central = local_sgd(head, x, y, epochs=1, batch_size=None, learning_rate=0.3)
    for a, b in zip(fed.weights + fed.biases, central.weights + central.biases):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert not np.allclose(fed.weights[0], head.weights[0])  # it moved


def test_equal_data_on_every_node_is_centralised_training():
    """Every node holding the same samples: any number of local epochs and minibatches gives the
    centralised run on those samples."""
    rng = np.random.default_rng(2)
    head = _head(rng)
    x, y = rng.normal(size=(12, 6)), rng.integers(0, 3, 12)
    fed = fedavg(head, [(x, y)] * 5, epochs=3, batch_size=4, learning_rate=0.1)
    central = local_sgd(head, x, y, epochs=3, batch_size=4, learning_rate=0.1)
    for a, b in zip(fed.weights + fed.biases, central.weights + central.biases):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def farm():
    model = load_model(ZOO / "farm_soil_float.tflite")
    x, y, _ = recipe_dataset(get_recipe("farm"), "test", n=2000)
    return model, x, y


def test_the_head_read_from_the_float_model_is_the_model(farm):
    model, x, y = farm
    head = head_from_tflite(model.path, layers=2)
    assert [w.shape for w in head.weights] == [(64, 32), (32, 2)] and head.relu == [True, False]
    probs = head.forward(frozen_features(model, head, x[:300]))[-1]
    np.testing.assert_allclose(probs, model.scores(x[:300]), atol=1e-5)


def test_federated_rounds_recover_a_scrambled_last_layer_on_non_iid_nodes(farm):
    """Ten nodes, each holding mostly one class (non-IID): FedAvg rounds bring a last layer that gets almost
    every window wrong back to near the trained model's accuracy."""
    model, x, y = farm
    head = head_from_tflite(model.path, layers=1)
    feats = frozen_features(model, head, x)
    trained = float((head.predict(feats) == y).mean())
    rng = np.random.default_rng(3)
    start = head.copy()  # the trained layer with its classes swapped: wrong almost everywhere
    start.weights[0] = head.weights[0][:, ::-1].copy()
    start.biases[0] = head.biases[0][::-1].copy()
    order = np.argsort(y + rng.random(y.size) * 0.6)  # sorted by class, a little mixed at the border
    nodes = [(feats[idx], y[idx]) for idx in np.array_split(order, 10)]
    assert sum(len(np.unique(b)) == 1 for _, b in nodes) >= 6  # most nodes see one class only
    g = start
    for _ in range(15):
        g = fedavg(g, nodes, epochs=2, batch_size=16, learning_rate=0.05, rng=rng)
    acc = float((g.predict(feats) == y).mean())
    assert float((start.predict(feats) == y).mean()) < 0.2 and acc > 0.9
    assert acc > trained - 0.05


def test_the_cost_of_a_local_update_worked_by_hand(farm):
    """Farm head (64 -> 32 -> 2), 100 windows, one epoch, one batch: forward 4,416 MACs per window (the
    whole model); backward: weight gradients 64 x 32 + 32 x 2 = 2,112, input gradient of the second layer
    32 x 2 = 64; 2,146 parameters; activations 100 x (64 + 32 + 2) = 9,800; RAM 4 x (2 x 2,146 +
    2 x 9,800) = 95,568 B; upload 2,146 int8 values + 4 float32 scales = 2,162 B."""
    model, _, _ = farm
    head = head_from_tflite(model.path, layers=2)
    cost = training_cost(head, model_macs=4416, samples=100)
    assert (cost.forward_macs, cost.backward_macs, cost.macs) == (441_600, 217_600, 659_200)
    assert cost.ram_bytes == 95_568 and cost.upload_bytes == 2_162
    assert cost.seconds(64e6, 5.0) == pytest.approx(659_200 * 5 / 64e6)
    assert training_cost(head, 4416, 100, epochs=3, batch_size=10).ram_bytes == 4 * (2 * 2146 + 2 * 980)


def test_the_int8_models_head_is_its_layers_dequantized(farm):
    """A node trains the layers it runs: the int8 model's head, dequantized per output channel, is the float
    twin's within half a quantization step, and on the int8 model's own (dequantized) features it decides
    as the int8 model does."""
    model, x, _ = farm
    int8 = load_model(ZOO / "farm_soil_int8.tflite")
    for layers in (1, 2):
        h8, hf = head_from_tflite(int8.path, layers), head_from_tflite(model.path, layers)
        for w8, wf in zip(h8.weights, hf.weights):
            step = np.abs(wf).max(axis=0) / 127  # per output channel (columns here)
            assert (np.abs(w8 - wf) <= step / 2 + 1e-9).all()
        agree = (h8.predict(frozen_features(int8, h8, x)) == int8.predict(x)[0]).mean()
        assert agree > 0.99


def test_heads_that_cannot_be_trained_are_refused():
    with pytest.raises(InputError, match="not all fully connected"):
        head_from_tflite(ZOO / "farm_soil_float.tflite", layers=4)
    with pytest.raises(InputError, match="at least one sample"):
        fedavg(_head(np.random.default_rng(0)), [(np.zeros((0, 6)), np.zeros(0, np.int64))])


@pytest.mark.parametrize("layers", [1, 2])
def test_the_float_head_quantized_back_is_the_int8_model_byte_for_byte(farm, tmp_path, layers):
    """The TFLite int8 scheme with the model's own scales (per-channel symmetric weights, int32 bias at
    input x weight scale) turns the float twin's head into exactly the int8 model's bytes."""
    model, _, _ = farm
    head = head_from_tflite(model.path, layers=layers)
    out = write_int8_head(ZOO / "farm_soil_int8.tflite", head, tmp_path / "again.tflite")
    assert out.read_bytes() == (ZOO / "farm_soil_int8.tflite").read_bytes()
    assert load_model(out).name == "again"


def test_a_federated_head_goes_back_into_the_int8_model_as_a_small_delta(farm, tmp_path):
    """The averaged head of the non-IID rounds, quantized into the int8 model: the nodes' model is right
    again (LiteRT, int8) and the update carries the last layer, not the model."""
    from iotsim.ota.delta import create_delta

    model, x, y = farm
    head = head_from_tflite(model.path, layers=1)
    feats = frozen_features(model, head, x)
    rng = np.random.default_rng(4)
    g = head.copy()
    g.weights[0], g.biases[0] = head.weights[0][:, ::-1].copy(), head.biases[0][::-1].copy()
    swapped = load_model(write_int8_head(ZOO / "farm_soil_int8.tflite", g, tmp_path / "swapped.tflite"))
    nodes = [(feats[i::10], y[i::10]) for i in range(10)]
    for _ in range(10):
        g = fedavg(g, nodes, epochs=2, batch_size=16, learning_rate=0.05, rng=rng)
    fed = write_int8_head(ZOO / "farm_soil_int8.tflite", g, tmp_path / "federated.tflite")
    assert (swapped.predict(x)[0] == y).mean() < 0.2
    assert (load_model(fed).predict(x)[0] == y).mean() > 0.9
    base = (ZOO / "farm_soil_int8.tflite").read_bytes()
    changed = sum(a != b for a, b in zip(base, fed.read_bytes()))
    assert 0 < changed <= 2 * 32 + 2 * 4  # the last layer's 64 int8 weights and 2 int32 biases at most
    assert len(create_delta(base, fed.read_bytes())) < 0.05 * len(base)


def test_class_weights_count_a_sample_as_its_weight_in_copies():
    """A loss weighted 3:1 by class equals the plain loss over the samples with each event copied three
    times, and so do its gradients; FedAvg with class weights runs that weighted SGD on every node."""
    rng = np.random.default_rng(5)
    head = _head(rng, sizes=(6, 4, 2))
    x, y = rng.normal(size=(10, 6)), rng.integers(0, 2, 10)
    w = np.where(y == 1, 3.0, 1.0)
    loss, gw, gb = head.loss_and_gradients(x, y, w)
    copies = np.repeat(np.arange(10), w.astype(int))
    loss2, gw2, gb2 = head.loss_and_gradients(x[copies], y[copies])
    assert loss == pytest.approx(loss2, rel=1e-12)
    for a, b in zip(gw + gb, gw2 + gb2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    one = local_sgd(head, x, y, epochs=1, batch_size=None, learning_rate=0.1, class_weight=np.array([1.0, 3.0]))
    two = local_sgd(head, x[copies], y[copies], epochs=1, batch_size=None, learning_rate=0.1)
    for a, b in zip(one.weights, two.weights):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
