#include "nn/conv.h"

#include <omp.h>
#include <string.h>

#include "nn/gemm.h"

ConvShape conv_shape(int batch, int in_ch, int in_h, int in_w, int out_ch, int kernel, int stride,
                     int pad) {
    ConvShape s = {batch, in_ch, in_h, in_w, out_ch, 0, 0, kernel, stride, pad, 0};
    s.out_h = (in_h + 2 * pad - kernel) / stride + 1;
    s.out_w = (in_w + 2 * pad - kernel) / stride + 1;
    return s;
}

static int is_pointwise(const ConvShape *s) {
    return s->kernel == 1 && s->stride == 1 && s->pad == 0;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch layout: [reordered weights | grad slots | per-thread column blocks]. */
static size_t weight_floats(const ConvShape *s) {
    return (size_t)s->out_ch * s->in_ch * s->kernel * s->kernel;
}
static size_t column_rows(const ConvShape *s) {
    size_t kk = (size_t)s->kernel * s->kernel;
    return max_sz((size_t)s->in_ch * kk, (size_t)s->out_ch * kk);
}

/* per thread: a column block, then a block of d(input) for the strided backward */
static size_t thread_floats(const ConvShape *s) {
    return (column_rows(s) + (size_t)s->in_ch) * CONV_BLOCK;
}

size_t conv_scratch_floats(const ConvShape *s, int threads) {
    return weight_floats(s) * (1 + CONV_GRAD_SLOTS) + (size_t)threads * thread_floats(s);
}

static float *thread_columns(const ConvShape *s, float *scratch) {
    return scratch + weight_floats(s) * (1 + CONV_GRAD_SLOTS) +
           (size_t)omp_get_thread_num() * thread_floats(s);
}

/* Fills col row by row in runs of one output row: each run is zeros where
 * the kernel tap falls into the padding and a (strided) copy of one input
 * row in between -- no per-pixel bounds checks. */
void conv_im2col_block(float *col, const float *in, const ConvShape *s, int p0, int n) {
    int k = s->kernel, up = s->upsampled, st = s->stride;
    int src_w = s->in_w >> up; /* row length of the stored input */
    for (int c = 0; c < s->in_ch; c++) {
        const float *x = in + (size_t)c * (s->in_h >> up) * src_w;
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * n;
                for (int j = 0, p = p0; j < n;) {
                    int oy = p / s->out_w, ox = p % s->out_w;
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
                        memset(dst, 0, (size_t)lo * sizeof(float));
                        if (st == 1 && !up)
                            memcpy(dst + lo, src + ix0 + lo, (size_t)(hi - lo) * sizeof(float));
                        else if (st == 2 && !up) /* the encoder's strided convs: vectorisable */
                            for (int t = lo; t < hi; t++) dst[t] = src[ix0 + 2 * t];
                        else
                            for (int t = lo; t < hi; t++) dst[t] = src[(ix0 + t * st) >> up];
                        memset(dst + hi, 0, (size_t)(len - hi) * sizeof(float));
                    }
                    j += len, p += len;
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

/* col[(c*kh + i)*kw + j, q] = x[c, y0 + gy + i, x0 + gx + j] (0 outside the
 * h x w map) for the pixels q = (gy, gx) q0 .. q0+n-1 of a grid gw wide: the
 * im2col of a stride-1 correlation whose taps start at (y0, x0), in runs of
 * one grid row. */
static void im2col_grid(float *col, const float *x, int ch, int h, int w, int kh, int kw, int y0,
                        int x0, int gw, int q0, int n) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                float *row = col + ((size_t)(c * kh + i) * kw + j) * n;
                for (int t = 0, q = q0; t < n;) {
                    int gy = q / gw, gx = q % gw, len = gw - gx < n - t ? gw - gx : n - t;
                    int iy = y0 + gy + i, ix = x0 + gx + j; /* the run's first input pixel */
                    float *dst = row + t;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, (size_t)len * sizeof(float));
                    } else {
                        int lo = ix < 0 ? -ix : 0, hi = w - ix < len ? w - ix : len;
                        if (lo > len) lo = len;
                        if (hi < lo) hi = lo;
                        memset(dst, 0, (size_t)lo * sizeof(float));
                        memcpy(dst + lo, x + ((size_t)c * h + iy) * w + ix + lo,
                               (size_t)(hi - lo) * sizeof(float));
                        memset(dst + hi, 0, (size_t)(len - hi) * sizeof(float));
                    }
                    t += len, q += len;
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

static void conv_backward_input_strided(float *din, const float *dout, const float *weight,
                                        const ConvShape *s, float *scratch) {
    int st = s->stride, k2 = s->kernel * s->kernel, in_hw = s->in_h * s->in_w;
    size_t in_size = (size_t)s->in_ch * in_hw, out_size = (size_t)s->out_ch * s->out_h * s->out_w;
    for (int ry = 0; ry < st; ry++)
        for (int rx = 0; rx < st; rx++) {
            Phase p = conv_phase(s, ry, rx);
            int rows = s->out_ch * p.kh * p.kw, grid = p.gh * p.gw;
            if (rows == 0 || grid == 0) continue;
            /* wt[ci, (co, i, j)] = weight[co, ci, ry + st*(kh-1-i), rx + st*(kw-1-j)] */
            float *wt = scratch;
            for (int ci = 0; ci < s->in_ch; ci++)
                for (int co = 0; co < s->out_ch; co++)
                    for (int i = 0; i < p.kh; i++)
                        for (int j = 0; j < p.kw; j++)
                            wt[(size_t)ci * rows + (co * p.kh + i) * p.kw + j] =
                                weight[((size_t)co * s->in_ch + ci) * k2 +
                                       (ry + st * (p.kh - 1 - i)) * s->kernel + rx +
                                       st * (p.kw - 1 - j)];
            int blocks = (grid + CONV_BLOCK - 1) / CONV_BLOCK;
#pragma omp parallel for schedule(dynamic)
            for (int job = 0; job < s->batch * blocks; job++) {
                int b = job / blocks, q0 = (job % blocks) * CONV_BLOCK;
                int n = grid - q0 < CONV_BLOCK ? grid - q0 : CONV_BLOCK;
                float *g = thread_columns(s, scratch), *dx = g + column_rows(s) * CONV_BLOCK;
                /* grid pixel (gy, gx) reads d(output) rows a0 + gy - t, t = kh-1-i */
                im2col_grid(g, dout + b * out_size, s->out_ch, s->out_h, s->out_w, p.kh, p.kw,
                            p.a0 - p.kh + 1, p.b0 - p.kw + 1, p.gw, q0, n);
                gemm_nn(s->in_ch, n, rows, wt, rows, g, n, 0.0f, dx, n);
                float *x = din + b * in_size;
                for (int ci = 0; ci < s->in_ch; ci++)
                    for (int t = 0, q = q0; t < n;) { /* in runs of one grid row */
                        int gy = q / p.gw, gx = q % p.gw, len = p.gw - gx < n - t ? p.gw - gx : n - t;
                        float *dst = x + (size_t)ci * in_hw + (size_t)(st * (p.a0 + gy) + ry - s->pad) * s->in_w +
                                     st * (p.b0 + gx) + rx - s->pad;
                        const float *src = dx + (size_t)ci * n + t;
                        for (int u = 0; u < len; u++) dst[st * u] += src[u];
                        t += len, q += len;
                    }
            }
        }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const ConvShape *s, float *scratch) {
    int hw = s->out_h * s->out_w;
    int kk = s->in_ch * s->kernel * s->kernel;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    size_t in_size = (size_t)s->in_ch * s->in_h * s->in_w, out_size = (size_t)s->out_ch * hw;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, p0 = (job % blocks) * CONV_BLOCK;
        int n = hw - p0 < CONV_BLOCK ? hw - p0 : CONV_BLOCK;
        float *y = out + b * out_size + p0;
        int ld;
        const float *cols = block_columns(s, in + b * in_size, scratch, p0, n, &ld);
        for (int co = 0; co < s->out_ch; co++)
            for (int j = 0; j < n; j++) y[(size_t)co * hw + j] = bias ? bias[co] : 0.0f;
        gemm_nn(s->out_ch, n, kk, weight, kk, cols, ld, 1.0f, y, hw);
    }
}

static void conv_backward_input(float *din, const float *dout, const float *weight,
                                const ConvShape *s, float *scratch) {
    if (s->stride > 1 || s->pad > s->kernel - 1) {
        conv_backward_input_strided(din, dout, weight, s, scratch);
        return;
    }
    int in_hw = s->in_h * s->in_w, out_hw = s->out_h * s->out_w;
    int k2 = s->kernel * s->kernel;
    int rows = s->out_ch * k2;
    int blocks = (in_hw + CONV_BLOCK - 1) / CONV_BLOCK;
    size_t in_size = (size_t)s->in_ch * in_hw, out_size = (size_t)s->out_ch * out_hw;
    /* Stride 1: d(input) is a plain convolution of d(output) with the flipped,
     * transposed kernel and padding k-1-pad, so im2col builds its operand. */
    ConvShape ts = conv_shape(1, s->out_ch, s->out_h, s->out_w, s->in_ch, s->kernel, 1,
                              s->kernel - 1 - s->pad);
    /* wt[ci, (co, ki, kj)] = weight[co, ci, k-1-ki, k-1-kj] */
    float *wt = scratch;
    for (int co = 0; co < s->out_ch; co++)
        for (int ci = 0; ci < s->in_ch; ci++) {
            const float *src = weight + ((size_t)co * s->in_ch + ci) * k2;
            float *dst = wt + ((size_t)ci * s->out_ch + co) * k2;
            for (int t = 0; t < k2; t++) dst[t] = src[k2 - 1 - t];
        }
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, q0 = (job % blocks) * CONV_BLOCK;
        int n = in_hw - q0 < CONV_BLOCK ? in_hw - q0 : CONV_BLOCK;
        const float *dy = dout + b * out_size;
        float *dx = din + b * in_size + q0;
        if (is_pointwise(s)) {
            gemm_tn(s->in_ch, n, s->out_ch, weight, s->in_ch, dy + q0, out_hw, 1.0f, dx, in_hw);
        } else {
            float *g = thread_columns(s, scratch);
            conv_im2col_block(g, dy, &ts, q0, n);
            gemm_nn(s->in_ch, n, rows, wt, rows, g, n, 1.0f, dx, in_hw);
        }
    }
}

