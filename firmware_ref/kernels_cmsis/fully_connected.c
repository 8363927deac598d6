/* FULLY_CONNECTED, int8, through Arm's CMSIS-NN (the "cmsis-nn" kernel set; see conv.c). Called as
 * TFLite Micro's cmsis-nn fully_connected.cc of 2020 calls it: arm_fully_connected_s8 with one
 * multiplier and shift for the tensor, no scratch buffer (its get_buffer_size is 0). Per-channel weights,
 * which that TFLM did not have for FULLY_CONNECTED, run the reference kernel (kernels/fully_connected.c,
 * compiled in here under another name).
 */
#include <stdint.h>
#include "arm_nnfunctions.h"
#include "nn_ops.h"

#define iotsim_fully_connected_s8 iotsim_fully_connected_s8_reference
#include "../kernels/fully_connected.c"
#undef iotsim_fully_connected_s8

void iotsim_fully_connected_s8(const iotsim_fc_params_t *p, const int8_t *input, const int8_t *filter,
                               const int32_t *bias, int8_t *output)
{
    if (p->per_channel) {
        iotsim_fully_connected_s8_reference(p, input, filter, bias, output);
        return;
    }
    (void)arm_fully_connected_s8(input, filter, p->accum_depth, p->out_depth, p->batches, p->input_offset,
                                 p->filter_offset, p->out_mult[0], p->out_shift[0], p->output_offset, bias, output,
                                 p->act_min, p->act_max, 0);
}
