#include "nn/infer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/winograd.h"
#include "nn/winograd_phase.h"
#include "nn/ops.h"

/* Which algorithm runs a unit. */
static ConvAlgo conv_algo(const ConvUnit *u) {
    int same3x3 = u->kernel == 3 && u->stride == 1 && u->pad == 1;
    if (same3x3 && u->upsample_before) return CONV_PHASES;
    if (same3x3) return CONV_WINOGRAD;
    return CONV_DIRECT;
}

static void layout_weights(InferModel *m, const Network *g) {
    for (int i = 0; i < m->num_units; i++) {
        const ConvUnit *u = &g->units[i];
        FusedConv *f = &m->units[i];
        size_t count = (size_t)u->out_ch * u->in_ch * u->kernel * u->kernel;
        f->weight = arena_take(&m->weights, count);
        f->bias = arena_take(&m->weights, u->out_ch);
        switch (conv_algo(u)) {
        case CONV_DIRECT:
            f->direct.data = arena_take(&m->weights,
                                        gemm_packed_floats(u->out_ch, u->in_ch * u->kernel * u->kernel));
            break;
        case CONV_PHASES: /* the area for wphase_transform_weights, until it packs there */
            f->up[0].data = arena_take(&m->weights, wphase_packed_floats(u->in_ch, u->out_ch));
            break;
        case CONV_WINOGRAD:
            for (int e = 0; e < 16; e++)
                f->wino[e].data = arena_take(&m->weights, gemm_packed_floats(u->out_ch, u->in_ch));
            break;
        }
    }
}

/* Winograd F(2x2, 3x3) weights U = G g G^T, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 * as 16 matrices [out_ch x in_ch], one per transformed position e = 4u + v. */
static void pack_winograd(FusedConv *f, float *tmp) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    int ci_n = f->in_ch, co_n = f->out_ch;
    size_t mat = (size_t)co_n * ci_n;
    for (int co = 0; co < co_n; co++)
        for (int ci = 0; ci < ci_n; ci++) {
            const float *g = f->weight + ((size_t)co * ci_n + ci) * 9;
            double gg[4][3];
            for (int u = 0; u < 4; u++)
                for (int j = 0; j < 3; j++)
                    gg[u][j] = G[u][0] * g[j] + G[u][1] * g[3 + j] + G[u][2] * g[6 + j];
            for (int u = 0; u < 4; u++)
                for (int v = 0; v < 4; v++)
                    tmp[(4 * u + v) * mat + (size_t)co * ci_n + ci] =
                        (float)(gg[u][0] * G[v][0] + gg[u][1] * G[v][1] + gg[u][2] * G[v][2]);
        }
    for (int e = 0; e < 16; e++)
        gemm_pack(&f->wino[e], f->wino[e].data, tmp + e * mat, ci_n, co_n, ci_n);
}

int infer_model_init(InferModel *m, const Network *g, char *err, size_t n) {
    memset(m, 0, sizeof *m);
    m->cfg = g->cfg;
    m->num_units = g->num_units;
    m->units = calloc((size_t)g->num_units, sizeof *m->units);
    m->weights = arena_counter();
    if (!m->units) goto oom;
    layout_weights(m, g);
    if (arena_alloc(&m->weights)) goto oom;
    layout_weights(m, g);
    for (int i = 0; i < g->num_units; i++) {
        const ConvUnit *u = &g->units[i];
        FusedConv *f = &m->units[i];
        f->in_ch = u->in_ch, f->out_ch = u->out_ch, f->kernel = u->kernel;
        f->stride = u->stride, f->pad = u->pad, f->upsample_before = u->upsample_before;
        f->act = u->act;
        size_t per_out = (size_t)u->in_ch * u->kernel * u->kernel;
        for (int c = 0; c < u->out_ch; c++) {
            float scale = 1.0f, shift = 0.0f;
            if (u->has_bn) {
                scale = u->bn_weight[c] / sqrtf(u->running_var[c] + BN_EPS);
                shift = u->bn_bias[c] - u->running_mean[c] * scale;
            }
            for (size_t k = 0; k < per_out; k++)
                f->weight[c * per_out + k] = u->weight[c * per_out + k] * scale;
            f->bias[c] = u->bias[c] * scale + shift;
        }
    }
    size_t most = 0; /* scratch for the re-ordered weights */
    for (int i = 0; i < g->num_units; i++) {
        const ConvUnit *u = &g->units[i];
        size_t need = (size_t)36 * u->out_ch * u->in_ch; /* wphase_transform_weights' */
        if (need > most) most = need;
    }
    float *tmp = malloc(most * sizeof(float));
    if (!tmp) goto oom;
    for (int i = 0; i < g->num_units; i++) {
        FusedConv *f = &m->units[i];
        f->algo = conv_algo(&g->units[i]);
        int kk = f->in_ch * f->kernel * f->kernel;
        if (f->algo == CONV_DIRECT) gemm_pack(&f->direct, f->direct.data, f->weight, kk, f->out_ch, kk);
        if (f->algo == CONV_PHASES)
            wphase_transform_weights(f->up, f->up[0].data, tmp, f->weight, f->in_ch, f->out_ch);
        if (f->algo == CONV_WINOGRAD) pack_winograd(f, tmp);
    }
    free(tmp);
    return 0;
oom:
    snprintf(err, n, "out of memory preparing the model for inference");
    infer_model_free(m);
    return -1;
}

