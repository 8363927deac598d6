"""Run one model through several interpreters on the same inputs and compare their outputs.

TFLite Micro ("tflm", the `tflite-micro` Python runtime) is the reference: it is what runs on
the MCU (shared/reference/TOOLCHAIN.md). `compare_interpreters` feeds the same input tensors to
each interpreter through `iotsim.tinyml.runtime.RawInterpreter` and reports, for each pair
(each interpreter against the reference first, then the other pairs in the order given):

- rows_differing: rows (inference results) whose output tensor differs in any element;
- elements_differing and max_lsb: how many output elements differ and the largest absolute
  difference in output quantization steps (LSB) -- for an integer output, the difference of
  the raw values; for a float output max_lsb is null and max_abs_diff carries it;
- top1_agreement: fraction of rows whose argmax over the flattened output row is the same.
  It is reported for every model, but it means "same decision" only for classifiers:
  `classifier` is true when the output has at least 2 elements and is produced by SOFTMAX
  or LOG_SOFTMAX (looking through RESHAPE/SQUEEZE/QUANTIZE/DEQUANTIZE), false otherwise
  (e.g. the MLPerf AD autoencoder, whose 640 outputs are a reconstruction). A caller who knows
  better (a logits classifier) passes `classifier=True`.

Per interpreter it reports the time per row (wall time of one `invoke` over all rows, after
one untimed warm-up call, divided by the rows; TFLM runs rows one by one, LiteRT in one batch)
or, when the interpreter cannot load or run the model, an error string: one broken
interpreter does not stop the comparison.

Inputs: by default random tensors from `numpy.random.default_rng(seed)` -- int8/uint8/int16
inputs uniform over the dtype's whole range, float inputs standard normal; or given tensors
(`inputs=`), e.g. real windows of a zoo model's workload from `zoo_inputs`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from iotsim.errors import InputError
from iotsim.tinyml.runtime import INTERPRETERS, RawInterpreter, interpreter_name
from iotsim.tinyml.stats import ModelGraph, read_model

DEFAULT_INTERPRETERS = ("tflm", "reference", "builtin", "xnnpack")
REFERENCE = "tflm"
_PASS_THROUGH = {"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "EXPAND_DIMS"}
_NP_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "float32": np.float32,
              "float16": np.float16}


def _content(path_or_bytes, where: str | None) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), where or "model"
    path = Path(path_or_bytes)
    where = where or str(path)
    if not path.is_file():
        raise InputError("model file not found", where=where)
    return path.read_bytes(), where


def _input_dtype(graph: ModelGraph) -> np.dtype:
    tin = graph.tensors[graph.inputs[0]]
    if tin.dtype not in _NP_DTYPES:
        raise InputError(f"unsupported input dtype {tin.dtype}", where=graph.where)
    return np.dtype(_NP_DTYPES[tin.dtype])


def _check_inputs(graph: ModelGraph, inputs) -> np.ndarray:
    """Given input tensors as an array of the model's input dtype, shape (n >= 1, *input_shape)."""
    in_shape = graph.tensors[graph.inputs[0]].shape[1:]
    in_dtype = _input_dtype(graph)
    x = np.asarray(inputs)
    if x.ndim != 1 + len(in_shape) or tuple(x.shape[1:]) != tuple(in_shape):
        raise InputError(f"inputs must have shape (n, {', '.join(map(str, in_shape))}), got {x.shape}", field="inputs")
    if x.shape[0] < 1:
        raise InputError("inputs hold no rows", field="inputs")
    if x.dtype != in_dtype:
        if np.issubdtype(in_dtype, np.integer):
            info = np.iinfo(in_dtype)
            if not np.issubdtype(x.dtype, np.integer) or x.min() < info.min or x.max() > info.max:
                raise InputError(f"inputs must be {in_dtype} tensor values, got {x.dtype}", field="inputs")
        x = x.astype(in_dtype)
    return np.ascontiguousarray(x)


def _check_single_io(graph: ModelGraph) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InputError(
            f"expected a model with one input and one output, got {len(graph.inputs)} and {len(graph.outputs)}",
            where=graph.where,
        )


