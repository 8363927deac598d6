"""Training and int8 quantization of the zoo models (needs TensorFlow: `pip install iotsim[train]`).

One recipe (iotsim/tinyml/recipes/*.py) = one workload + one Keras architecture + data sizes,
epochs and a seed. `train_recipe(recipe, out_dir)`:

1. builds train / validation / test sets from the workload's generator, each from its own
   seeded stream (np.random.default_rng([seed, split])): half event windows, of which a
   fraction only partly overlap the event (mask at the start or end of the window), as the
   engine produces them around event boundaries;
2. fits per-channel normalization (mean, std over the training windows) and trains the Keras
   model (cross-entropy with label smoothing 0.1, Adam with cosine decay, the epoch with the
   best validation accuracy kept). Label smoothing bounds the logits: without it the factory
   model's logits spanned about +-80, one int8 logit step was 0.6, and LiteRT's kernel sets
   disagreed by up to 200 LSB on the softmax output;
3. converts to a float32 TFLite twin and to a full-integer TFLite model (post-training
   quantization with a representative dataset of training windows; int8 input and output);
4. evaluates both through `iotsim.tinyml.runtime` -- the same code path the simulator uses --
   on the held-out test set (accuracy, F1 of the positive class);
5. writes `<name>.tflite`, `<float>.tflite`, `<name>.json` (card) and `<name>.md`, each
   atomically (temporary file + rename), so a failed run leaves no half-written model.

TensorFlow is imported only inside the functions that need it: importing this module (or a
recipe) does not import TensorFlow, and the simulator does not need it.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from iotsim.errors import InputError
from iotsim.signals import Workload, get_workload

SPLITS = {"train": 0, "val": 1, "test": 2, "representative": 3}


@dataclass(frozen=True)
class Recipe:
    """Everything needed to rebuild one zoo model, deterministically from `seed`."""

    name: str  # int8 model name, e.g. "farm_soil_int8"
    float_name: str  # float twin, e.g. "farm_soil_float"
    task: str
    workload: str
    build_model: Callable[[tuple[int, int], int], Any]  # (input_shape, n_classes) -> keras.Model
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    batch_size: int = 128
    learning_rate: float = 3e-3
    label_smoothing: float = 0.1  # bounded logits: finer int8 logit scale, calibrated confidences
    seed: int = 0
    positive_fraction: float = 0.5
    partial_fraction: float = 0.4
    min_overlap: float = 0.25
    n_representative: int = 1000
    recipe: str = ""  # module that defines it
    architecture: str = ""
    notes: str = ""
    workload_params: dict = field(default_factory=dict)
    # what the node computes from a window before the model: {"name": "mfcc", "params": {...}}
    # (iotsim.tinyml.adapters); None = the window itself
    input_adapter: dict | None = None
    # extra held-out evaluation (e.g. on real recordings): f(int8_model, float_model) -> dict,
    # stored in the card under "extra_evaluation" ({label: {metric: value}}) and shown in its Markdown
    extra_evaluation: Callable[[Any, Any], dict] | None = None

    def small(self, **changes) -> "Recipe":
        return replace(self, **changes)


# ---------------------------------------------------------------------------- data
def make_dataset(
    workload: Workload,
    n: int,
    rng: np.random.Generator,
    *,
    positive_fraction: float = 0.5,
    partial_fraction: float = 0.4,
    min_overlap: float = 0.25,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n labelled windows: (x float32 (n, W, C), y int64 (n,), event_mask bool (n, W)).

    round(n * positive_fraction) windows carry the event; `partial_fraction` of those overlap
    it only partly (covering [min_overlap, 1) of the window, at its start or end). A window's
    label is the positive class when any of its samples is in the event. Order is shuffled.

    With a `transform` (an input adapter), windows are generated `chunk` at a time and x holds
    the transformed features (n, *feature_shape), so long raw windows (1 s of audio) never
    all sit in memory at once.
    """
    w = workload.window_samples
    n_pos = int(round(n * positive_fraction))
    mask = np.zeros((n, w), dtype=bool)
    mask[:n_pos] = workload.random_event_masks(
        rng, n_pos, partial_fraction=partial_fraction, min_overlap=min_overlap
    )
    mask = mask[rng.permutation(n)]
    if transform is None:
        x = workload.generate(rng, mask)
    else:
        parts = [transform(workload.generate(rng, mask[a : a + chunk])) for a in range(0, n, chunk)]
        x = np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)
    neg = 1 - workload.positive_class if len(workload.class_names) == 2 else 0
    y = np.where(mask.any(axis=1), workload.positive_class, neg).astype(np.int64)
    return x, y, mask


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS[split]])


