#include "nn/winograd24.h"

#include <omp.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/winograd5.h"
#include "nn/winograd_weights.h"

#define INLINE static inline __attribute__((always_inline))
#define E24 25 /* transformed elements per tile: 5 x 5 */
#define CHUNK (WINO24_CHUNK_SEGS * WINO24_SEG) /* tiles per chunk of the weight gradient */

/* A run of tiles of one tile row: tiles k0 .. k0+n-1 of the job, the first
 * with its patch's top left input pixel at (y0, x0); consecutive tiles are
 * 2 pixels apart. */
typedef struct {
    int k0, n, y0, x0, ty, tx;
} Run;

/* The job's tiles q0 .. q0+nt-1 (row-major over th x tw tiles) as row runs. */
static int job_runs(Run *runs, int q0, int nt, int tw, int pad) {
    int count = 0;
    for (int k = 0; k < nt;) {
        int q = q0 + k, ty = q / tw, tx = q % tw;
        int n = tw - tx < nt - k ? tw - tx : nt - k;
        runs[count++] = (Run){k, n, 2 * ty - pad, 2 * tx - pad, ty, tx};
        k += n;
    }
    return count;
}

/* v[e * ld + c * cld + k] = (B^T d B)[e] for every channel c of x (h x w,
 * zero outside) and every tile k of the runs. hv: 5 * 5 * SEG floats. */
INLINE void inputs_body(float *v, size_t ld, size_t cld, const float *x, int ch, int h, int w,
                        const Run *runs, int nruns, int nt, float *hv) {
    for (int c = 0; c < ch; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int r = 0; r < 5; r++) { /* B^T along each patch row: hv[(r*5 + v)*SEG + k] */
            float *hr = hv + (size_t)r * 5 * WINO24_SEG;
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                int y = R->y0 + r;
                if (y < 0 || y >= h) {
                    for (int t = 0; t < 5; t++)
                        for (int k = R->k0; k < R->k0 + R->n; k++) hr[t * WINO24_SEG + k] = 0.0f;
                    continue;
                }
                const float *row = xc + (size_t)y * w;
                /* tiles [lo, hi) of the run have all five columns inside the row */
                int lo = R->x0 >= 0 ? 0 : (1 - R->x0) / 2;
                int hi = w - 5 - R->x0 >= 0 ? (w - 5 - R->x0) / 2 + 1 : 0;
                if (lo > R->n) lo = R->n;
                if (hi > R->n) hi = R->n;
                if (hi < lo) hi = lo;
                float *h0 = hr + R->k0, *h1 = h0 + WINO24_SEG, *h2 = h1 + WINO24_SEG,
                      *h3 = h2 + WINO24_SEG, *h4 = h3 + WINO24_SEG;
                const float *d = row + R->x0;
                for (int k = lo; k < hi; k++) {
                    BT5(o, d[2 * k], d[2 * k + 1], d[2 * k + 2], d[2 * k + 3], d[2 * k + 4]);
                    h0[k] = o0, h1[k] = o1, h2[k] = o2, h3[k] = o3, h4[k] = o4;
                }
                for (int k = 0; k < R->n; k++) {
                    if (k == lo) k = hi;
                    if (k >= R->n) break;
                    float e[5];
                    for (int j = 0; j < 5; j++) {
                        int col = R->x0 + 2 * k + j;
                        e[j] = col >= 0 && col < w ? row[col] : 0.0f;
                    }
                    BT5(o, e[0], e[1], e[2], e[3], e[4]);
                    h0[k] = o0, h1[k] = o1, h2[k] = o2, h3[k] = o3, h4[k] = o4;
                }
            }
        }
        for (int t = 0; t < 5; t++) { /* then B^T down the columns: element (u, t) */
            const float *r0 = hv + t * WINO24_SEG, *r1 = r0 + 5 * WINO24_SEG,
                        *r2 = r1 + 5 * WINO24_SEG, *r3 = r2 + 5 * WINO24_SEG,
                        *r4 = r3 + 5 * WINO24_SEG;
            float *v0 = v + (size_t)t * ld + (size_t)c * cld, *v1 = v0 + 5 * ld,
                  *v2 = v1 + 5 * ld, *v3 = v2 + 5 * ld, *v4 = v3 + 5 * ld;
#pragma GCC ivdep /* 5 output streams: too many run-time alias checks for GCC */
            for (int k = 0; k < nt; k++) {
                BT5(o, r0[k], r1[k], r2[k], r3[k], r4[k]);
                v0[k] = o0, v1[k] = o1, v2[k] = o2, v3[k] = o3, v4[k] = o4;
            }
        }
    }
}

