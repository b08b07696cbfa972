#include "nn/conv.h"

#include <omp.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/ops.h"
#include "nn/winograd.h"
#include "nn/winograd24.h"
#include "nn/winograd43.h"
#include "nn/winograd_phase.h"
#include "nn/winograd_s2.h"

ConvShape conv_shape(int batch, int in_ch, int in_h, int in_w, int out_ch, int kernel, int stride,
                     int pad) {
    ConvShape s = {batch, in_ch, in_h, in_w, out_ch, 0, 0, kernel, stride, pad, 0, 0, NULL, 0};
    s.out_h = (in_h + 2 * pad - kernel) / stride + 1;
    s.out_w = (in_w + 2 * pad - kernel) / stride + 1;
    return s;
}

static int is_pointwise(const ConvShape *s) {
    return s->kernel == 1 && s->stride == 1 && s->pad == 0;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }


/* 3x3, stride 1, pad 1: Winograd F(2x2, 3x3). */
static int is_winograd(const ConvShape *s) {
    return !s->upsampled && s->kernel == 3 && s->stride == 1 && s->pad == 1;
}

/* 4x4, stride 1, more than one output channel (D's l3): Winograd F(2x2, 4x4)
 * in all three products (nn/winograd24.h). Its weight transform costs
 * about as much as the products it saves on ~150 output pixels (measured:
 * slower at 7x7, D's smallest scale, 1.2x faster at 15x15, 1.6x at 31x31).
 * d(weight) crosses over at the same size (128 -> 256, 1 thread, im2col ->
 * F(2x2, 4x4): 7x7 0.60 -> 0.97 ms, 11x11 1.25 -> 1.58, 13x13 1.72 -> 1.62,
 * 15x15 2.2 -> 1.5), so the threshold holds for all three. */
#define WINO24_MIN_PIXELS 200
static int is_winograd24(const ConvShape *s) {
    return !s->upsampled && s->kernel == 4 && s->stride == 1 && s->out_ch > 1 &&
           s->out_h * s->out_w >= WINO24_MIN_PIXELS;
}

/* Nearest x2 upsampling, then a 3x3 conv with pad 1: four 2x2 phase convs
 * of the stored input, each on Winograd F(2x2, 2x2) or, in training forwards
 * and d(input), F(4x4, 2x2) (nn/winograd_phase.h). */
static int is_upsampled_3x3(const ConvShape *s) {
    return s->upsampled && s->kernel == 3 && s->stride == 1 && s->pad == 1;
}

/* 4x4, stride 2, pad 1 (D's l1, l2): four polyphase 2x2 convs on Winograd
 * F(2x2, 2x2) (nn/winograd_s2.h) in all three products when the
 * output has at least WS2_MIN_PIXELS pixels and the input WS2_MIN_CHANNELS
 * channels. Below those the transforms cost more than the products they
 * save (measured, 1 thread, batch 1: l2 at D's smallest scale, 8x8
 * outputs, forward 0.23 -> 0.38 ms, d(input) 0.43 -> 0.46, d(weight) 0.22
 * -> 0.30; l0, 3 -> 32 channels at 256x256, forward 0.77 -> 0.83 ms,
 * d(weight) 1.1 -> 2.3 ms). */
#define WS2_MIN_PIXELS 256
#define WS2_MIN_CHANNELS 16
static int is_winograd_s2(const ConvShape *s) {
    return !s->upsampled && s->kernel == 4 && s->stride == 2 && s->pad == 1 &&
           s->in_ch >= WS2_MIN_CHANNELS && s->out_h * s->out_w >= WS2_MIN_PIXELS;
}

/* The 16 unpacked U matrices lie this many floats apart beyond their size:
 * at a power-of-two distance, wino_weights' 16 store streams all map to the
 * same L1 cache sets (measured: 1.8% -> 1.0% of a training step). */
#define WINO_PAD 16

/* Scratch layout: [reordered weights | grad slots | per-thread column blocks].
 * The upsampling convs (nn/winograd_phase.h) keep nothing in the weight
 * area: the forward and d(input) use it and the slots as one area for their
 * transformed weights, d(weight) uses the slots. The direct forward packs the weights for the GEMM across the
 * weight area and the slots (k * (out + 7) floats: 8 areas of out * k do). */
static size_t weight_floats(const ConvShape *s) {
    if (is_upsampled_3x3(s)) return wphase_grad_floats(s->in_ch, s->out_ch);
    if (is_winograd_s2(s)) return ws2_grad_floats(s->in_ch, s->out_ch);
    if (is_winograd(s)) { /* the forward's packed U and U unpacked */
        int big = s->in_ch > s->out_ch ? s->in_ch : s->out_ch;
        return 16 * gemm_packed_floats(big, big) + (size_t)16 * (s->out_ch * s->in_ch + WINO_PAD);
    }
    return (size_t)s->out_ch * s->in_ch * s->kernel * s->kernel;
}
static size_t column_rows(const ConvShape *s) {
    size_t kk = (size_t)s->kernel * s->kernel;
    return max_sz((size_t)s->in_ch * kk, (size_t)s->out_ch * kk);
}

/* per thread: a column block, then a block of d(input) for the strided
 * backward; for Winograd v, m (or dm) and 16 rows for the transforms per WINO_SEG tiles */
