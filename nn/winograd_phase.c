#include "nn/winograd_phase.h"

#include <omp.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/winograd5.h"

#define INLINE static inline __attribute__((always_inline))
#define SEG WPHASE_SEG
#define SEG4 WPHASE4_SEG

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

/* F(4x4, 2x2)'s (A^T m) of a 5-vector, A^T = [1 1 1 1 0; 0 1 -1 2 0;
 * 0 1 1 4 0; 0 1 -1 8 1]: four expressions */
#define AT4(o, m0, m1, m2, m3, m4)                                              \
    float o##0 = ((m0) + ((m1) + (m2))) + (m3), o##1 = ((m1) - (m2)) + 2.0f * (m3), \
          o##2 = ((m1) + (m2)) + 4.0f * (m3), o##3 = (((m1) - (m2)) + 8.0f * (m3)) + (m4)

/* Row span x0 .. x0+n-1 of a map row (src: the row, NULL outside the map;
 * w wide, 0 outside) -> buf[0 .. n). */
INLINE void span_row(float *buf, const float *src, int x0, int n, int w) {
    int lo = src && x0 < 0 ? -x0 : 0, hi = !src ? 0 : x0 + n < w ? n : w - x0;
    if (hi < lo) hi = lo;
    for (int q = 0; q < lo; q++) buf[q] = 0.0f;
    for (int q = lo; q < hi; q++) buf[q] = src[x0 + q];
    for (int q = hi; q < n; q++) buf[q] = 0.0f;
}

/* F(4x4, 2x2)'s V = B^T d B: v[e * ld + c * SEG4 + k], e = 5i + j, for every
 * channel c of a map (h x w, zero outside; pixel (y, x) at x[c * plane +
 * y * row + x]) and every tile k of the runs; tile (ty, tx)'s 5x5 patch
 * starts at (4ty + oy, 4tx + ox). A run's patch row is read as one span,
 * split into its 4 columns mod 4 (tile k's 5 columns are then s[q][k] and
 * s[0][k+1]: loads that vectorise). hv: 34 * SEG4 floats. */
INLINE void inputs4_body(float *v, size_t ld, const float *x, size_t plane, size_t row, int ch, int h,
                         int w, const Run *runs, int nruns, int nt, int oy, int ox, float *hv) {
    enum { S1 = SEG4 + 1 };
    float *buf = hv + 25 * SEG4, *sp = buf + 4 * S1;
    const float *s0 = sp, *s1 = s0 + S1, *s2 = s1 + S1, *s3 = s2 + S1;
    for (int c = 0; c < ch; c++) {
        const float *xc = x + (size_t)c * plane;
        for (int r = 0; r < 5; r++) { /* B^T along each patch row: hv[(5r + j) * SEG4 + k] */
            float *h0 = hv + 5 * r * SEG4;
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                float *a0 = h0 + R->k0, *a1 = a0 + SEG4, *a2 = a1 + SEG4, *a3 = a2 + SEG4,
                      *a4 = a3 + SEG4;
                int y = 4 * R->ty + oy + r;
                span_row(buf, y >= 0 && y < h ? xc + (size_t)y * row : NULL, 4 * R->tx + ox, 4 * R->n + 4, w);
                for (int k = 0; k <= R->n; k++)
                    for (int q = 0; q < 4; q++) sp[q * S1 + k] = buf[4 * k + q];
#pragma GCC ivdep
                for (int k = 0; k < R->n; k++) {
                    BT5(o, s0[k], s1[k], s2[k], s3[k], s0[k + 1]);
                    a0[k] = o0, a1[k] = o1, a2[k] = o2, a3[k] = o3, a4[k] = o4;
                }
            }
        }
        for (int j = 0; j < 5; j++) { /* then B^T down the columns */
            const float *r0 = hv + j * SEG4, *r1 = r0 + 5 * SEG4, *r2 = r1 + 5 * SEG4,
                        *r3 = r2 + 5 * SEG4, *r4 = r3 + 5 * SEG4;
            float *v0 = v + (size_t)j * ld + (size_t)c * SEG4, *v1 = v0 + 5 * ld, *v2 = v1 + 5 * ld,
                  *v3 = v2 + 5 * ld, *v4 = v3 + 5 * ld;
#pragma GCC ivdep /* 5 output streams: too many run-time alias checks for GCC */
            for (int k = 0; k < nt; k++) {
                BT5(o, r0[k], r1[k], r2[k], r3[k], r4[k]);
                v0[k] = o0, v1[k] = o1, v2[k] = o2, v3[k] = o3, v4[k] = o4;
            }
        }
    }
}

