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

/* Nearest x2 upsampling, then a 3x3 conv with pad 1: runs as four 2x2 phase convs. */
static int is_upsampled_3x3(const ConvShape *s) {
    return s->upsampled && s->kernel == 3 && s->stride == 1 && s->pad == 1;
}

/* Scratch layout: [reordered weights | grad slots | per-thread column blocks].
 * The phase convs keep 4 phase kernels of [out x in*2*2] and their
 * transposes in the weight area, and their 4 phase kernels' gradients in
 * each slot. */
static size_t weight_floats(const ConvShape *s) {
    if (is_upsampled_3x3(s)) return (size_t)32 * s->out_ch * s->in_ch;
    return (size_t)s->out_ch * s->in_ch * s->kernel * s->kernel;
}
static size_t column_rows(const ConvShape *s) {
    if (is_upsampled_3x3(s))
        return max_sz((size_t)16 * s->out_ch, (size_t)4 * s->in_ch + s->out_ch);
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
 * one grid row. With step 2 the map is one pixel phase (py, px) of x, which
 * is stored at twice the size: map pixel (iy, ix) is x[c, 2*iy+py, 2*ix+px]. */
static void im2col_grid(float *col, const float *x, int ch, int h, int w, int step, int py, int px,
                        int kh, int kw, int y0, int x0, int gw, int q0, int n) {
    size_t row_len = (size_t)step * w, plane = row_len * step * h;
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
                        const float *src =
                            x + c * plane + (size_t)(step * iy + py) * row_len + step * (ix + lo) + px;
                        if (step == 1)
                            memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                        else
                            for (int u = 0; u < hi - lo; u++) dst[lo + u] = src[step * u];
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
                im2col_grid(g, dout + b * out_size, s->out_ch, s->out_h, s->out_w, 1, 0, 0, p.kh,
                            p.kw, p.a0 - p.kh + 1, p.b0 - p.kw + 1, p.gw, q0, n);
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

/* ---- nearest x2 upsampling, then a 3x3 conv with pad 1 (G's dec1, dec0) ----
 * Output pixel (2y+a, 2x+b) reads upsampled rows 2y+a-1 .. 2y+a+1, i.e. the
 * stored (half-size) rows y+a-1 and y+a: the first through kernel rows {0}
 * (a = 0) or {0, 1} (a = 1), the second through the rest; columns likewise.
 * So each output phase (a, b) is a 2x2 conv of the stored input with taps
 * starting at (a-1, b-1) and summed weights: 16 taps per 2x2 output pixels
 * instead of 36, exactly, and no upsampled copy. d(input) sums the four
 * phases' transposed 2x2 convs (one GEMM over all of them), d(weight) maps
 * each phase kernel's gradient back to the 3x3 taps it summed. Jobs are
 * blocks of stored pixels; every phase of a block is done in its job. */

/* stored row y + floor((a + ki - 1) / 2) is phase tap t of rows y+a-1, y+a */
static int phase_tap(int a, int ki) { return (a + ki + 1) / 2 - a; }

/* wp[ph][co, ci*4 + t*2 + u], ph = 2a + b: the summed phase kernels;
 * wt[ci, ((ph*co_n + co)*2 + i)*2 + j] = wp[ph][co, ci*4 + (1-i)*2 + 1-j]:
 * the flipped, transposed ones for d(input). */
static void phase_weights(float *wp, float *wt, const float *weight, int co_n, int ci_n) {
    size_t kk = (size_t)4 * ci_n, mat = (size_t)co_n * kk;
    memset(wp, 0, 4 * mat * sizeof(float));
    for (int ph = 0; ph < 4; ph++)
        for (int co = 0; co < co_n; co++)
            for (int ci = 0; ci < ci_n; ci++) {
                const float *w = weight + ((size_t)co * ci_n + ci) * 9;
                float *dst = wp + ph * mat + co * kk + ci * 4;
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++)
                        dst[phase_tap(ph >> 1, ki) * 2 + phase_tap(ph & 1, kj)] += w[ki * 3 + kj];
                if (!wt) continue;
                float *tr = wt + (size_t)ci * 16 * co_n + ((size_t)ph * co_n + co) * 4;
                for (int t = 0; t < 4; t++) tr[t] = dst[3 - t];
            }
}

/* Runs of one grid row: out[c, 2*gy+a, 2*gx+b] = blk[c, t] (or +=) for the
 * stored pixels q0 .. q0+n-1 (h x w). */
static void phase_scatter(float *out, const float *blk, int ch, int h, int w, int a, int b, int q0,
                          int n) {
    size_t ow = (size_t)2 * w, plane = ow * 2 * h;
    for (int c = 0; c < ch; c++)
        for (int t = 0, q = q0; t < n;) {
            int gy = q / w, gx = q % w, len = w - gx < n - t ? w - gx : n - t;
            float *dst = out + c * plane + (size_t)(2 * gy + a) * ow + 2 * gx + b;
            const float *src = blk + (size_t)c * n + t;
            for (int u = 0; u < len; u++) dst[2 * u] = src[u];
            t += len, q += len;
        }
}

static void phase_forward(float *out, const float *in, const float *weight, const float *bias,
                          const ConvShape *s, float *scratch) {
    int h = s->in_h / 2, w = s->in_w / 2, hw = h * w, kk = 4 * s->in_ch;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    size_t in_size = (size_t)s->in_ch * hw, out_size = (size_t)s->out_ch * 4 * hw;
    size_t mat = (size_t)s->out_ch * kk;
    float *wp = scratch;
    phase_weights(wp, NULL, weight, s->out_ch, s->in_ch);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, q0 = (job % blocks) * CONV_BLOCK;
        int n = hw - q0 < CONV_BLOCK ? hw - q0 : CONV_BLOCK;
        float *col = thread_columns(s, scratch), *acc = col + (size_t)kk * n;
        for (int ph = 0; ph < 4; ph++) {
            int a = ph >> 1, c = ph & 1;
            im2col_grid(col, in + b * in_size, s->in_ch, h, w, 1, 0, 0, 2, 2, a - 1, c - 1, w, q0, n);
            for (int co = 0; co < s->out_ch; co++)
                for (int j = 0; j < n; j++) acc[(size_t)co * n + j] = bias ? bias[co] : 0.0f;
            gemm_nn(s->out_ch, n, kk, wp + ph * mat, kk, col, n, 1.0f, acc, n);
            phase_scatter(out + b * out_size, acc, s->out_ch, h, w, a, c, q0, n);
        }
    }
}

