/* winograd.h: the input transform of Winograd F(2x2, 3x3), shared by the
 * training convolutions (conv.c) and fused inference (infer.c).
 *
 * Tiles are 2x2 outputs on rows of up to WINO_SEG tiles; the 4x4 input patch d
 * of each becomes B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. The
 * functions are inline so that each caller's plain and AVX-512 copies compile
 * them for their own target; both callers thus round exactly alike.
 */
#ifndef SPYNCO_WINOGRAD_H
#define SPYNCO_WINOGRAD_H

#include <stddef.h>

/* Winograd jobs: up to WINO_SEG tiles of one row of 2x2 tiles. */
#define WINO_SEG 32

#define WINO_INLINE static inline __attribute__((always_inline))

/* Channels ahead whose rows are prefetched: a job reads a few cache lines
 * from each of 4 rows of every channel plane, too many short streams for the
 * hardware prefetcher, so the loads would wait on memory. */
#define WINO_PREFETCH 4

/* Prefetches rows row0 .. row0+rows-1, columns col0 .. col0+cols-1 (clipped)
 * of an h x w plane, for reading (write 0) or writing (1). */
WINO_INLINE void wino_prefetch_rows(const float *x, int h, int w, int row0, int rows, int col0,
                                    int cols, int write) {
    int lo = col0 < 0 ? 0 : col0, hi = col0 + cols > w ? w : col0 + cols;
    for (int r = row0 < 0 ? 0 : row0; r < row0 + rows && r < h; r++)
        for (int c = lo; c < hi; c += 16) {
            if (write)
                __builtin_prefetch(x + (size_t)r * w + c, 1);
            else
                __builtin_prefetch(x + (size_t)r * w + c, 0);
        }
}

/* Input rows row0 .. row0+3 of channel x (h x w) for tiles starting at input
 * column col0 (stride 2), transformed: v[e * ld + k] for tile k, e = 4u + v.
 * Interior tiles read the row directly (vectorised, stride-2 loads); tiles
 * that reach past the row's ends read zeros there. */
WINO_INLINE void wino_input(float *v, size_t ld, const float *x, int h, int w, int row0, int col0,
                             int nt, float *hv) {
    /* tiles [klo, khi) have all four columns col0+2k .. col0+2k+3 inside the row */
    int klo = col0 >= 0 ? 0 : (1 - col0) / 2, khi = w - 4 - col0 >= 0 ? (w - 4 - col0) / 2 + 1 : 0;
    if (klo > nt) klo = nt;
    if (khi > nt) khi = nt;
    if (khi < klo) khi = klo;
    for (int r = 0; r < 4; r++) {
        int y = row0 + r;
        float *h0 = hv + (4 * r) * WINO_SEG, *h1 = h0 + WINO_SEG, *h2 = h1 + WINO_SEG,
              *h3 = h2 + WINO_SEG;
        if (y < 0 || y >= h) {
            for (int k = 0; k < nt; k++) h0[k] = h1[k] = h2[k] = h3[k] = 0.0f;
            continue;
        }
        const float *row = x + (size_t)y * w;
        for (int k = klo; k < khi; k++) {
            const float *d = row + col0 + 2 * k;
            float d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
            h0[k] = d0 - d2, h1[k] = d1 + d2, h2[k] = d2 - d1, h3[k] = d1 - d3;
        }
        for (int k = 0; k < nt; k++) {
            if (k == klo) k = khi;
            if (k >= nt) break;
            float d[4];
            for (int j = 0; j < 4; j++) {
                int c = col0 + 2 * k + j;
                d[j] = c >= 0 && c < w ? row[c] : 0.0f;
            }
            h0[k] = d[0] - d[2], h1[k] = d[1] + d[2], h2[k] = d[2] - d[1], h3[k] = d[1] - d[3];
        }
    }
    for (int c = 0; c < 4; c++) {
        const float *r0 = hv + c * WINO_SEG, *r1 = r0 + 4 * WINO_SEG, *r2 = r1 + 4 * WINO_SEG,
                    *r3 = r2 + 4 * WINO_SEG;
        float *v0 = v + (size_t)c * ld, *v1 = v0 + 4 * ld, *v2 = v1 + 4 * ld, *v3 = v2 + 4 * ld;
        for (int k = 0; k < nt; k++) {
            v0[k] = r0[k] - r2[k], v1[k] = r1[k] + r2[k];
            v2[k] = r2[k] - r1[k], v3[k] = r1[k] - r3[k];
        }
    }
}

/* Every input channel of in (ch planes of h x w) for a row of nt tiles whose
 * first tile's top left output pixel is (y0, x0): channel c's transforms start
 * at v + c * WINO_SEG, element e at stride vld. hv: 16 * WINO_SEG floats. */
WINO_INLINE void wino_input_rows(float *v, size_t vld, const float *in, int ch, int h, int w, int y0,
                                 int x0, int nt, float *hv) {
    for (int c = 0; c < ch; c++) {
        if (c + WINO_PREFETCH < ch)
            wino_prefetch_rows(in + (size_t)(c + WINO_PREFETCH) * h * w, h, w, y0 - 1, 4, x0 - 1,
                               2 * nt + 2, 0);
        wino_input(v + (size_t)c * WINO_SEG, vld, in + (size_t)c * h * w, h, w, y0 - 1, x0 - 1, nt,
                   hv);
    }
}

#endif
