"""Lowerings of the elementwise, activation and data-movement ops: SOFTMAX, LOGISTIC, TANH,
RELU, RELU6, ADD, MUL, CONCATENATION, PAD, PADV2, QUANTIZE, DEQUANTIZE, RESHAPE,
EXPAND_DIMS, SQUEEZE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND; and `corrected_shapes`.

Each lowering computes, at export time, the integers its C kernel needs with the same
float32/float64 steps as TFLite Micro's Prepare (sources cited per function), and emits a
`static const` parameter struct and the call. Kernels: firmware_ref/kernels/{softmax,
logistic,tanh,relu,add,mul,concatenation,pad,quantize,dequantize,reshape,space_batch}.c,
declared in firmware_ref/include/elementwise_ops.h (fixed-point exp/logistic/tanh in
iotsim_gemmlowp.h); their loops are TFLM's reference kernels.

Where TFLite Micro is wrong: SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND
-------------------------------------------------------------------
Keras lowers a dilated convolution (dilation_rate > 1) of a model with a dynamic batch to
SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND. For input (1, 10, 10, 2), block (2, 2),
paddings ((2, 2), (2, 2)) the SPACE_TO_BATCH_ND output really is (4, 7, 7, 2): one image per
position in the 2x2 block. The converter, which only knows the batch as -1 (shape_signature
(-1, 7, 7, 2)), stores the static shape (1, 7, 7, 2): it writes 1 for every -1. TFLite Micro
has no shape inference ("outputs must be properly sized by the converter") and runs every
kernel on the stored shapes: SPACE_TO_BATCH_ND produces only the first of the 4 sub-images,
CONV_2D convolves 1 image instead of 4, and BATCH_TO_SPACE_ND scatters that one image to a
quarter of its output, leaving the other three quarters as whatever the arena held. On top of
that TFLM's SpaceToBatchND never sets SpaceToBatchParams.output_offset (its Prepare does not
touch the persistent params), so it pads with whatever byte that field holds (0, 8, 32, 200 seen)
where the int8 zero point is needed.
LiteRT resizes the tensors (batch 4) and pads with the zero point, and agrees with the float
model. Measured on tests/data/firmware_ops/dilated_int8.tflite (tests/test_firmware_elementwise_ops.py):
the firmware equals LiteRT's reference kernels bit for bit and, on inputs like the calibration
data, the float Keras model within 3 LSB (mean 0.7); TFLM is off by up to 150-250 LSB. In the
first dilated conv's output TFLM matches exactly only at the quarter of positions it computes
whose window does not read padding; border positions are off by the wrong pad value (up to 65
LSB, varying run to run with the garbage byte), the other three quarters by up to ~250 LSB.

The firmware computes the right result: `corrected_shapes(graph)` infers the real shapes (the
batch factor of SPACE_TO_BATCH_ND, carried through the ops up to BATCH_TO_SPACE_ND), which the
exporter applies to the graph before planning the arena and lowering (export._shape_overrides),
so every kernel on the way, CONV_2D included, runs on batch 4.

Refused (UnsupportedOpError): non-int8 variants other than those listed per op (QUANTIZE
float32 -> int8 and int8 -> int8, DEQUANTIZE int8 -> float32, the data-movement ops of any
element type), int16 activations, quantization TFLM's Prepare rejects (e.g. a softmax output
not at scale 1/256, zero point -128), CONCATENATION/PAD whose inputs and output differ in
quantization (TFLM copies bytes and would silently mix scales), fused activations on
CONCATENATION, non-constant paddings/block shapes/crops, int64 paddings (TFLM reads them as
int32), tensors of more than 6 dimensions (PAD: 5; SPACE/BATCH ops: 3 or 4).
"""

from __future__ import annotations

import math

import numpy as np

from iotsim.firmware.lower import C_TYPES, LoweredOp, c_array, unsupported
from iotsim.firmware.quant import (
    activation_range_int8,
    f32,
    quantize_multiplier,
    tflite_round,
)
from iotsim.tinyml.stats import ModelGraph, OpInfo

HEADER = "elementwise_ops.h"
BCAST_DIMS = 6
_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
_ITEMSIZE = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "int32": 4, "float32": 4, "int64": 8}


# ------------------------------------------------------------------------------ parameters
# Scales are float32 in the model (and in TFLM's TfLiteQuantizationParams); every function
# below first rounds its scale arguments to float32, then works in double as TFLM does.
def _f32(x: float) -> float:
    return float(np.float32(x))