/* Products m[e * ld + c * SEG + k] -> the runs' 2x2 output tiles in out
 * (h x w; pixels outside are dropped): added, or with `store` stored as
 * pixel + bias[c] (bias may be NULL). t: 14 * SEG floats. */
INLINE void outputs_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                         const Run *runs, int nruns, int nt, int pad, int store, const float *bias,
                         float *t) {
    for (int c = 0; c < ch; c++) {
        const float *mc = m + (size_t)c * WINO24_SEG;
        float *y00 = t, *y01 = t + WINO24_SEG, *y10 = t + 2 * WINO24_SEG, *y11 = t + 3 * WINO24_SEG;
        float *s = t + 4 * WINO24_SEG; /* s[(a*5 + v)*SEG + k]: A^T down the columns */
        for (int v = 0; v < 5; v++) {
            const float *m0 = mc + (size_t)v * ld, *m1 = m0 + 5 * ld, *m2 = m1 + 5 * ld,
                        *m3 = m2 + 5 * ld, *m4 = m3 + 5 * ld;
            float *s0 = s + v * WINO24_SEG, *s1 = s0 + 5 * WINO24_SEG;
            for (int k = 0; k < nt; k++) {
                s0[k] = (m0[k] + m1[k]) + (m2[k] + m3[k]);
                s1[k] = (m1[k] - m2[k]) + 2.0f * m3[k] + m4[k];
            }
        }
        for (int k = 0; k < nt; k++) { /* then along the rows */
            const float *s0 = s, *s1 = s + 5 * WINO24_SEG;
            enum { S = WINO24_SEG };
            y00[k] = (s0[k] + s0[S + k]) + (s0[2 * S + k] + s0[3 * S + k]);
            y01[k] = (s0[S + k] - s0[2 * S + k]) + 2.0f * s0[3 * S + k] + s0[4 * S + k];
            y10[k] = (s1[k] + s1[S + k]) + (s1[2 * S + k] + s1[3 * S + k]);
            y11[k] = (s1[S + k] - s1[2 * S + k]) + 2.0f * s1[3 * S + k] + s1[4 * S + k];
        }
        float *y[2][2] = {{y00, y01}, {y10, y11}};
        float b = bias ? bias[c] : 0.0f;
        float *oc = out + (size_t)c * h * w;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            for (int a = 0; a < 2; a++) {
                int oy = R->y0 + pad + a;
                if (oy >= h) continue;
                float *dst = oc + (size_t)oy * w + R->x0 + pad;
                for (int bx = 0; bx < 2; bx++) {
                    const float *src = y[a][bx] + R->k0;
                    int n = R->n; /* tiles whose column bx is inside */
                    if (R->x0 + pad + 2 * (n - 1) + bx >= w) n--;
                    if (store)
                        for (int k = 0; k < n; k++) dst[2 * k + bx] = src[k] + b;
                    else
                        for (int k = 0; k < n; k++) dst[2 * k + bx] += src[k];
                }
            }
        }
    }
}

/* (A p) of a 2-vector, A = (A^T)^T: five expressions */
#define A5(o, p0, p1)                                                                       \
    float o##0 = (p0), o##1 = (p0) + (p1), o##2 = (p0) - (p1), o##3 = (p0) + 2.0f * (p1), \
          o##4 = (p1)

/* dm[e * ld + c * cld + k] = (A dY A^T)[e] for every channel c of dy (h x w
 * outputs) and every 2x2 output tile k of the runs (d(output) is 0 outside
 * the map). t: 12 * SEG floats. */
