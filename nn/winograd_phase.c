#include "nn/winograd_phase.h"

#include <omp.h>
#include <string.h>

#include "nn/gemm.h"

#define INLINE static inline __attribute__((always_inline))
#define SEG WPHASE_SEG

/* d(input): products m[e * ld + c * SEG + k] -> the runs' 2x2 tiles, added
 * to out (ch x h x w; tile (ty, tx) at (2ty, 2tx), pixels outside dropped).
 * t: 10 * SEG floats. */
INLINE void outputs_stored_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                                const Run *runs, int nruns, int nt, float *t) {
    for (int c = 0; c < ch; c++) {
        float *y = t + 6 * SEG;
        tile_outputs(y, m + (size_t)c * SEG, ld, nt, t);
        float *oc = out + (size_t)c * h * w;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            for (int i = 0; i < 2 && 2 * R->ty + i < h; i++) {
                float *dst = oc + (size_t)(2 * R->ty + i) * w;
                for (int j = 0; j < 2; j++) {
                    const float *src = y + (2 * i + j) * SEG + R->k0;
                    int x0 = 2 * R->tx + j, lo, hi;
                    inside(&lo, &hi, x0, 0, w, R->n);
                    for (int k = lo; k < hi; k++) dst[x0 + 2 * k] += src[k];
                }
            }
        }
    }
}

/* The forward: products m[e * ld + (ph * ch + c) * SEG + k] -> out (ch x
 * 2h x 2w) = pixel + bias[c] (bias may be NULL). Tile (ty, tx)'s four phase
 * tiles fill the 4x4 output block at rows 4ty-3 .. 4ty (phase a = 1's
 * stored rows 2ty-2, 2ty-1 give rows 4ty-3, 4ty-1; a = 0's 2ty-1, 2ty give
 * 4ty-2, 4ty), columns likewise: written row by row, 4 contiguous values a
 * tile. t: 22 * SEG floats. */
INLINE void outputs_up_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                            const Run *runs, int nruns, int nt, const float *bias, float *t) {
    int oh = 2 * h, ow = 2 * w;
    for (int c = 0; c < ch; c++) {
        float *y = t + 6 * SEG; /* y[(4ph + 2i + j) * SEG + k] */
        for (int ph = 0; ph < 4; ph++) tile_outputs(y + 4 * ph * SEG, m + (size_t)(ph * ch + c) * SEG, ld, nt, t);
        float b = bias ? bias[c] : 0.0f;
        float *oc = out + (size_t)c * oh * ow;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            int x0 = 4 * R->tx - 3; /* the run's first output column */
            /* tiles [lo, hi) have all four columns inside the row */
            int lo = x0 >= 0 ? 0 : (3 - x0) / 4, hi = ow - 4 - x0 >= 0 ? (ow - 4 - x0) / 4 + 1 : 0;
            if (lo > R->n) lo = R->n;
            if (hi > R->n) hi = R->n;
            if (hi < lo) hi = lo;
            for (int r = 0; r < 4; r++) {
                int oy = 4 * R->ty - 3 + r, a = 1 - (r & 1), i = r >> 1;
                if (oy < 0 || oy >= oh) continue;
                /* columns 4tx-3 .. 4tx: phases b = 1, 0, 1, 0, tile columns j = 0, 0, 1, 1 */
                const float *row_y = y + (4 * (2 * a) + 2 * i) * SEG + R->k0;
                const float *s0 = row_y + 4 * SEG, *s1 = row_y, *s2 = row_y + 5 * SEG, *s3 = row_y + SEG;
                float *dst = oc + (size_t)oy * ow;
                for (int k = lo; k < hi; k++) {
                    float *d = dst + (x0 + 4 * k);
                    d[0] = s0[k] + b, d[1] = s1[k] + b, d[2] = s2[k] + b, d[3] = s3[k] + b;
                }
                for (int k = 0; k < R->n; k++) { /* the tiles reaching past the row's ends */
                    if (k == lo) k = hi;
                    if (k >= R->n) break;
                    for (int q = 0; q < 4; q++) {
                        int col = x0 + 4 * k + q;
                        const float *src = q == 0 ? s0 : q == 1 ? s1 : q == 2 ? s2 : s3;
                        if (col >= 0 && col < ow) dst[col] = src[k] + b;
                    }
                }
            }
        }
    }
}

