#include "nn/ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Element-wise loops are worth threading only when large. */
#define PAR_MIN 32768

void relu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *din, const float *dout, const float *out, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0.0f) din[i] += dout[i];
}

/* Both written so that they vectorise without branches (see bn_act). */
void leaky_relu_forward(float *out, const float *in, float slope, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = (in[i] > 0.0f ? in[i] : 0.0f) + slope * (in[i] < 0.0f ? in[i] : 0.0f);
}

void leaky_relu_backward(float *din, const float *dout, const float *out, float slope, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float k = out[i] > 0.0f ? 1.0f : slope;
        din[i] += k * dout[i];
    }
}

void zero_floats(float *x, size_t n) {
    size_t span = (size_t)1 << 16;
#pragma omp parallel for schedule(static) if (n > 16 * span)
    for (size_t i = 0; i < n; i += span) memset(x + i, 0, (n - i < span ? n - i : span) * sizeof(float));
}

/* tanh(x) = 1 - 2 / (e^2x + 1), e^2x = 2^k * 2^f (k = round(2x log2 e), |f| <=
 * 1/2, 2^f by its Taylor series to degree 7, relative error < 1e-8), for
 * |x| <= 9 (beyond, tanh is +-1 in float): plain arithmetic that
 * vectorises, where libm's tanhf is a call per value. Absolute error below
 * 1.9e-7 over every float in [-9, 9] (against double tanh). */
static inline float tanh_fast(float x) {
    float y = x * 2.88539008f;     /* 2x log2(e) */
    int k = (int)(y + 64.5f) - 64; /* round(y): the sum is positive, so truncation floors */
    float f = (y - (float)k) * 0.693147181f, p = 1.0f / 5040.0f;
    p = p * f + 1.0f / 720.0f, p = p * f + 1.0f / 120.0f, p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f, p = p * f + 0.5f, p = p * f + 1.0f, p = p * f + 1.0f;
    union { int32_t i; float f; } two_k = {.i = (k + 127) << 23};
    return 1.0f - 2.0f / (p * two_k.f + 1.0f);
}

void tanh_span(float *out, const float *in, size_t n) {
    /* clamped to tanh_fast's range first; stored selects vectorise */
    for (size_t i = 0; i < n; i++) out[i] = in[i] < 9.0f ? in[i] : 9.0f;
    for (size_t i = 0; i < n; i++) out[i] = out[i] > -9.0f ? out[i] : -9.0f;
    for (size_t i = 0; i < n; i++) out[i] = tanh_fast(out[i]);
}

void tanh_forward(float *out, const float *in, size_t n) {
    enum { SPAN = 4096 };
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i0 = 0; i0 < n; i0 += SPAN) tanh_span(out + i0, in + i0, n - i0 < SPAN ? n - i0 : SPAN);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* Double sums run in BN_LANES independent partial sums, added in a fixed
 * order at the end: unlike one running double sum this vectorises, and the
 * result still depends only on the data (not on threads). 32: four AVX-512
 * accumulators per sum, whose adds overlap (with 8, one accumulator, the
 * adds' latency bounds the loop: BatchNorm's forward at 128 x 64x64, 1
 * thread, 0.25 -> 0.17 ms). */
#define BN_LANES 32
#define BN_CHUNK 512

/* The per-channel loops of the sums and of BatchNorm are compiled twice, for
 * AVX-512 and the baseline, and the CPU picks at load time: the portable
 * build's SSE2 double sums are latency-bound (BatchNorm was ~8% of a
 * training step). Same operations in the same order, so the same bits. */
#define PER_CPU __attribute__((target_clones("avx512f", "default")))

static double lanes_total(const double *acc) {
    double s = 0.0;
    for (int l = 0; l < BN_LANES; l++) s += acc[l];
    return s;
}

PER_CPU double sum_floats(const float *x, int n) {
    double acc[BN_LANES] = {0}, tail = 0.0;
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int l = 0; l < BN_LANES; l++) acc[l] += x[i + l];
    for (; i < n; i++) tail += x[i];
    return lanes_total(acc) + tail;
}

