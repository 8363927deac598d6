/* CONCATENATION of any element type: tflite::reference_ops::Concatenation
 * (reference/concatenation.h), which TFLite Micro runs for int8 too (EvalUnquantized: a plain
 * copy, all inputs sharing the output's quantization, checked at export).
 *
 * For each of `outer` slices before the axis, copy copy_bytes[i] (input i's axis size times the
 * inner size times the element size) from each input in turn. Parameters:
 * ops_elementwise.lower_concatenation.
 */
#include <string.h>

#include "elementwise_ops.h"

void iotsim_concat(const iotsim_concat_params_t *p, const void *const *inputs, void *output)
{
    uint8_t *out = (uint8_t *)output;
    for (int32_t k = 0; k < p->outer; ++k) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const int32_t n = p->copy_bytes[i];
            memcpy(out, (const uint8_t *)inputs[i] + (size_t)k * (size_t)n, (size_t)n);
            out += n;
        }
    }
}
