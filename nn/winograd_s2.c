#include "nn/winograd_s2.h"

#include <omp.h>

#include "nn/gemm.h"
#include "nn/winograd_phase.h"

/* The job decomposition (Run, job_runs, inside) and the F(2x2, 2x2)
 * transforms (inputs_body, tile_outputs, grads_body) are winograd_phase.h's;
 * here the inputs are strided phase maps and the outputs a plain map. */
_Static_assert(WS2_SEG == WPHASE_SEG, "the shared transforms' buffers are WPHASE_SEG wide");

#define INLINE static inline __attribute__((always_inline))
#define SEG WS2_SEG

/* Products m[e * ld + c * SEG + k] -> the runs' 2x2 tiles A^T M A + bias[c]
 * (bias may be NULL) of each channel c of out (ch x h x w; tile (ty, tx) at
 * (2ty, 2tx), pixels outside dropped). t: 10 * SEG floats. */
INLINE void outputs_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                         const Run *runs, int nruns, int nt, const float *bias, float *t) {
    float *y = t + 6 * SEG; /* y[(2i + j) * SEG + k] */
    for (int c = 0; c < ch; c++) {
        tile_outputs(y, m + (size_t)c * SEG, ld, nt, t);
        float b = bias ? bias[c] : 0.0f;
        float *oc = out + (size_t)c * h * w;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            for (int i = 0; i < 2 && 2 * R->ty + i < h; i++) {
                float *dst = oc + (size_t)(2 * R->ty + i) * w;
                const float *y0 = y + 2 * i * SEG + R->k0, *y1 = y0 + SEG;
                int x0 = 2 * R->tx, lo, hi;
                inside(&lo, &hi, x0, 2, 1, w, R->n);
                for (int k = lo; k < hi; k++) dst[x0 + 2 * k] = y0[k] + b, dst[x0 + 2 * k + 1] = y1[k] + b;
                if (hi < R->n && x0 + 2 * hi < w) dst[x0 + 2 * hi] = y0[hi] + b; /* odd width: one column */
            }
        }
    }
}

/* d(input): products m[e * ld + (ph * ch + c) * SEG + k] -> added to din
 * (ch x h x w). Tile (ty, tx)'s four phase tiles fill the 4x4 block at rows
 * 4ty-1 .. 4ty+2 (phase a = 1's rows 2ty-1, 2ty give input rows 4ty-1,
 * 4ty+1; a = 0's 2ty, 2ty+1 give 4ty, 4ty+2), columns likewise: added row
 * by row, 4 contiguous values a tile. t: 22 * SEG floats. */
INLINE void outputs_din_body(float *din, const float *m, size_t ld, int ch, int h, int w,
                             const Run *runs, int nruns, int nt, float *t) {
    for (int c = 0; c < ch; c++) {
        float *y = t + 6 * SEG; /* y[(4ph + 2i + j) * SEG + k] */
        for (int ph = 0; ph < 4; ph++) tile_outputs(y + 4 * ph * SEG, m + (size_t)(ph * ch + c) * SEG, ld, nt, t);
        float *dc = din + (size_t)c * h * w;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            int x0 = 4 * R->tx - 1; /* the run's first column */
            /* tiles [lo, hi) have all four columns inside the row */
            int lo = x0 >= 0 ? 0 : (3 - x0) / 4, hi = w - 4 - x0 >= 0 ? (w - 4 - x0) / 4 + 1 : 0;
            if (lo > R->n) lo = R->n;
            if (hi > R->n) hi = R->n;
            if (hi < lo) hi = lo;
            for (int r = 0; r < 4; r++) {
                int iy = 4 * R->ty - 1 + r, a = 1 - (r & 1), i = r >> 1;
                if (iy < 0 || iy >= h) continue;
                /* columns 4tx-1 .. 4tx+2: phases b = 1, 0, 1, 0, tile columns j = 0, 0, 1, 1 */
                const float *row_y = y + (4 * (2 * a) + 2 * i) * SEG + R->k0;
                const float *s0 = row_y + 4 * SEG, *s1 = row_y, *s2 = row_y + 5 * SEG, *s3 = row_y + SEG;
                float *dst = dc + (size_t)iy * w;
                for (int k = lo; k < hi; k++) {
                    float *d = dst + (x0 + 4 * k);
                    d[0] += s0[k], d[1] += s1[k], d[2] += s2[k], d[3] += s3[k];
                }
                for (int k = 0; k < R->n; k++) { /* the tiles reaching past the row's ends */
                    if (k == lo) k = hi;
                    if (k >= R->n) break;
                    for (int q = 0; q < 4; q++) {
                        int col = x0 + 4 * k + q;
                        const float *src = q == 0 ? s0 : q == 1 ? s1 : q == 2 ? s2 : s3;
                        if (col >= 0 && col < w) dst[col] += src[k];
                    }
                }
            }
        }
    }
}