def recipe_dataset(recipe: Recipe, split: str, n: int | None = None, seed: int | None = None):
    """The (x, y, mask) of a recipe's split, as used in training (or with another seed)."""
    wl = get_workload(recipe.workload, **recipe.workload_params)
    size = {"train": recipe.n_train, "val": recipe.n_val, "test": recipe.n_test}.get(split, recipe.n_representative)
    adapter = recipe_adapter(recipe, wl)
    return make_dataset(
        wl,
        int(n if n is not None else size),
        split_rng(recipe.seed if seed is None else seed, split),
        positive_fraction=recipe.positive_fraction,
        partial_fraction=recipe.partial_fraction,
        min_overlap=recipe.min_overlap,
        transform=None if adapter.name == "identity" else adapter,
    )


def recipe_adapter(recipe: Recipe, workload: Workload):
    """The recipe's input adapter, bound to the workload's window shape."""
    from iotsim.tinyml.adapters import ADAPTERS, InputAdapter

    spec = recipe.input_adapter or {"name": "identity"}
    if spec["name"] not in ADAPTERS:
        raise InputError(f"unknown input adapter {spec['name']!r}", where=recipe.recipe, field="input_adapter")
    return InputAdapter(spec["name"], (workload.window_samples, workload.n_channels), dict(spec.get("params") or {}))


