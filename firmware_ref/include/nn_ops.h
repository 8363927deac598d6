/* int8 neural-network kernels of the reference firmware: CONV_2D, DEPTHWISE_CONV_2D,
 * FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN.
 *
 * Each kernel is TFLite Micro's reference int8 kernel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/ *.h, reference/reduce.h), with the
 * same arithmetic and therefore the same results bit for bit. All parameters are integers
 * computed at export time by iotsim/firmware/ops_nn.py exactly as TFLM's Prepare() does.
 * Tensors are NHWC, row-major; filters OHWI (conv), 1HWO (depthwise), [out, in] (FC).
 *
 * Requantization: out = MultiplyByQuantizedMultiplier(acc, mult[c], shift[c]) + output_offset,
 * shift > 0 a left shift; per_channel = 0 means one multiplier/shift for all channels.
 * C99, no allocation, no library calls.
 */
#ifndef IOTSIM_NN_OPS_H
#define IOTSIM_NN_OPS_H

#include <stdint.h>

typedef struct {
    int32_t batches, in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filt_h, filt_w, filt_in_c; /* filt_in_c < in_c: grouped convolution */
    int32_t filters_per_group;         /* out_c / (in_c / filt_in_c) */
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_offset;  /* -input zero point */
    int32_t output_offset; /* output zero point */
    int32_t act_min, act_max;
    int32_t per_channel;
    const int32_t *out_mult;
    const int32_t *out_shift;
} iotsim_conv_params_t;

typedef struct {
    int32_t batches, in_h, in_w, in_c;
    int32_t out_h, out_w, depth_multiplier; /* out_c = in_c * depth_multiplier */
    int32_t filt_h, filt_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int32_t *out_mult;
    const int32_t *out_shift;
} iotsim_dwconv_params_t;

typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t input_offset;
    int32_t filter_offset; /* -weights zero point (per-tensor weights only; 0 per channel) */
    int32_t output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;
    const int32_t *out_mult;
    const int32_t *out_shift;
} iotsim_fc_params_t;

typedef struct {
    int32_t batches, in_h, in_w, depth;
    int32_t out_h, out_w;
    int32_t filt_h, filt_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} iotsim_pool_params_t;

/* MEAN: the input seen as kept loops (output order) around reduced loops, each (size, input
 * stride in elements), outermost first, unused loops (1, 0). */
typedef struct {
    int32_t kept_size[4], kept_stride[4];
    int32_t red_size[4], red_stride[4];
    int32_t num_elements; /* product of red_size */
    int32_t input_zp, output_zp;
    int32_t multiplier, shift; /* 1/num_elements already folded in */
} iotsim_mean_params_t;

/* bias may be a null pointer (no bias) */
void iotsim_conv_s8(const iotsim_conv_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output);
void iotsim_depthwise_conv_s8(const iotsim_dwconv_params_t *p, const int8_t *input, const int8_t *filter,
                              const int32_t *bias, int8_t *output);
void iotsim_fully_connected_s8(const iotsim_fc_params_t *p, const int8_t *input, const int8_t *filter,
                               const int32_t *bias, int8_t *output);
void iotsim_avg_pool_s8(const iotsim_pool_params_t *p, const int8_t *input, int8_t *output);
void iotsim_max_pool_s8(const iotsim_pool_params_t *p, const int8_t *input, int8_t *output);
void iotsim_mean_s8(const iotsim_mean_params_t *p, const int8_t *input, int8_t *output);

#endif
