/* winograd43.h: Winograd F(4x4, 3x3) for 3x3 convolutions with stride 1 and
 * pad 1 (G's residual blocks), used by nn/conv.c for d(input) and d(weight)
 * in training (the forward stays on F(2x2, 3x3): its 2x2 tiles keep crops at
 * even offsets exact).
 *
 * A 4x4 output tile from the 6x6 input patch d under it (Lavin and Gray,
 * interpolation points 0, 1, -1, 2, -2 and infinity):
 *   y = A^T [ U (.) V ] A,  U = G g G^T,  V = B^T d B,
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *          1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
 * the (.) product summed over input channels: 36 GEMMs [out x in] x
 * [in x tiles], 36 products per 4x4 outputs (F(2x2, 3x3): 16 per 2x2, i.e.
 * 1.78x more; direct: 144). The larger constants cost accuracy: each output
 * is within ~1e-5 (relative to the sum of |products|) of the direct conv.
 *
 * d(input) is this conv of d(output) with the flipped, transposed kernel.
 * d(weight) goes back through the same algebra: dM = A dY A^T per tile,
 * dU[e] = sum over tiles of dM[e] V[e]^T, dg = G^T dU G (in double). The
 * tiles are taken in fixed chunks of WINO43_CHUNK_SEGS jobs: the threads
 * transform a chunk's V and dM into shared buffers, then share out the 36
 * GEMMs dU[e] += dM[e] V[e]^T by e. Each dU[e] thus sums the chunks in order
 * in one place: no per-thread partial sums, and results are deterministic
 * and independent of the thread count (forward and d(input) as well: jobs
 * write disjoint outputs).
 *
 * Jobs are runs of WINO43_SEG consecutive tiles of one image, row-major (a
 * 64-pixel-wide map has 16 tiles per row: a job spans two tile rows, so the
 * microkernel's 32 columns are full). Layout of a job's transforms:
 * v[e * ld + c * cld + k] for element e = 6u + v, channel c, tile k.
 *
 * The caller (conv.c) provides the memory: a shared area of
 * wino43_shared_floats and, per thread, wino43_thread_floats.
 */
#ifndef SPYNCO_WINOGRAD43_H
#define SPYNCO_WINOGRAD43_H

#include <stddef.h>

#define WINO43_SEG 32
#define WINO43_CHUNK_SEGS 8 /* jobs per chunk of the weight gradient: 256 tiles */

/* floats of the transformed, packed weights for ci_n -> co_n, either direction */
size_t wino43_weight_floats(int ci_n, int co_n);
/* floats of the shared area for ci_n -> co_n channels, all three products */
size_t wino43_shared_floats(int ci_n, int co_n);
/* floats each thread needs */
size_t wino43_thread_floats(int ci_n, int co_n);

/* out (batch x co_n x h x w) += the 3x3, pad 1 correlation of in (batch x
 * ci_n x h x w); with `store`, out = that + bias (bias may be NULL). The
 * kernel is weight [co_n, ci_n, 3, 3], or with `transpose` the flipped,
 * transposed kernel of a conv ci_n <- co_n stored as [ci_n, co_n, 3, 3]
 * (d(input) of that conv). Its transform goes to weights_area
 * (wino43_weight_floats), or with `transformed` is there already (from an
 * earlier call with the same weights). thread_base + t * thread_stride is
 * thread t's memory. */
void wino43_conv(float *out, const float *in, const float *weight, int transpose, const float *bias,
                 int store, int batch, int ci_n, int co_n, int h, int w, float *weights_area,
                 int transformed, float *thread_base, size_t thread_stride);

/* dweight [co_n, ci_n, 3, 3] += d(weight) of out = conv3x3(in), pad 1, given
 * dout (batch x co_n x h x w) and in (batch x ci_n x h x w). */
void wino43_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int h, int w, float *shared, float *thread_base,
                            size_t thread_stride);

#endif