def is_classifier(graph: ModelGraph) -> bool:
    """True when the single output has >= 2 elements and comes from a SOFTMAX / LOG_SOFTMAX."""
    if len(graph.outputs) != 1:
        return False
    t = graph.outputs[0]
    if graph.tensors[t].elements < 2:
        return False
    producers = graph.producers()
    for _ in range(len(graph.ops) + 1):
        op_index = producers.get(t)
        if op_index is None:
            return False
        op = graph.ops[op_index]
        if op.name in ("SOFTMAX", "LOG_SOFTMAX"):
            return True
        if op.name not in _PASS_THROUGH or not op.inputs:
            return False
        t = op.inputs[0]
    return False


def random_inputs(shape: tuple[int, ...], dtype, n: int, seed: int = 0) -> np.ndarray:
    """n random input tensors (n, *shape): integers uniform over the dtype's range, floats N(0, 1)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return rng.integers(int(info.min), int(info.max), size=(n, *shape), endpoint=True, dtype=dt)
    return rng.standard_normal((n, *shape)).astype(dt)


def _labels(interpreters) -> list[str]:
    """Interpreter labels: the op_resolver names, a repeated one as "name#2", "name#3", ..."""
    if isinstance(interpreters, str):
        interpreters = [interpreters]
    labels: list[str] = []
    for name in interpreters:
        if name not in INTERPRETERS:
            raise InputError(f"unknown interpreter {name!r}; choose from {', '.join(INTERPRETERS)}",
                             field="interpreters")
        label, k = name, 1
        while label in labels:
            k += 1
            label = f"{name}#{k}"
        labels.append(label)
    return labels


def _resolver(label: str) -> str:
    return label.split("#", 1)[0]


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    ref = REFERENCE if REFERENCE in names else names[0]  # the first "tflm" instance
    first = [(ref, b) for b in names if b != ref]
    rest = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if ref not in (a, b)]
    return first + rest


def _compare_outputs(a: np.ndarray, b: np.ndarray, integer: bool) -> dict:
    n = a.shape[0]
    fa = a.reshape(n, -1)
    fb = b.reshape(n, -1)
    if integer:
        diff = np.abs(fa.astype(np.int64) - fb.astype(np.int64))
    else:
        diff = np.abs(fa.astype(np.float64) - fb.astype(np.float64))
        diff = np.where(np.isnan(fa) & np.isnan(fb), 0.0, diff)
    differs = diff != 0
    max_diff = diff.max() if diff.size else 0
    top1 = float(np.mean(np.argmax(fa, axis=1) == np.argmax(fb, axis=1))) if n and fa.shape[1] else 1.0
    return {
        "rows": int(n),
        "rows_differing": int(differs.any(axis=1).sum()),
        "elements_differing": int(differs.sum()),
        "max_lsb": int(max_diff) if integer else None,
        "max_abs_diff": int(max_diff) if integer else float(max_diff),
        "top1_agreement": top1,
    }


def run_interpreters(
    content: bytes, x: np.ndarray, interpreters, *, where: str = "model"
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Outputs {label: (n, *output_shape)} and reports {label: {interpreter_name, us_per_row, error}}.

    `interpreters` are labels from `_labels` (op_resolver names; "name#2" for a second instance).
    """
    outputs: dict[str, np.ndarray] = {}
    reports: dict[str, dict] = {}
    for name in interpreters:
        rep: dict = {"interpreter_name": None, "us_per_row": None, "error": None}
        reports[name] = rep
        try:
            resolver = _resolver(name)
            rep["interpreter_name"] = interpreter_name(resolver)
            raw = RawInterpreter(content, resolver, where=where, batch_size=max(1, x.shape[0]))
            raw.invoke(x[:1] if resolver == "tflm" else x)  # warm-up: allocation, lazy kernel init
            t0 = time.perf_counter()
            y = raw.invoke(x)
            dt = time.perf_counter() - t0
        except InputError as exc:
            rep["error"] = exc.message
            continue
        except Exception as exc:  # noqa: BLE001 -- whatever a binding raises is reported per interpreter
            rep["error"] = f"{type(exc).__name__}: {exc}"
            continue
        rep["us_per_row"] = dt / max(1, x.shape[0]) * 1e6
        outputs[name] = y
    return outputs, reports