/* Prefetches the spans a job reads of a map (h x w): for each run, rows
 * 8ty + first .. + rows - 1, columns 8tx + first .. + 8n + extra - 9
 * (clipped): short rows, which the hardware prefetcher misses. */
INLINE void prefetch_spans(const float *x, const Run *runs, int nruns, int first, int rows, int extra,
                           int h, int w) {
    for (int ri = 0; ri < nruns; ri++) {
        const Run *R = &runs[ri];
        int x0 = 8 * R->tx + first, x1 = x0 + 8 * R->n + extra - 9;
        if (x0 < 0) x0 = 0;
        if (x1 > w - 1) x1 = w - 1;
        for (int r = 0; r < rows; r++) {
            int y = 8 * R->ty + first + r;
            if (y < 0 || y >= h || x1 < x0) continue;
            const float *src = x + (size_t)y * w;
            for (int q = x0; q <= x1; q += 16) __builtin_prefetch(src + q);
            __builtin_prefetch(src + x1);
        }
    }
}

/* d(input)'s V = B^T d B for the four phases' 5x5 patches of d(output):
 * phase (a, b)'s patch of tile (ty, tx) starts at its stored (4ty - a,
 * 4tx - b), i.e. upsampled (8ty - a, 8tx - b), so the four lie in the 10x10
 * block of dy (ch x 2h x 2w, 0 outside) at rows 8ty-1 .., columns 8tx-1 ..:
 * read a contiguous row span per run, split into its 8 columns mod 8 (then
 * tile k's 10 columns are s[q][k] and s[0][k+1], s[1][k+1]: loads that
 * vectorise). Phase ph's channel c goes to v[e * ld + (ph * ch + c) * SEG4 +
 * k]. hv: 118 * SEG4 floats. */
INLINE void inputs4_phases_body(float *v, size_t ld, const float *dy, int ch, int h, int w,
                                const Run *runs, int nruns, int nt, float *hv) {
    enum { S1 = SEG4 + 1 };
    int oh = 2 * h, ow = 2 * w;
    /* hv[(25ph + 5r + j) * SEG4 + k]: B^T along phase ph's patch row r */
    float *row = hv + 100 * SEG4, *sp = row + 8 * S1;
    const float *s0 = sp, *s1 = s0 + S1, *s2 = s1 + S1, *s3 = s2 + S1, *s4 = s3 + S1, *s5 = s4 + S1,
                *s6 = s5 + S1, *s7 = s6 + S1;
    for (int c = 0; c < ch; c++) {
        const float *dc = dy + (size_t)c * oh * ow;
        if (c + 1 < ch) prefetch_spans(dc + (size_t)oh * ow, runs, nruns, -1, 10, 10, oh, ow);
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            for (int rr = 0; rr < 10; rr++) { /* block row rr: phase a = 1 - (rr & 1), patch row rr >> 1 */
                int oy = 8 * R->ty - 1 + rr, a = 1 - (rr & 1), r = rr >> 1;
                span_row(row, oy >= 0 && oy < oh ? dc + (size_t)oy * ow : NULL, 8 * R->tx - 1,
                         8 * R->n + 8, ow);
                for (int k = 0; k <= R->n; k++)
                    for (int q = 0; q < 8; q++) sp[q * S1 + k] = row[8 * k + q];
                /* columns 1, 3, .. 9 of a tile's span: phase b = 0; 0, 2, .. 8: b = 1 */
                float *e0 = hv + (25 * 2 * a + 5 * r) * SEG4 + R->k0, *e1 = e0 + SEG4, *e2 = e1 + SEG4,
                      *e3 = e2 + SEG4, *e4 = e3 + SEG4;
                float *f0 = e0 + 25 * SEG4, *f1 = f0 + SEG4, *f2 = f1 + SEG4, *f3 = f2 + SEG4,
                      *f4 = f3 + SEG4;
#pragma GCC ivdep
                for (int k = 0; k < R->n; k++) {
                    BT5(o, s1[k], s3[k], s5[k], s7[k], s1[k + 1]);
                    BT5(p, s0[k], s2[k], s4[k], s6[k], s0[k + 1]);
                    e0[k] = o0, e1[k] = o1, e2[k] = o2, e3[k] = o3, e4[k] = o4;
                    f0[k] = p0, f1[k] = p1, f2[k] = p2, f3[k] = p3, f4[k] = p4;
                }
            }
        }
        for (int ph = 0; ph < 4; ph++)
            for (int j = 0; j < 5; j++) { /* then B^T down the columns */
                const float *r0 = hv + (25 * ph + j) * SEG4, *r1 = r0 + 5 * SEG4, *r2 = r1 + 5 * SEG4,
                            *r3 = r2 + 5 * SEG4, *r4 = r3 + 5 * SEG4;
                float *v0 = v + (size_t)j * ld + (size_t)(ph * ch + c) * SEG4, *v1 = v0 + 5 * ld,
                      *v2 = v1 + 5 * ld, *v3 = v2 + 5 * ld, *v4 = v3 + 5 * ld;
#pragma GCC ivdep
                for (int k = 0; k < nt; k++) {
                    BT5(o, r0[k], r1[k], r2[k], r3[k], r4[k]);
                    v0[k] = o0, v1[k] = o1, v2[k] = o2, v3[k] = o3, v4[k] = o4;
                }
            }
    }
}