void infer_model_free(InferModel *m) {
    free(m->units);
    arena_free(&m->weights);
    memset(m, 0, sizeof *m);
}


/* the upsampling convs' head sums per thread: 3 (rgb) x 16 pixels of WPHASE_SEG tiles */
#define UP_HEAD_FLOATS (48 * WPHASE_SEG)

/* Scratch per thread: for direct convs an im2col block, the conv's output
 * block and the head's; for Winograd the transformed input and products and
 * a few row buffers, for the upsampling convs also the head's sums. */
static size_t unit_scratch(const FusedConv *f) {
    switch (f->algo) {
    case CONV_PHASES:
        return wphase_thread_floats(f->in_ch, f->out_ch) + UP_HEAD_FLOATS;
    case CONV_WINOGRAD:
        return (size_t)(16 * (f->in_ch + f->out_ch) + 16 + 12) * WINO_SEG; /* v, m, hv, rows + t */
    default:
        return ((size_t)f->in_ch * f->kernel * f->kernel + f->out_ch + 3) * CONV_BLOCK;
    }
}

static size_t thread_scratch(const InferModel *m) {
    size_t most = 0;
    for (int i = 0; i < m->num_units; i++) {
        size_t need = unit_scratch(&m->units[i]);
        if (need > most) most = need;
    }
    return most;
}

/* enc1 rows per job of the encoder stem (encoder_stem) */
#define STEM_ROWS 8

/* enc0 rows a stem job holds: those of STEM_ROWS enc1 rows, and one more */
static int stem_band_rows(int h) { return 2 * (STEM_ROWS < h / 2 ? STEM_ROWS : h / 2) + 2; }

/* The activations, in floats per input pixel for the default config: the H/4
 * trunk r and the residual branch h (8 + 8), enc1's output while enc2 reads
 * it (16, beside r), then dec1's output (16, over r and h) while dec2's (4)
 * is read. enc0's full-resolution output is never stored whole (the stem). */
static void layout_work(InferWork *w, const InferModel *m) {
    size_t px = (size_t)w->h * w->w;
    int F = m->cfg.F, K = m->cfg.K;
    size_t trunk = (size_t)4 * F * px / 16, enc1 = (size_t)2 * F * px / 4;
    size_t dec2 = (size_t)K * px / 16, dec1 = (size_t)K * px / 4;
    size_t dec2_at = 2 * trunk > dec1 ? 2 * trunk : dec1;
    size_t total = trunk + enc1 > dec2_at + dec2 ? trunk + enc1 : dec2_at + dec2;
    w->acts = arena_take(&w->arena, total);
    w->trunk = w->acts, w->branch = w->acts + trunk, w->enc1 = w->acts + trunk;
    w->dec1 = w->acts, w->dec2 = w->acts + dec2_at;
    size_t band = (size_t)m->units[0].out_ch * stem_band_rows(w->h) * w->w;
    w->band_at = (thread_scratch(m) + 15) / 16 * 16; /* each part 64-byte aligned */
    w->per_thread = w->band_at + (band + 15) / 16 * 16;
    w->scratch = arena_take(&w->arena, w->per_thread * w->threads);
}

int infer_work_init(InferWork *w, const InferModel *m, int h, int wd, char *err, size_t n) {
    memset(w, 0, sizeof *w);
    if (h % 4 || wd % 4 || h < 4 || wd < 4) {
        snprintf(err, n, "inference input %dx%d: sides must be positive multiples of 4", wd, h);
        return -1;
    }
    w->h = w->max_h = h, w->w = w->max_w = wd, w->threads = omp_get_max_threads();
    w->arena = arena_counter();
    layout_work(w, m);
    if (arena_alloc(&w->arena)) {
        snprintf(err, n, "out of memory for a %dx%d inference tile", wd, h);
        return -1;
    }
    layout_work(w, m);
    return 0;
}