# ---------------------------------------------------------------------------- metrics
def accuracy_f1(y_true: np.ndarray, y_pred: np.ndarray, positive: int) -> tuple[float, float]:
    """Accuracy and F1 of the positive class."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    acc = float(np.mean(y_true == y_pred)) if y_true.size else float("nan")
    tp = int(np.sum((y_pred == positive) & (y_true == positive)))
    fp = int(np.sum((y_pred == positive) & (y_true != positive)))
    fn = int(np.sum((y_pred != positive) & (y_true == positive)))
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    return acc, float(f1)


def count_macs(model) -> int:
    """Multiply-accumulates of one inference, from the Keras layers (conv and dense only).

    Conv1D/Conv2D: output positions x filters x kernel size x input channels / groups;
    DepthwiseConv1D/2D: output positions x channels x multiplier x kernel size;
    SeparableConv: depthwise + pointwise; Dense: positions x inputs x units.
    Pooling, activations, additions and batch norm (folded into convs by the converter) are
    not counted.
    """
    total = 0
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind in ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense"):
            in_shape = tuple(layer.input.shape)
            out_shape = tuple(layer.output.shape)
            positions = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
            in_ch = int(in_shape[-1])
            if kind == "Dense":
                total += positions * in_ch * int(layer.units)
            elif kind.startswith("Depthwise"):
                k = int(np.prod(layer.kernel_size))
                total += positions * in_ch * int(layer.depth_multiplier) * k
            elif kind.startswith("Separable"):
                k = int(np.prod(layer.kernel_size))
                dm = int(layer.depth_multiplier)
                total += positions * in_ch * dm * k + positions * in_ch * dm * int(layer.filters)
            else:
                k = int(np.prod(layer.kernel_size))
                groups = int(getattr(layer, "groups", 1) or 1)
                total += positions * int(layer.filters) * k * in_ch // groups
    return int(total)


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        else:
            yield layer


# ---------------------------------------------------------------------------- files
def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def card_markdown(card: dict) -> str:
    """Human-readable model card."""
    n = card["normalization"]
    lines = [
        f"# {card['name']}",
        "",
        f"{card['task']}",
        "",
        f"- workload: `{card['workload']}` ({card.get('workload_description', '')})",
        f"- classes: {', '.join(f'{i}={c}' for i, c in enumerate(card['class_names']))} "
        f"(positive: {card['class_names'][card['positive_class']]})",
        _input_line(card),
        f"- architecture: {card.get('architecture', '')}",
        f"- float twin: `{card['float_model']}`",
        "",
        "## Test-set results",
        "",
        f"Held-out test set of {card['test_samples']} windows generated with seed {card['seed']} "
        f"(split stream 'test'); {card['dataset']['description']}",
        "Evaluated through `iotsim.tinyml.runtime` "
        f"({card.get('interpreter', 'litert')}), i.e. exactly as the simulator runs the model.",
        "",
        "| model | accuracy | F1 (positive) | bytes |",
        "| --- | --- | --- | --- |",
        f"| float32 | {card['float_accuracy']:.4f} | {card['float_f1']:.4f} | {card['float_tflite_bytes']} |",
        f"| int8 | {card['int8_accuracy']:.4f} | {card['int8_f1']:.4f} | {card['tflite_bytes']} |",
        "",
        "## Size and cost",
        "",
        f"- parameters: {card['params']} in the int8 graph (Keras count: {card.get('keras_params', card['params'])})",
        f"- MACs per inference: {card['macs']} (conv and dense layers)",
        f"- int8 flatbuffer: {card['tflite_bytes']} bytes",
        "",
        "## Input pipeline (what the node must do)",
        "",
        "z = (x - mean) / std per channel; q = clip(round(z / scale) + zero_point, -128, 127) "
        "(round half away from zero)",
        "",
        f"- mean: {', '.join(f'{v:.6g}' for v in n['mean'])}",
        f"- std: {', '.join(f'{v:.6g}' for v in n['std'])}",
        f"- input scale / zero point: {card['input_quantization']['scale']:.8g} / {card['input_quantization']['zero_point']}",
        f"- output scale / zero point: {card['output_quantization']['scale']:.8g} / {card['output_quantization']['zero_point']}",
        "",
        "## Training",
        "",
        f"- recipe: `{card['recipe']}`, seed {card['seed']}, {card['epochs']} epochs, "
        f"{card['dataset']['train']} training / {card['dataset']['val']} validation windows",
        f"- training + conversion time: {card['train_time_s']:.1f} s ({card.get('machine', '')})",
        f"- TensorFlow {card['tensorflow']}, Keras {card.get('keras', '')}",
        f"- rebuild: `python -m {card['recipe']} --out DIR`",
        "",
        "## Interpreter check",
        "",
        f"int8 outputs on the first {card['interpreter_check'].get('rows', card['test_samples'])} test windows, "
        f"compared with {_reference_name(card)} (accuracy with it "
        f"{card['interpreter_check']['reference_int8_accuracy']:.4f}):",
        "",
        "| kernels | identical outputs | largest difference (LSB) | same class |",
        "| --- | --- | --- | --- |",
        *[
            f"| {k} | {v['identical_outputs']:.1%} | {v['max_output_diff_lsb']} | {v['argmax_agreement']:.2%} |"
            for k, v in card["interpreter_check"].items()
            if isinstance(v, dict)
        ],
        "",
        "## Limitations",
        "",
        "Trained and tested on synthetic windows from iotsim's generator only; the accuracy is "
        "that of this workload model, not of a field deployment. Windows that overlap an event "
        f"by less than {card['dataset']['min_overlap']:.0%} are absent from the test set; in a "
        "simulation they occur and are mostly missed (that is detection latency).",
    ]
    extra = card.get("extra_evaluation") or {}
    if extra:
        metrics = sorted({m for v in extra.values() if isinstance(v, dict) for m in v})
        lines += ["", "## Other held-out evaluations", "", "| data | " + " | ".join(metrics) + " |",
                  "| --- |" + " --- |" * len(metrics)]
        for label, vals in extra.items():
            if isinstance(vals, dict):
                lines.append(f"| {label} | " + " | ".join(_fmt(vals.get(m, "")) for m in metrics) + " |")
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    return "\n".join(lines) + "\n"


def _reference_name(card: dict) -> str:
    ref = card["interpreter_check"].get("reference", "litert-reference")
    return "TFLite Micro (the interpreter MCUs run)" if ref == "tflm" else "LiteRT's reference kernels"


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _input_line(card: dict) -> str:
    shape = card["input_shape"]
    channels = ", ".join(card.get("channels", []))
    outputs = f"output: {len(card['class_names'])} int8 scores (softmax)"
    adapter = card.get("input_adapter")
    if adapter:
        window = " x ".join(map(str, adapter["window_shape"]))
        return (f"- input: windows of {window} (samples x channels: {channels}) -> `{adapter['name']}` adapter -> "
                f"{' x '.join(map(str, shape))} features, int8; {outputs}")
    return f"- input: {shape[0]} samples x {shape[-1]} channels ({channels}), int8; {outputs}"


# ---------------------------------------------------------------------------- training
def train_recipe(recipe: Recipe, out_dir: str | Path, *, verbose: int = 0) -> dict:
    """Train, quantize, evaluate and write one recipe's model files; return the card dict."""
    import tensorflow as tf  # training only
    import keras

    from iotsim.tinyml.runtime import TfliteModel

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wl = get_workload(recipe.workload, **recipe.workload_params)
    adapter = recipe_adapter(recipe, wl)
    n_classes = len(wl.class_names)

    # x_* hold the adapter's features (the windows themselves without an adapter)
    x_tr, y_tr, m_tr = recipe_dataset(recipe, "train")
    x_va, y_va, _ = recipe_dataset(recipe, "val")
    x_te, y_te, m_te = recipe_dataset(recipe, "test")
    x_rep, _, _ = recipe_dataset(recipe, "representative")
    input_shape = tuple(int(d) for d in x_tr.shape[1:])
    axes = tuple(range(x_tr.ndim - 1))  # normalization per channel (last axis)

    mean = x_tr.mean(axis=axes).astype(np.float64)
    std = x_tr.std(axis=axes).astype(np.float64)
    std = np.where(std > 0, std, 1.0)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)

    def norm(x):
        return ((x - mean32) / std32).astype(np.float32)

    keras.utils.set_random_seed(recipe.seed)
    tf.config.experimental.enable_op_determinism()
    model = recipe.build_model(input_shape, n_classes)
    steps = int(np.ceil(len(x_tr) / recipe.batch_size)) * recipe.epochs
    lr = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=max(steps, 1), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    best = _keep_best_callback()
    onehot = np.eye(n_classes, dtype=np.float32)
    history = model.fit(
        norm(x_tr),
        onehot[y_tr],
        validation_data=(norm(x_va), onehot[y_va]),
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=[best],
    )
    if best.weights is not None:
        model.set_weights(best.weights)

    float_bytes = _convert(model, None)
    rep = norm(x_rep)
    int8_bytes = _convert(model, rep)

    int8_path = out / f"{recipe.name}.tflite"
    float_path = out / f"{recipe.float_name}.tflite"
    card: dict[str, Any] = {
        "name": recipe.name,
        "task": recipe.task,
        "workload": recipe.workload,
        "workload_description": wl.description,
        "workload_params": dict(recipe.workload_params),
        "channels": list(wl.channels),
        "units": list(wl.units),
        "sample_rate_hz": wl.sample_rate_hz,
        "class_names": list(wl.class_names),
        "positive_class": int(wl.positive_class),
        "input_shape": list(input_shape),
        "window_shape": [wl.window_samples, wl.n_channels],
        **({"input_adapter": adapter.to_card()} if adapter.name != "identity" else {}),
        "normalization": {"mean": [float(v) for v in mean32], "std": [float(v) for v in std32]},
        "architecture": recipe.architecture,
        # trainable weights: batch-norm moving statistics are not parameters (and the converter folds
        # batch norm into the convolutions)
        # parameters of the deployed int8 graph (batch norm folded into the convolutions), as
        # `iotsim models stats` counts them; Keras' own count (with batch-norm statistics) beside it
        "params": _deployed_params(int8_bytes),
        "keras_params": int(model.count_params()),
        "macs": count_macs(model),
        "tflite_bytes": len(int8_bytes),
        "float_model": float_path.name,
        "float_tflite_bytes": len(float_bytes),
        "seed": int(recipe.seed),
        "epochs": int(recipe.epochs),
        "recipe": recipe.recipe,
        "dataset": {
            "train": recipe.n_train,
            "val": recipe.n_val,
            "test": recipe.n_test,
            "representative": recipe.n_representative,
            "positive_fraction": recipe.positive_fraction,
            "partial_fraction": recipe.partial_fraction,
            "min_overlap": recipe.min_overlap,
            "description": (
                f"{recipe.positive_fraction:.0%} event windows, of which {recipe.partial_fraction:.0%} overlap "
                f"the event only partly (mask covering {recipe.min_overlap:.0%}-100% of the window, at its "
                "start or end); label = event if any sample is in the event."
            ),
        },
        "test_samples": int(len(y_te)),
        "best_epoch": int(best.epoch + 1),
        "val_accuracy": float(best.value),
        "keras_history": {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "notes": recipe.notes,
    }
    # Provisional card so the runtime can load the fresh files for evaluation.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmpd = Path(tmp)
        (tmpd / int8_path.name).write_bytes(int8_bytes)
        (tmpd / float_path.name).write_bytes(float_bytes)
        (tmpd / f"{recipe.name}.json").write_text(json.dumps(card))
        m8 = TfliteModel.load(tmpd / int8_path.name, require_int8=True)  # the simulator's default kernels
        mf = TfliteModel.load(tmpd / float_path.name)
        q_te = m8.quantize_features(x_te)
        raw8 = m8.invoke(q_te).astype(np.int32)
        pred8 = np.argmax(raw8, axis=1)
        predf = np.argmax(mf.scores_features(x_te), axis=1)
        check = interpreter_check(tmpd / int8_path.name, q_te, y_te, wl.positive_class)
        card["interpreter"] = m8.interpreter_name
        card["interpreter_check"] = check
        card["input_quantization"] = {"scale": m8.input_scale, "zero_point": m8.input_zero_point}
        card["output_quantization"] = {"scale": m8.output_scale, "zero_point": m8.output_zero_point}
        if recipe.extra_evaluation is not None:
            card["extra_evaluation"] = recipe.extra_evaluation(m8, mf)
    acc_f, f1_f = accuracy_f1(y_te, predf, wl.positive_class)
    acc_8, f1_8 = accuracy_f1(y_te, pred8, wl.positive_class)
    full = m_te.all(axis=1)
    part = m_te.any(axis=1) & ~full
    card.update(
        {
            "float_accuracy": round(acc_f, 5),
            "int8_accuracy": round(acc_8, 5),
            "float_f1": round(f1_f, 5),
            "int8_f1": round(f1_8, 5),
            "int8_float_agreement": round(float(np.mean(pred8 == predf)), 5),
            "int8_recall_full_overlap": round(float(np.mean(pred8[full] == wl.positive_class)), 5) if full.any() else None,
            "int8_recall_partial_overlap": round(float(np.mean(pred8[part] == wl.positive_class)), 5) if part.any() else None,
            "int8_false_positive_rate": round(float(np.mean(pred8[~m_te.any(axis=1)] == wl.positive_class)), 5),
        }
    )
    card["train_time_s"] = round(time.perf_counter() - t_start, 2)
    card["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"

    _atomic_write(int8_path, int8_bytes)
    _atomic_write(float_path, float_bytes)
    _atomic_write(out / f"{recipe.name}.json", (json.dumps(card, indent=2) + "\n").encode())
    _atomic_write(out / f"{recipe.name}.md", card_markdown(card).encode())
    return card


INTERPRETER_CHECK_ROWS = 2000  # TFLite Micro runs row by row: check the first rows of the test set


def interpreter_check(int8_path: Path, q: np.ndarray, y: np.ndarray, positive: int) -> dict:
    """How LiteRT's kernel sets compare with TFLite Micro (the MCU's reference) on int8 inputs `q`."""
    from iotsim.tinyml.runtime import RawInterpreter

    content = Path(int8_path).read_bytes()
    q = q[:INTERPRETER_CHECK_ROWS]
    golden = RawInterpreter(content, "tflm", where=str(int8_path)).invoke(q).astype(np.int32)
    ref_pred = np.argmax(golden, axis=1)
    check: dict[str, Any] = {
        "reference": "tflm",
        "rows": int(len(q)),
        "reference_int8_accuracy": round(accuracy_f1(y[: len(q)], ref_pred, positive)[0], 5),
    }
    for res in ("reference", "builtin", "xnnpack"):
        other = RawInterpreter(content, res, where=str(int8_path))
        raw = other.invoke(q).astype(np.int32)
        lsb = np.abs(raw - golden).max(axis=1)
        check[other.interpreter_name] = {
            "identical_outputs": round(float(np.mean(lsb == 0)), 5),
            "max_output_diff_lsb": int(lsb.max()),
            "argmax_agreement": round(float(np.mean(np.argmax(raw, axis=1) == ref_pred)), 5),
        }
    return check


def _deployed_params(int8_bytes: bytes) -> int:
    from iotsim.tinyml.stats import model_stats

    return int(model_stats(int8_bytes, where="converted model")["totals"]["params"])


def _keep_best_callback():
    """A Keras callback that remembers the weights with the best validation accuracy."""
    import keras

    class KeepBest(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = None
            self.value = -1.0
            self.epoch = -1

        def on_epoch_end(self, epoch, logs=None):
            v = float((logs or {}).get("val_accuracy", -1.0))
            if v > self.value:
                self.value, self.epoch = v, epoch
                self.weights = [w.copy() for w in self.model.get_weights()]

    return KeepBest()


def _convert(model, representative: np.ndarray | None) -> bytes:
    """Keras model -> TFLite flatbuffer: float32, or full-int8 with int8 input/output."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        rep = representative

        def gen():
            for i in range(len(rep)):
                yield [rep[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    try:
        with warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": legacy quantized_input_stats, unused
            # with a representative dataset (the converter calibrates the input itself).
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            return bytes(conv.convert())
    except Exception as exc:  # converter errors are many types; report one clear error
        raise InputError(f"TFLite conversion failed: {exc}", where=getattr(model, "name", "model")) from exc


def main_for(recipe_full: Recipe, recipe_small: Recipe, argv: list[str] | None = None) -> dict:
    """Command-line entry shared by the recipe modules: --out DIR [--small] [--quiet]."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m {recipe_full.recipe}", description=f"Rebuild {recipe_full.name}")
    ap.add_argument("--out", default=None, help="output folder (default: iotsim/zoo)")
    ap.add_argument("--small", action="store_true", help="reduced configuration (for tests)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    from iotsim.paths import ZOO_DIR

    recipe = recipe_small if args.small else recipe_full
    card = train_recipe(recipe, args.out or ZOO_DIR, verbose=0 if args.quiet else 2)
    keys = ("name", "float_accuracy", "int8_accuracy", "float_f1", "int8_f1", "params", "macs", "tflite_bytes", "train_time_s")
    print(json.dumps({k: card[k] for k in keys}, indent=2))
    return card