/* A^T down the columns of one channel's F(4x4, 2x2) products mc[e * ld + k]:
 * t[(5i + j) * SEG4 + k], i < 4. */
INLINE void columns4(float *t, const float *mc, size_t ld, int nt) {
    for (int j = 0; j < 5; j++) {
        const float *m0 = mc + (size_t)j * ld, *m1 = m0 + 5 * ld, *m2 = m1 + 5 * ld,
                    *m3 = m2 + 5 * ld, *m4 = m3 + 5 * ld;
        float *s0 = t + j * SEG4, *s1 = s0 + 5 * SEG4, *s2 = s1 + 5 * SEG4, *s3 = s2 + 5 * SEG4;
#pragma GCC ivdep
        for (int k = 0; k < nt; k++) {
            AT4(o, m0[k], m1[k], m2[k], m3[k], m4[k]);
            s0[k] = o0, s1[k] = o1, s2[k] = o2, s3[k] = o3;
        }
    }
}

/* F(4x4, 2x2)'s forward: products m[e * ld + (ph * ch + c) * SEG4 + k] ->
 * out (ch x 2h x 2w) = pixel + bias[c] (bias may be NULL). Tile (ty, tx)'s
 * four phase tiles fill the 8x8 output block at rows 8ty-7 .. 8ty (phase
 * a = 1's stored rows 4ty-4 .. 4ty-1 give the odd rows, a = 0's 4ty-3 ..
 * 4ty the even ones), columns likewise. A^T along the rows stores each
 * block row's 8 values interleaved by phase, so that a run's tiles are one
 * contiguous span of each output row. t: 104 * SEG4 floats. */
