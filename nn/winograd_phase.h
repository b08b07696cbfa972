/* winograd_phase.h: Winograd for the phase convs of nearest x2 upsampling
 * + 3x3 conv (pad 1; G's dec1, dec0), used by nn/conv.c for the forward,
 * d(input) and d(weight), and by fused inference (nn/infer.c), which shares
 * the F(2x2, 2x2) transforms below: inline, so that each caller's plain and
 * AVX-512 copies compile them for their own target.
 *
 * The phase decomposition: output pixel (2y+a, 2x+b) reads upsampled rows
 * 2y+a-1 .. 2y+a+1, i.e. the stored (h x w) rows y+a-1 and y+a: the first
 * through kernel rows {0} (a = 0) or {0, 1} (a = 1), the second through the
 * rest; columns likewise. So output phase ph = 2a + b is a 2x2 conv of the
 * stored input with summed weights p, the phase kernel: 16 taps per 2x2
 * output pixels instead of 36, exactly, and no upsampled copy. Each runs on
 * Winograd, an n x n tile of stored outputs from the (n+1) x (n+1) patch d
 * under it,
 *   y = A^T [ U (.) V ] A,  U = G p G^T,  V = B^T d B,
 * the (.) product summed over input channels, in one of two forms:
 *  - F(2x2, 2x2), points 0, 1 and infinity: 9 products per 2x2 outputs
 *    instead of 16 (1.78x fewer),
 *      B^T = [1 -1 0; 0 1 0; 0 -1 1],  G = [1 0; 1 1; 0 1],  A^T = [1 1 0; 0 1 1],
 *    adds and subtractions only. Inference and eval-mode forwards, whose
 *    outputs must depend only on their receptive field (tiled inference is
 *    exact), and d(weight) (F(4x4, 2x2) measured slower for dec1).
 *  - F(4x4, 2x2), points 0, 1, -1, 2 and infinity: 25 products per 4x4
 *    outputs (2.56x fewer than direct, 1.44x fewer than F(2x2, 2x2)),
 *      B^T as F(2, 4)'s (nn/winograd5.h),
 *      G   = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1],
 *      A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1].
 *    Training forwards (ConvShape.training) and d(input).
 *
 * Forward: phase a's tiles are put one stored row (column) lower for a = 0,
 * so that the four phases of tile (ty, tx) read the same patch, rows
 * n*ty-n .. n*ty (phase 1 outputs rows n*ty-n .. n*ty-1, phase 0 one row
 * lower): one V serves all phases, and U stacks the four phases' [co x ci]
 * along the rows, [4co x ci]. Tile (ty, tx)'s outputs are the 2n x 2n block
 * of upsampled outputs at rows 2n*ty-2n+1 .. 2n*ty. The grid has one more
 * tile row and column than the map needs; their outputs outside it are
 * dropped.
 * d(input): stored pixel (Y, X) receives phase ph's d(output) at (Y-a+i,
 * X-b+j) through the flipped tap (1-i, 1-j); the phases' tiles share the
 * d(input) tile (rows n*ty ..), so V stacks the four phases' d(output)
 * patches along the rows, U is [ci x 4co] and the GEMM's sum runs over all
 * four phases. F(4x4, 2x2)'s four patches of a tile lie in one 10x10 block
 * of d(output), read as contiguous row spans.
 * d(weight): on the forward's tiles, dU = sum over tiles of dM V^T with
 * dM = A dY A^T (dY = 0 outside the map), [4co x ci] per element; then
 * dp = G^T dU G, and each 3x3 tap gets the gradients of the phase taps it
 * was summed into.
 *
 * Each output is within a few 1e-7 (F(2x2, 2x2)) or ~1.5e-6 (F(4x4, 2x2),
 * whose transforms scale values up to ~8x), relative to the sum of
 * |products|, of the direct conv; results are deterministic and independent
 * of the thread count. Jobs are runs of WPHASE_SEG (WPHASE4_SEG)
 * consecutive tiles of one image (they may span tile rows). The caller
 * provides the memory: wphase_weight_floats for the transformed, packed
 * weights and, per thread, wphase_thread_floats.
 */
#ifndef SPYNCO_WINOGRAD_PHASE_H
#define SPYNCO_WINOGRAD_PHASE_H

#include <stddef.h>

#include "nn/gemm.h"

#define WPHASE_SEG 64
#define WPHASE4_SEG 32 /* F(4x4, 2x2): its v and m per thread stay in L2 */

#define WPHASE_INLINE static inline __attribute__((always_inline))

/* A run of tiles of one tile row: tiles k0 .. k0+n-1 of the job, the first
 * at tile (ty, tx). */
typedef struct {
    int k0, n, ty, tx;
} Run;

