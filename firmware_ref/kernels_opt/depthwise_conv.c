/* DEPTHWISE_CONV_2D, int8, optimized for the Cortex-M4/M33 DSP extension (the CMSIS-NN
 * technique of arm_depthwise_conv_s8_opt). Same results as the reference kernel
 * (firmware_ref/kernels/depthwise_conv.c, TFLM's DepthwiseConvPerChannel).
 *
 * With depth_multiplier 1 the channels of one tap are contiguous in both the input (NHWC) and
 * the filter (1HWO): four channels are read as one word each, split into (c0, c2) and (c1, c3)
 * int16 pairs with SXTB16 (SXTAB16 adds the input offset), and accumulated into four
 * per-channel sums with SMLABB / SMLATT (16 x 16 + 32). Taps outside the image are skipped
 * (their range computed once per output pixel, as in the reference); the last in_c % 4
 * channels are done singly. A depth multiplier above 1 uses the plain loop.
 */
#include "iotsim_dsp.h"
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_depthwise_conv_s8(const iotsim_dwconv_params_t *p, const int8_t *input, const int8_t *filter,
                              const int32_t *bias, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t dm = p->depth_multiplier, out_c = p->in_c * p->depth_multiplier;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t input_offset = p->input_offset;
    const int32_t off2 = iotsim_pack_i16x2(input_offset);
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t row_stride = in_w * in_c;
    /* parameters in locals: the int8 output stores could alias *p, which would force reloads */
    const int32_t *const mult = p->out_mult, *const shift = p->out_shift;
    const int32_t pc = p->per_channel, output_offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
#define IOTSIM_DW_OUT(acc, oc) \
    iotsim_output_s8((acc), mult[pc ? (oc) : 0], shift[pc ? (oc) : 0], output_offset, act_min, act_max)
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * in_h * row_stride;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t ky0 = iy0 < 0 ? (dil_h - 1 - iy0) / dil_h : 0;
            int32_t ky1 = (in_h - iy0 + dil_h - 1) / dil_h;
            if (ky1 > filt_h) ky1 = filt_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int32_t kx0 = ix0 < 0 ? (dil_w - 1 - ix0) / dil_w : 0;
                int32_t kx1 = (in_w - ix0 + dil_w - 1) / dil_w;
                if (kx1 > filt_w) kx1 = filt_w;
                if (dm != 1) {
                    int32_t oc = 0;
                    for (int32_t ic = 0; ic < in_c; ++ic) {
                        for (int32_t mm = 0; mm < dm; ++mm, ++oc) {
                            int32_t acc = bias ? bias[oc] : 0;
                            for (int32_t ky = ky0; ky < ky1; ++ky) {
                                const int8_t *in_row = in_b + (iy0 + dil_h * ky) * row_stride + ic;
                                const int8_t *f_row = filter + ky * filt_w * out_c + oc;
                                for (int32_t kx = kx0; kx < kx1; ++kx) {
                                    acc += f_row[kx * out_c] * (in_row[(ix0 + dil_w * kx) * in_c] + input_offset);
                                }
                            }
                            *out++ = IOTSIM_DW_OUT(acc, oc);
                        }
                    }
                    continue;
                }
                /* first valid tap of the pixel; steps between taps along x and y */
                const int8_t *in_px = in_b + (iy0 + dil_h * ky0) * row_stride + (ix0 + dil_w * kx0) * in_c;
                const int8_t *f_px = filter + (ky0 * filt_w + kx0) * out_c;
                const int32_t nx = kx1 - kx0, ny = ky1 - ky0;
                const int32_t in_dx = dil_w * in_c, in_dy = dil_h * row_stride;
                const int32_t f_dy = filt_w * out_c;
                int32_t c = 0;
                for (; c + 3 < in_c; c += 4) {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    if (bias) { a0 = bias[c]; a1 = bias[c + 1]; a2 = bias[c + 2]; a3 = bias[c + 3]; }
                    const int8_t *x_row = in_px + c, *w_row = f_px + c;
                    for (int32_t ky = 0; ky < ny; ++ky, x_row += in_dy, w_row += f_dy) {
                        const int8_t *x = x_row, *w = w_row;
                        for (int32_t kx = 0; kx < nx; ++kx, x += in_dx, w += out_c) {
                            const uint32_t xv = iotsim_read_u32(x), wv = iotsim_read_u32(w);
                            const int32_t xe = iotsim_sxtab16(off2, xv), xo = iotsim_sxtab16_ror8(off2, xv);
                            const int32_t we = iotsim_sxtb16(wv), wo = iotsim_sxtb16_ror8(wv);
                            a0 = iotsim_smlabb(we, xe, a0);
                            a2 = iotsim_smlatt(we, xe, a2);
                            a1 = iotsim_smlabb(wo, xo, a1);
                            a3 = iotsim_smlatt(wo, xo, a3);
                        }
                    }
                    out[c] = IOTSIM_DW_OUT(a0, c);
                    out[c + 1] = IOTSIM_DW_OUT(a1, c + 1);
                    out[c + 2] = IOTSIM_DW_OUT(a2, c + 2);
                    out[c + 3] = IOTSIM_DW_OUT(a3, c + 3);
                }
                for (; c < in_c; ++c) {
                    int32_t acc = bias ? bias[c] : 0;
                    const int8_t *x_row = in_px + c, *w_row = f_px + c;
                    for (int32_t ky = 0; ky < ny; ++ky, x_row += in_dy, w_row += f_dy) {
                        for (int32_t kx = 0; kx < nx; ++kx) acc += w_row[kx * out_c] * (x_row[kx * in_dx] + input_offset);
                    }
                    out[c] = IOTSIM_DW_OUT(acc, c);
                }
                out += out_c;
            }
        }
    }
}
#undef IOTSIM_DW_OUT