/* *sum += sum of x, *squares += sum of x^2, in one pass */
PER_CPU static void sum_and_squares(const float *x, int n, double *sum, double *squares) {
    double acc[BN_LANES] = {0}, sq[BN_LANES] = {0}, tail = 0.0, tail_sq = 0.0;
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int l = 0; l < BN_LANES; l++) {
            double v = x[i + l];
            acc[l] += v, sq[l] += v * v;
        }
    for (; i < n; i++) tail += x[i], tail_sq += (double)x[i] * x[i];
    *sum += lanes_total(acc) + tail, *squares += lanes_total(sq) + tail_sq;
}

/* act(y) = y > 0 ? y : slope * y, written as max(y, 0) + slope * min(y, 0)
 * (the same value; ReLU gives 0, not -0) so that it vectorises without
 * branches: the select form with a multiply in one arm does not. */
static inline float bn_act(float y, float slope) {
    return (y > 0.0f ? y : 0.0f) + slope * (y < 0.0f ? y : 0.0f);
}
/* The activation's derivative at y = in * scale + shift, recomputed from the
 * input as the forward computed it (the same bits: the same sign), so that
 * the backward need not read the output too. */
static inline float bn_act_grad(float in, float scale, float shift, float slope) {
    return in * scale + shift > 0.0f ? 1.0f : slope;
}

/* channel c's normalisation as one multiply-add, y = in * scale + shift
 * (beta NULL: 0): the forward's, and the backward's for the activation's
 * derivative, which must see the same bits */
static void bn_scale_shift(float *scale, float *shift, const float *gamma, const float *beta,
                           const float *mean, const float *rstd, int c) {
    *scale = gamma[c] * rstd[c];
    *shift = (beta ? beta[c] : 0.0f) - mean[c] * *scale;
}

/* out = act(in * scale + shift), one channel plane */
PER_CPU static void bn_channel_apply(float *out, const float *in, float scale, float shift,
                                     float slope, int n) {
    if (slope == 1.0f)
        for (int i = 0; i < n; i++) out[i] = in[i] * scale + shift;
    else
        for (int i = 0; i < n; i++) out[i] = bn_act(in[i] * scale + shift, slope);
}

/* mean, rstd and the running statistics of channel c from its sums */
static void bn_channel_stats(float *mean, float *rstd, float *running_mean, float *running_var,
                             double sum, double squares, double count, int c) {
    double mu = sum / count;
    double var = squares / count - mu * mu;
    if (var < 0.0) var = 0.0; /* a constant channel's rounding */
    mean[c] = (float)mu;
    rstd[c] = (float)(1.0 / sqrt(var + BN_EPS));
    double unbiased = count > 1 ? var * count / (count - 1) : var;
    running_mean[c] = (1.0f - BN_MOMENTUM) * running_mean[c] + BN_MOMENTUM * (float)mu;
    running_var[c] = (1.0f - BN_MOMENTUM) * running_var[c] + BN_MOMENTUM * (float)unbiased;
}

/* sums of x and x^2 over channel c's planes: in double (each float's square
 * is exact there, and E[x^2] - E[x]^2 loses ~1e-16 * mean^2 / var of the
 * variance, nothing at float precision) */
static void bn_channel_sums(double *sum, double *squares, const float *in, int batch, int ch,
                            int hw, int c) {
    *sum = 0.0, *squares = 0.0;
    for (int b = 0; b < batch; b++) sum_and_squares(in + ((size_t)b * ch + c) * hw, hw, sum, squares);
}

static void bn_channel_forward(float *out, const float *in, const float *gamma, const float *beta,
                               const float *mean, const float *rstd, float slope, int batch, int ch,
                               int hw, int c) {
    float scale, shift;
    bn_scale_shift(&scale, &shift, gamma, beta, mean, rstd, c);
    for (int b = 0; b < batch; b++) {
        size_t off = ((size_t)b * ch + c) * hw;
        bn_channel_apply(out + off, in + off, scale, shift, slope, hw);
    }
}

