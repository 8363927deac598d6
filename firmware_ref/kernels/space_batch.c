/* SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND of any element type:
 * tflite::reference_ops::SpaceToBatchND / BatchToSpaceND (reference/space_to_batch_nd.h,
 * batch_to_space_nd.h), on shapes extended to 4D NHWC (3D NHC -> NH1C), as TFLite Micro runs
 * them, with two corrections (see ops_elementwise.py): the shapes are the real ones (batch
 * in_b * block_h * block_w after SPACE_TO_BATCH_ND, where the converter stores 1 for a model
 * with a dynamic batch), and SPACE_TO_BATCH_ND pads with the output zero point (TFLM's pad
 * value is an uninitialised field: 0, 8, 32 or 200 seen).
 */
#include <string.h>

#include "elementwise_ops.h"

void iotsim_space_to_batch_nd(const iotsim_space_batch_params_t *p, const void *input, void *output)
{
    const size_t row = (size_t)p->depth * (size_t)p->elem_size;
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    for (int32_t out_b = 0; out_b < p->out_b; ++out_b) {
        const int32_t in_batch = out_b % p->in_b;
        const int32_t shift_w = (out_b / p->in_b) % p->block_w;
        const int32_t shift_h = (out_b / p->in_b) / p->block_w;
        for (int32_t out_h = 0; out_h < p->out_h; ++out_h) {
            const int32_t in_h = out_h * p->block_h + shift_h - p->pad_top;
            for (int32_t out_w = 0; out_w < p->out_w; ++out_w, out += row) {
                const int32_t in_w = out_w * p->block_w + shift_w - p->pad_left;
                if (in_h < 0 || in_h >= p->in_h || in_w < 0 || in_w >= p->in_w) {
                    memset(out, p->pad_byte, row);
                } else {
                    memcpy(out, in + (((size_t)in_batch * p->in_h + in_h) * p->in_w + in_w) * row, row);
                }
            }
        }
    }
}

void iotsim_batch_to_space_nd(const iotsim_space_batch_params_t *p, const void *input, void *output)
{
    const size_t row = (size_t)p->depth * (size_t)p->elem_size;
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    for (int32_t in_batch = 0; in_batch < p->in_b; ++in_batch) {
        const int32_t out_batch = in_batch % p->out_b;
        const int32_t spatial_offset = in_batch / p->out_b;
        for (int32_t in_h = 0; in_h < p->in_h; ++in_h) {
            const int32_t out_h = in_h * p->block_h + spatial_offset / p->block_w - p->pad_top;
            if (out_h < 0 || out_h >= p->out_h) continue;
            for (int32_t in_w = 0; in_w < p->in_w; ++in_w) {
                const int32_t out_w = in_w * p->block_w + spatial_offset % p->block_w - p->pad_left;
                if (out_w < 0 || out_w >= p->out_w) continue;
                memcpy(out + (((size_t)out_batch * p->out_h + out_h) * p->out_w + out_w) * row,
                       in + (((size_t)in_batch * p->in_h + in_h) * p->in_w + in_w) * row, row);
            }
        }
    }
}
