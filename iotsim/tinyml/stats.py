"""Static statistics of a TFLite model: parameters, MACs, flash, tensor lifetimes, arena plan.

Reads any `.tflite` flatbuffer (ours or not) with the pure-Python `tflite` bindings; no
interpreter runs. Layered so that a firmware generator can reuse the pieces:

    graph = read_model(path)                 # ModelGraph: tensors, ops, I/O, buffers
    life = tensor_lifetimes(graph)           # {tensor: (first_op, last_op)}
    lb = activation_lower_bound(graph, life) # peak bytes of simultaneously live tensors
    plan = plan_arena(graph, life)           # greedy-by-size offsets in one arena
    macs, other = op_work(graph, op)         # per op
    stats = model_stats(path)                # all of it, JSON-ready; format_stats(stats)

Only single-subgraph models are supported (control flow -- WHILE/IF/CALL -- and multi-signature
models have several subgraphs): others raise InputError.

Counting conventions
--------------------
params
    Elements of the constant tensors that hold learned values: the weight and bias operands
    of the weighted ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV,
    CONV_3D, CONV_3D_TRANSPOSE, BATCH_MATMUL, EMBEDDING_LOOKUP, recurrent ops), biases
    included, and any other constant operand of a value type (float*, int8, uint8, int16,
    int4; e.g. the constant of a MUL/ADD left by batch-norm, a PRELU alpha). Constant
    int32/int64/bool operands of other ops (reshape shapes, axes, paddings, slice bounds,
    gather indices) are configuration, not params. Each constant buffer is counted once, at
    the first op that reads it, even if several tensors or ops share it. Batch-norm is folded
    into the convolutions by the converter, so a Keras `count_params()` of a model with
    BatchNormalization is larger (by 4 x channels per BN layer) than this count.
    This convention (biases included) reproduces the MLPerf Tiny parameter counts
    (shared/reference/NUMBERS.md): KWS 22.6 k = 22,016 weights + 588 biases, AD
    265.9 k = 264,192 weights + 1,672 biases; weights only would give 22.0 k and 264.2 k.
MACs (multiply-accumulates of one inference, batch as stored in the model, normally 1)
    CONV_2D: output elements (n*out_h*out_w*out_c) * k_h * k_w * in_c/groups (the filter's
    last dimension is in_c/groups); DEPTHWISE_CONV_2D: output elements * k_h * k_w;
    FULLY_CONNECTED: rows * in * out (= output elements * in); TRANSPOSE_CONV: input elements
    * k_h * k_w * out_c; CONV_3D: output elements * k_d * k_h * k_w * in_c; CONV_3D_TRANSPOSE:
    input elements * k_d * k_h * k_w * out_c; BATCH_MATMUL: output elements * contraction
    length. Biases, requantization, pooling, additions, activations are not MACs (this is the
    MLPerf Tiny / Keras convention: it gives KWS 2.66 M and AD 0.264 M exactly).
    Recurrent and other weighted ops whose MACs are not modelled (LSTM, SVDF, ...) count 0
    and are listed in `uncounted_weighted_ops`.
other_ops
    Rough count of the non-MAC arithmetic, reported apart: pooling = output elements * window
    size; reductions (MEAN, SUM, REDUCE_*) = input elements; data movement and shape ops
    (RESHAPE, SHAPE, STRIDED_SLICE, PACK, CONCATENATION, PAD, TRANSPOSE, GATHER, ...) = 0;
    every other op (ADD, MUL, activations, SOFTMAX, QUANTIZE, ...) = output elements.
flash
    `total` = the file size (TFLM runs the flatbuffer in place from flash); `weights` = bytes of
    the constant buffers referenced by the graph's tensors, each buffer once; `graph` =
    total - weights (op and tensor tables, quantization parameters, strings, metadata such as
    the converter's version buffer, alignment padding). The interpreter's code is not included.
activation memory
    Non-constant, non-variable tensors only (constant tensors stay in flash). Lifetime of a
    tensor, in op indices of the execution order: from the op that produces it (graph inputs:
    op 0) to its last consumer (graph outputs: the last op). `arena_lower_bound` = max over ops
    of the sum of the bytes of the tensors live at that op: no placement can do with less.
    `arena_plan` places tensors like TFLite Micro's GreedyMemoryPlanner: sizes rounded up to
    16 bytes (TFLM's buffer alignment), tensors in decreasing size order (ties: higher tensor
    index first, as TFLM's queue does), each at the lowest 16-aligned offset that does not overlap an already placed
    tensor whose lifetime intersects. Its `size` is >= the lower bound. Neither includes what
    TFLM allocates besides activations (persistent tensor/op structs, kernel scratch buffers
    such as CMSIS-NN's im2col, variable tensors: the latter are reported as `variable_bytes`).
    Ops that could run in place (RESHAPE) are not aliased.
compile-time tensors
    A runtime tensor is computable at compile time (`compile_time: true`) when its producing op
    is SHAPE (tensor shapes are static once the model is stored with batch 1), or a builtin
    op without state whose inputs are all constant or compile-time themselves (e.g. Keras
    Flatten's SHAPE -> STRIDED_SLICE -> PACK chain that feeds a RESHAPE).
"""

