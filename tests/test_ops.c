/* Finite-difference gradient checks for every op in nn/ops.h and nn/conv.h,
 * plus Adam against a double-precision transcription of PyTorch's update. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/conv.h"
#include "nn/gemm.h"
#include "nn/ops.h"
#include "testutil.h"

/* Tolerance: central differences in float with eps 1e-2 on O(1) data; the
 * worst element seen is about 1.4e-4 (BatchNorm in training mode). */
#define EPS 1e-2f
#define RTOL 2e-3
#define SAMPLES 60

static TestRng rng = {12345};

static float *rand_buf(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    test_fill_uniform(&rng, x, n, lo, hi);
    return x;
}

/* Keeps values at least `gap` away from a kink at 0 so +-EPS never crosses it. */
static void avoid_zero(float *x, size_t n, float gap) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < gap) x[i] = x[i] < 0 ? x[i] - gap : x[i] + gap;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void report(const char *what, GradResult r) {
    CHECK(r.failures == 0, "%s: %d of %d elements off, worst relative error %.3g", what, r.failures,
          r.checked, r.worst);
    printf("  %-40s worst %.2e over %d elements\n", what, r.worst, r.checked);
}

/* ---- conv2d ---------------------------------------------------------------- */
typedef struct {
    ConvShape s;
    float *in, *w, *b, *out, *r, *scratch;
} ConvCtx;

static double conv_loss(void *p) {
    ConvCtx *c = p;
    conv2d_forward(c->out, c->in, c->w, c->b, &c->s, c->scratch);
    return dot(c->out, c->r, (size_t)c->s.batch * c->s.out_ch * c->s.out_h * c->s.out_w);
}

/* up: the input (h x w as stored) is read through nearest x2 upsampling. */
static void test_conv_up(int up, int batch, int cin, int h, int w, int cout, int k, int stride,
                         int pad) {
    ConvCtx c;
    c.s = conv_shape(batch, cin, h << up, w << up, cout, k, stride, pad);
    c.s.upsampled = up;
    size_t nin = (size_t)batch * cin * h * w, nw = (size_t)cout * cin * k * k;
    size_t nout = (size_t)batch * cout * c.s.out_h * c.s.out_w;
    c.in = rand_buf(nin, -1, 1);
    c.w = rand_buf(nw, -0.5f, 0.5f);
    c.b = rand_buf(cout, -0.5f, 0.5f);
    c.out = malloc(nout * sizeof(float));
    c.r = rand_buf(nout, -1, 1);
    c.scratch = malloc(conv_scratch_floats(&c.s, 4) * sizeof(float));
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float)),
          *db = calloc(cout, sizeof(float));
    conv2d_forward(c.out, c.in, c.w, c.b, &c.s, c.scratch);
    conv2d_backward(din, dw, db, c.r, c.in, c.w, &c.s, c.scratch);
    char name[96];
    snprintf(name, sizeof name, "conv %s%dx%d s%d p%d %dx%d %d->%d in", up ? "up2 " : "", k, k,
             stride, pad, w, h, cin, cout);
    report(name, gradcheck(conv_loss, &c, c.in, din, nin, SAMPLES, EPS, RTOL));
    snprintf(name, sizeof name, "conv %dx%d s%d p%d weight", k, k, stride, pad);
    report(name, gradcheck(conv_loss, &c, c.w, dw, nw, SAMPLES, EPS, RTOL));
    report("  bias", gradcheck(conv_loss, &c, c.b, db, cout, SAMPLES, EPS, RTOL));

    /* Accumulation: a second backward adds the same again. */
    float *dw2 = malloc(nw * sizeof(float));
    memcpy(dw2, dw, nw * sizeof(float));
    conv2d_backward(NULL, dw2, NULL, c.r, c.in, c.w, &c.s, c.scratch);
    double worst = 0;
    for (size_t i = 0; i < nw; i++) worst = fmax(worst, fabs(dw2[i] - 2 * dw[i]));
    CHECK(worst < 1e-4, "conv backward does not accumulate (off by %g)", worst);
    free(dw2);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.r), free(c.scratch);
    free(din), free(dw), free(db);
}

static void test_conv(int batch, int cin, int h, int w, int cout, int k, int stride, int pad) {
    test_conv_up(0, batch, cin, h, w, cout, k, stride, pad);
}

/* The upsampling conv's phase split against an upsampled copy and the plain conv. */
static void test_conv_upsampled_forward(void) {
    int h = 7, w = 9, cin = 3, cout = 4;
    ConvShape up = conv_shape(2, cin, 2 * h, 2 * w, cout, 3, 1, 1), plain = up;
    up.upsampled = 1;
    size_t nin = (size_t)2 * cin * h * w, nout = (size_t)2 * cout * 4 * h * w;
    float *in = rand_buf(nin, -1, 1), *wt = rand_buf((size_t)cout * cin * 9, -1, 1);
    float *b = rand_buf(cout, -1, 1), *big = malloc(4 * nin * sizeof(float));
    float *out = malloc(nout * sizeof(float)), *ref = malloc(nout * sizeof(float));
    size_t floats_up = conv_scratch_floats(&up, 4), floats_plain = conv_scratch_floats(&plain, 4);
    float *scratch = malloc((floats_up > floats_plain ? floats_up : floats_plain) * sizeof(float));
    upsample2x_forward(big, in, 2 * cin, h, w);
    conv2d_forward(ref, big, wt, b, &plain, scratch);
    conv2d_forward(out, in, wt, b, &up, scratch);
    double worst = 0;
    for (size_t i = 0; i < nout; i++) worst = fmax(worst, fabs((double)out[i] - ref[i]));
    CHECK(worst < 1e-5, "upsampling conv's phases differ from upsample + conv by %g", worst);
    printf("  %-40s max diff %.2e\n", "up2 conv phases vs upsample + conv", worst);
    free(in), free(wt), free(b), free(big), free(out), free(ref), free(scratch);
}

/* out, din and dw: the conv's forward and backward (din and dw start at
 * zero: the backward adds) at 1 thread; the same at 2 threads must give
 * the same bits. */
static void conv_1_and_2_threads(float *out, float *din, float *dw, const float *in,
                                 const float *wt, const float *b, const float *dy,
                                 const ConvShape *s, float *scratch, size_t nin, size_t nout,
                                 size_t nw, const char *what) {
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    conv2d_forward(out, in, wt, b, s, scratch);
    conv2d_backward(din, dw, NULL, dy, in, wt, s, scratch);
    float *out2 = malloc(nout * sizeof(float));
    float *din2 = calloc(nin, sizeof(float)), *dw2 = calloc(nw, sizeof(float));
    omp_set_num_threads(2);
    conv2d_forward(out2, in, wt, b, s, scratch);
    conv2d_backward(din2, dw2, NULL, dy, in, wt, s, scratch);
    omp_set_num_threads(threads);
    CHECK(memcmp(out, out2, nout * sizeof(float)) == 0 && memcmp(din, din2, nin * sizeof(float)) == 0 &&
              memcmp(dw, dw2, nw * sizeof(float)) == 0,
          "%s: 1 and 2 threads give different bits", what);
    free(out2), free(din2), free(dw2);
}

