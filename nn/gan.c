#include "nn/gan.h"

#include <stdio.h>
#include <string.h>

#include "nn/ops.h"

LossWeights loss_weights_default(void) {
    LossWeights lw = {10.0f, 10.0f, 0.0f, 0};
    return lw;
}

static void layout_workspace(GanWorkspace *ws) {
    Arena *ar = &ws->arena;
    size_t hw = (size_t)ws->h * ws->w, n = (size_t)ws->batch * hw;
    size_t sobel = (size_t)ws->batch * 2 * (ws->h - 2) * (ws->w - 2);
    ws->gray_b = arena_take(ar, n);
    for (int s = 1; s < 3; s++) {
        size_t scaled = n >> (2 * s);
        ws->down_a[s] = arena_take(ar, scaled);
        ws->down_b[s] = arena_take(ar, 3 * scaled);
    }
    for (int s = 0; s < 3; s++) ws->fake[s] = arena_take(ar, 3 * (n >> (2 * s)));
    ws->ht_y = arena_take(ar, n);
    ws->d_ht_y = arena_take(ar, n);
    ws->locked = arena_take(ar, 3 * n);
    ws->d_locked = arena_take(ar, 3 * n);
    ws->sobel_y = arena_take(ar, sobel);
    ws->sobel_a = arena_take(ar, sobel);
    ws->d_sobel = arena_take(ar, sobel);
}

int gan_workspace_init(GanWorkspace *ws, const Network *g, const Network *d, int batch, int h,
                       int w, char *err, size_t n) {
    memset(ws, 0, sizeof *ws);
    ws->batch = batch, ws->h = h, ws->w = w;
    if (activations_init(&ws->g_acts, g, batch, h, w, 1, err, n)) return -1;
    for (int s = 0; s < 3; s++)
        if (activations_init(&ws->d_acts[s], d, batch, h >> s, w >> s, 1, err, n)) {
            gan_workspace_free(ws);
            return -1;
        }
    ws->arena = arena_counter();
    layout_workspace(ws);
    if (arena_alloc(&ws->arena)) {
        snprintf(err, n, "out of memory for the training workspace");
        gan_workspace_free(ws);
        return -1;
    }
    layout_workspace(ws);
    return 0;
}

void gan_workspace_free(GanWorkspace *ws) {
    activations_free(&ws->g_acts);
    for (int s = 0; s < 3; s++) activations_free(&ws->d_acts[s]);
    arena_free(&ws->arena);
}

void gan_workspace_sync_batchnorm(GanWorkspace *ws, const BnSync *sync) {
    ws->g_acts.bn_sync = sync;
    for (int s = 0; s < 3; s++) ws->d_acts[s].bn_sync = sync;
}

/* Fills down_a / down_b for scales 2 and 3 and points scale 1 at the inputs. */
void gan_downsample_targets(GanWorkspace *ws, const float *a, const float *b,
                            const float *targets[2][3]) {
    targets[0][0] = a;
    targets[1][0] = b;
    for (int s = 1; s < 3; s++) {
        avgpool_forward(ws->down_a[s], a, ws->batch, ws->h, ws->w, 1 << s);
        avgpool_forward(ws->down_b[s], b, 3 * ws->batch, ws->h, ws->w, 1 << s);
        targets[0][s] = ws->down_a[s];
        targets[1][s] = ws->down_b[s];
    }
}

double gan_realism_for_generator(Network *d, Activations *da, const float *y, float *dy) {
    discriminator_forward(d, da, y, 1);
    size_t count = (size_t)da->batch * da->y_h[0] * da->y_w[0];
    double loss = mse_const_forward(da->y[0], 1.0f, count);
    activations_zero_grads(da);
    mse_const_backward(da->d_y[0], da->y[0], 1.0f, count, 1.0f);
    discriminator_backward(d, da, 0);
    size_t in_count = (size_t)da->batch * d->in_ch * da->h * da->w;
    for (size_t i = 0; i < in_count; i++) dy[i] += da->d_input[i];
    return loss;
}