int infer_work_resize(InferWork *w, int h, int wd) {
    if (h % 4 || wd % 4 || h < 4 || wd < 4 || h > w->max_h || wd > w->max_w) return -1;
    w->h = h, w->w = wd; /* the views laid out for max_h x max_w hold less as well */
    return 0;
}

void infer_work_free(InferWork *w) {
    arena_free(&w->arena);
    memset(w, 0, sizeof *w);
}

static void activate(float *x, size_t n, Activation act) {
    switch (act) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ACT_TANH: tanh_span(x, x, n); break;
    case ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.2f * x[i];
        break;
    case ACT_NONE: break;
    }
}

/* Output pixels p0 .. p0+n-1 (n <= CONV_BLOCK) of a direct conv of shape s:
 * act(conv(in)) (+ residual) into out, pixel p0 first, planes out_plane
 * floats apart. The block is finished in cache. */
static void direct_block(float *out, size_t out_plane, const float *in, const ConvShape *s, int p0,
                         int n, const FusedConv *f, int residual, float *scratch) {
    float *col = scratch, *acc = col + (size_t)f->direct.k * CONV_BLOCK;
    const float *b_op = in + p0;
    int ldb = s->out_h * s->out_w;
    if (!(f->kernel == 1 && f->stride == 1 && !f->upsample_before)) { /* else: in is the matrix */
        conv_im2col_block(col, in, s, p0, n);
        b_op = col, ldb = n;
    }
    for (int c = 0; c < f->out_ch; c++)
        for (int j = 0; j < n; j++) acc[c * n + j] = f->bias[c];
    gemm_packed_nn(n, &f->direct, b_op, ldb, 1.0f, acc, n);
    activate(acc, (size_t)f->out_ch * n, f->act);
    for (int c = 0; c < f->out_ch; c++) {
        float *dst = out + (size_t)c * out_plane;
        const float *src = acc + c * n;
        if (residual)
            for (int j = 0; j < n; j++) dst[j] += src[j];
        else
            memcpy(dst, src, n * sizeof(float));
    }
}

/* out = act(conv(in)) (+ residual, in place allowed), block by block. */
static void direct_conv(float *out, const float *in, const FusedConv *f, int h, int w,
                        int residual, InferWork *work) {
    /* h, w: the input as stored; an upsampling conv reads it at twice the size */
    int ih = f->upsample_before ? 2 * h : h, iw = f->upsample_before ? 2 * w : w;
    ConvShape s = conv_shape(1, f->in_ch, ih, iw, f->out_ch, f->kernel, f->stride, f->pad);
    s.upsampled = f->upsample_before;
    int hw = s.out_h * s.out_w;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    /* Static: every layer's jobs run in row order, so a thread gets about the
     * same rows in each layer and mostly reads what it wrote itself, from its
     * own L2 (dynamic scheduling measured 3-5% slower with 2 threads). */
#pragma omp parallel for schedule(static)
    for (int job = 0; job < blocks; job++) {
        int p0 = job * CONV_BLOCK, n = hw - p0 < CONV_BLOCK ? hw - p0 : CONV_BLOCK;
        direct_block(out + p0, hw, in, &s, p0, n, f, residual,
                     work->scratch + (size_t)omp_get_thread_num() * work->per_thread);
    }
}

/* enc1 (a 3x3 stride-2 conv, pad 1) of enc0's output, in jobs of STEM_ROWS
 * enc1 rows, so that enc0's full-resolution channels (the largest map) only
 * ever exist a band at a time, in each thread's scratch. enc1 rows r0 .. r1-1
 * read enc0 rows 2*r0-1 .. 2*r1-1; the band holds enc0 rows from 2*r0-2 (zero
 * outside the image), so enc1 run on the band with its own padding gives
 * those rows as its rows 1 .. r1-r0 (row 0 is not computed). Each pixel's
 * arithmetic is the one of the whole-map convs. */
