/* DEPTHWISE_CONV_2D, int8: tflite::reference_integer_ops::DepthwiseConvPerChannel (TFLM).
 *
 * Output channel oc = ic * depth_multiplier + m reads input channel ic; filter layout
 * [1, filt_h, filt_w, out_c]. Same arithmetic as TFLM; the valid filter range is computed once
 * per output row/column instead of testing every tap.
 */
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_depthwise_conv_s8(const iotsim_dwconv_params_t *p, const int8_t *input, const int8_t *filter,
                              const int32_t *bias, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t dm = p->depth_multiplier, out_c = p->in_c * p->depth_multiplier;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t batches = p->batches, out_h = p->out_h, out_w = p->out_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t per_channel = p->per_channel;
    const int32_t *const out_mult = p->out_mult, *const out_shift = p->out_shift;
    const int32_t row_stride = in_w * in_c;
    int8_t *out = output;

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *in_b = input + b * in_h * row_stride;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t ky0 = iy0 < 0 ? (dil_h - 1 - iy0) / dil_h : 0;
            int32_t ky1 = (in_h - iy0 + dil_h - 1) / dil_h;
            if (ky1 > filt_h) ky1 = filt_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int32_t kx0 = ix0 < 0 ? (dil_w - 1 - ix0) / dil_w : 0;
                int32_t kx1 = (in_w - ix0 + dil_w - 1) / dil_w;
                if (kx1 > filt_w) kx1 = filt_w;
                int32_t oc = 0;
                for (int32_t ic = 0; ic < in_c; ++ic) {
                    for (int32_t m = 0; m < dm; ++m, ++oc) {
                        int32_t acc = 0;
                        for (int32_t ky = ky0; ky < ky1; ++ky) {
                            const int8_t *in_row = in_b + (iy0 + dil_h * ky) * row_stride + ic;
                            const int8_t *f_row = filter + ky * filt_w * out_c + oc;
                            for (int32_t kx = kx0; kx < kx1; ++kx) {
                                const int32_t x = in_row[(ix0 + dil_w * kx) * in_c];
                                const int32_t w = f_row[kx * out_c];
                                acc += w * (x + input_offset);
                            }
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
        }
    }
}