/* The upsampling conv (G's dec1, dec0: four phase convs on Winograd,
 * nn/winograd_phase.h) against upsample + 3x3 conv in double: forward (eval
 * F(2x2, 2x2), or with `training` F(4x4, 2x2)), d(input) and d(weight).
 * Each error is taken relative to the sum of |terms| of that output's sum
 * (the scale of float rounding): a float sum of n terms in any order is
 * within n * 6e-8 of it, ~sqrt(n) * 6e-8 in practice; the Winograd
 * transforms add a few roundings per product, F(4x4, 2x2)'s more (values up
 * to ~8x the terms, thirds and sixths). Bounds ~10x the worst seen at these
 * sizes; a coefficient off by 1e-4 relative gives ~1e-5, an error in a tap,
 * phase or tile edge O(1e-2) or more. Then 1 and 2 threads must give the
 * same bits. */
static void test_conv_upsampled_reference(int batch, int cin, int h, int w, int cout, int training) {
    ConvShape s = conv_shape(batch, cin, 2 * h, 2 * w, cout, 3, 1, 1);
    s.upsampled = 1, s.training = training;
    int oh = 2 * h, ow = 2 * w;
    size_t nin = (size_t)batch * cin * h * w, nw = (size_t)cout * cin * 9;
    size_t nout = (size_t)batch * cout * oh * ow;
    float *in = rand_buf(nin, -1, 1), *wt = rand_buf(nw, -1, 1), *b = rand_buf(cout, -1, 1);
    float *dy = rand_buf(nout, -1, 1), *out = malloc(nout * sizeof(float));
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float));
    float *scratch = malloc(conv_scratch_floats(&s, 4) * sizeof(float));
    conv_1_and_2_threads(out, din, dw, in, wt, b, dy, &s, scratch, nin, nout, nw, "conv up2 3x3");
    /* reference sums and sums of |terms| */
    double *rx = calloc(nin, sizeof(double)), *ax = calloc(nin, sizeof(double));
    double *rw = calloc(nw, sizeof(double)), *aw = calloc(nw, sizeof(double));
    double worst[3] = {0, 0, 0};
    for (int n = 0; n < batch; n++)
        for (int co = 0; co < cout; co++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    size_t o = (((size_t)n * cout + co) * oh + y) * ow + x;
                    double acc = b[co], abs = fabs(b[co]), g = dy[o];
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int uy = y - 1 + ky, ux = x - 1 + kx;
                                if (uy < 0 || ux < 0 || uy >= oh || ux >= ow) continue;
                                size_t i = (((size_t)n * cin + ci) * h + uy / 2) * w + ux / 2;
                                size_t k = ((size_t)co * cin + ci) * 9 + ky * 3 + kx;
                                double p = (double)wt[k] * in[i];
                                acc += p, abs += fabs(p);
                                rx[i] += wt[k] * g, ax[i] += fabs(wt[k] * g);
                                rw[k] += in[i] * g, aw[k] += fabs(in[i] * g);
                            }
                    worst[0] = fmax(worst[0], fabs(out[o] - acc) / abs);
                }
    for (size_t i = 0; i < nin; i++) worst[1] = fmax(worst[1], fabs(din[i] - rx[i]) / ax[i]);
    for (size_t k = 0; k < nw; k++) worst[2] = fmax(worst[2], fabs(dw[k] - rw[k]) / aw[k]);
    const char *what[3] = {training ? "fwd F42" : "fwd F22", "d(input) F42", "d(weight) F22"};
    const double bound[3] = {training ? 1e-5 : 1e-6, 1e-5, 1e-6};
    for (int t = 0; t < 3; t++) {
        char name[80];
        snprintf(name, sizeof name, "conv up2 3x3 %dx%d %d->%d %s vs direct", w, h, cin, cout, what[t]);
        CHECK(worst[t] < bound[t], "%s: relative error %g", name, worst[t]);
        printf("  %-40s max rel %.2e\n", name, worst[t]);
    }
    free(in), free(wt), free(b), free(dy), free(out), free(din), free(dw), free(scratch);
    free(rx), free(ax), free(rw), free(aw);
}

/* D's l1, l2 (4x4, stride 2, pad 1: four polyphase F(2x2, 2x2) convs,
 * nn/winograd_s2.h) against the direct conv in double: forward, d(input)
 * and d(weight), each error relative to the sum of |terms| of that output's
 * sum, as test_conv_upsampled_reference. A float sum is within ~sqrt(n) *
 * 6e-8 of it; the transforms round values up to ~4x the terms (two sums of
 * two per dimension) a few times more: worst seen 7e-7 (d(input) at the
 * odd edges), bound 2e-6. A coefficient off by 1e-4 relative gives 2e-5,
 * a wrong tap, phase or tile edge 1e-2 or more. Then 1 and 2 threads must
 * give the same bits. */
static void test_conv_s2_reference(int batch, int cin, int h, int w, int cout) {
    ConvShape s = conv_shape(batch, cin, h, w, cout, 4, 2, 1);
    int oh = s.out_h, ow = s.out_w;
    size_t nin = (size_t)batch * cin * h * w, nw = (size_t)cout * cin * 16;
    size_t nout = (size_t)batch * cout * oh * ow;
    float *in = rand_buf(nin, -1, 1), *wt = rand_buf(nw, -1, 1), *b = rand_buf(cout, -1, 1);
    float *dy = rand_buf(nout, -1, 1), *out = malloc(nout * sizeof(float));
    float *din = calloc(nin, sizeof(float)), *dw = calloc(nw, sizeof(float));
    float *scratch = malloc(conv_scratch_floats(&s, 4) * sizeof(float));
    conv_1_and_2_threads(out, din, dw, in, wt, b, dy, &s, scratch, nin, nout, nw, "conv 4x4 s2");
    /* reference sums and sums of |terms| */
    double *rx = calloc(nin, sizeof(double)), *ax = calloc(nin, sizeof(double));
    double *rw = calloc(nw, sizeof(double)), *aw = calloc(nw, sizeof(double));
    double worst[3] = {0, 0, 0};
    for (int n = 0; n < batch; n++)
        for (int co = 0; co < cout; co++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    size_t o = (((size_t)n * cout + co) * oh + y) * ow + x;
                    double acc = b[co], abs = fabs(b[co]), g = dy[o];
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < 4; ky++)
                            for (int kx = 0; kx < 4; kx++) {
                                int iy = 2 * y - 1 + ky, ix = 2 * x - 1 + kx;
                                if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
                                size_t i = (((size_t)n * cin + ci) * h + iy) * w + ix;
                                size_t k = ((size_t)co * cin + ci) * 16 + ky * 4 + kx;
                                double p = (double)wt[k] * in[i];
                                acc += p, abs += fabs(p);
                                rx[i] += wt[k] * g, ax[i] += fabs(wt[k] * g);
                                rw[k] += in[i] * g, aw[k] += fabs(in[i] * g);
                            }
                    worst[0] = fmax(worst[0], fabs(out[o] - acc) / abs);
                }
    for (size_t i = 0; i < nin; i++)
        worst[1] = fmax(worst[1], ax[i] > 0 ? fabs(din[i] - rx[i]) / ax[i] : fabs(din[i]));
    for (size_t k = 0; k < nw; k++) worst[2] = fmax(worst[2], fabs(dw[k] - rw[k]) / aw[k]);
    const char *what[3] = {"forward", "d(input)", "d(weight)"};
    for (int t = 0; t < 3; t++) {
        char name[80];
        snprintf(name, sizeof name, "conv 4x4 s2 %dx%d %d->%d %s vs direct", w, h, cin, cout, what[t]);
        CHECK(worst[t] < 2e-6, "%s: relative error %g", name, worst[t]);
        printf("  %-40s max rel %.2e\n", name, worst[t]);
    }
    free(in), free(wt), free(b), free(dy), free(out), free(din), free(dw), free(scratch);
    free(rx), free(ax), free(rw), free(aw);
}

