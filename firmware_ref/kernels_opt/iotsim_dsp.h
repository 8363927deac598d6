/* SIMD helpers of the optimized kernels: the Armv7E-M / Armv8-M DSP instructions CMSIS-NN builds
 * its int8 kernels on, with plain-C equivalents for hosts without them (the host build that
 * tests compile; the Cortex-M3 has no DSP and build.py refuses the optimized set for it).
 *
 *   SXTB16  r, x           (int16)x.b0 | (int16)x.b2 << 16     bytes 0 and 2, sign-extended
 *   SXTB16  r, x, ROR #8   bytes 1 and 3
 *   SXTAB16 r, a, x[,ROR]  the same, each halfword added to a's halfword (16-bit wrap)
 *   SMLAD   r, a, b, acc   acc + a.lo * b.lo + a.hi * b.hi      (32-bit wrap)
 *   SMLABB / SMLATT        acc + a.lo * b.lo  /  acc + a.hi * b.hi
 * (Arm v7-M Architecture Reference Manual, DDI 0403E, A7.7.* ; ACLE 8.x "SIMD intrinsics".)
 *
 * Four int8 values x0..x3 read as one little-endian word give (x0, x2) with SXTB16 and (x1, x3)
 * with SXTB16 ROR #8. Both operands of every SMLAD are split the same way, so the products pair
 * up (x0 w0 + x2 w2, x1 w1 + x3 w3) and no repacking (PKHBT/PKHTB) is needed: the order of the
 * terms of an integer sum does not change it.
 */
#ifndef IOTSIM_DSP_H
#define IOTSIM_DSP_H

#include <stdint.h>
#include <string.h>

#include "iotsim_fixedpoint.h"

/* one little-endian word from any address (Cortex-M4/M33 LDR allows unaligned addresses) */
static inline uint32_t iotsim_read_u32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* im2col helpers: word copies (unaligned LDR/STR are allowed on the M4/M33), bytes for the tail */
static inline void iotsim_copy_s8(int8_t *dst, const int8_t *src, int32_t n) {
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        const uint32_t v = iotsim_read_u32(src);
        memcpy(dst, &v, sizeof v);
    }
    for (; n > 0; --n) *dst++ = *src++;
}

static inline void iotsim_fill_s8(int8_t *dst, int8_t value, int32_t n) {
    const uint32_t v = 0x01010101u * (uint8_t)value;
    for (; n >= 4; n -= 4, dst += 4) memcpy(dst, &v, sizeof v);
    for (; n > 0; --n) *dst++ = value;
}