static size_t thread_floats(const ConvShape *s) {
    if (is_upsampled_3x3(s)) return wphase_thread_floats(s->in_ch, s->out_ch);
    if (is_winograd_s2(s)) return ws2_thread_floats(s->in_ch, s->out_ch);
    if (is_winograd24(s)) return wino24_thread_floats(s->in_ch, s->out_ch);
    size_t direct = (column_rows(s) + (size_t)s->in_ch) * CONV_BLOCK;
    if (!is_winograd(s)) return direct;
    direct = max_sz(direct, wino43_thread_floats(s->in_ch, s->out_ch));
    return max_sz(direct, ((size_t)16 * (s->in_ch + s->out_ch) + 16) * WINO_SEG);
}

/* Before the threads' areas: the weight area and the gradient slots (which
 * F(4x4, 3x3) uses as one area), or in their place F(2x2, 4x4)'s own area:
 * none of its products uses im2col. */
static size_t shared_floats(const ConvShape *s) {
    if (is_winograd(s)) return max_sz(weight_floats(s), wino43_shared_floats(s->in_ch, s->out_ch));
    if (is_winograd24(s)) return wino24_shared_floats(s->in_ch, s->out_ch);
    size_t n = weight_floats(s) * (1 + CONV_GRAD_SLOTS);
    if (is_upsampled_3x3(s)) return max_sz(n, wphase_weight_floats(s->in_ch, s->out_ch));
    if (is_winograd_s2(s)) return max_sz(n, ws2_weight_floats(s->in_ch, s->out_ch));
    return n;
}

size_t conv_scratch_floats(const ConvShape *s, int threads) {
    return shared_floats(s) + (size_t)threads * thread_floats(s);
}

size_t conv_weight_cache_floats(const ConvShape *s) {
    if (is_winograd24(s)) return wino24_weight_floats(s->in_ch, s->out_ch);
    return is_winograd(s) ? wino43_weight_floats(s->in_ch, s->out_ch) : 0;
}

/* Where product k (0: forward, 1: d(input)) finds its transformed weights:
 * the shape's cache (*ready: already there, and from now on it is), or the
 * scratch's shared area, to transform into. */
static float *weight_area(const ConvShape *s, int k, float *scratch, int *ready) {
    ConvWeightCache *c = s->weights;
    if (!c || !c->data[k]) {
        *ready = 0;
        return scratch;
    }
    *ready = c->valid[k];
    c->valid[k] = 1;
    return c->data[k];
}

static float *thread_columns(const ConvShape *s, float *scratch) {
    return scratch + shared_floats(s) + (size_t)omp_get_thread_num() * thread_floats(s);
}

/* Pixels per job: CONV_BLOCK, or on small maps (D's last layers) less, down
 * to 64, until there are at least 4 jobs for the threads to share. Only the
 * shape decides, never the thread count: the GEMM gives every output the
 * same bits in any block, and the weight-gradient slots stay fixed. */
static int block_pixels(int batch, int pixels) {
    int n = CONV_BLOCK;
    while (n > 64 && batch * ((pixels + n - 1) / n) < 4) n /= 2;
    return n;
}

/* dst[i] += slots[k * stride + i] for k = first .. used-1, in that order for
 * every i: the fixed-order sum of the weight-gradient slots. In blocks, so
 * the inner loop runs over i and vectorises. */
static void add_slots(float *dst, const float *slots, size_t stride, size_t n, int first, int used) {
    enum { SPAN = 4096 };
#pragma omp parallel for schedule(static) if (n > 8 * SPAN)
    for (size_t i0 = 0; i0 < n; i0 += SPAN) {
        size_t len = n - i0 < SPAN ? n - i0 : SPAN;
        for (int slot = first; slot < used; slot++) {
            const float *p = slots + (size_t)slot * stride + i0;
            float *d = dst + i0;
            for (size_t i = 0; i < len; i++) d[i] += p[i];
        }
    }
}

/* Fills col row by row in runs of one output row: each run is zeros where
 * the kernel tap falls into the padding and a (strided) copy of one input
 * row in between -- no per-pixel bounds checks. */
void conv_im2col_block(float *col, const float *in, const ConvShape *s, int p0, int n) {
    int k = s->kernel, up = s->upsampled, st = s->stride;
    int src_w = s->in_w >> up; /* row length of the stored input */
    int oy0 = p0 / s->out_w, ox0 = p0 % s->out_w; /* runs after the first start at column 0 */
    for (int c = 0; c < s->in_ch; c++) {
        const float *x = in + (size_t)c * (s->in_h >> up) * src_w;
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * n;
                for (int j = 0, oy = oy0, ox = ox0; j < n; oy++, ox = 0) {
                    int len = s->out_w - ox < n - j ? s->out_w - ox : n - j;
                    int iy = oy * st - s->pad + ki;
                    float *dst = row + j;
                    if (iy < 0 || iy >= s->in_h) {
                        memset(dst, 0, (size_t)len * sizeof(float));
                    } else {
                        const float *src = x + (size_t)(iy >> up) * src_w;
                        int ix0 = ox * st - s->pad + kj; /* input column of the run's first tap */
                        int lo = ix0 >= 0 ? 0 : (-ix0 + st - 1) / st;
                        int hi = ix0 <= s->in_w - 1 ? (s->in_w - 1 - ix0) / st + 1 : 0;
                        if (lo > len) lo = len;
                        if (hi > len) hi = len;
                        if (hi < lo) hi = lo;
                        for (int t = 0; t < lo; t++) dst[t] = 0.0f; /* a few pixels: no call */
                        if (st == 1 && !up)
                            memcpy(dst + lo, src + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
                        else if (st == 2 && !up) /* the encoder's strided convs: vectorisable */
                            for (int t = lo; t < hi; t++) dst[t] = src[ix0 + 2 * t];
                        else
                            for (int t = lo; t < hi; t++) dst[t] = src[(ix0 + t * st) >> up];
                        for (int t = hi; t < len; t++) dst[t] = 0.0f;
                    }
                    j += len;
                }
            }
    }
}