static void conv_backward_weight(float *dweight, const float *dout, const float *in,
                                 const ConvShape *s, float *scratch) {
    int hw = s->out_h * s->out_w;
    int kk = s->in_ch * s->kernel * s->kernel;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    int jobs = s->batch * blocks;
    size_t wsize = weight_floats(s);
    size_t in_size = (size_t)s->in_ch * s->in_h * s->in_w, out_size = (size_t)s->out_ch * hw;
    float *slots = scratch + wsize;
    int used = jobs < CONV_GRAD_SLOTS ? jobs : CONV_GRAD_SLOTS;
#pragma omp parallel for schedule(dynamic)
    for (int slot = 0; slot < used; slot++) {
        float *partial = slots + (size_t)slot * wsize;
        memset(partial, 0, wsize * sizeof(float));
        for (int job = slot; job < jobs; job += CONV_GRAD_SLOTS) {
            int b = job / blocks, p0 = (job % blocks) * CONV_BLOCK;
            int n = hw - p0 < CONV_BLOCK ? hw - p0 : CONV_BLOCK;
            int ld;
            const float *cols = block_columns(s, in + b * in_size, scratch, p0, n, &ld);
            gemm_nt(s->out_ch, kk, n, dout + b * out_size + p0, hw, cols, ld, 1.0f, partial, kk);
        }
    }
    for (int slot = 0; slot < used; slot++) {
        const float *partial = slots + (size_t)slot * wsize;
#pragma omp parallel for if (wsize > 32768)
        for (size_t i = 0; i < wsize; i++) dweight[i] += partial[i];
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const ConvShape *s, float *scratch) {
    int hw = s->out_h * s->out_w;
    if (dbias) {
#pragma omp parallel for
        for (int co = 0; co < s->out_ch; co++) {
            double sum = 0.0;
            for (int b = 0; b < s->batch; b++) {
                const float *dy = dout + ((size_t)b * s->out_ch + co) * hw;
                for (int j = 0; j < hw; j++) sum += dy[j];
            }
            dbias[co] += (float)sum;
        }
    }
    if (dweight) conv_backward_weight(dweight, dout, in, s, scratch);
    if (din) conv_backward_input(din, dout, weight, s, scratch);
}