static void encoder_stem(float *out, const float *in, const FusedConv *e0, const FusedConv *e1,
                         int h, int w, InferWork *work) {
    ConvShape s0 = conv_shape(1, e0->in_ch, h, w, e0->out_ch, e0->kernel, e0->stride, e0->pad);
    int oh = h / 2, ow = w / 2, jobs = (oh + STEM_ROWS - 1) / STEM_ROWS;
#pragma omp parallel for schedule(static)
    for (int job = 0; job < jobs; job++) {
        int r0 = job * STEM_ROWS, rows = oh - r0 < STEM_ROWS ? oh - r0 : STEM_ROWS;
        int first = 2 * r0 - 2, band_h = 2 * rows + 2;
        float *scratch = work->scratch + (size_t)omp_get_thread_num() * work->per_thread;
        float *band = scratch + work->band_at;
        size_t plane = (size_t)band_h * w;
        int lo = first < 0 ? 0 : first, hi = first + band_h < h ? first + band_h : h;
        for (int c = 0; c < e0->out_ch; c++) { /* enc0 rows outside the image: zero padding */
            memset(band + c * plane, 0, (size_t)(lo - first) * w * sizeof(float));
            memset(band + c * plane + (size_t)(hi - first) * w, 0,
                   (size_t)(first + band_h - hi) * w * sizeof(float));
        }
        for (int p = lo * w; p < hi * w; p += CONV_BLOCK) {
            int n = hi * w - p < CONV_BLOCK ? hi * w - p : CONV_BLOCK;
            direct_block(band + (size_t)(p - first * w), plane, in, &s0, p, n, e0, 0, scratch);
        }
        ConvShape s1 = conv_shape(1, e1->in_ch, band_h, w, e1->out_ch, e1->kernel, e1->stride,
                                  e1->pad);
        for (int q = ow; q < (rows + 1) * ow; q += CONV_BLOCK) {
            int n = (rows + 1) * ow - q < CONV_BLOCK ? (rows + 1) * ow - q : CONV_BLOCK;
            direct_block(out + (size_t)r0 * ow + (q - ow), (size_t)oh * ow, band, &s1, q, n, e1, 0,
                         scratch);
        }
    }
}

/* ---- Winograd F(2x2, 3x3) (Lavin and Gray, 2016) ------------------------------
 * A 2x2 output tile from the 4x4 input patch d around it:
 *   y = A^T [ U (.) (B^T d B) ] A,  U = G g G^T (pack_winograd),
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1],
 * the (.) product summed over input channels: 16 GEMMs [out x in] x [in x tiles].
 * Output 0 of A^T reads m0..m2, which read d0..d2 only; output 1 reads m1..m3,
 * from d1..d3: every pixel's bits come from its own 3x3 neighbourhood, unlike
 * F(4x4, 3x3) whose outputs read the whole 6x6 patch -- the receptive field,
 * and so the exactness of tiled inference, is kept. The plain C transforms
 * vectorise over the tiles of a row. */

#define INLINE static inline __attribute__((always_inline))

/* Products m[e * ld + k] of one output channel -> the 2x2 tiles' pixels plus
 * bias, as rows o0, o1 (2 * nt values each); t: 8 * WINO_SEG floats. */
INLINE void wino_output(float *o0, float *o1, const float *m, size_t ld, int nt, float bias,
                        float *t) {
    for (int c = 0; c < 4; c++) { /* A^T on the rows */
        const float *m0 = m + (size_t)c * ld, *m1 = m0 + 4 * ld, *m2 = m1 + 4 * ld,
                    *m3 = m2 + 4 * ld;
        float *t0 = t + c * WINO_SEG, *t1 = t0 + 4 * WINO_SEG;
        for (int k = 0; k < nt; k++) t0[k] = m0[k] + m1[k] + m2[k], t1[k] = m1[k] - m2[k] - m3[k];
    }
    for (int r = 0; r < 2; r++) { /* then on the columns */
        const float *t0 = t + 4 * r * WINO_SEG, *t1 = t0 + WINO_SEG, *t2 = t1 + WINO_SEG,
                    *t3 = t2 + WINO_SEG;
        float *o = r ? o1 : o0;
        for (int k = 0; k < nt; k++) {
            o[2 * k] = t0[k] + t1[k] + t2[k] + bias;
            o[2 * k + 1] = t1[k] - t2[k] - t3[k] + bias;
        }
    }
}

/* dst[lo..hi) = act(src) or += act(src); the switch outside the loops so they vectorise. */
INLINE void store_act(float *dst, const float *src, int lo, int hi, Activation act, int residual) {
    switch (act) {
    case ACT_RELU:
        if (residual)
            for (int j = lo; j < hi; j++) dst[j] += src[j] > 0.0f ? src[j] : 0.0f;
        else
            for (int j = lo; j < hi; j++) dst[j] = src[j] > 0.0f ? src[j] : 0.0f;
        break;
    case ACT_NONE:
        if (residual)
            for (int j = lo; j < hi; j++) dst[j] += src[j];
        else
            for (int j = lo; j < hi; j++) dst[j] = src[j];
        break;
    default:
        for (int j = lo; j < hi; j++) {
            float y = act == ACT_TANH ? tanhf(src[j]) : src[j] > 0.0f ? src[j] : 0.2f * src[j];
            dst[j] = residual ? dst[j] + y : y;
        }
    }
}

