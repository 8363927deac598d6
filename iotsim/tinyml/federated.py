"""Federated averaging of a model's last dense layers over data that stays on the nodes.

FedAvg (H. B. McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017, Algorithm 1): in each round every participating node starts from the global
weights, runs E local epochs of minibatch SGD on its own samples and sends its new weights back; the
server averages them, each weighted by its node's sample count. With one full-batch step per node
(E = 1, B = all) this is FedSGD: the average of the nodes' gradients weighted by their sample counts
is the gradient of the mean loss over all their samples, so the round equals one centralised
gradient step on the union of the data (tested).

Only the model's last `k` fully connected layers are trained; the layers before them are a frozen
feature extractor. That is the usual choice on a microcontroller, which can hold the activations
and gradients of a few small layers and has no memory for back-propagation through the whole
network. The head (weights from the model's float twin, the .tflite file) trains in numpy, float64:
softmax cross-entropy, ReLU hidden layers, plain SGD, so rounds run without TensorFlow. The frozen
features come from the float model itself, run with LiteRT keeping its intermediate tensors.

The cost of a local update on the node (`training_cost`): per sample and epoch, the whole model's
forward pass (the features are recomputed on the node) plus the head's backward pass (weight
gradients of every head layer, input gradients of all but its first), counted in MACs; the RAM it
needs holds the head's float32 weights, their gradients, and one batch of its activations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iotsim.errors import InputError

FULLY_CONNECTED = 9  # TFLite builtin operator codes (schema.fbs BuiltinOperator)
SOFTMAX = 25
RELU_FUSED = 1  # ActivationFunctionType.RELU


@dataclass
class DenseHead:
    """The trained layers: weights[i] is (inputs, outputs); every layer but the last is followed by ReLU,
    the last by softmax."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    input_tensor: int = -1  # index of the head's input tensor in the .tflite graph (its frozen features)
    relu: list[bool] = field(default_factory=list)

    def __post_init__(self):
        if not self.relu:
            self.relu = [True] * (len(self.weights) - 1) + [False]

    def copy(self) -> "DenseHead":
        return DenseHead([w.copy() for w in self.weights], [b.copy() for b in self.biases], self.input_tensor,
                         list(self.relu))

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Activations: [input, after layer 1, ..., class probabilities]."""
        acts = [np.asarray(x, dtype=np.float64)]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = acts[-1] @ w + b
            if i < len(self.weights) - 1:
                acts.append(np.maximum(z, 0.0) if self.relu[i] else z)
            else:
                z = z - z.max(axis=1, keepdims=True)
                e = np.exp(z)
                acts.append(e / e.sum(axis=1, keepdims=True))
        return acts

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray,
                           weight: np.ndarray | None = None) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean softmax cross-entropy over the samples (weighted by `weight`, one per sample: sum w_i CE_i /
        sum w_i) and its gradients (weights, biases)."""
        acts = self.forward(x)
        n = x.shape[0]
        p = acts[-1]
        w = np.full(n, 1.0 / n) if weight is None else np.asarray(weight, dtype=np.float64) / np.sum(weight)
        loss = float(-(w * np.log(np.clip(p[np.arange(n), y], 1e-300, None))).sum())
        delta = p.copy()
        delta[np.arange(n), y] -= 1.0
        delta *= w[:, None]
        gw, gb = [None] * len(self.weights), [None] * len(self.weights)
        for i in range(len(self.weights) - 1, -1, -1):
            gw[i] = acts[i].T @ delta
            gb[i] = delta.sum(axis=0)
            if i:
                delta = delta @ self.weights[i].T
                if self.relu[i - 1]:
                    delta = delta * (acts[i] > 0)
        return loss, gw, gb

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[-1].argmax(axis=1)


def local_sgd(head: DenseHead, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int | None = None,
              learning_rate: float = 0.05, rng: np.random.Generator | None = None,
              class_weight: np.ndarray | None = None) -> DenseHead:
    """A node's local update: `epochs` passes of minibatch SGD over its samples (shuffled per epoch with
    `rng`; in order without one). batch_size None: the whole local set (one step per epoch). class_weight:
    a weight per class in the loss (None: all 1; a rare event class weighted up keeps the layer from
    learning to say "normal" always)."""
    out = head.copy()
    n = x.shape[0]
    if n == 0:
        return out
    b = n if batch_size is None else int(batch_size)
    for _ in range(epochs):
        order = rng.permutation(n) if rng is not None else np.arange(n)
        for lo in range(0, n, b):
            idx = order[lo:lo + b]
            _, gw, gb = out.loss_and_gradients(x[idx], y[idx], None if class_weight is None else
                                               np.asarray(class_weight, dtype=np.float64)[y[idx]])
            for i in range(len(out.weights)):
                out.weights[i] = out.weights[i] - learning_rate * gw[i]
                out.biases[i] = out.biases[i] - learning_rate * gb[i]
    return out


