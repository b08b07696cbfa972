#include "nn/infer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/ops.h"

static void layout_weights(InferModel *m, const Network *g) {
    for (int i = 0; i < m->num_units; i++) {
        const ConvUnit *u = &g->units[i];
        size_t count = (size_t)u->out_ch * u->in_ch * u->kernel * u->kernel;
        m->units[i].weight = arena_take(&m->weights, count);
        m->units[i].bias = arena_take(&m->weights, u->out_ch);
    }
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

/* Scratch per thread: im2col block, conv output block, head output block. */
static size_t thread_scratch(const InferModel *m) {
    size_t most = 0;
    for (int i = 0; i < m->num_units; i++) {
        const FusedConv *f = &m->units[i];
        size_t need = ((size_t)f->in_ch * f->kernel * f->kernel + f->out_ch + 3) * CONV_BLOCK;
        if (need > most) most = need;
    }
    return most;
}

static void layout_work(InferWork *w, const InferModel *m) {
    size_t px = (size_t)w->h * w->w;
    int F = m->cfg.F, K = m->cfg.K;
    size_t a = (size_t)F * px;                             /* enc0 */
    if ((size_t)8 * F * px / 16 > a) a = (size_t)8 * F * px / 16; /* residual r and h */
    if ((size_t)K * px / 4 > a) a = (size_t)K * px / 4;      /* dec1 */
    size_t b = (size_t)2 * F * px / 4;                       /* enc1 */
    if ((size_t)K * px / 16 > b) b = (size_t)K * px / 16;    /* dec2 */
    w->buf_a = arena_take(&w->arena, a);
    w->buf_b = arena_take(&w->arena, b);
    w->scratch = arena_take(&w->arena, thread_scratch(m) * w->threads);
}

int infer_work_init(InferWork *w, const InferModel *m, int h, int wd, char *err, size_t n) {
    memset(w, 0, sizeof *w);
    if (h % 4 || wd % 4 || h < 4 || wd < 4) {
        snprintf(err, n, "inference input %dx%d: sides must be positive multiples of 4", wd, h);
        return -1;
    }
    w->h = h, w->w = wd, w->threads = omp_get_max_threads();
    w->arena = arena_counter();
    layout_work(w, m);
    if (arena_alloc(&w->arena)) {
        snprintf(err, n, "out of memory for a %dx%d inference tile", wd, h);
        return -1;
    }
    layout_work(w, m);
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
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
        break;
    case ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.2f * x[i];
        break;
    case ACT_NONE: break;
    }
}

/* out = act(conv(in)) (+ residual, in place allowed), or, with a head,
 * out = head(act(conv(in))): each block of pixels is finished in cache. */
static void fused_conv(float *out, const float *in, const FusedConv *f, int h, int w,
                       const FusedConv *head, int residual, InferWork *work, size_t per_thread) {
    /* h, w: the input as stored; an upsampling conv reads it at twice the size */
    int ih = f->upsample_before ? 2 * h : h, iw = f->upsample_before ? 2 * w : w;
    ConvShape s = conv_shape(1, f->in_ch, ih, iw, f->out_ch, f->kernel, f->stride, f->pad);
    s.upsampled = f->upsample_before;
    int hw = s.out_h * s.out_w, kk = f->in_ch * f->kernel * f->kernel;
    int blocks = (hw + CONV_BLOCK - 1) / CONV_BLOCK;
    int pointwise = f->kernel == 1 && f->stride == 1 && !f->upsample_before;
#pragma omp parallel for schedule(dynamic)
    for (int job = 0; job < blocks; job++) {
        int p0 = job * CONV_BLOCK, n = hw - p0 < CONV_BLOCK ? hw - p0 : CONV_BLOCK;
        float *col = work->scratch + (size_t)omp_get_thread_num() * per_thread;
        float *acc = col + (size_t)kk * CONV_BLOCK;
        float *head_acc = acc + (size_t)f->out_ch * CONV_BLOCK;
        const float *b_op = in + p0;
        int ldb = hw;
        if (!pointwise) {
            conv_im2col_block(col, in, &s, p0, n);
            b_op = col, ldb = n;
        }
        for (int c = 0; c < f->out_ch; c++)
            for (int j = 0; j < n; j++) acc[c * n + j] = f->bias[c];
        gemm_nn(f->out_ch, n, kk, f->weight, kk, b_op, ldb, 1.0f, acc, n);
        activate(acc, (size_t)f->out_ch * n, f->act);
        if (head) {
            for (int c = 0; c < head->out_ch; c++)
                for (int j = 0; j < n; j++) head_acc[c * n + j] = head->bias[c];
            gemm_nn(head->out_ch, n, f->out_ch, head->weight, f->out_ch, acc, n, 1.0f, head_acc, n);
            activate(head_acc, (size_t)head->out_ch * n, head->act);
            for (int c = 0; c < head->out_ch; c++)
                memcpy(out + (size_t)c * hw + p0, head_acc + c * n, n * sizeof(float));
        } else {
            for (int c = 0; c < f->out_ch; c++) {
                float *dst = out + (size_t)c * hw + p0;
                const float *src = acc + c * n;
                if (residual)
                    for (int j = 0; j < n; j++) dst[j] += src[j];
                else
                    memcpy(dst, src, n * sizeof(float));
            }
        }
    }
}

void generator_infer(const InferModel *m, InferWork *work, const float *gray, float *rgb) {
    const FusedConv *u = m->units;
    int R = m->cfg.R, H = work->h, W = work->w, F = m->cfg.F;
    size_t per_thread = thread_scratch(m);
    size_t quarter = (size_t)(H / 4) * (W / 4);
    float *a = work->buf_a, *b = work->buf_b;
    float *r = a, *hbuf = a + (size_t)4 * F * quarter;
    fused_conv(a, gray, &u[0], H, W, NULL, 0, work, per_thread);           /* enc0 -> A */
    fused_conv(b, a, &u[1], H, W, NULL, 0, work, per_thread);              /* enc1 -> B */
    fused_conv(r, b, &u[2], H / 2, W / 2, NULL, 0, work, per_thread);      /* enc2 -> r */
    for (int i = 0; i < R; i++) {
        const FusedConv *c1 = &u[3 + 2 * i], *c2 = c1 + 1;
        fused_conv(hbuf, r, c1, H / 4, W / 4, NULL, 0, work, per_thread);  /* h = relu(bn(conv)) */
        fused_conv(r, hbuf, c2, H / 4, W / 4, NULL, 1, work, per_thread);  /* r += bn(conv(h)) */
    }
    int d2 = 3 + 2 * R;
    fused_conv(b, r, &u[d2], H / 4, W / 4, NULL, 0, work, per_thread);     /* dec2 -> B */
    fused_conv(a, b, &u[d2 + 1], H / 4, W / 4, NULL, 0, work, per_thread); /* dec1 (up) -> A */
    fused_conv(rgb, a, &u[d2 + 2], H / 2, W / 2, &u[d2 + 3], 0, work, per_thread); /* dec0+head */
}

void keep_luminance(float *rgb, const float *gray, const float w[3], size_t count) {
    float *r = rgb, *g = rgb + count, *b = rgb + 2 * count;
    float sum = w[0] + w[1] + w[2];
    for (size_t i = 0; i < count; i++) {
        float d = (gray[i] - (w[0] * r[i] + w[1] * g[i] + w[2] * b[i])) / sum;
        r[i] += d, g[i] += d, b[i] += d;
    }
}