def softmax_params(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) of int8 SOFTMAX.

    softmax_common.cc CalculateSoftmaxParams -> PreprocessSoftmaxScaling(double beta, double
    input_scale, kScaledDiffIntegerBits = 5): min(beta * scale * 2^26, 2^31 - 1) in double,
    QuantizeMultiplierGreaterThanOne; diff_min = -CalculateInputRadius(5, left_shift, 31) =
    -floor(31 * 2^26 / 2^left_shift).
    """
    real = min(_f32(beta) * _f32(input_scale) * float(1 << 26), float((1 << 31) - 1))
    if not real > 1.0:
        raise ValueError(f"softmax beta * input scale * 2^26 = {real} is not > 1 (TFLM's check fails)")
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax multiplier shift < 0")
    radius = math.floor(1.0 * ((1 << 5) - 1) * (1 << 26) / (1 << shift))
    return mult, shift, -int(radius)


def sigmoid_params(input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) of int8 LOGISTIC and TANH.

    logistic_common.cc CalculateArithmeticOpDataLogistic / tanh.cc CalculateArithmeticOpData:
    input_real_multiplier = double(scale) * 2^27; q = frexp(...); multiplier =
    int32(TfLiteRound(q * 2^31)) (no QuantizeMultiplier: a q rounding to 2^31 is refused);
    radius = CalculateInputRadius(4, left_shift, 31) = floor(15 * 2^27 / 2^left_shift).
    """
    q, shift = math.frexp(_f32(input_scale) * float(1 << 27))
    mult = int(tflite_round(q * (1 << 31)))
    if mult >= 1 << 31:
        raise ValueError("input scale's multiplier rounds to 2^31 (int32 overflow in TFLM)")
    if shift < 0 or shift > 62:
        raise ValueError(f"input scale {input_scale} gives left shift {shift}")
    radius = math.floor(1.0 * ((1 << 4) - 1) * (1 << 27) / (1 << shift))
    return mult, shift, int(radius)


def add_params(scale1: float, scale2: float, scale_out: float) -> dict[str, int]:
    """ADD int8 multipliers (add_common.cc CalculateOpDataAdd, left_shift 20, all in double).

    twice_max = 2 * double(max(float s1, float s2)); input i: double(si) / twice_max; output:
    twice_max / ((1 << 20) * double(s_out)); each QuantizeMultiplierSmallerThanOneExp.
    """
    left_shift = 20
    scale1, scale2, scale_out = _f32(scale1), _f32(scale2), _f32(scale_out)
    twice_max = 2.0 * max(scale1, scale2)
    reals = (scale1 / twice_max, scale2 / twice_max, twice_max / ((1 << left_shift) * scale_out))
    out: dict[str, int] = {"left_shift": left_shift}
    for name, real in zip(("input1", "input2", "output"), reals):
        if not 0.0 < real < 1.0:
            raise ValueError(f"ADD {name} multiplier {real} is not in (0, 1) (TFLM's check fails)")
        m, s = quantize_multiplier(real)
        out[f"{name}_multiplier"], out[f"{name}_shift"] = m, s
    return out


def mul_params(scale1: float, scale2: float, scale_out: float) -> tuple[int, int]:
    """MUL int8: QuantizeMultiplier(double(s1) * double(s2) / double(s_out)) (mul_common.cc)."""
    return quantize_multiplier(_f32(scale1) * _f32(scale2) / _f32(scale_out))


def requantize_params(scale_in: float, scale_out: float) -> tuple[int, int]:
    """QUANTIZE int8 -> int8 and RELU: QuantizeMultiplier(double(s_in) / double(s_out))
    (quantize_common.cc PrepareQuantizeReference, activations_common.cc CalculateReluOpData)."""
    return quantize_multiplier(_f32(scale_in) / _f32(scale_out))


def relu6_range(scale: float, zero_point: int) -> tuple[int, int]:
    """RELU6 int8 clamp (Relu6Prepare): [zero_point, FloatToQuantizedType(6.0f, scale, zp)]."""
    six = int(tflite_round(f32(6.0 / _f32(scale)))) + int(zero_point)
    return int(zero_point), max(-128, min(127, six))


