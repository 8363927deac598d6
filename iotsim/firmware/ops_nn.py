"""Lowerings of the int8 neural-network ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
AVERAGE_POOL_2D, MAX_POOL_2D, MEAN.

Each function computes, at export time, every integer the C kernel needs, with the same
float32/float64 steps as TFLite Micro's Prepare (kernel sources cited per op), and emits a
`static const` parameter struct plus the kernel call. Kernels: firmware_ref/kernels/{conv,
depthwise_conv,fully_connected,pooling,mean}.c, declared in firmware_ref/include/nn_ops.h;
their loops are TFLM's reference kernels (tensorflow/lite/kernels/internal/reference/...).

Refused (UnsupportedOpError): non-int8 tensors; int4, non-constant or unquantized weights;
fused activations other than NONE/RELU/RELU6/RELU_N1_TO_1; shuffled FC weights; depthwise
convolution without bias (TFLM's Prepare crashes on it, LiteRT refuses it); pooling whose input
and output quantization differ and FC whose bias scale is off (TFLM's Prepare refuses both);
MEAN with a non-constant axis or an input of rank > 5.

Two facts pinned down against the installed TFLM (tests/test_firmware_nn_ops.py): per-tensor
FC/conv multipliers use the double product double(in) * double(w) / double(out) (not a float32
product), and int8 MEAN always goes through QuantizedMeanOrSum's integer multiplier, also when
input and output share scale and zero point (no truncating integer division).
"""

from __future__ import annotations

import numpy as np

from iotsim.firmware.lower import LoweredOp, c_array, unsupported
from iotsim.firmware.quant import activation_range_int8, quantize_multiplier
from iotsim.tinyml.stats import ModelGraph, OpInfo

HEADER = "nn_ops.h"
_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


