/* QUANTIZE, as TFLite Micro's EvalQuantizeReference runs it:
 * - float32 -> int8: reference_ops::AffineQuantize: round(x / scale) (float division, rounding
 *   half away from zero) + zero point, clamped to int8;
 * - int8 -> int8: reference_ops::Requantize: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp,
 *   clamped.
 * Parameters: ops_elementwise.lower_quantize.
 *
 * TFLM converts the rounded float to int32 with static_cast, undefined for NaN and for values
 * beyond int32; here the value is clamped to +-1024 first (same result whenever TFLM's is
 * defined) and NaN gives the zero point (what a Cortex-M's VCVT gives for NaN: 0).
 */
#include "elementwise_ops.h"
#include "iotsim_fixedpoint.h"

/* std::round for |x| <= 1024: half away from zero, exact (x - trunc(x) is exact in float) */
static float round_half_away(float x)
{
    const float a = x < 0.0f ? -x : x;
    float t = (float)(int32_t)a;
    if (a - t >= 0.5f) t += 1.0f;
    return x < 0.0f ? -t : t;
}

void iotsim_quantize_f32_s8(const iotsim_quantize_params_t *p, const float *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        float q = input[i] / p->scale;
        if (q != q) q = 0.0f; /* NaN */
        if (q > 1024.0f) q = 1024.0f;
        if (q < -1024.0f) q = -1024.0f;
        output[i] = iotsim_sat_i8((int32_t)round_half_away(q) + p->zero_point);
    }
}

void iotsim_requantize_s8(const iotsim_requantize_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        output[i] = iotsim_sat_i8(iotsim_mbqm(x, p->multiplier, (int)p->shift) + p->output_zero_point);
    }
}