/* Direct convolution in double: the forward's reference. */
static void test_conv_forward_reference(int batch, int cin, int h, int w, int cout, int k,
                                        int stride, int pad) {
    ConvShape s = conv_shape(batch, cin, h, w, cout, k, stride, pad);
    size_t nin = (size_t)batch * cin * h * w, nw = (size_t)cout * cin * k * k;
    size_t nout = (size_t)batch * cout * s.out_h * s.out_w;
    float *in = rand_buf(nin, -1, 1), *wt = rand_buf(nw, -1, 1), *b = rand_buf(cout, -1, 1);
    float *out = malloc(nout * sizeof(float));
    float *scratch = malloc(conv_scratch_floats(&s, 4) * sizeof(float));
    conv2d_forward(out, in, wt, b, &s, scratch);
    double worst = 0;
    for (int n = 0; n < batch; n++)
        for (int co = 0; co < cout; co++)
            for (int y = 0; y < s.out_h; y++)
                for (int x = 0; x < s.out_w; x++) {
                    double acc = b[co];
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = y * stride - pad + ky, ix = x * stride - pad + kx;
                                if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
                                acc += (double)wt[((co * cin + ci) * k + ky) * k + kx] *
                                       in[((n * cin + ci) * h + iy) * w + ix];
                            }
                    double got = out[((n * cout + co) * s.out_h + y) * s.out_w + x];
                    worst = fmax(worst, fabs(got - acc));
                }
    CHECK(worst < 1e-5 * sqrt((double)cin * k * k), "conv %dx%d s%d forward differs from direct convolution by %g", k, k,
          stride, worst);
    char name[64];
    snprintf(name, sizeof name, "conv %dx%d s%d %dx%d forward vs direct", k, k, stride, w, h);
    printf("  %-40s max diff %.2e\n", name, worst);
    free(in), free(wt), free(b), free(out), free(scratch);
}

/* G's residual-block conv (3x3, s1, p1) at its real size against a direct
 * conv in double, for the forward (F(2x2,3x3)), d(input) and d(weight)
 * (F(4x4,3x3)): each result's error relative to the sum of |products| that
 * make it. Also checks that 1 and 2 threads give the same bits. */
static void test_conv3x3_reference(int batch, int ch, int h, int w) {
    ConvShape s = conv_shape(batch, ch, h, w, ch, 3, 1, 1);
    size_t n = (size_t)batch * ch * h * w, nw = (size_t)ch * ch * 9, hw = (size_t)h * w;
    float *in = rand_buf(n, -1, 1), *wt = rand_buf(nw, -0.1f, 0.1f), *dy = rand_buf(n, -1, 1);
    float *out = malloc(n * sizeof(float)), *din = calloc(n, sizeof(float));
    float *dw = calloc(nw, sizeof(float)), *din2 = calloc(n, sizeof(float));
    float *dw2 = calloc(nw, sizeof(float));
    float *scratch = malloc(conv_scratch_floats(&s, 4) * sizeof(float));
    int threads = omp_get_max_threads();
    float *out_training = malloc(n * sizeof(float)), *out_training2 = malloc(n * sizeof(float));
    ConvShape st = s;
    st.training = 1;
    omp_set_num_threads(2);
    conv2d_forward(out, in, wt, NULL, &s, scratch);
    conv2d_forward(out_training, in, wt, NULL, &st, scratch);
    conv2d_backward(din, dw, NULL, dy, in, wt, &s, scratch);
    omp_set_num_threads(1);
    conv2d_backward(din2, dw2, NULL, dy, in, wt, &s, scratch);
    conv2d_forward(out_training2, in, wt, NULL, &st, scratch);
    omp_set_num_threads(threads);
    CHECK(!memcmp(din, din2, n * sizeof(float)) && !memcmp(dw, dw2, nw * sizeof(float)) &&
              !memcmp(out_training, out_training2, n * sizeof(float)),
          "conv 3x3 backward or training forward differs between 1 and 2 threads");
    /* worst |error| / sum |products| of the forward, d(input), d(weight),
     * the training forward */
    double worst[4] = {0, 0, 0, 0};
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < ch; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double f = 0, fa = 0, g = 0, ga = 0; /* forward at (c, y, x); d(input) there */
                    for (int k = 0; k < ch; k++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                /* forward: weight[c, k, i, j] in[k, yy, xx]; d(input):
                                 * dy[k, oy, ox] weight[k, c, i, j] */
                                int yy = y + i - 1, xx = x + j - 1, oy = y - i + 1, ox = x - j + 1;
                                if (yy >= 0 && xx >= 0 && yy < h && xx < w) {
                                    double p = (double)wt[((size_t)c * ch + k) * 9 + i * 3 + j] *
                                               in[((size_t)b * ch + k) * hw + yy * w + xx];
                                    f += p, fa += fabs(p);
                                }
                                if (oy >= 0 && ox >= 0 && oy < h && ox < w) {
                                    double q = (double)dy[((size_t)b * ch + k) * hw + oy * w + ox] *
                                               wt[((size_t)k * ch + c) * 9 + i * 3 + j];
                                    g += q, ga += fabs(q);
                                }
                            }
                    size_t o = ((size_t)b * ch + c) * hw + y * w + x;
                    worst[0] = fmax(worst[0], fabs(out[o] - f) / fa);
                    worst[1] = fmax(worst[1], fabs(din[o] - g) / ga);
                    worst[3] = fmax(worst[3], fabs(out_training[o] - f) / fa);
                }
    for (int co = 0; co < ch; co++)
        for (int ci = 0; ci < ch; ci++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    double g = 0, ga = 0;
                    for (int b = 0; b < batch; b++)
                        for (int y = 0; y < h; y++)
                            for (int x = 0; x < w; x++) {
                                int yy = y + i - 1, xx = x + j - 1;
                                if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
                                double p = (double)dy[((size_t)b * ch + co) * hw + y * w + x] *
                                           in[((size_t)b * ch + ci) * hw + yy * w + xx];
                                g += p, ga += fabs(p);
                            }
                    double got = dw[((size_t)co * ch + ci) * 9 + i * 3 + j];
                    worst[2] = fmax(worst[2], fabs(got - g) / ga);
                }
    /* Bounds: float rounding of the transforms and the GEMM's sums relative
     * to the sum of |products|. F(2x2,3x3) (forward) measured 1.2e-7 here;
     * F(4x4,3x3)'s constants (up to 8 in A^T, 5 in B^T, 1/24 in G) grow it:
     * measured 2.3e-6 for d(input) (1152 products per pixel), 8.8e-7 for
     * d(weight) (4096 per tap, summed over tiles in the transformed domain).
     * The bounds are ~4-6x those; one transform coefficient off by 1e-4
     * already fails (checked). The training forward (F(4x4,3x3), 1152
     * products per pixel like d(input)) shares d(input)'s bound. */
    const char *what[4] = {"forward (F(2x2,3x3))", "d(input) (F(4x4,3x3))",
                           "d(weight) (F(4x4,3x3))", "training fwd (F(4x4,3x3))"};
    double bound[4] = {1e-6, 1e-5, 5e-6, 1e-5};
    for (int k = 0; k < 4; k++) {
        CHECK(worst[k] < bound[k], "conv 3x3 %dx%d %d ch %s: error %.3g of the sum of |products|", w,
              h, ch, what[k], worst[k]);
        printf("  conv 3x3 %dx%d %d ch %-22s worst %.2e of sum|p|\n", w, h, ch, what[k], worst[k]);
    }
    free(in), free(wt), free(dy), free(out), free(din), free(dw), free(din2), free(dw2);
    free(out_training), free(out_training2);
    free(scratch);
}