/* One job's transforms: the products mm -> out (the inputs: wino_input_rows),
 * the pixels inside r only. */
INLINE void wino_outputs_body(float *out, const float *mm, size_t mld, const FusedConv *f, int h,
                              int w, const InferRect *r, int y0, int x0, int nt, int residual,
                              float *rows) {
    int lo = r->left - x0 > 0 ? r->left - x0 : 0;
    int hi = r->right - x0 < 2 * nt ? r->right - x0 : 2 * nt;
    for (int c = 0; c < f->out_ch; c++) {
        float *o[2] = {rows, rows + 2 * WINO_SEG};
        if (c + WINO_PREFETCH < f->out_ch)
            wino_prefetch_rows(out + (size_t)(c + WINO_PREFETCH) * h * w, h, w, y0, 2, x0, 2 * nt,
                               1);
        wino_output(o[0], o[1], mm + (size_t)c * WINO_SEG, mld, nt, f->bias[c], rows + 4 * WINO_SEG);
        for (int i = 0; i < 2; i++) {
            int y = y0 + i;
            if (y >= r->top && y < r->bottom)
                store_act(out + ((size_t)c * h + y) * w + x0, o[i], lo, hi, f->act, residual);
        }
    }
}

typedef void (*WinoInputsFn)(float *v, size_t vld, const float *in, int ch, int h, int w, int y0,
                             int x0, int nt, float *hv);
typedef void (*WinoOutputsFn)(float *out, const float *mm, size_t mld, const FusedConv *f, int h,
                              int w, const InferRect *r, int y0, int x0, int nt, int residual,
                              float *rows);

static void wino_inputs_plain(float *v, size_t vld, const float *in, int ch, int h, int w, int y0,
                              int x0, int nt, float *hv) {
    wino_input_rows(v, vld, in, ch, h, w, y0, x0, nt, hv);
}
static void wino_outputs_plain(float *out, const float *mm, size_t mld, const FusedConv *f, int h,
                               int w, const InferRect *r, int y0, int x0, int nt, int residual,
                               float *rows) {
    wino_outputs_body(out, mm, mld, f, h, w, r, y0, x0, nt, residual, rows);
}

#if defined(__x86_64__) || defined(__i386__)
/* The same code for AVX-512: adds and subtracts only, so the same bits. */
__attribute__((target("avx512f"))) static void wino_inputs_avx512(float *v, size_t vld,
                                                                  const float *in, int ch, int h,
                                                                  int w, int y0, int x0, int nt,
                                                                  float *hv) {
    wino_input_rows(v, vld, in, ch, h, w, y0, x0, nt, hv);
}
__attribute__((target("avx512f"))) static void wino_outputs_avx512(float *out, const float *mm,
                                                                   size_t mld, const FusedConv *f,
                                                                   int h, int w,
                                                                   const InferRect *r, int y0,
                                                                   int x0, int nt, int residual,
                                                                   float *rows) {
    wino_outputs_body(out, mm, mld, f, h, w, r, y0, x0, nt, residual, rows);
}
#endif

/* out = act(conv3x3(in)) (+ residual, in place allowed) on the part r of an
 * h x w map whose 2x2 tiles start at row -oy, column -ox (oy, ox in {0, 1}).
 * Tiles that straddle r's edge read pixels outside it, which affect only
 * their own pixels outside r (see above), and store only those inside. */
static void winograd_conv(float *out, const float *in, const FusedConv *f, int h, int w,
                          const InferRect *r, int oy, int ox, int residual, InferWork *work) {
    int ti0 = (r->top + oy) / 2, th = (r->bottom - 1 + oy) / 2 + 1 - ti0;
    int tj0 = (r->left + ox) / 2, tw = (r->right - 1 + ox) / 2 + 1 - tj0;
    int segs = (tw + WINO_SEG - 1) / WINO_SEG;
    size_t vld = (size_t)f->in_ch * WINO_SEG, mld = (size_t)f->out_ch * WINO_SEG;
    WinoInputsFn inputs = wino_inputs_plain;
    WinoOutputsFn outputs = wino_outputs_plain;
#if defined(__x86_64__) || defined(__i386__)
    /* the portable path goes with the portable GEMM kernel, so tests forcing it test both */
    if (f->wino[0].kernel == GEMM_KERNEL_AVX512)
        inputs = wino_inputs_avx512, outputs = wino_outputs_avx512;
#endif
#pragma omp parallel for schedule(static)
    for (int job = 0; job < th * segs; job++) {
        int ti = ti0 + job / segs, j0 = (job % segs) * WINO_SEG;
        int nt = tw - j0 < WINO_SEG ? tw - j0 : WINO_SEG;
        j0 += tj0;
        float *v = work->scratch + (size_t)omp_get_thread_num() * work->per_thread;
        float *mm = v + 16 * vld, *hv = mm + 16 * mld, *rows = hv + 16 * WINO_SEG;
        int y0 = 2 * ti - oy, x0 = 2 * j0 - ox; /* the first tile's top left output pixel */
        inputs(v, vld, in, f->in_ch, h, w, y0, x0, nt, hv);
        for (int e = 0; e < 16; e++)
            gemm_packed_nn(nt, &f->wino[e], v + e * vld, WINO_SEG, 0.0f, mm + e * mld, WINO_SEG);
        outputs(out, mm, mld, f, h, w, r, y0, x0, nt, residual, rows);
    }
}

