/* ADD, int8: tflite::reference_integer_ops::AddFunc (integer_ops/add.h), elementwise or
 * broadcast (BroadcastAdd6DSlow), as TFLite Micro's EvalAddQuantized runs it for int8.
 *
 * Each input is offset by its zero point, shifted left by left_shift (20) and scaled by its
 * multiplier (MultiplyByQuantizedMultiplierSmallerThanOneExp); the sum is scaled to the output,
 * offset and clamped to the fused activation's range. The 6-loop walk with per-input strides
 * (0 on broadcast dimensions) visits the output in order, as TFLM's broadcast loops do; each
 * output element depends only on its two input elements, so the order does not change results.
 * Parameters: ops_elementwise.lower_add.
 */
#include "elementwise_ops.h"
#include "iotsim_fixedpoint.h"

static int8_t add_func(const iotsim_add_params_t *p, int8_t x, int8_t y)
{
    const int32_t input1_val = p->input1_offset + x;
    const int32_t input2_val = p->input2_offset + y;
    const int32_t shifted_input1_val = (int32_t)((uint32_t)input1_val << p->left_shift);
    const int32_t shifted_input2_val = (int32_t)((uint32_t)input2_val << p->left_shift);
    const int32_t scaled_input1_val =
        iotsim_mbqm_smaller_than_one(shifted_input1_val, p->input1_multiplier, (int)p->input1_shift);
    const int32_t scaled_input2_val =
        iotsim_mbqm_smaller_than_one(shifted_input2_val, p->input2_multiplier, (int)p->input2_shift);
    const int32_t raw_sum = scaled_input1_val + scaled_input2_val;
    const int32_t raw_output =
        iotsim_mbqm_smaller_than_one(raw_sum, p->output_multiplier, (int)p->output_shift) + p->output_offset;
    return (int8_t)iotsim_clamp_i32(raw_output, p->act_min, p->act_max);
}

void iotsim_add_s8(const iotsim_add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
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
        for (int32_t i5 = 0; i5 < d[5]; ++i5, a += s1[5], b += s2[5]) *out++ = add_func(p, *a, *b);
    }
}