/* D's l3 (4x4, stride 1) d(weight) on F(2x2, 4x4) (nn/winograd24.h)
 * against a direct sum in double: each tap's error relative to the sum of
 * |products| that make it. dweight starts non-zero (the backward adds to
 * it), and 1 and 2 threads must give the same bits. */
static void test_conv4x4_weight_reference(int batch, int cin, int h, int w, int cout, int pad) {
    ConvShape s = conv_shape(batch, cin, h, w, cout, 4, 1, pad);
    int oh = s.out_h, ow = s.out_w;
    size_t nin = (size_t)batch * cin * h * w, nw = (size_t)cout * cin * 16;
    size_t nout = (size_t)batch * cout * oh * ow;
    float *in = rand_buf(nin, -1, 1), *dy = rand_buf(nout, -1, 1), *dw0 = rand_buf(nw, -1, 1);
    float *dw = malloc(nw * sizeof(float)), *dw2 = malloc(nw * sizeof(float));
    memcpy(dw, dw0, nw * sizeof(float)), memcpy(dw2, dw0, nw * sizeof(float));
    float *scratch = malloc(conv_scratch_floats(&s, 4) * sizeof(float));
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    conv2d_backward(NULL, dw, NULL, dy, in, NULL, &s, scratch);
    omp_set_num_threads(1);
    conv2d_backward(NULL, dw2, NULL, dy, in, NULL, &s, scratch);
    omp_set_num_threads(threads);
    CHECK(!memcmp(dw, dw2, nw * sizeof(float)),
          "conv 4x4 s1 d(weight) differs between 1 and 2 threads");
    double worst = 0;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    double g = 0, ga = 0;
                    for (int b = 0; b < batch; b++) {
                        const float *x = in + ((size_t)b * cin + ci) * h * w;
                        const float *d = dy + ((size_t)b * cout + co) * oh * ow;
                        for (int y = 0; y < oh; y++) {
                            int yy = y - pad + i;
                            if (yy < 0 || yy >= h) continue;
                            for (int xo = 0; xo < ow; xo++) {
                                int xx = xo - pad + j;
                                if (xx < 0 || xx >= w) continue;
                                double p = (double)d[y * ow + xo] * x[yy * w + xx];
                                g += p, ga += fabs(p);
                            }
                        }
                    }
                    size_t k = ((size_t)co * cin + ci) * 16 + i * 4 + j;
                    worst = fmax(worst, fabs(dw[k] - ((double)dw0[k] + g)) / ga);
                }
    /* Bound: rounding of the transforms and of the GEMM's sums over tiles
     * in the transformed domain, relative to the sum of |products|.
     * Measured at 31x31, 128 -> 256: 1.65e-6 (batch 1), 8.6e-7 (batch 2),
     * ~5e-7 on the small maps; the bound is 3x the worst. A G^T coefficient
     * off by 1e-4 relative gives 1.5e-5 to 1.9e-5; a wrong row of A, an
     * output row or column past the map read, a short job's columns left
     * unzeroed or beta 1 on the first chunk 1e-2 or more (checked). */
    char name[80];
    snprintf(name, sizeof name, "conv 4x4 s1 %dx%d %d->%d b%d d(weight)", ow, oh, cin, cout, batch);
    CHECK(worst < 5e-6, "%s: error %.3g of the sum of |products|", name, worst);
    printf("  %-40s worst %.2e of sum|p|\n", name, worst);
    free(in), free(dy), free(dw0), free(dw), free(dw2), free(scratch);
}

/* ---- BatchNorm ---------------------------------------------------------------- */
typedef struct {
    int batch, ch, hw, training;
    float *in, *gamma, *beta, *out, *mean, *rstd, *rm, *rv, *r;
} BnCtx;

static double bn_loss(void *p) {
    BnCtx *c = p;
    double stats[BN_STATS_DOUBLES(4)];
    batchnorm_forward(c->out, c->mean, c->rstd, c->rm, c->rv, c->in, c->gamma, c->beta, c->batch,
                      c->ch, c->hw, c->training, NULL, stats);
    return dot(c->out, c->r, (size_t)c->batch * c->ch * c->hw);
}

static void test_batchnorm(int training) {
    BnCtx c = {.batch = 3, .ch = 4, .hw = 25, .training = training};
    size_t n = (size_t)c.batch * c.ch * c.hw;
    c.in = rand_buf(n, -2, 3);
    c.gamma = rand_buf(c.ch, 0.5f, 1.5f);
    c.beta = rand_buf(c.ch, -0.5f, 0.5f);
    c.out = malloc(n * sizeof(float));
    c.mean = malloc(c.ch * sizeof(float));
    c.rstd = malloc(c.ch * sizeof(float));
    c.rm = rand_buf(c.ch, -0.2f, 0.2f);
    c.rv = rand_buf(c.ch, 0.5f, 1.5f);
    c.r = rand_buf(n, -1, 1);
    float *din = calloc(n, sizeof(float)), *dg = calloc(c.ch, sizeof(float)),
          *dbt = calloc(c.ch, sizeof(float));
    bn_loss(&c);
    double stats[BN_STATS_DOUBLES(4)];
    batchnorm_backward(din, dg, dbt, c.r, c.in, c.mean, c.rstd, c.gamma, c.batch, c.ch, c.hw,
                       training, NULL, stats);
    const char *mode = training ? "batchnorm (train)" : "batchnorm (eval)";
    char name[64];
    snprintf(name, sizeof name, "%s in", mode);
    report(name, gradcheck(bn_loss, &c, c.in, din, n, SAMPLES, EPS, RTOL));
    snprintf(name, sizeof name, "%s gamma", mode);
    report(name, gradcheck(bn_loss, &c, c.gamma, dg, c.ch, SAMPLES, EPS, RTOL));
    snprintf(name, sizeof name, "%s beta", mode);
    report(name, gradcheck(bn_loss, &c, c.beta, dbt, c.ch, SAMPLES, EPS, RTOL));
    free(c.in), free(c.gamma), free(c.beta), free(c.out), free(c.mean), free(c.rstd);
    free(c.rm), free(c.rv), free(c.r), free(din), free(dg), free(dbt);
}