def broadcast_geometry(shape1, shape2, out_shape=None) -> tuple[list[int], list[int], list[int]]:
    """(dims, stride1, stride2) over BCAST_DIMS loops for a NumPy-style broadcast binary op.

    Shapes are right-aligned and extended with leading 1s; a stride is 0 on a dimension where
    that input has size 1 and the output does not.
    """
    shapes = [tuple(int(d) for d in s) for s in (shape1, shape2)]
    rank = max(len(shapes[0]), len(shapes[1]), len(out_shape or ()))
    if rank > BCAST_DIMS:
        raise ValueError(f"rank {rank} > {BCAST_DIMS}")
    ext = [(1,) * (BCAST_DIMS - len(s)) + s for s in shapes]
    dims = []
    for a, b in zip(*ext):
        if a != b and a != 1 and b != 1:
            raise ValueError(f"shapes {shapes[0]} and {shapes[1]} do not broadcast")
        dims.append(max(a, b))
    if out_shape is not None:
        o = (1,) * (BCAST_DIMS - len(out_shape)) + tuple(int(d) for d in out_shape)
        if list(o) != dims:
            raise ValueError(f"output shape {tuple(out_shape)} is not the broadcast of {shapes[0]} and {shapes[1]}")
    strides = []
    for s in ext:
        st, acc = [0] * BCAST_DIMS, 1
        for i in range(BCAST_DIMS - 1, -1, -1):
            st[i] = acc if s[i] == dims[i] and dims[i] != 1 else 0
            acc *= s[i]
        strides.append(st)
    return dims, strides[0], strides[1]


# ------------------------------------------------------------------------------ shapes
def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _const_ints(graph: ModelGraph, t: int) -> list[int] | None:
    if t < 0 or not graph.tensors[t].constant or graph.tensors[t].dtype not in ("int32", "int64"):
        return None
    return [int(v) for v in np.asarray(graph.constant_array(t)).ravel()]