/* The GEMM's B operand for output pixels p0 .. p0+n-1 of image x: the input
 * itself for a pointwise conv, else its im2col block in this thread's buffer. */
static const float *block_columns(const ConvShape *s, const float *x, float *scratch, int p0, int n,
                                  int *ld) {
    if (is_pointwise(s)) {
        *ld = s->out_h * s->out_w;
        return x + p0;
    }
    float *col = thread_columns(s, scratch);
    conv_im2col_block(col, x, s, p0, n);
    *ld = n;
    return col;
}

/* ---- one output channel, stride 1 (D's last layer: 8nd -> 1, 4x4) ----
 * As a GEMM this has one row: the microkernel would run 1 of its MR rows
 * and the im2col block would be most of the work. Instead a job copies the
 * input rows under a block of SINGLE_ROWS output rows, zero-padded, into
 * rows of P = out_w + k - 1 floats; the output block, stored at the same
 * row stride P, is then for each tap one multiply-add along one long
 * contiguous run (the columns past out_w are computed and dropped). */

#define SINGLE_ROWS 8
#define SINGLE_LANES 16

static int single_stride(const ConvShape *s) { return s->out_w + s->kernel - 1; }
/* floats of the padded input rows of one block, with zeros after them for
 * the runs that start up to k - 1 floats into the last row and are rounded
 * up to whole lanes */
static size_t single_block_floats(const ConvShape *s) {
    size_t n = (size_t)(SINGLE_ROWS + s->kernel - 1) * single_stride(s) + s->kernel + SINGLE_LANES;
    return (n + SINGLE_LANES - 1) / SINGLE_LANES * SINGLE_LANES;
}

static int is_single_output(const ConvShape *s) {
    /* the padded rows and the output block must fit in a thread's column area */
    return s->out_ch == 1 && s->stride == 1 && !s->upsampled && s->kernel > 1 && s->kernel <= 8 &&
           2 * single_block_floats(s) <= column_rows(s) * CONV_BLOCK;
}

/* pin[r * P + t] = input row y0 - pad + r, column t - pad (0 outside the map),
 * r < rows; zeros after them to the block's end */
static void single_padded_rows(float *pin, const float *x, const ConvShape *s, int y0, int rows) {
    int P = single_stride(s);
    for (int r = 0; r < rows; r++) {
        float *dst = pin + (size_t)r * P;
        int iy = y0 - s->pad + r, lo = s->pad, hi = s->pad + s->in_w < P ? s->pad + s->in_w : P;
        if (iy < 0 || iy >= s->in_h) {
            memset(dst, 0, (size_t)P * sizeof(float));
            continue;
        }
        for (int t = 0; t < lo; t++) dst[t] = 0.0f;
        memcpy(dst + lo, x + (size_t)iy * s->in_w, (size_t)(hi - lo) * sizeof(float));
        for (int t = hi; t < P; t++) dst[t] = 0.0f;
    }
    size_t used = (size_t)rows * P;
    for (size_t t = used; t < single_block_floats(s); t++) pin[t] = 0.0f;
}

static void single_output_forward(float *out, const float *in, const float *weight,
                                  const float *bias, const ConvShape *s, float *scratch) {
    int k = s->kernel, P = single_stride(s);
    int blocks = (s->out_h + SINGLE_ROWS - 1) / SINGLE_ROWS;
    size_t in_hw = (size_t)s->in_h * s->in_w;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, y0 = job % blocks * SINGLE_ROWS;
        int rows = s->out_h - y0 < SINGLE_ROWS ? s->out_h - y0 : SINGLE_ROWS;
        size_t run = (size_t)rows * P;
        float *acc = thread_columns(s, scratch), *pin = acc + single_block_floats(s);
        for (size_t t = 0; t < run; t++) acc[t] = 0.0f;
        for (int c = 0; c < s->in_ch; c++) {
            single_padded_rows(pin, in + (b * (size_t)s->in_ch + c) * in_hw, s, y0, rows + k - 1);
            for (int ki = 0; ki < k; ki++)
                for (int kj = 0; kj < k; kj++) {
                    float w = weight[((size_t)c * k + ki) * k + kj];
                    const float *src = pin + (size_t)ki * P + kj;
                    for (size_t t = 0; t < run; t++) acc[t] += w * src[t];
                }
        }
        for (int r = 0; r < rows; r++) {
            float *y = out + ((size_t)b * s->out_h + y0 + r) * s->out_w;
            for (int j = 0; j < s->out_w; j++) y[j] = acc[(size_t)r * P + j] + (bias ? bias[0] : 0.0f);
        }
    }
}

/* dweight[c, ki, kj] += sum over pixels of dout * the input under tap
 * (ki, kj): one job per input channel, the pixels in a fixed order; each
 * tap's products summed in SINGLE_LANES float lanes (vectorised), the
 * lanes added in double at the end. */