/* BatchNorm fused with the activation that follows it (slope 0 ReLU, 0.2
 * LeakyReLU, 1 none): gradients by finite differences, and the same values
 * as batchnorm_forward then leaky_relu_forward, and as batchnorm_backward
 * after leaky_relu_backward (the fused backward stores d(in), so din starts
 * as garbage). */
typedef struct {
    BnCtx bn;
    float slope;
} BnActCtx;

static double bn_act_loss(void *p) {
    BnActCtx *c = p;
    BnCtx *b = &c->bn;
    double stats[BN_STATS_DOUBLES(4)];
    batchnorm_act_forward(b->out, b->mean, b->rstd, b->rm, b->rv, b->in, b->gamma, b->beta, c->slope,
                          b->batch, b->ch, b->hw, b->training, NULL, stats);
    return dot(b->out, b->r, (size_t)b->batch * b->ch * b->hw);
}

static void test_batchnorm_act(float slope) {
    BnActCtx c = {{.batch = 3, .ch = 4, .hw = 25, .training = 1}, slope};
    BnCtx *b = &c.bn;
    size_t n = (size_t)b->batch * b->ch * b->hw;
    b->in = rand_buf(n, -2, 3);
    b->gamma = rand_buf(b->ch, 0.5f, 1.5f);
    b->beta = rand_buf(b->ch, -0.5f, 0.5f);
    b->out = malloc(n * sizeof(float));
    b->mean = malloc(b->ch * sizeof(float));
    b->rstd = malloc(b->ch * sizeof(float));
    b->rm = rand_buf(b->ch, -0.2f, 0.2f);
    b->rv = rand_buf(b->ch, 0.5f, 1.5f);
    b->r = rand_buf(n, -1, 1);
    /* keep BN's outputs off the kink: +-EPS on an input moves them by < 4 EPS here */
    for (int round = 0; round < 4; round++) {
        batchnorm_forward(b->out, b->mean, b->rstd, b->rm, b->rv, b->in, b->gamma, b->beta,
                          b->batch, b->ch, b->hw, 1, NULL, (double[BN_STATS_DOUBLES(4)]){0});
        for (size_t i = 0; i < n; i++)
            if (fabsf(b->out[i]) < 8 * EPS) b->in[i] += b->out[i] < 0 ? -16 * EPS : 16 * EPS;
    }
    float *plain = malloc(n * sizeof(float)), *din = rand_buf(n, -5, 5);
    float *din_ref = calloc(n, sizeof(float)), *d_pre = calloc(n, sizeof(float));
    float *dg = calloc(b->ch, sizeof(float)), *dbt = calloc(b->ch, sizeof(float));
    float *dg_ref = calloc(b->ch, sizeof(float)), *dbt_ref = calloc(b->ch, sizeof(float));
    double stats[BN_STATS_DOUBLES(4)];
    float rm0[4], rv0[4];
    memcpy(rm0, b->rm, sizeof rm0), memcpy(rv0, b->rv, sizeof rv0);
    /* reference: the unfused ops */
    batchnorm_forward(plain, b->mean, b->rstd, b->rm, b->rv, b->in, b->gamma, b->beta, b->batch,
                      b->ch, b->hw, 1, NULL, stats);
    leaky_relu_forward(plain, plain, slope, n);
    leaky_relu_backward(d_pre, b->r, plain, slope, n);
    batchnorm_backward(din_ref, dg_ref, dbt_ref, d_pre, b->in, b->mean, b->rstd, b->gamma, b->batch,
                       b->ch, b->hw, 1, NULL, stats);
    memcpy(b->rm, rm0, sizeof rm0), memcpy(b->rv, rv0, sizeof rv0);
    bn_act_loss(&c);
    float dsum[4] = {0};
    batchnorm_act_backward(din, dg, dbt, dsum, b->r, b->in, b->mean, b->rstd, b->gamma, b->beta, slope,
                           b->batch, b->ch, b->hw, 1, NULL, stats);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(b->out[i] - plain[i]));
        worst = fmax(worst, fabs(din[i] - din_ref[i]));
    }
    for (int ch = 0; ch < b->ch; ch++) {
        worst = fmax(worst, fmax(fabs(dg[ch] - dg_ref[ch]), fabs(dbt[ch] - dbt_ref[ch])));
        double sum = 0; /* dsum: the sum of d(in) over the channel */
        for (int k = 0; k < b->batch; k++)
            for (int i = 0; i < b->hw; i++) sum += din[((size_t)k * b->ch + ch) * b->hw + i];
        worst = fmax(worst, fabs(dsum[ch] - sum));
    }
    CHECK(worst < 1e-5, "batchnorm+act slope %g differs from the unfused ops by %g", slope, worst);
    char name[64];
    snprintf(name, sizeof name, "batchnorm+act %g vs unfused", slope);
    printf("  %-40s max diff %.2e\n", name, worst);
    snprintf(name, sizeof name, "batchnorm+act %g in", slope);
    report(name, gradcheck(bn_act_loss, &c, b->in, din, n, SAMPLES, EPS, RTOL));
    snprintf(name, sizeof name, "batchnorm+act %g gamma", slope);
    report(name, gradcheck(bn_act_loss, &c, b->gamma, dg, b->ch, SAMPLES, EPS, RTOL));
    snprintf(name, sizeof name, "batchnorm+act %g beta", slope);
    report(name, gradcheck(bn_act_loss, &c, b->beta, dbt, b->ch, SAMPLES, EPS, RTOL));
    free(b->in), free(b->gamma), free(b->beta), free(b->out), free(b->mean), free(b->rstd);
    free(b->rm), free(b->rv), free(b->r), free(plain), free(din), free(din_ref), free(d_pre);
    free(dg), free(dbt), free(dg_ref), free(dbt_ref);
}

/* PyTorch semantics of the statistics: biased variance to normalise,
 * unbiased variance into the running estimate, momentum 0.1. */
