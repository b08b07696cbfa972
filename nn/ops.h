/* ops.h: the element-wise, normalisation, resampling and loss layers of
 * SpyncoGAN, as pairs of plain functions (llm.c style).
 *
 * Conventions, for every pair:
 *  - arguments are outputs first, then inputs, then sizes;
 *  - tensors are NCHW float32; `bc` is batch*channels, `hw` is height*width;
 *  - the forward stores what the backward needs in buffers the caller owns;
 *  - the backward ACCUMULATES (+=) into d(input) and parameter gradients, so a
 *    tensor used twice (residuals, the shared head, the pyramid) just receives
 *    two backward calls.
 * Loss forwards return the loss as a double; loss backwards add
 * scale * d(loss)/d(input), where scale is the loss weight (lambda).
 * Semantics follow PyTorch (BatchNorm2d, F.l1_loss, F.mse_loss, Adam).
 */
#ifndef SPYNCO_OPS_H
#define SPYNCO_OPS_H

#include <stddef.h>

/* Sum of x[0..n) in double, in a fixed order that vectorises (BatchNorm's
 * statistics, conv bias gradients). */
double sum_floats(const float *x, int n);

/* ---- activations ------------------------------------------------------ */
void relu_forward(float *out, const float *in, size_t n);
/* Uses the forward's output: the gradient passes where out > 0. */
void relu_backward(float *din, const float *dout, const float *out, size_t n);
void leaky_relu_forward(float *out, const float *in, float slope, size_t n);
void leaky_relu_backward(float *din, const float *dout, const float *out, float slope, size_t n);
/* x[0 .. n) = 0, over the threads when large (tens of MB are more than one
 * core's store bandwidth) */
void zero_floats(float *x, size_t n);
void tanh_forward(float *out, const float *in, size_t n);
/* The same on one thread (for callers inside their own parallel jobs); out
 * may be in. Absolute error below 1.9e-7 (a polynomial, not libm's tanhf). */
void tanh_span(float *out, const float *in, size_t n);
void tanh_backward(float *din, const float *dout, const float *out, size_t n);

/* ---- BatchNorm2d -------------------------------------------------------
 * Training mode normalises by the batch's statistics (biased variance),
 * stores them in mean/rstd (per channel) and updates the running statistics
 * with momentum, using the unbiased variance, as PyTorch does. Eval mode uses
 * the running statistics (and still fills mean/rstd, so one backward serves
 * both). in and out may be the same buffer only in eval mode.
 *
 * Synchronised BatchNorm: in data-parallel training each replica holds a
 * slice of the batch, and the statistics must be those of the whole batch.
 * Given a BnSync, the per-channel sums (and element counts) go through
 * sync->sum, which adds them up over the replicas: the forward's sums of x
 * and x^2 (one pass, in double), the backward's sums of dy and dy*xhat. dgamma
 * and dbeta still receive the local sums (the caller sums parameter
 * gradients over the replicas itself). With sync NULL the batch is whole.
 * stats is scratch of BN_STATS_DOUBLES(ch) doubles. */
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
typedef struct {
    /* values[i] = the sum of values[i] over every replica; all call it in the same order */
    void (*sum)(double *values, int count, void *ctx);
    void *ctx;
} BnSync;
#define BN_STATS_DOUBLES(ch) (2 * (size_t)(ch) + 1)
void batchnorm_forward(float *out, float *mean, float *rstd, float *running_mean,
                       float *running_var, const float *in, const float *gamma, const float *beta,
                       int batch, int ch, int hw, int training, const BnSync *sync, double *stats);
void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd, const float *gamma,
                        int batch, int ch, int hw, int training, const BnSync *sync,
                        double *stats);

/* BatchNorm2d followed by an activation, in one pass over the data each way:
 * out = act(BN(in)), act(y) = y > 0 ? y : slope * y (slope 0: ReLU, 0.2:
 * LeakyReLU, 1: none). Arguments and statistics as batchnorm_forward; in and
 * out must differ. The backward takes the activation's output gradient dout
 * (the activation's derivative it recomputes from in, gamma and beta, as the
 * forward computed it: a pass reads two arrays, not three), and STORES d(in)
 * (din is overwritten, unlike the other backwards: it is the conv output's
 * own gradient, so nobody has to zero it first); dgamma and dbeta
 * accumulate, and so does dsum (if not NULL), the per-channel sum of d(in):
 * the gradient of the conv's bias, taken while d(in) is in cache. */