def compare_interpreters(
    path_or_bytes,
    *,
    vectors: int = 30,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    interpreters=DEFAULT_INTERPRETERS,
    classifier: bool | None = None,
    where: str | None = None,
) -> dict:
    """Compare the outputs of several interpreters on the same inputs (see module doc).

    Returns a JSON-ready dict: model, vectors, seed, input_source ("random" | "given"),
    input_shape, input_dtype, output_shape, output_dtype, output_quantization (scale,
    zero_point), classifier, reference, interpreters {name: {interpreter_name, us_per_row,
    error}}, pairs [{a, b, rows, rows_differing, elements_differing, max_lsb, max_abs_diff,
    top1_agreement} or {a, b, error}].
    """
    content, where = _content(path_or_bytes, where)
    graph = read_model(content, where=where)
    names = _labels(interpreters)
    if not names:
        raise InputError("no interpreter to compare", field="interpreters")
    _check_single_io(graph)
    tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    in_shape = tin.shape[1:]
    if inputs is None:
        if int(vectors) < 1:
            raise InputError(f"vectors must be >= 1, got {vectors}", field="vectors")
        x = random_inputs(in_shape, _input_dtype(graph), int(vectors), seed)
        source = "random"
    else:
        x = _check_inputs(graph, inputs)
        source = "given"

    outputs, reports = run_interpreters(content, x, names, where=where)
    integer = tout.dtype in ("int8", "uint8", "int16", "int32")
    pairs = []
    for a, b in _pairs(names):
        if a not in outputs or b not in outputs:
            failed = [n for n in (a, b) if n not in outputs]
            pairs.append({"a": a, "b": b, "error": f"not compared: {', '.join(failed)} failed"})
            continue
        pairs.append({"a": a, "b": b, **_compare_outputs(outputs[a], outputs[b], integer)})
    q = tout.quantization
    return {
        "model": where,
        "vectors": int(x.shape[0]),
        "seed": int(seed) if source == "random" else None,
        "input_source": source,
        "input_shape": list(in_shape),
        "input_dtype": tin.dtype,
        "output_shape": list(tout.shape[1:]),
        "output_dtype": tout.dtype,
        "output_quantization": {"scale": q.scales[0], "zero_point": q.zero_points[0]} if q.scales else None,
        "classifier": is_classifier(graph) if classifier is None else bool(classifier),
        "reference": REFERENCE if REFERENCE in names else names[0],
        "interpreters": reports,
        "pairs": pairs,
    }


def zoo_inputs(model_name: str, n: int, seed: int = 0, *, return_labels: bool = False):
    """n real input tensors for a zoo model: windows of its card's workload, quantized.

    Windows come from `make_dataset` on `get_workload(card["workload"], **card["workload_params"])`
    with the card's dataset mix (positive / partial fractions), from `default_rng(seed)`, and
    go through the model's own pre-processing (input adapter, normalization, int8
    quantization: `TfliteModel.quantize`). With return_labels, returns (inputs, labels).
    """
    from iotsim.signals import get_workload
    from iotsim.tinyml.runtime import TfliteModel
    from iotsim.tinyml.train import make_dataset

    if int(n) < 1:
        raise InputError(f"n must be >= 1, got {n}", field="n")
    model = TfliteModel.load(model_name, require_int8=True)
    card = model.card
    if not card.get("workload"):
        raise InputError("the model card names no workload to draw windows from", where=str(model.card_path),
                         field="workload")
    wl = get_workload(card["workload"], **(card.get("workload_params") or {}))
    ds = card.get("dataset") or {}
    kwargs = {k: float(ds[k]) for k in ("positive_fraction", "partial_fraction", "min_overlap") if k in ds}
    windows, labels, _ = make_dataset(wl, int(n), np.random.default_rng(seed), **kwargs)
    q = model.quantize(windows)
    return (q, labels) if return_labels else q