static void test_batchnorm_statistics(void) {
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* batch 2, 1 channel, hw 4 */
    float gamma = 1, beta = 0, out[8], mean, rstd, rm = 0.5f, rv = 2.0f;
    double stats[BN_STATS_DOUBLES(1)];
    batchnorm_forward(out, &mean, &rstd, &rm, &rv, in, &gamma, &beta, 2, 1, 4, 1, NULL, stats);
    double var_b = 5.25, var_u = 6.0;
    CHECK(fabs(mean - 4.5) < 1e-6, "batch mean %g", mean);
    CHECK(fabs(rstd - 1.0 / sqrt(var_b + 1e-5)) < 1e-6, "batch rstd %g", rstd);
    CHECK(fabs(rm - (0.9 * 0.5 + 0.1 * 4.5)) < 1e-6, "running mean %g", rm);
    CHECK(fabs(rv - (0.9 * 2.0 + 0.1 * var_u)) < 1e-6, "running var %g", rv);
    CHECK(fabs(out[0] - (1 - 4.5) / sqrt(var_b + 1e-5)) < 1e-5, "normalised value %g", out[0]);
}

/* Synchronised BatchNorm: two replicas (threads), each with half of the batch
 * and its statistics summed through BnSync, must compute what one replica
 * computes on the whole batch: outputs, running statistics, input gradients,
 * and gamma/beta gradients that add up to the whole batch's. */
enum { SB_BATCH = 4, SB_CH = 3, SB_HW = 30 };
typedef struct {
    pthread_barrier_t *barrier;
    double **slots; /* shared: each replica's values, exchanged through the barrier */
    int id;
} PairSum;

static void pair_sum(double *values, int count, void *ctx) {
    PairSum *p = ctx;
    memcpy(p->slots[p->id], values, (size_t)count * sizeof(double));
    pthread_barrier_wait(p->barrier);
    for (int i = 0; i < count; i++) values[i] = p->slots[0][i] + p->slots[1][i];
    pthread_barrier_wait(p->barrier); /* both have read before the slots are reused */
}

typedef struct {
    PairSum ctx;
    BnSync sync;
    int batch;
    const float *in, *dout, *gamma, *beta;
    float out[SB_BATCH * SB_CH * SB_HW], din[SB_BATCH * SB_CH * SB_HW];
    float mean[SB_CH], rstd[SB_CH], rm[SB_CH], rv[SB_CH], dg[SB_CH], db[SB_CH];
    double stats[BN_STATS_DOUBLES(SB_CH)];
} BnReplica;

static void *bn_replica_run(void *p) {
    BnReplica *r = p;
    const BnSync *sync = r->ctx.slots ? &r->sync : NULL;
    batchnorm_forward(r->out, r->mean, r->rstd, r->rm, r->rv, r->in, r->gamma, r->beta, r->batch,
                      SB_CH, SB_HW, 1, sync, r->stats);
    batchnorm_backward(r->din, r->dg, r->db, r->dout, r->in, r->mean, r->rstd, r->gamma, r->batch,
                       SB_CH, SB_HW, 1, sync, r->stats);
    return NULL;
}

static void bn_replica_setup(BnReplica *r, int batch, const float *in, const float *dout,
                             const float *gamma, const float *beta) {
    memset(r, 0, sizeof *r);
    r->batch = batch, r->in = in, r->dout = dout, r->gamma = gamma, r->beta = beta;
    for (int c = 0; c < SB_CH; c++) r->rm[c] = 0.1f * c, r->rv[c] = 1.0f + 0.2f * c;
}

static void test_batchnorm_synchronised(void) {
    size_t n = (size_t)SB_BATCH * SB_CH * SB_HW, half = n / 2;
    float *in = rand_buf(n, -2, 3), *dout = rand_buf(n, -1, 1);
    float *gamma = rand_buf(SB_CH, 0.5f, 1.5f), *beta = rand_buf(SB_CH, -0.5f, 0.5f);
    static BnReplica whole, part[2];
    bn_replica_setup(&whole, SB_BATCH, in, dout, gamma, beta);
    bn_replica_run(&whole);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    double slot0[BN_STATS_DOUBLES(SB_CH)], slot1[BN_STATS_DOUBLES(SB_CH)];
    double *slots[2] = {slot0, slot1};
    pthread_t threads[2];
    for (int k = 0; k < 2; k++) {
        bn_replica_setup(&part[k], SB_BATCH / 2, in + k * half, dout + k * half, gamma, beta);
        part[k].ctx = (PairSum){&barrier, slots, k};
        part[k].sync = (BnSync){pair_sum, &part[k].ctx};
        pthread_create(&threads[k], NULL, bn_replica_run, &part[k]);
    }
    for (int k = 0; k < 2; k++) pthread_join(threads[k], NULL);
    pthread_barrier_destroy(&barrier);
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < half; i++) {
            worst = fmax(worst, fabs(part[k].out[i] - whole.out[k * half + i]));
            worst = fmax(worst, fabs(part[k].din[i] - whole.din[k * half + i]));
        }
        for (int c = 0; c < SB_CH; c++) {
            worst = fmax(worst, fabs(part[k].rm[c] - whole.rm[c]));
            worst = fmax(worst, fabs(part[k].rv[c] - whole.rv[c]));
        }
    }
    for (int c = 0; c < SB_CH; c++) {
        worst = fmax(worst, fabs(part[0].dg[c] + part[1].dg[c] - whole.dg[c]));
        worst = fmax(worst, fabs(part[0].db[c] + part[1].db[c] - whole.db[c]));
    }
    /* the statistics are double sums in another order; the rest is the same float code */
    CHECK(worst < 1e-5, "two synchronised half batches differ from the whole batch by %g", worst);
    printf("  %-40s max diff %.2e\n", "synchronised BN, 2 x half batch", worst);
    /* without the sync each half normalises by its own statistics: visibly different */
    bn_replica_setup(&part[0], SB_BATCH / 2, in, dout, gamma, beta);
    bn_replica_run(&part[0]);
    double apart = 0;
    for (size_t i = 0; i < half; i++) apart = fmax(apart, fabs(part[0].out[i] - whole.out[i]));
    CHECK(apart > 1e-3, "a half batch alone normalises like the whole batch (%g)", apart);
    free(in), free(dout), free(gamma), free(beta);
}

/* ---- element-wise and resampling ops ---------------------------------------- */
typedef enum { OP_RELU, OP_LRELU, OP_TANH, OP_UP, OP_POOL2, OP_POOL4, OP_HT, OP_LUMLOCK, OP_SOBEL } OpKind;
typedef struct {
    OpKind kind;
    int batch, h, w;
    size_t nin, nout;
    float *in, *out, *r;
    float *gray; /* the luminance lock's target luminance */
} UnaryCtx;

static const float HT[3] = {0.299f, 0.587f, 0.114f};