/* ---- Upsampling convs: Winograd F(2x2, 2x2) per phase (nn/winograd_phase.h) -------
 * Tile (ty, tx) reads the stored 3x3 patch at rows P = 2ty + oy .. P + 2
 * (columns likewise), and its four phase tiles give the 4x4 output block at
 * rows 2P+1 .. 2P+4: one V serves the four phases, whose U are stacked [4out
 * x in], as in the training forward. Output 0 of a phase tile reads d0, d1
 * and output 1 reads d1, d2 only, so an output's bits depend on its receptive
 * field and on its place in the tile: patches start on even rows and columns
 * of the raster at the input's scale (up_origin), whatever the window. */

/* Activated outputs y[(4ph + 2i + j) * WPHASE_SEG + k] (ph = 2a + b) of the
 * runs' tiles -> the pixels of one output plane (ow wide) inside o. Tile
 * (ty, tx)'s block starts at row 4ty + 2oy + 1, column 4tx + 2ox + 1. */
INLINE void up_store(float *plane, int ow, const float *y, const Run *runs, int nruns, int oy,
                     int ox, const InferRect *o) {
    for (int ri = 0; ri < nruns; ri++) {
        const Run *R = &runs[ri];
        int x0 = 4 * R->tx + 2 * ox + 1; /* the run's first output column */
        /* tiles [lo, hi) have all four columns inside o */
        int lo = o->left - x0 > 0 ? (o->left - x0 + 3) / 4 : 0;
        int hi = o->right - 4 - x0 >= 0 ? (o->right - 4 - x0) / 4 + 1 : 0;
        if (lo > R->n) lo = R->n;
        if (hi > R->n) hi = R->n;
        if (hi < lo) hi = lo;
        for (int r = 0; r < 4; r++) {
            int row = 4 * R->ty + 2 * oy + 1 + r, a = 1 - (r & 1), i = r >> 1;
            if (row < o->top || row >= o->bottom) continue;
            /* the block's columns: phases b = 1, 0, 1, 0, tile columns j = 0, 0, 1, 1 */
            const float *s1 = y + (8 * a + 2 * i) * WPHASE_SEG + R->k0, *s3 = s1 + WPHASE_SEG;
            const float *s0 = s1 + 4 * WPHASE_SEG, *s2 = s1 + 5 * WPHASE_SEG;
            float *dst = plane + (size_t)row * ow;
            for (int k = lo; k < hi; k++) {
                float *d = dst + (x0 + 4 * k);
                d[0] = s0[k], d[1] = s1[k], d[2] = s2[k], d[3] = s3[k];
            }
            for (int k = 0; k < R->n; k++) { /* the tiles reaching past o's sides */
                if (k == lo) k = hi;
                if (k >= R->n) break;
                const float *src[4] = {s0, s1, s2, s3};
                for (int q = 0; q < 4; q++) {
                    int col = x0 + 4 * k + q;
                    if (col >= o->left && col < o->right) dst[col] = src[q][k];
                }
            }
        }
    }
}

/* One job's products m[e * mld + (ph * out_ch + c) * WPHASE_SEG + k] ->
 * act(conv + bias) or, with a head, head(act(conv + bias)), stored inside o
 * of out (oh x ow planes). t: 22 * WPHASE_SEG + UP_HEAD_FLOATS floats. */