INLINE void grads_body(float *dm, size_t ld, size_t cld, const float *dy, int ch, int h, int w,
                       const Run *runs, int nruns, int nt, float *t) {
    enum { S = WINO24_SEG };
    float *s = t, *row = t + 10 * S;
    for (int c = 0; c < ch; c++) {
        const float *dc = dy + (size_t)c * h * w;
        for (int r = 0; r < 2; r++) { /* A along each tile row: s[(r*5 + u)*SEG + k] */
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                int oy = 2 * R->ty + r, ox = 2 * R->tx;
                float *dst = row + 2 * R->k0;
                int xn = oy >= h ? 0 : w - ox < 2 * R->n ? w - ox : 2 * R->n;
                memcpy(dst, dc + (size_t)(xn ? oy : 0) * w + ox, (size_t)xn * sizeof(float));
                for (int j = xn; j < 2 * R->n; j++) dst[j] = 0.0f;
            }
            float *s0 = s + r * 5 * S, *s1 = s0 + S, *s2 = s1 + S, *s3 = s2 + S, *s4 = s3 + S;
#pragma GCC ivdep /* 5 output streams: too many run-time alias checks for GCC */
            for (int k = 0; k < nt; k++) {
                A5(o, row[2 * k], row[2 * k + 1]);
                s0[k] = o0, s1[k] = o1, s2[k] = o2, s3[k] = o3, s4[k] = o4;
            }
        }
        for (int u = 0; u < 5; u++) { /* then down the columns: element (v, u) */
            const float *p0 = s + u * S, *p1 = p0 + 5 * S;
            float *d0 = dm + (size_t)u * ld + (size_t)c * cld, *d1 = d0 + 5 * ld, *d2 = d1 + 5 * ld,
                  *d3 = d2 + 5 * ld, *d4 = d3 + 5 * ld;
#pragma GCC ivdep /* 5 output streams: too many run-time alias checks for GCC */
            for (int k = 0; k < nt; k++) {
                A5(o, p0[k], p1[k]);
                d0[k] = o0, d1[k] = o1, d2[k] = o2, d3[k] = o3, d4[k] = o4;
            }
        }
    }
}

static void inputs_plain(float *v, size_t ld, size_t cld, const float *x, int ch, int h, int w,
                         const Run *runs, int nruns, int nt, float *hv) {
    inputs_body(v, ld, cld, x, ch, h, w, runs, nruns, nt, hv);
}
static void outputs_plain(float *out, const float *m, size_t ld, int ch, int h, int w,
                          const Run *runs, int nruns, int nt, int pad, int store, const float *bias,
                          float *t) {
    outputs_body(out, m, ld, ch, h, w, runs, nruns, nt, pad, store, bias, t);
}
static void grads_plain(float *dm, size_t ld, size_t cld, const float *dy, int ch, int h, int w,
                        const Run *runs, int nruns, int nt, float *t) {
    grads_body(dm, ld, cld, dy, ch, h, w, runs, nruns, nt, t);
}

typedef struct {
    void (*inputs)(float *, size_t, size_t, const float *, int, int, int, const Run *, int, int,
                   float *);
    void (*outputs)(float *, const float *, size_t, int, int, int, const Run *, int, int, int, int,
                    const float *, float *);
    void (*grads)(float *, size_t, size_t, const float *, int, int, int, const Run *, int, int,
                  float *);
} Fns;

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void inputs_avx512(float *v, size_t ld, size_t cld,
                                                             const float *x, int ch, int h, int w,
                                                             const Run *runs, int nruns, int nt,
                                                             float *hv) {
    inputs_body(v, ld, cld, x, ch, h, w, runs, nruns, nt, hv);
}
__attribute__((target("avx512f"))) static void outputs_avx512(float *out, const float *m, size_t ld,
                                                              int ch, int h, int w, const Run *runs,
                                                              int nruns, int nt, int pad, int store,
                                                              const float *bias, float *t) {
    outputs_body(out, m, ld, ch, h, w, runs, nruns, nt, pad, store, bias, t);
}
__attribute__((target("avx512f"))) static void grads_avx512(float *dm, size_t ld, size_t cld,
                                                            const float *dy, int ch, int h, int w,
                                                            const Run *runs, int nruns, int nt,
                                                            float *t) {
    grads_body(dm, ld, cld, dy, ch, h, w, runs, nruns, nt, t);
}
#endif