/* The job's tiles q0 .. q0+nt-1 (row-major, tw tiles a row) as row runs. */
WPHASE_INLINE int job_runs(Run *runs, int q0, int nt, int tw) {
    int count = 0;
    for (int k = 0; k < nt;) {
        int q = q0 + k, n = tw - q % tw < nt - k ? tw - q % tw : nt - k;
        runs[count++] = (Run){k, n, q / tw, q % tw};
        k += n;
    }
    return count;
}

/* Tiles [*lo, *hi) of a run of n have columns first + step k .. first +
 * step k + span inside 0 .. w-1. */
WPHASE_INLINE void inside(int *lo, int *hi, int first, int step, int span, int w, int n) {
    int l = first >= 0 ? 0 : (step - 1 - first) / step;
    int h = w - 1 - span - first >= 0 ? (w - 1 - span - first) / step + 1 : 0;
    if (l > n) l = n;
    if (h > n) h = n;
    if (h < l) h = l;
    *lo = l, *hi = h;
}

/* v[e * ld + c * WPHASE_SEG + k] = (B^T d B)[e], e = 3i + j, for every channel c
 * of a map (h x w, zero outside; pixel (y, x) at x[c * plane + y * row +
 * x * step]) and every tile k of the runs; tile (ty, tx)'s patch starts at
 * (2ty + oy, 2tx + ox). hv: 9 * WPHASE_SEG floats. */
WPHASE_INLINE void inputs_body(float *v, size_t ld, const float *x, size_t plane, size_t row, int step,
                        int ch, int h, int w, const Run *runs, int nruns, int nt, int oy, int ox,
                        float *hv) {
    for (int c = 0; c < ch; c++) {
        const float *xc = x + (size_t)c * plane;
        for (int r = 0; r < 3; r++) { /* B^T along each patch row: hv[(3r + j) * WPHASE_SEG + k] */
            float *h0 = hv + 3 * r * WPHASE_SEG, *h1 = h0 + WPHASE_SEG, *h2 = h1 + WPHASE_SEG;
            for (int ri = 0; ri < nruns; ri++) {
                const Run *R = &runs[ri];
                float *a0 = h0 + R->k0, *a1 = h1 + R->k0, *a2 = h2 + R->k0;
                int y = 2 * R->ty + oy + r, x0 = 2 * R->tx + ox;
                if (y < 0 || y >= h) {
                    for (int k = 0; k < R->n; k++) a0[k] = a1[k] = a2[k] = 0.0f;
                    continue;
                }
                const float *src = xc + (size_t)y * row;
                int lo, hi;
                inside(&lo, &hi, x0, 2, 2, w, R->n);
                for (int k = lo; k < hi; k++) {
                    float d0 = src[(x0 + 2 * k) * step], d1 = src[(x0 + 2 * k + 1) * step],
                          d2 = src[(x0 + 2 * k + 2) * step];
                    a0[k] = d0 - d1, a1[k] = d1, a2[k] = d2 - d1;
                }
                for (int k = 0; k < R->n; k++) { /* the tiles reaching past the row's ends */
                    if (k == lo) k = hi;
                    if (k >= R->n) break;
                    float d[3];
                    for (int j = 0; j < 3; j++) {
                        int col = x0 + 2 * k + j;
                        d[j] = col >= 0 && col < w ? src[col * step] : 0.0f;
                    }
                    a0[k] = d[0] - d[1], a1[k] = d[1], a2[k] = d[2] - d[1];
                }
            }
        }
        for (int j = 0; j < 3; j++) { /* then B^T down the columns */
            const float *r0 = hv + j * WPHASE_SEG, *r1 = r0 + 3 * WPHASE_SEG, *r2 = r1 + 3 * WPHASE_SEG;
            float *v0 = v + (size_t)j * ld + (size_t)c * WPHASE_SEG, *v1 = v0 + 3 * ld, *v2 = v1 + 3 * ld;
            for (int k = 0; k < nt; k++) v0[k] = r0[k] - r1[k], v1[k] = r1[k], v2[k] = r2[k] - r1[k];
        }
    }
}

/* One channel's products mc[e * ld + k] -> its tiles' outputs A^T M A,
 * y[(2i + j) * WPHASE_SEG + k]; t: 6 * WPHASE_SEG floats. */