static void single_output_backward_weight(float *dweight, const float *dout, const float *in,
                                          const ConvShape *s, float *scratch) {
    int k = s->kernel, P = single_stride(s);
    size_t in_hw = (size_t)s->in_h * s->in_w, out_hw = (size_t)s->out_h * s->out_w;
    size_t block = single_block_floats(s);
#pragma omp parallel for schedule(dynamic)
    for (int c = 0; c < s->in_ch; c++) {
        float *dy = thread_columns(s, scratch), *pin = dy + block;
        float lanes[64][SINGLE_LANES]; /* k*k <= 64 taps: is_single_output's kernels */
        for (int t = 0; t < k * k; t++)
            for (int l = 0; l < SINGLE_LANES; l++) lanes[t][l] = 0.0f;
        for (int b = 0; b < s->batch; b++)
            for (int y0 = 0; y0 < s->out_h; y0 += SINGLE_ROWS) {
                int rows = s->out_h - y0 < SINGLE_ROWS ? s->out_h - y0 : SINGLE_ROWS;
                size_t run = ((size_t)rows * P + SINGLE_LANES - 1) / SINGLE_LANES * SINGLE_LANES;
                /* d(output) rows at stride P, zero past out_w and past the block */
                for (size_t t = 0; t < run; t++) dy[t] = 0.0f;
                for (int r = 0; r < rows; r++)
                    memcpy(dy + (size_t)r * P, dout + b * out_hw + (size_t)(y0 + r) * s->out_w,
                           (size_t)s->out_w * sizeof(float));
                single_padded_rows(pin, in + (b * (size_t)s->in_ch + c) * in_hw, s, y0, rows + k - 1);
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        const float *src = pin + (size_t)ki * P + kj;
                        float *acc = lanes[ki * k + kj];
                        for (size_t t = 0; t < run; t += SINGLE_LANES)
                            for (int l = 0; l < SINGLE_LANES; l++) acc[l] += dy[t + l] * src[t + l];
                    }
            }
        for (int t = 0; t < k * k; t++) {
            double sum = 0.0;
            for (int l = 0; l < SINGLE_LANES; l++) sum += lanes[t][l];
            dweight[(size_t)c * k * k + t] += (float)sum;
        }
    }
}

/* col[(c*kh + i)*kw + j, q] = x[c, y0 + gy + i, x0 + gx + j] (0 outside the
 * h x w map) for the pixels q = (gy, gx) q0 .. q0+n-1 of a grid gw wide: the
 * im2col of a stride-1 correlation whose taps start at (y0, x0), in runs of
 * one grid row. */
static void im2col_grid(float *col, const float *x, int ch, int h, int w, int kh, int kw, int y0,
                        int x0, int gw, int q0, int n) {
    size_t plane = (size_t)w * h;
    int gy0 = q0 / gw, gx0 = q0 % gw; /* runs after the first start at column 0 */
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                float *row = col + ((size_t)(c * kh + i) * kw + j) * n;
                for (int t = 0, gy = gy0, gx = gx0; t < n; gy++, gx = 0) {
                    int len = gw - gx < n - t ? gw - gx : n - t;
                    int iy = y0 + gy + i, ix = x0 + gx + j; /* the run's first input pixel */
                    float *dst = row + t;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, (size_t)len * sizeof(float));
                    } else {
                        int lo = ix < 0 ? -ix : 0, hi = w - ix < len ? w - ix : len;
                        if (lo > len) lo = len;
                        if (hi < lo) hi = lo;
                        for (int u = 0; u < lo; u++) dst[u] = 0.0f; /* a few pixels: no call */
                        const float *src = x + c * plane + (size_t)iy * w + ix + lo;
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                        for (int u = hi; u < len; u++) dst[u] = 0.0f;
                    }
                    t += len;
                }
            }
}

/* Sub-pixel decomposition of a strided conv's d(input): input row iy with
 * (iy + pad) % stride == r is reached only by kernel rows ki = r + stride*t,
 * from output row (iy + pad - ki) / stride. So each of the stride^2 phases
 * (ry, rx) of the input is a stride-1 correlation of d(output) with the
 * phase's taps, flipped: no zero taps multiplied (a gather over all taps
 * would be 3/4 zeros at stride 2), no per-pixel index arithmetic. */
typedef struct {
    int ry, rx;       /* tap residues */
    int kh, kw;       /* taps per axis */
    int a0, b0;       /* first grid row/column: input pixel (stride*a0 + ry - pad, ...) */
    int gh, gw;       /* grid size */
} Phase;

static Phase conv_phase(const ConvShape *s, int ry, int rx) {
    Phase p = {ry, rx, 0, 0, 0, 0, 0, 0};
    int st = s->stride, k = s->kernel;
    p.kh = ry < k ? (k - ry + st - 1) / st : 0;
    p.kw = rx < k ? (k - rx + st - 1) / st : 0;
    /* input rows stride*a + ry - pad in [0, in_h) */
    p.a0 = (s->pad - ry + st - 1 + st * 64) / st - 64; /* ceil, also for negatives */
    int a1 = (s->in_h - 1 + s->pad - ry + st * 64) / st - 64 + 1;
    p.b0 = (s->pad - rx + st - 1 + st * 64) / st - 64;
    int b1 = (s->in_w - 1 + s->pad - rx + st * 64) / st - 64 + 1;
    p.gh = a1 > p.a0 ? a1 - p.a0 : 0;
    p.gw = b1 > p.b0 ? b1 - p.b0 : 0;
    return p;
}

/* The sub-pixel path's phases cover every input pixel exactly once when the
 * kernel is at least the stride: it can store. */
static int is_strided_input_path(const ConvShape *s) {
    return !is_upsampled_3x3(s) && !is_winograd_s2(s) && !is_winograd(s) && !is_winograd24(s) &&
           (s->stride > 1 || s->pad > s->kernel - 1);
}
/* d(input) paths that can store (ConvShape.store_din) instead of adding */
static int stores_din(const ConvShape *s) {
    return is_winograd(s) || is_pointwise(s) || (is_strided_input_path(s) && s->kernel >= s->stride);
}