def fedavg(head: DenseHead, node_data: list[tuple[np.ndarray, np.ndarray]], **local) -> DenseHead:
    """One FedAvg round: every node's local update from `head`, averaged weighted by its sample count.
    `local`: local_sgd's keywords (epochs, batch_size, learning_rate, rng, class_weight)."""
    counts = np.array([x.shape[0] for x, _ in node_data], dtype=np.float64)
    if counts.sum() == 0:
        raise InputError("a federated round needs at least one sample on some node", field="federated")
    acc_w = [np.zeros_like(w) for w in head.weights]
    acc_b = [np.zeros_like(b) for b in head.biases]
    for (x, y), n in zip(node_data, counts):
        if n == 0:
            continue
        upd = local_sgd(head, x, y, **local)
        for i in range(len(acc_w)):
            acc_w[i] += (n / counts.sum()) * upd.weights[i]
            acc_b[i] += (n / counts.sum()) * upd.biases[i]
    return DenseHead(acc_w, acc_b, head.input_tensor, list(head.relu))


# ---- the head of a .tflite model and its frozen features ------------------------------------------
def head_from_tflite(path: str | Path, layers: int = 1) -> DenseHead:
    """The last `layers` FULLY_CONNECTED layers of a .tflite classifier (ending in softmax): a float model's
    weights, or an int8 model's dequantized (the layers a node runs)."""
    import tflite

    content = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(content, 0)
    graph = model.Subgraphs(0)
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    codes = [model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() for op in ops]
    if not codes or codes[-1] != SOFTMAX:
        raise InputError(f"{path}: a federated head needs a classifier ending in softmax", field="federated")
    fc = [i for i, c in enumerate(codes) if c == FULLY_CONNECTED]
    if len(fc) < layers or fc[-1] != len(ops) - 2 or fc[-layers:] != list(range(len(ops) - 1 - layers, len(ops) - 1)):
        raise InputError(f"{path}: the last {layers} layers before softmax are not all fully connected",
                         field="federated")

    def tensor(index: int) -> np.ndarray:
        """A weight or bias tensor in real values: float32 as stored; int8 (weights) and int32 (biases)
        dequantized with their scales and zero points (per output channel: axis 0)."""
        t = graph.Tensors(index)
        buf = model.Buffers(t.Buffer()).DataAsNumpy()
        kind = {0: np.float32, 9: np.int8, 2: np.int32}.get(t.Type())  # FLOAT32, INT8, INT32
        if kind is None or not isinstance(buf, np.ndarray):
            raise InputError(f"{path}: the head's tensors are neither float32 nor int8/int32 with constant data",
                             field="federated")
        values = np.frombuffer(buf.tobytes(), dtype=kind).reshape(t.ShapeAsNumpy()).astype(np.float64)
        if kind is np.float32:
            return values
        q = t.Quantization()
        scale, zero = q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64)
        shape = (-1,) + (1,) * (values.ndim - 1)
        return (values - zero.reshape(shape)) * scale.reshape(shape)

    weights, biases, relu = [], [], []
    for i in fc[-layers:]:
        op = ops[i]
        w = tensor(op.Inputs(1))  # (outputs, inputs)
        weights.append(w.T.copy())
        biases.append(tensor(op.Inputs(2)) if op.InputsLength() > 2 and op.Inputs(2) >= 0 else np.zeros(w.shape[0]))
        opts = tflite.FullyConnectedOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        relu.append(opts.FusedActivationFunction() == RELU_FUSED)
    if relu[-1]:
        raise InputError(f"{path}: the last dense layer has a fused ReLU before softmax", field="federated")
    return DenseHead(weights, biases, ops[fc[-layers]].Inputs(0), relu)


