#include "nn/gan_cycle.h"

#include <stdio.h>
#include <string.h>

#include "nn/ops.h"

int learned_f_networks_init(Network *f, Network *da, const ModelConfig *cfg, char *err, size_t n) {
    if (network_init_generator_channels(f, cfg, 3, 1, err, n)) return -1;
    if (network_init_discriminator_channels(da, cfg, 1, err, n)) {
        network_free(f);
        return -1;
    }
    return 0;
}

int cycle_crop_multiple(const ModelConfig *cfg) {
    return 4 << (cfg->scales[cfg->num_scales - 1] - 1);
}

/* F runs on b at scale 1 whatever the configured scales. */
static int f_runs_at(const ModelConfig *cfg, int s) {
    if (s == 0) return 1;
    for (int k = 0; k < cfg->num_scales; k++)
        if (cfg->scales[k] - 1 == s) return 1;
    return 0;
}

int cycle_workspace_init(CycleWorkspace *cw, const Network *f, const Network *da, int batch, int h,
                         int w, char *err, size_t n) {
    memset(cw, 0, sizeof *cw);
    cw->batch = batch, cw->h = h, cw->w = w;
    int multiple = cycle_crop_multiple(&f->cfg);
    if (h % multiple || w % multiple) {
        snprintf(err, n, "learned F: %dx%d crops do not fit; F reads G's outputs down to 1/%d "
                         "size, so the sides must be multiples of %d", w, h, multiple / 4, multiple);
        return -1;
    }
    for (int s = 0; s < 3; s++)
        if (f_runs_at(&f->cfg, s) &&
            activations_init(&cw->f_acts[s], f, batch, h >> s, w >> s, 1, err, n))
            goto fail;
    if (activations_init(&cw->da_acts, da, batch, h, w, 1, err, n)) goto fail;
    cw->arena = arena_counter();
    arena_take(&cw->arena, (size_t)batch * h * w);
    if (arena_alloc(&cw->arena)) {
        snprintf(err, n, "out of memory for the learned-F workspace");
        goto fail;
    }
    cw->fake_a = arena_take(&cw->arena, (size_t)batch * h * w);
    return 0;
fail:
    cycle_workspace_free(cw);
    return -1;
}

void cycle_workspace_free(CycleWorkspace *cw) {
    for (int s = 0; s < 3; s++) activations_free(&cw->f_acts[s]);
    activations_free(&cw->da_acts);
    arena_free(&cw->arena);
}

void cycle_workspace_sync_batchnorm(CycleWorkspace *cw, const BnSync *sync) {
    for (int s = 0; s < 3; s++) cw->f_acts[s].bn_sync = sync;
    cw->da_acts.bn_sync = sync;
}

void gan_cycle_generator_step(GanWorkspace *ws, CycleWorkspace *cw, Network *g, Network *f,
                              Network *d_b, Network *d_a, const float *a, const float *b,
                              const LossWeights *lw, GanLosses *L) {
    const ModelConfig *cfg = &g->cfg;
    Activations *ga = &ws->g_acts, *fb = &cw->f_acts[0];
    const float *targets[2][3];
    memset(L->cons_a, 0, sizeof L->cons_a);
    memset(L->cons_b, 0, sizeof L->cons_b);
    memset(L->gan, 0, sizeof L->gan);
    L->contours = 0.0;
    L->learned_f = 1;
    gan_downsample_targets(ws, a, b, targets);
    network_zero_grads(g);
    network_zero_grads(f);

    /* cycle A: a -> G -> F, and G's realism through D_B */
    generator_forward(g, ga, a, 1);
    activations_zero_grads(ga);
    for (int k = 0; k < cfg->num_scales; k++) {
        int s = cfg->scales[k] - 1;
        Activations *fa = &cw->f_acts[s];
        size_t n1 = (size_t)ws->batch * ga->y_h[s] * ga->y_w[s];
        memcpy(ws->fake[s], ga->y[s], 3 * n1 * sizeof(float));
        generator_forward(f, fa, ga->y[s], 1);
        activations_zero_grads(fa);
        L->cons_a[s] = lw->lambda_a * l1_loss_forward(fa->y[0], targets[0][s], n1);
        l1_loss_backward(fa->d_y[0], fa->y[0], targets[0][s], n1, lw->lambda_a);
        generator_backward_input(f, fa, ga->d_y[s]); /* F's grads, and d/dy_s into G's */
        L->gan[s] = gan_realism_for_generator(d_b, &ws->d_acts[s], ga->y[s], ga->d_y[s]);
    }
    generator_backward(g, ga);

    /* cycle B: b -> F -> G, and F's realism through D_A */
    size_t n = (size_t)ws->batch * ws->h * ws->w;
    generator_forward(f, fb, b, 1);
    activations_zero_grads(fb);
    memcpy(cw->fake_a, fb->y[0], n * sizeof(float));
    generator_forward(g, ga, fb->y[0], 1);
    activations_zero_grads(ga);
    for (int k = 0; k < cfg->num_scales; k++) {
        int s = cfg->scales[k] - 1;
        size_t n3 = (size_t)ws->batch * 3 * ga->y_h[s] * ga->y_w[s];
        L->cons_b[s] = lw->lambda_b * l1_loss_forward(ga->y[s], targets[1][s], n3);
        l1_loss_backward(ga->d_y[s], ga->y[s], targets[1][s], n3, lw->lambda_b);
    }
    generator_backward_input(g, ga, fb->d_y[0]); /* G's grads, and d/dF(b) into F's */
    L->gan_f = gan_realism_for_generator(d_a, &cw->da_acts, fb->y[0], fb->d_y[0]);
    generator_backward(f, fb);

    L->total_g = L->gan_f;
    for (int s = 0; s < 3; s++) L->total_g += L->cons_a[s] + L->cons_b[s] + L->gan[s];
}

void gan_cycle_discriminator_a_step(CycleWorkspace *cw, Network *d_a, const float *a,
                                    const float *fake_a, GanLosses *L) {
    network_zero_grads(d_a);
    L->total_da = gan_realism_for_discriminator(d_a, &cw->da_acts, a, 1.0f);
    L->total_da += gan_realism_for_discriminator(d_a, &cw->da_acts, fake_a, 0.0f);
}
