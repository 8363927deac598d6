/* LOGISTIC, int8 -> int8: tflite::reference_integer_ops::Logistic (integer_ops/logistic.h),
 * as TFLite Micro's LogisticEval runs it for int8 (output scale 1/256, zero point -128).
 *
 * Inputs beyond +-input_range_radius (from the zero point) saturate; the others are scaled
 * to Q4.27 (MultiplyByQuantizedMultiplier), passed through gemmlowp::logistic and rounded
 * down to 8 fractional bits. Parameters: ops_elementwise.lower_logistic.
 */
#include "elementwise_ops.h"
#include "iotsim_gemmlowp.h"

void iotsim_logistic_s8(const iotsim_sigmoid_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        if (x <= -p->input_range_radius) {
            output[i] = -128;
        } else if (x >= p->input_range_radius) {
            output[i] = 127;
        } else {
            const int32_t x_q4 = iotsim_mbqm(x, p->input_multiplier, (int)p->input_left_shift);
            const int32_t y_q0 = iotsim_gl_logistic_q4(x_q4);
            output[i] = iotsim_sat_i8(iotsim_rdivpot(y_q0, 31 - 8) - 128);
        }
    }
}