/* The transforms as functions: inputs of one phase of the input (step 2:
 * the forward, d(weight)) or of d(output) (step 1: d(input)), the
 * forward's and d(input)'s outputs, d(weight)'s dM. */
#define INPUTS_ARGS                                                                             \
    float *v, size_t ld, const float *x, size_t plane, size_t row, int ch, int h, int w,       \
        const Run *runs, int nruns, int nt, int oy, int ox, float *hv
#define OUTPUTS_ARGS                                                                            \
    float *out, const float *m, size_t ld, int ch, int h, int w, const Run *runs, int nruns,   \
        int nt, const float *bias, float *t
#define DIN_ARGS                                                                                \
    float *din, const float *m, size_t ld, int ch, int h, int w, const Run *runs, int nruns,   \
        int nt, float *t
#define GRADS_ARGS                                                                              \
    float *dm, size_t ld, const float *dy, size_t plane, int ch, int h, int w, const Run *runs, \
        int nruns, int nt, float *t
#define TRANSFORMS(suffix, attr)                                                                \
    attr static void inputs_phase_##suffix(INPUTS_ARGS) {                                       \
        inputs_body(v, ld, x, plane, row, 2, ch, h, w, runs, nruns, nt, oy, ox, hv);            \
    }                                                                                           \
    attr static void inputs_map_##suffix(INPUTS_ARGS) {                                         \
        inputs_body(v, ld, x, plane, row, 1, ch, h, w, runs, nruns, nt, oy, ox, hv);            \
    }                                                                                           \
    attr static void outputs_din_##suffix(DIN_ARGS) {                                           \
        outputs_din_body(din, m, ld, ch, h, w, runs, nruns, nt, t);                             \
    }                                                                                           \
    attr static void outputs_store_##suffix(OUTPUTS_ARGS) {                                     \
        outputs_body(out, m, ld, ch, h, w, runs, nruns, nt, bias, t);                           \
    }                                                                                           \
    attr static void grads_##suffix(GRADS_ARGS) {                                               \
        grads_body(dm, ld, dy, plane, w, 1, ch, h, w, runs, nruns, nt, 0, 0, t);                \
    }

TRANSFORMS(plain, )
#if defined(__x86_64__) || defined(__i386__)
TRANSFORMS(avx512, __attribute__((target("avx512f"))))
#endif

typedef struct {
    void (*inputs_phase)(INPUTS_ARGS);
    void (*inputs_map)(INPUTS_ARGS);
    void (*outputs_store)(OUTPUTS_ARGS);
    void (*outputs_din)(DIN_ARGS);
    void (*grads)(GRADS_ARGS);
} Fns;

/* the transforms that go with the GEMM kernel the weights were packed for:
 * the portable path stays portable when tests force the plain C kernel */
static Fns fns_for(GemmKernel kernel) {
    Fns f = {inputs_phase_plain, inputs_map_plain, outputs_store_plain, outputs_din_plain,
             grads_plain};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512)
        f = (Fns){inputs_phase_avx512, inputs_map_avx512, outputs_store_avx512,
                  outputs_din_avx512, grads_avx512};
