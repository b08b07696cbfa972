/* winograd_phase.h: Winograd F(2x2, 2x2) for the phase convs of nearest x2
 * upsampling + 3x3 conv (pad 1; G's dec1, dec0), used by nn/conv.c for the
 * forward, d(input) and d(weight).
 *
 * The phase decomposition: output pixel (2y+a, 2x+b) reads upsampled rows
 * 2y+a-1 .. 2y+a+1, i.e. the stored (h x w) rows y+a-1 and y+a: the first
 * through kernel rows {0} (a = 0) or {0, 1} (a = 1), the second through the
 * rest; columns likewise. So output phase ph = 2a + b is a 2x2 conv of the
 * stored input with summed weights p, the phase kernel: 16 taps per 2x2
 * output pixels instead of 36, exactly, and no upsampled copy. Each runs as
 * F(2x2, 2x2): a 2x2 tile of stored outputs from the 3x3 patch d under it,
 *   y = A^T [ U (.) V ] A,  U = G p G^T,  V = B^T d B,
 * the (.) product summed over input channels: 9 GEMMs per tile, 9 products
 * per 2x2 outputs instead of 16 (1.78x fewer). Points 0, 1 and infinity:
 *   B^T = [1 -1 0; 0 1 0; 0 -1 1],  G = [1 0; 1 1; 0 1],  A^T = [1 1 0; 0 1 1],
 * so every transform is adds and subtractions only.
 *
 * Forward: phase a's tiles are put one stored row (column) lower for a = 0,
 * so that the four phases of tile (ty, tx) read the same patch, rows
 * 2ty-2 .. 2ty (phase 1 outputs rows 2ty-2, 2ty-1; phase 0 rows 2ty-1,
 * 2ty): one V serves all phases, and U stacks the four phases' [co x ci]
 * along the rows, [4co x ci]. The grid has one more tile row and column
 * than the map needs; their outputs outside it are dropped.
 * d(input): stored pixel (Y, X) receives phase ph's d(output) at (Y-a+i,
 * X-b+j) through the flipped tap (1-i, 1-j); the phases' tiles share the
 * d(input) tile, so V stacks the four phases' d(output) patches along the
 * rows, U is [ci x 4co] and the GEMM's sum runs over all four phases.
 * d(weight): on the forward's tiles, dU = sum over tiles of dM V^T with
 * dM = A dY A^T (dY = 0 outside the map), [4co x ci] per element; then
 * dp = G^T dU G, and each 3x3 tap gets the gradients of the phase taps it
 * was summed into.
 *
 * Each output is within a few 1e-7 (relative to the sum of |products|) of
 * the direct conv; results are deterministic and independent of the thread
 * count. Jobs are runs of WPHASE_SEG consecutive tiles of one image (they
 * may span tile rows). The caller provides the memory: wphase_weight_floats
 * for the transformed, packed weights and, per thread, wphase_thread_floats.
 */
#ifndef SPYNCO_WINOGRAD_PHASE_H
#define SPYNCO_WINOGRAD_PHASE_H

#include <stddef.h>

#define WPHASE_SEG 64

size_t wphase_weight_floats(int in_ch, int out_ch);
size_t wphase_thread_floats(int in_ch, int out_ch);

/* out (batch x co_n x 2h x 2w) = conv3x3(upsample2x(in)) + bias (bias may
 * be NULL), in: batch x ci_n x h x w, weight [co_n, ci_n, 3, 3].
 * thread_base + t * thread_stride is thread t's memory. */
void wphase_forward(float *out, const float *in, const float *weight, const float *bias, int batch,
                    int ci_n, int co_n, int h, int w, float *weight_area, float *thread_base,
                    size_t thread_stride);
/* din (batch x ci_n x h x w) += d(input) of that conv for dout (batch x
 * co_n x 2h x 2w) */
void wphase_backward_input(float *din, const float *dout, const float *weight, int batch, int ci_n,
                           int co_n, int h, int w, float *weight_area, float *thread_base,
                           size_t thread_stride);

/* floats of one weight-gradient slot */
size_t wphase_grad_floats(int in_ch, int out_ch);
/* dweight [co_n, ci_n, 3, 3] += d(weight) of that conv. The tiles are dealt
 * to slot_count fixed partial sums (slots + k * slot_stride, each at least
 * wphase_grad_floats), added in slot order: independent of the threads. */
void wphase_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                            int co_n, int h, int w, float *slots, size_t slot_stride, int slot_count,
                            float *thread_base, size_t thread_stride);

#endif
