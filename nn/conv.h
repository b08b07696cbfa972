/* conv.h: 2-D convolution (NCHW, float32) as blocked im2col + GEMM (nn/gemm.h).
 *
 * Any square kernel, stride and zero padding, with bias. The output's columns
 * (pixels) are cut into blocks of CONV_BLOCK (fewer on small maps, so that
 * threads find jobs: the shape decides); each block is one job: im2col of
 * that block into a small per-thread buffer that stays in cache, then one
 * SGEMM. Jobs run in parallel with OpenMP and write disjoint outputs, so the
 * result does not depend on the number of threads, and every output pixel's
 * sum runs in the same order whatever the image size (tiled inference is
 * exact).
 *
 * Nearest x2 upsampling followed by a 3x3 conv (pad 1), `upsampled` below,
 * runs as four 2x2 convs of the stored half-size input, one per output pixel
 * phase, with summed weights (forward, d(input) and d(weight)): exact, 2.25x
 * fewer products, no upsampled copy. Each phase conv runs on Winograd
 * (nn/winograd_phase.h): F(2x2, 2x2) in eval-mode forwards and d(weight),
 * 1.78x fewer products again, each output within ~2e-7 of the sum of its
 * |products|; F(4x4, 2x2) in training forwards and d(input), 2.56x fewer,
 * within ~1.5e-6.
 *
 * 3x3 convs with stride 1 and pad 1 (not upsampled; G's residual blocks)
 * run the forward as Winograd F(2x2, 3x3) (nn/conv.c): 2.25x fewer
 * products, each output within ~1e-6 of the direct conv; d(input),
 * d(weight) and, for shapes marked `training`, the forward as F(4x4, 3x3)
 * (nn/winograd43.h): 4x fewer, within ~1e-5.
 * Deterministic and independent of the thread count as well. The eval-mode
 * forward's 2x2 tiles start at the map's corner, so a crop keeps the full
 * image's bits at even offsets only (nn/infer.h's inference takes the window's origin
 * instead).
 *
 * 4x4 convs with stride 1 and more than one output channel (D's l3) run as
 * Winograd F(2x2, 4x4) (nn/winograd24.h) in all three products when the
 * output has at least WINO24_MIN_PIXELS pixels: 2.56x fewer products, each
 * output within ~4x the direct conv's rounding, each d(weight) tap within
 * ~2e-6 of the sum of its |products|. Smaller maps (D's smallest scale)
 * stay on im2col + GEMM.
 *
 * 4x4 convs with stride 2 and pad 1 (D's l1, l2) are four polyphase 2x2
 * convs, each as Winograd F(2x2, 2x2) (nn/winograd_s2.h), in all three
 * products when the output has at least 256 pixels and the input 16
 * channels: 1.78x fewer products, each output within ~1e-6 of the sum of
 * its |products|. Smaller maps and D's l0 stay on im2col + GEMM.
 *
 * Convs with one output channel and stride 1 (D's last layer), forward and
 * d(weight), skip im2col and the GEMM (which would use 1 of its MR rows):
 * each tap is one multiply-add along a block of zero-padded input rows.
 *
 * Backward:
 *  - d(input), stride 1: a convolution of d(output) with the flipped,
 *    transposed kernel (im2col + SGEMM per block of input pixels).
 *  - d(input), stride s > 1: the input's s*s pixel phases each receive only
 *    the taps of one residue class, so each phase is a stride-1 correlation
 *    of d(output) with those taps (sub-pixel decomposition): no products
 *    with zeros. One block of a phase's pixels per job; no two jobs write
 *    the same input pixel.
 *  - d(weight) sums over pixels: the pixel blocks are dealt to CONV_GRAD_SLOTS
 *    fixed partial sums that are added in a fixed order, so the result is also
 *    independent of the thread count.
 * Backward functions ACCUMULATE (+=) into din, dweight and dbias (din: unless
 * the shape says store_din); pass NULL to skip one of them.
 *
 * The Winograd paths (F(4x4, 3x3) and F(2x2, 4x4)) transform the weights on
 * every call, unless the shape points at a ConvWeightCache: then the
 * transform of the forward and of d(input) is kept there and reused while
 * its owner says the weights did not change (networks.h's
 * activations_reuse_weights, which a training step turns on).
 *
 * Every call needs a scratch buffer of conv_scratch_floats(shape, threads)
 * floats, allocated once by the caller (see arena.h) for the largest layer.
 */
#ifndef SPYNCO_CONV_H
#define SPYNCO_CONV_H

#include <stddef.h>

#define CONV_BLOCK 512
#define CONV_GRAD_SLOTS 8

/* Transformed weights a conv keeps between calls while its weights stay the
 * same (a training step runs G's two pseudo-cycles with one set of weights):
 * data[0] for the forward, data[1] for d(input), conv_weight_cache_floats
 * each; valid[k] says data[k] holds the current weights' transform. The
 * owner clears valid whenever the weights may have changed. */
typedef struct {
    float *data[2];
    int valid[2];
} ConvWeightCache;

typedef struct {
    int batch;
    int in_ch, in_h, in_w;
    int out_ch, out_h, out_w;
    int kernel, stride, pad;
    int upsampled; /* the input is stored at half size and read through nearest x2
                      upsampling; in_h, in_w are the upsampled size. The backward
                      supports it for 3x3, stride 1, pad 1 only (G's dec1, dec0). */
    int training;  /* a training forward: 3x3 stride-1 convs may run F(4x4, 3x3),
                      upsampling convs F(4x4, 2x2), whose outputs depend on their
                      whole patch (eval-mode forwards keep F(2x2, 3x3) and
                      F(2x2, 2x2): crops stay bit-exact) */
    ConvWeightCache *weights; /* NULL, or where to keep the transformed weights */
    int store_din; /* the backward STORES d(input) instead of adding to it (its
                      first writer: nobody has to clear the buffer) */
} ConvShape;

/* Output size follows PyTorch: (in + 2*pad - kernel) / stride + 1. */
ConvShape conv_shape(int batch, int in_ch, int in_h, int in_w, int out_ch, int kernel, int stride,
                     int pad);
size_t conv_scratch_floats(const ConvShape *s, int threads);
/* floats of each of a ConvWeightCache's areas for this shape; 0: its
 * algorithm keeps nothing (then `weights` is not used) */
size_t conv_weight_cache_floats(const ConvShape *s);

/* col[r, j] = the input value under kernel tap r = (c, ki, kj) for output
 * pixels p0 .. p0+n-1 of one image (0 outside the input): the B operand of
 * the forward GEMM. */
void conv_im2col_block(float *col, const float *in, const ConvShape *s, int p0, int n);

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const ConvShape *s, float *scratch);
void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const ConvShape *s, float *scratch);

#endif
