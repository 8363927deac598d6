"""TFLite (Micro)'s parameter arithmetic, done at export time exactly as its kernels' Prepare do.

The C kernels in firmware_ref/ receive integers only (multipliers, shifts, zero points,
clamps); this module computes them from the float scales stored in the model, with the same
float32/float64 steps as tensorflow/lite/kernels/kernel_util.cc and
tensorflow/lite/kernels/internal/quantization_util.cc, so that the firmware's results equal
TFLite Micro's bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def f32(x: float) -> float:
    """Round a Python float (double) to float32 and back: C++ `float` arithmetic steps."""
    return float(np.float32(x))


def tflite_round(x: float) -> float:
    """std::round: halves away from zero (Python's round() goes to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """QuantizeMultiplier(double) -> (int32 quantized multiplier, shift), TFLite's double-rounding build.

    real ~= quantized_multiplier * 2**(shift - 31); shift > 0 is a left shift.
    """
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    q_fixed = int(tflite_round(q * (1 << 31)))
    assert abs(q_fixed) <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    assert q_fixed <= INT32_MAX
    if shift < -31:
        shift = 0
        q_fixed = 0
    return q_fixed, shift


def activation_range_int8(activation: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs: the clamp of a fused activation."""

    def quantize(x: float) -> int:
        return zero_point + int(tflite_round(f32(x / scale)))

    if activation in ("NONE", None):
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    if activation == "RELU_0_TO_1":
        return max(qmin, quantize(0.0)), min(qmax, quantize(1.0))
    raise ValueError(f"fused activation {activation} has no int8 clamp")


# ------------------------------------------------------------ integer reference (for tests)
def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul on int32 (Python ints)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(v / (1 << 31)) if abs(v) < (1 << 52) else (abs(v) >> 31) * (1 if v >= 0 else -1)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp::RoundingDivideByPOT: x / 2**exponent, halves away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier (double rounding): the requantization step of every kernel."""
    left = max(0, shift)
    right = 0 if shift > 0 else -shift
    x = ((x * (1 << left)) + 2**31) % 2**32 - 2**31  # int32 wrap, as in C++
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)
