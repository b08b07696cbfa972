#include "nn/winograd43.h"

#include <omp.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "nn/gemm.h"
#include "nn/winograd_weights.h"
#include "nn/winograd.h" /* wino_prefetch_rows, WINO_PREFETCH */

#define INLINE static inline __attribute__((always_inline))
#define E43 36 /* transformed elements per tile: 6 x 6 */
#define SEG WINO43_SEG
#define CHUNK (WINO43_CHUNK_SEGS * WINO43_SEG) /* tiles per chunk of the weight gradient */

/* (B^T d) of a 6-vector as six expressions (scalars, so that the loops over
 * tiles vectorise) */
#define BT6(o, d0, d1, d2, d3, d4, d5) BT6_OF(float, o, d0, d1, d2, d3, d4, d5)
#define BT6_OF(T, o, d0, d1, d2, d3, d4, d5)                                             \
    T o##0 = ((d4) - (d2)) + 4.0f * ((d0) - (d2)),                                  \
          o##1 = ((d3) + (d4)) - 4.0f * ((d1) + (d2)),                                  \
          o##2 = ((d4) - (d3)) + 4.0f * ((d1) - (d2)),                                  \
          o##3 = ((d4) - (d2)) + 2.0f * ((d3) - (d1)),                                  \
          o##4 = ((d4) - (d2)) - 2.0f * ((d3) - (d1)),                                  \
          o##5 = ((d5) - (d3)) + 4.0f * ((d1) - (d3))

/* (A^T m) of a 6-vector: four expressions */
#define AT4(o, m0, m1, m2, m3, m4, m5)                                                   \
    float o##p = (m1) + (m2), o##q = (m1) - (m2), o##r = (m3) + (m4), o##s = (m3) - (m4); \
    float o##0 = (m0) + o##p + o##r, o##1 = o##q + 2.0f * o##s, o##2 = o##p + 4.0f * o##r, \
          o##3 = o##q + 8.0f * o##s + (m5)

/* (A p) of a 4-vector: six expressions */
#define A6(o, p0, p1, p2, p3)                                                              \
    float o##e = (p0) + (p2), o##f = (p1) + (p3), o##g = (p0) + 4.0f * (p2),                \
          o##h = 2.0f * ((p1) + 4.0f * (p3));                                               \
    float o##0 = (p0), o##1 = o##e + o##f, o##2 = o##e - o##f, o##3 = o##g + o##h,          \
          o##4 = o##g - o##h, o##5 = (p3)

/* dst[j] = src[j], j < n: in blocks of constant size, which the compiler
 * inlines (a library call per short row cost ~7% of a d(input)) */
INLINE void copy_floats(float *dst, const float *src, int n) {
    int j = 0;
    for (; j + 16 <= n; j += 16) memcpy(dst + j, src + j, 16 * sizeof(float));
    for (; j + 4 <= n; j += 4) memcpy(dst + j, src + j, 4 * sizeof(float));
    for (; j < n; j++) memcpy(dst + j, src + j, sizeof(float));
}

/* A run of tiles of one tile row: tiles k0 .. k0+n-1 of the job, the first
 * with its patch's top left input pixel at (y0, x0) (its output tile starts
 * at (y0 + 1, x0 + 1)); consecutive tiles are 4 pixels apart. */
typedef struct {
    int k0, n, y0, x0;
} Run;

/* The job's tiles q0 .. q0+nt-1 (row-major, tw tiles per row) as row runs. */
static int job_runs(Run *runs, int q0, int nt, int tw) {
    int count = 0;
    for (int k = 0; k < nt;) {
        int q = q0 + k, ty = q / tw, tx = q % tw;
        int n = tw - tx < nt - k ? tw - tx : nt - k;
        runs[count++] = (Run){k, n, 4 * ty - 1, 4 * tx - 1};
        k += n;
    }
    return count;
}

/* B^T along one patch row for the tiles of run R: h_j[k] (h0 + j * SEG + k)
 * from the zero-padded row pr (4n + 2 floats, readable to 4n + 80). */
typedef void (*RowPass)(float *h0, const float *pr, int n);