INLINE void up_outputs_body(float *out, const float *m, size_t mld, const FusedConv *f,
                            const FusedConv *head, int oh, int ow, const InferRect *o,
                            const Run *runs, int nruns, int nt, int oy, int ox, float *t) {
    const size_t seg = WPHASE_SEG, block = 16 * seg; /* 16 rows: a channel's tiles */
    float *y = t + 6 * seg, *rgb = y + block;
    int co_n = f->out_ch;
    if (head)
        for (int r = 0; r < head->out_ch; r++)
            for (int q = 0; q < 16; q++)
                for (int k = 0; k < nt; k++) rgb[r * block + q * seg + k] = head->bias[r];
    for (int c = 0; c < co_n; c++) {
        for (int ph = 0; ph < 4; ph++)
            tile_outputs(y + 4 * ph * seg, m + (size_t)(ph * co_n + c) * seg, mld, nt, t);
        for (int q = 0; q < 16; q++) {
            float *yq = y + q * seg;
            for (int k = 0; k < nt; k++) yq[k] += f->bias[c];
            store_act(yq, yq, 0, nt, f->act, 0);
        }
        if (!head) {
            up_store(out + (size_t)c * oh * ow, ow, y, runs, nruns, oy, ox, o);
            continue;
        }
        for (int r = 0; r < head->out_ch; r++) { /* the 1x1 head, a channel at a time */
            float wr = head->weight[r * co_n + c];
            for (int q = 0; q < 16; q++)
                for (int k = 0; k < nt; k++) rgb[r * block + q * seg + k] += wr * y[q * seg + k];
        }
    }
    if (head)
        for (int r = 0; r < head->out_ch; r++) {
            for (int q = 0; q < 16; q++) activate(rgb + r * block + q * seg, (size_t)nt, head->act);
            up_store(out + (size_t)r * oh * ow, ow, rgb + r * block, runs, nruns, oy, ox, o);
        }
}

#define UP_INPUTS_ARGS                                                                          \
    float *v, size_t vld, const float *in, int ch, int h, int w, const Run *runs, int nruns,   \
        int nt, int oy, int ox, float *hv
#define UP_OUTPUTS_ARGS                                                                         \
    float *out, const float *m, size_t mld, const FusedConv *f, const FusedConv *head, int oh, \
        int ow, const InferRect *o, const Run *runs, int nruns, int nt, int oy, int ox, float *t
/* The same code for the plain and the AVX-512 GEMM kernel (see winograd_conv) */
#define UP_TRANSFORMS(suffix, attr)                                                             \
    attr static void up_inputs_##suffix(UP_INPUTS_ARGS) {                                       \
        inputs_body(v, vld, in, (size_t)h * w, w, 1, ch, h, w, runs, nruns, nt, oy, ox, hv);    \
    }                                                                                           \
    attr static void up_outputs_##suffix(UP_OUTPUTS_ARGS) {                                     \
        up_outputs_body(out, m, mld, f, head, oh, ow, o, runs, nruns, nt, oy, ox, t);           \
    }
UP_TRANSFORMS(plain, )
#if defined(__x86_64__) || defined(__i386__)
UP_TRANSFORMS(avx512, __attribute__((target("avx512f"))))
#endif

/* Upsampling 3x3 conv of an h x w input, for the input positions in r (each
 * gives a 2x2 block of output pixels), tile patches starting at row oy,
 * column ox (up_origin); with a head, out = head(act(conv)). Tiles that
 * straddle r's edge store only the pixels inside it. */
static void up_conv(float *out, const float *in, const FusedConv *f, int h, int w,
                    const InferRect *r, int oy, int ox, const FusedConv *head, InferWork *work) {
    InferRect o = {2 * r->top, 2 * r->bottom, 2 * r->left, 2 * r->right}; /* output pixels */
    /* the tiles whose blocks (rows 4ty + 2oy + 1 .. 4ty + 2oy + 4) meet o; 2oy + 1 < 0 */
    int ty0 = (o.top - 2 * oy - 1) / 4, th = (o.bottom - 2 * oy - 2) / 4 + 1 - ty0;
    int tx0 = (o.left - 2 * ox - 1) / 4, tw = (o.right - 2 * ox - 2) / 4 + 1 - tx0;
    if (th <= 0 || tw <= 0) return;
    int tiles = th * tw, segs = (tiles + WPHASE_SEG - 1) / WPHASE_SEG;
    size_t vld = (size_t)f->in_ch * WPHASE_SEG, mld = (size_t)4 * f->out_ch * WPHASE_SEG;
    oy += 2 * ty0, ox += 2 * tx0; /* the runs' tiles count from (ty0, tx0) */
    void (*inputs)(UP_INPUTS_ARGS) = up_inputs_plain;
    void (*outputs)(UP_OUTPUTS_ARGS) = up_outputs_plain;
#if defined(__x86_64__) || defined(__i386__)
    if (f->up[0].kernel == GEMM_KERNEL_AVX512) inputs = up_inputs_avx512, outputs = up_outputs_avx512;
#endif
#pragma omp parallel for schedule(static)
    for (int job = 0; job < segs; job++) {
        int q0 = job * WPHASE_SEG, nt = tiles - q0 < WPHASE_SEG ? tiles - q0 : WPHASE_SEG;
        float *v = work->scratch + (size_t)omp_get_thread_num() * work->per_thread;
        float *mm = v + 9 * vld, *t = mm + 9 * mld;
        Run runs[WPHASE_SEG];
        int nruns = job_runs(runs, q0, nt, tw);
        inputs(v, vld, in, f->in_ch, h, w, runs, nruns, nt, oy, ox, t);
        for (int e = 0; e < 9; e++)
            gemm_packed_nn(nt, &f->up[e], v + e * vld, WPHASE_SEG, 0.0f, mm + e * mld, WPHASE_SEG);
        outputs(out, mm, mld, f, head, 2 * h, 2 * w, &o, runs, nruns, nt, oy, ox, t);
    }
}