static void bn_forward(float *out, float *mean, float *rstd, float *running_mean,
                       float *running_var, const float *in, const float *gamma, const float *beta,
                       float slope, int batch, int ch, int hw, int training, const BnSync *sync,
                       double *stats) {
    double count = (double)batch * hw;
    if (training && !sync) { /* each channel whole in one pass of the threads: its planes are
                                still in cache when they are normalised */
#pragma omp parallel for schedule(static)
        for (int c = 0; c < ch; c++) {
            double sum, squares;
            bn_channel_sums(&sum, &squares, in, batch, ch, hw, c);
            bn_channel_stats(mean, rstd, running_mean, running_var, sum, squares, count, c);
            bn_channel_forward(out, in, gamma, beta, mean, rstd, slope, batch, ch, hw, c);
        }
        return;
    }
    if (training) { /* the per-channel sums add up over the replicas first */
        double *mu = stats, *sq = stats + ch;
#pragma omp parallel for schedule(static)
        for (int c = 0; c < ch; c++) bn_channel_sums(&mu[c], &sq[c], in, batch, ch, hw, c);
        stats[2 * ch] = count;
        sync->sum(stats, 2 * ch + 1, sync->ctx);
        for (int c = 0; c < ch; c++)
            bn_channel_stats(mean, rstd, running_mean, running_var, mu[c], sq[c], stats[2 * ch], c);
    } else {
        for (int c = 0; c < ch; c++) {
            mean[c] = running_mean[c];
            rstd[c] = 1.0f / sqrtf(running_var[c] + BN_EPS);
        }
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < ch; c++) bn_channel_forward(out, in, gamma, beta, mean, rstd, slope, batch, ch, hw, c);
}

/* *s += sum of k * dy, *sx += sum of k * dy * (x - m) * r over one channel
 * plane, k the activation's derivative (bn_act_grad). In chunks: the float
 * products first, then their double sums, each vectorised. */
PER_CPU static void bn_channel_grad_sums(double *s, double *sx, const float *dy, const float *x,
                                         float m, float r, float scale, float shift, float slope,
                                         int n) {
    float g[BN_CHUNK], gx[BN_CHUNK];
    for (int i0 = 0; i0 < n; i0 += BN_CHUNK) {
        int len = n - i0 < BN_CHUNK ? n - i0 : BN_CHUNK;
        for (int i = 0; i < len; i++) {
            float k = bn_act_grad(x[i0 + i], scale, shift, slope); /* in a variable: vectorises */
            g[i] = k * dy[i0 + i];
            gx[i] = g[i] * ((x[i0 + i] - m) * r);
        }
        *s += sum_floats(g, len), *sx += sum_floats(gx, len);
    }
}

/* d(input) of one channel plane: dx (+)= g * (k * dy - mean_dy - xhat *
 * mean_dy_xhat), g = gamma * rstd (also the forward's scale, with shift: k);
 * with dsum, *dsum += the sum of dx (not accumulating). */
PER_CPU static void bn_channel_din(float *dx, double *dsum, const float *dy, const float *x,
                                   float g, float m, float r, float shift, float mean_dy,
                                   float mean_dy_xhat, float slope, int accumulate, int n) {
    if (accumulate) {
        for (int i = 0; i < n; i++) dx[i] += g * (dy[i] - mean_dy - (x[i] - m) * r * mean_dy_xhat);
        return;
    }
    for (int i0 = 0; i0 < n; i0 += BN_CHUNK) { /* dsum: each chunk summed while in L1 */
        int len = n - i0 < BN_CHUNK ? n - i0 : BN_CHUNK;
        for (int i = i0; i < i0 + len; i++) {
            float k = bn_act_grad(x[i], g, shift, slope);
            dx[i] = g * (k * dy[i] - mean_dy - (x[i] - m) * r * mean_dy_xhat);
        }
        if (dsum) *dsum += sum_floats(dx + i0, len);
    }
}

/* BN's backward over one channel c: its two gradient sums (into stats, and
 * dgamma, dbeta), then, given the totals, d(input) */
typedef struct {
    float *din, *dgamma, *dbeta, *dsum;
    const float *dout, *beta, *in, *mean, *rstd, *gamma;
    float slope;
    int accumulate, batch, ch, hw, training;
} BnBackward;