static void conv_backward_input_strided(float *din, const float *dout, const float *weight,
                                        const ConvShape *s, float *scratch) {
    int store = s->store_din && stores_din(s); /* each pixel gets one phase's write */
    int st = s->stride, k2 = s->kernel * s->kernel, in_hw = s->in_h * s->in_w;
    size_t in_size = (size_t)s->in_ch * in_hw, out_size = (size_t)s->out_ch * s->out_h * s->out_w;
    for (int ry = 0; ry < st; ry++)
        for (int rx = 0; rx < st; rx++) {
            Phase p = conv_phase(s, ry, rx);
            int rows = s->out_ch * p.kh * p.kw, grid = p.gh * p.gw;
            if (rows == 0 || grid == 0) continue;
            /* wt[ci, (co, i, j)] = weight[co, ci, ry + st*(kh-1-i), rx + st*(kw-1-j)],
             * packed once for all jobs into the gradient slots' area */
            float *wt = scratch;
            GemmPacked wp;
#pragma omp parallel for schedule(static)
            for (int ci = 0; ci < s->in_ch; ci++)
                for (int co = 0; co < s->out_ch; co++)
                    for (int i = 0; i < p.kh; i++)
                        for (int j = 0; j < p.kw; j++)
                            wt[(size_t)ci * rows + (co * p.kh + i) * p.kw + j] =
                                weight[((size_t)co * s->in_ch + ci) * k2 +
                                       (ry + st * (p.kh - 1 - i)) * s->kernel + rx +
                                       st * (p.kw - 1 - j)];
            gemm_pack(&wp, scratch + weight_floats(s), wt, rows, s->in_ch, rows);
            int nb = block_pixels(s->batch, grid);
            int blocks = (grid + nb - 1) / nb;
#pragma omp parallel for schedule(dynamic)
            for (int job = 0; job < s->batch * blocks; job++) {
                int b = job / blocks, q0 = (job % blocks) * nb;
                int n = grid - q0 < nb ? grid - q0 : nb;
                float *g = thread_columns(s, scratch), *dx = g + column_rows(s) * nb;
                /* grid pixel (gy, gx) reads d(output) rows a0 + gy - t, t = kh-1-i */
                im2col_grid(g, dout + b * out_size, s->out_ch, s->out_h, s->out_w, p.kh,
                            p.kw, p.a0 - p.kh + 1, p.b0 - p.kw + 1, p.gw, q0, n);
                gemm_packed_nn(n, &wp, g, n, 0.0f, dx, n);
                float *x = din + b * in_size;
                for (int ci = 0; ci < s->in_ch; ci++)
                    for (int t = 0, gy = q0 / p.gw, gx = q0 % p.gw; t < n; gy++, gx = 0) { /* in runs of one grid row */
                        int len = p.gw - gx < n - t ? p.gw - gx : n - t;
                        float *dst = x + (size_t)ci * in_hw + (size_t)(st * (p.a0 + gy) + ry - s->pad) * s->in_w +
                                     st * (p.b0 + gx) + rx - s->pad;
                        const float *src = dx + (size_t)ci * n + t;
                        if (store)
                            for (int u = 0; u < len; u++) dst[st * u] = src[u];
                        else
                            for (int u = 0; u < len; u++) dst[st * u] += src[u];
                        t += len;
                    }
            }
        }
}

/* ---- Winograd F(2x2, 3x3) for 3x3, stride 1, pad 1 convs (G's residual blocks) ----
 * A 2x2 output tile from the 4x4 input patch d around it (Lavin and Gray, 2016):
 *   y = A^T [ U (.) V ] A,  U = G g G^T,  V = B^T d B,
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1],
 *   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * the (.) product summed over input channels: 16 GEMMs [out x in] x [in x tiles],
 * 16 products per 2x2 pixels instead of 36. Training uses it for the forward
 * (its output transform stores tile + bias): its 2x2 tiles start at the map's
 * corner, so crops at even offsets keep the full image's bits. d(input) and
 * d(weight) run on F(4x4, 3x3) (nn/winograd43.h): 36 products per 4x4
 * pixels. Jobs are segments of WINO_SEG tiles of one row of tiles.
 * The transforms are plain C that vectorises over a row's tiles; the
 * AVX-512 copies are the same code compiled for it.
 * Each conv is within ~1e-6 of the direct one, but any change of the
 * forward's rounding can flip a kink (ReLU, LeakyReLU, L1) whose input is
 * that close to 0: the golden fixture's weight seed is chosen so that no
 * kink input of its training step is (scripts/make_golden.py). */

#define INLINE static inline __attribute__((always_inline))

/* Products m[(e*ch + c)*WINO_SEG + k] -> the tiles' pixels, stored in out
 * (h x w) as pixel + bias[c] (bias may be NULL). t: 12 * WINO_SEG floats. */
