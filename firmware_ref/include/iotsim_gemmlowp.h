/* gemmlowp fixed-point transcendental functions on int32, as TFLite Micro's int8 SOFTMAX,
 * LOGISTIC and TANH use them (gemmlowp/fixedpoint/fixedpoint.h, TFLM's copy
 * tensorflow/lite/micro/kernels/internal/fixedpoint.h; GetReciprocal from
 * kernels/internal/common.h). Scalar int32 specialisations only.
 *
 * A gemmlowp FixedPoint<int32_t, I> value is its raw int32 here; I (the integer bits) is a
 * function argument where the operation depends on it. gemmlowp's int32 Add/Sub/Neg wrap
 * (two's complement); they are done on uint32_t here, which is defined behaviour in C.
 * C99, header-only.
 */
#ifndef IOTSIM_GEMMLOWP_H
#define IOTSIM_GEMMLOWP_H

#include <stdint.h>

#include "iotsim_fixedpoint.h"

static inline int32_t iotsim_gl_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t iotsim_gl_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t iotsim_gl_neg(int32_t a) { return (int32_t)(0u - (uint32_t)a); }

/* SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift (exponent > 0) or
 * rounding right shift (exponent < 0). */
static inline int32_t iotsim_gl_srmpot(int32_t x, int exponent) {
    if (exponent > 0) {
        const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
        if (x > threshold) return INT32_MAX;
        if (x < -threshold) return INT32_MIN;
        return (int32_t)((uint32_t)x << exponent);
    }
    if (exponent < 0) return iotsim_rdivpot(x, -exponent);
    return x;
}

/* RoundingHalfSum (int32): (a + b) / 2 rounded half away from zero, in int64. */
static inline int32_t iotsim_gl_rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31 */
static inline int32_t iotsim_gl_exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = iotsim_gl_add(a, 1 << 28);  /* a + 1/8 */
    const int32_t x2 = iotsim_srdhm(x, x);
    const int32_t x3 = iotsim_srdhm(x2, x);
    const int32_t x4 = iotsim_srdhm(x2, x2);
    const int32_t x4_over_4 = iotsim_gl_srmpot(x4, -2);
    const int32_t poly = iotsim_gl_srmpot(
        iotsim_gl_add(iotsim_srdhm(iotsim_gl_add(x4_over_4, x3), constant_1_over_3), x2), -1);
    return iotsim_gl_add(constant_term, iotsim_srdhm(constant_term, iotsim_gl_add(x, poly)));
}

/* exp_on_negative_values: a is FixedPoint<int32, integer_bits> (a <= 0), result Q0.31.
 * integer_bits <= 5 here (the -32 clamp of larger formats is not needed). */
static inline int32_t iotsim_gl_exp_on_negative_values(int32_t a, int integer_bits) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242}; /* exp(-2^e), e = -2..4 */
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = iotsim_gl_sub(a & mask, one_quarter);
    /* Rescale<0> from integer_bits: a saturating left shift by integer_bits */
    int32_t result = iotsim_gl_exp_quarter(iotsim_gl_srmpot(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = iotsim_gl_sub(a_mod_quarter_minus_one_quarter, a);
    for (int e = -2; e <= 4; ++e) {
        if (integer_bits > e) {
            const int shift = fractional_bits + e;
            if (remainder & (int32_t)(1u << shift)) result = iotsim_srdhm(result, multipliers[e + 2]);
        }
    }
    if (a == 0) result = INT32_MAX; /* FixedPoint<int32, 0>::One() */
    return result;
}

/* Newton-Raphson 1/(1+x) (one_minus_x_over = 0) or (1-x)/(1+x) (= 1), x in [0, 1) Q0.31;
 * x is iterated in Q2.29, whose One() is 1 << 29. */
static inline int32_t iotsim_gl_nr_division(int32_t a, int one_minus_x_over) {
    const int32_t half_denominator = iotsim_gl_rounding_half_sum(a, INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;       /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540;  /* Q2.29 */
    int32_t x = iotsim_gl_add(constant_48_over_17, iotsim_srdhm(half_denominator, constant_neg_32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = iotsim_srdhm(half_denominator, x);
        const int32_t one_minus = iotsim_gl_sub((int32_t)1 << 29, half_denominator_times_x);
        x = iotsim_gl_add(x, iotsim_gl_srmpot(iotsim_srdhm(x, one_minus), 2));
    }
    if (one_minus_x_over) return iotsim_gl_srmpot(iotsim_gl_sub(x, (int32_t)1 << 29), 2);
    return iotsim_gl_srmpot(x, 1);
}

/* one_over_one_plus_x_for_x_in_0_1 */
static inline int32_t iotsim_gl_one_over_one_plus_x(int32_t a) { return iotsim_gl_nr_division(a, 0); }

/* logistic(a), a in Q4.27, result Q0.31 */
static inline int32_t iotsim_gl_logistic_q4(int32_t a) {
    const int positive = a > 0;
    const int32_t abs_input = positive ? a : iotsim_gl_neg(a);
    const int32_t result_if_positive =
        iotsim_gl_one_over_one_plus_x(iotsim_gl_exp_on_negative_values(iotsim_gl_neg(abs_input), 4));
    const int32_t result_if_negative = iotsim_gl_sub(INT32_MAX, result_if_positive);
    if (a == 0) return 1 << 30;
    return positive ? result_if_positive : result_if_negative;
}

/* tanh(a), a in Q4.27, result Q0.31 */
static inline int32_t iotsim_gl_tanh_q4(int32_t a) {
    const int negative = a < 0;
    const int32_t n = negative ? a : iotsim_gl_neg(a);
    /* neg_tanh_on_negative_values(n): ExactMulByPot<1> makes n a Q5.26 value */
    const int32_t t = iotsim_gl_nr_division(iotsim_gl_exp_on_negative_values(n, 5), 1);
    if (a == 0) return 0;
    return negative ? iotsim_gl_neg(t) : t;
}

/* CountLeadingZeros(uint32_t), 32 for 0 */
static inline int iotsim_clz32(uint32_t x) {
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* tflite::GetReciprocal(x, x_integer_digits, &num_bits_over_unit), x > 0 */
static inline int32_t iotsim_gl_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit) {
    const int headroom_plus_one = iotsim_clz32((uint32_t)x);
    uint32_t shifted;
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    shifted = headroom_plus_one < 32 ? ((uint32_t)x << headroom_plus_one) : 0u;
    return iotsim_gl_one_over_one_plus_x((int32_t)(shifted - (1u << 31)));
}

#endif