INLINE void outputs4_up_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                             const Run *runs, int nruns, int nt, const float *bias, float *t) {
    int oh = 2 * h, ow = 2 * w;
    float *rows = t + 40 * SEG4; /* block row r of tile k at rows[r * 8 * SEG4 + 8k ..] */
    for (int c = 0; c < ch; c++) {
        for (int a = 0; a < 2; a++) {
            columns4(t, m + (size_t)((2 * a + 1) * ch + c) * SEG4, ld, nt); /* b = 1: even columns */
            columns4(t + 20 * SEG4, m + (size_t)(2 * a * ch + c) * SEG4, ld, nt);
            for (int i = 0; i < 4; i++) {
                const float *s0 = t + 5 * i * SEG4, *s1 = s0 + SEG4, *s2 = s1 + SEG4,
                            *s3 = s2 + SEG4, *s4 = s3 + SEG4;
                const float *u0 = s0 + 20 * SEG4, *u1 = u0 + SEG4, *u2 = u1 + SEG4,
                            *u3 = u2 + SEG4, *u4 = u3 + SEG4;
                float *dst = rows + (2 * i + 1 - a) * 8 * SEG4;
#pragma GCC ivdep
                for (int k = 0; k < nt; k++) {
                    AT4(o, s0[k], s1[k], s2[k], s3[k], s4[k]);
                    AT4(p, u0[k], u1[k], u2[k], u3[k], u4[k]);
                    float *d = dst + 8 * k;
                    d[0] = o0, d[1] = p0, d[2] = o1, d[3] = p1, d[4] = o2, d[5] = p2, d[6] = o3, d[7] = p3;
                }
            }
        }
        float b = bias ? bias[c] : 0.0f;
        float *oc = out + (size_t)c * oh * ow;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            int x0 = 8 * R->tx - 7; /* the run's first output column */
            int lo = x0 > 0 ? x0 : 0, hi = x0 + 8 * R->n < ow ? x0 + 8 * R->n : ow;
            for (int r = 0; r < 8; r++) {
                int oy = 8 * R->ty - 7 + r;
                if (oy < 0 || oy >= oh) continue;
                const float *src = rows + r * 8 * SEG4 + 8 * R->k0 - x0;
                float *dst = oc + (size_t)oy * ow;
                for (int x = lo; x < hi; x++) dst[x] = src[x] + b;
            }
        }
    }
}

/* F(4x4, 2x2)'s d(input): products m[e * ld + c * SEG4 + k] -> the runs'
 * 4x4 tiles, added to out (ch x h x w; tile (ty, tx) at (4ty, 4tx), pixels
 * outside dropped); A^T along the rows stores each tile row's 4 values
 * together, so that a run is a contiguous span. t: 36 * SEG4 floats. */
INLINE void outputs4_stored_body(float *out, const float *m, size_t ld, int ch, int h, int w,
                                 const Run *runs, int nruns, int nt, float *t) {
    float *rows = t + 20 * SEG4; /* tile row i of tile k at rows[i * 4 * SEG4 + 4k ..] */
    for (int c = 0; c < ch; c++) {
        columns4(t, m + (size_t)c * SEG4, ld, nt);
        for (int i = 0; i < 4; i++) {
            const float *s0 = t + 5 * i * SEG4, *s1 = s0 + SEG4, *s2 = s1 + SEG4, *s3 = s2 + SEG4,
                        *s4 = s3 + SEG4;
            float *dst = rows + i * 4 * SEG4;
#pragma GCC ivdep
            for (int k = 0; k < nt; k++) {
                AT4(o, s0[k], s1[k], s2[k], s3[k], s4[k]);
                float *d = dst + 4 * k;
                d[0] = o0, d[1] = o1, d[2] = o2, d[3] = o3;
            }
        }
        float *oc = out + (size_t)c * h * w;
        for (int ri = 0; ri < nruns; ri++) {
            const Run *R = &runs[ri];
            int x0 = 4 * R->tx, hi = x0 + 4 * R->n < w ? x0 + 4 * R->n : w;
            for (int i = 0; i < 4 && 4 * R->ty + i < h; i++) {
                const float *src = rows + i * 4 * SEG4 + 4 * R->k0 - x0;
                float *dst = oc + (size_t)(4 * R->ty + i) * w;
                for (int x = x0; x < hi; x++) dst[x] += src[x];
            }
        }
    }
}

/* The transforms as functions: F(2x2, 2x2)'s for eval forwards and
 * d(weight), F(4x4, 2x2)'s for training forwards and d(input); the inputs
 * of the stored input, or of the four phases of d(output) (d(input)), and
 * d(weight)'s dM of one phase of d(output). */
#define INPUTS_ARGS                                                                             \
    float *v, size_t ld, const float *x, size_t plane, size_t row, int ch, int h, int w,       \
        const Run *runs, int nruns, int nt, int oy, int ox, float *hv