INLINE void wino_outputs_body(float *out, const float *m, int ch, int h, int w, int y0, int x0,
                              int nt, const float *bias, float *t) {
    size_t ld = (size_t)ch * WINO_SEG;
    int xn = w - x0 < 2 * nt ? w - x0 : 2 * nt; /* output columns inside the map */
    for (int c = 0; c < ch; c++) {
        if (c + WINO_PREFETCH < ch) /* as in wino_input_rows */
            wino_prefetch_rows(out + (size_t)(c + WINO_PREFETCH) * h * w, h, w, y0, 2, x0, xn, 1);
        const float *mc = m + (size_t)c * WINO_SEG;
        for (int j = 0; j < 4; j++) { /* A^T on the rows */
            const float *m0 = mc + j * ld, *m1 = m0 + 4 * ld, *m2 = m1 + 4 * ld, *m3 = m2 + 4 * ld;
            float *t0 = t + j * WINO_SEG, *t1 = t0 + 4 * WINO_SEG;
            for (int k = 0; k < nt; k++)
                t0[k] = m0[k] + m1[k] + m2[k], t1[k] = m1[k] - m2[k] - m3[k];
        }
        for (int r = 0; r < 2 && y0 + r < h; r++) { /* then on the columns */
            const float *t0 = t + 4 * r * WINO_SEG, *t1 = t0 + WINO_SEG, *t2 = t1 + WINO_SEG,
                        *t3 = t2 + WINO_SEG;
            float *o = t + 8 * WINO_SEG;
            for (int k = 0; k < nt; k++) {
                o[2 * k] = t0[k] + t1[k] + t2[k];
                o[2 * k + 1] = t1[k] - t2[k] - t3[k];
            }
            float *dst = out + ((size_t)c * h + y0 + r) * w + x0;
            float b = bias ? bias[c] : 0.0f;
            for (int j = 0; j < xn; j++) dst[j] = o[j] + b;
        }
    }
}

static void wino_inputs_plain(float *v, const float *x, int ch, int h, int w, int y0, int x0, int nt,
                              float *hv) {
    wino_input_rows(v, (size_t)ch * WINO_SEG, x, ch, h, w, y0, x0, nt, hv);
}
static void wino_outputs_plain(float *out, const float *m, int ch, int h, int w, int y0, int x0,
                               int nt, const float *bias, float *t) {
    wino_outputs_body(out, m, ch, h, w, y0, x0, nt, bias, t);
}
typedef struct {
    void (*inputs)(float *, const float *, int, int, int, int, int, int, float *);
    void (*outputs)(float *, const float *, int, int, int, int, int, int, const float *, float *);
} WinoFns;

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) static void wino_inputs_avx512(float *v, const float *x, int ch,
                                                                  int h, int w, int y0, int x0,
                                                                  int nt, float *hv) {
    wino_input_rows(v, (size_t)ch * WINO_SEG, x, ch, h, w, y0, x0, nt, hv);
}
__attribute__((target("avx512f"))) static void wino_outputs_avx512(float *out, const float *m,
                                                                   int ch, int h, int w, int y0,
                                                                   int x0, int nt,
                                                                   const float *bias, float *t) {
    wino_outputs_body(out, m, ch, h, w, y0, x0, nt, bias, t);
}
#endif

/* The transforms that go with the GEMM kernel packed in U: the portable path
 * stays portable when tests force the plain C kernel. */
static WinoFns wino_fns(GemmKernel kernel) {
    WinoFns f = {wino_inputs_plain, wino_outputs_plain};
#if defined(__x86_64__) || defined(__i386__)
    if (kernel == GEMM_KERNEL_AVX512) f = (WinoFns){wino_inputs_avx512, wino_outputs_avx512};
#endif
    return f;
}

/* G's rows applied to (a, b, c): 1, 0, 0 | .5, .5, .5 | .5, -.5, .5 | 0, 0, 1,
 * as adds and halvings (the same values as the products with G in double). */
INLINE void wino_g_rows(double *o, double a, double b, double c) {
    o[0] = a, o[1] = 0.5 * (a + b + c), o[2] = 0.5 * (a - b + c), o[3] = c;
}

/* U[e] = (G g G^T)[e] as [co_n x ci_n] matrices, g = weight[co, ci], each
 * packed for the GEMM into packed[e] (data from area). Row by row of the
 * U[e], so that the writes are contiguous. */
static void wino_weights(GemmPacked packed[16], float *area, float *tmp, const float *weight,
                         int co_n, int ci_n) {
    size_t mat = (size_t)co_n * ci_n + WINO_PAD; /* U[e] starts at tmp + e * mat */
#pragma omp parallel for schedule(static)
    for (int co = 0; co < co_n; co++)
        for (int ci = 0; ci < ci_n; ci++) {
            const float *g = weight + ((size_t)co * ci_n + ci) * 9;
            double gg[3][4], u[4]; /* gg[j] = G applied to column j of g */
            for (int j = 0; j < 3; j++) wino_g_rows(gg[j], g[j], g[3 + j], g[6 + j]);
            float *dst = tmp + (size_t)co * ci_n + ci;
            for (int i = 0; i < 4; i++) {
                wino_g_rows(u, gg[0][i], gg[1][i], gg[2][i]);
                for (int v = 0; v < 4; v++) dst[(4 * i + v) * mat] = (float)u[v];
            }
        }
    size_t each = gemm_packed_floats(co_n, ci_n);
#pragma omp parallel for schedule(static)
    for (int e = 0; e < 16; e++) gemm_pack(&packed[e], area + e * each, tmp + e * mat, ci_n, co_n, ci_n);
}

/* Weight area: the 16 packed U, then the unpacked ones while packing. */
static float *wino_tmp(const ConvShape *s, float *scratch) {
    int big = s->in_ch > s->out_ch ? s->in_ch : s->out_ch;
    return scratch + 16 * gemm_packed_floats(big, big);
}