void gan_generator_step(GanWorkspace *ws, Network *g, Network *d, const float *a, const float *b,
                        const LossWeights *lw, GanLosses *L) {
    const ModelConfig *cfg = &g->cfg;
    Activations *ga = &ws->g_acts;
    const float *targets[2][3];
    memset(L->cons_a, 0, sizeof L->cons_a);
    memset(L->cons_b, 0, sizeof L->cons_b);
    memset(L->gan, 0, sizeof L->gan);
    L->contours = 0.0;
    gan_downsample_targets(ws, a, b, targets);
    network_zero_grads(g);
    activations_reuse_weights(ga, 1); /* G's weights stay put until the step is over */

    /* pseudo-cycle A: a -> G -> H_t, and realism */
    generator_forward(g, ga, a, 1);
    activations_zero_grads(ga);
    for (int k = 0; k < cfg->num_scales; k++) {
        int s = cfg->scales[k] - 1;
        int hs = ga->y_h[s], wsz = ga->y_w[s];
        size_t n1 = (size_t)ws->batch * hs * wsz;
        float *y = ga->y[s], *dy = ga->d_y[s];
        if (lw->luminance_lock) {
            luminance_lock_forward(ws->locked, y, targets[0][s], cfg->ht, ws->batch, hs * wsz);
            memset(ws->d_locked, 0, 3 * n1 * sizeof(float));
            y = ws->locked, dy = ws->d_locked;
        }
        memcpy(ws->fake[s], y, 3 * n1 * sizeof(float));
        ht_forward(ws->ht_y, y, cfg->ht, ws->batch, hs * wsz);
        L->cons_a[s] = lw->lambda_a * l1_loss_forward(ws->ht_y, targets[0][s], n1);
        memset(ws->d_ht_y, 0, n1 * sizeof(float));
        l1_loss_backward(ws->d_ht_y, ws->ht_y, targets[0][s], n1, lw->lambda_a);
        if (s == 0 && lw->lambda_c > 0.0f) {
            size_t ns = (size_t)ws->batch * 2 * (hs - 2) * (wsz - 2);
            sobel_forward(ws->sobel_y, ws->ht_y, ws->batch, hs, wsz);
            sobel_forward(ws->sobel_a, a, ws->batch, hs, wsz);
            L->contours = lw->lambda_c * l1_loss_forward(ws->sobel_y, ws->sobel_a, ns);
            memset(ws->d_sobel, 0, ns * sizeof(float));
            l1_loss_backward(ws->d_sobel, ws->sobel_y, ws->sobel_a, ns, lw->lambda_c);
            sobel_backward(ws->d_ht_y, ws->d_sobel, ws->batch, hs, wsz);
        }
        ht_backward(dy, ws->d_ht_y, cfg->ht, ws->batch, hs * wsz);
        L->gan[s] = gan_realism_for_generator(d, &ws->d_acts[s], y, dy);
        if (lw->luminance_lock) luminance_lock_backward(ga->d_y[s], dy, cfg->ht, ws->batch, hs * wsz);
    }
    generator_backward(g, ga);

    /* pseudo-cycle B: b -> H_t -> G */
    ht_forward(ws->gray_b, b, cfg->ht, ws->batch, ws->h * ws->w);
    generator_forward(g, ga, ws->gray_b, 1);
    activations_zero_grads(ga);
    for (int k = 0; k < cfg->num_scales; k++) {
        int s = cfg->scales[k] - 1;
        int hw = ga->y_h[s] * ga->y_w[s];
        size_t n3 = (size_t)ws->batch * 3 * hw;
        float *z = ga->y[s], *dz = ga->d_y[s];
        if (lw->luminance_lock) {
            ht_forward(ws->ht_y, targets[1][s], cfg->ht, ws->batch, hw);
            luminance_lock_forward(ws->locked, z, ws->ht_y, cfg->ht, ws->batch, hw);
            memset(ws->d_locked, 0, n3 * sizeof(float));
            z = ws->locked, dz = ws->d_locked;
        }
        L->cons_b[s] = lw->lambda_b * l1_loss_forward(z, targets[1][s], n3);
        l1_loss_backward(dz, z, targets[1][s], n3, lw->lambda_b);
        if (lw->luminance_lock) luminance_lock_backward(ga->d_y[s], dz, cfg->ht, ws->batch, hw);
    }
    generator_backward(g, ga);
    activations_reuse_weights(ga, 0);

    L->total_g = L->contours;
    for (int s = 0; s < 3; s++) L->total_g += L->cons_a[s] + L->cons_b[s] + L->gan[s];
}

double gan_realism_for_discriminator(Network *d, Activations *da, const float *x, float target) {
    discriminator_forward(d, da, x, 1);
    size_t count = (size_t)da->batch * da->y_h[0] * da->y_w[0];
    double loss = 0.5 * mse_const_forward(da->y[0], target, count);
    activations_zero_grads(da);
    mse_const_backward(da->d_y[0], da->y[0], target, count, 0.5f);
    discriminator_backward(d, da, 1);
    return loss;
}

void gan_discriminator_step(GanWorkspace *ws, Network *d, const float *b,
                            const float *const fakes[3], GanLosses *L) {
    const ModelConfig *cfg = &d->cfg;
    network_zero_grads(d);
    L->total_d = 0.0;
    for (int k = 0; k < cfg->num_scales; k++) {
        int s = cfg->scales[k] - 1;
        const float *real = s == 0 ? b : ws->down_b[s];
        if (s > 0) avgpool_forward(ws->down_b[s], b, 3 * ws->batch, ws->h, ws->w, 1 << s);
        activations_reuse_weights(&ws->d_acts[s], 1); /* for the real and the fake pass */
        L->total_d += gan_realism_for_discriminator(d, &ws->d_acts[s], real, 1.0f);
        L->total_d += gan_realism_for_discriminator(d, &ws->d_acts[s], fakes[s], 0.0f);
        activations_reuse_weights(&ws->d_acts[s], 0);
    }
}