# ------------------------------------------------------------------------------ helpers
def _cdiv(a: int, b: int) -> int:
    """C++ integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def compute_out_size(padding: str, image: int, filt: int, stride: int, dilation: int = 1) -> int:
    """tflite::ComputeOutSize (kernels/padding.h)."""
    eff = (filt - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding == "SAME":
        return _cdiv(image + stride - 1, stride)
    if padding == "VALID":
        return _cdiv(image + stride - eff, stride)
    return 0


def compute_padding_with_offset(stride: int, dilation: int, in_size: int, filt: int, out_size: int) -> tuple[int, int]:
    """tflite::ComputePaddingWithOffset: (padding before, extra padding after)."""
    eff = (filt - 1) * dilation + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2, total % 2


def compute_padding_hw(padding: str, stride_h: int, stride_w: int, dil_h: int, dil_w: int, in_h: int, in_w: int,
                       filt_h: int, filt_w: int) -> tuple[int, int, int, int]:
    """tflite::ComputePaddingHeightWidth: (pad_h, pad_w, out_h, out_w)."""
    out_w = compute_out_size(padding, in_w, filt_w, stride_w, dil_w)
    out_h = compute_out_size(padding, in_h, filt_h, stride_h, dil_h)
    pad_h, _ = compute_padding_with_offset(stride_h, dil_h, in_h, filt_h, out_h)
    pad_w, _ = compute_padding_with_offset(stride_w, dil_w, in_w, filt_w, out_w)
    return pad_h, pad_w, out_h, out_w


def conv_multipliers(input_scale: float, filter_scales, output_scale: float, channels: int) -> tuple[list[int], list[int]]:
    """PopulateConvolutionQuantizationParams (kernels/kernel_util.cc), per channel.

    effective = double(input_scale) * double(filter_scale) / double(output_scale), per-tensor
    filter scales broadcast over the channels; QuantizeMultiplier(double).
    """
    scales = list(filter_scales)
    mults, shifts = [], []
    for c in range(channels):
        s = scales[c] if len(scales) > 1 else scales[0]
        m, sh = quantize_multiplier(float(input_scale) * float(s) / float(output_scale))
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """CalculateOpDataFullyConnected, per-tensor weights: GetQuantizedConvolutionMultipler.

    double(input_scale) * double(filter_scale) / double(output_scale), the same double product
    as the per-channel path. (Some TFLite versions form the product in float32,
    `static_cast<double>(input->params.scale * filter->params.scale)`; the TFLM this firmware is
    checked against does not: tests/test_firmware_nn_ops.py pins the difference down with scales
    for which the two multipliers differ.)
    """
    return quantize_multiplier(float(input_scale) * float(filter_scale) / float(output_scale))


def mean_multiplier(input_scale: float, output_scale: float, num_elements: int) -> tuple[int, int]:
    """PrepareMeanOrSum's QuantizeMultiplier(double(in)/double(out)), then QuantizedMeanOrSum's fold of 1/n.

    shift = min(floor(log2 n), 32, 31 + output_shift); multiplier = (m << shift) / n (int64,
    truncating); output_shift -= shift.
    """
    m, s = quantize_multiplier(float(input_scale) / float(output_scale))
    if num_elements <= 0:
        return m, s
    k = num_elements.bit_length() - 1  # 63 - CountLeadingZeros(n)
    k = min(k, 32, 31 + s)
    m = (m << k) // num_elements if k >= 0 else m
    return int(m), s - k


def _tensor(graph: ModelGraph, op: OpInfo, t: int, what: str):
    if t < 0:
        raise unsupported(graph, op, f"{what} tensor is missing")
    return graph.tensors[t]


def _qparams(graph: ModelGraph, op: OpInfo, t: int, what: str) -> tuple[float, int]:
    ti = graph.tensors[t]
    q = ti.quantization
    if not q.scales:
        raise unsupported(graph, op, f"{what} tensor {t} is not quantized")
    return float(q.scales[0]), int(q.zero_points[0]) if q.zero_points else 0


def _check_int8(graph: ModelGraph, op: OpInfo, tensors: dict[str, int]) -> None:
    for what, t in tensors.items():
        ti = _tensor(graph, op, t, what)
        if ti.dtype != "int8":
            raise unsupported(graph, op, f"{what} tensor {t} is {ti.dtype}; only int8 is supported")


def _activation(graph: ModelGraph, op: OpInfo, out_t: int) -> tuple[int, int]:
    act = op.options.get("fused_activation_function", "NONE") or "NONE"
    if act not in _ACTIVATIONS:
        raise unsupported(graph, op, f"fused activation {act} is not supported for int8")
    scale, zp = _qparams(graph, op, out_t, "output")
    return activation_range_int8(act, scale, zp)


def _bias(graph: ModelGraph, op: OpInfo, pos: int, channels: int) -> str:
    """The C expression of the optional bias input: a placeholder, or a null pointer."""
    t = op.inputs[pos] if len(op.inputs) > pos else -1
    if t < 0:
        return "(const int32_t *)0"
    ti = graph.tensors[t]
    if ti.dtype != "int32":
        raise unsupported(graph, op, f"bias tensor {t} is {ti.dtype}; int8 ops need int32 bias")
    if not ti.constant:
        raise unsupported(graph, op, f"bias tensor {t} is not constant")
    if ti.elements != channels:
        raise unsupported(graph, op, f"bias tensor {t} has {ti.elements} elements for {channels} channels")
    return f"{{T{t}}}"


def _weights(graph: ModelGraph, op: OpInfo, t: int) -> None:
    ti = _tensor(graph, op, t, "weights")
    if ti.dtype != "int8":
        raise unsupported(graph, op, f"weights tensor {t} is {ti.dtype}; only int8 weights are supported")
    if not ti.constant:
        raise unsupported(graph, op, f"weights tensor {t} is not constant")
    if not ti.quantization.scales:
        raise unsupported(graph, op, f"weights tensor {t} is not quantized")


def _struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    body = ",\n".join(f"    .{k} = {v}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n{body}\n}};\n"


def _requant_arrays(prefix: str, mults: list[int], shifts: list[int]) -> tuple[str, int]:
    """Per-channel multiplier/shift arrays; one entry when all channels share them (per-tensor)."""
    per_channel = 1 if len(set(zip(mults, shifts))) > 1 else 0
    if not per_channel:
        mults, shifts = mults[:1], shifts[:1]
    decls = c_array(f"{prefix}_mult", "int32_t", mults) + c_array(f"{prefix}_shift", "int32_t", shifts)
    return decls, per_channel


def _options_int(graph: ModelGraph, op: OpInfo, key: str, default: int | None = None) -> int:
    v = op.options.get(key, default)
    if v is None:
        raise unsupported(graph, op, f"option {key} is missing")
    return int(v)


def _padding(graph: ModelGraph, op: OpInfo) -> str:
    p = op.options.get("padding")
    if p not in ("SAME", "VALID"):
        raise unsupported(graph, op, f"padding {p!r} is not supported")
    return p


def _shape4(graph: ModelGraph, op: OpInfo, t: int, what: str) -> tuple[int, int, int, int]:
    shape = graph.tensors[t].shape
    if len(shape) != 4:
        raise unsupported(graph, op, f"{what} tensor {t} has shape {list(shape)}; a 4-D tensor is needed")
    return tuple(int(d) for d in shape)  # type: ignore[return-value]


def _window(graph: ModelGraph, op: OpInfo, in_hw: tuple[int, int], filt_hw: tuple[int, int],
            out_hw: tuple[int, int], *, dilated: bool = True) -> dict[str, int]:
    """Strides, dilations and padding of a sliding-window op, checked against its stored output size."""
    stride_h, stride_w = _options_int(graph, op, "stride_h"), _options_int(graph, op, "stride_w")
    dil_h = _options_int(graph, op, "dilation_h_factor", 1) if dilated else 1
    dil_w = _options_int(graph, op, "dilation_w_factor", 1) if dilated else 1
    padding = _padding(graph, op)
    pad_h, pad_w, eo_h, eo_w = compute_padding_hw(padding, stride_h, stride_w, dil_h, dil_w, *in_hw, *filt_hw)
    if (eo_h, eo_w) != tuple(out_hw):
        raise unsupported(graph, op, f"output is {out_hw[0]}x{out_hw[1]}, padding {padding} gives {eo_h}x{eo_w}")
    return {"stride_h": stride_h, "stride_w": stride_w, "dil_h": dil_h, "dil_w": dil_w,
            "pad_h": pad_h, "pad_w": pad_w}


def _filter_requant(graph: ModelGraph, op: OpInfo, t_in: int, t_w: int, t_out: int, out_c: int,
                    channel_dim: int, what: str) -> dict:
    """Zero points, per-channel multipliers/shifts and activation clamp of a conv-like op's output."""
    wq = graph.tensors[t_w].quantization
    if len(wq.scales) not in (1, out_c):
        raise unsupported(graph, op, f"filter has {len(wq.scales)} scales for {out_c} output channels")
    if len(wq.scales) > 1 and wq.quantized_dimension != channel_dim:
        raise unsupported(graph, op, f"per-channel {what} not quantized along dimension {channel_dim}")
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    mults, shifts = conv_multipliers(in_scale, wq.scales, out_scale, out_c)
    act_min, act_max = _activation(graph, op, t_out)
    return {"in_zp": in_zp, "out_zp": out_zp, "mults": mults, "shifts": shifts, "act_min": act_min, "act_max": act_max}


