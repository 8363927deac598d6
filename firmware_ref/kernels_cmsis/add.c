/* ADD, int8, through Arm's CMSIS-NN (the "cmsis-nn" kernel set; see conv.c). Called as TFLite Micro's
 * cmsis-nn add.cc of 2020 calls it: arm_elementwise_add_s8 (left shift 20, each input's multiplier and
 * shift, the output's) when neither input is broadcast; a broadcast runs TFLM's reference path
 * (kernels/add.c's, compiled in here under another name).
 */
#include <stdint.h>
#include "arm_nnfunctions.h"
#include "elementwise_ops.h"

#define iotsim_add_s8 iotsim_add_s8_reference
#include "../kernels/add.c"
#undef iotsim_add_s8

void iotsim_add_s8(const iotsim_add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t *d = p->shape.dims, *s1 = p->shape.stride1, *s2 = p->shape.stride2;
    int32_t size = 1;
    int contiguous = 1;
    for (int i = IOTSIM_BCAST_DIMS - 1; i >= 0; --i) {
        if (d[i] > 1 && (s1[i] != size || s2[i] != size)) contiguous = 0;
        size *= d[i];
    }
    if (!contiguous) {
        iotsim_add_s8_reference(p, input1, input2, output);
        return;
    }
    (void)arm_elementwise_add_s8(input1, input2, p->input1_offset, p->input1_multiplier, p->input1_shift,
                                 p->input2_offset, p->input2_multiplier, p->input2_shift, p->left_shift, output,
                                 p->output_offset, p->output_multiplier, p->output_shift, p->act_min, p->act_max,
                                 (uint32_t)size);
}
