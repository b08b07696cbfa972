/* winograd_weights.h: the weight side shared by the Winograd convs of
 * winograd24.c (F(2x2, 4x4)) and winograd43.c (F(4x4, 3x3)).
 *
 * Each transformed element e of the k x k kernels is one GEMM operand
 * U[e] [co_n x ci_n], U = G g G^T per kernel (o, i). wino_transform_weights
 * gathers the taps of `chunk` kernels at a time tap-major (gt[t * chunk +
 * j]: a strip of the packed layout's rows by a few columns), so that the
 * caller's `body` computes G g G^T vectorised over them and writes them at
 * u + e * mat, straight into U[e]'s packed layout for the GEMM kernel
 * selected at the time (no unpacked copy: a transform then a packing pass
 * cost twice the memory traffic, which was most of the time).
 *
 * Below them, the weight gradient's shared steps and its buffer size.
 */
#ifndef SPYNCO_WINOGRAD_WEIGHTS_H
#define SPYNCO_WINOGRAD_WEIGHTS_H

#include <stddef.h>
#include <string.h>

#include "nn/gemm.h"

/* taps x chunk floats of gathered taps at most (4x4 kernels, 64 channels) */
#define WINO_TAPS_MAX 1024

typedef void (*WinoWeightBody)(float *u, size_t mat, const float *gt, int n);

/* floats of one packed U[e], in either direction (ci -> co or co -> ci) */
static inline size_t wino_packed_floats(int ci_n, int co_n) {
    size_t a = gemm_packed_floats(co_n, ci_n), b = gemm_packed_floats(ci_n, co_n);
    return a > b ? a : b;
}

/* packed[e] (e < elements) = U[e], written straight into the packed layout
 * (gemm.h) in area, wino_packed_floats each; with `transformed` area holds
 * them already (from an earlier call with the same weights) and only the
 * operands are set up. g = weight[o, i] (k x k taps), or with `transpose`
 * weight[i, o] flipped (d(input) of the conv ci <- co).
 * A job is one strip of the packed rows (output channels) by `cols` columns
 * (input channels): its strip * cols kernels are the body's lanes, in the
 * order they lie in the packed layout, so the body's n outputs per element
 * are one contiguous run (lanes past co_n are zero kernels: the strip's
 * zero padding). */
static inline void wino_transform_weights(GemmPacked *packed, int elements, float *area,
                                          const float *weight, int taps, int chunk, int transpose,
                                          int ci_n, int co_n, WinoWeightBody body, int transformed) {
    size_t each = wino_packed_floats(ci_n, co_n);
    for (int e = 0; e < elements; e++) gemm_packed_layout(&packed[e], area + e * each, co_n, ci_n);
    if (transformed) return;
    int strip = gemm_packed_strip(&packed[0]), cols = 1;
    while (2 * cols * strip <= chunk) cols *= 2; /* a power of two: runs never cross a k block */
    int strips = (co_n + strip - 1) / strip, groups = (ci_n + cols - 1) / cols;
#pragma omp parallel for schedule(static)
    for (int job = 0; job < strips * groups; job++) {
        int o0 = job / groups * strip, i0 = job % groups * cols;
        int no = co_n - o0 < strip ? co_n - o0 : strip, ni = ci_n - i0 < cols ? ci_n - i0 : cols;
        float gt[WINO_TAPS_MAX];
        if (no < strip || ni * strip < chunk) memset(gt, 0, (size_t)taps * chunk * sizeof(float));
        for (int c = 0; c < ni; c++)
            for (int r = 0; r < no; r++) {
                int o = o0 + r, i = i0 + c;
                const float *w = transpose ? weight + ((size_t)i * co_n + o) * taps
                                           : weight + ((size_t)o * ci_n + i) * taps;
                float *g = gt + c * strip + r;
                for (int t = 0; t < taps; t++) g[t * chunk] = transpose ? w[taps - 1 - t] : w[t];
            }
        body(area + gemm_packed_offset(&packed[0], o0, i0), each, gt, ni * strip);
    }
}

/* ---- the weight gradient's shared steps (wino43_backward_weight,
 * wino24_backward_weight): tiles in fixed chunks whose transformed inputs
 * V[e] [ci_n x chunk] (row stride `chunk`, elements vld apart) and output
 * gradients dM[e] [co_n x chunk] (dld apart) sit in shared buffers. */

/* floats of the dU, then a chunk's V and dM */
static inline size_t wino_grad_floats(int elements, int ci_n, int co_n, size_t chunk) {
    return (size_t)elements * ci_n * co_n + (size_t)elements * (ci_n + co_n) * chunk;
}

/* a short job's columns col0 + nt .. col0 + seg - 1 of every row, zeroed:
 * the GEMMs sum whole chunks */
static inline void wino_zero_past(float *v, size_t vld, int ci_n, float *dm, size_t dld, int co_n,
                                  int elements, size_t chunk, int col0, int nt, int seg) {
    for (int e = 0; e < elements && nt < seg; e++) {
        for (int c = 0; c < ci_n; c++)
            memset(v + e * vld + (size_t)c * chunk + col0 + nt, 0, (size_t)(seg - nt) * sizeof(float));
        for (int c = 0; c < co_n; c++)
            memset(dm + e * dld + (size_t)c * chunk + col0 + nt, 0, (size_t)(seg - nt) * sizeof(float));
    }
}

/* dU[e] [co_n x ci_n] (+)= dM[e] V[e]^T over a chunk's first cols columns,
 * shared out by element (the chunks in order, whatever the threads); the
 * first chunk stores */
static inline void wino_chunk_grads(float *du, size_t mat, const float *dm, size_t dld,
                                    const float *v, size_t vld, int elements, int co_n, int ci_n,
                                    int cols, size_t chunk, int first) {
#pragma omp parallel for schedule(dynamic)
    for (int e = 0; e < elements; e++)
        gemm_nt(co_n, ci_n, cols, dm + e * dld, (int)chunk, v + e * vld, (int)chunk,
                first ? 0.0f : 1.0f, du + e * mat, ci_n);
}

/* dweight [co_n, ci_n, taps] += dg(dU) of the kernels, `lanes` input
 * channels a job (dg: G^T dU G of n <= lanes kernels, dU[e] mat apart) */
static inline void wino_weight_grads(float *dweight, const float *du, size_t mat, int co_n,
                                     int ci_n, int taps, int lanes,
                                     void (*dg)(float *, const float *, size_t, int)) {
    int chunks = (ci_n + lanes - 1) / lanes;
#pragma omp parallel for schedule(static)
    for (int job = 0; job < co_n * chunks; job++) {
        int o = job / chunks, i0 = job % chunks * lanes;
        int n = ci_n - i0 < lanes ? ci_n - i0 : lanes;
        dg(dweight + ((size_t)o * ci_n + i0) * taps, du + (size_t)o * ci_n + i0, mat, n);
    }
}

#endif