# ------------------------------------------------------------------------------ CONV_2D
def lower_conv_2d(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """CONV_2D int8 (conv_common.cc ConvPrepare + reference_integer_ops::ConvPerChannel)."""
    t_in, t_w = op.inputs[0], op.inputs[1]
    t_out = op.outputs[0]
    _check_int8(graph, op, {"input": t_in, "output": t_out})
    _weights(graph, op, t_w)
    n, in_h, in_w, in_c = _shape4(graph, op, t_in, "input")
    out_c, f_h, f_w, f_in_c = _shape4(graph, op, t_w, "filter")
    on, out_h, out_w, oc = _shape4(graph, op, t_out, "output")
    if on != n or oc != out_c:
        raise unsupported(graph, op, "input/filter/output shapes do not match")
    if f_in_c <= 0 or in_c % f_in_c:
        raise unsupported(graph, op, f"input depth {in_c} is not a multiple of the filter depth {f_in_c}")
    groups = in_c // f_in_c
    if out_c % groups:
        raise unsupported(graph, op, f"{out_c} filters do not split into {groups} groups")
    win = _window(graph, op, (in_h, in_w), (f_h, f_w), (out_h, out_w))
    rq = _filter_requant(graph, op, t_in, t_w, t_out, out_c, 0, "filter")
    bias = _bias(graph, op, 2, out_c)

    p = f"op{op.index}"
    arrays, per_channel = _requant_arrays(p, rq["mults"], rq["shifts"])
    decls = arrays + _struct("iotsim_conv_params_t", f"{p}_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c,
        "out_h": out_h, "out_w": out_w, "out_c": out_c,
        "filt_h": f_h, "filt_w": f_w, "filt_in_c": f_in_c, "filters_per_group": out_c // groups,
        **win,
        "input_offset": -rq["in_zp"], "output_offset": rq["out_zp"], "act_min": rq["act_min"], "act_max": rq["act_max"],
        "per_channel": per_channel, "out_mult": f"{p}_mult", "out_shift": f"{p}_shift",
    })
    call = f"iotsim_conv_s8(&{p}_params, {{T{t_in}}}, {{T{t_w}}}, {bias}, {{T{t_out}}});"
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=("conv.c",))


