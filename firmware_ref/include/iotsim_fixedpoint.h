/* Fixed-point primitives of TFLite Micro's int8 reference kernels (gemmlowp semantics).
 *
 * C99, header-only. Same results as tensorflow/lite/kernels/internal/common.h and
 * gemmlowp/fixedpoint/fixedpoint.h in TFLite's default (double-rounding) build.
 * Signed right shifts are arithmetic (GCC documents this for its targets).
 */
#ifndef IOTSIM_FIXEDPOINT_H
#define IOTSIM_FIXEDPOINT_H

#include <stdint.h>

static inline int32_t iotsim_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t iotsim_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t iotsim_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* gemmlowp::SaturatingRoundingDoublingHighMul */
static inline int32_t iotsim_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}

/* gemmlowp::RoundingDivideByPOT: x / 2^exponent rounded half away from zero */
static inline int32_t iotsim_rdivpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)((1ll << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier (shift > 0: left shift) */
static inline int32_t iotsim_mbqm(int32_t x, int32_t multiplier, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return iotsim_rdivpot(iotsim_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0) */
static inline int32_t iotsim_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int left_shift) {
    return iotsim_rdivpot(iotsim_srdhm(x, multiplier), -left_shift);
}

/* tflite::MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0) */
static inline int32_t iotsim_mbqm_greater_than_one(int32_t x, int32_t multiplier, int left_shift) {
    return iotsim_srdhm((int32_t)((uint32_t)x << left_shift), multiplier);
}

static inline int8_t iotsim_sat_i8(int32_t x) { return (int8_t)iotsim_clamp_i32(x, -128, 127); }

#endif