/* The transforms as functions: inputs of the stored input (step 1: the
 * forward, d(weight)) or of one phase of d(output) (step 2: d(input)), and
 * d(weight)'s dY of one phase of d(output). */
#define INPUTS_ARGS                                                                             \
    float *v, size_t ld, const float *x, size_t plane, size_t row, int ch, int h, int w,       \
        const Run *runs, int nruns, int nt, int oy, int ox, float *hv
#define UP_ARGS                                                                                 \
    float *out, const float *m, size_t ld, int ch, int h, int w, const Run *runs, int nruns,   \
        int nt, const float *bias, float *t
#define STORED_ARGS                                                                             \
    float *out, const float *m, size_t ld, int ch, int h, int w, const Run *runs, int nruns,   \
        int nt, float *t
#define GRADS_ARGS                                                                              \
    float *dm, size_t ld, const float *dy, size_t plane, size_t row, int ch, int h, int w,     \
        const Run *runs, int nruns, int nt, int oy, int ox, float *t
#define TRANSFORMS(suffix, attr)                                                                \
    attr static void inputs_stored_##suffix(INPUTS_ARGS) {                                      \
        inputs_body(v, ld, x, plane, row, 1, ch, h, w, runs, nruns, nt, oy, ox, hv);            \
    }                                                                                           \
    attr static void inputs_phase_##suffix(INPUTS_ARGS) {                                       \
        inputs_body(v, ld, x, plane, row, 2, ch, h, w, runs, nruns, nt, oy, ox, hv);            \
    }                                                                                           \
    attr static void outputs_up_##suffix(UP_ARGS) {                                             \
        outputs_up_body(out, m, ld, ch, h, w, runs, nruns, nt, bias, t);                        \
    }                                                                                           \
    attr static void outputs_stored_##suffix(STORED_ARGS) {                                     \
        outputs_stored_body(out, m, ld, ch, h, w, runs, nruns, nt, t);                          \
    }                                                                                           \
    attr static void grads_phase_##suffix(GRADS_ARGS) {                                         \
        grads_body(dm, ld, dy, plane, row, 2, ch, h, w, runs, nruns, nt, oy, ox, t);            \
    }

TRANSFORMS(plain, )
#if defined(__x86_64__) || defined(__i386__)
TRANSFORMS(avx512, __attribute__((target("avx512f"))))
#endif

typedef struct {
    void (*inputs_stored)(INPUTS_ARGS);
    void (*inputs_phase)(INPUTS_ARGS);
    void (*outputs_up)(UP_ARGS);
    void (*outputs_stored)(STORED_ARGS);
    void (*grads)(GRADS_ARGS);
} Fns;

/* the transforms that go with the GEMM kernel the weights were packed for:
 * the portable path stays portable when tests force the plain C kernel */
static Fns fns_for(GemmKernel kernel) {
    Fns f = {inputs_stored_plain, inputs_phase_plain, outputs_up_plain, outputs_stored_plain,
             grads_phase_plain};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512)
        f = (Fns){inputs_stored_avx512, inputs_phase_avx512, outputs_up_avx512,
                  outputs_stored_avx512, grads_phase_avx512};
#endif
    return f;
}

static size_t packed_floats(int in_ch, int out_ch) {
    size_t a = gemm_packed_floats(4 * out_ch, in_ch), b = gemm_packed_floats(in_ch, 4 * out_ch);
    return a > b ? a : b;
}

size_t wphase_packed_floats(int in_ch, int out_ch) { return 9 * packed_floats(in_ch, out_ch); }

size_t wphase_weight_floats(int in_ch, int out_ch) {
    return wphase_packed_floats(in_ch, out_ch) + (size_t)36 * in_ch * out_ch;
}

size_t wphase_thread_floats(int in_ch, int out_ch) {
    return ((size_t)9 * (in_ch + 4 * out_ch) + 22) * SEG;
}

/* stored row y + floor((a + ki - 1) / 2) is phase tap t of rows y+a-1, y+a */
static int phase_tap(int a, int ki) { return (a + ki + 1) / 2 - a; }

