/* FULLY_CONNECTED, int8, optimized for the Cortex-M4/M33 DSP extension (the CMSIS-NN technique
 * of arm_fully_connected_s8 / arm_nn_vec_mat_mult_t_s8). Same results as the reference kernel
 * (firmware_ref/kernels/fully_connected.c, TFLM's FullyConnected / FullyConnectedPerChannel).
 *
 * Two weight rows at a time against one input row: each word of four int8 inputs is split into
 * (x0, x2) and (x1, x3) int16 pairs with the input offset added (SXTAB16), each word of four
 * weights into (w0, w2) and (w1, w3) (SXTB16), and SMLAD does two multiply-accumulates; the
 * last accum_depth % 4 terms and an odd row are done singly. Per-tensor weights with a non-zero
 * zero point (not produced by TFLite's int8 quantizer) use the plain loop.
 */
#include "iotsim_dsp.h"
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_fully_connected_s8(const iotsim_fc_params_t *p, const int8_t *input, const int8_t *filter,
                               const int32_t *bias, int8_t *output)
{
    const int32_t accum = p->accum_depth, depth = p->out_depth, k4 = accum >> 2;
    const int32_t input_offset = p->input_offset, filter_offset = p->filter_offset;
    const int32_t off2 = iotsim_pack_i16x2(input_offset);
    /* parameters in locals: the int8 output stores could alias *p, which would force reloads */
    const int32_t *const mult = p->out_mult, *const shift = p->out_shift;
    const int32_t pc = p->per_channel, output_offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
#define IOTSIM_FC_OUT(acc, oc) \
    iotsim_output_s8((acc), mult[pc ? (oc) : 0], shift[pc ? (oc) : 0], output_offset, act_min, act_max)
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b, out += depth) {
        const int8_t *x_b = input + b * accum;
        if (filter_offset != 0) {
            const int8_t *w = filter;
            for (int32_t oc = 0; oc < depth; ++oc, w += accum) {
                int32_t acc = bias ? bias[oc] : 0;
                for (int32_t d = 0; d < accum; ++d) acc += (w[d] + filter_offset) * (x_b[d] + input_offset);
                out[oc] = IOTSIM_FC_OUT(acc, oc);
            }
            continue;
        }
        int32_t oc = 0;
        for (; oc + 1 < depth; oc += 2) {
            const int8_t *w0 = filter + oc * accum, *w1 = w0 + accum, *x = x_b;
            int32_t a0 = bias ? bias[oc] : 0, a1 = bias ? bias[oc + 1] : 0;
            for (int32_t i = 0; i < k4; ++i) {
                const uint32_t xv = iotsim_read_u32(x), wv0 = iotsim_read_u32(w0), wv1 = iotsim_read_u32(w1);
                x += 4; w0 += 4; w1 += 4;
                const int32_t xe = iotsim_sxtab16(off2, xv), xo = iotsim_sxtab16_ror8(off2, xv);
                a0 = iotsim_smlad(iotsim_sxtb16(wv0), xe, a0);
                a0 = iotsim_smlad(iotsim_sxtb16_ror8(wv0), xo, a0);
                a1 = iotsim_smlad(iotsim_sxtb16(wv1), xe, a1);
                a1 = iotsim_smlad(iotsim_sxtb16_ror8(wv1), xo, a1);
            }
            for (int32_t i = k4 << 2; i < accum; ++i) {
                const int32_t xi = *x++ + input_offset;
                a0 += *w0++ * xi;
                a1 += *w1++ * xi;
            }
            out[oc] = IOTSIM_FC_OUT(a0, oc);
            out[oc + 1] = IOTSIM_FC_OUT(a1, oc + 1);
        }
        if (oc < depth) {
            const int8_t *w0 = filter + oc * accum, *x = x_b;
            int32_t a0 = bias ? bias[oc] : 0;
            for (int32_t i = 0; i < k4; ++i) {
                const uint32_t xv = iotsim_read_u32(x), wv0 = iotsim_read_u32(w0);
                x += 4; w0 += 4;
                a0 = iotsim_smlad(iotsim_sxtb16(wv0), iotsim_sxtab16(off2, xv), a0);
                a0 = iotsim_smlad(iotsim_sxtb16_ror8(wv0), iotsim_sxtab16_ror8(off2, xv), a0);
            }
            for (int32_t i = k4 << 2; i < accum; ++i) a0 += *w0++ * (*x++ + input_offset);
            out[oc] = IOTSIM_FC_OUT(a0, oc);
        }
    }
}
#undef IOTSIM_FC_OUT