/* r grown by k pixels on every side, within an h x w map */
static InferRect rect_grow(InferRect r, int k, int h, int w) {
    InferRect g = {r.top - k, r.bottom + k, r.left - k, r.right + k};
    if (g.top < 0) g.top = 0;
    if (g.left < 0) g.left = 0;
    if (g.bottom > h) g.bottom = h;
    if (g.right > w) g.right = w;
    return g;
}

/* The input positions of an upsampling conv whose 2x2 output blocks meet r */
static InferRect rect_halve(InferRect r) {
    return (InferRect){r.top / 2, (r.bottom + 1) / 2, r.left / 2, (r.right + 1) / 2};
}

static int floor_mod2(int x) { return x & 1; } /* two's complement: also for x < 0 */

/* up_conv's first patch row (column) for a map whose first pixel is at
 * raster position origin (at its scale): even in the raster, and -2 or -1,
 * so that the block of tile 0 starts at or before the map's first pixel. */
static int up_origin(int origin) { return floor_mod2(origin) - 2; }

/* What each layer computes, from the end back: dec0's phases (each reading
 * dec1 one position around) cover want, dec1's phases cover what dec0 reads,
 * dec2 (1x1) and the last residual block cover what dec1 reads; a residual
 * block's second conv covers its output, its first conv one pixel more, and
 * its input (the previous block's output) two more. The encoder (stem, enc2)
 * and dec2 run on the whole window: there a smaller part saves little. */
void generator_infer(const InferModel *m, InferWork *work, const float *gray, float *rgb, int x0,
                     int y0, const InferRect *want) {
    const FusedConv *u = m->units;
    int R = m->cfg.R, H = work->h, W = work->w;
    float *r = work->trunk, *hbuf = work->branch;
    InferRect y1 = want ? rect_grow(*want, 0, H, W) : (InferRect){0, H, 0, W};
    InferRect dec0_at = rect_halve(y1);
    InferRect dec1_at = rect_halve(rect_grow(dec0_at, 1, H / 2, W / 2));
    InferRect trunk = rect_grow(dec1_at, 1, H / 4, W / 4); /* the last block's output */
    /* the Winograd tile grid at H/4: even rows and columns of the raster's H/4 grid */
    int oy = floor_mod2(y0 / 4), ox = floor_mod2(x0 / 4);
    encoder_stem(work->enc1, gray, &u[0], &u[1], H, W, work);   /* enc0, enc1 */
    direct_conv(r, work->enc1, &u[2], H / 2, W / 2, 0, work);    /* enc2 -> r */
    for (int i = 0; i < R; i++) {
        const FusedConv *c1 = &u[3 + 2 * i], *c2 = c1 + 1;
        InferRect out = rect_grow(trunk, 2 * (R - 1 - i), H / 4, W / 4);
        InferRect mid = rect_grow(out, 1, H / 4, W / 4);
        winograd_conv(hbuf, r, c1, H / 4, W / 4, &mid, oy, ox, 0, work); /* h = relu(bn(conv)) */
        winograd_conv(r, hbuf, c2, H / 4, W / 4, &out, oy, ox, 1, work); /* r += bn(conv(h)) */
    }
    int d2 = 3 + 2 * R;
    direct_conv(work->dec2, r, &u[d2], H / 4, W / 4, 0, work);                   /* dec2 */
    up_conv(work->dec1, work->dec2, &u[d2 + 1], H / 4, W / 4, &dec1_at, up_origin(y0 / 4),
            up_origin(x0 / 4), NULL, work); /* dec1 */
    up_conv(rgb, work->dec1, &u[d2 + 2], H / 2, W / 2, &dec0_at, up_origin(y0 / 2),
            up_origin(x0 / 2), &u[d2 + 3], work); /* dec0 + head */
}
