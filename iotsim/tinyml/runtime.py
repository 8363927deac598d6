"""How the simulator runs a TinyML model: the one place that decides it.

A model is a `.tflite` file plus its model card (`<stem>.json` beside it). The card carries the
class names, the positive class, the input shape and the per-channel normalization applied to
windows in physical units before quantization. Inference runs in LiteRT (ai-edge-litert; no
TensorFlow needed), in large batches: the interpreter's input is resized to
[batch, *input_shape] and one interpreter is kept per batch size.

Pipeline for an int8 model (what the node's firmware does, step by step):

    z = (x - mean) / std                                 per channel, float32
    q = clip(round_half_away_from_zero(z / s_in) + zp_in, -128, 127)  -> int8 input tensor
    y = invoke(q)                                        int8 output tensor
    p = (y - zp_out) * s_out                             dequantized scores (softmax probs)

Rounding half away from zero is what TFLite's reference QUANTIZE kernel does (std::round in
tensorflow/lite/kernels/internal/reference/quantize.h); np.round (half to even) differs only on
exact ties. A float twin (float32 input/output) skips the quantize/dequantize steps.

Which interpreter runs (`op_resolver`; by default "builtin" for int8 models and "xnnpack" for
float models):
- "builtin": LiteRT's optimized built-in kernels, no delegate ("litert-builtin");
- "xnnpack": LiteRT's default delegate, XNNPACK ("litert-xnnpack"); for float32 models it is
  the fast path and there is no requantization to disagree about;
- "reference": LiteRT's reference kernels, BUILTIN_REF ("litert-reference"), slow;
- "tflm": TFLite Micro's Python runtime ("tflm"), row by row: the interpreter MCUs run and the
  golden reference for bit-exactness (shared/reference/TOOLCHAIN.md), too slow for whole fleets.
The int8 default is the LiteRT kernel set closest to TFLite Micro, measured on the first 2,000
test windows of each zoo model (cards' `interpreter_check`; `iotsim models compare` reruns it):

| model | kernels | outputs identical to TFLM | largest difference | same class as TFLM |
| --- | --- | --- | --- | --- |
| factory_bearing_int8 | builtin / reference / xnnpack | 99.7 % / 94.6 % / 29.4 % | 1 / 4 / 67 LSB | 100 % / 99.95 % / 98.95 % |
| farm_soil_int8 | builtin / reference / xnnpack | 99.6 % / 92.2 % / 92.2 % | 1 / 6 / 6 LSB | 100 % / 99.95 % / 99.95 % |
| smart_home_kws_int8 | builtin / reference / xnnpack | 100 % / 99.95 % / 58.1 % | 0 / 2 / 13 LSB | 100 % / 100 % / 99.6 % |
| wearable_ecg_int8 | builtin / reference / xnnpack | 99.95 % / 98.9 % / 50.9 % | 1 / 2 / 35 LSB | 100 % / 100 % / 99.85 % |

LiteRT's reference kernels are not the closest to TFLite Micro: their FULLY_CONNECTED differs by
1 LSB from TFLM's from the first dense layer on (found with `iotsim.tinyml.compare.op_divergence`),
while the built-in kernels agree on convolutions and dense layers alike. XNNPACK requantizes with
float scales and drifts furthest. Each run's manifest names the interpreter that made the decisions.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from iotsim.errors import InputError, did_you_mean
from iotsim.paths import ZOO_DIR
from iotsim.tinyml.adapters import adapter_from_spec

DEFAULT_BATCH = 4096
DEFAULT_OP_RESOLVER = {True: "builtin", False: "xnnpack"}  # keyed by is_int8

# op_resolver -> (LiteRT OpResolverType or None for TFLite Micro, interpreter name in manifests)
_RESOLVERS = {
    "xnnpack": ("AUTO", "litert-xnnpack"),
    "builtin": ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "litert-builtin"),
    "reference": ("BUILTIN_REF", "litert-reference"),
    "tflm": (None, "tflm"),
}
INTERPRETERS = tuple(_RESOLVERS)
_REQUIRED_CARD_FIELDS = ("class_names", "positive_class", "input_shape", "normalization")


def interpreter_name(op_resolver: str) -> str:
    """The name a manifest gives the interpreter selected by `op_resolver`."""
    return _check_resolver(op_resolver)[1]


def _check_resolver(op_resolver: str) -> tuple[str | None, str]:
    if op_resolver not in _RESOLVERS:
        raise InputError(
            f"unknown interpreter {op_resolver!r}; choose one of {', '.join(_RESOLVERS)}", field="op_resolver"
        )
    return _RESOLVERS[op_resolver]


def check_tflite_bytes(content: bytes, where: str) -> None:
    """Raise InputError unless `content` carries the TFLite flatbuffer identifier."""
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..7.
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise InputError("not a TFLite model (no 'TFL3' flatbuffer identifier); is the file corrupt?", where=where)


# LiteRT's C++ logger writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to file
# descriptor 2 whenever an interpreter applies its default delegate; Python cannot set its level
_NATIVE_INFO = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\r?(\n|$)", re.MULTILINE)


@contextmanager
def _native_info_filtered():
    """Capture what native code writes to file descriptor 2 while the block runs, and pass it on to
    stderr without LiteRT's informational delegate line (warnings and errors still show)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no stderr to filter
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                rest = _NATIVE_INFO.sub(b"", sink.read())
                if rest:
                    os.write(2, rest)
    finally:
        os.close(saved)


