/* CONV_2D, int8, through Arm's CMSIS-NN (the "cmsis-nn" kernel set; the library is not part of iotsim:
 * iotsim/firmware/build.py compiles it from $IOTSIM_CMSIS_NN). Called as TFLite Micro's cmsis-nn conv.cc
 * of 2020 calls it: arm_convolve_wrapper_s8 with per-channel multipliers and shifts (a per-tensor
 * quantization repeated per channel, as TFLM's Prepare() stores it), a scratch buffer of
 * arm_convolve_wrapper_s8_get_buffer_size bytes (here on the stack), dims NHWC, filter dims
 * {out_c, h, w, in_c}. Grouped convolutions (filt_in_c < in_c), which CMSIS-NN of 2020 does not have, and
 * dilated ones, which its kernels ignore (TFLM passed the dilation in; the results would be wrong), run the
 * reference kernel (kernels/conv.c, compiled in here under another name).
 */
#include <stdint.h>
#include "arm_nnfunctions.h"
#include "nn_ops.h"

#define iotsim_conv_s8 iotsim_conv_s8_reference
#include "../kernels/conv.c"
#undef iotsim_conv_s8

void iotsim_conv_s8(const iotsim_conv_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output)
{
    if (p->filt_in_c != p->in_c || p->dil_h != 1 || p->dil_w != 1) {
        iotsim_conv_s8_reference(p, input, filter, bias, output);
        return;
    }
    int32_t mult[p->out_c], shift[p->out_c];
    for (int32_t c = 0; c < p->out_c; ++c) {
        mult[c] = p->out_mult[p->per_channel ? c : 0];
        shift[c] = p->out_shift[p->per_channel ? c : 0];
    }
    cmsis_nn_conv_params cp = {p->input_offset, p->output_offset, {p->stride_w, p->stride_h}, {p->pad_w, p->pad_h},
                               {p->dil_w, p->dil_h}, {p->act_min, p->act_max}};
    cmsis_nn_per_channel_quant_params qp = {mult, shift};
    cmsis_nn_dims in = {p->batches, p->in_h, p->in_w, p->in_c};
    cmsis_nn_dims f = {p->out_c, p->filt_h, p->filt_w, p->in_c};
    cmsis_nn_dims b = {1, 1, 1, p->out_c};
    cmsis_nn_dims out = {p->batches, p->out_h, p->out_w, p->out_c};
    const int32_t size = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in, &f, &out);
    int16_t buf[size > 0 ? (size + 1) / 2 : 1];
    cmsis_nn_context ctx = {buf, size};
    (void)arm_convolve_wrapper_s8(&ctx, &cp, &qp, &in, input, &f, filter, &b, bias, &out, output);
}