static void bn_channel_backward_sums(const BnBackward *k, double *stats, int c) {
    double s = 0.0, sx = 0.0;
    float m = k->mean[c], r = k->rstd[c], scale, shift;
    bn_scale_shift(&scale, &shift, k->gamma, k->beta, k->mean, k->rstd, c);
    for (int b = 0; b < k->batch; b++) {
        size_t off = ((size_t)b * k->ch + c) * k->hw;
        bn_channel_grad_sums(&s, &sx, k->dout + off, k->in + off, m, r, scale, shift, k->slope, k->hw);
    }
    stats[c] = s, stats[k->ch + c] = sx;
    if (k->dgamma) k->dgamma[c] += (float)sx;
    if (k->dbeta) k->dbeta[c] += (float)s;
}

static void bn_channel_backward_din(const BnBackward *k, const double *stats, double count, int c) {
    float m = k->mean[c], r = k->rstd[c], g, shift; /* g: gamma * rstd, the scale */
    bn_scale_shift(&g, &shift, k->gamma, k->beta, k->mean, k->rstd, c);
    /* Training: the batch statistics depend on the input too, through the whole batch. */
    float mean_dy = k->training ? (float)(stats[c] / count) : 0.0f;
    float mean_dy_xhat = k->training ? (float)(stats[k->ch + c] / count) : 0.0f;
    double s = 0.0;
    for (int b = 0; b < k->batch; b++) {
        size_t off = ((size_t)b * k->ch + c) * k->hw;
        bn_channel_din(k->din + off, k->dsum ? &s : NULL, k->dout + off, k->in + off, g, m, r,
                       shift, mean_dy, mean_dy_xhat, k->slope, k->accumulate, k->hw);
    }
    if (k->dsum) k->dsum[c] += (float)s;
}

/* With beta set, dout is the activation's output gradient (its derivative
 * recomputed from in, gamma and beta); with beta NULL, dout is BN's own
 * output gradient (slope 1 then makes act_grad the identity, with no branch
 * in the loops). accumulate: din += (else =). */
static void bn_backward(float *din, float *dgamma, float *dbeta, float *dsum, const float *dout,
                        const float *beta, float slope, int accumulate, const float *in,
                        const float *mean, const float *rstd, const float *gamma, int batch, int ch,
                        int hw, int training, const BnSync *sync, double *stats) {
    BnBackward k = {.din = din, .dgamma = dgamma, .dbeta = dbeta, .dsum = dsum, .dout = dout,
                    .beta = beta, .in = in, .mean = mean, .rstd = rstd, .gamma = gamma,
                    .slope = beta ? slope : 1.0f, .accumulate = accumulate, .batch = batch,
                    .ch = ch, .hw = hw, .training = training};
    double count = (double)batch * hw;
    if (!din || !training || !sync) { /* each channel whole in one pass of the threads: its
                                         planes are still in cache for d(input) */
#pragma omp parallel for schedule(static)
        for (int c = 0; c < ch; c++) {
            bn_channel_backward_sums(&k, stats, c);
            if (din) bn_channel_backward_din(&k, stats, count, c);
        }
        return;
    }
    /* the sums add up over the replicas first */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < ch; c++) bn_channel_backward_sums(&k, stats, c);
    stats[2 * ch] = count;
    sync->sum(stats, 2 * ch + 1, sync->ctx);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < ch; c++) bn_channel_backward_din(&k, stats, stats[2 * ch], c);
}

void batchnorm_forward(float *out, float *mean, float *rstd, float *running_mean,
                       float *running_var, const float *in, const float *gamma, const float *beta,
                       int batch, int ch, int hw, int training, const BnSync *sync, double *stats) {
    bn_forward(out, mean, rstd, running_mean, running_var, in, gamma, beta, 1.0f, batch, ch, hw,
               training, sync, stats);
}

void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd, const float *gamma,
                        int batch, int ch, int hw, int training, const BnSync *sync,
                        double *stats) {
    bn_backward(din, dgamma, dbeta, NULL, dout, NULL, 1.0f, 1, in, mean, rstd, gamma, batch, ch, hw,
                training, sync, stats);
}

void batchnorm_act_forward(float *out, float *mean, float *rstd, float *running_mean,
                           float *running_var, const float *in, const float *gamma,
                           const float *beta, float slope, int batch, int ch, int hw, int training,
                           const BnSync *sync, double *stats) {
    bn_forward(out, mean, rstd, running_mean, running_var, in, gamma, beta, slope, batch, ch, hw,
               training, sync, stats);
}

