/* MUL, int8: tflite::reference_integer_ops::MulElementwise / BroadcastMul6DSlow
 * (integer_ops/mul.h), as TFLite Micro's EvalMulQuantizedReference runs it for int8.
 *
 * out = clamp(output_offset + MultiplyByQuantizedMultiplier((x - zp1) * (y - zp2), m, s)).
 * Broadcasting as in add.c (per-input strides, 0 on broadcast dimensions).
 * Parameters: ops_elementwise.lower_mul.
 */
#include "elementwise_ops.h"
#include "iotsim_fixedpoint.h"

static int8_t mul_func(const iotsim_mul_params_t *p, int8_t x, int8_t y)
{
    const int32_t input1_val = p->input1_offset + x;
    const int32_t input2_val = p->input2_offset + y;
    const int32_t unclamped = p->output_offset +
                              iotsim_mbqm(input1_val * input2_val, p->output_multiplier, (int)p->output_shift);
    return (int8_t)iotsim_clamp_i32(unclamped, p->act_min, p->act_max);
}

void iotsim_mul_s8(const iotsim_mul_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t *d = p->shape.dims, *s1 = p->shape.stride1, *s2 = p->shape.stride2;
    int8_t *out = output;
    for (int32_t i0 = 0; i0 < d[0]; ++i0)
    for (int32_t i1 = 0; i1 < d[1]; ++i1)
    for (int32_t i2 = 0; i2 < d[2]; ++i2)
    for (int32_t i3 = 0; i3 < d[3]; ++i3)
    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
        const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
        const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
        for (int32_t i5 = 0; i5 < d[5]; ++i5, a += s1[5], b += s2[5]) *out++ = mul_func(p, *a, *b);
    }
}