/* In double, rounded once; over the output channels, then the elements. */
void wphase_transform_weights(GemmPacked packed[9], float *area, float *tmp, const float *weight,
                              int backward, int ci_n, int co_n) {
    int rows = backward ? ci_n : 4 * co_n, cols = backward ? 4 * co_n : ci_n;
    size_t each = packed_floats(ci_n, co_n), mat = (size_t)rows * cols; /* U[e] unpacked at tmp + e * mat */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < co_n; o++)
        for (int i = 0; i < ci_n; i++) {
            const float *g = weight + ((size_t)o * ci_n + i) * 9;
            for (int ph = 0; ph < 4; ph++) {
                double p[2][2] = {{0, 0}, {0, 0}};
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++) {
                        int t = phase_tap(ph >> 1, ki), u = phase_tap(ph & 1, kj);
                        if (backward) t = 1 - t, u = 1 - u;
                        p[t][u] += g[ki * 3 + kj];
                    }
                double gp[3][2]; /* G down the columns, then along the rows */
                for (int u = 0; u < 2; u++) gp[0][u] = p[0][u], gp[1][u] = p[0][u] + p[1][u], gp[2][u] = p[1][u];
                size_t at = backward ? (size_t)i * cols + ph * co_n + o : ((size_t)ph * co_n + o) * cols + i;
                for (int r = 0; r < 3; r++) {
                    tmp[(3 * r) * mat + at] = (float)gp[r][0];
                    tmp[(3 * r + 1) * mat + at] = (float)(gp[r][0] + gp[r][1]);
                    tmp[(3 * r + 2) * mat + at] = (float)gp[r][1];
                }
            }
        }
#pragma omp parallel for schedule(static)
    for (int e = 0; e < 9; e++) gemm_pack(&packed[e], area + e * each, tmp + e * mat, cols, rows, cols);
}

/* The forward (out: the upsampled output, x: the stored input) or, with
 * `backward`, d(input) (out: d(input), added to; x: d(output)), with the
 * weights U transformed for it. */
static void phase_conv(float *out, const float *x, const GemmPacked U[9], const float *bias,
                       int backward, int batch, int ci_n, int co_n, int h, int w,
                       float *thread_base, size_t thread_stride) {
    /* the forward's patches start at row -2 (see the header) */
    int th = backward ? (h + 1) / 2 : (h + 3) / 2, tw = backward ? (w + 1) / 2 : (w + 3) / 2;
    int tiles = th * tw, segs = (tiles + SEG - 1) / SEG;
    size_t hw = (size_t)h * w, vld = (size_t)(backward ? 4 * co_n : ci_n) * SEG;
    size_t mld = (size_t)(backward ? ci_n : 4 * co_n) * SEG;
    Fns fn = fns_for(U[0].kernel);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < batch * segs; job++) {
        int b = job / segs, q0 = job % segs * SEG, nt = tiles - q0 < SEG ? tiles - q0 : SEG;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + 9 * vld, *t = m + 9 * mld;
        Run runs[SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        if (backward)
            for (int ph = 0; ph < 4; ph++) { /* phase (a, c)'s d(output) rows 2ty-a .. 2ty-a+2 */
                int a = ph >> 1, c = ph & 1;
                fn.inputs_phase(v + (size_t)ph * co_n * SEG, vld, x + b * co_n * 4 * hw + 2 * a * w + c,
                                4 * hw, 4 * w, co_n, h, w, runs, nruns, nt, -a, -c, t);
            }
        else
            fn.inputs_stored(v, vld, x + b * ci_n * hw, hw, w, ci_n, h, w, runs, nruns, nt, -2, -2, t);
        for (int e = 0; e < 9; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, SEG, 0.0f, m + e * mld, SEG);
        if (backward)
            fn.outputs_stored(out + b * ci_n * hw, m, mld, ci_n, h, w, runs, nruns, nt, t);
        else
            fn.outputs_up(out + b * co_n * 4 * hw, m, mld, co_n, h, w, runs, nruns, nt, bias, t);
    }
}

void wphase_forward(float *out, const float *in, const float *weight, const float *bias, int batch,
                    int ci_n, int co_n, int h, int w, float *weight_area, float *thread_base,
                    size_t thread_stride) {
    GemmPacked U[9];
    wphase_transform_weights(U, weight_area, weight_area + wphase_packed_floats(ci_n, co_n), weight,
                             0, ci_n, co_n);
    phase_conv(out, in, U, bias, 0, batch, ci_n, co_n, h, w, thread_base, thread_stride);
}

