/* MEAN, int8: tflite::reference_ops::QuantizedMeanOrSum (compute_sum = false), as TFLite
 * Micro's reference EvalMean runs it for int8.
 *
 * For each output element: sum the int8 inputs of the reduced loops (int32), subtract
 * input_zp * n, MultiplyByQuantizedMultiplier with 1/n folded into the multiplier at export
 * time, add output_zp, clamp to int8. TFLM sums into a scratch buffer in input order; the
 * integer sums are the same whatever the order, so here each output is summed in one go.
 */
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_mean_s8(const iotsim_mean_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t *ks = p->kept_size, *kt = p->kept_stride;
    const int32_t *rs = p->red_size, *rt = p->red_stride;
    const int32_t zp_sum = (int32_t)((int64_t)p->input_zp * (int64_t)p->num_elements);
    const int32_t multiplier = p->multiplier, shift = p->shift, output_zp = p->output_zp;
    int8_t *out = output;

    for (int32_t k0 = 0; k0 < ks[0]; ++k0)
    for (int32_t k1 = 0; k1 < ks[1]; ++k1)
    for (int32_t k2 = 0; k2 < ks[2]; ++k2)
    for (int32_t k3 = 0; k3 < ks[3]; ++k3) {
        const int8_t *base = input + k0 * kt[0] + k1 * kt[1] + k2 * kt[2] + k3 * kt[3];
        int32_t sum = 0;
        for (int32_t r0 = 0; r0 < rs[0]; ++r0)
        for (int32_t r1 = 0; r1 < rs[1]; ++r1)
        for (int32_t r2 = 0; r2 < rs[2]; ++r2) {
            const int8_t *px = base + r0 * rt[0] + r1 * rt[1] + r2 * rt[2];
            for (int32_t r3 = 0; r3 < rs[3]; ++r3, px += rt[3]) sum += *px;
        }
        {
            int32_t v = iotsim_mbqm((int32_t)((uint32_t)sum - (uint32_t)zp_sum), multiplier, (int)shift);
            v += output_zp;
            *out++ = iotsim_sat_i8(v);
        }
    }
}
