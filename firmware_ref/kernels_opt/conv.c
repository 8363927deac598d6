/* CONV_2D, int8, optimized for the Cortex-M4/M33 DSP extension (the CMSIS-NN technique of
 * arm_convolve_s8 / arm_nn_mat_mult_kernel_s8_s16). Same results as the reference kernel
 * (firmware_ref/kernels/conv.c, TFLM's ConvPerChannel).
 *
 * A convolution is a matrix multiply: output[pixel][oc] = sum_k column[pixel][k] * filter[oc][k]
 * with k over (ky, kx, ic) and filter rows OHWI. Output pixels are taken two at a time; each
 * one's column (its receptive field, k int8 values) is
 *   - read in place when its taps are one contiguous run of the input (1x1 convolutions at any
 *     stride, 1xK convolutions, filters spanning whole rows) and no tap falls in the padding:
 *     the "1x1 convolution as a matrix multiply" of CMSIS-NN's arm_convolve_1x1_s8_fast;
 *   - else copied (im2col) with padded taps set to the input zero point, so that they contribute
 *     (zp + input_offset) * w = 0, as TFLM's skipped taps do.
 * The two columns are then widened to int16 with the input offset added (SXTAB16), interleaved
 * so that one pass reads four words per four k, and multiplied two output channels at a time:
 * each word of four int8 weights is split into (w0, w2) and (w1, w3) with SXTB16, and SMLAD does
 * two multiply-accumulates per instruction, eight per four k. The last k % 4 terms are done
 * singly. Sums of the same integer products in another order, then TFLM's requantization
 * (iotsim_requantize): bit-exact. Grouped convolutions and columns over 2 KiB use the plain loop.
 */
/* keep the im2col word copies as written: GCC would turn them into calls of newlib-nano's
 * byte-by-byte memcpy / memset */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#include "iotsim_dsp.h"
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

/* the im2col and int16 column buffers are C99 variable-length arrays on the stack (6 k bytes,
 * counted in the measured stack peak, as TFLM + CMSIS-NN counts its scratch buffer in the
 * arena); when the two int8 columns would exceed this, the convolution runs the plain loop */
#define IOTSIM_IM2COL_MAX_BYTES 4096

typedef struct {
    int32_t k, input_offset, output_offset, act_min, act_max, per_channel;
    const int32_t *mult, *shift, *bias;
} mm_params_t;

/* Two int8 columns (k values each; cb may be ca for an odd last pixel) to the int16 layout the
 * multiply reads: per group of four values, the words (a0+o, a2+o) (a1+o, a3+o) (b0+o, b2+o)
 * (b1+o, b3+o) with o the input offset (SXTAB16, the order SXTB16 gives the weights), then the
 * k % 4 remaining values of a, then those of b, as plain int16. */
static void columns_to_s16(const int8_t *ca, const int8_t *cb, int32_t k, int32_t input_offset, int32_t *dst)
{
    const int32_t off2 = iotsim_pack_i16x2(input_offset);
    for (int32_t i = k >> 2; i > 0; --i, ca += 4, cb += 4, dst += 4) {
        const uint32_t va = iotsim_read_u32(ca), vb = iotsim_read_u32(cb);
        dst[0] = iotsim_sxtab16(off2, va);
        dst[1] = iotsim_sxtab16_ror8(off2, va);
        dst[2] = iotsim_sxtab16(off2, vb);
        dst[3] = iotsim_sxtab16_ror8(off2, vb);
    }
    int16_t *tail = (int16_t *)dst;
    const int32_t r = k & 3;
    for (int32_t i = 0; i < r; ++i) {
        tail[i] = (int16_t)(ca[i] + input_offset);
        tail[r + i] = (int16_t)(cb[i] + input_offset);
    }
}

/* outputs of two pixels (rows outa, outb; outb null: one pixel) for all out_c channels, from
 * their columns in the columns_to_s16 layout. Two channels x two pixels per pass: per group of
 * four k, two weight words split with SXTB16 and eight SMLAD (16 multiply-accumulates). */
