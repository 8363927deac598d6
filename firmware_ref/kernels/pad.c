/* PAD / PADV2 of any element type: tflite::reference_ops::PadImpl (reference/pad.h), as TFLite
 * Micro's PadEval runs it (int8: the pad value is the output zero point, or PADV2's constant).
 *
 * The output, extended to 5 dimensions, is written in order: a pad element where any index is
 * in a left or right padding band, else the next input element. Parameters:
 * ops_elementwise.lower_pad.
 */
#include <string.h>

#include "elementwise_ops.h"

void iotsim_pad(const iotsim_pad_params_t *p, const void *input, void *output)
{
    const int32_t *d = p->out_dims, *l = p->left, *r = p->right;
    const size_t es = (size_t)p->elem_size;
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    for (int32_t b = 0; b < d[0]; ++b)
    for (int32_t q = 0; q < d[1]; ++q)
    for (int32_t h = 0; h < d[2]; ++h)
    for (int32_t w = 0; w < d[3]; ++w)
    for (int32_t c = 0; c < d[4]; ++c) {
        if (b < l[0] || b >= d[0] - r[0] || q < l[1] || q >= d[1] - r[1] || h < l[2] || h >= d[2] - r[2] ||
            w < l[3] || w >= d[3] - r[3] || c < l[4] || c >= d[4] - r[4]) {
            memcpy(out, p->pad_value, es);
        } else {
            memcpy(out, in, es);
            in += es;
        }
        out += es;
    }
}