static void unary_forward(UnaryCtx *c) {
    int bc = c->batch;
    switch (c->kind) {
    case OP_RELU: relu_forward(c->out, c->in, c->nin); break;
    case OP_LRELU: leaky_relu_forward(c->out, c->in, 0.2f, c->nin); break;
    case OP_TANH: tanh_forward(c->out, c->in, c->nin); break;
    case OP_UP: upsample2x_forward(c->out, c->in, bc, c->h, c->w); break;
    case OP_POOL2: avgpool_forward(c->out, c->in, bc, c->h, c->w, 2); break;
    case OP_POOL4: avgpool_forward(c->out, c->in, bc, c->h, c->w, 4); break;
    case OP_HT: ht_forward(c->out, c->in, HT, c->batch, c->h * c->w); break;
    case OP_LUMLOCK: luminance_lock_forward(c->out, c->in, c->gray, HT, c->batch, c->h * c->w); break;
    case OP_SOBEL: sobel_forward(c->out, c->in, c->batch, c->h, c->w); break;
    }
}

static void unary_backward(UnaryCtx *c, float *din) {
    int bc = c->batch;
    switch (c->kind) {
    case OP_RELU: relu_backward(din, c->r, c->out, c->nin); break;
    case OP_LRELU: leaky_relu_backward(din, c->r, c->out, 0.2f, c->nin); break;
    case OP_TANH: tanh_backward(din, c->r, c->out, c->nin); break;
    case OP_UP: upsample2x_backward(din, c->r, bc, c->h, c->w); break;
    case OP_POOL2: avgpool_backward(din, c->r, bc, c->h, c->w, 2); break;
    case OP_POOL4: avgpool_backward(din, c->r, bc, c->h, c->w, 4); break;
    case OP_HT: ht_backward(din, c->r, HT, c->batch, c->h * c->w); break;
    case OP_LUMLOCK: luminance_lock_backward(din, c->r, HT, c->batch, c->h * c->w); break;
    case OP_SOBEL: sobel_backward(din, c->r, c->batch, c->h, c->w); break;
    }
}

static double unary_loss(void *p) {
    UnaryCtx *c = p;
    unary_forward(c);
    return dot(c->out, c->r, c->nout);
}

static void test_unary(const char *name, OpKind kind) {
    UnaryCtx c = {kind, 6, 12, 8, 0, 0, NULL, NULL, NULL, NULL};
    size_t plane = (size_t)c.h * c.w;
    c.nin = c.batch * plane;
    c.nout = c.nin;
    if (kind == OP_UP) c.nout = 4 * c.nin;
    if (kind == OP_POOL2) c.nout = c.nin / 4;
    if (kind == OP_POOL4) c.nout = c.nin / 16;
    if (kind == OP_HT) c.batch = 2, c.nin = 3 * c.batch * plane, c.nout = c.batch * plane;
    if (kind == OP_LUMLOCK) c.batch = 2, c.nin = c.nout = 3 * c.batch * plane;
    if (kind == OP_SOBEL) c.nout = (size_t)c.batch * 2 * (c.h - 2) * (c.w - 2);
    c.in = rand_buf(c.nin, -2, 2);
    if (kind == OP_RELU || kind == OP_LRELU) avoid_zero(c.in, c.nin, 2 * EPS);
    c.out = malloc(c.nout * sizeof(float));
    c.r = rand_buf(c.nout, -1, 1);
    c.gray = rand_buf((size_t)c.batch * plane, -1, 1);
    float *din = calloc(c.nin, sizeof(float));
    unary_forward(&c);
    if (kind == OP_LUMLOCK) { /* H_t of the output is the target luminance */
        float *lum = malloc((size_t)c.batch * plane * sizeof(float));
        ht_forward(lum, c.out, HT, c.batch, (int)plane);
        double worst = 0;
        for (size_t i = 0; i < (size_t)c.batch * plane; i++) worst = fmax(worst, fabs(lum[i] - c.gray[i]));
        CHECK(worst < 1e-6, "luminance lock: H_t(out) differs from the target by %g", worst);
        free(lum);
    }
    unary_backward(&c, din);
    report(name, gradcheck(unary_loss, &c, c.in, din, c.nin, SAMPLES, EPS, RTOL));
    free(c.in), free(c.out), free(c.r), free(c.gray), free(din);
}

/* ---- losses ------------------------------------------------------------------ */
typedef struct {
    int l1;
    size_t n;
    float *a, *b;
} LossCtx;

static double loss_value(void *p) {
    LossCtx *c = p;
    return c->l1 ? 3.0 * l1_loss_forward(c->a, c->b, c->n) : 3.0 * mse_const_forward(c->a, 1.0f, c->n);
}

static void test_loss(int l1) {
    LossCtx c = {l1, 300, NULL, NULL};
    c.a = rand_buf(c.n, -1, 1);
    c.b = rand_buf(c.n, -1, 1);
    for (size_t i = 0; i < c.n; i++) /* keep a - b away from the kink */
        if (fabsf(c.a[i] - c.b[i]) < 2 * EPS) c.a[i] += 4 * EPS;
    float *da = calloc(c.n, sizeof(float));
    if (l1)
        l1_loss_backward(da, c.a, c.b, c.n, 3.0f);
    else
        mse_const_backward(da, c.a, 1.0f, c.n, 3.0f);
    report(l1 ? "l1 loss (x3)" : "lsgan mse loss (x3)",
           gradcheck(loss_value, &c, c.a, da, c.n, SAMPLES, EPS, RTOL));
    free(c.a), free(c.b), free(da);
}

static void test_loss_values(void) {
    float a[4] = {1, -1, 0.5f, 0}, b[4] = {0, 0, 0.5f, 1};
    CHECK(fabs(l1_loss_forward(a, b, 4) - 0.75) < 1e-12, "l1 value");
    CHECK(fabs(mse_const_forward(a, 1.0f, 4) - (0 + 4 + 0.25 + 1) / 4.0) < 1e-12, "mse value");
    float da[4] = {0};
    l1_loss_backward(da, a, b, 4, 1.0f);
    CHECK(da[2] == 0.0f && da[0] == 0.25f && da[1] == -0.25f, "l1 sign(0) = 0 as PyTorch");
}

/* ---- Adam ----------------------------------------------------------------------- */
static void test_adam(void) {
    enum { N = 5 };
    float p[N] = {0.5f, -1, 2, 0, 1e-3f}, m[N] = {0}, v[N] = {0};
    double pd[N], md[N] = {0}, vd[N] = {0};
    for (int i = 0; i < N; i++) pd[i] = p[i];
    AdamConfig cfg = {2e-4f, 0.5f, 0.999f, 1e-8f};
    for (long step = 1; step <= 3; step++) {
        float g[N];
        for (int i = 0; i < N; i++) g[i] = (float)(0.3 * (i - 2) + 0.1 * step);
        adam_update(p, m, v, g, N, &cfg, step);
        for (int i = 0; i < N; i++) {
            md[i] = 0.5 * md[i] + 0.5 * g[i];
            vd[i] = 0.999 * vd[i] + 0.001 * (double)g[i] * g[i];
            double denom = sqrt(vd[i]) / sqrt(1 - pow(0.999, step)) + 1e-8;
            pd[i] -= 2e-4 / (1 - pow(0.5, step)) * md[i] / denom;
        }
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - pd[i]));
    CHECK(worst < 1e-6, "adam differs from PyTorch's update by %g", worst);
    printf("  %-40s max diff %.2e\n", "adam vs double reference (3 steps)", worst);
}