static void mat_mult_s16(const mm_params_t *m, const int8_t *filter, int32_t out_c, const int32_t *cols,
                         int8_t *outa, int8_t *outb)
{
    const int32_t k = m->k, k4 = k >> 2, r = k & 3;
    const int32_t *const mult = m->mult, *const shift = m->shift, *const bias = m->bias;
    const int32_t pc = m->per_channel, output_offset = m->output_offset, act_min = m->act_min, act_max = m->act_max;
    const int16_t *const tail = (const int16_t *)(cols + 4 * k4);
#define IOTSIM_CONV_OUT(acc, oc) \
    iotsim_output_s8((acc), mult[pc ? (oc) : 0], shift[pc ? (oc) : 0], output_offset, act_min, act_max)
    int32_t oc = 0;
    for (; oc + 1 < out_c; oc += 2) {
        const int8_t *w0 = filter + oc * k, *w1 = w0 + k;
        const int32_t *x = cols;
        int32_t a0 = 0, a1 = 0;
        if (bias) { a0 = bias[oc]; a1 = bias[oc + 1]; }
        int32_t b0 = a0, b1 = a1;
        for (int32_t i = k4; i > 0; --i, x += 4) {
            const int32_t xae = x[0], xao = x[1], xbe = x[2], xbo = x[3];
            const uint32_t wv0 = iotsim_read_u32(w0);
            w0 += 4;
            const int32_t w0e = iotsim_sxtb16(wv0), w0o = iotsim_sxtb16_ror8(wv0);
            a0 = iotsim_smlad(w0e, xae, a0); a0 = iotsim_smlad(w0o, xao, a0);
            b0 = iotsim_smlad(w0e, xbe, b0); b0 = iotsim_smlad(w0o, xbo, b0);
            const uint32_t wv1 = iotsim_read_u32(w1);
            w1 += 4;
            const int32_t w1e = iotsim_sxtb16(wv1), w1o = iotsim_sxtb16_ror8(wv1);
            a1 = iotsim_smlad(w1e, xae, a1); a1 = iotsim_smlad(w1o, xao, a1);
            b1 = iotsim_smlad(w1e, xbe, b1); b1 = iotsim_smlad(w1o, xbo, b1);
        }
        for (int32_t i = 0; i < r; ++i) {
            const int32_t v0 = w0[i], v1 = w1[i], xa = tail[i], xb = tail[r + i];
            a0 += v0 * xa; a1 += v1 * xa; b0 += v0 * xb; b1 += v1 * xb;
        }
        outa[oc] = IOTSIM_CONV_OUT(a0, oc);
        outa[oc + 1] = IOTSIM_CONV_OUT(a1, oc + 1);
        if (outb) {
            outb[oc] = IOTSIM_CONV_OUT(b0, oc);
            outb[oc + 1] = IOTSIM_CONV_OUT(b1, oc + 1);
        }
    }
    if (oc < out_c) { /* odd channel count: the last channel, both pixels */
        const int8_t *w0 = filter + oc * k;
        const int32_t *x = cols;
        int32_t a0 = bias ? bias[oc] : 0, b0 = a0;
        for (int32_t i = k4; i > 0; --i, x += 4) {
            const uint32_t wv0 = iotsim_read_u32(w0);
            w0 += 4;
            const int32_t w0e = iotsim_sxtb16(wv0), w0o = iotsim_sxtb16_ror8(wv0);
            a0 = iotsim_smlad(w0e, x[0], a0); a0 = iotsim_smlad(w0o, x[1], a0);
            b0 = iotsim_smlad(w0e, x[2], b0); b0 = iotsim_smlad(w0o, x[3], b0);
        }
        for (int32_t i = 0; i < r; ++i) { a0 += w0[i] * tail[i]; b0 += w0[i] * tail[r + i]; }
        outa[oc] = IOTSIM_CONV_OUT(a0, oc);
        if (outb) outb[oc] = IOTSIM_CONV_OUT(b0, oc);
    }
#undef IOTSIM_CONV_OUT
}

