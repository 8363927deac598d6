/* DEPTHWISE_CONV_2D, int8, through Arm's CMSIS-NN (the "cmsis-nn" kernel set; see conv.c). Called as
 * TFLite Micro's cmsis-nn depthwise_conv.cc of 2020 calls it: with depth multiplier 1,
 * arm_depthwise_conv_s8_opt and a scratch buffer of arm_depthwise_conv_s8_opt_get_buffer_size bytes;
 * otherwise arm_depthwise_conv_s8 without one. Shifts before multipliers, per channel; one batch per call.
 * Dilated depthwise convolutions, which those kernels ignore, run the reference kernel
 * (kernels/depthwise_conv.c, compiled in here under another name).
 */
#include <stdint.h>
#include "arm_nnfunctions.h"
#include "nn_ops.h"

#define iotsim_depthwise_conv_s8 iotsim_depthwise_conv_s8_reference
#include "../kernels/depthwise_conv.c"
#undef iotsim_depthwise_conv_s8

void iotsim_depthwise_conv_s8(const iotsim_dwconv_params_t *p, const int8_t *input, const int8_t *filter,
                              const int32_t *bias, int8_t *output)
{
    if (p->dil_h != 1 || p->dil_w != 1) {
        iotsim_depthwise_conv_s8_reference(p, input, filter, bias, output);
        return;
    }
    const int32_t out_c = p->in_c * p->depth_multiplier;
    int32_t mult[out_c], shift[out_c];
    for (int32_t c = 0; c < out_c; ++c) {
        mult[c] = p->out_mult[p->per_channel ? c : 0];
        shift[c] = p->out_shift[p->per_channel ? c : 0];
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * p->in_w * p->in_c;
        int8_t *out_b = output + b * p->out_h * p->out_w * out_c;
        if (p->depth_multiplier == 1) {
            const int32_t size = arm_depthwise_conv_s8_opt_get_buffer_size(p->in_c, p->filt_w, p->filt_h);
            int16_t buf[size > 0 ? (size + 1) / 2 : 1];
            (void)arm_depthwise_conv_s8_opt(in_b, p->in_w, p->in_h, p->in_c, filter, p->in_c, p->filt_w, p->filt_h,
                                            p->pad_w, p->pad_h, p->stride_w, p->stride_h, bias, out_b, shift, mult,
                                            p->out_w, p->out_h, p->output_offset, p->input_offset, p->act_min,
                                            p->act_max, p->dil_w, p->dil_h, buf);
        } else {
            (void)arm_depthwise_conv_s8(in_b, p->in_w, p->in_h, p->in_c, filter, out_c, p->depth_multiplier,
                                        p->filt_w, p->filt_h, p->pad_w, p->pad_h, p->stride_w, p->stride_h, bias,
                                        out_b, shift, mult, p->out_w, p->out_h, p->output_offset, p->input_offset,
                                        p->act_min, p->act_max, p->dil_w, p->dil_h, 0);
        }
    }
}
