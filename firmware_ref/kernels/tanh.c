/* TANH, int8 -> int8: tflite::reference_integer_ops::Tanh (integer_ops/tanh.h), as TFLite
 * Micro's TanhEval runs it for int8 (output scale 1/128, zero point 0).
 *
 * Same input handling as LOGISTIC (Q4.27 after MultiplyByQuantizedMultiplier, saturation
 * beyond +-input_range_radius), gemmlowp::tanh, rounded down to 7 fractional bits.
 * Parameters: ops_elementwise.lower_tanh.
 */
#include "elementwise_ops.h"
#include "iotsim_gemmlowp.h"

void iotsim_tanh_s8(const iotsim_sigmoid_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        if (x <= -p->input_range_radius) {
            output[i] = -128;
        } else if (x >= p->input_range_radius) {
            output[i] = 127;
        } else {
            const int32_t x_q4 = iotsim_mbqm(x, p->input_multiplier, (int)p->input_left_shift);
            const int32_t y_q0 = iotsim_gl_tanh_q4(x_q4);
            output[i] = iotsim_sat_i8(iotsim_rdivpot(y_q0, 31 - 7));
        }
    }
}