from __future__ import annotations

import inspect
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotsim.errors import InputError

ALIGNMENT = 16  # bytes; TFLite Micro's kBufferAlignment (MicroArenaBufferAlignment())

# TensorType -> (name, bytes per element); INT4 is packed two per byte
_DTYPES = {
    0: ("float32", 4.0),
    1: ("float16", 2.0),
    2: ("int32", 4.0),
    3: ("uint8", 1.0),
    4: ("int64", 8.0),
    5: ("string", 1.0),
    6: ("bool", 1.0),
    7: ("int16", 2.0),
    8: ("complex64", 8.0),
    9: ("int8", 1.0),
    10: ("float64", 8.0),
    11: ("complex128", 16.0),
    12: ("uint64", 8.0),
    13: ("resource", 0.0),
    14: ("variant", 0.0),
    15: ("uint32", 4.0),
    16: ("uint16", 2.0),
    17: ("int4", 0.5),
    18: ("bfloat16", 2.0),
}
# constant operands of these types hold values (params); int32/int64/bool/string are configuration
_VALUE_DTYPES = {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "int4"}

# op -> input positions that are weights/biases (params whatever their dtype, when constant)
_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
    "CONV_3D": (1, 2),
    "CONV_3D_TRANSPOSE": (1, 3),
    "BATCH_MATMUL": (0, 1),
    "EMBEDDING_LOOKUP": (1,),
}
# weighted ops whose MACs are not modelled here (their constant inputs still count as params)
_RECURRENT = {
    "LSTM",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "RNN",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "SVDF",
}
_POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"}
_DATA_MOVEMENT = {
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "RANK", "STRIDED_SLICE", "SLICE", "PACK", "UNPACK",
    "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V",
    "TILE", "BROADCAST_TO", "BROADCAST_ARGS", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH", "REVERSE_V2", "FILL", "ZEROS_LIKE", "ONES_LIKE", "SCATTER_ND", "SELECT", "SELECT_V2",
}
# ops that are not pure functions of their inputs: never folded at compile time
_STATEFUL = {
    "CUSTOM", "CALL", "CALL_ONCE", "WHILE", "IF", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "RANDOM_STANDARD_NORMAL", "RANDOM_UNIFORM", "MULTINOMIAL", "HASHTABLE", "HASHTABLE_FIND",
    "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES",
}
# what the generated flatbuffer readers raise on offsets or lengths that run past the buffer
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, TypeError, AttributeError, OverflowError,
                      UnicodeDecodeError)
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _tflite():
    try:
        import tflite
    except ImportError:
        raise InputError("reading .tflite files needs the tflite package: pip install tflite") from None
    return tflite


# ---------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point), per tensor or per channel."""

    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    def to_dict(self) -> dict | None:
        if not self.scales:
            return None
        if self.per_channel:
            return {
                "scale": list(self.scales),
                "zero_point": list(self.zero_points),
                "quantized_dimension": self.quantized_dimension,
            }
        return {"scale": self.scales[0], "zero_point": self.zero_points[0] if self.zero_points else 0}


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    elements: int
    nbytes: int
    buffer: int  # index into the model's buffers (0 = no data)
    constant: bool  # its buffer holds data: a weight, bias or configuration constant (flash)
    variable: bool  # state kept across invocations (e.g. LSTM state)
    quantization: Quantization = field(default_factory=Quantization)

    def brief(self) -> dict:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class OpInfo:
    index: int
    name: str  # "CONV_2D", or "CUSTOM:<code>" for a custom op
    builtin_code: int
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 = optional input left out
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    options: dict[str, Any]