#endif
    return f;
}

/* floats between the unpacked U[e] beyond their size (transform_weights) */
#define WS2_PAD 16

/* the forward's U [co x 4ci] or d(input)'s [4ci x co] */
static size_t packed_floats(int in_ch, int out_ch) {
    size_t a = gemm_packed_floats(out_ch, 4 * in_ch), b = gemm_packed_floats(4 * in_ch, out_ch);
    return a > b ? a : b;
}

size_t ws2_weight_floats(int in_ch, int out_ch) {
    return 9 * (packed_floats(in_ch, out_ch) + (size_t)4 * in_ch * out_ch + WS2_PAD);
}

size_t ws2_thread_floats(int in_ch, int out_ch) {
    return ((size_t)9 * (4 * in_ch + out_ch) + 22) * SEG;
}

size_t ws2_grad_floats(int in_ch, int out_ch) { return (size_t)36 * in_ch * out_ch; }

/* packed[e] = U[e] = (G p G^T)[e] of the phase kernels p[t][u] =
 * weight[2t+1-a][2u+1-b], [co x 4ci] at row o, column ph * ci_n + i; or for
 * d(input) (backward) of the flipped p, weight[3-a-2t][3-b-2u], [4ci x co]
 * at row ph * ci_n + i, column o. In double, rounded once. In parallel,
 * unlike winograd_phase.c's: serial, it cost l2 more than the products saved
 * at 2 threads (measured, batch 1, 32x32 outputs: forward 1.11 -> 1.03 ms,
 * d(input) 1.50 -> 1.31; im2col + GEMM 1.21, 1.49). */
static void transform_weights(GemmPacked packed[9], float *area, const float *weight, int backward,
                              int ci_n, int co_n) {
    /* U[e] unpacked at tmp + e * mat: WS2_PAD floats more than its size,
     * else at a power-of-two distance the write streams all map to the
     * same L1 cache sets (measured: l2's d(input) at 32x32, 1.6 -> 0.8 ms) */
    size_t each = packed_floats(ci_n, co_n), mat = (size_t)co_n * 4 * ci_n + WS2_PAD;
    float *tmp = area + 9 * each;
    int rows = backward ? 4 * ci_n : co_n, cols = backward ? co_n : 4 * ci_n;
#pragma omp parallel
    {
        /* row by row of the U[e], so that each of the 36 (e, phase) write
         * streams is contiguous */
#pragma omp for schedule(static)
        for (int ur = 0; ur < (backward ? ci_n : co_n); ur++)
            for (int uc = 0; uc < (backward ? co_n : ci_n); uc++) {
                int o = backward ? uc : ur, i = backward ? ur : uc;
                const float *g = weight + ((size_t)o * ci_n + i) * 16;
                for (int ph = 0; ph < 4; ph++) {
                    int a = ph >> 1, b = ph & 1;
                    double p[2][2];
                    for (int t = 0; t < 2; t++)
                        for (int u = 0; u < 2; u++)
                            p[t][u] = backward ? g[(3 - a - 2 * t) * 4 + 3 - b - 2 * u]
                                               : g[(2 * t + 1 - a) * 4 + 2 * u + 1 - b];
                    double gp[3][2]; /* G down the columns, then along the rows */
                    for (int u = 0; u < 2; u++) gp[0][u] = p[0][u], gp[1][u] = p[0][u] + p[1][u], gp[2][u] = p[1][u];
                    float *dst = backward ? tmp + ((size_t)ph * ci_n + i) * co_n + o
                                          : tmp + (size_t)o * 4 * ci_n + ph * ci_n + i;
                    for (int r = 0; r < 3; r++) {
                        dst[(3 * r) * mat] = (float)gp[r][0];
                        dst[(3 * r + 1) * mat] = (float)(gp[r][0] + gp[r][1]);
                        dst[(3 * r + 2) * mat] = (float)gp[r][1];
                    }
                }
            }
#pragma omp for schedule(static)
        for (int e = 0; e < 9; e++) gemm_pack(&packed[e], area + e * each, tmp + e * mat, cols, rows, cols);
    }
}

