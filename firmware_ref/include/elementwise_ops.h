/* Elementwise, activation and data-movement kernels of the reference firmware:
 * SOFTMAX, LOGISTIC, TANH, RELU, RELU6, ADD, MUL, CONCATENATION, PAD/PADV2, QUANTIZE,
 * DEQUANTIZE, RESHAPE/EXPAND_DIMS/SQUEEZE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND.
 *
 * The int8 kernels are TFLite Micro's reference kernels (tensorflow/lite/micro/kernels/<op>.cc
 * Eval, tensorflow/lite/kernels/internal/reference/[integer_ops/]<op>.h and gemmlowp's
 * fixedpoint.h for exp/logistic/tanh), with the same integer arithmetic and therefore the same
 * results bit for bit. Every parameter is computed at export time by
 * iotsim/firmware/ops_elementwise.py exactly as TFLM's Prepare() does.
 *
 * Documented departures from TFLM (where TFLM is wrong, see ops_elementwise.py):
 * - SPACE_TO_BATCH_ND pads with the output zero point (TFLM leaves its pad value
 *   uninitialised: a varying garbage byte) and runs on the corrected batch dimension.
 * - QUANTIZE (float -> int8) saturates out-of-range and maps NaN to the zero point where
 *   TFLM's float -> int32 conversion is undefined behaviour.
 * C99, no allocation, no library calls besides memcpy/memmove/memset.
 */
#ifndef IOTSIM_ELEMENTWISE_OPS_H
#define IOTSIM_ELEMENTWISE_OPS_H

#include <stdint.h>

#define IOTSIM_BCAST_DIMS 6

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), over the last dimension. */
typedef struct {
    int32_t outer, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} iotsim_softmax_params_t;

/* LOGISTIC and TANH int8 -> int8 (fixed output quantization 1/256,-128 and 1/128,0). */
typedef struct {
    int32_t size;
    int32_t input_zero_point, input_range_radius;
    int32_t input_multiplier, input_left_shift;
} iotsim_sigmoid_params_t;

/* RELU (requantizing) int8: out = clamp(out_zp + MBQM(in - in_zp, mult, shift), act_min, act_max);
 * RELU6 int8: out = clamp(in, act_min, act_max) (input and output share quantization). */
typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift; /* unused by RELU6 */
    int32_t act_min, act_max;
} iotsim_relu_params_t;

/* Broadcast geometry of a binary elementwise op: the output seen as 6 nested loops
 * (dims, outermost first, size-1 loops padded in front) and each input's element stride
 * per loop (0 where that input is broadcast). */
typedef struct {
    int32_t dims[IOTSIM_BCAST_DIMS];
    int32_t stride1[IOTSIM_BCAST_DIMS];
    int32_t stride2[IOTSIM_BCAST_DIMS];
} iotsim_bcast_t;

/* ADD int8 (reference_integer_ops::AddFunc). offsets are -zero_point for inputs. */
typedef struct {
    iotsim_bcast_t shape;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} iotsim_add_params_t;

/* MUL int8 (reference_integer_ops::MulElementwise / BroadcastMul6DSlow). */
typedef struct {
    iotsim_bcast_t shape;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} iotsim_mul_params_t;

/* CONCATENATION of any element type: outer loops times, copy copy_bytes[i] from input i. */
typedef struct {
    int32_t num_inputs;
    int32_t outer;
    const int32_t *copy_bytes; /* num_inputs entries */
} iotsim_concat_params_t;

/* PAD / PADV2 (reference_ops::PadImpl), input extended to 5 dims, any element size. */
typedef struct {
    int32_t out_dims[5];
    int32_t left[5], right[5];
    int32_t elem_size;               /* 1, 2 or 4 */
    uint8_t pad_value[4];            /* the pad element's bytes (little-endian order as stored) */
} iotsim_pad_params_t;

/* QUANTIZE float32 -> int8 (reference_ops::AffineQuantize). */
typedef struct {
    int32_t size;
    float scale; /* the output scale as stored (float) */
    int32_t zero_point;
} iotsim_quantize_params_t;

/* QUANTIZE int8 -> int8 (reference_ops::Requantize). */
typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
} iotsim_requantize_params_t;

/* DEQUANTIZE int8 -> float32 (reference_ops::Dequantize). */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} iotsim_dequantize_params_t;

/* SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND, shapes extended to 4D NHWC (3D NHC -> NH1C). */
typedef struct {
    int32_t in_b, in_h, in_w, depth;
    int32_t out_b, out_h, out_w;
    int32_t block_h, block_w;
    int32_t pad_top, pad_left; /* crops_top, crops_left for BATCH_TO_SPACE_ND */
    int32_t elem_size;
    int32_t pad_byte; /* SPACE_TO_BATCH_ND: the byte every pad element is filled with */
} iotsim_space_batch_params_t;

void iotsim_softmax_s8(const iotsim_softmax_params_t *p, const int8_t *input, int8_t *output);
void iotsim_logistic_s8(const iotsim_sigmoid_params_t *p, const int8_t *input, int8_t *output);
void iotsim_tanh_s8(const iotsim_sigmoid_params_t *p, const int8_t *input, int8_t *output);
void iotsim_relu_s8(const iotsim_relu_params_t *p, const int8_t *input, int8_t *output);
void iotsim_relu6_s8(const iotsim_relu_params_t *p, const int8_t *input, int8_t *output);
void iotsim_add_s8(const iotsim_add_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void iotsim_mul_s8(const iotsim_mul_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void iotsim_concat(const iotsim_concat_params_t *p, const void *const *inputs, void *output);
void iotsim_pad(const iotsim_pad_params_t *p, const void *input, void *output);
void iotsim_quantize_f32_s8(const iotsim_quantize_params_t *p, const float *input, int8_t *output);
void iotsim_requantize_s8(const iotsim_requantize_params_t *p, const int8_t *input, int8_t *output);
void iotsim_dequantize_s8_f32(const iotsim_dequantize_params_t *p, const int8_t *input, float *output);
/* RESHAPE, EXPAND_DIMS, SQUEEZE: the bytes unchanged (no copy when both are the same buffer). */
void iotsim_reshape(const void *input, void *output, uint32_t bytes);
void iotsim_space_to_batch_nd(const iotsim_space_batch_params_t *p, const void *input, void *output);
void iotsim_batch_to_space_nd(const iotsim_space_batch_params_t *p, const void *input, void *output);

#endif
