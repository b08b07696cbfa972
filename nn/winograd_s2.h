/* winograd_s2.h: 4x4 convs with stride 2 and pad 1 (D's l1, l2) as four
 * polyphase 2x2 convs, each on Winograd F(2x2, 2x2); used by nn/conv.c for
 * the forward, d(input) and d(weight).
 *
 * The phase decomposition: output (y, x) reads input rows 2y-1+ki, ki =
 * 0..3, i.e. rows y-1, y of the odd-row phase (a = 1: taps ki = 0, 2) and
 * rows y, y+1 of the even-row phase (a = 0: taps ki = 1, 3); columns
 * likewise (b). So the conv is the sum over the four input phases ph = 2a +
 * b of a stride-1 2x2 correlation of the phase map (input rows 2r + a,
 * columns 2c + b) with the sub-kernel p[t][u] = weight[2t+1-a][2u+1-b],
 * first tap at phase pixel (y - a, x - b). Exactly; each runs as
 * F(2x2, 2x2): a 2x2 output tile from the 3x3 phase patch d,
 *   y = A^T [ U (.) V ] A,  U = G p G^T,  V = B^T d B,
 * with the points 0, 1 and infinity (adds and subtractions only):
 *   B^T = [1 -1 0; 0 1 0; 0 -1 1],  G = [1 0; 1 1; 0 1],  A^T = [1 1 0; 0 1 1].
 * 4 phases x 9 products per 2x2 outputs instead of 64 (1.78x fewer).
 *
 * Forward: the four phases' patches of output tile (ty, tx) are stacked
 * along the GEMM's k: V[e] is [4ci x tiles] (row ph * ci + c), U[e] is
 * [co x 4ci], so one GEMM per element e = 3i + j sums all the phases.
 * d(input): input phase (a, b) pixel (r, c) receives d(output) rows
 * r+a-1, r+a through the flipped taps weight[3-a-2t][3-b-2u]: a 2x2
 * correlation of d(output). Phase a's tiles are put so that the four
 * phases of tile (ty, tx) read the same d(output) patch, rows 2ty-1 ..
 * 2ty+1 (phase 1 gives phase rows 2ty-1, 2ty, i.e. input rows 4ty-1, 4ty+1;
 * phase 0 rows 2ty, 2ty+1, i.e. input rows 4ty, 4ty+2): one V serves all
 * phases, U stacks the four phases' [ci x co] along the rows, [4ci x co],
 * and the tile fills the 4x4 input block at rows 4ty-1 .. 4ty+2. The grid
 * has h/4 + 1 tile rows; pixels outside the map are dropped.
 * d(weight): on the forward's tiles, dU[e] = sum over tiles of dM[e] V[e]^T
 * with dM = A dY A^T, [co x 4ci] per element; then dp = G^T dU G per phase,
 * which are the 4x4 taps weight[2t+1-a][2u+1-b].
 *
 * Every output's and d(input) pixel's bits depend only on its own tile's
 * inputs, the weight gradient's on fixed slots summed in order: results are
 * deterministic and independent of the thread count. Jobs are runs of up
 * to WS2_SEG consecutive tiles of one image (they may span tile rows; fewer
 * on small maps, as the shape decides). The
 * caller provides the memory: ws2_weight_floats for the transformed,
 * packed weights and, per thread, ws2_thread_floats.
 */
#ifndef SPYNCO_WINOGRAD_S2_H
#define SPYNCO_WINOGRAD_S2_H

#include <stddef.h>

#define WS2_SEG 64

size_t ws2_weight_floats(int in_ch, int out_ch);
size_t ws2_thread_floats(int in_ch, int out_ch);

/* out (batch x co_n x h/2 x w/2) = conv4x4 stride 2 pad 1 of in (batch x
 * ci_n x h x w) with weight [co_n, ci_n, 4, 4], + bias (may be NULL).
 * thread_base + t * thread_stride is thread t's memory. */
void ws2_forward(float *out, const float *in, const float *weight, const float *bias, int batch,
                 int ci_n, int co_n, int h, int w, float *weight_area, float *thread_base,
                 size_t thread_stride);
/* din (batch x ci_n x h x w) += d(input) of that conv for dout */
void ws2_backward_input(float *din, const float *dout, const float *weight, int batch, int ci_n,
                        int co_n, int h, int w, float *weight_area, float *thread_base,
                        size_t thread_stride);

/* floats of one weight-gradient slot */
size_t ws2_grad_floats(int in_ch, int out_ch);
/* dweight [co_n, ci_n, 4, 4] += d(weight) of that conv. The tiles are dealt
 * to slot_count fixed partial sums (slots + k * slot_stride, each at least
 * ws2_grad_floats), added in slot order: independent of the threads. */
void ws2_backward_weight(float *dweight, const float *dout, const float *in, int batch, int ci_n,
                         int co_n, int h, int w, float *slots, size_t slot_stride, int slot_count,
                         float *thread_base, size_t thread_stride);

#endif