void batchnorm_act_forward(float *out, float *mean, float *rstd, float *running_mean,
                           float *running_var, const float *in, const float *gamma,
                           const float *beta, float slope, int batch, int ch, int hw, int training,
                           const BnSync *sync, double *stats);
void batchnorm_act_backward(float *din, float *dgamma, float *dbeta, float *dsum, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, float slope, int batch, int ch,
                            int hw, int training, const BnSync *sync, double *stats);

/* ---- resampling ------------------------------------------------------- */
/* Nearest-neighbour x2: in [bc, h, w] -> out [bc, 2h, 2w]. */
void upsample2x_forward(float *out, const float *in, int bc, int h, int w);
void upsample2x_backward(float *din, const float *dout, int bc, int h, int w);
/* Average pooling by `factor` (kernel = stride = factor): in [bc, h, w] ->
 * out [bc, h/factor, w/factor]; h and w must be multiples of factor. */
void avgpool_forward(float *out, const float *in, int bc, int h, int w, int factor);
void avgpool_backward(float *din, const float *dout, int bc, int h, int w, int factor);

/* ---- the handcrafted translation H_t and Sobel ---------------------------
 * H_t: gray = w[0]*R + w[1]*G + w[2]*B, rgb [batch, 3, hw] -> gray [batch, 1, hw]. */
void ht_forward(float *gray, const float *rgb, const float w[3], int batch, int hw);
void ht_backward(float *drgb, const float *dgray, const float w[3], int batch, int hw);
/* Luminance lock: out = rgb + (gray - H_t(rgb)) / S in every channel, S =
 * wR + wG + wB (1, so in effect the difference; dividing keeps H_t(out) =
 * gray exact when the stored weights sum to 1 only within rounding): the
 * image keeps the input's luminance and the network only decides the
 * chroma. colorize --keep-luminance and train --keep-luminance use it. The
 * backward maps d(out) to d(rgb) = d(out) - w/S * sum_c d(out)_c (+=); gray
 * is an input, not learned. out may be rgb (in place). In [-1, 1] space; the
 * 8-bit conversion clamps afterwards. */
void luminance_lock_forward(float *out, const float *rgb, const float *gray, const float w[3], int batch,
                            int hw);
void luminance_lock_backward(float *drgb, const float *dout, const float w[3], int batch, int hw);
/* The forward on n pixels whose colour planes lie `plane` floats apart
 * (a row of a larger image). */
void luminance_lock_pixels(float *out, const float *rgb, const float *gray, const float w[3],
                           size_t plane, int n);
/* Sobel: 1-channel in [batch, 1, h, w] -> out [batch, 2, h-2, w-2] holding
 * (gx, gy), the unnormalised 3x3 kernels applied without padding, as
 * F.conv2d would with its default padding 0. */
void sobel_forward(float *out, const float *in, int batch, int h, int w);
void sobel_backward(float *din, const float *dout, int batch, int h, int w);

/* ---- losses (means over the n elements) -------------------------------- */
double l1_loss_forward(const float *a, const float *b, size_t n);
/* da += scale * sign(a - b) / n (sign(0) = 0, as PyTorch). */
void l1_loss_backward(float *da, const float *a, const float *b, size_t n, float scale);
/* LSGAN: mean((x - target)^2) against a constant target (1 real, 0 fake). */
double mse_const_forward(const float *x, float target, size_t n);
void mse_const_backward(float *dx, const float *x, float target, size_t n, float scale);

/* ---- Adam (PyTorch's, no weight decay) ----------------------------------
 * step is the 1-based step count after this update (bias correction). */
typedef struct {
    float lr, beta1, beta2, eps;
} AdamConfig;
void adam_update(float *param, float *m, float *v, const float *grad, size_t n,
                 const AdamConfig *cfg, long step);

#endif