/* Tiles per job: WS2_SEG, or on small maps (D's smaller scales) less, down
 * to 32 (the AVX-512 microkernel's width), until there are at least 4 jobs
 * for the threads to share (measured, 2 threads, batch 1, 16x16 outputs:
 * one job of 64 tiles left a thread idle, l2's forward 0.41 -> 0.61 ms).
 * Only the shape decides, never the thread count. */
static int job_tiles(int batch, int tiles) {
    int n = SEG;
    while (n > 32 && batch * ((tiles + n - 1) / n) < 4) n /= 2;
    return n;
}

/* v = the four phases' input transforms of the job's tiles, phase ph at
 * rows ph * ci_n of each element (the forward and d(weight)). */
static void phase_inputs(const Fns *fn, float *v, size_t vld, const float *x, int ci_n, int h,
                         int w, const Run *runs, int nruns, int nt, float *t) {
    for (int ph = 0; ph < 4; ph++) {
        int a = ph >> 1, b = ph & 1;
        fn->inputs_phase(v + (size_t)ph * ci_n * SEG, vld, x + (size_t)a * w + b, (size_t)h * w,
                         (size_t)2 * w, ci_n, (h - a + 1) / 2, (w - b + 1) / 2, runs, nruns, nt, -a,
                         -b, t);
    }
}

void ws2_forward(float *out, const float *in, const float *weight, const float *bias, int batch,
                 int ci_n, int co_n, int h, int w, float *weight_area, float *thread_base,
                 size_t thread_stride) {
    GemmPacked U[9];
    transform_weights(U, weight_area, weight, 0, ci_n, co_n);
    int oh = h / 2, ow = w / 2, th = (oh + 1) / 2, tw = (ow + 1) / 2;
    int tiles = th * tw, seg = job_tiles(batch, tiles), segs = (tiles + seg - 1) / seg;
    size_t vld = (size_t)4 * ci_n * SEG, mld = (size_t)co_n * SEG;
    Fns fn = fns_for(U[0].kernel);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < batch * segs; job++) {
        int b = job / segs, q0 = job % segs * seg, nt = tiles - q0 < seg ? tiles - q0 : seg;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + 9 * vld, *t = m + 9 * mld;
        Run runs[SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        phase_inputs(&fn, v, vld, in + (size_t)b * ci_n * h * w, ci_n, h, w, runs, nruns, nt, t);
        for (int e = 0; e < 9; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, SEG, 0.0f, m + e * mld, SEG);
        fn.outputs_store(out + (size_t)b * co_n * oh * ow, m, mld, co_n, oh, ow, runs, nruns, nt,
                         bias, t);
    }
}

void ws2_backward_input(float *din, const float *dout, const float *weight, int batch, int ci_n,
                        int co_n, int h, int w, float *weight_area, float *thread_base,
                        size_t thread_stride) {
    GemmPacked U[9];
    transform_weights(U, weight_area, weight, 1, ci_n, co_n);
    int oh = h / 2, ow = w / 2, th = h / 4 + 1, tw = w / 4 + 1; /* blocks from row -1 (header) */
    int tiles = th * tw, seg = job_tiles(batch, tiles), segs = (tiles + seg - 1) / seg;
    size_t vld = (size_t)co_n * SEG, mld = (size_t)4 * ci_n * SEG;
    Fns fn = fns_for(U[0].kernel);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < batch * segs; job++) {
        int b = job / segs, q0 = job % segs * seg, nt = tiles - q0 < seg ? tiles - q0 : seg;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + 9 * vld, *t = m + 9 * mld;
        Run runs[SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        fn.inputs_map(v, vld, dout + (size_t)b * co_n * oh * ow, (size_t)oh * ow, ow, co_n, oh, ow,
                      runs, nruns, nt, -1, -1, t);
        for (int e = 0; e < 9; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, SEG, 0.0f, m + e * mld, SEG);
        fn.outputs_din(din + (size_t)b * ci_n * h * w, m, mld, ci_n, h, w, runs, nruns, nt, t);
    }
}