/* TFLM's reference loop (grouped convolutions, oversized im2col) */
static void conv_plain(const iotsim_conv_params_t *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output)
{
    const int32_t fpg = p->filters_per_group, groups = p->out_c / p->filters_per_group;
    const int32_t filter_size = p->filt_h * p->filt_w * p->filt_in_c;
    int8_t *out = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
                int32_t oc = 0;
                for (int32_t g = 0; g < groups; ++g) {
                    for (int32_t j = 0; j < fpg; ++j, ++oc) {
                        int32_t acc = 0;
                        for (int32_t ky = 0; ky < p->filt_h; ++ky) {
                            const int32_t iy = iy0 + p->dil_h * ky;
                            if (iy < 0 || iy >= p->in_h) continue;
                            for (int32_t kx = 0; kx < p->filt_w; ++kx) {
                                const int32_t ix = ix0 + p->dil_w * kx;
                                if (ix < 0 || ix >= p->in_w) continue;
                                const int8_t *x = input + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c + g * p->filt_in_c;
                                const int8_t *w = filter + oc * filter_size + (ky * p->filt_w + kx) * p->filt_in_c;
                                for (int32_t ic = 0; ic < p->filt_in_c; ++ic) acc += w[ic] * (x[ic] + p->input_offset);
                            }
                        }
                        if (bias) acc += bias[oc];
                        acc = iotsim_requantize(acc, p->out_mult[p->per_channel ? oc : 0],
                                                p->out_shift[p->per_channel ? oc : 0]);
                        *out++ = (int8_t)iotsim_clamp_i32(acc + p->output_offset, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

void iotsim_conv_s8(const iotsim_conv_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w;
    const int32_t k = filt_h * filt_w * in_c;
    if (p->filt_in_c != in_c || 2 * k > IOTSIM_IM2COL_MAX_BYTES) {
        conv_plain(p, input, filter, bias, output);
        return;
    }
    const mm_params_t m = {k, p->input_offset, p->output_offset, p->act_min, p->act_max, p->per_channel,
                           p->out_mult, p->out_shift, bias};
    const int32_t out_c = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w, stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t row_stride = in_w * in_c;
    const int8_t pad_value = (int8_t)(-p->input_offset); /* the input zero point */
    /* taps of one pixel contiguous in the input when none is padding */
    const int direct_ok = dil_w == 1 && (filt_h == 1 || (filt_w == in_w && dil_h == 1));
    const int needs_im2col = !direct_ok || p->pad_h > 0 || p->pad_w > 0 ||
                             (out_h - 1) * stride_h + dil_h * (filt_h - 1) >= in_h ||
                             (out_w - 1) * stride_w + dil_w * (filt_w - 1) >= in_w;
    int8_t im2col[needs_im2col ? 2 * k : 4];
    int32_t cols16[k + 2]; /* two int16 columns: 4 k bytes, + 8 for the tails */
    const int8_t *cols[2];
    int8_t *outs[2];
    int n = 0;
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * in_h * row_stride;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - p->pad_h;
            const int rows_inside = iy0 >= 0 && iy0 + dil_h * (filt_h - 1) < in_h;
            for (int32_t ox = 0; ox < out_w; ++ox, out += out_c) {
                const int32_t ix0 = ox * stride_w - p->pad_w;
                const int inside = rows_inside && ix0 >= 0 && ix0 + dil_w * (filt_w - 1) < in_w;
                if (inside && direct_ok) {
                    cols[n] = in_b + iy0 * row_stride + ix0 * in_c;
                } else {
                    /* valid taps kx0..kx1-1 of every row, as in the reference kernel */
                    const int32_t kx0 = ix0 < 0 ? (dil_w - 1 - ix0) / dil_w : 0;
                    int32_t kx1 = (in_w - ix0 + dil_w - 1) / dil_w;
                    if (kx1 > filt_w) kx1 = filt_w;
                    int8_t *col = im2col + n * k;
                    for (int32_t ky = 0; ky < filt_h; ++ky) {
                        const int32_t iy = iy0 + dil_h * ky;
                        if (iy < 0 || iy >= in_h || kx1 <= kx0) {
                            iotsim_fill_s8(col, pad_value, filt_w * in_c);
                            col += filt_w * in_c;
                            continue;
                        }
                        iotsim_fill_s8(col, pad_value, kx0 * in_c);
                        col += kx0 * in_c;
                        const int8_t *x = in_b + iy * row_stride + (ix0 + dil_w * kx0) * in_c;
                        if (dil_w == 1) {
                            iotsim_copy_s8(col, x, (kx1 - kx0) * in_c);
                            col += (kx1 - kx0) * in_c;
                        } else {
                            for (int32_t kx = kx0; kx < kx1; ++kx, col += in_c, x += dil_w * in_c) {
                                iotsim_copy_s8(col, x, in_c);
                            }
                        }
                        iotsim_fill_s8(col, pad_value, (filt_w - kx1) * in_c);
                        col += (filt_w - kx1) * in_c;
                    }
                    cols[n] = im2col + n * k;
                }
                outs[n] = out;
                if (++n == 2) {
                    columns_to_s16(cols[0], cols[1], k, p->input_offset, cols16);
                    mat_mult_s16(&m, filter, out_c, cols16, outs[0], outs[1]);
                    n = 0;
                }
            }
        }
    }
    if (n == 1) {
        columns_to_s16(cols[0], cols[0], k, p->input_offset, cols16);
        mat_mult_s16(&m, filter, out_c, cols16, outs[0], 0);
    }
}