INLINE void row_pass_body(float *h0, const float *pr, int n) {
    float *h1 = h0 + SEG, *h2 = h1 + SEG, *h3 = h2 + SEG, *h4 = h3 + SEG, *h5 = h4 + SEG;
    #pragma GCC ivdep /* streams of one buffer: too many alias checks */
    for (int k = 0; k < n; k++) {
        const float *p = pr + 4 * k;
        BT6(o, p[0], p[1], p[2], p[3], p[4], p[5]);
        h0[k] = o0, h1[k] = o1, h2[k] = o2, h3[k] = o3, h4[k] = o4, h5[k] = o5;
    }
}

/* Floats of one patch row copy: 4 SEG + 2, and what the AVX-512 row pass
 * reads past it (whole vectors) */
#define PATCH_ROW (4 * SEG + 80)
/* v[e * ld + c * cld + k] = (B^T d B)[e] for every channel c of x (h x w,
 * zero outside) and every tile k of the runs. hv: INPUT_FLOATS. A run's six
 * patch rows are copied (zero-padded) before any is read: a load right after
 * the copy's stores to the same lines, at another offset, cannot take its
 * data from them and waits (measured: a quarter of the transform's time). */
#define INPUT_FLOATS (36 * SEG + 6 * PATCH_ROW)
INLINE void inputs_body(float *v, size_t ld, size_t cld, const float *x, int ch, int h, int w,
                        const Run *runs, int nruns, int nt, float *hv, RowPass row_pass) {
    float *pr = hv + 36 * SEG; /* the run's patch rows r at pr + r * PATCH_ROW */
    for (int c = 0; c < ch; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int ri = 0; ri < nruns && c + WINO_PREFETCH < ch; ri++) /* as in winograd.h */
            wino_prefetch_rows(xc + (size_t)WINO_PREFETCH * h * w, h, w, runs[ri].y0, 6, runs[ri].x0,
                               4 * runs[ri].n + 2, 0);
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            int len = 4 * R->n + 2;
            /* columns x0 .. x0+len-1: [lo, hi) inside the row */
            int lo = R->x0 < 0 ? -R->x0 : 0, hi = w - R->x0 < len ? w - R->x0 : len;
            for (int r = 0; r < 6; r++) {
                int y = R->y0 + r;
                float *p = pr + r * PATCH_ROW;
                if (y < 0 || y >= h) continue;
                for (int j = 0; j < lo; j++) p[j] = 0.0f;
                copy_floats(p + lo, xc + (size_t)y * w + R->x0 + lo, hi - lo);
                for (int j = hi; j < len; j++) p[j] = 0.0f;
            }
            for (int r = 0; r < 6; r++) { /* B^T along each patch row: hv[(r*6 + t)*SEG + k] */
                int y = R->y0 + r;
                float *h0 = hv + (size_t)r * 6 * SEG + R->k0;
                if (y >= 0 && y < h) {
                    row_pass(h0, pr + r * PATCH_ROW, R->n);
                    continue;
                }
                for (int t = 0; t < 6; t++)
                    for (int k = 0; k < R->n; k++) h0[t * SEG + k] = 0.0f;
            }
        }
        for (int t = 0; t < 6; t++) { /* then B^T down the columns: element (u, t) */
            const float *r0 = hv + t * SEG, *r1 = r0 + 6 * SEG, *r2 = r1 + 6 * SEG,
                        *r3 = r2 + 6 * SEG, *r4 = r3 + 6 * SEG, *r5 = r4 + 6 * SEG;
            float *v0 = v + (size_t)t * ld + (size_t)c * cld, *v1 = v0 + 6 * ld, *v2 = v1 + 6 * ld,
                  *v3 = v2 + 6 * ld, *v4 = v3 + 6 * ld, *v5 = v4 + 6 * ld;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) {
                BT6(o, r0[k], r1[k], r2[k], r3[k], r4[k], r5[k]);
                v0[k] = o0, v1[k] = o1, v2[k] = o2, v3[k] = o3, v4[k] = o4, v5[k] = o5;
            }
        }
    }
}

/* Products m[e * ld + c * SEG + k] -> the runs' 4x4 output tiles in out
 * (h x w; pixels outside are dropped): added, or with `store` stored as
 * pixel + bias[c] (bias may be NULL). t: 44 * SEG floats. */