#define PHASES_ARGS                                                                             \
    float *v, size_t ld, const float *x, int ch, int h, int w, const Run *runs, int nruns,     \
        int nt, float *hv
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
    attr static void outputs_up_##suffix(UP_ARGS) {                                             \
        outputs_up_body(out, m, ld, ch, h, w, runs, nruns, nt, bias, t);                        \
    }                                                                                           \
    attr static void grads_phase_##suffix(GRADS_ARGS) {                                         \
        grads_body(dm, ld, dy, plane, row, 2, ch, h, w, runs, nruns, nt, oy, ox, t);            \
    }                                                                                           \
    attr static void inputs4_stored_##suffix(INPUTS_ARGS) {                                     \
        inputs4_body(v, ld, x, plane, row, ch, h, w, runs, nruns, nt, oy, ox, hv);              \
    }                                                                                           \
    attr static void inputs4_phases_##suffix(PHASES_ARGS) {                                     \
        inputs4_phases_body(v, ld, x, ch, h, w, runs, nruns, nt, hv);                           \
    }                                                                                           \
    attr static void outputs4_up_##suffix(UP_ARGS) {                                            \
        outputs4_up_body(out, m, ld, ch, h, w, runs, nruns, nt, bias, t);                       \
    }                                                                                           \
    attr static void outputs4_stored_##suffix(STORED_ARGS) {                                    \
        outputs4_stored_body(out, m, ld, ch, h, w, runs, nruns, nt, t);                         \
    }

TRANSFORMS(plain, )
#if defined(__x86_64__) || defined(__i386__)
TRANSFORMS(avx512, __attribute__((target("avx512f"))))
#endif

/* The forward's transforms for both forms; F(2x2, 2x2)'s also d(weight)'s,
 * F(4x4, 2x2)'s d(input)'s (NULL where the form does not run them). */
typedef struct {
    void (*inputs_stored)(INPUTS_ARGS);
    void (*outputs_up)(UP_ARGS);
    void (*grads)(GRADS_ARGS);
    void (*inputs_phases)(PHASES_ARGS);
    void (*outputs_stored)(STORED_ARGS);
} Fns;

/* A Winograd form of the phase convs: F(tile x tile, 2x2), `elements`
 * transformed values per tile, `seg` tiles per job, and its transforms. */
typedef struct {
    int tile, elements, seg;
    Fns fn;
} Form;

/* the form's transforms that go with the GEMM kernel the weights were
 * packed for (for d(weight), the current one): the portable path stays
 * portable when tests force the plain C kernel */
static Form form_for(int tile, GemmKernel kernel) {
    Form f = {2, 9, SEG, {inputs_stored_plain, outputs_up_plain, grads_phase_plain, NULL, NULL}};
    if (tile == 4)
        f = (Form){4, 25, SEG4, {inputs4_stored_plain, outputs4_up_plain, NULL, inputs4_phases_plain,
                                 outputs4_stored_plain}};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512)
        f.fn = tile == 4 ? (Fns){inputs4_stored_avx512, outputs4_up_avx512, NULL,
                                 inputs4_phases_avx512, outputs4_stored_avx512}
                         : (Fns){inputs_stored_avx512, outputs_up_avx512, grads_phase_avx512, NULL, NULL};
#endif
    return f;
}

static size_t packed_floats(int in_ch, int out_ch) {
    size_t a = gemm_packed_floats(4 * out_ch, in_ch), b = gemm_packed_floats(in_ch, 4 * out_ch);
    return a > b ? a : b;
}

size_t wphase_packed_floats(int in_ch, int out_ch) { return 9 * packed_floats(in_ch, out_ch); }

size_t wphase_weight_floats(int in_ch, int out_ch) {
    size_t f22 = wphase_packed_floats(in_ch, out_ch) + (size_t)36 * in_ch * out_ch;
    size_t f42 = 25 * packed_floats(in_ch, out_ch);
    return f22 > f42 ? f22 : f42;
}

size_t wphase_thread_floats(int in_ch, int out_ch) {
    size_t f22 = ((size_t)9 * (in_ch + 4 * out_ch) + 22) * SEG;
    size_t f42 = ((size_t)25 * (in_ch + 4 * out_ch) + 118) * SEG4;
    return f22 > f42 ? f22 : f42;
}