def frozen_features(model, head: DenseHead, windows: np.ndarray) -> np.ndarray:
    """The head's input for each window (in physical units): the model (a loaded `iotsim.tinyml.runtime`
    model: its input adapter and normalization first) run with LiteRT, its intermediate tensors kept. For
    an int8 model the input is quantized with the model's input scale and the features dequantized: what
    the node's own int8 layers compute."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    from iotsim.tinyml.runtime import _native_info_filtered

    with warnings.catch_warnings():  # keeping every tensor is what we want here
        warnings.simplefilter("ignore", UserWarning)
        interp = Interpreter(model_path=str(model.path), experimental_preserve_all_tensors=True)
    inp = interp.get_input_details()[0]
    x = np.asarray(model.normalize(windows), dtype=np.float32)
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    with _native_info_filtered():  # without LiteRT's delegate line
        interp.resize_tensor_input(inp["index"], [x.shape[0], *inp["shape"][1:]])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
    feats = np.asarray(interp.get_tensor(head.input_tensor), dtype=np.float64)
    detail = next(d for d in interp.get_tensor_details() if d["index"] == head.input_tensor)
    if detail["dtype"] == np.int8:
        scale, zero = detail["quantization"]
        feats = (feats - zero) * scale
    return feats.reshape(x.shape[0], -1)


# ---- the averaged head back into the int8 model the nodes run ---------------------------------------
def write_int8_head(int8_path: str | Path, head: DenseHead, out_path: str | Path, name: str | None = None) -> Path:
    """A copy of the int8 model `int8_path` whose last len(head.weights) fully connected layers hold `head`,
    quantized with the model's own scales (TFLite int8 spec: weights symmetric per output channel,
    round(w / scale) clipped to [-127, 127]; bias int32 round(b / (input scale x weight scale))). Every
    other byte is the original's, so a delta from it carries the head only. The model's card is copied
    beside it (renamed `name`). Activation ranges are the original's: values beyond them saturate."""
    import json

    import tflite

    from iotsim.tinyml.runtime import _find_card

    src = Path(int8_path)
    data = bytearray(src.read_bytes())
    model = tflite.Model.GetRootAsModel(bytes(data), 0)
    graph = model.Subgraphs(0)
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    codes = [model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() for op in ops]
    k = len(head.weights)
    fc = [i for i, c in enumerate(codes) if c == FULLY_CONNECTED][-k:]
    if len(fc) < k or codes[-1] != SOFTMAX or fc != list(range(len(ops) - 1 - k, len(ops) - 1)):
        raise InputError(f"{src}: its last {k} layers before softmax are not all fully connected", field="federated")

    def span(tensor_index: int) -> tuple[int, int]:
        buf = model.Buffers(graph.Tensors(tensor_index).Buffer())
        o = buf._tab.Offset(4)
        return buf._tab.Vector(o), buf._tab.VectorLen(o)

    for layer, i in enumerate(fc):
        op = ops[i]
        wt, bt = graph.Tensors(op.Inputs(1)), graph.Tensors(op.Inputs(2))
        if wt.Type() != 9 or bt.Type() != 2:  # INT8 weights, INT32 bias
            raise InputError(f"{src}: not an int8 model (its layer {i} holds {wt.Type()}/{bt.Type()} tensors)",
                             field="federated")
        w = head.weights[layer].T  # (outputs, inputs) as TFLite stores it
        if tuple(wt.ShapeAsNumpy()) != w.shape:
            raise InputError(f"{src}: layer {i} is {tuple(wt.ShapeAsNumpy())}, the head's {w.shape}", field="federated")
        s_w = wt.Quantization().ScaleAsNumpy().astype(np.float64).reshape(-1, 1)
        s_b = bt.Quantization().ScaleAsNumpy().astype(np.float64)
        q = np.clip(np.round(w / s_w), -127, 127).astype(np.int8)
        qb = np.clip(np.round(head.biases[layer] / s_b), -2**31, 2**31 - 1).astype("<i4")
        for tensor, values in ((op.Inputs(1), q.tobytes()), (op.Inputs(2), qb.tobytes())):
            start, length = span(tensor)
            if length != len(values):
                raise InputError(f"{src}: tensor {tensor} holds {length} B, not {len(values)}", field="federated")
            data[start:start + length] = values
    out = Path(out_path)
    out.write_bytes(bytes(data))
    card = json.loads(_find_card(src).read_text())
    card["name"] = name or out.stem
    out.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return out


# ---- what a local update costs the node ------------------------------------------------------------
@dataclass(frozen=True)
class TrainingCost:
    macs: int  # per local update
    forward_macs: int
    backward_macs: int
    ram_bytes: int
    upload_bytes: int  # the head's new weights, int8 with one float32 scale per tensor

    def seconds(self, clock_hz: float, cycles_per_mac: float) -> float:
        return self.macs * cycles_per_mac / clock_hz


def training_cost(head: DenseHead, model_macs: int, samples: int, *, epochs: int = 1,
                  batch_size: int | None = None) -> TrainingCost:
    """MACs, RAM and upload bytes of one local update of `head` over `samples` windows (see the module
    docstring); `model_macs`: one inference of the whole model."""
    shapes = [w.shape for w in head.weights]
    backward = sum(i * o for i, o in shapes) + sum(i * o for i, o in shapes[1:])  # weight grads + input grads
    per_sample = model_macs + backward
    n = samples * epochs
    b = samples if batch_size is None else min(int(batch_size), samples)
    params = sum(i * o + o for i, o in shapes)
    activations = b * (shapes[0][0] + sum(o for _, o in shapes))
    ram = 4 * (2 * params + 2 * activations)  # weights + gradients; activations + their gradients (float32)
    upload = params + 4 * 2 * len(shapes)  # int8 values + a float32 scale per weight and bias tensor
    return TrainingCost(int(n * per_sample), int(n * model_macs), int(n * backward), int(ram), int(upload))


__all__ = ["DenseHead", "TrainingCost", "fedavg", "frozen_features", "head_from_tflite", "local_sgd", "training_cost",
           "write_int8_head"]
