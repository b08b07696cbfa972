/* winograd_weights.h: the weight side shared by the Winograd convs of
 * winograd24.c (F(2x2, 4x4)) and winograd43.c (F(4x4, 3x3)).
 *
 * Each transformed element e of the k x k kernels is one GEMM operand
 * U[e] [co_n x ci_n], U = G g G^T per kernel (o, i). wino_transform_weights
 * gathers the kernels' taps tap-major, `chunk` input channels at a time
 * (gt[t * chunk + j] = tap t of kernel (o, i0 + j), zero past the last
 * channel), so that the caller's `body` computes G g G^T vectorised over the
 * kernels and writes U[e][o, i0 ..] at u + e * mat; then every U[e] is
 * packed for the GEMM kernel selected at the time.
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

/* packed[e] (e < elements) = U[e] packed, in area (wino_packed_floats each),
 * U[e] unpacked at tmp + e * mat first. g = weight[o, i] (k x k taps), or
 * with `transpose` weight[i, o] flipped (d(input) of the conv ci <- co). */
static inline void wino_transform_weights(GemmPacked *packed, int elements, float *area,
                                          float *tmp, size_t mat, const float *weight, int taps,
                                          int chunk, int transpose, int ci_n, int co_n,
                                          WinoWeightBody body) {
    int chunks = (ci_n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int job = 0; job < co_n * chunks; job++) {
        int o = job / chunks, i0 = job % chunks * chunk;
        int n = ci_n - i0 < chunk ? ci_n - i0 : chunk;
        float gt[WINO_TAPS_MAX];
        memset(gt, 0, (size_t)taps * chunk * sizeof(float));
        for (int j = 0; j < n; j++) {
            const float *w = transpose ? weight + ((size_t)(i0 + j) * co_n + o) * taps
                                       : weight + ((size_t)o * ci_n + i0 + j) * taps;
            for (int t = 0; t < taps; t++) gt[t * chunk + j] = transpose ? w[taps - 1 - t] : w[t];
        }
        body(tmp + (size_t)o * ci_n + i0, mat, gt, n);
    }
    size_t each = wino_packed_floats(ci_n, co_n);
#pragma omp parallel for schedule(static)
    for (int e = 0; e < elements; e++)
        gemm_pack(&packed[e], area + e * each, tmp + e * mat, ci_n, co_n, ci_n);
}

#endif