# ------------------------------------------------------------------------------ DEPTHWISE_CONV_2D
def lower_depthwise_conv_2d(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """DEPTHWISE_CONV_2D int8 (depthwise_conv_common.cc + reference_integer_ops::DepthwiseConvPerChannel)."""
    t_in, t_w = op.inputs[0], op.inputs[1]
    t_out = op.outputs[0]
    _check_int8(graph, op, {"input": t_in, "output": t_out})
    _weights(graph, op, t_w)
    n, in_h, in_w, in_c = _shape4(graph, op, t_in, "input")
    one, f_h, f_w, out_c = _shape4(graph, op, t_w, "filter")
    on, out_h, out_w, oc = _shape4(graph, op, t_out, "output")
    dm = _options_int(graph, op, "depth_multiplier", 1)
    if one != 1 or on != n or oc != out_c or in_c * dm != out_c:
        raise unsupported(graph, op, f"shapes input {in_c} x depth_multiplier {dm} != output depth {out_c}")
    win = _window(graph, op, (in_h, in_w), (f_h, f_w), (out_h, out_w))
    rq = _filter_requant(graph, op, t_in, t_w, t_out, out_c, 3, "depthwise filter")
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        # TFLM's depthwise Prepare dereferences the missing bias (crashes), LiteRT refuses it
        raise unsupported(graph, op, "depthwise convolution without bias (TFLite and TFLite Micro cannot run it)")
    bias = _bias(graph, op, 2, out_c)

    p = f"op{op.index}"
    arrays, per_channel = _requant_arrays(p, rq["mults"], rq["shifts"])
    decls = arrays + _struct("iotsim_dwconv_params_t", f"{p}_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c,
        "out_h": out_h, "out_w": out_w, "depth_multiplier": dm,
        "filt_h": f_h, "filt_w": f_w,
        **win,
        "input_offset": -rq["in_zp"], "output_offset": rq["out_zp"], "act_min": rq["act_min"], "act_max": rq["act_max"],
        "per_channel": per_channel, "out_mult": f"{p}_mult", "out_shift": f"{p}_shift",
    })
    call = f"iotsim_depthwise_conv_s8(&{p}_params, {{T{t_in}}}, {{T{t_w}}}, {bias}, {{T{t_out}}});"
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=("depthwise_conv.c",))


