/* DEQUANTIZE, int8 -> float32: tflite::reference_ops::Dequantize (reference/dequantize.h), as
 * TFLite Micro's DequantizeEval runs it: static_cast<float>(double(scale) * (x - zero_point)).
 *
 * Done in float here: scale (24-bit significand) times an integer of at most 9 bits is exact
 * in double, so TFLM's double product rounded once to float equals the float product (also
 * exact, then rounded once to nearest): bit-identical, and no software double arithmetic on a
 * single-precision FPU (Cortex-M4F). Parameters: ops_elementwise.lower_dequantize.
 */
#include "elementwise_ops.h"

void iotsim_dequantize_s8_f32(const iotsim_dequantize_params_t *p, const int8_t *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
}