@dataclass
class ModelGraph:
    """Subgraph 0 of a TFLite model, with what is needed to count and plan it."""

    where: str
    file_bytes: int
    schema_version: int
    description: str
    subgraph_count: int
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    buffer_bytes: dict[int, int]  # buffer index -> bytes of data (buffers holding data only)
    metadata: dict[str, int]  # metadata name -> bytes of its buffer
    content: bytes = field(default=b"", repr=False)  # the flatbuffer itself, for constant data

    def constant_array(self, index: int):
        """The stored values of constant tensor `index` as a numpy array of its shape and dtype."""
        import numpy as np

        t = self.tensors[index]
        if not t.constant:
            raise ValueError(f"tensor {index} ({t.name!r}) holds no constant data")
        if t.dtype in ("string", "resource", "variant", "int4"):
            raise ValueError(f"tensor {index} ({t.name!r}) has dtype {t.dtype}, which has no plain array form")
        tflite = _tflite()
        buf = tflite.Model.GetRootAsModel(self.content, 0).Buffers(t.buffer)
        off = int(buf.Offset())
        raw = self.content[off : off + int(buf.Size())] if off > 1 else buf.DataAsNumpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(t.dtype).newbyteorder("<")).reshape(t.shape).copy()

    def producers(self) -> dict[int, int]:
        """tensor -> index of the op that writes it."""
        return {t: op.index for op in self.ops for t in op.outputs if t >= 0}

    def consumers(self) -> dict[int, list[int]]:
        """tensor -> indices of the ops that read it, in execution order."""
        out: dict[int, list[int]] = {}
        for op in self.ops:
            for t in set(op.inputs) | set(op.intermediates):
                if t >= 0:
                    out.setdefault(t, []).append(op.index)
        return out

    def runtime_tensors(self) -> list[int]:
        """Tensors that live in RAM (not constant, not variable) and that the graph uses."""
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(t for t in (*op.inputs, *op.outputs, *op.intermediates) if t >= 0)
        return sorted(t for t in used if not self.tensors[t].constant and not self.tensors[t].variable)


# ---------------------------------------------------------------------------- reading
def _load_bytes(path_or_bytes, where: str | None) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), where or "model"
    path = Path(path_or_bytes)
    where = where or str(path)
    try:
        return path.read_bytes(), where
    except FileNotFoundError:
        raise InputError("model file not found", where=where) from None
    except IsADirectoryError:
        raise InputError("expected a .tflite file, got a directory", where=where) from None
    except OSError as exc:
        raise InputError(f"cannot read model file: {exc}", where=where) from None


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _decode_options(tflite, op) -> dict[str, Any]:
    """The op's builtin options as a plain dict (snake_case keys; padding/activation by name)."""
    kind = op.BuiltinOptionsType()
    if not kind:
        return {}
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if isinstance(v, int) and not k.startswith("_")}
    cls = getattr(tflite, names.get(kind, ""), None)
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for attr, fn in vars(cls).items():
        if attr.startswith(("_", "GetRootAs")) or not callable(fn) or attr == "Init":
            continue
        if attr.endswith(("Length", "IsNone", "BufferHasIdentifier", "AsNumpy")):
            continue
        params = list(inspect.signature(fn).parameters)
        try:
            if len(params) == 1:
                value = getattr(opts, attr)()
            elif hasattr(opts, attr + "AsNumpy"):
                arr = getattr(opts, attr + "AsNumpy")()
                value = [] if isinstance(arr, int) else arr.tolist()
            else:
                continue
        except _FLATBUFFER_ERRORS:  # an option we cannot decode is left out, not fatal
            value = None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, (int, float, str, bool, list)):
            continue
        key = _snake(attr)
        if key == "padding" and isinstance(value, int):
            value = _PADDING.get(value, value)
        elif key == "fused_activation_function" and isinstance(value, int):
            value = _ACTIVATION.get(value, value)
        out[key] = value
    return out