/* the transforms that go with a GEMM kernel (the one the weights were
 * packed for; for d(weight), the current one): the portable path stays
 * portable when tests force the plain C kernel */
static Fns fns_for(GemmKernel kernel) {
    Fns f = {inputs_plain, outputs_plain, grads_plain};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512) f = (Fns){inputs_avx512, outputs_avx512, grads_avx512};
#endif
    return f;
}

size_t wino24_weight_floats(int in_ch, int out_ch) { return E24 * wino_packed_floats(in_ch, out_ch); }

size_t wino24_shared_floats(int in_ch, int out_ch) {
    size_t conv = wino24_weight_floats(in_ch, out_ch);
    size_t grad = wino_grad_floats(E24, in_ch, out_ch, CHUNK);
    return conv > grad ? conv : grad;
}

size_t wino24_thread_floats(int in_ch, int out_ch) {
    return (size_t)E24 * (in_ch + out_ch) * WINO24_SEG + (size_t)E24 * WINO24_SEG;
}

#define WEIGHT_CHUNK 64

/* (G x)[0..4] of a 4-vector as five expressions (scalars, so that the
 * loop over kernels vectorises; 1/6 as a product, not a division) */
#define G5(o, x0, x1, x2, x3)                                                     \
    float o##0 = 0.5f * (x0), o##1 = -0.5f * (((x0) + (x2)) + ((x1) + (x3))),    \
          o##2 = (((x1) + (x3)) - ((x0) + (x2))) * (1.0f / 6.0f),                 \
          o##3 = ((x0) + 2.0f * (x1) + 4.0f * (x2) + 8.0f * (x3)) * (1.0f / 6.0f), \
          o##4 = (x3)

/* U[e][o, i0 .. i0+n) = (G g G^T)[e] from gt[t * WEIGHT_CHUNK + j], the 16
 * taps of kernel (o, i0 + j): vectorised over j. */
INLINE void weights_body(float *u, size_t mat, const float *gt, int n) {
    enum { W = WEIGHT_CHUNK };
    const float *g = gt;
    float out[E24 * W]; /* at a constant stride, so that the loop vectorises */
    for (int j = 0; j < W; j++) {
        /* G down each of the 4 columns of g: c<col><row> */
        G5(c0, g[j], g[4 * W + j], g[8 * W + j], g[12 * W + j]);
        G5(c1, g[W + j], g[5 * W + j], g[9 * W + j], g[13 * W + j]);
        G5(c2, g[2 * W + j], g[6 * W + j], g[10 * W + j], g[14 * W + j]);
        G5(c3, g[3 * W + j], g[7 * W + j], g[11 * W + j], g[15 * W + j]);
        /* then along each of the 5 rows: U[5a + b] */
        G5(r0, c00, c10, c20, c30);
        G5(r1, c01, c11, c21, c31);
        G5(r2, c02, c12, c22, c32);
        G5(r3, c03, c13, c23, c33);
        G5(r4, c04, c14, c24, c34);
        float *d = out + j;
        d[0 * W] = r00, d[1 * W] = r01, d[2 * W] = r02, d[3 * W] = r03, d[4 * W] = r04;
        d[5 * W] = r10, d[6 * W] = r11, d[7 * W] = r12, d[8 * W] = r13, d[9 * W] = r14;
        d[10 * W] = r20, d[11 * W] = r21, d[12 * W] = r22, d[13 * W] = r23, d[14 * W] = r24;
        d[15 * W] = r30, d[16 * W] = r31, d[17 * W] = r32, d[18 * W] = r33, d[19 * W] = r34;
        d[20 * W] = r40, d[21 * W] = r41, d[22 * W] = r42, d[23 * W] = r43, d[24 * W] = r44;
    }
    for (int e = 0; e < E24; e++) memcpy(u + e * mat, out + e * W, (size_t)n * sizeof(float));
}