# ------------------------------------------------------------------------------ FULLY_CONNECTED
def lower_fully_connected(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """FULLY_CONNECTED int8 (fully_connected_common.cc CalculateOpDataFullyConnected +
    reference_integer_ops::FullyConnected / FullyConnectedPerChannel)."""
    t_in, t_w = op.inputs[0], op.inputs[1]
    t_out = op.outputs[0]
    _check_int8(graph, op, {"input": t_in, "output": t_out})
    _weights(graph, op, t_w)
    if int(op.options.get("weights_format", 0) or 0) != 0:
        raise unsupported(graph, op, "shuffled weights format is not supported")
    w_shape = graph.tensors[t_w].shape
    out_shape = graph.tensors[t_out].shape
    if len(w_shape) < 2 or not out_shape:
        raise unsupported(graph, op, f"weights {list(w_shape)} / output {list(out_shape)} shapes not supported")
    accum = int(w_shape[-1])
    rows = int(w_shape[-2])
    wq = graph.tensors[t_w].quantization
    per_channel = len(wq.scales) > 1
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    # batches = FlatSizeSkipDim(output, last), depth = output's last dimension (both kernels in
    # the TFLM this was verified against; older TFLM's per-channel kernel read [Dims(0), Dims(1)])
    depth = int(out_shape[-1])
    batches = int(np.prod(out_shape[:-1], dtype=np.int64)) if len(out_shape) > 1 else 1
    if per_channel:
        if wq.quantized_dimension != 0 or len(wq.scales) != int(w_shape[wq.quantized_dimension]):
            raise unsupported(graph, op, "per-channel weights must be quantized along dimension 0, one scale a row")
        mults, shifts = conv_multipliers(in_scale, wq.scales, out_scale, len(wq.scales))
        filter_offset = 0  # per-channel kernel ignores the weights zero point
    else:
        t_b = op.inputs[2] if len(op.inputs) > 2 else -1
        if t_b >= 0 and graph.tensors[t_b].quantization.scales:
            # GetQuantizedConvolutionMultipler(with bias): |in*filter - bias_scale| / out <= 0.02
            bias_scale = float(graph.tensors[t_b].quantization.scales[0])
            diff = abs(in_scale * float(wq.scales[0]) - bias_scale)
            if not diff / out_scale <= 0.02:
                raise unsupported(graph, op, "bias scale differs from input scale x weights scale "
                                             "(TFLite Micro refuses this model)")
        m, s = fc_per_tensor_multiplier(in_scale, wq.scales[0], out_scale)
        mults, shifts = [m], [s]
        filter_offset = -int(wq.zero_points[0]) if wq.zero_points else 0
    if depth > rows:
        raise unsupported(graph, op, f"output depth {depth} exceeds the weights' {rows} rows")
    in_elems = graph.tensors[t_in].elements
    if batches * accum > in_elems:
        raise unsupported(graph, op, f"{batches} x {accum} inputs read from a tensor of {in_elems}")
    act_min, act_max = _activation(graph, op, t_out)
    bias = _bias(graph, op, 2, depth)

    p = f"op{op.index}"
    arrays = c_array(f"{p}_mult", "int32_t", mults) + c_array(f"{p}_shift", "int32_t", shifts)
    decls = arrays + _struct("iotsim_fc_params_t", f"{p}_params", {
        "batches": batches, "accum_depth": accum, "out_depth": depth,
        "input_offset": -in_zp, "filter_offset": filter_offset, "output_offset": out_zp,
        "act_min": act_min, "act_max": act_max,
        "per_channel": 1 if per_channel else 0, "out_mult": f"{p}_mult", "out_shift": f"{p}_shift",
    })
    call = f"iotsim_fully_connected_s8(&{p}_params, {{T{t_in}}}, {{T{t_w}}}, {bias}, {{T{t_out}}});"
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=("fully_connected.c",))


# ------------------------------------------------------------------------------ pooling
def _lower_pool(graph: ModelGraph, op: OpInfo, fn: str) -> LoweredOp:
    """AVERAGE_POOL_2D / MAX_POOL_2D int8 (pooling_common.cc PoolingPrepare + reference_integer_ops)."""
    t_in, t_out = op.inputs[0], op.outputs[0]
    _check_int8(graph, op, {"input": t_in, "output": t_out})
    n, in_h, in_w, c = _shape4(graph, op, t_in, "input")
    on, out_h, out_w, oc = _shape4(graph, op, t_out, "output")
    if (on, oc) != (n, c):
        raise unsupported(graph, op, "input and output batch/depth differ")
    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    if not abs(in_scale - out_scale) <= 1.0e-6 or in_zp != out_zp:
        raise unsupported(graph, op, "input and output quantization differ (TFLite Micro refuses this)")
    f_h, f_w = _options_int(graph, op, "filter_height"), _options_int(graph, op, "filter_width")
    win = _window(graph, op, (in_h, in_w), (f_h, f_w), (out_h, out_w), dilated=False)
    stride_h, stride_w, pad_h, pad_w = win["stride_h"], win["stride_w"], win["pad_h"], win["pad_w"]
    act_min, act_max = _activation(graph, op, t_out)
    if fn == "avg":
        # AveragePool returns false (Eval error) if a window holds no input element
        for oy in range(out_h):
            y0 = oy * stride_h - pad_h
            if min(f_h, in_h - y0) <= max(0, -y0):
                raise unsupported(graph, op, "a pooling window lies entirely in the padding")
        for ox in range(out_w):
            x0 = ox * stride_w - pad_w
            if min(f_w, in_w - x0) <= max(0, -x0):
                raise unsupported(graph, op, "a pooling window lies entirely in the padding")
    p = f"op{op.index}"
    decls = _struct("iotsim_pool_params_t", f"{p}_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "depth": c, "out_h": out_h, "out_w": out_w,
        "filt_h": f_h, "filt_w": f_w, "stride_h": stride_h, "stride_w": stride_w,
        "pad_h": pad_h, "pad_w": pad_w, "act_min": act_min, "act_max": act_max,
    })
    call = f"iotsim_{fn}_pool_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});"
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=("pooling.c",))