void batchnorm_act_backward(float *din, float *dgamma, float *dbeta, float *dsum, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, float slope, int batch, int ch,
                            int hw, int training, const BnSync *sync, double *stats) {
    bn_backward(din, dgamma, dbeta, dsum, dout, beta, slope, 0, in, mean, rstd, gamma, batch, ch, hw,
                training, sync, stats);
}

void upsample2x_forward(float *out, const float *in, int bc, int h, int w) {
    int ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)bc * h * w > PAR_MIN)
    for (int p = 0; p < bc; p++) {
        const float *x = in + (size_t)p * h * w;
        float *y = out + (size_t)p * 4 * h * w;
        for (int i = 0; i < h; i++) {
            float *row = y + (size_t)2 * i * ow;
            for (int j = 0; j < w; j++) row[2 * j] = row[2 * j + 1] = x[i * w + j];
            for (int j = 0; j < ow; j++) row[ow + j] = row[j];
        }
    }
}

void upsample2x_backward(float *din, const float *dout, int bc, int h, int w) {
    int ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)bc * h * w > PAR_MIN)
    for (int p = 0; p < bc; p++) {
        float *dx = din + (size_t)p * h * w;
        const float *dy = dout + (size_t)p * 4 * h * w;
        for (int i = 0; i < h; i++) {
            const float *r0 = dy + (size_t)2 * i * ow, *r1 = r0 + ow;
            for (int j = 0; j < w; j++)
                dx[i * w + j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
        }
    }
}

void avgpool_forward(float *out, const float *in, int bc, int h, int w, int factor) {
    int oh = h / factor, ow = w / factor;
    float inv = 1.0f / (float)(factor * factor);
#pragma omp parallel for schedule(static) if ((size_t)bc * h * w > PAR_MIN)
    for (int p = 0; p < bc; p++) {
        const float *x = in + (size_t)p * h * w;
        float *y = out + (size_t)p * oh * ow;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                float s = 0.0f;
                for (int u = 0; u < factor; u++)
                    for (int v = 0; v < factor; v++)
                        s += x[(size_t)(i * factor + u) * w + j * factor + v];
                y[i * ow + j] = s * inv;
            }
    }
}

void avgpool_backward(float *din, const float *dout, int bc, int h, int w, int factor) {
    int oh = h / factor, ow = w / factor;
    float inv = 1.0f / (float)(factor * factor);
#pragma omp parallel for schedule(static) if ((size_t)bc * h * w > PAR_MIN)
    for (int p = 0; p < bc; p++) {
        float *dx = din + (size_t)p * h * w;
        const float *dy = dout + (size_t)p * oh * ow;
        for (int i = 0; i < oh * factor; i++)
            for (int j = 0; j < ow * factor; j++)
                dx[(size_t)i * w + j] += dy[(i / factor) * ow + j / factor] * inv;
    }
}

void ht_forward(float *gray, const float *rgb, const float w[3], int batch, int hw) {
    for (int b = 0; b < batch; b++) {
        const float *r = rgb + (size_t)b * 3 * hw, *g = r + hw, *bl = g + hw;
        float *y = gray + (size_t)b * hw;
        for (int i = 0; i < hw; i++) y[i] = w[0] * r[i] + w[1] * g[i] + w[2] * bl[i];
    }
}

void ht_backward(float *drgb, const float *dgray, const float w[3], int batch, int hw) {
    for (int b = 0; b < batch; b++) {
        float *dr = drgb + (size_t)b * 3 * hw, *dg = dr + hw, *db = dg + hw;
        const float *dy = dgray + (size_t)b * hw;
        for (int i = 0; i < hw; i++) {
            dr[i] += w[0] * dy[i];
            dg[i] += w[1] * dy[i];
            db[i] += w[2] * dy[i];
        }
    }
}

