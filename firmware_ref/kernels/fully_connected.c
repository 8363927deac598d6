/* FULLY_CONNECTED, int8: tflite::reference_integer_ops::FullyConnected (per-tensor weights,
 * acc += (w + filter_offset) * (x + input_offset)) and FullyConnectedPerChannel (filter_offset
 * is 0: the weights zero point is ignored) of TFLite Micro. Weights [out_depth rows, accum_depth].
 */
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_fully_connected_s8(const iotsim_fc_params_t *p, const int8_t *input, const int8_t *filter,
                               const int32_t *bias, int8_t *output)
{
    const int32_t accum = p->accum_depth, depth = p->out_depth;
    const int32_t input_offset = p->input_offset, filter_offset = p->filter_offset;
    const int32_t output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t batches = p->batches, per_channel = p->per_channel;
    const int32_t *const out_mult = p->out_mult, *const out_shift = p->out_shift;
    int8_t *out = output;

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *x = input + b * accum;
        const int8_t *w = filter;
        for (int32_t oc = 0; oc < depth; ++oc, w += accum) {
            int32_t acc = 0;
            for (int32_t d = 0; d < accum; ++d) {
                acc += ((int32_t)w[d] + filter_offset) * ((int32_t)x[d] + input_offset);
            }
            if (bias) acc += bias[oc];
            {
                const int32_t ch = per_channel ? oc : 0;
                acc = iotsim_mbqm(acc, out_mult[ch], (int)out_shift[ch]);
            }
            acc += output_offset;
            *out++ = (int8_t)iotsim_clamp_i32(acc, act_min, act_max);
        }
    }
}
