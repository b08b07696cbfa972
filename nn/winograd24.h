/* winograd24.h: Winograd F(2x2, 4x4) for 4x4 convolutions with stride 1
 * (D's l3: 4nd -> 8nd channels), used by nn/conv.c for the forward, d(input)
 * and d(weight).
 *
 * A 2x2 output tile from the 5x5 input patch d under it:
 *   y = A^T [ U (.) V ] A,  U = G g G^T,  V = B^T d B,
 * the (.) product summed over input channels: 25 GEMMs [out x in] x
 * [in x tiles], 25 products per 2x2 outputs instead of 64 (2.56x fewer).
 * Interpolation points 0, 1, -1, 2 and infinity:
 *   B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1],
 *   G   = [1/2 0 0 0; -1/2 -1/2 -1/2 -1/2; -1/6 1/6 -1/6 1/6;
 *          1/6 1/3 2/3 4/3; 0 0 0 1],
 *   A^T = [1 1 1 1 0; 0 1 -1 2 1].
 * Each output is within a few 1e-6 (relative to the sum of |products|) of
 * the direct conv. Jobs are runs of WINO24_SEG consecutive tiles of one
 * image (they may span tile rows, so that a small map still fills the
 * microkernel's 32 columns).
 *
 * d(input) is this conv of d(output) with the flipped, transposed kernel.
 * d(weight) goes back through the same algebra, as in winograd43.h: dM =
 * A dY A^T per tile (A: 5x2, 2x2 -> 5x5), dU[e] = sum over tiles of
 * dM[e] V[e]^T, dg = G^T dU G (in double). The tiles are taken in fixed
 * chunks of WINO24_CHUNK_SEGS jobs: the threads transform a chunk's V and
 * dM into shared buffers, then share out the 25 GEMMs dU[e] += dM[e] V[e]^T
 * by e, so each dU[e] sums the chunks in order in one place. All three
 * products are deterministic and independent of the thread count.
 *
 * The caller (conv.c) provides the memory: a shared area of
 * wino24_shared_floats (the transformed, packed weights, or d(weight)'s dU
 * and chunk buffers) and, per thread, wino24_thread_floats.
 */
#ifndef SPYNCO_WINOGRAD24_H
#define SPYNCO_WINOGRAD24_H

#include <stddef.h>

#define WINO24_SEG 32
#define WINO24_CHUNK_SEGS 8 /* jobs per chunk of the weight gradient: 256 tiles */

/* floats of the shared area for in_ch -> out_ch, all three products */
size_t wino24_shared_floats(int in_ch, int out_ch);
/* floats of the transformed, packed weights, either direction */
size_t wino24_weight_floats(int in_ch, int out_ch);
/* floats each thread needs */
size_t wino24_thread_floats(int in_ch, int out_ch);

/* out (batch x co_n x out_h x out_w) += the stride-1 correlation of in
 * (batch x ci_n x in_h x in_w, zero outside) with a 4x4 kernel whose first
 * tap is at (-pad, -pad); with `store`, out = that + bias (bias may be NULL).
 * The kernel is weight [co_n, ci_n, 4, 4], or with `transpose` the flipped,
 * transposed kernel of a conv ci_n <- co_n stored as [ci_n, co_n, 4, 4]
 * (d(input) of that conv: weight[c, o, 3-i, 3-j]). Its transform goes to
 * weight_area (wino24_weight_floats), or with `transformed` is there
 * already (from an earlier call with the same weights). thread_base + t *
 * thread_stride is thread t's memory. */
void wino24_conv(float *out, const float *in, const float *weight, int transpose, const float *bias,
                 int store, int batch, int ci_n, int co_n, int in_h, int in_w, int out_h, int out_w,
                 int pad, float *weight_area, int transformed, float *thread_base,
                 size_t thread_stride);

/* dweight [co_n, ci_n, 4, 4] += d(weight) of out = that correlation (not
 * transposed), given dout (batch x co_n x out_h x out_w) and in (batch x
 * ci_n x in_h x in_w). */
void wino24_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int in_h, int in_w, int out_h, int out_w, int pad,
                            float *shared, float *thread_base, size_t thread_stride);

#endif