void wphase_backward_input(float *din, const float *dout, const float *weight, int batch, int ci_n,
                           int co_n, int h, int w, float *weight_area, float *thread_base,
                           size_t thread_stride) {
    GemmPacked U[9];
    wphase_transform_weights(U, weight_area, weight_area + wphase_packed_floats(ci_n, co_n), weight,
                             1, ci_n, co_n);
    phase_conv(din, dout, U, NULL, 1, batch, ci_n, co_n, h, w, thread_base, thread_stride);
}

size_t wphase_grad_floats(int in_ch, int out_ch) { return (size_t)36 * in_ch * out_ch; }

void wphase_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int h, int w, float *slots, size_t slot_stride, int slot_count,
                            float *thread_base, size_t thread_stride) {
    int th = (h + 3) / 2, tw = (w + 3) / 2, tiles = th * tw; /* the forward's tiles */
    int segs = (tiles + SEG - 1) / SEG, jobs = batch * segs;
    int used = jobs < slot_count ? jobs : slot_count;
    size_t vld = (size_t)ci_n * SEG, mld = (size_t)4 * co_n * SEG, hw = (size_t)h * w;
    size_t mat = (size_t)4 * co_n * ci_n;
    Fns fn = fns_for(gemm_current_kernel());
#pragma omp parallel for schedule(dynamic)
    for (int slot = 0; slot < used; slot++) {
        float *partial = slots + (size_t)slot * slot_stride;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *dm = v + 9 * vld, *t = dm + 9 * mld;
        for (int job = slot; job < jobs; job += slot_count) {
            float beta = job == slot ? 0.0f : 1.0f; /* the slot's first job stores: no memset */
            int b = job / segs, q0 = job % segs * SEG, nt = tiles - q0 < SEG ? tiles - q0 : SEG;
            Run runs[SEG];
            int nruns = job_runs(runs, q0, nt, tw);
            fn.inputs_stored(v, vld, in + b * ci_n * hw, hw, w, ci_n, h, w, runs, nruns, nt, -2, -2, t);
            for (int ph = 0; ph < 4; ph++) {
                int a = ph >> 1, c = ph & 1;
                fn.grads(dm + (size_t)ph * co_n * SEG, mld, dout + b * co_n * 4 * hw + 2 * a * w + c,
                         4 * hw, 4 * w, co_n, h, w, runs, nruns, nt, -1 - a, -1 - c, t);
            }
            for (int e = 0; e < 9; e++) /* dU[e] += dM[e] V[e]^T */
                gemm_nt(4 * co_n, ci_n, nt, dm + e * mld, SEG, v + e * vld, SEG, beta,
                        partial + e * mat, ci_n);
        }
    }
    /* the slots' sum in slot order, in slot 0 */
#pragma omp parallel for schedule(static)
    for (size_t i0 = 0; i0 < 9 * mat; i0 += 4096) {
        size_t n = 9 * mat - i0 < 4096 ? 9 * mat - i0 : 4096;
        for (int slot = 1; slot < used; slot++) {
            const float *p = slots + (size_t)slot * slot_stride + i0;
            for (size_t i = 0; i < n; i++) slots[i0 + i] += p[i];
        }
    }
    /* dp = G^T dU G per phase, then each 3x3 tap gets the gradients of the
     * phase taps it was summed into */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < co_n; o++)
        for (int i = 0; i < ci_n; i++) {
            double dw[9] = {0};
            for (int ph = 0; ph < 4; ph++) {
                const float *du = slots + ((size_t)ph * co_n + o) * ci_n + i;
                double gu[2][3]; /* G^T = [1 1 0; 0 1 1] down the columns */
                for (int j = 0; j < 3; j++) {
                    double u0 = du[j * mat], u1 = du[(3 + j) * mat], u2 = du[(6 + j) * mat];
                    gu[0][j] = u0 + u1, gu[1][j] = u1 + u2;
                }
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++) {
                        const double *r = gu[phase_tap(ph >> 1, ki)];
                        dw[ki * 3 + kj] += phase_tap(ph & 1, kj) ? r[1] + r[2] : r[0] + r[1];
                    }
            }
            float *dst = dweight + ((size_t)o * ci_n + i) * 9;
            for (int k = 0; k < 9; k++) dst[k] += (float)dw[k];
        }
}