WPHASE_INLINE void tile_outputs(float *y, const float *mc, size_t ld, int nt, float *t) {
    for (int j = 0; j < 3; j++) { /* A^T down the columns: t[(3i + j) * WPHASE_SEG + k] */
        const float *m0 = mc + (size_t)j * ld, *m1 = m0 + 3 * ld, *m2 = m1 + 3 * ld;
        float *s0 = t + j * WPHASE_SEG, *s1 = s0 + 3 * WPHASE_SEG;
        for (int k = 0; k < nt; k++) s0[k] = m0[k] + m1[k], s1[k] = m1[k] + m2[k];
    }
    for (int i = 0; i < 2; i++) { /* then along the rows */
        const float *s0 = t + 3 * i * WPHASE_SEG, *s1 = s0 + WPHASE_SEG, *s2 = s1 + WPHASE_SEG;
        float *y0 = y + 2 * i * WPHASE_SEG, *y1 = y0 + WPHASE_SEG;
        for (int k = 0; k < nt; k++) y0[k] = s0[k] + s1[k], y1[k] = s1[k] + s2[k];
    }
}


/* d(output) of the runs' 2x2 tiles (tile (ty, tx) at (2ty + oy, 2tx + ox),
 * 0 outside the h x w map; pixel (y, x) at dy[c * plane + y * row + x *
 * step]) -> dM = A dY A^T: dm[e * ld + c * WPHASE_SEG + k]. t: 6 * WPHASE_SEG
 * floats. */
WPHASE_INLINE void grads_body(float *dm, size_t ld, const float *dy, size_t plane, size_t row, int step,
                       int ch, int h, int w, const Run *runs, int nruns, int nt, int oy, int ox,
                       float *t) {
    for (int c = 0; c < ch; c++) {
        const float *dc = dy + (size_t)c * plane;
        for (int ri = 0; ri < nruns; ri++) { /* t[(2i + j) * WPHASE_SEG + k] = dY[i][j] of tile k */
            const Run *R = &runs[ri];
            for (int i = 0; i < 2; i++) {
                int iy = 2 * R->ty + oy + i;
                for (int j = 0; j < 2; j++) {
                    float *dst = t + (2 * i + j) * WPHASE_SEG + R->k0;
                    int x0 = 2 * R->tx + ox + j, lo = 0, hi = 0;
                    if (iy >= 0 && iy < h) inside(&lo, &hi, x0, 2, 0, w, R->n);
                    const float *src = dc + (size_t)(lo < hi ? iy : 0) * row;
                    for (int k = 0; k < lo; k++) dst[k] = 0.0f;
                    for (int k = lo; k < hi; k++) dst[k] = src[(x0 + 2 * k) * step];
                    for (int k = hi; k < R->n; k++) dst[k] = 0.0f;
                }
            }
        }
        /* A = [1 0; 1 1; 0 1] down the columns: rows dY[0], dY[0] + dY[1], dY[1]
         * (the middle one to t[4..5]), then along each row (few streams a
         * loop, so that the loops vectorise) */
        for (int k = 0; k < nt; k++) t[4 * WPHASE_SEG + k] = t[k] + t[2 * WPHASE_SEG + k];
        for (int k = 0; k < nt; k++) t[5 * WPHASE_SEG + k] = t[WPHASE_SEG + k] + t[3 * WPHASE_SEG + k];
        for (int r = 0; r < 3; r++) {
            const float *u = t + (r == 0 ? 0 : r == 1 ? 4 : 2) * WPHASE_SEG, *x = u + WPHASE_SEG;
            float *d0 = dm + (size_t)3 * r * ld + (size_t)c * WPHASE_SEG, *d1 = d0 + ld, *d2 = d1 + ld;
            for (int k = 0; k < nt; k++) d0[k] = u[k], d1[k] = u[k] + x[k], d2[k] = x[k];
        }
    }
}

size_t wphase_weight_floats(int in_ch, int out_ch);
size_t wphase_thread_floats(int in_ch, int out_ch);

/* floats of the packed U (wphase_transform_weights' packed_area) */
size_t wphase_packed_floats(int in_ch, int out_ch);
/* F(2x2, 2x2)'s U[e] = (G p G^T)[e], packed in packed_area, for the phase
 * kernels p of weight [co_n, ci_n, 3, 3]: [4co x ci] at row ph * co_n + o.
 * unpacked: 36 * ci_n * co_n floats of scratch. */
void wphase_transform_weights(GemmPacked U[9], float *packed_area, float *unpacked,
                              const float *weight, int ci_n, int co_n);

/* out (batch x co_n x 2h x 2w) = conv3x3(upsample2x(in)) + bias (bias may
 * be NULL), in: batch x ci_n x h x w, weight [co_n, ci_n, 3, 3]; on
 * F(4x4, 2x2) for a training forward, else F(2x2, 2x2). thread_base + t *
 * thread_stride is thread t's memory. */
void wphase_forward(float *out, const float *in, const float *weight, const float *bias, int training,
                    int batch, int ci_n, int co_n, int h, int w, float *weight_area,
                    float *thread_base, size_t thread_stride);
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