INLINE void outputs_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                         const Run *runs, int nruns, int nt, int store, const float *bias,
                         float *t) {
    float *s = t, *y = t + 24 * SEG, *row = t + 40 * SEG;
    for (int c = 0; c < ch; c++) {
        const float *mc = m + (size_t)c * SEG;
        for (int v = 0; v < 6; v++) { /* A^T down the columns: s[(a*6 + v)*SEG + k] */
            const float *m0 = mc + (size_t)v * ld, *m1 = m0 + 6 * ld, *m2 = m1 + 6 * ld,
                        *m3 = m2 + 6 * ld, *m4 = m3 + 6 * ld, *m5 = m4 + 6 * ld;
            float *s0 = s + v * SEG, *s1 = s0 + 6 * SEG, *s2 = s1 + 6 * SEG, *s3 = s2 + 6 * SEG;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) {
                AT4(o, m0[k], m1[k], m2[k], m3[k], m4[k], m5[k]);
                s0[k] = o0, s1[k] = o1, s2[k] = o2, s3[k] = o3;
            }
        }
        for (int a = 0; a < 4; a++) { /* then along the rows: y[(a*4 + b)*SEG + k] */
            const float *r = s + a * 6 * SEG;
            float *y0 = y + a * 4 * SEG, *y1 = y0 + SEG, *y2 = y1 + SEG, *y3 = y2 + SEG;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) {
                AT4(o, r[k], r[SEG + k], r[2 * SEG + k], r[3 * SEG + k], r[4 * SEG + k],
                    r[5 * SEG + k]);
                y0[k] = o0, y1[k] = o1, y2[k] = o2, y3[k] = o3;
            }
        }
        float b = bias ? bias[c] : 0.0f;
        float *oc = out + (size_t)c * h * w;
        for (int ri = 0; ri < nruns && c + WINO_PREFETCH < ch; ri++)
            wino_prefetch_rows(oc + (size_t)WINO_PREFETCH * h * w, h, w, runs[ri].y0 + 1, 4,
                               runs[ri].x0 + 1, 4 * runs[ri].n, 1);
        for (int a = 0; a < 4; a++) {
            const float *y0 = y + a * 4 * SEG, *y1 = y0 + SEG, *y2 = y1 + SEG, *y3 = y2 + SEG;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) /* pixel row a of every tile, interleaved */
                row[4 * k] = y0[k], row[4 * k + 1] = y1[k], row[4 * k + 2] = y2[k],
                row[4 * k + 3] = y3[k];
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                int oy = R->y0 + 1 + a, ox = R->x0 + 1;
                if (oy >= h) continue;
                int xn = w - ox < 4 * R->n ? w - ox : 4 * R->n; /* columns inside the map */
                float *dst = oc + (size_t)oy * w + ox;
                const float *src = row + 4 * R->k0;
                if (store)
                    for (int j = 0; j < xn; j++) dst[j] = src[j] + b;
                else
                    for (int j = 0; j < xn; j++) dst[j] += src[j];
            }
        }
    }
}

/* d(output) of the runs' tiles -> dM = A dY A^T: dm[e * ld + c * cld + k]
 * (d(output) is 0 outside the map). t: 28 * SEG floats. */
INLINE void grads_body(float *dm, size_t ld, size_t cld, const float *dy, int ch, int h, int w,
                       const Run *runs, int nruns, int nt, float *t) {
    float *s = t, *row = t + 24 * SEG;
    for (int c = 0; c < ch; c++) {
        const float *dc = dy + (size_t)c * h * w;
        for (int ri = 0; ri < nruns && c + WINO_PREFETCH < ch; ri++)
            wino_prefetch_rows(dc + (size_t)WINO_PREFETCH * h * w, h, w, runs[ri].y0 + 1, 4,
                               runs[ri].x0 + 1, 4 * runs[ri].n, 0);
        for (int r = 0; r < 4; r++) { /* A along each tile row: s[(r*6 + u)*SEG + k] */
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                int oy = R->y0 + 1 + r, ox = R->x0 + 1;
                float *dst = row + 4 * R->k0;
                int xn = oy >= h ? 0 : w - ox < 4 * R->n ? w - ox : 4 * R->n;
                copy_floats(dst, dc + (size_t)oy * w + ox, xn);
                for (int j = xn; j < 4 * R->n; j++) dst[j] = 0.0f;
            }
            float *s0 = s + r * 6 * SEG, *s1 = s0 + SEG, *s2 = s1 + SEG, *s3 = s2 + SEG,
                  *s4 = s3 + SEG, *s5 = s4 + SEG;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) {
                A6(o, row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]);
                s0[k] = o0, s1[k] = o1, s2[k] = o2, s3[k] = o3, s4[k] = o4, s5[k] = o5;
            }
        }
        for (int u = 0; u < 6; u++) { /* then down the columns: element (v, u) */
            const float *p0 = s + u * SEG, *p1 = p0 + 6 * SEG, *p2 = p1 + 6 * SEG,
                        *p3 = p2 + 6 * SEG;
            float *d0 = dm + (size_t)u * ld + (size_t)c * cld, *d1 = d0 + 6 * ld, *d2 = d1 + 6 * ld,
                  *d3 = d2 + 6 * ld, *d4 = d3 + 6 * ld, *d5 = d4 + 6 * ld;
            #pragma GCC ivdep /* streams of one buffer: too many alias checks */
            for (int k = 0; k < nt; k++) {
                A6(o, p0[k], p1[k], p2[k], p3[k]);
                d0[k] = o0, d1[k] = o1, d2[k] = o2, d3[k] = o3, d4[k] = o4, d5[k] = o5;
            }
        }
    }
}

