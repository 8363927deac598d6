/* RELU and RELU6, int8 -> int8, as TFLite Micro's activations.cc runs them.
 *
 * RELU (ReluQuantized): requantize from the input to the output quantization
 * (MultiplyByQuantizedMultiplier) and clamp to [max(-128, output zero point), 127].
 * RELU6 (Relu6Quantized): clamp to [input zero point, quantized 6.0] with no requantization
 * (input and output share their quantization). Parameters: ops_elementwise.lower_relu/relu6.
 */
#include "elementwise_ops.h"
#include "iotsim_fixedpoint.h"

void iotsim_relu_s8(const iotsim_relu_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        int32_t v = p->output_zero_point +
                    iotsim_mbqm((int32_t)input[i] - p->input_zero_point, p->multiplier, (int)p->shift);
        v = iotsim_max_i32(p->act_min, v);
        v = iotsim_min_i32(p->act_max, v);
        output[i] = (int8_t)v;
    }
}

void iotsim_relu6_s8(const iotsim_relu_params_t *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = input[i];
        output[i] = (int8_t)(v > p->act_max ? p->act_max : (v < p->act_min ? p->act_min : v));
    }
}