/* (G^T m) of a 5-vector in double: four expressions */
#define GT4(o, m0, m1, m2, m3, m4)                                                          \
    double o##0 = 0.5 * ((m0) - (m1)) + (1.0 / 6) * ((m3) - (m2)),                           \
           o##1 = -0.5 * (m1) + (1.0 / 6) * (m2) + (1.0 / 3) * (m3),                         \
           o##2 = -0.5 * (m1) - (1.0 / 6) * (m2) + (2.0 / 3) * (m3),                         \
           o##3 = -0.5 * (m1) + (1.0 / 6) * (m2) + (4.0 / 3) * (m3) + (m4)

#define GT4_OF(o, ...) GT4(o, __VA_ARGS__) /* expands the arguments first */

/* dw[j * 16 + t] += (G^T dU G)[t] of kernel j < n, from du[e * mat + j] */
INLINE void dg_body(float *dw, const float *du, size_t mat, int n) {
    enum { W = WEIGHT_CHUNK };
    double out[16 * W];
    for (int j = 0; j < W; j++) {
        const float *d = du + j;
#define COL(b) (double)d[(b) * mat], (double)d[(5 + (b)) * mat], (double)d[(10 + (b)) * mat], \
               (double)d[(15 + (b)) * mat], (double)d[(20 + (b)) * mat]
        /* G^T down each of the 5 columns of dU: c<col><row> */
        GT4_OF(c0, COL(0));
        GT4_OF(c1, COL(1));
        GT4_OF(c2, COL(2));
        GT4_OF(c3, COL(3));
        GT4_OF(c4, COL(4));
#undef COL
        /* then along each of the 4 rows */
        GT4(r0, c00, c10, c20, c30, c40);
        GT4(r1, c01, c11, c21, c31, c41);
        GT4(r2, c02, c12, c22, c32, c42);
        GT4(r3, c03, c13, c23, c33, c43);
        double *o = out + j;
        o[0] = r00, o[W] = r01, o[2 * W] = r02, o[3 * W] = r03;
        o[4 * W] = r10, o[5 * W] = r11, o[6 * W] = r12, o[7 * W] = r13;
        o[8 * W] = r20, o[9 * W] = r21, o[10 * W] = r22, o[11 * W] = r23;
        o[12 * W] = r30, o[13 * W] = r31, o[14 * W] = r32, o[15 * W] = r33;
    }
    for (int j = 0; j < n; j++)
        for (int t = 0; t < 16; t++) dw[j * 16 + t] += (float)out[t * W + j];
}

static void weights_plain(float *u, size_t mat, const float *gt, int n) { weights_body(u, mat, gt, n); }
static void dg_plain(float *dw, const float *du, size_t mat, int n) { dg_body(dw, du, mat, n); }
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void weights_avx512(float *u, size_t mat, const float *gt,
                                                              int n) {
    weights_body(u, mat, gt, n);
}
__attribute__((target("avx512f"))) static void dg_avx512(float *dw, const float *du, size_t mat,
                                                         int n) {
    dg_body(dw, du, mat, n);
}
#endif

/* packed[e] = U[e] [co_n x ci_n] (winograd_weights.h) */
static void transform_weights(GemmPacked packed[E24], float *area, const float *weight,
                              int transpose, int ci_n, int co_n, int transformed) {
    WinoWeightBody body = weights_plain;
#if defined(__x86_64__) || defined(__i386__)
    if (gemm_current_kernel() == GEMM_KERNEL_AVX512) body = weights_avx512;
#endif
    wino_transform_weights(packed, E24, area, weight, 16, WEIGHT_CHUNK, transpose, ci_n, co_n,
                           body, transformed);
}