static void row_pass_plain(float *h0, const float *pr, int n) { row_pass_body(h0, pr, n); }
static void inputs_plain(float *v, size_t ld, size_t cld, const float *x, int ch, int h, int w,
                         const Run *runs, int nruns, int nt, float *hv) {
    inputs_body(v, ld, cld, x, ch, h, w, runs, nruns, nt, hv, row_pass_plain);
}
static void outputs_plain(float *out, const float *m, size_t ld, int ch, int h, int w,
                          const Run *runs, int nruns, int nt, int store, const float *bias,
                          float *t) {
    outputs_body(out, m, ld, ch, h, w, runs, nruns, nt, store, bias, t);
}
static void grads_plain(float *dm, size_t ld, size_t cld, const float *dy, int ch, int h, int w,
                        const Run *runs, int nruns, int nt, float *t) {
    grads_body(dm, ld, cld, dy, ch, h, w, runs, nruns, nt, t);
}

typedef struct {
    void (*inputs)(float *, size_t, size_t, const float *, int, int, int, const Run *, int, int,
                   float *);
    void (*outputs)(float *, const float *, size_t, int, int, int, const Run *, int, int, int,
                    const float *, float *);
    void (*grads)(float *, size_t, size_t, const float *, int, int, int, const Run *, int, int,
                  float *);
} Fns;

#if defined(__x86_64__) || defined(__i386__)
/* The row pass 16 tiles at a time: the stride-4 columns d0 .. d3 of the
 * patches by two rounds of two-source permutes, d4 and d5 as d0 and d1
 * shifted by one tile; the same expressions as row_pass_body on whole
 * vectors (GCC vector extensions), so the same bits. The compiler's own
 * vectorisation of row_pass_body ran 8 tiles at a time with a scalar tail
 * (measured: ~60% of the inputs transform). */