static void phase_backward_input(float *din, const float *dout, const float *weight,
                                 const ConvShape *s, float *scratch) {
    int h = s->in_h / 2, w = s->in_w / 2, hw = h * w, rows = 16 * s->out_ch;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    size_t in_size = (size_t)s->in_ch * hw, out_size = (size_t)s->out_ch * 4 * hw;
    float *wp = scratch, *wt = scratch + (size_t)16 * s->out_ch * s->in_ch;
    phase_weights(wp, wt, weight, s->out_ch, s->in_ch);
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < s->batch * blocks; job++) {
        int b = job / blocks, q0 = (job % blocks) * CONV_BLOCK;
        int n = hw - q0 < CONV_BLOCK ? hw - q0 : CONV_BLOCK;
        float *col = thread_columns(s, scratch);
        /* stored pixel Y receives phase a's d(output) rows Y - a + i through tap 1 - i */
        for (int ph = 0; ph < 4; ph++)
            im2col_grid(col + (size_t)ph * 4 * s->out_ch * n, dout + b * out_size, s->out_ch, h, w,
                        2, ph >> 1, ph & 1, 2, 2, -(ph >> 1), -(ph & 1), w, q0, n);
        gemm_nn(s->in_ch, n, rows, wt, rows, col, n, 1.0f, din + b * in_size + q0, hw);
    }
}

static void phase_backward_weight(float *dweight, const float *dout, const float *in,
                                  const ConvShape *s, float *scratch) {
    int h = s->in_h / 2, w = s->in_w / 2, hw = h * w, kk = 4 * s->in_ch;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK, jobs = s->batch * blocks;
    size_t in_size = (size_t)s->in_ch * hw, out_size = (size_t)s->out_ch * 4 * hw;
    size_t mat = (size_t)s->out_ch * kk, wsize = weight_floats(s);
    float *slots = scratch + wsize;
    int used = jobs < CONV_GRAD_SLOTS ? jobs : CONV_GRAD_SLOTS;
#pragma omp parallel for schedule(dynamic)
    for (int slot = 0; slot < used; slot++) {
        float *partial = slots + (size_t)slot * wsize;
        memset(partial, 0, 4 * mat * sizeof(float));
        float *col = thread_columns(s, scratch), *dp = col + (size_t)kk * CONV_BLOCK;
        for (int job = slot; job < jobs; job += CONV_GRAD_SLOTS) {
            int b = job / blocks, q0 = (job % blocks) * CONV_BLOCK;
            int n = hw - q0 < CONV_BLOCK ? hw - q0 : CONV_BLOCK;
            for (int ph = 0; ph < 4; ph++) {
                int a = ph >> 1, c = ph & 1;
                im2col_grid(col, in + b * in_size, s->in_ch, h, w, 1, 0, 0, 2, 2, a - 1, c - 1, w,
                            q0, n);
                im2col_grid(dp, dout + b * out_size, s->out_ch, h, w, 2, a, c, 1, 1, 0, 0, w, q0, n);
                gemm_nt(s->out_ch, kk, n, dp, n, col, n, 1.0f, partial + ph * mat, kk);
            }
        }
    }
    for (int slot = 1; slot < used; slot++) {
        const float *partial = slots + (size_t)slot * wsize;
        for (size_t i = 0; i < 4 * mat; i++) slots[i] += partial[i];
    }
    /* each 3x3 tap received, in every phase, the gradient of the phase tap it was summed into */
    for (int co = 0; co < s->out_ch; co++)
        for (int ci = 0; ci < s->in_ch; ci++) {
            float *dw = dweight + ((size_t)co * s->in_ch + ci) * 9;
            for (int ph = 0; ph < 4; ph++) {
                const float *g = slots + ph * mat + (size_t)co * kk + ci * 4;
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++)
                        dw[ki * 3 + kj] += g[phase_tap(ph >> 1, ki) * 2 + phase_tap(ph & 1, kj)];
            }
        }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const ConvShape *s, float *scratch) {
    if (is_upsampled_3x3(s)) {
        phase_forward(out, in, weight, bias, s, scratch);
        return;
    }
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
    if (is_upsampled_3x3(s)) {
        phase_backward_input(din, dout, weight, s, scratch);
        return;
    }
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
    if (is_upsampled_3x3(s)) {
        phase_backward_weight(dweight, dout, in, s, scratch);
        return;
    }
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