def lower_average_pool_2d(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    return _lower_pool(graph, op, "avg")


def lower_max_pool_2d(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    return _lower_pool(graph, op, "max")


# ------------------------------------------------------------------------------ MEAN
MEAN_MAX_DIMS = 4  # kept and reduced dimension groups the kernel loops over (each)


def mean_loops(shape: tuple[int, ...], axes: set[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(kept, reduced) loops of a reduction: [(size, input stride)], outermost first.

    Size-1 dimensions are dropped and adjacent dimensions with the same role merged; the output
    is the kept dimensions in input order (with or without keep_dims), so it is written in order.
    """
    dims = [(int(d), i in axes) for i, d in enumerate(shape) if int(d) != 1]
    merged: list[list] = []
    for size, red in dims:
        if merged and merged[-1][1] == red:
            merged[-1][0] *= size
        else:
            merged.append([size, red])
    kept, reduced = [], []
    stride = 1
    for size, red in reversed(merged):
        (reduced if red else kept).append((size, stride))
        stride *= size
    return kept[::-1], reduced[::-1]


def lower_mean(graph: ModelGraph, op: OpInfo) -> LoweredOp:
    """MEAN int8 (reduce_common.cc PrepareMeanOrSum + EvalMean: reference_ops::QuantizedMeanOrSum).

    TFLite Micro's reference EvalMean for int8 rescales the sum with an integer multiplier into
    which 1/n is folded (mean_multiplier), whatever the axes and quantization.
    """
    t_in, t_axis = op.inputs[0], op.inputs[1]
    t_out = op.outputs[0]
    _check_int8(graph, op, {"input": t_in, "output": t_out})
    ax_t = graph.tensors[t_axis]
    if not ax_t.constant or ax_t.dtype != "int32":
        raise unsupported(graph, op, "the axis input must be a constant int32 tensor")
    shape = tuple(int(d) for d in graph.tensors[t_in].shape)
    rank = len(shape)
    if rank > 5:
        raise unsupported(graph, op, f"input of rank {rank} (TFLite Micro reduces up to rank 5)")
    if any(d == 0 for d in shape):
        raise unsupported(graph, op, "empty input")
    axes: set[int] = set()
    for a in np.asarray(graph.constant_array(t_axis)).ravel().tolist():
        a = int(a) + rank if int(a) < 0 else int(a)
        if not 0 <= a < rank:
            raise unsupported(graph, op, f"axis {a} out of range for rank {rank}")
        axes.add(a)
    num = 1
    for a in axes:
        num *= shape[a]
    out_elems = graph.tensors[t_out].elements
    if out_elems * num != graph.tensors[t_in].elements:
        raise unsupported(graph, op, "output size does not match the reduction")
    kept, reduced = mean_loops(shape, axes)
    if len(kept) > MEAN_MAX_DIMS or len(reduced) > MEAN_MAX_DIMS:
        raise unsupported(graph, op, "reduction pattern too complex")
    kept = [(1, 0)] * (MEAN_MAX_DIMS - len(kept)) + kept
    reduced = [(1, 0)] * (MEAN_MAX_DIMS - len(reduced)) + reduced

    in_scale, in_zp = _qparams(graph, op, t_in, "input")
    out_scale, out_zp = _qparams(graph, op, t_out, "output")
    mult, shift = mean_multiplier(in_scale, out_scale, num)
    p = f"op{op.index}"
    decls = _struct("iotsim_mean_params_t", f"{p}_params", {
        "kept_size": "{" + ", ".join(str(s) for s, _ in kept) + "}",
        "kept_stride": "{" + ", ".join(str(s) for _, s in kept) + "}",
        "red_size": "{" + ", ".join(str(s) for s, _ in reduced) + "}",
        "red_stride": "{" + ", ".join(str(s) for _, s in reduced) + "}",
        "num_elements": num, "input_zp": in_zp, "output_zp": out_zp,
        "multiplier": mult, "shift": shift,
    })
    call = f"iotsim_mean_s8(&{p}_params, {{T{t_in}}}, {{T{t_out}}});"
    return LoweredOp(call=call, decls=decls, headers=(HEADER,), sources=("mean.c",))


LOWERINGS = {
    "CONV_2D": lower_conv_2d,
    "DEPTHWISE_CONV_2D": lower_depthwise_conv_2d,
    "FULLY_CONNECTED": lower_fully_connected,
    "AVERAGE_POOL_2D": lower_average_pool_2d,
    "MAX_POOL_2D": lower_max_pool_2d,
    "MEAN": lower_mean,
}