def format_comparison(result: dict) -> str:
    """A plain-text report of `compare_interpreters` output: timings and the pair table."""
    from iotsim.tinyml.stats import text_table

    oq = result.get("output_quantization")
    lines = [
        f"model: {result['model']}",
        f"  {result['vectors']} {result['input_source']} input rows "
        + (f"(seed {result['seed']}) " if result["seed"] is not None else "")
        + f"of {'x'.join(map(str, result['input_shape']))} {result['input_dtype']}; "
        f"output {'x'.join(map(str, result['output_shape']))} {result['output_dtype']}"
        + (f" (scale {oq['scale']:.6g}, zero point {oq['zero_point']})" if oq else "")
        + f"; classifier: {'yes' if result['classifier'] else 'no'}; reference: {result['reference']}",
        "",
    ]
    rows = []
    for name, rep in result["interpreters"].items():
        us = rep["us_per_row"]
        rows.append([name, rep["interpreter_name"] or "", f"{us:,.1f}" if us is not None else "-",
                     rep["error"] or "ok"])
    lines += text_table(["interpreter", "name", "us/row", "status"], rows, right={2})
    lines.append("")
    rows = []
    for p in result["pairs"]:
        if "error" in p:
            rows.append([f"{p['a']} vs {p['b']}", "-", "-", "-", p["error"]])
            continue
        lsb = p["max_lsb"] if p["max_lsb"] is not None else f"{p['max_abs_diff']:.3g} (abs)"
        top1 = f"{100 * p['top1_agreement']:.1f} %"
        rows.append([f"{p['a']} vs {p['b']}", f"{p['rows_differing']}/{p['rows']}", lsb, top1, ""])
    lines += text_table(["pair", "rows differing", "max LSB", "top-1 agreement", "note"], rows, right={1, 2, 3})
    if not result["classifier"]:
        lines.append("top-1 agreement: argmax of the flattened output; not a classifier, so not a decision")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- op by op
def op_divergence(path_or_bytes, inputs: np.ndarray, a: str = "tflm", b: str = "reference", *,
                  where: str | None = None) -> list[dict]:
    """Where two interpreters part ways: per op, how its output tensors differ between a and b.

    Runs each row of `inputs` (n, *input_shape) through both interpreters keeping every tensor,
    and returns one dict per op in execution order: index, op, rows_differing, max_lsb (over
    the op's outputs). The first op with rows_differing > 0 is where the disagreement starts
    (later ops inherit it). Slow (row by row): use tens to hundreds of rows.
    """
    content, where = _content(path_or_bytes, where)
    graph = read_model(content, where=where)
    _check_single_io(graph)
    x = _check_inputs(graph, inputs)
    tensors = sorted({t for op in graph.ops for t in op.outputs if t >= 0})
    a, b = (_resolver(n) for n in _labels([a, b]))
    run_a = RawInterpreter(content, a, where=where, keep_all_tensors=True).tensors
    run_b = RawInterpreter(content, b, where=where, keep_all_tensors=True).tensors
    rows = {op.index: 0 for op in graph.ops}
    worst = {op.index: 0 for op in graph.ops}
    for i in range(x.shape[0]):
        va, vb = run_a(x[i], tensors), run_b(x[i], tensors)
        for op in graph.ops:
            d = 0
            for t in op.outputs:
                if t < 0:
                    continue
                ta, tb = va[t].reshape(-1), vb[t].reshape(-1)
                if ta.size != tb.size:
                    d = max(d, 1 << 30)  # different shapes: count as differing
                    continue
                if ta.size:
                    d = max(d, float(np.abs(ta.astype(np.float64) - tb.astype(np.float64)).max()))
            if d:
                rows[op.index] += 1
                worst[op.index] = max(worst[op.index], d)
    return [
        {"index": op.index, "op": op.name, "rows": int(x.shape[0]), "rows_differing": rows[op.index],
         "max_lsb": int(worst[op.index]) if float(worst[op.index]).is_integer() else float(worst[op.index])}
        for op in graph.ops
    ]
