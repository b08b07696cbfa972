/* infer.h: the generator's inference path, lean and fused.
 *
 * For colorizing, only y1 (the full-resolution output) is needed and
 * BatchNorm uses its running statistics, so:
 *  - BN is folded into each conv: W' = W * gamma/sqrt(var+eps) per output
 *    channel, b' = (b - mean) * gamma/sqrt(var+eps) + beta;
 *  - bias, activation and the residual sum are applied to each GEMM block
 *    while it is in cache;
 *  - dec1 and dec0 (nearest x2 upsampling, then a 3x3 conv) run as four 2x2
 *    convs of the stored half-size input, one per output phase (2.25x fewer
 *    products, exact: no upsampled copy either), each as Winograd F(2x2,
 *    2x2) (nn/winograd_phase.h: 1.78x fewer again), and dec0's tiles go
 *    straight through the shared head (1x1 conv + tanh), so dec0's 64
 *    full-resolution channels are never stored; the H/2 and H/4 heads are
 *    skipped;
 *  - the other 3x3 stride-1 convs (the residual blocks) use Winograd
 *    F(2x2, 3x3): 16 products per 2x2 output pixels instead of 36;
 *  - both Winograd forms' transforms only add and subtract, and each output
 *    reads only its own receptive field (3x3, or 2x2 for a phase; not the
 *    whole patch), so tiled inference stays exact: their tiles lie on grids
 *    fixed in raster coordinates, given by the input's origin;
 *  - weights are packed for the GEMM once, at init.
 *  - enc0 and enc1 run together in bands of rows (the stem), so enc0's
 *    full-resolution output is never stored whole;
 *  - told which part of y1 is wanted (a tile without its halo), the layers
 *    from the residual blocks on compute only what that part depends on:
 *    each 3x3 conv one pixel (at its scale) around what the next layer
 *    reads. A tile's halo then costs work in the encoder only, not in the
 *    twelve residual convs and the full-resolution dec0 and head.
 * One block holds the activations, about 24 floats per input pixel for the
 * default config (F=32, K=64), against ~190 for the training path.
 *
 * Results equal generator_forward(..., training=0)'s y1 up to float rounding
 * (folding, the phases and Winograd reorder products), and do not depend on
 * the image size, its origin's place in the raster (a multiple of 4), or the
 * thread count: tiled inference is exact.
 */
#ifndef SPYNCO_INFER_H
#define SPYNCO_INFER_H

#include "nn/gemm.h"
#include "nn/networks.h"

typedef enum { CONV_DIRECT, CONV_PHASES, CONV_WINOGRAD } ConvAlgo;

typedef struct {
    float *weight, *bias; /* BN folded in */
    int in_ch, out_ch, kernel, stride, pad, upsample_before;
    Activation act;
    ConvAlgo algo;
    GemmPacked direct;   /* CONV_DIRECT: weight [out x in*k*k] */
    GemmPacked up[9];    /* CONV_PHASES: U = G p G^T at element e, the phases' [4out x in] */
    GemmPacked wino[16]; /* CONV_WINOGRAD: G g G^T at position 4u+v, [out x in] */
} FusedConv;

typedef struct {
    ModelConfig cfg;
    int num_units;
    FusedConv *units; /* G's units in order; the last is the head */
    Arena weights;
} InferModel;

int infer_model_init(InferModel *m, const Network *g, char *err, size_t err_size);
void infer_model_free(InferModel *m);

typedef struct {
    int h, w, threads;
    int max_h, max_w; /* the size given to infer_work_init */
    Arena arena;
    float *acts; /* one block: the views below share it by liveness (layout_work) */
    float *enc1, *trunk, *branch, *dec2, *dec1;
    float *scratch;       /* threads parts of per_thread floats */
    size_t per_thread, band_at; /* a part, and where in it the stem's enc0 band starts */
} InferWork;

/* For inputs of h x w (multiples of 4), run by up to `threads` OpenMP threads. */
int infer_work_init(InferWork *work, const InferModel *m, int h, int w, char *err,
                    size_t err_size);
/* Makes the work run inputs of h x w (multiples of 4) no larger than the
 * size given to infer_work_init: colorize's partial tiles at the raster's
 * edges run on windows smaller than a whole tile's. -1 if it does not fit. */
int infer_work_resize(InferWork *work, int h, int w);
void infer_work_free(InferWork *work);

/* Rows top .. bottom-1 and columns left .. right-1 of a map. */
typedef struct {
    int top, bottom, left, right;
} InferRect;

/* gray [1, h, w] in [-1, 1] -> rgb [3, h, w] in [-1, 1] (y1). (x0, y0): the
 * raster position of gray's first pixel, multiples of 4 (may be negative);
 * 0, 0 for a whole image. want: the part of rgb needed, inside the h x w
 * map (NULL: all of it). Pixels in want are written with the same bits as
 * with NULL; pixels outside it are left as they are or overwritten. */
void generator_infer(const InferModel *m, InferWork *work, const float *gray, float *rgb, int x0,
                     int y0, const InferRect *want);


#endif