void luminance_lock_pixels(float *out, const float *rgb, const float *gray, const float w[3],
                           size_t plane, int n) {
    float sum = w[0] + w[1] + w[2];
    const float *r = rgb, *g = r + plane, *bl = g + plane;
    for (int i = 0; i < n; i++) {
        float shift = (gray[i] - (w[0] * r[i] + w[1] * g[i] + w[2] * bl[i])) / sum;
        out[i] = r[i] + shift;
        out[plane + i] = g[i] + shift;
        out[2 * plane + i] = bl[i] + shift;
    }
}

void luminance_lock_forward(float *out, const float *rgb, const float *gray, const float w[3], int batch,
                            int hw) {
    for (int b = 0; b < batch; b++)
        luminance_lock_pixels(out + (size_t)b * 3 * hw, rgb + (size_t)b * 3 * hw,
                              gray + (size_t)b * hw, w, (size_t)hw, hw);
}

void luminance_lock_backward(float *drgb, const float *dout, const float w[3], int batch, int hw) {
    float total = w[0] + w[1] + w[2], s[3] = {w[0] / total, w[1] / total, w[2] / total};
    for (int b = 0; b < batch; b++) {
        float *dr = drgb + (size_t)b * 3 * hw;
        const float *d = dout + (size_t)b * 3 * hw;
        for (int i = 0; i < hw; i++) {
            float sum = d[i] + d[hw + i] + d[2 * hw + i];
            for (int c = 0; c < 3; c++) dr[(size_t)c * hw + i] += d[(size_t)c * hw + i] - s[c] * sum;
        }
    }
}

/* gx = [[-1,0,1],[-2,0,2],[-1,0,1]], gy its transpose (cross-correlation, as conv2d). */
static const float SOBEL_X[9] = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
static const float SOBEL_Y[9] = {-1, -2, -1, 0, 0, 0, 1, 2, 1};

void sobel_forward(float *out, const float *in, int batch, int h, int w) {
    int oh = h - 2, ow = w - 2;
    for (int b = 0; b < batch; b++) {
        const float *x = in + (size_t)b * h * w;
        float *gx = out + (size_t)b * 2 * oh * ow, *gy = gx + (size_t)oh * ow;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                float sx = 0.0f, sy = 0.0f;
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        float p = x[(size_t)(i + u) * w + j + v];
                        sx += SOBEL_X[u * 3 + v] * p;
                        sy += SOBEL_Y[u * 3 + v] * p;
                    }
                gx[i * ow + j] = sx;
                gy[i * ow + j] = sy;
            }
    }
}

void sobel_backward(float *din, const float *dout, int batch, int h, int w) {
    int oh = h - 2, ow = w - 2;
    for (int b = 0; b < batch; b++) {
        float *dx = din + (size_t)b * h * w;
        const float *dgx = dout + (size_t)b * 2 * oh * ow, *dgy = dgx + (size_t)oh * ow;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++)
                        dx[(size_t)(i + u) * w + j + v] +=
                            SOBEL_X[u * 3 + v] * dgx[i * ow + j] + SOBEL_Y[u * 3 + v] * dgy[i * ow + j];
    }
}

double l1_loss_forward(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - (double)b[i]);
    return s / (double)n;
}

void l1_loss_backward(float *da, const float *a, const float *b, size_t n, float scale) {
    float g = scale / (float)n;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        da[i] += d > 0.0f ? g : (d < 0.0f ? -g : 0.0f);
    }
}

double mse_const_forward(const float *x, float target, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - target;
        s += d * d;
    }
    return s / (double)n;
}

void mse_const_backward(float *dx, const float *x, float target, size_t n, float scale) {
    float g = 2.0f * scale / (float)n;
    for (size_t i = 0; i < n; i++) dx[i] += g * (x[i] - target);
}

void adam_update(float *param, float *m, float *v, const float *grad, size_t n,
                 const AdamConfig *cfg, long step) {
    double bc1 = 1.0 - pow(cfg->beta1, (double)step);
    double bc2 = 1.0 - pow(cfg->beta2, (double)step);
    float step_size = (float)(cfg->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = cfg->beta1 * m[i] + (1.0f - cfg->beta1) * grad[i];
        v[i] = cfg->beta2 * v[i] + (1.0f - cfg->beta2) * grad[i] * grad[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + cfg->eps;
        param[i] -= step_size * m[i] / denom;
    }
}
