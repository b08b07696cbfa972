/* infer.h: the generator's inference path, lean and fused.
 *
 * For colorizing, only y1 (the full-resolution output) is needed and
 * BatchNorm uses its running statistics, so:
 *  - BN is folded into each conv: W' = W * gamma/sqrt(var+eps) per output
 *    channel, b' = (b - mean) * gamma/sqrt(var+eps) + beta;
 *  - bias, activation and the residual sum are applied to each GEMM block
 *    while it is in cache;
 *  - dec1 and dec0 read their input through nearest x2 upsampling inside
 *    im2col (no upsampled copy), and dec0's blocks go straight through the
 *    shared head (1x1 conv + tanh), so dec0's 64 full-resolution channels are
 *    never stored; the H/2 and H/4 heads are skipped.
 * Two ping-pong buffers hold everything: about 48 floats per input pixel for
 * the default config (F=32, K=64), against ~190 for the training path.
 *
 * Results equal generator_forward(..., training=0)'s y1 up to float rounding
 * (folding reorders products), and, like it, do not depend on the image size
 * or on the thread count: tiled inference is exact.
 */
#ifndef SPYNCO_INFER_H
#define SPYNCO_INFER_H

#include "nn/networks.h"

typedef struct {
    float *weight, *bias; /* BN folded in */
    int in_ch, out_ch, kernel, stride, pad, upsample_before;
    Activation act;
} FusedConv;

typedef struct {
    ModelConfig cfg;
    int num_units;
    FusedConv *units; /* G's units in order; the last is the head */
    Arena weights;
} InferModel;

int infer_model_init(InferModel *m, const Network *g, char *err, size_t err_size);
void infer_model_free(InferModel *m);

typedef struct {
    int h, w, threads;
    Arena arena;
    float *buf_a, *buf_b, *scratch;
} InferWork;

/* For inputs of h x w (multiples of 4), run by up to `threads` OpenMP threads. */
int infer_work_init(InferWork *work, const InferModel *m, int h, int w, char *err,
                    size_t err_size);
void infer_work_free(InferWork *work);

/* gray [1, h, w] in [-1, 1] -> rgb [3, h, w] in [-1, 1] (y1). */
void generator_infer(const InferModel *m, InferWork *work, const float *gray, float *rgb);

/* The luminance-preserving option: makes H_t(rgb) equal the input gray by
 * adding (gray - H_t(rgb)) / (wR + wG + wB) to all three channels (the
 * weights sum to 1, so in effect the difference; the division keeps it exact
 * for weights that sum to 1 only within rounding). Both in the network's
 * [-1, 1] space, count pixels; the 8-bit conversion clamps afterwards, so
 * saturated pixels keep their luminance only up to the clamp. */
void keep_luminance(float *rgb, const float *gray, const float w[3], size_t count);

#endif