int main(void) {
    printf("conv2d\n");
    test_conv_forward_reference(2, 3, 23, 29, 5, 3, 2, 1);
    test_conv_forward_reference(2, 7, 11, 70, 5, 3, 1, 1); /* Winograd: odd side, 2 segments */
    test_conv_forward_reference(2, 6, 19, 23, 1, 4, 1, 1); /* one output channel */
    test_conv_forward_reference(2, 5, 23, 19, 3, 4, 1, 1); /* F(2x2,4x4) */
    test_conv_forward_reference(1, 64, 32, 32, 16, 4, 1, 1); /* F(2x2,4x4), D l3's size */
    test_conv(2, 1, 13, 11, 4, 7, 1, 3);   /* enc0 */
    test_conv(2, 3, 12, 10, 5, 3, 2, 1);   /* enc1/enc2 */
    test_conv(1, 6, 9, 9, 4, 3, 1, 1);     /* res, dec */
    test_conv(2, 5, 7, 6, 3, 1, 1, 0);     /* dec2, head: pointwise */
    test_conv(2, 3, 16, 14, 4, 4, 2, 1);   /* D l0..l2 */
    test_conv(1, 4, 9, 8, 2, 4, 1, 1);     /* D l3, l4 */
    test_conv(1, 3, 17, 15, 2, 4, 1, 1);   /* D l3: Winograd F(2x2,4x4), jobs across tile rows */
    test_conv(2, 2, 18, 20, 3, 4, 1, 1);   /* F(2x2,4x4): odd output sides, batch */
    test_conv(2, 5, 9, 8, 1, 4, 1, 1);     /* D l4: one output channel, direct rows */
    test_conv(1, 3, 21, 12, 1, 5, 1, 2);   /* one output channel: three row blocks, k 5 */
    test_conv(1, 2, 40, 33, 3, 3, 1, 1);   /* several pixel blocks */
    test_conv(1, 2, 47, 45, 3, 3, 2, 1);   /* strided d(input): odd sides, several blocks per phase */
    test_conv(1, 2, 11, 10, 3, 2, 3, 0);   /* stride > kernel: input phases no tap reaches */
    test_conv(1, 2, 9, 8, 3, 3, 1, 3);     /* pad > kernel - 1: the phase path at stride 1 */
    test_conv_upsampled_forward();
    test_conv_up(1, 2, 3, 5, 6, 4, 3, 1, 1);  /* dec1, dec0: upsampling conv as 4 phase convs */
    test_conv_up(1, 1, 2, 23, 25, 3, 3, 1, 1); /* several blocks, odd sides */
    test_conv_upsampled_reference(2, 5, 9, 70, 3, 0);    /* odd side, jobs across tile rows */
    test_conv_upsampled_reference(1, 64, 64, 64, 64, 0); /* dec1's size */
    test_conv_upsampled_reference(2, 5, 9, 70, 3, 1);    /* training: F(4x4, 2x2), ragged tiles */
    test_conv_upsampled_reference(1, 3, 7, 5, 2, 1);     /* a map smaller than one tile's outputs */
    test_conv_upsampled_reference(1, 64, 64, 64, 64, 1); /* dec1 */
    test_conv_upsampled_reference(1, 64, 128, 128, 64, 1); /* dec0 */
    test_conv(2, 3, 7, 67, 4, 3, 1, 1);    /* Winograd: batch, two segments per tile row */
    test_conv(3, 2, 50, 41, 3, 3, 1, 1);   /* F(4x4,3x3) backward: 15 jobs = 2 weight-gradient
                                              chunks, a short job per image, sides not x4 */
    test_conv3x3_reference(1, 128, 64, 64); /* G's residual blocks at 256x256 */
    test_conv3x3_reference(2, 16, 41, 50);  /* batch, ragged tiles, short jobs, 2 chunks */
    test_conv4x4_weight_reference(1, 128, 32, 32, 256, 1); /* D l3 at scale 1: one chunk */
    test_conv4x4_weight_reference(2, 128, 32, 32, 256, 1); /* batch 2: two chunks */
    test_conv4x4_weight_reference(3, 5, 18, 20, 3, 1);     /* odd output sides, short jobs, 2 chunks */
    test_conv4x4_weight_reference(2, 3, 15, 16, 4, 2);     /* pad 2, jobs across tile rows */
    test_conv(2, 16, 33, 36, 4, 4, 2, 1);  /* D l1, l2 as 4 phases x F(2x2,2x2): odd side, batch */
    test_conv(1, 16, 36, 38, 3, 4, 2, 1);  /* two segments, jobs across tile rows */
    test_conv_s2_reference(2, 16, 37, 42, 3);  /* odd sides, odd tile counts */
    test_conv_s2_reference(1, 32, 128, 128, 64); /* D l1's size at scale 1 */
    /* the portable path: the plain C GEMM kernel selects the plain C transforms */
    GemmKernel best = gemm_current_kernel();
    CHECK(gemm_set_kernel(GEMM_KERNEL_SCALAR) == 0, "the plain C kernel must be available");
    test_conv_forward_reference(1, 4, 9, 11, 3, 3, 1, 1);
    test_conv(1, 6, 9, 9, 4, 3, 1, 1);
    test_conv_up(1, 2, 3, 5, 6, 4, 3, 1, 1);
    test_conv3x3_reference(2, 16, 41, 50);
    test_conv4x4_weight_reference(3, 5, 18, 20, 3, 1);
    test_conv_upsampled_reference(1, 7, 11, 13, 5, 0);
    test_conv_upsampled_reference(2, 7, 13, 11, 5, 1);
    test_conv(2, 16, 33, 36, 4, 4, 2, 1);
    test_conv_s2_reference(2, 16, 37, 42, 3);
    gemm_set_kernel(best);
    printf("batchnorm\n");
    test_batchnorm(1);
    test_batchnorm(0);
    test_batchnorm_statistics();
    test_batchnorm_act(0.0f);
    test_batchnorm_act(0.2f);
    test_batchnorm_act(1.0f);
    test_batchnorm_synchronised();
    printf("element-wise and resampling\n");
    test_unary("relu", OP_RELU);
    test_unary("leaky relu 0.2", OP_LRELU);
    test_unary("tanh", OP_TANH);
    test_unary("nearest upsample x2", OP_UP);
    test_unary("average pool /2", OP_POOL2);
    test_unary("average pool /4", OP_POOL4);
    test_unary("H_t", OP_HT);
    test_unary("luminance lock", OP_LUMLOCK);
    test_unary("sobel", OP_SOBEL);
    printf("losses and optimizer\n");
    test_loss(1);
    test_loss(0);
    test_loss_values();
    test_adam();
    return test_summary("test_ops");
}