/* out = conv3x3(in) + bias for every image (bias may be NULL) */
static void wino_forward(float *out, const float *in, const float *weight, const float *bias,
                         const ConvShape *s, float *scratch) {
    if (s->training) { /* ~1.3x faster; eval mode keeps F(2x2) for exact crops */
        int ready;
        float *area = weight_area(s, 0, scratch, &ready);
        wino43_conv(out, in, weight, 0, bias, 1, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                    area, ready, scratch + shared_floats(s), thread_floats(s));
        return;
    }
    GemmPacked U[16];
    wino_weights(U, scratch, wino_tmp(s, scratch), weight, s->out_ch, s->in_ch);
    int h = s->out_h, w = s->out_w, ci_n = s->in_ch, co_n = s->out_ch;
    int th = (h + 1) / 2, tw = (w + 1) / 2, segs = (tw + WINO_SEG - 1) / WINO_SEG;
    int jobs = s->batch * th * segs;
    WinoFns fn = wino_fns(U[0].kernel);
    size_t vld = (size_t)ci_n * WINO_SEG, mld = (size_t)co_n * WINO_SEG;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < jobs; job++) {
        int b = job / (th * segs), ti = job / segs % th, j0 = job % segs * WINO_SEG;
        int nt = tw - j0 < WINO_SEG ? tw - j0 : WINO_SEG;
        float *v = thread_columns(s, scratch), *mm = v + 16 * vld, *t = mm + 16 * mld;
        fn.inputs(v, in + (size_t)b * ci_n * h * w, ci_n, h, w, 2 * ti, 2 * j0, nt, t);
        for (int e = 0; e < 16; e++)
            gemm_packed_nn(nt, &U[e], v + e * vld, WINO_SEG, 0.0f, mm + e * mld, WINO_SEG);
        fn.outputs(out + (size_t)b * co_n * h * w, mm, co_n, h, w, 2 * ti, 2 * j0, nt, bias, t);
    }
}

/* d(input): the F(4x4, 3x3) conv of d(output) with the flipped, transposed kernel */
static void wino_backward_input(float *din, const float *dout, const float *weight,
                                const ConvShape *s, float *scratch) {
    int ready;
    float *area = weight_area(s, 1, scratch, &ready);
    wino43_conv(din, dout, weight, 1, NULL, s->store_din, s->batch, s->out_ch, s->in_ch, s->in_h,
                s->in_w, area, ready, scratch + shared_floats(s), thread_floats(s));
}