/* two int16 in one word: the offset added to both halves by SXTAB16 */
static inline int32_t iotsim_pack_i16x2(int32_t v) {
    return (int32_t)(((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16));
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

#define IOTSIM_HAVE_DSP 1

static inline int32_t iotsim_sxtb16(uint32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t iotsim_sxtb16_ror8(uint32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t iotsim_sxtab16(int32_t a, uint32_t x) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
static inline int32_t iotsim_sxtab16_ror8(int32_t a, uint32_t x) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
static inline int32_t iotsim_smlad(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t iotsim_smlabb(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t iotsim_smlatt(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

#else /* plain C: same results */

#define IOTSIM_HAVE_DSP 0

static inline int32_t iotsim_lo16(int32_t x) { return (int16_t)((uint32_t)x & 0xFFFFu); }
static inline int32_t iotsim_hi16(int32_t x) { return (int16_t)((uint32_t)x >> 16); }
static inline int32_t iotsim_pack16(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
static inline int32_t iotsim_sxtb16(uint32_t x) {
    return iotsim_pack16((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu));
}
static inline int32_t iotsim_sxtb16_ror8(uint32_t x) {
    return iotsim_pack16((int8_t)((x >> 8) & 0xFFu), (int8_t)(x >> 24));
}
static inline int32_t iotsim_sxtab16(int32_t a, uint32_t x) {
    return iotsim_pack16(iotsim_lo16(a) + (int8_t)(x & 0xFFu), iotsim_hi16(a) + (int8_t)((x >> 16) & 0xFFu));
}
static inline int32_t iotsim_sxtab16_ror8(int32_t a, uint32_t x) {
    return iotsim_pack16(iotsim_lo16(a) + (int8_t)((x >> 8) & 0xFFu), iotsim_hi16(a) + (int8_t)(x >> 24));
}
static inline int32_t iotsim_smlad(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(iotsim_lo16(a) * iotsim_lo16(b)) +
                     (uint32_t)(iotsim_hi16(a) * iotsim_hi16(b)));
}
static inline int32_t iotsim_smlabb(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(iotsim_lo16(a) * iotsim_lo16(b)));
}
static inline int32_t iotsim_smlatt(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(iotsim_hi16(a) * iotsim_hi16(b)));
}

#endif

/* TFLite's MultiplyByQuantizedMultiplier (iotsim_mbqm in iotsim_fixedpoint.h): same results, fewer
 * instructions (one 64-bit multiply-accumulate, an add and a shift instead of two rounding steps).
 *
 * gemmlowp's SaturatingRoundingDoublingHighMul is trunc((a b + nudge) / 2^31), nudge = 2^30 for
 * a b >= 0 and 1 - 2^30 below; both cases equal h = floor((a b + 2^30) / 2^31) (for a b < 0 write
 * a b + 2^30 = q 2^31 + r, 0 <= r < 2^31: (a b + 1 - 2^30) / 2^31 = q + (r + 1 - 2^31) / 2^31 and
 * the second term, in (-1, 0], truncates away). Its one saturating case (a = b = INT32_MIN) cannot
 * occur: TFLite's multipliers are >= 0. RoundingDivideByPOT(h, e), rounding half away from zero,
 * is floor((h + 2^(e-1) - [h < 0]) / 2^e) for e >= 1, and floor((floor(A / m) + c) / n) =
 * floor((A + c m) / (m n)) for integers gives, in one step,
 *     floor((t + 2^(30+e)) / 2^(31+e)),   t = a b + 2^30 - 2^31 [h < 0].
 * [h < 0] may be replaced by [acc < 0]: they differ only when -2^30 <= a b < 0, where h = 0 and
 * both numerators lie in [0, 2^(31+e)) for e >= 1, so the result is 0 either way. The same
 * identity splits the division again: with g = floor(t / 2^31) (|t| < 2^62, so g fits int32),
 * the result is floor((floor(g / 2^(e-1)) + 1) / 2) = ((g >> (e-1)) + 1) >> 1. On the M4:
 * SMULL, ADDS, ADC, two shifts for g, ASR, ADD, ASR. Checked against iotsim_mbqm on 3.7e8
 * random, tie and edge-case arguments (tests/test_firmware_opt_kernels.py runs a sample). */
static inline int32_t iotsim_requantize(int32_t acc, int32_t multiplier, int32_t shift) {
    if (shift >= 0) { /* left shift (TFLM's int32 wrap-around kept), no rounding division */
        const int64_t ab = (int64_t)(int32_t)((uint32_t)acc << shift) * multiplier;
        return (int32_t)((ab + (1ll << 30)) >> 31);
    }
    const int64_t t = (int64_t)acc * multiplier + (acc < 0 ? -(1ll << 30) : (1ll << 30));
    const int32_t g = (int32_t)(t >> 31);
    return ((g >> (-shift - 1)) + 1) >> 1;
}

/* requantize, add the output zero point, clamp to the activation range: one int8 output */
static inline int8_t iotsim_output_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                      int32_t act_min, int32_t act_max) {
    return (int8_t)iotsim_clamp_i32(iotsim_requantize(acc, multiplier, shift) + output_offset, act_min, act_max);
}

#endif
