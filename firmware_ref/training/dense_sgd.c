/* One minibatch SGD step of a dense softmax layer, as a "model" for the reference firmware (main.c):
 * iotsim_model_invoke trains the layer on one batch. iotsim.tinyml.ondevice builds it for each layer
 * size it measures (model.h defines DSGD_BATCH, DSGD_IN, DSGD_OUT), counts the instructions of one step
 * on the emulated Cortex-M and checks the results against a numpy float32 step: the cost of a node
 * training the last dense layer of its model (iotsim.tinyml.federated, DenseHead.loss_and_gradients and
 * local_sgd with one layer). Plain float C99 (the FPU's single precision; expf from newlib's libm, which
 * iotsim.firmware.build links with -lm), no CMSIS-DSP, no unrolling: loops in the order a small firmware
 * library writes them. Under -std=c99 gcc does not contract a*b + c into VFMA, so a MAC is VMUL + VADD.
 *
 * Input (float32 unless said, little-endian, back to back):
 *     x       DSGD_BATCH x DSGD_IN     the layer's input (row-major, one sample per row)
 *     W       DSGD_IN x DSGD_OUT       weights (row-major, DenseHead's layout: z = x W + b)
 *     b       DSGD_OUT                 biases
 *     y       DSGD_BATCH int32         class labels, 0 <= y < DSGD_OUT (otherwise the step returns 1)
 *     lr      1                        learning rate
 * Output:
 *     W'      DSGD_IN x DSGD_OUT       W - lr gW
 *     b'      DSGD_OUT                 b - lr gb
 *     gx      DSGD_BATCH x DSGD_IN     gradient of the mean loss with respect to x (delta W^T, with the
 *                                      W before the update), what the layer below back-propagates
 *
 * The step: z = x W + b; p = softmax(z) (the row's maximum subtracted before expf, then divided by the
 * row's sum: one division per row, a multiplication per element); delta = (p - onehot(y)) / BATCH;
 * gW = x^T delta, gb = sum of delta's rows, gx = delta W^T; W' = W - lr gW, b' = b - lr gb.
 * Multiply-accumulates: BATCH*IN*OUT each for z, gW and gx, IN*OUT for the update.
 */
#include <math.h>
#include <stdint.h>

#include "model.h"

#if !defined(DSGD_BATCH) || !defined(DSGD_IN) || !defined(DSGD_OUT)
#error "model.h must define DSGD_BATCH, DSGD_IN and DSGD_OUT"
#endif

static float delta[DSGD_BATCH * DSGD_OUT]; /* logits, then probabilities, then the loss gradient */

int iotsim_model_invoke(const void *input, void *output)
{
    const float *x = (const float *)input;
    const float *w = x + DSGD_BATCH * DSGD_IN;
    const float *bias = w + DSGD_IN * DSGD_OUT;
    const int32_t *label = (const int32_t *)(bias + DSGD_OUT);
    const float lr = *(const float *)(label + DSGD_BATCH);
    float *w_new = (float *)output;
    float *b_new = w_new + DSGD_IN * DSGD_OUT;
    float *gx = b_new + DSGD_OUT;
    const float inv_n = 1.0f / (float)DSGD_BATCH;

    /* forward pass and softmax cross-entropy gradient, one sample at a time */
    for (int n = 0; n < DSGD_BATCH; n++) {
        const float *xn = x + n * DSGD_IN;
        float *d = delta + n * DSGD_OUT;
        int32_t y = label[n];
        if (y < 0 || y >= DSGD_OUT)
            return 1;
        for (int o = 0; o < DSGD_OUT; o++) {
            float acc = bias[o];
            for (int i = 0; i < DSGD_IN; i++)
                acc += xn[i] * w[i * DSGD_OUT + o];
            d[o] = acc;
        }
        float zmax = d[0];
        for (int o = 1; o < DSGD_OUT; o++)
            zmax = d[o] > zmax ? d[o] : zmax;
        float sum = 0.0f;
        for (int o = 0; o < DSGD_OUT; o++) {
            d[o] = expf(d[o] - zmax);
            sum += d[o];
        }
        float inv_sum = 1.0f / sum;
        for (int o = 0; o < DSGD_OUT; o++)
            d[o] = (d[o] * inv_sum - (o == y ? 1.0f : 0.0f)) * inv_n;
    }

    /* input gradient gx = delta W^T, from the weights before the update */
    for (int n = 0; n < DSGD_BATCH; n++) {
        const float *d = delta + n * DSGD_OUT;
        for (int i = 0; i < DSGD_IN; i++) {
            const float *wi = w + i * DSGD_OUT;
            float acc = 0.0f;
            for (int o = 0; o < DSGD_OUT; o++)
                acc += d[o] * wi[o];
            gx[n * DSGD_IN + i] = acc;
        }
    }

    /* bias and weight gradients, and the SGD update */
    for (int o = 0; o < DSGD_OUT; o++) {
        float g = 0.0f;
        for (int n = 0; n < DSGD_BATCH; n++)
            g += delta[n * DSGD_OUT + o];
        b_new[o] = bias[o] - lr * g;
    }
    for (int i = 0; i < DSGD_IN; i++) {
        for (int o = 0; o < DSGD_OUT; o++) {
            float g = 0.0f;
            for (int n = 0; n < DSGD_BATCH; n++)
                g += x[n * DSGD_IN + i] * delta[n * DSGD_OUT + o];
            w_new[i * DSGD_OUT + o] = w[i * DSGD_OUT + o] - lr * g;
        }
    }
    return 0;
}
