/* SOFTMAX, int8 -> int8: tflite::reference_ops::Softmax<int8_t, int8_t> (reference/softmax.h),
 * as TFLite Micro's SoftmaxEval runs it for int8 input and output.
 *
 * Per row (the last dimension): differences to the row maximum below diff_min are dropped;
 * the others are rescaled to Q5.26 (MultiplyByQuantizedMultiplierGreaterThanOne), exp'd in
 * fixed point (gemmlowp exp_on_negative_values), summed in Q12.19, and each exp is multiplied
 * by the fixed-point reciprocal of the sum (GetReciprocal) and shifted to the int8 output
 * (scale 1/256, zero point -128). Parameters: ops_elementwise.lower_softmax.
 */
#include "elementwise_ops.h"
#include "iotsim_gemmlowp.h"

/* MultiplyByQuantizedMultiplierGreaterThanOne (double rounding) */
static int32_t rescale_diff(int32_t diff, int32_t multiplier, int32_t left_shift)
{
    return iotsim_srdhm((int32_t)((uint32_t)diff << left_shift), multiplier);
}

void iotsim_softmax_s8(const iotsim_softmax_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t depth = p->depth;
    for (int32_t i = 0; i < p->outer; ++i) {
        const int8_t *in = input + i * depth;
        int8_t *out = output + i * depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int num_bits_over_unit;
        int32_t shifted_scale, exponent;

        for (int32_t c = 0; c < depth; ++c) {
            if (in[c] > max_in_row) max_in_row = in[c];
        }
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = rescale_diff(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = iotsim_gl_exp_on_negative_values(scaled, 5);
                sum_of_exps = iotsim_gl_add(sum_of_exps, iotsim_gl_srmpot(e, -12)); /* Rescale<12> */
            }
        }
        shifted_scale = iotsim_gl_reciprocal(sum_of_exps, 12, &num_bits_over_unit);
        exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = rescale_diff(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = iotsim_gl_exp_on_negative_values(scaled, 5);
                const int32_t unsat = iotsim_rdivpot(iotsim_srdhm(shifted_scale, e), exponent);
                out[c] = iotsim_sat_i8(unsat - 128);
            } else {
                out[c] = -128;
            }
        }
    }
}