typedef float V16 __attribute__((vector_size(64)));
__attribute__((target("avx512f"))) static inline void row_pass_avx512(float *h0, const float *pr,
                                                                     int n) {
    const __m512i even = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i odd = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i high = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int k = 0; k < n; k += 16) {
        const float *p = pr + 4 * k;
        __m512 a0 = _mm512_loadu_ps(p), a1 = _mm512_loadu_ps(p + 16), a2 = _mm512_loadu_ps(p + 32),
               a3 = _mm512_loadu_ps(p + 48), a4 = _mm512_loadu_ps(p + 64);
        __m512 e01 = _mm512_permutex2var_ps(a0, even, a1), e23 = _mm512_permutex2var_ps(a2, even, a3);
        __m512 o01 = _mm512_permutex2var_ps(a0, odd, a1), o23 = _mm512_permutex2var_ps(a2, odd, a3);
        __m512 c0 = _mm512_permutex2var_ps(e01, low, e23), c1 = _mm512_permutex2var_ps(e01, high, e23);
        __m512 c2 = _mm512_permutex2var_ps(o01, low, o23), c3 = _mm512_permutex2var_ps(o01, high, o23);
        __m512i a4i = _mm512_castps_si512(a4);
        __m512 c4 = _mm512_castsi512_ps(_mm512_alignr_epi32(a4i, _mm512_castps_si512(c0), 1));
        __m512 c5 = _mm512_castsi512_ps(
            _mm512_alignr_epi32(_mm512_alignr_epi32(a4i, a4i, 1), _mm512_castps_si512(c1), 1));
        V16 d0 = (V16)c0, d1 = (V16)c1, d2 = (V16)c2, d3 = (V16)c3, d4 = (V16)c4, d5 = (V16)c5;
        BT6_OF(V16, o, d0, d1, d2, d3, d4, d5);
        __mmask16 m = n - k >= 16 ? 0xffff : (__mmask16)((1u << (n - k)) - 1);
        float *h = h0 + k;
        _mm512_mask_storeu_ps(h, m, (__m512)o0);
        _mm512_mask_storeu_ps(h + SEG, m, (__m512)o1);
        _mm512_mask_storeu_ps(h + 2 * SEG, m, (__m512)o2);
        _mm512_mask_storeu_ps(h + 3 * SEG, m, (__m512)o3);
        _mm512_mask_storeu_ps(h + 4 * SEG, m, (__m512)o4);
        _mm512_mask_storeu_ps(h + 5 * SEG, m, (__m512)o5);
    }
}
__attribute__((target("avx512f"))) static void inputs_avx512(float *v, size_t ld, size_t cld,
                                                             const float *x, int ch, int h, int w,
                                                             const Run *runs, int nruns, int nt,
                                                             float *hv) {
    inputs_body(v, ld, cld, x, ch, h, w, runs, nruns, nt, hv, row_pass_avx512);
}
__attribute__((target("avx512f"))) static void outputs_avx512(float *out, const float *m, size_t ld,
                                                              int ch, int h, int w, const Run *runs,
                                                              int nruns, int nt, int store,
                                                              const float *bias, float *t) {
    outputs_body(out, m, ld, ch, h, w, runs, nruns, nt, store, bias, t);
}
__attribute__((target("avx512f"))) static void grads_avx512(float *dm, size_t ld, size_t cld,
                                                            const float *dy, int ch, int h, int w,
                                                            const Run *runs, int nruns, int nt,
                                                            float *t) {
    grads_body(dm, ld, cld, dy, ch, h, w, runs, nruns, nt, t);
}
#endif

/* the transforms that go with a GEMM kernel: the portable path stays
 * portable when tests force the plain C kernel */
static Fns fns_for(GemmKernel kernel) {
    Fns f = {inputs_plain, outputs_plain, grads_plain};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512) f = (Fns){inputs_avx512, outputs_avx512, grads_avx512};
#endif
    return f;
}

size_t wino43_weight_floats(int ci_n, int co_n) { return E43 * wino_packed_floats(ci_n, co_n); }

size_t wino43_shared_floats(int ci_n, int co_n) {
    size_t conv = wino43_weight_floats(ci_n, co_n);
    size_t grad = wino_grad_floats(E43, ci_n, co_n, CHUNK);
    return conv > grad ? conv : grad;
}

size_t wino43_thread_floats(int ci_n, int co_n) {
    size_t t = INPUT_FLOATS > 44 * SEG ? INPUT_FLOATS : 44 * SEG; /* transforms' scratch */
    return (size_t)E43 * (ci_n + co_n) * SEG + t;
}

/* (G x) of a 3-vector in double: six expressions (scalars, so that the loops
 * over kernels vectorise) */
#define G6(o, x0, x1, x2)                                                                   \
    double o##0 = 0.25 * (x0), o##1 = (-1.0 / 6) * (((x0) + (x2)) + (x1)),                  \
           o##2 = (-1.0 / 6) * (((x0) + (x2)) - (x1)),                                      \
           o##3 = (1.0 / 24) * (((x0) + 4.0 * (x2)) + 2.0 * (x1)),                          \
           o##4 = (1.0 / 24) * (((x0) + 4.0 * (x2)) - 2.0 * (x1)), o##5 = (x2)

/* (G^T m) of a 6-vector in double: three expressions */
#define GT3(o, m0, m1, m2, m3, m4, m5)                                                      \
    double o##0 = 0.25 * (m0) - (1.0 / 6) * ((m1) + (m2)) + (1.0 / 24) * ((m3) + (m4)),      \
           o##1 = (1.0 / 6) * ((m2) - (m1)) + (1.0 / 12) * ((m3) - (m4)),                    \
           o##2 = (1.0 / 6) * (((m3) + (m4)) - ((m1) + (m2))) + (m5)