class RawInterpreter:
    """One model's flatbuffer run by one interpreter, on ready input tensors, in batches.

    No card and no pre-processing: `invoke(x)` takes the input tensor values of n rows
    (n, *input_shape) in the model's input dtype and returns the output tensor values
    (n, *output_shape). Works for any single-input, single-output model, ours or not.

    op_resolver:
    - "builtin", "xnnpack", "reference": LiteRT with the kernel set named (see module doc);
      batched by resizing the input to [batch, ...];
    - "tflm": TFLite Micro's Python runtime (`tflite-micro` package), the golden reference
      for what runs on the MCU; batch 1 only, so rows run one by one (about 50 us per row
      for a tiny model, milliseconds for the MLPerf Tiny models).

    With `keep_all_tensors=True` the interpreter keeps every intermediate tensor (TFLM:
    kPreserveAllTensors; LiteRT: experimental_preserve_all_tensors) and runs batch 1, so that
    `tensors(row, indices)` can return each op's output (to find where interpreters part ways).
    """

    def __init__(
        self,
        content: bytes,
        op_resolver: str,
        *,
        where: str = "model",
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        keep_all_tensors: bool = False,
    ):
        resolver_type, self.interpreter_name = _check_resolver(op_resolver)
        self.keep_all_tensors = bool(keep_all_tensors)
        if keep_all_tensors:
            batch_size = 1
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        check_tflite_bytes(content, where)
        self.op_resolver = op_resolver
        self.where = where
        self.num_threads = num_threads
        self.batch_size = int(batch_size) if resolver_type is not None else 1
        self._content = content
        self._interpreters: dict[int, Any] = {}
        if resolver_type is None:
            from iotsim.tinyml.stats import read_model

            graph = read_model(content, where=where)
            if len(graph.inputs) != 1 or len(graph.outputs) != 1:
                raise InputError(
                    f"expected a model with one input and one output, got {len(graph.inputs)} and {len(graph.outputs)}",
                    where=where,
                )
            try:
                from tflite_micro import runtime as tflm_runtime
            except ImportError:
                raise InputError(
                    "the TFLite Micro interpreter needs the tflite-micro package: pip install tflite-micro",
                    where=where,
                    field="op_resolver",
                ) from None
            try:
                config = tflm_runtime.InterpreterConfig
                self._tflm = tflm_runtime.Interpreter.from_bytes(
                    content,
                    # TFLM's default arena is 10 x the model's size: too small for tiny models
                    arena_size=max(10 * len(content), 1 << 20),
                    intrepreter_config=config.kPreserveAllTensors if keep_all_tensors else config.kAllocationRecording,
                )
                ins = self._tflm.get_input_details(0)
                outs = self._tflm.get_output_details(0)
            except Exception as exc:  # the binding raises RuntimeError/ValueError/... on bad models
                raise InputError(f"TFLite Micro cannot load this model: {exc}", where=where) from None
            self.input_shape = tuple(int(d) for d in ins["shape"][1:])
            self.output_shape = tuple(int(d) for d in outs["shape"][1:])
            self.input_dtype = np.dtype(ins["dtype"])
            self.output_dtype = np.dtype(outs["dtype"])
            self.input_quantization = _tflm_quant(ins)
            self.output_quantization = _tflm_quant(outs)
        else:
            from ai_edge_litert import interpreter as litert

            self._litert = litert
            self._resolver = getattr(litert.OpResolverType, resolver_type)
            interp = self._make_litert(1, probe=True)
            ins, outs = interp.get_input_details(), interp.get_output_details()
            if len(ins) != 1 or len(outs) != 1:
                raise InputError(
                    f"expected a model with one input and one output, got {len(ins)} and {len(outs)}", where=where
                )
            self._in, self._out = ins[0], outs[0]
            self.input_shape = tuple(int(d) for d in self._in["shape"][1:])
            self.output_shape = tuple(int(d) for d in self._out["shape"][1:])
            self.input_dtype = np.dtype(self._in["dtype"])
            self.output_dtype = np.dtype(self._out["dtype"])
            self.input_quantization = tuple(self._in["quantization"])
            self.output_quantization = tuple(self._out["quantization"])
            if int(self._in["shape"][0]) == 1:
                self._interpreters[1] = interp

    def _make_litert(self, batch: int, probe: bool = False):
        try:
            with _native_info_filtered():
                interp = self._litert.Interpreter(
                    model_content=self._content,
                    num_threads=self.num_threads,
                    experimental_op_resolver_type=self._resolver,
                    experimental_preserve_all_tensors=self.keep_all_tensors,
                )
                if not probe:
                    detail = interp.get_input_details()[0]
                    interp.resize_tensor_input(detail["index"], [batch, *list(detail["shape"])[1:]])
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"LiteRT cannot load this model: {exc}", where=self.where) from None
        return interp

    def _litert_for(self, batch: int):
        interp = self._interpreters.get(batch)
        if interp is None:
            interp = self._make_litert(batch)
            self._interpreters[batch] = interp
        return interp

    def invoke(self, inputs: np.ndarray) -> np.ndarray:
        """Output tensor values (n, *output_shape) for input tensor values (n, *input_shape)."""
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"expected input tensors of shape (n, {', '.join(map(str, self.input_shape))}), got {x.shape}",
                where=self.where,
                field="input",
            )
        n = x.shape[0]
        out = np.empty((n, *self.output_shape), dtype=self.output_dtype)
        if self.op_resolver == "tflm":
            for i in range(n):
                self._tflm.set_input(x[i : i + 1], 0)
                self._tflm.invoke()
                out[i] = self._tflm.get_output(0).reshape(self.output_shape)
            return out
        b = self.batch_size
        for a in range(0, n, b):
            chunk = x[a : a + b]
            m = chunk.shape[0]
            size = b if m == b else min(b, 1 << (m - 1).bit_length())  # pad to a power of two
            if size != m:
                padded = np.zeros((size, *self.input_shape), dtype=self.input_dtype)
                padded[:m] = chunk
                chunk = padded
            interp = self._litert_for(size)
            interp.set_tensor(self._in["index"], chunk)
            interp.invoke()
            out[a : a + m] = interp.get_tensor(self._out["index"])[:m].reshape(m, *self.output_shape)
        return out


    def tensors(self, row: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
        """Run one input row and return the values of the given tensors (needs keep_all_tensors)."""
        if not self.keep_all_tensors:
            raise ValueError("tensors() needs an interpreter built with keep_all_tensors=True")
        x = np.ascontiguousarray(row, dtype=self.input_dtype)[None]
        if self.op_resolver == "tflm":
            self._tflm.set_input(x, 0)
            self._tflm.invoke()
            return {t: np.asarray(self._tflm.GetTensor(t, 0)["tensor_data"]) for t in indices}
        interp = self._litert_for(1)
        interp.set_tensor(self._in["index"], x)
        interp.invoke()
        return {t: interp.get_tensor(t) for t in indices}


def _tflm_quant(detail: dict) -> tuple[float, int]:
    q = detail.get("quantization_parameters") or {}
    scales, zps = q.get("scales"), q.get("zero_points")
    if scales is None or len(scales) == 0:
        return (0.0, 0)
    return (float(scales[0]), int(zps[0]))


def zoo_names() -> list[str]:
    """Model names shipped in iotsim/zoo (each a .tflite file with a card)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.tflite"))


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C's round / std::round)."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A zoo model name or a .tflite path -> the file's path (InputError if it does not exist)."""
    path = _resolve_path(name_or_path)
    if not path.is_file():
        raise InputError("model file not found", where=str(path))
    return path


def _resolve_path(name_or_path: str | Path) -> Path:
    s = str(name_or_path)
    p = Path(s)
    looks_like_path = isinstance(name_or_path, Path) or "/" in s or "\\" in s or p.suffix == ".tflite"
    if looks_like_path:
        return p
    candidate = ZOO_DIR / f"{s}.tflite"
    if candidate.exists():
        return candidate
    if p.exists():
        return p
    known = ", ".join(zoo_names()) or "(none)"
    raise InputError(f"unknown model {s!r}{did_you_mean(s, zoo_names())}: not a zoo model (zoo: {known}) and not a file",
                     field="model")


def _find_card(path: Path) -> Path:
    """The card of a model: <stem>.json beside it, else a card naming it as its float twin."""
    own = path.with_suffix(".json")
    if own.exists():
        return own
    for cand in sorted(path.parent.glob("*.json")):
        try:
            data = json.loads(cand.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("float_model") == path.name:
            return cand
    raise InputError(
        f"no model card: expected {own.name} beside the model (or a card whose float_model is {path.name!r})",
        where=str(path),
    )


def _read_card(card_path: Path) -> dict:
    try:
        card = json.loads(card_path.read_text())
    except ValueError as exc:
        raise InputError(f"model card is not valid JSON: {exc}", where=str(card_path)) from None
    return _check_card(card, card_path)


def _check_card(card: object, card_path: Path | str, required: tuple[str, ...] = _REQUIRED_CARD_FIELDS) -> dict:
    if not isinstance(card, dict):
        raise InputError("model card must be a JSON object", where=str(card_path))
    for f in required:
        if f not in card:
            raise InputError("model card is missing a required field", where=str(card_path), field=f)
    norm = card.get("normalization", {"mean": [], "std": []})
    if not (isinstance(norm, dict) and "mean" in norm and "std" in norm):
        raise InputError("normalization must have 'mean' and 'std' lists", where=str(card_path), field="normalization")
    return card


class TfliteModel:
    """A TFLite classifier (int8 or float) with its card, run in batches by one interpreter.

    Use `TfliteModel.load(name_or_path)` (or `Int8Model.load`, which insists on int8 I/O), or
    `TfliteModel.from_card(path, card)` for a model whose card comes from elsewhere (a scenario).
    """

    def __init__(
        self,
        path: Path,
        content: bytes,
        card: dict,
        card_path: Path | str,
        *,
        op_resolver: str | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ):
        if op_resolver is not None:
            _check_resolver(op_resolver)
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        where = str(path)
        # probe with built-in kernels when the choice is automatic
        raw = RawInterpreter(content, op_resolver or "builtin", where=where, num_threads=num_threads,
                             batch_size=batch_size)
        self.num_threads = num_threads
        self.batch_size = int(batch_size)
        self.path = path
        self.card_path = card_path
        self.card = card
        self._content = content
        self.input_shape: tuple[int, ...] = raw.input_shape
        self.input_dtype = raw.input_dtype
        self.output_dtype = raw.output_dtype
        self.is_int8 = self.input_dtype == np.int8 and self.output_dtype == np.int8
        if not self.is_int8 and not (self.input_dtype == np.float32 and self.output_dtype == np.float32):
            raise InputError(
                f"unsupported model I/O types: input {self.input_dtype}, output {self.output_dtype} "
                "(int8/int8 or float32/float32 are supported)",
                where=where,
            )
        if len(raw.output_shape) != 1:
            raise InputError(
                f"expected a classifier with output shape (n, classes), got (n, {', '.join(map(str, raw.output_shape))})",
                where=where,
            )
        self.n_classes = int(raw.output_shape[0])
        self.name: str = path.stem
        self.class_names: list[str] = [str(c) for c in card["class_names"]]
        self.positive_class = int(card["positive_class"])
        self.workload: str | None = card.get("workload")

        card_shape = tuple(int(d) for d in card.get("input_shape", self.input_shape))
        if card_shape != self.input_shape:
            raise InputError(
                f"model card says input shape {card_shape} but the model's input is {self.input_shape}",
                where=str(card_path),
                field="input_shape",
            )
        if len(self.class_names) != self.n_classes:
            raise InputError(
                f"model card lists {len(self.class_names)} classes but the model outputs {self.n_classes}",
                where=str(card_path),
                field="class_names",
            )
        if not 0 <= self.positive_class < self.n_classes:
            raise InputError(
                f"positive_class {self.positive_class} out of range for {self.n_classes} classes",
                where=str(card_path),
                field="positive_class",
            )
        self.adapter = adapter_from_spec(card.get("input_adapter"), self.input_shape, where=str(card_path))
        self.window_shape: tuple[int, ...] = self.adapter.window_shape
        n_ch = self.input_shape[-1]
        norm = card.get("normalization") or {"mean": [0.0] * n_ch, "std": [1.0] * n_ch}
        self.norm_mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1)
        self.norm_std = np.asarray(norm["std"], dtype=np.float32).reshape(-1)
        if self.norm_mean.size != n_ch or self.norm_std.size != n_ch or not (self.norm_std > 0).all():
            raise InputError(
                f"normalization needs {n_ch} means and {n_ch} positive stds (one per channel)",
                where=str(card_path),
                field="normalization",
            )
        if self.is_int8:
            self.input_scale, self.input_zero_point = (float(v) for v in raw.input_quantization)
            self.output_scale, self.output_zero_point = (float(v) for v in raw.output_quantization)
            self.input_zero_point, self.output_zero_point = int(self.input_zero_point), int(self.output_zero_point)
            if self.input_scale <= 0 or self.output_scale <= 0:
                raise InputError("int8 model has no quantization parameters on its input/output", where=where)
        else:
            self.input_scale = self.output_scale = 1.0
            self.input_zero_point = self.output_zero_point = 0
        chosen = op_resolver or DEFAULT_OP_RESOLVER[self.is_int8]
        self._raw = raw if chosen == raw.op_resolver else RawInterpreter(
            content, chosen, where=where, num_threads=num_threads, batch_size=batch_size
        )
        self.op_resolver = chosen
        self.interpreter_name = self._raw.interpreter_name

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        *,
        require_int8: bool = False,
        op_resolver: str | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> "TfliteModel":
        """Load a zoo model by name (`iotsim/zoo/<name>.tflite`) or a .tflite path with its card.

        Raises InputError for a missing or corrupt file, a missing/invalid card, a card that
        disagrees with the model, or (with require_int8) a model without int8 input/output.
        """
        path = _resolve_path(name_or_path)
        card_path = None
        if path.is_file():
            card_path = _find_card(path)
        return cls._load(path, card_path, None, require_int8, op_resolver, num_threads, batch_size)

    @classmethod
    def from_card(
        cls,
        path: str | Path,
        card: dict,
        *,
        where: str,
        require_int8: bool = False,
        op_resolver: str | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> "TfliteModel":
        """Load a .tflite file described by a card given here (e.g. written in a scenario at `where`)."""
        return cls._load(Path(path), None, (card, where), require_int8, op_resolver, num_threads, batch_size)

    @classmethod
    def _load(cls, path, card_path, given, require_int8, op_resolver, num_threads, batch_size):
        where = str(path)
        if not path.is_file():
            raise InputError("model file not found", where=where)
        content = path.read_bytes()
        check_tflite_bytes(content, where)
        if given is not None:
            card, card_where = given
            card = _check_card(card, card_where, required=("class_names", "positive_class"))
        else:
            card_where = card_path
            card = _read_card(card_path)
        model = cls(
            path, content, card, card_where, op_resolver=op_resolver, num_threads=num_threads, batch_size=batch_size
        )
        if require_int8 and not model.is_int8:
            raise InputError(
                f"model has {model.input_dtype} input and {model.output_dtype} output; an int8 model "
                "(full-integer quantized, int8 input and output) is required here",
                where=where,
            )
        return model

    @property
    def sha256(self) -> str:
        """sha256 of the model file's bytes: what measured costs and caches are keyed by."""
        if not hasattr(self, "_sha256"):
            import hashlib

            self._sha256 = hashlib.sha256(self._content).hexdigest()
        return self._sha256

    @property
    def macs(self) -> int:
        """Multiply-accumulates per inference: the card's figure, else counted from the flatbuffer."""
        if "macs" in self.card:
            return int(self.card["macs"])
        if not hasattr(self, "_macs"):
            from iotsim.tinyml.stats import model_stats

            self._macs = int(model_stats(self._content, where=str(self.path))["totals"]["macs"])
        return self._macs

    # ------------------------------------------------------------------ checks
    def check_window(self, window_samples: int, n_channels: int, *, where: str | None = None) -> None:
        """Raise InputError unless windows of (window_samples, n_channels) fit this model."""
        if (int(window_samples), int(n_channels)) != tuple(self.window_shape):
            raise InputError(
                f"model {self.name} expects windows of shape {tuple(self.window_shape)} (samples, channels) "
                f"but the workload gives ({int(window_samples)}, {int(n_channels)})",
                where=where or str(self.path),
                field="window",
            )

    def _check_windows(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows)
        if x.ndim != 1 + len(self.window_shape) or tuple(x.shape[1:]) != self.window_shape:
            raise InputError(
                f"expected windows of shape (n, {', '.join(map(str, self.window_shape))}) for model {self.name}, "
                f"got {x.shape}",
                where=str(self.path),
                field="window",
            )
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"windows must be numeric, got dtype {x.dtype}", where=str(self.path), field="window")
        return x

    # ------------------------------------------------------------------ inference
    def features(self, windows: np.ndarray) -> np.ndarray:
        """The input adapter's output for windows in physical units (the window itself by default)."""
        return self.adapter(self._check_windows(windows).astype(np.float32, copy=False))

    def normalize(self, windows: np.ndarray) -> np.ndarray:
        """Features of the windows with the card's per-channel normalization: (f - mean) / std, float32."""
        return self.normalize_features(self.features(windows))

    def normalize_features(self, features: np.ndarray) -> np.ndarray:
        """(f - mean) / std per channel, for features already computed by the input adapter."""
        return (np.asarray(features, dtype=np.float32) - self.norm_mean) / self.norm_std

    def quantize(self, windows: np.ndarray) -> np.ndarray:
        """Windows in physical units -> the model's int8 input tensor values (int8 models only)."""
        return self.quantize_features(self.features(windows))

    def quantize_features(self, features: np.ndarray) -> np.ndarray:
        """Adapter features -> the model's int8 input tensor values (int8 models only)."""
        if not self.is_int8:
            raise InputError(f"model {self.name} has float input; nothing to quantize", where=str(self.path))
        z = self.normalize_features(features)
        q = round_half_away(z / np.float32(self.input_scale)) + self.input_zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def invoke(self, inputs: np.ndarray) -> np.ndarray:
        """Run the interpreter on ready input tensors (int8 or float32, (n, *input_shape)).

        Returns the raw output tensor values (int8 for an int8 model), batch by batch.
        """
        return self._raw.invoke(inputs)

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Class scores (dequantized model outputs, float32 (n, n_classes)) for windows in physical units."""
        x = self._check_windows(windows)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return self.scores_features(self.features(x))

    def scores_features(self, features: np.ndarray) -> np.ndarray:
        """Class scores for features already computed by the input adapter."""
        if self.is_int8:
            y = self.invoke(self.quantize_features(features)).astype(np.float32)
            return (y - np.float32(self.output_zero_point)) * np.float32(self.output_scale)
        return self.invoke(self.normalize_features(features)).astype(np.float32, copy=False)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class index int64 (n,), confidence float32 (n,)): argmax of the scores and its score."""
        s = self.scores(windows)
        idx = np.argmax(s, axis=1)
        conf = s[np.arange(s.shape[0]), idx]
        return idx.astype(np.int64), conf.astype(np.float32)

    def __repr__(self) -> str:
        kind = "int8" if self.is_int8 else "float32"
        return f"TfliteModel({self.name!r}, {kind}, input={self.input_shape}, {self.interpreter_name})"


class Int8Model(TfliteModel):
    """A TfliteModel that must be full-integer (int8 input and output)."""

    @classmethod
    def load(cls, name_or_path: str | Path, **kwargs) -> "Int8Model":  # type: ignore[override]
        kwargs["require_int8"] = True
        return super().load(name_or_path, **kwargs)  # type: ignore[return-value]


def load_model(name_or_path, *, where: str = "scenario", **kwargs) -> TfliteModel:
    """Load a model named by a scenario: a zoo name, a .tflite path with its card, or a ModelSpec
    (any object with `.file` and `.card()`, e.g. `iotsim.scenario.model.ModelSpec`)."""
    if hasattr(name_or_path, "card") and hasattr(name_or_path, "file"):
        return TfliteModel.from_card(name_or_path.file, name_or_path.card(), where=where, **kwargs)
    return TfliteModel.load(name_or_path, **kwargs)


def model_key(name_or_spec) -> str:
    """A hashable key naming the model a scenario entry loads (for caches)."""
    if hasattr(name_or_spec, "model_dump_json"):
        return name_or_spec.model_dump_json()
    return str(name_or_spec)