def _space_batch_out_shape(name: str, in_shape, block, pads) -> tuple[int, ...] | None:
    """The real output shape of SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (None if malformed)."""
    m = len(block)
    if len(in_shape) < 1 + m or len(pads) != 2 * m or any(b <= 0 for b in block):
        return None
    spatial = list(in_shape[1 : 1 + m])
    if name == "SPACE_TO_BATCH_ND":
        padded = [spatial[i] + pads[2 * i] + pads[2 * i + 1] for i in range(m)]
        if any(p % b for p, b in zip(padded, block)):
            return None
        return (in_shape[0] * _prod(block), *[p // b for p, b in zip(padded, block)], *in_shape[1 + m :])
    if in_shape[0] % _prod(block):
        return None
    return (in_shape[0] // _prod(block), *[spatial[i] * block[i] - pads[2 * i] - pads[2 * i + 1] for i in range(m)],
            *in_shape[1 + m :])


def corrected_shapes(graph: ModelGraph) -> dict[int, tuple[int, ...]]:
    """{tensor: real shape} for every runtime tensor whose stored shape is not what runs.

    A model converted with a dynamic batch (shape_signature -1) stores 1 for the batch; after
    SPACE_TO_BATCH_ND the real batch is batch * prod(block_shape) (module doc). Starting from
    the stored shapes (batch 1 inputs), the real shapes are carried forward op by op:
    SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND from their block shape and paddings/crops; RESHAPE
    from its input's element count into the output's -1 (shape_signature) dimension;
    EXPAND_DIMS / SQUEEZE from their axes; any other op whose output has a dynamic leading
    dimension scales that dimension by its inputs' batch factor (conv, pooling, elementwise,
    activations, quantize...). Tensors whose shape is right are left out, so the result is
    empty for nearly every model, and applying it twice changes nothing.
    """
    actual: dict[int, tuple[int, ...]] = {t.index: tuple(int(d) for d in t.shape) for t in graph.tensors}
    fixed: dict[int, tuple[int, ...]] = {}

    def put(t: int, shape) -> None:
        shape = tuple(int(d) for d in shape)
        actual[t] = shape
        if shape != tuple(graph.tensors[t].shape):
            fixed[t] = shape
        else:
            fixed.pop(t, None)

    for op in graph.ops:
        outs = [t for t in op.outputs if t >= 0]
        if not outs:
            continue
        if op.name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND") and len(op.inputs) >= 3:
            block, pads = _const_ints(graph, op.inputs[1]), _const_ints(graph, op.inputs[2])
            if block is not None and pads is not None:
                shape = _space_batch_out_shape(op.name, actual[op.inputs[0]], block, pads)
                if shape is not None:
                    put(outs[0], shape)
            continue
        changed = [t for t in op.inputs if t >= 0 and t in fixed]
        if not changed:
            continue
        t_in, t_out = op.inputs[0], outs[0]
        sig = tuple(graph.tensors[t_out].shape_signature)
        stored = tuple(int(d) for d in graph.tensors[t_out].shape)
        if op.name == "RESHAPE":
            n = _prod(actual[t_in])
            free = [i for i, d in enumerate(sig) if d == -1]
            rest = _prod(d for i, d in enumerate(stored) if i not in free)
            if len(free) == 1 and rest and n % rest == 0:
                put(t_out, tuple(n // rest if i == free[0] else d for i, d in enumerate(stored)))
            continue
        if op.name == "EXPAND_DIMS":
            axis = _const_ints(graph, op.inputs[1]) if len(op.inputs) > 1 else None
            if axis:
                shape = list(actual[t_in])
                a = axis[0] + len(shape) + 1 if axis[0] < 0 else axis[0]
                shape.insert(a, 1)
                put(t_out, shape)
            continue
        if op.name == "SQUEEZE":
            shape = list(actual[t_in])
            dims = [d + len(shape) if d < 0 else d for d in op.options.get("squeeze_dims") or []]
            put(t_out, [d for i, d in enumerate(shape) if (i not in dims if dims else d != 1)])
            continue
        factors = [_prod(actual[t]) // max(_prod(graph.tensors[t].shape), 1) for t in changed
                   if _prod(actual[t]) % max(_prod(graph.tensors[t].shape), 1) == 0]
        factor = max(factors, default=1)
        for t in outs:
            s = tuple(int(d) for d in graph.tensors[t].shape)
            if s and graph.tensors[t].shape_signature and graph.tensors[t].shape_signature[0] == -1:
                put(t, (s[0] * factor, *s[1:]))
    return fixed


# ------------------------------------------------------------------------------ helpers
def _tensor(graph: ModelGraph, op: OpInfo, pos: int, what: str, outputs: bool = False) -> int:
    seq = op.outputs if outputs else op.inputs
    if len(seq) <= pos or seq[pos] < 0:
        raise unsupported(graph, op, f"{what} tensor is missing")
    return int(seq[pos])


def _qparams(graph: ModelGraph, op: OpInfo, t: int, what: str) -> tuple[float, int]:
    q = graph.tensors[t].quantization
    if not q.scales:
        raise unsupported(graph, op, f"{what} tensor {t} is not quantized")
    if len(q.scales) > 1:
        raise unsupported(graph, op, f"{what} tensor {t} is quantized per channel")
    return float(q.scales[0]), int(q.zero_points[0]) if q.zero_points else 0


def _dtype(graph: ModelGraph, op: OpInfo, t: int, what: str, allowed: tuple[str, ...]) -> str:
    dt = graph.tensors[t].dtype
    if dt not in allowed:
        raise unsupported(graph, op, f"{what} tensor {t} is {dt}; supported: {', '.join(allowed)}")
    return dt


def _shape(graph: ModelGraph, t: int) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.tensors[t].shape)


def _struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f".{k} = {fmt(x)}" for k, x in v.items()) + " }"
        if isinstance(v, (list, tuple)):
            return "{ " + ", ".join(fmt(x) for x in v) + " }"
        if isinstance(v, float):
            return repr(float(np.float32(v))) + "f"
        return str(v)

    body = ",\n".join(f"    .{k} = {fmt(v)}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n{body}\n}};\n"


def _lowered(call: str, decls: str, *sources: str) -> LoweredOp:
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=tuple(sources))


def _same_quant(graph: ModelGraph, a: int, b: int) -> bool:
    qa, qb = graph.tensors[a].quantization, graph.tensors[b].quantization
    return (tuple(np.float32(s) for s in qa.scales), tuple(qa.zero_points)) == (
        tuple(np.float32(s) for s in qb.scales), tuple(qb.zero_points))


def _activation(graph: ModelGraph, op: OpInfo, t_out: int) -> tuple[int, int]:
    act = op.options.get("fused_activation_function", "NONE") or "NONE"
    if act not in _ACTIVATIONS:
        raise unsupported(graph, op, f"fused activation {act} is not supported for int8")
    scale, zp = _qparams(graph, op, t_out, "output")
    return activation_range_int8(act, scale, zp)


def _same_elements(graph: ModelGraph, op: OpInfo, t_in: int, t_out: int) -> int:
    n = graph.tensors[t_in].elements
    if graph.tensors[t_out].elements != n:
        raise unsupported(graph, op, f"input {t_in} has {n} elements, output {t_out} {graph.tensors[t_out].elements}")
    return n


# ------------------------------------------------------------------------------ activations
def lower_softmax(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """SOFTMAX int8 -> int8 (softmax_common.cc SoftmaxPrepare + reference_ops::Softmax)."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    _dtype(graph, op, t_in, "input", ("int8",))
    _dtype(graph, op, t_out, "output", ("int8",))
    in_scale, _ = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        raise unsupported(graph, op, f"int8 softmax output must be scale 1/256, zero point -128 (is {out_scale}, {out_zp})")
    shape = _shape(graph, t_in)
    if not shape or _shape(graph, t_out) != shape:
        raise unsupported(graph, op, f"input shape {list(shape)} and output shape differ or are empty")
    beta = float(np.float32(op.options.get("beta", 1.0)))
    try:
        mult, shift, diff_min = softmax_params(float(np.float32(in_scale)), beta)
    except ValueError as exc:
        raise unsupported(graph, op, str(exc)) from None
    depth = shape[-1]
    p = f"op{op.index}"
    decls = _struct("iotsim_softmax_params_t", f"{p}_params", {
        "outer": _prod(shape) // max(depth, 1), "depth": depth,
        "input_multiplier": mult, "input_left_shift": shift, "diff_min": diff_min,
    })
    return _lowered(f"iotsim_softmax_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "softmax.c")


def _lower_sigmoid(graph: ModelGraph, op: OpInfo, out_scale_want: float, out_zp_want: int, kernel: str,
                   source: str) -> LoweredOp:
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    _dtype(graph, op, t_in, "input", ("int8",))
    _dtype(graph, op, t_out, "output", ("int8",))
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    if out_zp != out_zp_want or np.float32(out_scale) != np.float32(out_scale_want):
        raise unsupported(graph, op, f"int8 {op.name} output must be scale {out_scale_want}, zero point {out_zp_want} "
                                     f"(is {out_scale}, {out_zp}): TFLM's kernel assumes it")
    n = _same_elements(graph, op, t_in, t_out)
    try:
        mult, shift, radius = sigmoid_params(float(np.float32(in_scale)))
    except ValueError as exc:
        raise unsupported(graph, op, str(exc)) from None
    p = f"op{op.index}"
    decls = _struct("iotsim_sigmoid_params_t", f"{p}_params", {
        "size": n, "input_zero_point": in_zp, "input_range_radius": radius,
        "input_multiplier": mult, "input_left_shift": shift,
    })
    return _lowered(f"{kernel}(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, source)


def lower_logistic(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """LOGISTIC int8 (logistic_common.cc + reference_integer_ops::Logistic); output 1/256, -128."""
    return _lower_sigmoid(graph, op, 1.0 / 256, -128, "iotsim_logistic_s8", "logistic.c")


def lower_tanh(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """TANH int8 (tanh.cc + reference_integer_ops::Tanh); output 1/128, 0."""
    return _lower_sigmoid(graph, op, 1.0 / 128, 0, "iotsim_tanh_s8", "tanh.c")


def lower_relu(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """RELU int8 (activations_common.cc CalculateReluOpData + ReluQuantized)."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    _dtype(graph, op, t_in, "input", ("int8",))
    _dtype(graph, op, t_out, "output", ("int8",))
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    mult, shift = requantize_params(in_scale, out_scale)
    p = f"op{op.index}"
    decls = _struct("iotsim_relu_params_t", f"{p}_params", {
        "size": _same_elements(graph, op, t_in, t_out), "input_zero_point": in_zp, "output_zero_point": out_zp,
        "multiplier": mult, "shift": shift, "act_min": max(-128, out_zp), "act_max": 127,
    })
    return _lowered(f"iotsim_relu_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "relu.c")


def lower_relu6(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """RELU6 int8 (activations_common.cc Relu6Prepare + Relu6Quantized: a clamp, no requantization)."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    _dtype(graph, op, t_in, "input", ("int8",))
    _dtype(graph, op, t_out, "output", ("int8",))
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    if not _same_quant(graph, t_in, t_out):
        raise unsupported(graph, op, "int8 RELU6 with different input and output quantization (TFLM does not requantize)")
    lo, hi = relu6_range(in_scale, in_zp)
    p = f"op{op.index}"
    decls = _struct("iotsim_relu_params_t", f"{p}_params", {
        "size": _same_elements(graph, op, t_in, t_out), "input_zero_point": in_zp, "output_zero_point": in_zp,
        "multiplier": 0, "shift": 0, "act_min": lo, "act_max": hi,
    })
    return _lowered(f"iotsim_relu6_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "relu.c")


# ------------------------------------------------------------------------------ ADD, MUL
def _binary(graph: ModelGraph, op: OpInfo) -> tuple[int, int, int, dict]:
    t1, t2 = _tensor(graph, op, 0, "input1"), _tensor(graph, op, 1, "input2")
    t_out = _tensor(graph, op, 0, "output", True)
    for what, t in (("input1", t1), ("input2", t2), ("output", t_out)):
        _dtype(graph, op, t, what, ("int8",))
    try:
        dims, s1, s2 = broadcast_geometry(_shape(graph, t1), _shape(graph, t2), _shape(graph, t_out))
    except ValueError as exc:
        raise unsupported(graph, op, str(exc)) from None
    return t1, t2, t_out, {"dims": dims, "stride1": s1, "stride2": s2}


def lower_add(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """ADD int8 with broadcasting (add_common.cc CalculateOpDataAdd + reference_integer_ops::AddFunc)."""
    t1, t2, t_out, shape = _binary(graph, op)
    (s1, z1), (s2, z2) = _qparams(graph, op, t1, "input1"), _qparams(graph, op, t2, "input2")
    so, zo = _qparams(graph, op, t_out, "output")
    try:
        q = add_params(s1, s2, so)
    except ValueError as exc:
        raise unsupported(graph, op, str(exc)) from None
    act_min, act_max = _activation(graph, op, t_out)
    p = f"op{op.index}"
    decls = _struct("iotsim_add_params_t", f"{p}_params", {
        "shape": shape, "input1_offset": -z1, "input2_offset": -z2, "output_offset": zo, **q,
        "act_min": act_min, "act_max": act_max,
    })
    return _lowered(f"iotsim_add_s8(&{p}_params, {{T{t1}}}, {{T{t2}}}, {{T{t_out}}});", decls, "add.c")


def lower_mul(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """MUL int8 with broadcasting (mul_common.cc CalculateOpDataMul + reference_integer_ops::Mul)."""
    t1, t2, t_out, shape = _binary(graph, op)
    (s1, z1), (s2, z2) = _qparams(graph, op, t1, "input1"), _qparams(graph, op, t2, "input2")
    so, zo = _qparams(graph, op, t_out, "output")
    mult, shift = mul_params(s1, s2, so)
    act_min, act_max = _activation(graph, op, t_out)
    p = f"op{op.index}"
    decls = _struct("iotsim_mul_params_t", f"{p}_params", {
        "shape": shape, "input1_offset": -z1, "input2_offset": -z2, "output_offset": zo,
        "output_multiplier": mult, "output_shift": shift, "act_min": act_min, "act_max": act_max,
    })
    return _lowered(f"iotsim_mul_s8(&{p}_params, {{T{t1}}}, {{T{t2}}}, {{T{t_out}}});", decls, "mul.c")


# ------------------------------------------------------------------------------ data movement
def lower_concatenation(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """CONCATENATION along any axis (concatenation.cc: a copy for every type, int8 included)."""
    t_out = _tensor(graph, op, 0, "output", True)
    ins = [t for t in op.inputs if t >= 0]
    if not ins:
        raise unsupported(graph, op, "no inputs")
    if (op.options.get("fused_activation_function") or "NONE") != "NONE":
        raise unsupported(graph, op, "fused activation on CONCATENATION (TFLM refuses it)")
    dt = _dtype(graph, op, t_out, "output", tuple(k for k in C_TYPES if k in _ITEMSIZE))
    out_shape = _shape(graph, t_out)
    rank = len(out_shape)
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise unsupported(graph, op, f"axis {op.options.get('axis')} for rank {rank}")
    total = 0
    copy_bytes = []
    for t in ins:
        if graph.tensors[t].dtype != dt:
            raise unsupported(graph, op, f"input {t} is {graph.tensors[t].dtype}, output {dt}")
        if graph.tensors[t].quantization.scales and not _same_quant(graph, t, t_out):
            raise unsupported(graph, op, f"input {t} is quantized differently from the output: TFLM copies the "
                                         "bytes unchanged (the converter gives all of them the output's quantization)")
        s = _shape(graph, t)
        if len(s) != rank or any(s[i] != out_shape[i] for i in range(rank) if i != axis):
            raise unsupported(graph, op, f"input {t} shape {list(s)} does not fit output {list(out_shape)} on axis {axis}")
        total += s[axis]
        copy_bytes.append(_prod(s[axis:]) * _ITEMSIZE[dt])
    if total != out_shape[axis]:
        raise unsupported(graph, op, f"inputs sum to {total} along axis {axis}, output has {out_shape[axis]}")
    p = f"op{op.index}"
    decls = c_array(f"{p}_copy_bytes", "int32_t", copy_bytes) + _struct("iotsim_concat_params_t", f"{p}_params", {
        "num_inputs": len(ins), "outer": _prod(out_shape[:axis]), "copy_bytes": f"{p}_copy_bytes",
    })
    ptrs = ", ".join(f"{{T{t}}}" for t in ins)
    call = (f"const void *const {p}_inputs[{len(ins)}] = {{ {ptrs} }};\n"
            f"iotsim_concat(&{p}_params, {p}_inputs, {{T{t_out}}});")
    return _lowered(call, decls, "concatenation.c")


def lower_pad(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """PAD / PADV2 (pad_common.cc PadPrepare + reference_ops::PadImpl, up to 5 dimensions)."""
    t_in, t_pad = _tensor(graph, op, 0, "input"), _tensor(graph, op, 1, "paddings")
    t_out = _tensor(graph, op, 0, "output", True)
    dt = _dtype(graph, op, t_in, "input", ("int8", "int16", "int32", "float32"))
    _dtype(graph, op, t_out, "output", (dt,))
    if not graph.tensors[t_pad].constant:
        raise unsupported(graph, op, "non-constant paddings (TFLM refuses them)")
    if graph.tensors[t_pad].dtype != "int32":
        raise unsupported(graph, op, f"paddings are {graph.tensors[t_pad].dtype}; TFLM reads them as int32")
    in_shape, out_shape = _shape(graph, t_in), _shape(graph, t_out)
    rank = len(in_shape)
    pads = [int(v) for v in graph.constant_array(t_pad).ravel()]
    if rank > 5 or len(out_shape) != rank or len(pads) != 2 * rank:
        raise unsupported(graph, op, f"input rank {rank}, output rank {len(out_shape)}, {len(pads)} paddings (max rank 5)")
    if any(pads[2 * i] < 0 or pads[2 * i + 1] < 0 for i in range(rank)):
        raise unsupported(graph, op, "negative paddings")
    if any(in_shape[i] + pads[2 * i] + pads[2 * i + 1] != out_shape[i] for i in range(rank)):
        raise unsupported(graph, op, f"output shape {list(out_shape)} is not input {list(in_shape)} plus paddings {pads}")
    pad_value = np.zeros((), dtype=np.dtype(dt))
    if graph.tensors[t_in].quantization.scales and not _same_quant(graph, t_in, t_out):
        raise unsupported(graph, op, "input and output quantization differ (TFLM copies the bytes unchanged)")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        t_c = op.inputs[2]
        if not graph.tensors[t_c].constant or graph.tensors[t_c].dtype != dt or graph.tensors[t_c].elements != 1:
            raise unsupported(graph, op, f"constant_values tensor {t_c} must be a constant {dt} scalar")
        if dt == "int8" and not _same_quant(graph, t_c, t_out):
            raise unsupported(graph, op, "constant_values quantized differently from the output (TFLM refuses it)")
        pad_value = np.asarray(graph.constant_array(t_c)).reshape(())
    elif dt == "int8":
        _, zo = _qparams(graph, op, t_out, "output")
        pad_value = np.asarray(zo, dtype=np.int8)
    raw = np.asarray(pad_value, dtype=np.dtype(dt).newbyteorder("<")).tobytes()
    ext = 5 - rank
    p = f"op{op.index}"
    decls = _struct("iotsim_pad_params_t", f"{p}_params", {
        "out_dims": [1] * ext + list(out_shape),
        "left": [0] * ext + pads[0::2], "right": [0] * ext + pads[1::2],
        "elem_size": _ITEMSIZE[dt], "pad_value": list(raw) + [0] * (4 - len(raw)),
    })
    return _lowered(f"iotsim_pad(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "pad.c")


def lower_quantize(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """QUANTIZE float32 -> int8 (AffineQuantize) and int8 -> int8 (Requantize), quantize_common.cc."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    din = _dtype(graph, op, t_in, "input", ("float32", "int8"))
    _dtype(graph, op, t_out, "output", ("int8",))
    so, zo = _qparams(graph, op, t_out, "output")
    n = _same_elements(graph, op, t_in, t_out)
    p = f"op{op.index}"
    if din == "float32":
        decls = _struct("iotsim_quantize_params_t", f"{p}_params", {"size": n, "scale": so, "zero_point": zo})
        return _lowered(f"iotsim_quantize_f32_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "quantize.c")
    si, zi = _qparams(graph, op, t_in, "input")
    mult, shift = requantize_params(si, so)
    decls = _struct("iotsim_requantize_params_t", f"{p}_params", {
        "size": n, "input_zero_point": zi, "output_zero_point": zo, "multiplier": mult, "shift": shift,
    })
    return _lowered(f"iotsim_requantize_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "quantize.c")


def lower_dequantize(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """DEQUANTIZE int8 -> float32 (dequantize_common.cc + reference_ops::Dequantize)."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    _dtype(graph, op, t_in, "input", ("int8",))
    _dtype(graph, op, t_out, "output", ("float32",))
    si, zi = _qparams(graph, op, t_in, "input")
    p = f"op{op.index}"
    decls = _struct("iotsim_dequantize_params_t", f"{p}_params", {
        "size": _same_elements(graph, op, t_in, t_out), "scale": si, "zero_point": zi,
    })
    return _lowered(f"iotsim_dequantize_s8_f32(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "dequantize.c")


def lower_reshape(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """RESHAPE, EXPAND_DIMS, SQUEEZE: a byte copy (the shape input is not read at run time)."""
    t_in, t_out = _tensor(graph, op, 0, "input"), _tensor(graph, op, 0, "output", True)
    ti, to = graph.tensors[t_in], graph.tensors[t_out]
    if ti.dtype != to.dtype:
        raise unsupported(graph, op, f"input is {ti.dtype}, output {to.dtype}")
    if ti.nbytes != to.nbytes:
        raise unsupported(graph, op, f"input has {ti.nbytes} bytes, output {to.nbytes}")
    return LoweredOp(call=f"iotsim_reshape({{T{t_in}}}, {{T{t_out}}}, {ti.nbytes}u);", headers=(HEADER,),
                     sources=("reshape.c",))


def _lower_space_batch(graph: ModelGraph, op: OpInfo, kernel: str) -> LoweredOp:
    t_in, t_block = _tensor(graph, op, 0, "input"), _tensor(graph, op, 1, "block_shape")
    t_pad = _tensor(graph, op, 2, "paddings" if op.name == "SPACE_TO_BATCH_ND" else "crops")
    t_out = _tensor(graph, op, 0, "output", True)
    dt = _dtype(graph, op, t_in, "input", ("int8", "float32"))
    _dtype(graph, op, t_out, "output", (dt,))
    block, pads = _const_ints(graph, t_block), _const_ints(graph, t_pad)
    if block is None or pads is None or graph.tensors[t_block].dtype != "int32" or graph.tensors[t_pad].dtype != "int32":
        raise unsupported(graph, op, "block shape and paddings/crops must be constant int32 tensors")
    in_shape, out_shape = _shape(graph, t_in), _shape(graph, t_out)
    rank = len(in_shape)
    if rank not in (3, 4) or len(out_shape) != rank or len(block) != rank - 2 or len(pads) != 2 * (rank - 2):
        raise unsupported(graph, op, f"input shape {list(in_shape)} with block {block}: only 3-D (NHC) and 4-D (NHWC)")
    if graph.tensors[t_in].quantization.scales and not _same_quant(graph, t_in, t_out):
        raise unsupported(graph, op, "input and output quantization differ")
    want = _space_batch_out_shape(op.name, in_shape, block, pads)
    if want != out_shape:
        raise unsupported(graph, op, f"output shape {list(out_shape)} is not the real one {list(want) if want else '?'}: "
                                     "export applies ops_elementwise.corrected_shapes first")
    ext_in = (in_shape[0], in_shape[1], in_shape[2] if rank == 4 else 1, in_shape[-1])
    ext_out = (out_shape[0], out_shape[1], out_shape[2] if rank == 4 else 1, out_shape[-1])
    block_w = block[1] if rank == 4 else 1
    pad_left = pads[2] if rank == 4 else 0
    pad_byte = 0
    if op.name == "SPACE_TO_BATCH_ND" and graph.tensors[t_out].quantization.scales:
        _, zo = _qparams(graph, op, t_out, "output")
        pad_byte = zo & 0xFF
    p = f"op{op.index}"
    decls = _struct("iotsim_space_batch_params_t", f"{p}_params", {
        "in_b": ext_in[0], "in_h": ext_in[1], "in_w": ext_in[2], "depth": ext_in[3],
        "out_b": ext_out[0], "out_h": ext_out[1], "out_w": ext_out[2],
        "block_h": block[0], "block_w": block_w, "pad_top": pads[0], "pad_left": pad_left,
        "elem_size": _ITEMSIZE[dt], "pad_byte": pad_byte,
    })
    return _lowered(f"{kernel}(&{p}_params, {{T{t_in}}}, {{T{t_out}}});", decls, "space_batch.c")


def lower_space_to_batch_nd(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """SPACE_TO_BATCH_ND (reference_ops::SpaceToBatchND) on real shapes, padding with the zero point."""
    return _lower_space_batch(graph, op, "iotsim_space_to_batch_nd")


def lower_batch_to_space_nd(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """BATCH_TO_SPACE_ND (reference_ops::BatchToSpaceND) on real shapes."""
    return _lower_space_batch(graph, op, "iotsim_batch_to_space_nd")


LOWERINGS = {
    "SOFTMAX": lower_softmax,
    "LOGISTIC": lower_logistic,
    "TANH": lower_tanh,
    "RELU": lower_relu,
    "RELU6": lower_relu6,
    "ADD": lower_add,
    "MUL": lower_mul,
    "CONCATENATION": lower_concatenation,
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
    "RESHAPE": lower_reshape,
    "EXPAND_DIMS": lower_reshape,
    "SQUEEZE": lower_reshape,
    "SPACE_TO_BATCH_ND": lower_space_to_batch_nd,
    "BATCH_TO_SPACE_ND": lower_batch_to_space_nd,
}