void wino24_conv(float *out, const float *in, const float *weight, int transpose, const float *bias,
                 int store, int batch, int ci_n, int co_n, int in_h, int in_w, int out_h, int out_w,
                 int pad, float *weight_area, int transformed, float *thread_base,
                 size_t thread_stride) {
    GemmPacked U[E24];
    transform_weights(U, weight_area, weight, transpose, ci_n, co_n, transformed);
    int th = (out_h + 1) / 2, tw = (out_w + 1) / 2, tiles = th * tw;
    int segs = (tiles + WINO24_SEG - 1) / WINO24_SEG, jobs = batch * segs;
    size_t vld = (size_t)ci_n * WINO24_SEG, mld = (size_t)co_n * WINO24_SEG;
    Fns fn = fns_for(U[0].kernel);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < jobs; job++) {
        int b = job / segs, q0 = job % segs * WINO24_SEG;
        int nt = tiles - q0 < WINO24_SEG ? tiles - q0 : WINO24_SEG;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + E24 * vld, *t = m + E24 * mld;
        Run runs[WINO24_SEG];
        int nruns = job_runs(runs, q0, nt, tw, pad);
        fn.inputs(v, vld, WINO24_SEG, in + (size_t)b * ci_n * in_h * in_w, ci_n, in_h, in_w, runs,
                  nruns, nt, t);
        for (int e = 0; e < E24; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, WINO24_SEG, 0.0f, m + e * mld, WINO24_SEG);
        fn.outputs(out + (size_t)b * co_n * out_h * out_w, m, mld, co_n, out_h, out_w, runs, nruns,
                   nt, pad, store, bias, t);
    }
}

void wino24_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int in_h, int in_w, int out_h, int out_w, int pad,
                            float *shared, float *thread_base, size_t thread_stride) {
    int tw = (out_w + 1) / 2, tiles = (out_h + 1) / 2 * tw;
    int segs = (tiles + WINO24_SEG - 1) / WINO24_SEG, jobs = batch * segs;
    int chunks = (jobs + WINO24_CHUNK_SEGS - 1) / WINO24_CHUNK_SEGS;
    size_t mat = (size_t)co_n * ci_n, vld = (size_t)ci_n * CHUNK, dld = (size_t)co_n * CHUNK;
    size_t in_hw = (size_t)in_h * in_w, out_hw = (size_t)out_h * out_w;
    float *du = shared, *v = du + E24 * mat, *dm = v + E24 * vld;
    Fns fn = fns_for(gemm_current_kernel());
    for (int chunk = 0; chunk < chunks; chunk++) {
        int j0 = chunk * WINO24_CHUNK_SEGS;
        int nj = jobs - j0 < WINO24_CHUNK_SEGS ? jobs - j0 : WINO24_CHUNK_SEGS;
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nj; i++) { /* job j0 + i -> columns i*SEG .. of the chunk */
            int b = (j0 + i) / segs, q0 = (j0 + i) % segs * WINO24_SEG;
            int nt = tiles - q0 < WINO24_SEG ? tiles - q0 : WINO24_SEG;
            float *t = thread_base + (size_t)omp_get_thread_num() * thread_stride;
            Run runs[WINO24_SEG];
            int nruns = job_runs(runs, q0, nt, tw, pad);
            fn.inputs(v + i * WINO24_SEG, vld, CHUNK, in + b * ci_n * in_hw, ci_n, in_h, in_w, runs,
                      nruns, nt, t);
            fn.grads(dm + i * WINO24_SEG, dld, CHUNK, dout + b * co_n * out_hw, co_n, out_h, out_w,
                     runs, nruns, nt, t);
            wino_zero_past(v, vld, ci_n, dm, dld, co_n, E24, CHUNK, i * WINO24_SEG, nt, WINO24_SEG);
        }
        wino_chunk_grads(du, mat, dm, dld, v, vld, E24, co_n, ci_n, nj * WINO24_SEG, CHUNK,
                         chunk == 0);
    }
    /* dg = G^T dU G */
    void (*dg)(float *, const float *, size_t, int) = dg_plain;
#if defined(__x86_64__) || defined(__i386__)
    if (gemm_current_kernel() == GEMM_KERNEL_AVX512) dg = dg_avx512;
#endif
    wino_weight_grads(dweight, du, mat, co_n, ci_n, 16, WEIGHT_CHUNK, dg);
}
