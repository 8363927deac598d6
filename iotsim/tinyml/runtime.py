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

Which LiteRT kernels run (`op_resolver`; by default "builtin" for int8 models and "xnnpack"
for float models):
- "builtin": LiteRT's optimized built-in kernels, no delegate ("litert-builtin");
- "xnnpack": LiteRT's default delegate, XNNPACK ("litert-xnnpack"); for float32 models it is
  the fast path (factory float twin: 33 us/window vs 102 us with built-in kernels) and there
  is no requantization to disagree about;
- "reference": reference kernels, BUILTIN_REF ("litert-reference"): closest to TFLite Micro,
  which is what runs on the MCU (shared/reference/TOOLCHAIN.md), but slow.
The int8 default is chosen by agreement with the reference kernels, measured on the zoo
models' test sets (cards' `interpreter_check`; speed on this machine, 2 CPUs, batches of 4096):

| model | kernels | us/window | int8 outputs identical to reference | same class as reference |
| --- | --- | --- | --- | --- |
| factory_bearing_int8 | builtin | 36 | 95.6 % (max 5 LSB) | 99.97 % |
| factory_bearing_int8 | xnnpack | 20 | 34.2 % (max 71 LSB) | 99.22 % |
| factory_bearing_int8 | reference | 250-450 | - | - |
| farm_soil_int8 | builtin | 0.6 | 92.8 % (max 16 LSB) | 99.99 % |
| farm_soil_int8 | xnnpack | 0.6 | 100 % | 100 % |

Likely cause (not traced op by op): XNNPACK's int8 kernels requantize with a float scale
where TFLite's kernels use fixed-point multipliers; on the deeper factory model the 1-LSB
differences accumulate and flip about 1 % of decisions. Each model card's `interpreter_check` records these figures for that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from iotsim.errors import InputError
from iotsim.paths import ZOO_DIR

DEFAULT_BATCH = 4096
DEFAULT_OP_RESOLVER = {True: "builtin", False: "xnnpack"}  # keyed by is_int8

_RESOLVERS = {
    "xnnpack": ("AUTO", "litert-xnnpack"),
    "builtin": ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "litert-builtin"),
    "reference": ("BUILTIN_REF", "litert-reference"),
}
_REQUIRED_CARD_FIELDS = ("class_names", "positive_class", "input_shape", "normalization")


