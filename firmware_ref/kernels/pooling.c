/* AVERAGE_POOL_2D and MAX_POOL_2D, int8: tflite::reference_integer_ops::AveragePool / MaxPool
 * (TFLite Micro). Input and output share scale and zero point (TFLM's Prepare checks it), so
 * the raw values are averaged (rounded half away from zero over the in-image window) or maxed,
 * then clamped by the fused activation.
 */
#include "iotsim_fixedpoint.h"
#include "nn_ops.h"

void iotsim_avg_pool_s8(const iotsim_pool_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, depth = p->depth;
    const int32_t batches = p->batches, out_h = p->out_h, out_w = p->out_w;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t row_stride = in_w * depth;
    int8_t *out = output;

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *in_b = input + b * in_h * row_stride;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t fy0 = iotsim_max_i32(0, -iy0);
            const int32_t fy1 = iotsim_min_i32(filt_h, in_h - iy0);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int32_t fx0 = iotsim_max_i32(0, -ix0);
                const int32_t fx1 = iotsim_min_i32(filt_w, in_w - ix0);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                const int8_t *win = in_b + (iy0 + fy0) * row_stride + (ix0 + fx0) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    int32_t acc = 0;
                    const int8_t *row = win + c;
                    for (int32_t fy = fy0; fy < fy1; ++fy, row += row_stride) {
                        const int8_t *px = row;
                        for (int32_t fx = fx0; fx < fx1; ++fx, px += depth) acc += *px;
                    }
                    /* count > 0: the exporter refuses windows entirely in the padding */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    *out++ = (int8_t)iotsim_clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

void iotsim_max_pool_s8(const iotsim_pool_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, depth = p->depth;
    const int32_t batches = p->batches, out_h = p->out_h, out_w = p->out_w;
    const int32_t filt_h = p->filt_h, filt_w = p->filt_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t row_stride = in_w * depth;
    int8_t *out = output;

    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *in_b = input + b * in_h * row_stride;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t fy0 = iotsim_max_i32(0, -iy0);
            const int32_t fy1 = iotsim_min_i32(filt_h, in_h - iy0);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int32_t fx0 = iotsim_max_i32(0, -ix0);
                const int32_t fx1 = iotsim_min_i32(filt_w, in_w - ix0);
                const int8_t *win = in_b + (iy0 + fy0) * row_stride + (ix0 + fx0) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    int32_t mx = -128;
                    const int8_t *row = win + c;
                    for (int32_t fy = fy0; fy < fy1; ++fy, row += row_stride) {
                        const int8_t *px = row;
                        for (int32_t fx = fx0; fx < fx1; ++fx, px += depth) {
                            if (*px > mx) mx = *px;
                        }
                    }
                    *out++ = (int8_t)iotsim_clamp_i32(mx, act_min, act_max);
                }
            }
        }
    }
}