void ws2_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                         int co_n, int h, int w, float *slots, size_t slot_stride, int slot_count,
                         float *thread_base, size_t thread_stride) {
    int oh = h / 2, ow = w / 2, th = (oh + 1) / 2, tw = (ow + 1) / 2; /* the forward's tiles */
    int tiles = th * tw, seg = job_tiles(batch, tiles), segs = (tiles + seg - 1) / seg;
    int jobs = batch * segs;
    int used = jobs < slot_count ? jobs : slot_count;
    size_t vld = (size_t)4 * ci_n * SEG, mld = (size_t)co_n * SEG;
    size_t mat = (size_t)co_n * 4 * ci_n;
    Fns fn = fns_for(gemm_current_kernel());
#pragma omp parallel for schedule(dynamic)
    for (int slot = 0; slot < used; slot++) {
        float *partial = slots + (size_t)slot * slot_stride;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *dm = v + 9 * vld, *t = dm + 9 * mld;
        for (int job = slot; job < jobs; job += slot_count) {
            float beta = job == slot ? 0.0f : 1.0f; /* the slot's first job stores: no memset */
            int b = job / segs, q0 = job % segs * seg, nt = tiles - q0 < seg ? tiles - q0 : seg;
            Run runs[SEG];
            int nruns = job_runs(runs, q0, nt, tw);
            phase_inputs(&fn, v, vld, in + (size_t)b * ci_n * h * w, ci_n, h, w, runs, nruns, nt, t);
            fn.grads(dm, mld, dout + (size_t)b * co_n * oh * ow, (size_t)oh * ow, co_n, oh, ow,
                     runs, nruns, nt, t);
            for (int e = 0; e < 9; e++) /* dU[e] += dM[e] V[e]^T */
                gemm_nt(co_n, 4 * ci_n, nt, dm + e * mld, SEG, v + e * vld, SEG, beta,
                        partial + e * mat, 4 * ci_n);
        }
    }
    /* the slots' sum in slot order, in slot 0, then dp = G^T dU G per
     * phase: the taps weight[2t+1-a][2u+1-b]. Every element's sum runs in
     * the same order with any thread count. In parallel, unlike
     * winograd_phase.c's: serial, they cost l2's d(weight) more than the
     * products saved at 2 threads (measured, batch 1, 32x32 outputs: 1.30
     * -> 1.07 ms, im2col + GEMM 1.14; 16x16: 0.47 -> 0.36, direct 0.40) */
    size_t n = 9 * mat;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t i0 = 0; i0 < n; i0 += 4096) {
            size_t len = n - i0 < 4096 ? n - i0 : 4096;
            for (int slot = 1; slot < used; slot++) {
                const float *p = slots + (size_t)slot * slot_stride + i0;
                float *d = slots + i0;
                for (size_t i = 0; i < len; i++) d[i] += p[i];
            }
        }
#pragma omp for schedule(static)
        for (int o = 0; o < co_n; o++)
            for (int i = 0; i < ci_n; i++) {
                float *dst = dweight + ((size_t)o * ci_n + i) * 16;
                for (int ph = 0; ph < 4; ph++) {
                    int a = ph >> 1, b = ph & 1;
                    const float *du = slots + (size_t)o * 4 * ci_n + ph * ci_n + i;
                    double gu[2][3]; /* G^T = [1 1 0; 0 1 1] down the columns */
                    for (int j = 0; j < 3; j++) {
                        double u0 = du[j * mat], u1 = du[(3 + j) * mat], u2 = du[(6 + j) * mat];
                        gu[0][j] = u0 + u1, gu[1][j] = u1 + u2;
                    }
                    for (int t = 0; t < 2; t++)
                        for (int u = 0; u < 2; u++)
                            dst[(2 * t + 1 - a) * 4 + 2 * u + 1 - b] += (float)(gu[t][u] + gu[t][u + 1]);
                }
            }
    }
}