/* stored row y + floor((a + ki - 1) / 2) is phase tap t of rows y+a-1, y+a */
static int phase_tap(int a, int ki) { return (a + ki + 1) / 2 - a; }

/* p = phase ph's 2x2 kernel of the 3x3 kernel g, or with `backward` its
 * flip (d(input)), in double */
static void phase_kernel(double p[2][2], const float *g, int ph, int backward) {
    p[0][0] = p[0][1] = p[1][0] = p[1][1] = 0.0;
    for (int ki = 0; ki < 3; ki++)
        for (int kj = 0; kj < 3; kj++) {
            int t = phase_tap(ph >> 1, ki), u = phase_tap(ph & 1, kj);
            if (backward) t = 1 - t, u = 1 - u;
            p[t][u] += g[ki * 3 + kj];
        }
}

/* In double, rounded once; over the output channels, then the elements. */
void wphase_transform_weights(GemmPacked packed[9], float *area, float *tmp, const float *weight,
                              int ci_n, int co_n) {
    size_t each = packed_floats(ci_n, co_n), mat = (size_t)4 * co_n * ci_n; /* U[e] unpacked at tmp + e * mat */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < co_n; o++)
        for (int i = 0; i < ci_n; i++) {
            const float *g = weight + ((size_t)o * ci_n + i) * 9;
            for (int ph = 0; ph < 4; ph++) {
                double p[2][2];
                phase_kernel(p, g, ph, 0);
                double gp[3][2]; /* G down the columns, then along the rows */
                for (int u = 0; u < 2; u++) gp[0][u] = p[0][u], gp[1][u] = p[0][u] + p[1][u], gp[2][u] = p[1][u];
                size_t at = ((size_t)ph * co_n + o) * ci_n + i;
                for (int r = 0; r < 3; r++) {
                    tmp[(3 * r) * mat + at] = (float)gp[r][0];
                    tmp[(3 * r + 1) * mat + at] = (float)(gp[r][0] + gp[r][1]);
                    tmp[(3 * r + 2) * mat + at] = (float)gp[r][1];
                }
            }
        }
#pragma omp parallel for schedule(static)
    for (int e = 0; e < 9; e++) gemm_pack(&packed[e], area + e * each, tmp + e * mat, ci_n, 4 * co_n, ci_n);
}

/* F(4x4, 2x2)'s G: points 0, 1, -1, 2, infinity (winograd5.h), the
 * fractions here so that A^T is integer */
static const double G4[5][2] = {{0.5, 0.0}, {-0.5, -0.5}, {-1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3}, {0.0, 1.0}};

/* F(4x4, 2x2)'s U[e] = (G p G^T)[e] as wphase_transform_weights, in double,
 * written straight into the packed layout (gemm.h) over the packed rows,
 * zeros in the strip's rows past the last. */
static void transform_weights4(GemmPacked packed[25], float *area, const float *weight, int backward,
                               int ci_n, int co_n) {
    enum { STRIP_MAX = 16 }; /* the GEMM kernels' strips: 8 (AVX-512), 6, 4 */
    int rows = backward ? ci_n : 4 * co_n, cols = backward ? 4 * co_n : ci_n;
    size_t each = packed_floats(ci_n, co_n);
    for (int e = 0; e < 25; e++) gemm_packed_layout(&packed[e], area + e * each, rows, cols);
    int strip = gemm_packed_strip(&packed[0]), strips = (rows + strip - 1) / strip;
#pragma omp parallel for schedule(static)
    for (int sj = 0; sj < strips; sj++) /* a strip's rows of a column are contiguous */
        for (int c = 0; c < cols; c++) {
            /* the strip's phase kernels (zero past the last row), then G p G^T
             * over the rows as vector lanes */
            double p[2][2][STRIP_MAX], gp[5][2][STRIP_MAX];
            for (int rr = 0; rr < strip; rr++) {
                int r = sj * strip + rr, i = backward ? r : c, q = backward ? c : r, o = q % co_n;
                double k[2][2] = {{0, 0}, {0, 0}};
                if (r < rows) phase_kernel(k, weight + ((size_t)o * ci_n + i) * 9, q / co_n, backward);
                p[0][0][rr] = k[0][0], p[0][1][rr] = k[0][1], p[1][0][rr] = k[1][0], p[1][1][rr] = k[1][1];
            }
            for (int a = 0; a < 5; a++)
                for (int u = 0; u < 2; u++)
                    for (int rr = 0; rr < strip; rr++)
                        gp[a][u][rr] = G4[a][0] * p[0][u][rr] + G4[a][1] * p[1][u][rr];
            float *dst = area + gemm_packed_offset(&packed[0], sj * strip, c);
            for (int a = 0; a < 5; a++)
                for (int b = 0; b < 5; b++)
                    for (int rr = 0; rr < strip; rr++)
                        dst[(5 * a + b) * each + rr] = (float)(gp[a][0][rr] * G4[b][0] + gp[a][1][rr] * G4[b][1]);
        }
}