#define GT3_OF(o, ...) GT3(o, __VA_ARGS__) /* expands the arguments first */

#define KCHUNK 16 /* kernels per step of the weight transforms */

/* U[e][j] = (G g G^T)[e] of kernel j < n, from its taps gt[t * KCHUNK + j],
 * at u + e * mat + j; in double, rounded once. */
INLINE void weights_body(float *u, size_t mat, const float *gt, int n) {
    enum { W = KCHUNK };
    const float *g = gt;
    float out[E43 * W]; /* at a constant stride, so that the loop vectorises */
    #pragma GCC ivdep /* streams of one buffer: too many alias checks */
    for (int j = 0; j < W; j++) {
        /* G down each of the 3 columns of g: c<col><row> */
        G6(c0, (double)g[j], (double)g[3 * W + j], (double)g[6 * W + j]);
        G6(c1, (double)g[W + j], (double)g[4 * W + j], (double)g[7 * W + j]);
        G6(c2, (double)g[2 * W + j], (double)g[5 * W + j], (double)g[8 * W + j]);
        /* then along each of the 6 rows: U[6a + b] = r<a><b> */
        G6(r0, c00, c10, c20);
        G6(r1, c01, c11, c21);
        G6(r2, c02, c12, c22);
        G6(r3, c03, c13, c23);
        G6(r4, c04, c14, c24);
        G6(r5, c05, c15, c25);
        float *d = out + j;
        d[0 * W] = (float)r00, d[1 * W] = (float)r01, d[2 * W] = (float)r02,
        d[3 * W] = (float)r03, d[4 * W] = (float)r04, d[5 * W] = (float)r05;
        d[6 * W] = (float)r10, d[7 * W] = (float)r11, d[8 * W] = (float)r12,
        d[9 * W] = (float)r13, d[10 * W] = (float)r14, d[11 * W] = (float)r15;
        d[12 * W] = (float)r20, d[13 * W] = (float)r21, d[14 * W] = (float)r22,
        d[15 * W] = (float)r23, d[16 * W] = (float)r24, d[17 * W] = (float)r25;
        d[18 * W] = (float)r30, d[19 * W] = (float)r31, d[20 * W] = (float)r32,
        d[21 * W] = (float)r33, d[22 * W] = (float)r34, d[23 * W] = (float)r35;
        d[24 * W] = (float)r40, d[25 * W] = (float)r41, d[26 * W] = (float)r42,
        d[27 * W] = (float)r43, d[28 * W] = (float)r44, d[29 * W] = (float)r45;
        d[30 * W] = (float)r50, d[31 * W] = (float)r51, d[32 * W] = (float)r52,
        d[33 * W] = (float)r53, d[34 * W] = (float)r54, d[35 * W] = (float)r55;
    }
    for (int e = 0; e < E43; e++) copy_floats(u + e * mat, out + e * W, n);
}

