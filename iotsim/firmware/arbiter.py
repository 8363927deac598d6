"""Who is right when two interpreters disagree: exact arithmetic on the op where they part ways.

TFLite Micro (TFLM; our reference firmware equals it bit for bit) and LiteRT's reference kernels
(BUILTIN_REF) sometimes disagree by an LSB or a few. `arbitrate` runs vectors through both
interpreters keeping every tensor, finds for each disagreeing vector the first op whose output
differs (its inputs are then identical in both), and for each differing element of that output
computes the value the op should produce from its int8 inputs with exact rational arithmetic
(`fractions.Fraction`) on the float32 scales as stored in the model:

    FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D
        y = zp_out + acc * s_in * s_w[c] / s_out,  acc = sum (x - zp_in) * w + bias
        (padding, stride, dilation and depth multiplier honoured)
    AVERAGE_POOL_2D, MEAN     y = zp_out + (s_in / s_out) * (mean(x) - zp_in)   (exact mean)
    ADD                       y = zp_out + (s1 (x1 - zp1) + s2 (x2 - zp2)) / s_out
    SOFTMAX, LOGISTIC         float64 math on the dequantized input

The correctly rounded value is round-half-away-from-zero of y, clamped to the fused activation's
range. Each case records a's and b's values, y (in output LSB), which one equals the correctly
rounded value (or is nearer to y), and both values reproduced by hand with each interpreter's
own integer arithmetic, so that the diagnosis is checked numerically rather than asserted.

What the sources say, and the numbers confirm (see `DIAGNOSES`):

- TFLM requantizes FULLY_CONNECTED (and every conv, and MEAN) with MultiplyByQuantizedMultiplier
  in its double-rounding form (TFLITE_SINGLE_ROUNDING unset): SaturatingRoundingDoublingHighMul
  rounds acc * M to 2^-r of an output LSB (r = the right shift), then RoundingDivideByPOT rounds
  to an integer. Whenever frac(|acc * M|) lies in [1/2 - 2^-(r+1), 1/2) the first rounding lands
  exactly on the half and the second rounds it away from zero: 1 LSB too far from zero.
- LiteRT's reference FULLY_CONNECTED (kReference) does not use the integer multiplier at all: it
  calls the float-scale overloads of reference_integer_ops::FullyConnected[PerChannel], which
  compute round(double(acc) * (double(s_in) * double(s_w) / double(s_out))), one rounding of an
  (almost) exact product: the correctly rounded value unless y is within ~1e-12 of a half.
- LiteRT's reference CONV_2D, DEPTHWISE_CONV_2D and MEAN use the same integer path as TFLM, so
  they double-round the same elements and never disagree with TFLM (`rounding_audit` measures
  how often each interpreter misses the correctly rounded value over whole tensors, where a
  comparison of two interpreters cannot see errors they share).

On the four models of the issue (100 and 1,000 real and random vectors) every disagreement starts
in a FULLY_CONNECTED layer, LiteRT's reference is right in every case, TFLM is 1 LSB off by double
rounding, and both values are reproduced by hand (`check_by_hand`: every element of every
FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D output of both interpreters).

Run `python -m iotsim.firmware.arbiter MODEL [-n 100] [--inputs random|real]`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from iotsim.errors import InputError
from iotsim.firmware.quant import (
    activation_range_int8,
    f32,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)
from iotsim.tinyml.stats import ModelGraph, OpInfo, read_model

VERDICTS = ("a right", "b right", "both off", "tie", "no exact value")
EXACT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MEAN", "ADD", "SOFTMAX",
             "LOGISTIC")
WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")

# Where the two requantization paths live (sources read for this module; repository @ commit).
SOURCES = {
    "tflm_fc_prepare": (
        "tensorflow/tflite-micro tensorflow/lite/micro/kernels/fully_connected_common.cc @0eec4fa, "
        "CalculateOpDataFullyConnected: per-channel QuantizeMultiplier(double(input_scale) * "
        "double(filter_scale) / double(output_scale)); per-tensor GetQuantizedConvolutionMultipler, "
        "then QuantizeMultiplier"
    ),
    "tflm_fc_eval": (
        "tensorflow/tflite-micro tensorflow/lite/micro/kernels/fully_connected.cc, FullyConnectedEval: "
        "reference_integer_ops::FullyConnected[PerChannel](params with output_multiplier/output_shift)"
    ),
    "tflm_multiplier_per_tensor": (
        "tensorflow/tflite-micro tensorflow/lite/kernels/kernel_util.cc @183ceee, "
        "GetQuantizedConvolutionMultipler: the 5-argument overload forms the product in double, the "
        "4-argument one it calls writes static_cast<double>(input->params.scale * "
        "filter->params.scale); the installed tflite-micro behaves as the double product (see "
        "tflm_multiplier)"
    ),
    "double_rounding": (
        "tensorflow/lite/kernels/internal/common.cc (TFLM and LiteRT tflite/kernels/internal/common.cc "
        "@14906c9), MultiplyByQuantizedMultiplier, #else branch of #if TFLITE_SINGLE_ROUNDING: "
        "RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * (1 << left_shift), "
        "quantized_multiplier), right_shift)"
    ),
    "litert_fc_reference": (
        "google-ai-edge/LiteRT tflite/kernels/fully_connected.cc @02f5403, FullyConnectedInt8<kReference> and "
        "FullyConnectedPerChannelInt8<kReference>: call the overloads that take input->params.scale, "
        "output->params.scale and the filter scale(s) instead of output_multiplier/output_shift"
    ),
    "litert_fc_reference_kernel": (
        "google-ai-edge/LiteRT tflite/kernels/internal/reference/integer_ops/fully_connected.h @13eade6, "
        "FullyConnected(..., float input_scale, float output_scale, float filter_scale) and "
        "FullyConnectedPerChannel(..., const float* filter_scales): effective_output_scale = "
        "double(input_scale) * double(filter_scale) / double(output_scale); "
        "acc_scaled = static_cast<int32_t>(round(static_cast<double>(acc) * effective_output_scale))"
    ),
}

DIAGNOSES = {
    "FULLY_CONNECTED": (
        "The two interpreters requantize the int32 accumulator differently. TFLM computes an integer "
        "multiplier at Prepare (QuantizeMultiplier of double(s_in)*double(s_w)/double(s_out), per "
        "channel or per tensor) and applies it with the double-rounding "
        "MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul rounds acc*M0/2^31 to an "
        "integer, i.e. acc*M to 2^-r of an output LSB (r = -shift, the right shift), then "
        "RoundingDivideByPOT rounds that to an integer. Whenever the fractional part of |acc*M| lies in "
        "[1/2 - 2^-(r+1), 1/2), the first rounding lands exactly on the half and the second rounds it "
        "away from zero: TFLM is then 1 LSB too far from zero (too high for positive acc*M, too low "
        "for negative). LiteRT's reference FULLY_CONNECTED does not use the integer "
        "multiplier: kReference calls the float-scale overloads of "
        "reference_integer_ops::FullyConnected / FullyConnectedPerChannel, which round "
        "double(acc) * double(s_in)*double(s_w)/double(s_out) once (std::round) - the correctly "
        "rounded value up to double precision. Sources: " + "; ".join(
            SOURCES[k] for k in ("tflm_fc_prepare", "tflm_multiplier_per_tensor", "double_rounding",
                                 "litert_fc_reference", "litert_fc_reference_kernel"))
    ),
    "CONV_2D": (
        "Both TFLM and LiteRT's reference CONV_2D requantize with per-channel integer multipliers "
        "(PopulateConvolutionQuantizationParams) and MultiplyByQuantizedMultiplier; a disagreement here "
        "is not explained by the requantization path (" + SOURCES["double_rounding"] + "). Both "
        "double-round the same elements (see rounding_audit), which a comparison cannot see."
    ),
    "DEPTHWISE_CONV_2D": (
        "Both TFLM and LiteRT's reference DEPTHWISE_CONV_2D requantize with per-channel integer "
        "multipliers and MultiplyByQuantizedMultiplier; a disagreement here is not explained by the "
        "requantization path (" + SOURCES["double_rounding"] + ")."
    ),
    "MEAN": (
        "Both TFLM and LiteRT's reference MEAN run reference_ops::QuantizedMeanOrSum: integer sum, "
        "1/n folded into the multiplier (truncating int64 division), MultiplyByQuantizedMultiplier "
        "(double rounding); they double-round the same elements, so a disagreement here is not "
        "explained by the requantization path."
    ),
}


# --------------------------------------------------------------------------- small helpers
def _round_half_away(x: Fraction) -> int:
    """Round a Fraction to the nearest integer, halves away from zero (std::round)."""
    n = math.floor(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def _round_half_away_float(x: float) -> int:
    """std::round on a double, exactly (floor(|x| + 0.5) would misround 0.49999999999999994)."""
    t = math.trunc(x)
    return int(t + (math.copysign(1, x) if abs(x - t) >= 0.5 else 0))


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _q(graph: ModelGraph, t: int) -> tuple[list[float], list[int]]:
    q = graph.tensors[t].quantization
    return [float(s) for s in q.scales], [int(z) for z in q.zero_points] or [0]


def _activation(op: OpInfo, graph: ModelGraph) -> tuple[int, int]:
    scales, zps = _q(graph, op.outputs[0])
    info = np.iinfo(np.dtype(graph.tensors[op.outputs[0]].dtype))
    act = op.options.get("fused_activation_function", "NONE")
    return activation_range_int8(act, scales[0], zps[0], int(info.min), int(info.max))


def _out_size(padding: str, size: int, filt: int, stride: int, dil: int) -> int:
    eff = (filt - 1) * dil + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - eff) // stride


def _pad_before(padding: str, size: int, filt: int, stride: int, dil: int) -> int:
    """tflite::ComputePaddingWithOffset: the padding before (top/left) the input."""
    out = _out_size(padding, size, filt, stride, dil)
    eff = (filt - 1) * dil + 1
    return max((out - 1) * stride + eff - size, 0) // 2


# --------------------------------------------------------------------------- exact values
def _weighted_acc(graph: ModelGraph, op: OpInfo, x: np.ndarray, flat: int) -> tuple[int, int]:
    """(int32 accumulator with bias, output channel) of element `flat` of a weighted op's output."""
    out_shape = tuple(graph.tensors[op.outputs[0]].shape)
    idx = np.unravel_index(flat, out_shape)
    _, zps = _q(graph, op.inputs[0])
    zp_in = zps[0]
    w = graph.constant_array(op.inputs[1]).astype(np.int64)
    bias = 0
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    if op.name == "FULLY_CONNECTED":
        depth = w.shape[-1]
        c = int(idx[-1])
        row = int(np.prod(idx[:-1])) if len(idx) > 1 else 0
        rows = x.reshape(-1, depth).astype(np.int64)
        acc = int(((rows[row] - zp_in) * w[c]).sum())
    else:
        n, oy, ox, c = (int(i) for i in idx)
        xin = x.reshape(graph.tensors[op.inputs[0]].shape).astype(np.int64)
        _, in_h, in_w, in_c = xin.shape
        sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
        dh, dw = int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1))
        pad = op.options.get("padding", "VALID")
        kh, kw = int(w.shape[1]), int(w.shape[2])
        pt, pl = _pad_before(pad, in_h, kh, sh, dh), _pad_before(pad, in_w, kw, sw, dw)
        acc = 0
        for ky in range(kh):
            iy = oy * sh - pt + ky * dh
            if not 0 <= iy < in_h:
                continue
            for kx in range(kw):
                ix = ox * sw - pl + kx * dw
                if not 0 <= ix < in_w:
                    continue
                if op.name == "CONV_2D":
                    group_c = int(w.shape[3])
                    groups = in_c // group_c
                    g0 = (c // (w.shape[0] // groups)) * group_c
                    acc += int(((xin[n, iy, ix, g0:g0 + group_c] - zp_in) * w[c, ky, kx, :]).sum())
                else:  # DEPTHWISE_CONV_2D: output channel c reads input channel c // depth_multiplier
                    mult = int(op.options.get("depth_multiplier", 1)) or max(1, w.shape[3] // in_c)
                    acc += int((xin[n, iy, ix, c // mult] - zp_in) * w[0, ky, kx, c])
    if has_bias:
        bias = int(graph.constant_array(op.inputs[2]).reshape(-1)[c])
    return acc + bias, c


def exact_value(graph: ModelGraph, op: OpInfo, inputs: dict[int, np.ndarray], flat: int) -> dict | None:
    """The exact real value (in output LSB, as a Fraction or float) element `flat` of op's output should have.

    Returns {"exact": Fraction|float, "lo", "hi"} (+ "acc", "channel" for weighted ops), or None for an
    op this module has no exact formula for.
    """
    name = op.name
    out_scales, out_zps = _q(graph, op.outputs[0])
    so, zo = out_scales[0], out_zps[0]
    lo, hi = _activation(op, graph)
    if name in WEIGHTED_OPS:
        x = inputs[op.inputs[0]]
        acc, c = _weighted_acc(graph, op, x, flat)
        si = _q(graph, op.inputs[0])[0][0]
        sws = _q(graph, op.inputs[1])[0]
        sw = sws[c] if len(sws) > 1 else sws[0]
        exact = zo + Fraction(acc) * Fraction(si) * Fraction(sw) / Fraction(so)
        return {"exact": exact, "lo": lo, "hi": hi, "acc": acc, "channel": c}
    if name in ("AVERAGE_POOL_2D", "MEAN"):
        si, zi = _q(graph, op.inputs[0])[0][0], _q(graph, op.inputs[0])[1][0]
        xin = inputs[op.inputs[0]].reshape(graph.tensors[op.inputs[0]].shape).astype(np.int64)
        if name == "MEAN":
            axes = tuple(int(a) % xin.ndim for a in np.atleast_1d(graph.constant_array(op.inputs[1])))
            keep = bool(op.options.get("keep_dims", False))
            sums = xin.sum(axis=axes, keepdims=keep).reshape(-1)
            count = int(np.prod([xin.shape[a] for a in axes]))
            total = int(sums[flat])
        else:
            n, oy, ox, c = (int(i) for i in np.unravel_index(flat, graph.tensors[op.outputs[0]].shape))
            fh, fw = int(op.options["filter_height"]), int(op.options["filter_width"])
            sh, sw = int(op.options["stride_h"]), int(op.options["stride_w"])
            pad = op.options.get("padding", "VALID")
            pt, pl = _pad_before(pad, xin.shape[1], fh, sh, 1), _pad_before(pad, xin.shape[2], fw, sw, 1)
            y0, x0 = oy * sh - pt, ox * sw - pl
            win = xin[n, max(y0, 0):min(y0 + fh, xin.shape[1]), max(x0, 0):min(x0 + fw, xin.shape[2]), c]
            total, count = int(win.sum()), int(win.size)
        exact = zo + Fraction(si) / Fraction(so) * (Fraction(total, count) - zi)
        return {"exact": exact, "lo": lo, "hi": hi, "sum": total, "count": count}
    if name == "ADD":
        out_shape = tuple(graph.tensors[op.outputs[0]].shape)
        terms = Fraction(0)
        for t in op.inputs[:2]:
            s, z = _q(graph, t)[0][0], _q(graph, t)[1][0]
            v = inputs[t].reshape(graph.tensors[t].shape).astype(np.int64)
            v = np.broadcast_to(v, out_shape).reshape(-1)
            terms += Fraction(s) * (int(v[flat]) - z)
        return {"exact": zo + terms / Fraction(so), "lo": lo, "hi": hi}
    if name in ("SOFTMAX", "LOGISTIC"):
        si, zi = _q(graph, op.inputs[0])[0][0], _q(graph, op.inputs[0])[1][0]
        xin = inputs[op.inputs[0]].astype(np.float64)
        if name == "LOGISTIC":
            r = si * (float(xin.reshape(-1)[flat]) - zi)
            p = 1.0 / (1.0 + math.exp(-r))
        else:
            beta = float(op.options.get("beta", 1.0))
            depth = graph.tensors[op.inputs[0]].shape[-1]
            rows = xin.reshape(-1, depth)
            row = rows[flat // depth]
            e = np.exp(beta * si * (row - row.max()))
            p = float(e[flat % depth] / e.sum())
        return {"exact": zo + p / so, "lo": lo, "hi": hi}
    return None


def correctly_rounded(exact, lo: int, hi: int) -> int:
    """Round half away from zero, then the activation clamp."""
    r = _round_half_away(exact) if isinstance(exact, Fraction) else _round_half_away_float(float(exact))
    return _clamp(r, lo, hi)


# --------------------------------------------------------------------------- reproductions
def tflm_multiplier(graph: ModelGraph, op: OpInfo, channel: int) -> tuple[int, int]:
    """The (multiplier, shift) TFLM's Prepare computes for `channel` of a weighted op.

    QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out)), per-tensor weights broadcast
    over the channels. For per-tensor FULLY_CONNECTED the TFLM source goes through
    GetQuantizedConvolutionMultipler, whose 4-argument overload (kernel_util.cc @183ceee) still
    writes the product as static_cast<double>(input->params.scale * filter->params.scale), a
    float32 product; the installed tflite-micro does not behave so: on ad01_int8 (real vectors,
    seed 0) vector 53, op 9, channel 365, acc -88337, the float32-product multiplier 1462485078
    gives -22 and the double-product one 1462485049 gives -21, and TFLM outputs -21
    (tests/test_firmware_arbiter.py keeps this pinned).
    """
    si = _q(graph, op.inputs[0])[0][0]
    so = _q(graph, op.outputs[0])[0][0]
    sws = _q(graph, op.inputs[1])[0]
    sw = sws[channel] if len(sws) > 1 else sws[0]
    return quantize_multiplier(si * sw / so)


def tflm_multiplier_float32_product(graph: ModelGraph, op: OpInfo) -> tuple[int, int]:
    """The per-tensor multiplier as the stored TFLM source writes it (float32 product s_in * s_w)."""
    si = _q(graph, op.inputs[0])[0][0]
    so = _q(graph, op.outputs[0])[0][0]
    return quantize_multiplier(f32(si * _q(graph, op.inputs[1])[0][0]) / so)


def mean_multiplier(graph: ModelGraph, op: OpInfo, count: int) -> tuple[int, int]:
    """MEAN int8 (reference_ops::QuantizedMeanOrSum, TFLM and LiteRT alike): QuantizeMultiplier of
    double(s_in)/double(s_out), then 1/n folded in: k = min(floor(log2 n), 32, 31 + shift),
    multiplier = (m << k) / n (int64, truncating), shift -= k."""
    m, s = quantize_multiplier(_q(graph, op.inputs[0])[0][0] / _q(graph, op.outputs[0])[0][0])
    k = min(count.bit_length() - 1, 32, 31 + s)
    return ((m << k) // count, s - k) if k >= 0 else (m, s)


def reproduce(interpreter: str, graph: ModelGraph, op: OpInfo, info: dict) -> int | None:
    """The value `interpreter` computes for an element, by hand with its own integer arithmetic.

    "tflm": TFLM's multiplier and the double-rounding MultiplyByQuantizedMultiplier, + zero point,
    clamp. "reference": FULLY_CONNECTED with LiteRT's float-scale path, round(double(acc) *
    effective_scale); CONV_2D / DEPTHWISE_CONV_2D as TFLM (same integer path). None when not modelled.
    """
    if interpreter not in ("tflm", "reference"):
        return None
    zo = _q(graph, op.outputs[0])[1][0]
    if op.name == "MEAN":
        m, s = mean_multiplier(graph, op, info["count"])
        zi = _q(graph, op.inputs[0])[1][0]
        return _clamp(multiply_by_quantized_multiplier(info["sum"] - zi * info["count"], m, s) + zo,
                      info["lo"], info["hi"])
    if op.name not in WEIGHTED_OPS:
        return None
    acc, c, lo, hi = info["acc"], info["channel"], info["lo"], info["hi"]
    if interpreter == "reference" and op.name == "FULLY_CONNECTED":
        si = _q(graph, op.inputs[0])[0][0]
        so = _q(graph, op.outputs[0])[0][0]
        sws = _q(graph, op.inputs[1])[0]
        sw = sws[c] if len(sws) > 1 else sws[0]
        effective = si * sw / so  # double(input_scale) * double(filter_scale) / double(output_scale)
        return _clamp(_round_half_away_float(float(acc) * effective) + zo, lo, hi)
    m, s = tflm_multiplier(graph, op, c)
    return _clamp(multiply_by_quantized_multiplier(acc, m, s) + zo, lo, hi)


def mechanism(interpreter: str, graph: ModelGraph, op: OpInfo, info: dict, correct: int) -> str | None:
    """Why `interpreter`'s value misses the correctly rounded one (None when it does not)."""
    value = reproduce(interpreter, graph, op, info)
    if value is None or value == correct:
        return None
    zo = _q(graph, op.outputs[0])[1][0]
    lo, hi = info["lo"], info["hi"]
    if op.name == "MEAN":
        m, s = mean_multiplier(graph, op, info["count"])
        x = info["sum"] - _q(graph, op.inputs[0])[1][0] * info["count"]
        if _clamp(_round_half_away(Fraction(x * m) * Fraction(2) ** (s - 31)) + zo, lo, hi) == correct:
            return "double rounding (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)"
        return "1/n folded into the multiplier by truncating division"
    acc = info["acc"]
    if interpreter == "reference" and op.name == "FULLY_CONNECTED":
        return "float64 rounding of acc * effective_scale"
    m, s = tflm_multiplier(graph, op, info["channel"])
    single = _clamp(_round_half_away(Fraction(acc * m) * Fraction(2) ** (s - 31)) + zo, lo, hi)
    if single == correct:
        return "double rounding (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)"
    return "31-bit quantized multiplier"


# --------------------------------------------------------------------------- whole-tensor check
def _mbqm_vec(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Double-rounding MultiplyByQuantizedMultiplier on int64 arrays (no int32 saturation modelled)."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    ab = (acc << left) * mult
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))  # SaturatingRoundingDoublingHighMul: truncating /2^31
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > ((mask >> 1) + (high < 0))).astype(np.int64)


def _std_round_vec(v: np.ndarray) -> np.ndarray:
    t = np.trunc(v)
    return (t + np.where(np.abs(v - t) >= 0.5, np.sign(v), 0)).astype(np.int64)


def _weighted_accs(graph: ModelGraph, op: OpInfo, x: np.ndarray) -> np.ndarray:
    """Every int32 accumulator (with bias) of a weighted op's output, shaped like the output."""
    zp_in = _q(graph, op.inputs[0])[1][0]
    w = graph.constant_array(op.inputs[1]).astype(np.int64)
    out_shape = tuple(graph.tensors[op.outputs[0]].shape)
    if op.name == "FULLY_CONNECTED":
        acc = (x.reshape(-1, w.shape[-1]).astype(np.int64) - zp_in) @ w.T
    else:
        xin = x.reshape(graph.tensors[op.inputs[0]].shape).astype(np.int64) - zp_in
        _, in_h, in_w, in_c = xin.shape
        _, out_h, out_w, _ = out_shape
        sh, sw = int(op.options.get("stride_h", 1)), int(op.options.get("stride_w", 1))
        dh, dw = int(op.options.get("dilation_h_factor", 1)), int(op.options.get("dilation_w_factor", 1))
        pad = op.options.get("padding", "VALID")
        kh, kw = int(w.shape[1]), int(w.shape[2])
        pt, pl = _pad_before(pad, in_h, kh, sh, dh), _pad_before(pad, in_w, kw, sw, dw)
        ph = max((out_h - 1) * sh + (kh - 1) * dh + 1 - in_h - pt, 0)
        pw = max((out_w - 1) * sw + (kw - 1) * dw + 1 - in_w - pl, 0)
        xp = np.pad(xin, ((0, 0), (pt, ph), (pl, pw), (0, 0)))  # zeros = zero point after the offset
        acc = np.zeros(out_shape, dtype=np.int64)
        for ky in range(kh):
            for kx in range(kw):
                patch = xp[:, ky * dh: ky * dh + (out_h - 1) * sh + 1: sh, kx * dw: kx * dw + (out_w - 1) * sw + 1: sw, :]
                if op.name == "CONV_2D":
                    if w.shape[3] != in_c:
                        raise NotImplementedError("grouped CONV_2D")
                    acc += np.einsum("nhwi,oi->nhwo", patch, w[:, ky, kx, :])
                else:
                    mult = w.shape[3] // in_c
                    acc += np.repeat(patch, mult, axis=3) * w[0, ky, kx, :]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        acc = acc + graph.constant_array(op.inputs[2]).astype(np.int64).reshape(-1)
    return acc.reshape(out_shape)


def predict_weighted_op(interpreter: str, graph: ModelGraph, op: OpInfo, x: np.ndarray) -> np.ndarray | None:
    """What `interpreter` outputs for a weighted op given its input tensor x, by hand (whole tensor).

    The vectorized form of `reproduce`; None for interpreters/ops not modelled.
    """
    if op.name not in WEIGHTED_OPS or interpreter not in ("tflm", "reference"):
        return None
    acc = _weighted_accs(graph, op, x)
    channels = acc.shape[-1]
    zo = _q(graph, op.outputs[0])[1][0]
    lo, hi = _activation(op, graph)
    if interpreter == "reference" and op.name == "FULLY_CONNECTED":
        si, so = _q(graph, op.inputs[0])[0][0], _q(graph, op.outputs[0])[0][0]
        sws = _q(graph, op.inputs[1])[0]
        eff = np.array([si * (sws[c] if len(sws) > 1 else sws[0]) / so for c in range(channels)])
        y = _std_round_vec(acc.astype(np.float64) * eff)
    else:
        ms = [tflm_multiplier(graph, op, c) for c in range(channels)]
        y = _mbqm_vec(acc, np.array([m for m, _ in ms], dtype=np.int64), np.array([s for _, s in ms], dtype=np.int64))
    return np.clip(y + zo, lo, hi)


def check_by_hand(model_path, inputs: np.ndarray, interpreter: str) -> dict:
    """Reproduce every element of every weighted op of `interpreter`, from its own input tensors.

    Returns {"elements", "matched", "by_op": {"<index> <name>": [matched, elements]}, "first_mismatches"}.
    """
    from iotsim.tinyml.runtime import RawInterpreter

    model_path = Path(model_path)
    content = model_path.read_bytes()
    graph = read_model(content, where=str(model_path))
    ops = [op for op in graph.ops if op.name in WEIGHTED_OPS]
    run = RawInterpreter(content, interpreter, where=str(model_path), keep_all_tensors=True)
    tensors = sorted({t for op in ops for t in (op.inputs[0], op.outputs[0])})
    by_op = {f"{op.index} {op.name}": [0, 0] for op in ops}
    mismatches: list[dict] = []
    for i in range(inputs.shape[0]):
        v = run.tensors(inputs[i], tensors)
        for op in ops:
            pred = predict_weighted_op(interpreter, graph, op, v[op.inputs[0]])
            if pred is None:
                continue
            got = v[op.outputs[0]].reshape(pred.shape).astype(np.int64)
            key = f"{op.index} {op.name}"
            by_op[key][0] += int((pred == got).sum())
            by_op[key][1] += int(pred.size)
            for e in np.nonzero((pred != got).reshape(-1))[0][: max(0, 5 - len(mismatches))]:
                mismatches.append({"vector": i, "op_index": op.index, "element": int(e),
                                   "by_hand": int(pred.reshape(-1)[e]), "interpreter": int(got.reshape(-1)[e])})
    return {"interpreter": interpreter, "elements": sum(n for _, n in by_op.values()),
            "matched": sum(m for m, _ in by_op.values()), "by_op": by_op, "first_mismatches": mismatches}


def rounding_audit(model_path, inputs: np.ndarray, interpreter: str) -> dict:
    """How often `interpreter`'s weighted ops miss the correctly rounded value, over every element.

    A comparison of two interpreters only sees the elements where they differ; this measures each
    one against exact arithmetic (integers: y = zp_out + round_half_away(acc * P / Q) with P/Q the
    exact rational s_in * s_w / s_out, then the clamp). Returns per op {elements, off_by_one, worse}.
    """
    from iotsim.tinyml.runtime import RawInterpreter

    model_path = Path(model_path)
    content = model_path.read_bytes()
    graph = read_model(content, where=str(model_path))
    ops = [op for op in graph.ops if op.name in WEIGHTED_OPS]
    run = RawInterpreter(content, interpreter, where=str(model_path), keep_all_tensors=True)
    tensors = sorted({t for op in ops for t in (op.inputs[0], op.outputs[0])})
    ratios = {}
    for op in ops:
        si, so = _q(graph, op.inputs[0])[0][0], _q(graph, op.outputs[0])[0][0]
        sws = _q(graph, op.inputs[1])[0]
        ch = graph.tensors[op.outputs[0]].shape[-1]
        ratios[op.index] = [Fraction(si) * Fraction(sws[c] if len(sws) > 1 else sws[0]) / Fraction(so) for c in range(ch)]
    out = {f"{op.index} {op.name}": {"elements": 0, "off_by_one": 0, "worse": 0} for op in ops}
    for i in range(inputs.shape[0]):
        v = run.tensors(inputs[i], tensors)
        for op in ops:
            acc = _weighted_accs(graph, op, v[op.inputs[0]]).reshape(-1, len(ratios[op.index]))
            zo = _q(graph, op.outputs[0])[1][0]
            lo, hi = _activation(op, graph)
            got = v[op.outputs[0]].reshape(acc.shape).astype(np.int64)
            rec = out[f"{op.index} {op.name}"]
            for c, r in enumerate(ratios[op.index]):
                p, q = r.numerator, r.denominator
                for a, g in zip(acc[:, c].tolist(), got[:, c].tolist()):
                    n = (2 * abs(a) * p + q) // (2 * q)  # floor(|a| p / q + 1/2): half away from zero
                    y = min(hi, max(lo, zo + (n if a >= 0 else -n)))
                    d = abs(g - y)
                    rec["elements"] += 1
                    rec["off_by_one"] += d == 1
                    rec["worse"] += d > 1
    return {"interpreter": interpreter, "by_op": out,
            "elements": sum(r["elements"] for r in out.values()),
            "misrounded": sum(r["off_by_one"] + r["worse"] for r in out.values())}


# --------------------------------------------------------------------------- the arbitration
def _float_twin(model_path: Path) -> Path | None:
    card = model_path.with_suffix(".json")
    try:
        name = json.loads(card.read_text()).get("float_model")
    except (OSError, ValueError, AttributeError):
        return None
    twin = model_path.parent / name if name else None
    return twin if twin is not None and twin.is_file() else None


def _float_check(model_path: Path, graph: ModelGraph, x: np.ndarray, out_a: np.ndarray, out_b: np.ndarray,
                 rows: list[int]) -> dict | None:
    """End to end: which interpreter's dequantized output is nearer to the float twin's, per vector."""
    twin = _float_twin(model_path)
    if twin is None or not rows:
        return None
    from iotsim.tinyml.runtime import RawInterpreter

    s_in, zp_in = _q(graph, graph.inputs[0])
    s_out, zp_out = _q(graph, graph.outputs[0])
    raw = RawInterpreter(twin.read_bytes(), "reference", where=str(twin))
    xf = ((x[rows].astype(np.float32) - zp_in[0]) * np.float32(s_in[0])).astype(np.float32)
    yf = raw.invoke(xf).reshape(len(rows), -1).astype(np.float64)
    counts = {"a nearer": 0, "b nearer": 0, "equal": 0}
    for k, r in enumerate(rows):
        da = np.abs((out_a[r].astype(np.float64) - zp_out[0]) * s_out[0] - yf[k]).sum()
        db = np.abs((out_b[r].astype(np.float64) - zp_out[0]) * s_out[0] - yf[k]).sum()
        counts["a nearer" if da < db else "b nearer" if db < da else "equal"] += 1
    return {"float_model": twin.name, "vectors": len(rows), **counts,
            "note": "sum of |dequantized output - float twin output|; quantization noise dominates, "
                    "so this is weak evidence next to the exact per-op arithmetic"}


def arbitrate(model_path, inputs: np.ndarray, a: str = "tflm", b: str = "reference", *,
              scope: str = "outputs", max_cases: int = 40, float_check: bool = True) -> dict:
    """Arbitrate between interpreters a and b on `inputs` (n, *input_shape); JSON-ready summary.

    scope "outputs": vectors whose final outputs differ (as in the issue); "any": also vectors whose
    outputs agree but some intermediate tensor differs (a 1-LSB slip that ReLU or rounding absorbed).
    """
    from iotsim.tinyml.runtime import RawInterpreter

    if scope not in ("outputs", "any"):
        raise InputError(f"scope must be 'outputs' or 'any', got {scope!r}", field="scope")
    model_path = Path(model_path)
    content = model_path.read_bytes()
    graph = read_model(content, where=str(model_path))
    x = np.asarray(inputs)
    tensors = sorted({t for op in graph.ops for t in (*op.inputs, *op.outputs) if t >= 0
                      and not graph.tensors[t].constant})
    run_a = RawInterpreter(content, a, where=str(model_path), keep_all_tensors=True)
    run_b = RawInterpreter(content, b, where=str(model_path), keep_all_tensors=True)
    out_t = graph.outputs[0]
    cases: list[dict] = []
    differing_out, differing_any = [], []
    first_ops: dict[str, int] = {}
    out_a = np.empty((x.shape[0], *graph.tensors[out_t].shape[1:]), dtype=graph.tensors[out_t].dtype)
    out_b = np.empty_like(out_a)
    for i in range(x.shape[0]):
        va, vb = run_a.tensors(x[i], tensors), run_b.tensors(x[i], tensors)
        out_a[i], out_b[i] = va[out_t].reshape(out_a.shape[1:]), vb[out_t].reshape(out_b.shape[1:])
        output_differs = not np.array_equal(va[out_t], vb[out_t])
        first = next((op for op in graph.ops if any(
            t >= 0 and not np.array_equal(va[t].reshape(-1), vb[t].reshape(-1)) for t in op.outputs)), None)
        if first is None:
            continue
        differing_any.append(i)
        if output_differs:
            differing_out.append(i)
        elif scope == "outputs":
            continue
        first_ops[f"{first.index} {first.name}"] = first_ops.get(f"{first.index} {first.name}", 0) + 1
        inputs_identical = all(np.array_equal(va[t].reshape(-1), vb[t].reshape(-1))
                               for t in first.inputs if t >= 0 and t in va)
        t = first.outputs[0]
        fa, fb = va[t].reshape(-1), vb[t].reshape(-1)
        for e in np.nonzero(fa != fb)[0]:
            cases.append(_case(graph, first, va, int(e), int(fa[e]), int(fb[e]), a, b, i, output_differs,
                               inputs_identical))
    summary = _summarize(model_path, graph, x.shape[0], a, b, scope, cases, differing_out, differing_any,
                         first_ops, max_cases)
    if float_check:
        fc = _float_check(model_path, graph, x, out_a, out_b, differing_out)
        if fc is not None:
            summary["float_model_check"] = fc
    return summary


def _case(graph: ModelGraph, op: OpInfo, values: dict, flat: int, va: int, vb: int, a: str, b: str,
          vector: int, output_differs: bool, inputs_identical: bool) -> dict:
    case: dict[str, Any] = {
        "vector": vector, "op_index": op.index, "op": op.name, "tensor": op.outputs[0], "element": flat,
        "index": [int(i) for i in np.unravel_index(flat, graph.tensors[op.outputs[0]].shape)],
        "a": va, "b": vb, "output_differs": output_differs, "inputs_identical": inputs_identical,
    }
    info = exact_value(graph, op, values, flat) if op.name in EXACT_OPS else None
    if info is None:
        case.update(exact=None, correct=None, verdict="no exact value", nearer=None)
        return case
    exact, lo, hi = info["exact"], info["lo"], info["hi"]
    correct = correctly_rounded(exact, lo, hi)
    target = min(max(exact, lo), hi)  # the clamp applies to the exact value too
    da, db = abs(va - target), abs(vb - target)
    nearer = "a" if da < db else "b" if db < da else "tie"
    if da == db:
        verdict = "tie"
    elif va == correct:
        verdict = "a right"
    elif vb == correct:
        verdict = "b right"
    else:
        verdict = "both off"
    case.update(exact=float(exact), correct=correct, verdict=verdict, nearer=nearer,
                a_error_lsb=float(va - exact), b_error_lsb=float(vb - exact))
    for k in ("acc", "channel", "sum", "count"):
        if k in info:
            case[k] = info[k]
    for side, interp, v in (("a", a, va), ("b", b, vb)):
        rep = reproduce(interp, graph, op, info)
        case[f"{side}_by_hand"] = rep
        case[f"{side}_reproduced"] = None if rep is None else rep == v
        case[f"{side}_mechanism"] = mechanism(interp, graph, op, info, correct) if rep is not None else None
    if op.name in WEIGHTED_OPS:
        m, s = tflm_multiplier(graph, op, info["channel"])
        case["tflm_multiplier"], case["tflm_shift"] = m, s
    return case


def _summarize(model_path, graph, n, a, b, scope, cases, differing_out, differing_any, first_ops, max_cases):
    verdicts = {v: 0 for v in VERDICTS}
    by_op: dict[str, dict] = {}
    repro = {side: {"checked": 0, "matched": 0} for side in ("a", "b")}
    mechanisms: dict[str, dict[str, int]] = {}
    for c in cases:
        verdicts[c["verdict"]] += 1
        o = by_op.setdefault(c["op"], {"cases": 0, **{v: 0 for v in VERDICTS}})
        o["cases"] += 1
        o[c["verdict"]] += 1
        for side, interp in (("a", a), ("b", b)):
            if c.get(f"{side}_reproduced") is not None:
                repro[side]["checked"] += 1
                repro[side]["matched"] += int(c[f"{side}_reproduced"])
            mech = c.get(f"{side}_mechanism")
            if mech:
                d = mechanisms.setdefault(interp, {})
                d[mech] = d.get(mech, 0) + 1
    max_dev = max((abs(c["a"] - c["b"]) for c in cases), default=0)
    return {
        "model": str(model_path), "a": a, "b": b, "vectors": int(n), "scope": scope,
        "vectors_outputs_differ": len(differing_out), "vectors_any_tensor_differs": len(differing_any),
        "first_differing_op": first_ops, "cases_total": len(cases), "max_case_lsb": int(max_dev),
        "verdicts": verdicts, "by_op": by_op,
        "reproduced_by_hand": repro, "mechanisms": mechanisms,
        "diagnosis": {op: DIAGNOSES.get(op, "no diagnosis for this op type") for op in by_op},
        "cases": cases[:max_cases], "cases_listed": min(len(cases), max_cases),
    }


def format_summary(s: dict) -> str:
    a, b = s["a"], s["b"]
    lines = [
        f"{s['model']}: {a} (a) vs {b} (b), {s['vectors']} vectors, scope {s['scope']}",
        (f"  vectors whose outputs differ: {s['vectors_outputs_differ']}; with any differing tensor: "
         f"{s['vectors_any_tensor_differs']}"),
        f"  first differing op: {', '.join(f'{k} x{v}' for k, v in s['first_differing_op'].items()) or '-'}",
        f"  differing elements there: {s['cases_total']}; verdicts: "
        + ", ".join(f"{k} {v}" for k, v in s["verdicts"].items() if v),
        "  reproduced by hand: " + ", ".join(
            f"{side} ({s[side]}) {r['matched']}/{r['checked']}" for side, r in s["reproduced_by_hand"].items()),
    ]
    for interp, mech in s["mechanisms"].items():
        lines.append(f"  why {interp} is off: " + ", ".join(f"{k} x{v}" for k, v in mech.items()))
    if "float_model_check" in s:
        f = s["float_model_check"]
        lines.append(f"  float twin {f['float_model']}: a nearer {f['a nearer']}, b nearer {f['b nearer']}, "
                     f"equal {f['equal']} (of {f['vectors']} differing vectors)")
    lines.append("  cases (vector op[element]: a b exact -> correct, verdict; by hand a/b):")
    for c in s["cases"]:
        ex = "-" if c["exact"] is None else f"{c['exact']:.6f}"
        lines.append(
            f"    v{c['vector']:<3d} {c['op_index']} {c['op']}[{c['element']}]: {c['a']} {c['b']} {ex} -> "
            f"{c['correct']}, {c['verdict']}; by hand {c.get('a_by_hand')}/{c.get('b_by_hand')}"
            + (f" ({c['a_mechanism'] or c['b_mechanism']})" if c.get("a_mechanism") or c.get("b_mechanism") else ""))
    for side, audit in s.get("audit", {}).items():
        h, r = audit["by_hand"], audit["rounding"]
        per_op = ", ".join(f"{k} {v['off_by_one'] + v['worse']}" for k, v in r["by_op"].items())
        lines.append(f"  audit {side} ({h['interpreter']}): weighted-op elements reproduced by hand "
                     f"{h['matched']}/{h['elements']}; off the correctly rounded value {r['misrounded']}/{r['elements']}"
                     f" ({per_op})")
    for op, text in s["diagnosis"].items():
        lines.append(f"  diagnosis {op}: {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from iotsim.firmware.vectors import INPUT_KINDS, make_vectors
    from iotsim.tinyml.runtime import INTERPRETERS, resolve_model_path

    p = argparse.ArgumentParser(prog="python -m iotsim.firmware.arbiter", description=__doc__.split("\n")[0])
    p.add_argument("model", help="zoo model name or .tflite path")
    p.add_argument("-n", type=int, default=100, help="number of input vectors (default 100)")
    p.add_argument("--inputs", choices=INPUT_KINDS, default="real")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-a", default="tflm", choices=INTERPRETERS)
    p.add_argument("-b", default="reference", choices=INTERPRETERS)
    p.add_argument("--all-divergences", action="store_true",
                   help="also arbitrate vectors whose outputs agree but an intermediate tensor differs")
    p.add_argument("--max-cases", type=int, default=40)
    p.add_argument("--audit", action="store_true",
                   help="also reproduce both interpreters' weighted ops by hand over whole tensors and measure "
                        "how often each misses the correctly rounded value")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    try:
        path = resolve_model_path(args.model)
        graph = read_model(path)
        x, origin = make_vectors(path, graph, args.n, args.inputs, seed=args.seed)
        s = arbitrate(path, x, args.a, args.b, scope="any" if args.all_divergences else "outputs",
                      max_cases=args.max_cases)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s["inputs"] = origin
    if args.audit:
        s["audit"] = {side: {"by_hand": check_by_hand(path, x, interp), "rounding": rounding_audit(path, x, interp)}
                      for side, interp in (("a", args.a), ("b", args.b)) if interp in ("tflm", "reference")}
    print(json.dumps(s, indent=1) if args.json else format_summary(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
