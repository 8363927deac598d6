/* CONV_2D, int8: tflite::reference_integer_ops::ConvPerChannel (TFLite Micro's reference kernel).
 *
 * Same arithmetic as TFLM: acc = sum filter * (input + input_offset) over the taps inside the
 * image (padding contributes nothing), + bias, MultiplyByQuantizedMultiplier, + output_offset,
 * clamp. The taps outside the image are skipped by computing the valid filter range once per
 * output row/column instead of testing every tap, and without dilation along x or groups the
 * taps of a filter row and their channels are one contiguous run in both input and filter
 * (one loop instead of two); the sum is the same (integer addition).
 */
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_conv_s8(const iotsim_conv_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w, filt_in_c = p->filt_in_c;
    const int32_t fpg = p->filters_per_group, groups = p->out_c / p->filters_per_group;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t batches = p->batches, out_h = p->out_h, out_w = p->out_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t per_channel = p->per_channel;
    const int32_t *const out_mult = p->out_mult, *const out_shift = p->out_shift;
    const int32_t filter_size = filt_h * filt_w * filt_in_c;
    const int32_t row_stride = in_w * in_c;
    /* no dilation along x and no groups: a row's taps and channels are contiguous */
    const int contiguous = dil_w == 1 && filt_in_c == in_c;
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
                for (int32_t g = 0; g < groups; ++g) {
                    const int8_t *in_g = in_b + g * filt_in_c;
                    for (int32_t j = 0; j < fpg; ++j, ++oc) {
                        const int8_t *f_oc = filter + oc * filter_size;
                        int32_t acc = 0;
                        for (int32_t ky = ky0; ky < ky1; ++ky) {
                            const int8_t *in_row = in_g + (iy0 + dil_h * ky) * row_stride;
                            const int8_t *f_row = f_oc + ky * filt_w * filt_in_c;
                            if (contiguous) {
                                /* taps kx0..kx1-1 x all channels: one run in input and filter */
                                const int8_t *x = in_row + (ix0 + kx0) * in_c;
                                const int8_t *w = f_row + kx0 * filt_in_c;
                                const int32_t span = (kx1 - kx0) * filt_in_c;
                                for (int32_t i = 0; i < span; ++i) {
                                    acc += (int32_t)w[i] * ((int32_t)x[i] + input_offset);
                                }
                                continue;
                            }
                            for (int32_t kx = kx0; kx < kx1; ++kx) {
                                const int8_t *x = in_row + (ix0 + dil_w * kx) * in_c;
                                const int8_t *w = f_row + kx * filt_in_c;
                                for (int32_t ic = 0; ic < filt_in_c; ++ic) {
                                    acc += (int32_t)w[ic] * ((int32_t)x[ic] + input_offset);
                                }
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