/* dw[j * 9 + t] += (G^T dU G)[t] of kernel j < n, from du[e * mat + j] */
INLINE void dg_body(float *dw, const float *du, size_t mat, int n) {
    enum { W = KCHUNK };
    double out[9 * W];
    #pragma GCC ivdep /* streams of one buffer: too many alias checks */
    for (int j = 0; j < W; j++) {
        const float *d = du + j;
#define COL(b) (double)d[(b) * mat], (double)d[(6 + (b)) * mat], (double)d[(12 + (b)) * mat], \
               (double)d[(18 + (b)) * mat], (double)d[(24 + (b)) * mat], (double)d[(30 + (b)) * mat]
        /* G^T down each of the 6 columns of dU: c<col><row> */
        GT3_OF(c0, COL(0));
        GT3_OF(c1, COL(1));
        GT3_OF(c2, COL(2));
        GT3_OF(c3, COL(3));
        GT3_OF(c4, COL(4));
        GT3_OF(c5, COL(5));
#undef COL
        /* then along each of the 3 rows */
        GT3(r0, c00, c10, c20, c30, c40, c50);
        GT3(r1, c01, c11, c21, c31, c41, c51);
        GT3(r2, c02, c12, c22, c32, c42, c52);
        double *o = out + j;
        o[0] = r00, o[W] = r01, o[2 * W] = r02, o[3 * W] = r10, o[4 * W] = r11, o[5 * W] = r12;
        o[6 * W] = r20, o[7 * W] = r21, o[8 * W] = r22;
    }
    for (int j = 0; j < n; j++)
        for (int t = 0; t < 9; t++) dw[j * 9 + t] += (float)out[t * W + j];
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
static void transform_weights(GemmPacked packed[E43], float *area, const float *weight,
                              int transpose, int ci_n, int co_n, int transformed) {
    WinoWeightBody body = weights_plain;
#if defined(__x86_64__) || defined(__i386__)
    if (gemm_current_kernel() == GEMM_KERNEL_AVX512) body = weights_avx512;
#endif
    wino_transform_weights(packed, E43, area, weight, 9, KCHUNK, transpose, ci_n, co_n, body,
                           transformed);
}

void wino43_conv(float *out, const float *in, const float *weight, int transpose, const float *bias,
                 int store, int batch, int ci_n, int co_n, int h, int w, float *weights_area,
                 int transformed, float *thread_base, size_t thread_stride) {
    GemmPacked U[E43];
    transform_weights(U, weights_area, weight, transpose, ci_n, co_n, transformed);
    int tw = (w + 3) / 4, tiles = (h + 3) / 4 * tw;
    int segs = (tiles + SEG - 1) / SEG, jobs = batch * segs;
    size_t vld = (size_t)ci_n * SEG, mld = (size_t)co_n * SEG, hw = (size_t)h * w;
    Fns fn = fns_for(U[0].kernel);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < jobs; job++) {
        int b = job / segs, q0 = job % segs * SEG;
        int nt = tiles - q0 < SEG ? tiles - q0 : SEG;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + E43 * vld, *t = m + E43 * mld;
        Run runs[SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        fn.inputs(v, vld, SEG, in + b * ci_n * hw, ci_n, h, w, runs, nruns, nt, t);
        for (int e = 0; e < E43; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, SEG, 0.0f, m + e * mld, SEG);
        fn.outputs(out + b * co_n * hw, m, mld, co_n, h, w, runs, nruns, nt, store, bias, t);
    }
}

void wino43_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int h, int w, float *shared, float *thread_base,
                            size_t thread_stride) {
    int tw = (w + 3) / 4, tiles = (h + 3) / 4 * tw;
    int segs = (tiles + SEG - 1) / SEG, jobs = batch * segs;
    int chunks = (jobs + WINO43_CHUNK_SEGS - 1) / WINO43_CHUNK_SEGS;
    size_t mat = (size_t)co_n * ci_n, vld = (size_t)ci_n * CHUNK, dld = (size_t)co_n * CHUNK;
    size_t hw = (size_t)h * w;
    float *du = shared, *v = du + E43 * mat, *dm = v + E43 * vld;
    Fns fn = fns_for(gemm_current_kernel());
    for (int chunk = 0; chunk < chunks; chunk++) {
        int j0 = chunk * WINO43_CHUNK_SEGS;
        int nj = jobs - j0 < WINO43_CHUNK_SEGS ? jobs - j0 : WINO43_CHUNK_SEGS;
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nj; i++) { /* job j0 + i -> columns i*SEG .. of the chunk */
            int b = (j0 + i) / segs, q0 = (j0 + i) % segs * SEG;
            int nt = tiles - q0 < SEG ? tiles - q0 : SEG;
            float *t = thread_base + (size_t)omp_get_thread_num() * thread_stride;
            Run runs[SEG];
            int nruns = job_runs(runs, q0, nt, tw);
            fn.inputs(v + i * SEG, vld, CHUNK, in + b * ci_n * hw, ci_n, h, w, runs, nruns, nt, t);
            fn.grads(dm + i * SEG, dld, CHUNK, dout + b * co_n * hw, co_n, h, w, runs, nruns, nt, t);
            wino_zero_past(v, vld, ci_n, dm, dld, co_n, E43, CHUNK, i * SEG, nt, SEG);
        }
        wino_chunk_grads(du, mat, dm, dld, v, vld, E43, co_n, ci_n, nj * SEG, CHUNK, chunk == 0);
    }
    /* dg = G^T dU G */
    void (*dg)(float *, const float *, size_t, int) = dg_plain;
#if defined(__x86_64__) || defined(__i386__)
    if (gemm_current_kernel() == GEMM_KERNEL_AVX512) dg = dg_avx512;
#endif
    wino_weight_grads(dweight, du, mat, co_n, ci_n, 9, KCHUNK, dg);
}