def _quant(t) -> Quantization:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return Quantization()
    scales = tuple(float(s) for s in q.ScaleAsNumpy())
    zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,) * len(scales)
    return Quantization(scales, zps, int(q.QuantizedDimension()))


def _ints(vec) -> tuple[int, ...]:
    return () if isinstance(vec, int) else tuple(int(v) for v in vec)


def read_model(path_or_bytes, *, where: str | None = None) -> ModelGraph:
    """Parse a .tflite file (path or bytes) into a ModelGraph (subgraph 0; one subgraph only).

    Raises InputError (with `where` = the path) for a missing file, a file that is not a
    TFLite flatbuffer, a truncated or corrupt one, or a model with several subgraphs.
    """
    content, where = _load_bytes(path_or_bytes, where)
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise InputError("not a TFLite model (no 'TFL3' flatbuffer identifier); is the file corrupt?", where=where)
    tflite = _tflite()
    try:
        return _parse(tflite, content, where)
    except InputError:
        raise
    except _FLATBUFFER_ERRORS as exc:  # what the bindings raise on a damaged flatbuffer
        raise InputError(
            f"cannot parse the TFLite flatbuffer (truncated or corrupt?): {type(exc).__name__}: {exc}", where=where
        ) from None


def _parse(tflite, content: bytes, where: str) -> ModelGraph:
    model = tflite.Model.GetRootAsModel(content, 0)
    n_sub = model.SubgraphsLength()
    if n_sub < 1:
        raise InputError("the model has no subgraph", where=where)
    if n_sub > 1:
        raise InputError(
            f"the model has {n_sub} subgraphs (control flow such as WHILE/IF/CALL, or several signatures); "
            "only single-subgraph models are supported",
            where=where,
        )
    n_buffers = model.BuffersLength()
    buffer_bytes: dict[int, int] = {}
    for b in range(n_buffers):
        buf = model.Buffers(b)
        if buf is None:
            continue
        off = int(buf.Offset())
        if off > 1:  # data stored after the flatbuffer (models > 2 GB)
            size = int(buf.Size())
            if off + size > len(content):
                raise InputError(f"buffer {b} points past the end of the file (truncated?)", where=where)
            buffer_bytes[b] = size
        elif buf.DataLength() > 0:
            buf.DataAsNumpy()  # a view; raises if the data runs past the end of the file
            buffer_bytes[b] = int(buf.DataLength())

    sg = model.Subgraphs(0)
    tensors: list[TensorInfo] = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = _ints(t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = _ints(t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
        if any(d < 0 for d in shape):
            raise InputError(f"tensor {i} has a negative dimension in its shape {shape}", where=where)
        dtype, itemsize = _DTYPES.get(int(t.Type()), (f"type{t.Type()}", 0.0))
        elements = math.prod(shape)
        b = int(t.Buffer())
        if not 0 <= b < max(n_buffers, 1):
            raise InputError(f"tensor {i} refers to buffer {b} but the model has {n_buffers}", where=where)
        constant = b in buffer_bytes
        nbytes = buffer_bytes[b] if constant and itemsize == 0 else math.ceil(elements * itemsize)
        tensors.append(
            TensorInfo(
                index=i,
                name=(t.Name() or b"").decode("utf-8", "replace"),
                shape=shape,
                shape_signature=sig,
                dtype=dtype,
                elements=elements,
                nbytes=int(nbytes),
                buffer=b,
                constant=constant,
                variable=bool(t.IsVariable()),
                quantization=_quant(t),
            )
        )
    n_t = len(tensors)

    def check(idx: tuple[int, ...], what: str, allow_optional: bool) -> tuple[int, ...]:
        for v in idx:
            if not (0 <= v < n_t or (allow_optional and v == -1)):
                raise InputError(f"{what} refers to tensor {v} but the subgraph has {n_t} tensors", where=where)
        return idx

    n_codes = model.OperatorCodesLength()
    ops: list[OpInfo] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        ci = int(op.OpcodeIndex())
        if not 0 <= ci < n_codes:
            raise InputError(f"op {i} uses opcode {ci} but the model has {n_codes}", where=where)
        oc = model.OperatorCodes(ci)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == tflite.BuiltinOperator.CUSTOM:
            name = "CUSTOM:" + (oc.CustomCode() or b"").decode("utf-8", "replace")
        else:
            try:
                name = tflite.opcode2name(code)
            except ValueError:
                name = f"BUILTIN_{code}"
        ops.append(
            OpInfo(
                index=i,
                name=name,
                builtin_code=code,
                version=int(oc.Version()),
                inputs=check(_ints(op.InputsAsNumpy()), f"op {i} ({name}) input", True),
                outputs=check(_ints(op.OutputsAsNumpy()), f"op {i} ({name}) output", True),
                intermediates=check(_ints(op.IntermediatesAsNumpy()), f"op {i} ({name}) intermediate", True),
                options=_decode_options(tflite, op),
            )
        )
    metadata: dict[str, int] = {}
    for m in range(model.MetadataLength()):
        md = model.Metadata(m)
        metadata[(md.Name() or b"").decode("utf-8", "replace")] = buffer_bytes.get(int(md.Buffer()), 0)
    desc = model.Description()
    return ModelGraph(
        where=where,
        file_bytes=len(content),
        schema_version=int(model.Version()),
        description=desc.decode("utf-8", "replace") if desc else "",
        subgraph_count=n_sub,
        tensors=tensors,
        ops=ops,
        inputs=check(_ints(sg.InputsAsNumpy()), "subgraph input", False),
        outputs=check(_ints(sg.OutputsAsNumpy()), "subgraph output", False),
        buffer_bytes=buffer_bytes,
        metadata=metadata,
        content=content,
    )


# ---------------------------------------------------------------------------- counting
def op_param_tensors(graph: ModelGraph, op: OpInfo) -> list[int]:
    """The op's constant inputs that hold learned values (weights, biases), see module doc."""
    weight_pos = _WEIGHT_INPUTS.get(op.name, ())
    out = []
    for pos, t in enumerate(op.inputs):
        if t < 0 or not graph.tensors[t].constant:
            continue
        if pos in weight_pos or op.name in _RECURRENT or graph.tensors[t].dtype in _VALUE_DTYPES:
            out.append(t)
    return out


def _shape(graph: ModelGraph, op: OpInfo, pos: int, outputs: bool = False) -> tuple[int, ...] | None:
    idx = op.outputs if outputs else op.inputs
    if pos >= len(idx) or idx[pos] < 0:
        return None
    return graph.tensors[idx[pos]].shape


def op_work(graph: ModelGraph, op: OpInfo) -> tuple[int, int]:
    """(MACs, other_ops) of one op, see the module doc for the conventions."""
    name = op.name
    out = _shape(graph, op, 0, outputs=True)
    out_el = math.prod(out) if out is not None else 0
    w = _shape(graph, op, 1)
    if name == "CONV_2D" and w is not None and len(w) == 4:
        return out_el * w[1] * w[2] * w[3], 0
    if name == "DEPTHWISE_CONV_2D" and w is not None and len(w) == 4:
        return out_el * w[1] * w[2], 0
    if name == "FULLY_CONNECTED" and w is not None and len(w) == 2:
        return out_el * w[1], 0
    if name == "TRANSPOSE_CONV":
        x = _shape(graph, op, 2)
        if w is not None and len(w) == 4 and x is not None:
            return math.prod(x) * w[0] * w[1] * w[2], 0
    if name == "CONV_3D" and w is not None and len(w) == 5:
        return out_el * w[0] * w[1] * w[2] * w[3], 0
    if name == "CONV_3D_TRANSPOSE":
        x = _shape(graph, op, 2)
        if w is not None and len(w) == 5 and x is not None:
            return math.prod(x) * w[0] * w[1] * w[2] * w[3], 0
    if name == "BATCH_MATMUL":
        lhs = _shape(graph, op, 0)
        if lhs is not None and len(lhs) >= 2:
            k = lhs[-2] if op.options.get("adj_x") else lhs[-1]
            return out_el * k, 0
    if name in _POOLS:
        return 0, out_el * int(op.options.get("filter_height", 1)) * int(op.options.get("filter_width", 1))
    if name in _REDUCTIONS:
        x = _shape(graph, op, 0)
        return 0, math.prod(x) if x is not None else 0
    if name in _DATA_MOVEMENT:
        return 0, 0
    return 0, out_el


def compile_time_tensors(graph: ModelGraph) -> set[int]:
    """Runtime tensors whose values are known before the first invoke (see module doc)."""
    known: set[int] = set()
    for op in graph.ops:
        if op.name in _STATEFUL or op.name.startswith("CUSTOM") or not op.outputs:
            continue
        ins = [t for t in op.inputs if t >= 0]
        if op.name == "SHAPE" or all(graph.tensors[t].constant or t in known for t in ins):
            known.update(t for t in op.outputs if t >= 0 and not graph.tensors[t].constant)
    return known


# ---------------------------------------------------------------------------- memory
def tensor_lifetimes(graph: ModelGraph) -> dict[int, tuple[int, int]]:
    """{runtime tensor: (first op, last op)} in execution order (inclusive), see module doc."""
    last_op = max(len(graph.ops) - 1, 0)
    prod = graph.producers()
    cons = graph.consumers()
    life: dict[int, tuple[int, int]] = {}
    for t in graph.runtime_tensors():
        first = 0 if t in graph.inputs or t not in prod else prod[t]
        last = max([first, *cons.get(t, [])])
        if t in graph.outputs:
            last = last_op
        life[t] = (first, last)
    return life


def activation_lower_bound(graph: ModelGraph, lifetimes: dict[int, tuple[int, int]] | None = None) -> dict:
    """Peak bytes of simultaneously live runtime tensors: {"bytes", "op", "live"} (tensor indices)."""
    life = tensor_lifetimes(graph) if lifetimes is None else lifetimes
    best = {"bytes": 0, "op": 0, "live": []}
    for step in range(max(len(graph.ops), 1)):
        live = [t for t, (a, b) in life.items() if a <= step <= b]
        total = sum(graph.tensors[t].nbytes for t in live)
        if total > best["bytes"]:
            best = {"bytes": total, "op": step, "live": sorted(live)}
    return best


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


@dataclass
class ArenaPlan:
    """Offsets of the runtime tensors in one arena (bytes). `size` = end of the highest tensor."""

    size: int
    alignment: int
    offsets: dict[int, int]  # tensor -> offset
    sizes: dict[int, int]  # tensor -> aligned size
    lifetimes: dict[int, tuple[int, int]]

    def conflicts(self) -> list[tuple[int, int]]:
        """Pairs of tensors that are live at a common op and overlap in memory (empty if valid)."""
        bad = []
        items = sorted(self.offsets)
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                (fa, la), (fb, lb) = self.lifetimes[a], self.lifetimes[b]
                if fa <= lb and fb <= la:
                    oa, ob = self.offsets[a], self.offsets[b]
                    if oa < ob + self.sizes[b] and ob < oa + self.sizes[a] and self.sizes[a] and self.sizes[b]:
                        bad.append((a, b))
        return bad


def plan_arena(
    graph: ModelGraph, lifetimes: dict[int, tuple[int, int]] | None = None, *, alignment: int = ALIGNMENT
) -> ArenaPlan:
    """Greedy-by-size placement of the runtime tensors (TFLM GreedyMemoryPlanner), see module doc."""
    if alignment < 1:
        raise InputError(f"alignment must be >= 1, got {alignment}", field="alignment")
    life = tensor_lifetimes(graph) if lifetimes is None else lifetimes
    sizes = {t: _align(graph.tensors[t].nbytes, alignment) for t in life}
    # TFLM queues online-planned buffers from the tail, so its stable sort breaks ties by
    # descending tensor index: follow it to get TFLM's offsets
    order = sorted(life, key=lambda t: (-sizes[t], -t))
    offsets: dict[int, int] = {}
    placed: list[int] = []
    for t in order:
        first, last = life[t]
        clash = sorted(
            (offsets[p], offsets[p] + sizes[p])
            for p in placed
            if life[p][0] <= last and first <= life[p][1] and sizes[p] > 0
        )
        offset = 0
        for start, end in clash:
            if start >= offset + sizes[t]:
                break  # fits in the gap before this one
            offset = max(offset, end)
        offsets[t] = offset
        placed.append(t)
    size = max((offsets[t] + sizes[t] for t in offsets), default=0)
    return ArenaPlan(size=size, alignment=alignment, offsets=offsets, sizes=sizes, lifetimes=dict(life))


# ---------------------------------------------------------------------------- the report
def _io(graph: ModelGraph, idx: tuple[int, ...]) -> list[dict]:
    out = []
    for t in idx:
        ti = graph.tensors[t]
        q = ti.quantization
        out.append(
            {
                **ti.brief(),
                "shape_signature": list(ti.shape_signature),
                "scale": q.scales[0] if q.scales else None,
                "zero_point": q.zero_points[0] if q.zero_points else None,
            }
        )
    return out


def model_stats(path_or_bytes, where: str | None = None, *, require_int8: bool = False) -> dict:
    """Statistics of a .tflite model (path or bytes) as a JSON-ready dict.

    Keys: model, file_bytes, schema_version, description, subgraph_count (always 1: models with
    several subgraphs are refused), int8 (input and output int8), op_count, tensor_count, op_list,
    ops (per op: index,
    op, version, inputs/outputs (index, name, shape, dtype; null for a left-out optional
    input), options, params, macs, other_ops, compile_time), op_counts, totals (params, macs,
    other_ops), flash (total, weights, graph, metadata), memory (arena_lower_bound,
    lower_bound_op, lower_bound_live, arena_plan_bytes, alignment, variable_bytes,
    runtime_tensors), tensors (per tensor: index, name, shape, dtype, bytes, kind, lifetime,
    arena_offset, compile_time, quantization), inputs/outputs (shape, dtype, scale,
    zero_point), compile_time_tensors, uncounted_weighted_ops. Conventions: module doc.

    With require_int8, a model whose input or output is not int8 raises InputError.
    """
    graph = read_model(path_or_bytes, where=where)
    where = graph.where
    in_dt = [graph.tensors[t].dtype for t in graph.inputs]
    out_dt = [graph.tensors[t].dtype for t in graph.outputs]
    is_int8 = bool(in_dt) and bool(out_dt) and all(d == "int8" for d in in_dt + out_dt)
    if require_int8 and not is_int8:
        raise InputError(
            f"model has {'/'.join(in_dt) or 'no'} input and {'/'.join(out_dt) or 'no'} output; an int8 model "
            "(full-integer quantized, int8 input and output) is required here",
            where=where,
        )

    foldable = compile_time_tensors(graph)
    counted_buffers: set[int] = set()
    ops_out = []
    op_counts: dict[str, int] = {}
    total_params = total_macs = total_other = 0
    uncounted = []
    for op in graph.ops:
        params = 0
        for t in op_param_tensors(graph, op):
            b = graph.tensors[t].buffer
            if b not in counted_buffers:
                counted_buffers.add(b)
                params += graph.tensors[t].elements
        macs, other = op_work(graph, op)
        if (op.name in _RECURRENT or op.name.startswith("CUSTOM")) and macs == 0:
            uncounted.append(op.index)
        total_params += params
        total_macs += macs
        total_other += other
        op_counts[op.name] = op_counts.get(op.name, 0) + 1
        ops_out.append(
            {
                "index": op.index,
                "op": op.name,
                "version": op.version,
                "inputs": [None if t < 0 else {**graph.tensors[t].brief(), "constant": graph.tensors[t].constant}
                           for t in op.inputs],
                "outputs": [None if t < 0 else graph.tensors[t].brief() for t in op.outputs],
                "options": op.options,
                "params": params,
                "macs": macs,
                "other_ops": other,
                "compile_time": bool(op.outputs) and all(t in foldable for t in op.outputs if t >= 0),
            }
        )

    const_buffers = {t.buffer for t in graph.tensors if t.constant}
    weights = sum(graph.buffer_bytes[b] for b in const_buffers)
    life = tensor_lifetimes(graph)
    lb = activation_lower_bound(graph, life)
    plan = plan_arena(graph, life)
    variable_bytes = sum(t.nbytes for t in graph.tensors if t.variable)

    tensors_out = []
    for t in graph.tensors:
        kind = "constant" if t.constant else "variable" if t.variable else "runtime"
        tensors_out.append(
            {
                **t.brief(),
                "bytes": t.nbytes,
                "kind": kind,
                "buffer": t.buffer,
                "lifetime": list(life[t.index]) if t.index in life else None,
                "arena_offset": plan.offsets.get(t.index),
                "compile_time": t.index in foldable,
                "quantization": t.quantization.to_dict(),
            }
        )
    return {
        "model": where,
        "file_bytes": graph.file_bytes,
        "schema_version": graph.schema_version,
        "description": graph.description,
        "subgraph_count": graph.subgraph_count,
        "int8": is_int8,
        "inputs": _io(graph, graph.inputs),
        "outputs": _io(graph, graph.outputs),
        "op_count": len(graph.ops),
        "tensor_count": len(graph.tensors),
        "op_counts": op_counts,
        "op_list": [op.name for op in graph.ops],
        "totals": {"params": total_params, "macs": total_macs, "other_ops": total_other},
        "flash": {
            "total": graph.file_bytes,
            "weights": weights,
            "graph": graph.file_bytes - weights,
            "metadata": sum(graph.metadata.values()),
        },
        "memory": {
            "arena_lower_bound": lb["bytes"],
            "lower_bound_op": lb["op"],
            "lower_bound_live": lb["live"],
            "arena_plan_bytes": plan.size,
            "alignment": plan.alignment,
            "variable_bytes": variable_bytes,
            "runtime_tensors": len(life),
        },
        "compile_time_tensors": sorted(foldable),
        "uncounted_weighted_ops": uncounted,
        "ops": ops_out,
        "tensors": tensors_out,
    }


# ---------------------------------------------------------------------------- text
def text_table(headers: list[str], rows: list[list[Any]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]


def _si(n: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{n:g}"


def _shape_str(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def format_stats(stats: dict) -> str:
    """A plain-text report of `model_stats` output: summary, I/O, op table, op counts."""
    t, fl, mem = stats["totals"], stats["flash"], stats["memory"]
    lines = [
        f"model: {stats['model']}",
        (
            f"  {stats['op_count']} ops, {stats['tensor_count']} tensors, {stats['subgraph_count']} subgraph, "
            f"int8 I/O: {'yes' if stats['int8'] else 'no'}"
        ),
        (
            f"  params {t['params']:,} ({_si(t['params'])}), MACs {t['macs']:,} ({_si(t['macs'])}), "
            f"other ops {t['other_ops']:,}"
        ),
        (
            f"  flash {fl['total']:,} B = weights {fl['weights']:,} B + graph {fl['graph']:,} B "
            f"(metadata {fl['metadata']:,} B)"
        ),
        (
            f"  activations: arena lower bound {mem['arena_lower_bound']:,} B (at op {mem['lower_bound_op']}), "
            f"greedy plan {mem['arena_plan_bytes']:,} B ({mem['alignment']}-byte aligned)"
            + (f", variable tensors {mem['variable_bytes']:,} B" if mem["variable_bytes"] else "")
        ),
    ]
    for label, key in (("input", "inputs"), ("output", "outputs")):
        for io in stats[key]:
            q = f", scale {io['scale']:.6g}, zero point {io['zero_point']}" if io["scale"] is not None else ""
            lines.append(f"  {label} {io['name']!r}: {_shape_str(io['shape'])} {io['dtype']}{q}")
    if stats["uncounted_weighted_ops"]:
        lines.append(f"  MACs not counted for ops {stats['uncounted_weighted_ops']} (recurrent/custom)")
    lines.append("")
    rows = []
    for op in stats["ops"]:
        ins = [i for i in op["inputs"] if i is not None and not i["constant"]]
        rows.append(
            [
                op["index"],
                op["op"] + (" *" if op["compile_time"] else ""),
                ", ".join(_shape_str(i["shape"]) for i in ins),
                ", ".join(_shape_str(o["shape"]) for o in op["outputs"] if o is not None),
                f"{op['params']:,}",
                f"{op['macs']:,}",
                f"{op['other_ops']:,}",
            ]
        )
    rows.append(["", "total", "", "", f"{t['params']:,}", f"{t['macs']:,}", f"{t['other_ops']:,}"])
    lines += text_table(["#", "op", "input", "output", "params", "MACs", "other"], rows, right={0, 4, 5, 6})
    if stats["compile_time_tensors"]:
        lines.append("* outputs computable at compile time (shape arithmetic)")
    lines.append("")
    lines.append("op counts: " + ", ".join(f"{k} x{v}" for k, v in stats["op_counts"].items()))
    return "\n".join(lines)