static void wino_backward_weight(float *dweight, const float *dout, const float *in,
                                 const ConvShape *s, float *scratch) {
    wino43_backward_weight(dweight, dout, in, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                           scratch, scratch + shared_floats(s), thread_floats(s));
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const ConvShape *s, float *scratch) {
    if (is_upsampled_3x3(s)) {
        wphase_forward(out, in, weight, bias, s->training, s->batch, s->in_ch, s->out_ch, s->in_h / 2,
                       s->in_w / 2, scratch, scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_winograd_s2(s)) {
        ws2_forward(out, in, weight, bias, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                    scratch, scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_winograd(s)) {
        wino_forward(out, in, weight, bias, s, scratch);
        return;
    }
    if (is_single_output(s)) {
        single_output_forward(out, in, weight, bias, s, scratch);
        return;
    }
    if (is_winograd24(s)) {
        int ready;
        float *area = weight_area(s, 0, scratch, &ready);
        wino24_conv(out, in, weight, 0, bias, 1, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                    s->out_h, s->out_w, s->pad, area, ready, scratch + shared_floats(s),
                    thread_floats(s));
        return;
    }
    int hw = s->out_h * s->out_w;
    int kk = s->in_ch * s->kernel * s->kernel;
    int nb = block_pixels(s->batch, hw);
    int blocks = (hw + nb - 1) / nb;
    size_t in_size = (size_t)s->in_ch * s->in_h * s->in_w, out_size = (size_t)s->out_ch * hw;
    /* packed once for every job (the same bits as gemm_nn), in the weight
     * area and the gradient slots, which the forward does not use */
    GemmPacked wp;
    gemm_pack(&wp, scratch, weight, kk, s->out_ch, kk);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, p0 = (job % blocks) * nb;
        int n = hw - p0 < nb ? hw - p0 : nb;
        float *y = out + b * out_size + p0;
        int ld;
        const float *cols = block_columns(s, in + b * in_size, scratch, p0, n, &ld);
        for (int co = 0; co < s->out_ch; co++)
            for (int j = 0; j < n; j++) y[(size_t)co * hw + j] = bias ? bias[co] : 0.0f;
        gemm_packed_nn(n, &wp, cols, ld, 1.0f, y, hw);
    }
}

static void conv_backward_input(float *din, const float *dout, const float *weight,
                                const ConvShape *s, float *scratch) {
    if (s->store_din && !stores_din(s)) /* the paths that only add */
        zero_floats(din, (size_t)s->batch * s->in_ch * s->in_h * s->in_w);
    if (is_upsampled_3x3(s)) {
        wphase_backward_input(din, dout, weight, s->batch, s->in_ch, s->out_ch, s->in_h / 2,
                              s->in_w / 2, scratch, scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_winograd_s2(s)) {
        ws2_backward_input(din, dout, weight, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                           scratch, scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_winograd(s)) {
        wino_backward_input(din, dout, weight, s, scratch);
        return;
    }
    if (is_winograd24(s)) {
        int ready;
        float *area = weight_area(s, 1, scratch, &ready);
        wino24_conv(din, dout, weight, 1, NULL, 0, s->batch, s->out_ch, s->in_ch, s->out_h,
                    s->out_w, s->in_h, s->in_w, s->kernel - 1 - s->pad, area, ready,
                    scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_strided_input_path(s)) {
        conv_backward_input_strided(din, dout, weight, s, scratch);
        return;
    }
    int in_hw = s->in_h * s->in_w, out_hw = s->out_h * s->out_w;
    int k2 = s->kernel * s->kernel;
    int rows = s->out_ch * k2;
    int nb = block_pixels(s->batch, in_hw);
    int blocks = (in_hw + nb - 1) / nb;
    size_t in_size = (size_t)s->in_ch * in_hw, out_size = (size_t)s->out_ch * out_hw;
    /* Stride 1: d(input) is a plain convolution of d(output) with the flipped,
     * transposed kernel and padding k-1-pad, so im2col builds its operand. */
    ConvShape ts = conv_shape(1, s->out_ch, s->out_h, s->out_w, s->in_ch, s->kernel, 1,
                              s->kernel - 1 - s->pad);
    /* wt[ci, (co, ki, kj)] = weight[co, ci, k-1-ki, k-1-kj], packed once for
     * all jobs into the gradient slots' area */
    float *wt = scratch;
    GemmPacked wp;
    if (!is_pointwise(s)) {
#pragma omp parallel for schedule(static)
        for (int ci = 0; ci < s->in_ch; ci++)
            for (int co = 0; co < s->out_ch; co++) {
                const float *src = weight + ((size_t)co * s->in_ch + ci) * k2;
                float *dst = wt + ((size_t)ci * s->out_ch + co) * k2;
                for (int t = 0; t < k2; t++) dst[t] = src[k2 - 1 - t];
            }
        gemm_pack(&wp, scratch + weight_floats(s), wt, rows, s->in_ch, rows);
    }
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, q0 = (job % blocks) * nb;
        int n = in_hw - q0 < nb ? in_hw - q0 : nb;
        const float *dy = dout + b * out_size;
        float *dx = din + b * in_size + q0;
        if (is_pointwise(s)) {
            gemm_tn(s->in_ch, n, s->out_ch, weight, s->in_ch, dy + q0, out_hw,
                    s->store_din ? 0.0f : 1.0f, dx, in_hw);
        } else {
            float *g = thread_columns(s, scratch);
            conv_im2col_block(g, dy, &ts, q0, n);
            gemm_packed_nn(n, &wp, g, n, 1.0f, dx, in_hw);
        }
    }
}

static void conv_backward_weight(float *dweight, const float *dout, const float *in,
                                 const ConvShape *s, float *scratch) {
    if (is_upsampled_3x3(s)) {
        size_t wsize = weight_floats(s);
        wphase_backward_weight(dweight, dout, in, s->batch, s->in_ch, s->out_ch, s->in_h / 2,
                               s->in_w / 2, scratch + wsize, wsize, CONV_GRAD_SLOTS,
                               scratch + shared_floats(s), thread_floats(s));
        return;
    }
    if (is_winograd_s2(s)) {
        size_t wsize = weight_floats(s);
        ws2_backward_weight(dweight, dout, in, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                            scratch + wsize, wsize, CONV_GRAD_SLOTS, scratch + shared_floats(s),
                            thread_floats(s));
        return;
    }
    if (is_winograd(s)) {
        wino_backward_weight(dweight, dout, in, s, scratch);
        return;
    }
    if (is_single_output(s)) {
        single_output_backward_weight(dweight, dout, in, s, scratch);
        return;
    }
    if (is_winograd24(s)) {
        wino24_backward_weight(dweight, dout, in, s->batch, s->in_ch, s->out_ch, s->in_h, s->in_w,
                               s->out_h, s->out_w, s->pad, scratch, scratch + shared_floats(s),
                               thread_floats(s));
        return;
    }
    int hw = s->out_h * s->out_w;
    int kk = s->in_ch * s->kernel * s->kernel;
    int nb = block_pixels(s->batch, hw);
    int blocks = (hw + nb - 1) / nb;
    int jobs = s->batch * blocks;
    size_t wsize = weight_floats(s);
    size_t in_size = (size_t)s->in_ch * s->in_h * s->in_w, out_size = (size_t)s->out_ch * hw;
    float *slots = scratch + wsize;
    int used = jobs < CONV_GRAD_SLOTS ? jobs : CONV_GRAD_SLOTS;
#pragma omp parallel for schedule(dynamic)
    for (int slot = 0; slot < used; slot++) {
        float *partial = slots + (size_t)slot * wsize;
        for (int job = slot; job < jobs; job += CONV_GRAD_SLOTS) {
            int b = job / blocks, p0 = (job % blocks) * nb;
            int n = hw - p0 < nb ? hw - p0 : nb;
            int ld;
            const float *cols = block_columns(s, in + b * in_size, scratch, p0, n, &ld);
            gemm_nt(s->out_ch, kk, n, dout + b * out_size + p0, hw, cols, ld,
                    job == slot ? 0.0f : 1.0f, partial, kk); /* the first job stores: no memset */
        }
    }
    add_slots(dweight, slots, wsize, wsize, 0, used);
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const ConvShape *s, float *scratch) {
    int hw = s->out_h * s->out_w;
    if (dbias) {
#pragma omp parallel for
        for (int co = 0; co < s->out_ch; co++) {
            double sum = 0.0;
            for (int b = 0; b < s->batch; b++) sum += sum_floats(dout + ((size_t)b * s->out_ch + co) * hw, hw);
            dbias[co] += (float)sum;
        }
    }
    if (dweight) conv_backward_weight(dweight, dout, in, s, scratch);
    if (din) conv_backward_input(din, dout, weight, s, scratch);
}