/* The forward (out: the upsampled output, x: the stored input) or, with
 * `backward`, d(input) (out: d(input), added to; x: d(output)) in form f,
 * with the weights U transformed for it. */
static void phase_conv(float *out, const float *x, const GemmPacked *U, const float *bias,
                       int backward, const Form *f, int batch, int ci_n, int co_n, int h, int w,
                       float *thread_base, size_t thread_stride) {
    /* the forward's patches start at row -tile (see the header) */
    int n = f->tile, seg = f->seg, el = f->elements;
    int th = backward ? (h + n - 1) / n : (h + 2 * n - 1) / n;
    int tw = backward ? (w + n - 1) / n : (w + 2 * n - 1) / n;
    int tiles = th * tw, segs = (tiles + seg - 1) / seg;
    size_t hw = (size_t)h * w, vld = (size_t)(backward ? 4 * co_n : ci_n) * seg;
    size_t mld = (size_t)(backward ? ci_n : 4 * co_n) * seg;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < batch * segs; job++) {
        int b = job / segs, q0 = job % segs * seg, nt = tiles - q0 < seg ? tiles - q0 : seg;
        float *v = thread_base + (size_t)omp_get_thread_num() * thread_stride;
        float *m = v + el * vld, *t = m + el * mld;
        Run runs[SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        if (backward)
            f->fn.inputs_phases(v, vld, x + b * co_n * 4 * hw, co_n, h, w, runs, nruns, nt, t);
        else
            f->fn.inputs_stored(v, vld, x + b * ci_n * hw, hw, w, ci_n, h, w, runs, nruns, nt, -n, -n, t);
        for (int e = 0; e < el; e++) gemm_packed_nn(nt, &U[e], v + e * vld, seg, 0.0f, m + e * mld, seg);
        if (backward)
            f->fn.outputs_stored(out + b * ci_n * hw, m, mld, ci_n, h, w, runs, nruns, nt, t);
        else
            f->fn.outputs_up(out + b * co_n * 4 * hw, m, mld, co_n, h, w, runs, nruns, nt, bias, t);
    }
}

void wphase_forward(float *out, const float *in, const float *weight, const float *bias, int training,
                    int batch, int ci_n, int co_n, int h, int w, float *weight_area,
                    float *thread_base, size_t thread_stride) {
    GemmPacked U[25];
    if (training)
        transform_weights4(U, weight_area, weight, 0, ci_n, co_n);
    else
        wphase_transform_weights(U, weight_area, weight_area + wphase_packed_floats(ci_n, co_n),
                                 weight, ci_n, co_n);
    Form f = form_for(training ? 4 : 2, U[0].kernel);
    phase_conv(out, in, U, bias, 0, &f, batch, ci_n, co_n, h, w, thread_base, thread_stride);
}

void wphase_backward_input(float *din, const float *dout, const float *weight, int batch, int ci_n,
                           int co_n, int h, int w, float *weight_area, float *thread_base,
                           size_t thread_stride) {
    GemmPacked U[25];
    transform_weights4(U, weight_area, weight, 1, ci_n, co_n);
    Form f = form_for(4, U[0].kernel);
    phase_conv(din, dout, U, NULL, 1, &f, batch, ci_n, co_n, h, w, thread_base, thread_stride);
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
    Fns fn = form_for(2, gemm_current_kernel()).fn;
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