def zoo_names() -> list[str]:
    """Model names shipped in iotsim/zoo (each a .tflite file with a card)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.tflite"))


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C's round / std::round)."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


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
    raise InputError(f"unknown model {s!r}: not a zoo model (zoo: {known}) and not a file", field="model")


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
    if not isinstance(card, dict):
        raise InputError("model card must be a JSON object", where=str(card_path))
    for f in _REQUIRED_CARD_FIELDS:
        if f not in card:
            raise InputError("model card is missing a required field", where=str(card_path), field=f)
    norm = card["normalization"]
    if not (isinstance(norm, dict) and "mean" in norm and "std" in norm):
        raise InputError("normalization must have 'mean' and 'std' lists", where=str(card_path), field="normalization")
    return card


class TfliteModel:
    """A TFLite classifier (int8 or float) with its card, run by LiteRT in batches.

    Use `TfliteModel.load(name_or_path)` (or `Int8Model.load`, which insists on int8 I/O).
    """

    def __init__(
        self,
        path: Path,
        content: bytes,
        card: dict,
        card_path: Path,
        *,
        op_resolver: str | None = None,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ):
        from ai_edge_litert import interpreter as litert

        if op_resolver is not None and op_resolver not in _RESOLVERS:
            raise InputError(
                f"unknown op_resolver {op_resolver!r}; choose one of {', '.join(_RESOLVERS)}", field="op_resolver"
            )
        chosen = op_resolver or "builtin"  # probe with built-in kernels when the choice is automatic
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        self._litert = litert
        self._set_resolver(chosen)
        self.num_threads = num_threads
        self.batch_size = int(batch_size)
        self.path = path
        self.card_path = card_path
        self.card = card
        self._content = content
        self._interpreters: dict[int, Any] = {}

        where = str(path)
        interp = self._make_interpreter(1, probe=True)
        ins = interp.get_input_details()
        outs = interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise InputError(
                f"expected a model with one input and one output, got {len(ins)} and {len(outs)}", where=where
            )
        self._in, self._out = ins[0], outs[0]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in self._in["shape"][1:])
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.is_int8 = self.input_dtype == np.int8 and self.output_dtype == np.int8
        if not self.is_int8 and not (self.input_dtype == np.float32 and self.output_dtype == np.float32):
            raise InputError(
                f"unsupported model I/O types: input {self.input_dtype}, output {self.output_dtype} "
                "(int8/int8 or float32/float32 are supported)",
                where=where,
            )
        self.n_classes = int(self._out["shape"][-1])
        self.name: str = path.stem
        self.class_names: list[str] = [str(c) for c in card["class_names"]]
        self.positive_class = int(card["positive_class"])
        self.workload: str | None = card.get("workload")

        card_shape = tuple(int(d) for d in card["input_shape"])
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
        n_ch = self.input_shape[-1]
        self.norm_mean = np.asarray(card["normalization"]["mean"], dtype=np.float32).reshape(-1)
        self.norm_std = np.asarray(card["normalization"]["std"], dtype=np.float32).reshape(-1)
        if self.norm_mean.size != n_ch or self.norm_std.size != n_ch or not (self.norm_std > 0).all():
            raise InputError(
                f"normalization needs {n_ch} means and {n_ch} positive stds (one per channel)",
                where=str(card_path),
                field="normalization",
            )
        if self.is_int8:
            self.input_scale, self.input_zero_point = (float(v) for v in self._in["quantization"])
            self.output_scale, self.output_zero_point = (float(v) for v in self._out["quantization"])
            self.input_zero_point, self.output_zero_point = int(self.input_zero_point), int(self.output_zero_point)
            if self.input_scale <= 0 or self.output_scale <= 0:
                raise InputError("int8 model has no quantization parameters on its input/output", where=where)
        else:
            self.input_scale = self.output_scale = 1.0
            self.input_zero_point = self.output_zero_point = 0
        if op_resolver is None and DEFAULT_OP_RESOLVER[self.is_int8] != chosen:
            self._set_resolver(DEFAULT_OP_RESOLVER[self.is_int8])
        else:
            self._interpreters[1] = interp

    def _set_resolver(self, op_resolver: str) -> None:
        self._resolver = getattr(self._litert.OpResolverType, _RESOLVERS[op_resolver][0])
        self.interpreter_name = _RESOLVERS[op_resolver][1]
        self.op_resolver = op_resolver
        self._interpreters = {}

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
        where = str(path)
        if not path.is_file():
            raise InputError("model file not found", where=where)
        content = path.read_bytes()
        # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..7.
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise InputError("not a TFLite model (no 'TFL3' flatbuffer identifier); is the file corrupt?", where=where)
        card_path = _find_card(path)
        card = _read_card(card_path)
        model = cls(
            path, content, card, card_path, op_resolver=op_resolver, num_threads=num_threads, batch_size=batch_size
        )
        if require_int8 and not model.is_int8:
            raise InputError(
                f"model has {model.input_dtype} input and {model.output_dtype} output; an int8 model "
                "(full-integer quantized, int8 input and output) is required here",
                where=where,
            )
        return model

    def _make_interpreter(self, batch: int, probe: bool = False):
        try:
            interp = self._litert.Interpreter(
                model_content=self._content,
                num_threads=self.num_threads,
                experimental_op_resolver_type=self._resolver,
            )
            if not probe or batch != 1:
                idx = interp.get_input_details()[0]["index"]
                shape = list(interp.get_input_details()[0]["shape"])
                interp.resize_tensor_input(idx, [batch, *shape[1:]])
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"LiteRT cannot load this model: {exc}", where=str(self.path)) from None
        return interp

    def _interpreter(self, batch: int):
        interp = self._interpreters.get(batch)
        if interp is None:
            interp = self._make_interpreter(batch)
            self._interpreters[batch] = interp
        return interp

    # ------------------------------------------------------------------ checks
    def check_window(self, window_samples: int, n_channels: int, *, where: str | None = None) -> None:
        """Raise InputError unless windows of (window_samples, n_channels) fit this model."""
        if (int(window_samples), int(n_channels)) != tuple(self.input_shape):
            raise InputError(
                f"model {self.name} expects windows of shape {tuple(self.input_shape)} (samples, channels) "
                f"but the workload gives ({int(window_samples)}, {int(n_channels)})",
                where=where or str(self.path),
                field="window",
            )

    def _check_windows(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows)
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"expected windows of shape (n, {', '.join(map(str, self.input_shape))}) for model {self.name}, "
                f"got {x.shape}",
                where=str(self.path),
                field="window",
            )
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"windows must be numeric, got dtype {x.dtype}", where=str(self.path), field="window")
        return x

    # ------------------------------------------------------------------ inference
    def normalize(self, windows: np.ndarray) -> np.ndarray:
        """Apply the card's per-channel normalization: (x - mean) / std, float32."""
        x = self._check_windows(windows).astype(np.float32, copy=False)
        return (x - self.norm_mean) / self.norm_std

    def quantize(self, windows: np.ndarray) -> np.ndarray:
        """Windows in physical units -> the model's int8 input tensor values (int8 models only)."""
        if not self.is_int8:
            raise InputError(f"model {self.name} has float input; nothing to quantize", where=str(self.path))
        z = self.normalize(windows)
        q = round_half_away(z / np.float32(self.input_scale)) + self.input_zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def invoke(self, inputs: np.ndarray) -> np.ndarray:
        """Run the interpreter on ready input tensors (int8 or float32, (n, *input_shape)).

        Returns the raw output tensor values (int8 for an int8 model), batch by batch.
        """
        x = np.ascontiguousarray(inputs, dtype=self.input_dtype)
        n = x.shape[0]
        out = np.empty((n, self.n_classes), dtype=self.output_dtype)
        b = self.batch_size
        for a in range(0, n, b):
            chunk = x[a : a + b]
            m = chunk.shape[0]
            size = b if m == b else min(b, 1 << (m - 1).bit_length())  # pad to a power of two
            if size != m:
                padded = np.zeros((size, *self.input_shape), dtype=self.input_dtype)
                padded[:m] = chunk
                chunk = padded
            interp = self._interpreter(size)
            interp.set_tensor(self._in["index"], chunk)
            interp.invoke()
            out[a : a + m] = interp.get_tensor(self._out["index"])[:m].reshape(m, self.n_classes)
        return out

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Class scores (dequantized model outputs, float32 (n, n_classes)) for windows in physical units."""
        x = self._check_windows(windows)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        if self.is_int8:
            y = self.invoke(self.quantize(x)).astype(np.float32)
            return (y - np.float32(self.output_zero_point)) * np.float32(self.output_scale)
        return self.invoke(self.normalize(x)).astype(np.float32, copy=False)

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


def load_model(name_or_path: str | Path, **kwargs) -> TfliteModel:
    """Shorthand for `TfliteModel.load(name_or_path, **kwargs)`."""
    return TfliteModel.load(name_or_path, **kwargs)
