/* gan.h: the SpyncoGAN objective (model-spec "Losses"), forward and backward.
 *
 * One training step is two calls:
 *   gan_generator_step: y = G(a), z = G(H_t(b)); for each configured scale s
 *     lambda_a*|H_t(y_s) - down_s(a)|_1 + lambda_b*|z_s - down_s(b)|_1
 *     + (D(y_s) - 1)^2, plus lambda_c*|Sobel(H_t(y_1)) - Sobel(a)|_1 when
 *     lambda_c > 0. G's grads are zeroed, then filled; D only passes its
 *     input gradient back (its parameter grads are untouched). The y_s are
 *     kept in ws->fake for the discriminator (after the history pool).
 *   gan_discriminator_step: for each scale, 0.5*((D(down_s(b)) - 1)^2 +
 *     D(fake_s)^2), D called on the real image first; D's grads are zeroed,
 *     then filled.
 * With luminance_lock (an option beyond the spec, off by default) every
 * output y_s and z_s first goes through luminance_lock (ops.h) towards the
 * luminance of its own input (down_s(a), H_t(down_s(b))): the losses and D
 * then see exactly what `colorize --keep-luminance` emits, pseudo-cycle A
 * and the contours term vanish, and G learns the chroma only.
 * Both networks run in training mode (batch statistics), so BatchNorm
 * running statistics are updated in PyTorch's order: G(a), G(H_t(b)),
 * D(y_s) for each s, then D(real_s), D(fake_s) for each s.
 */
#ifndef SPYNCO_GAN_H
#define SPYNCO_GAN_H

#include "nn/networks.h"

typedef struct {
    float lambda_a, lambda_b, lambda_c;
    int luminance_lock; /* train the outputs as colorize --keep-luminance emits them */
} LossWeights;

/* Defaults from the spec: 10, 10, contours off. */
LossWeights loss_weights_default(void);
/* The contours weight used when contours are switched on without a value. */
#define CONTOURS_LAMBDA_DEFAULT 1.0f

typedef struct {
    double cons_a[3], cons_b[3], gan[3]; /* weighted terms per scale index (s-1) */
    double contours;
    double total_g, total_d;
    /* learned-F variant (gan_cycle.h) only, where learned_f is set: F's realism
     * through D_A (part of total_g) and D_A's loss */
    int learned_f;
    double gan_f, total_da;
} GanLosses;

typedef struct {
    int batch, h, w;
    Activations g_acts;
    Activations d_acts[3];       /* D at H, H/2, H/4 */
    float *gray_b;               /* H_t(b) [batch,1,h,w] */
    float *down_a[3], *down_b[3]; /* pooled targets per scale (scale 1 points at the input) */
    float *ht_y, *d_ht_y;        /* H_t(y_s) and its gradient, sized for scale 1 */
    float *locked, *d_locked;    /* luminance-locked outputs and their gradient, scale 1 size */
    float *sobel_y, *sobel_a, *d_sobel;
    float *fake[3];              /* the generator's y_s from the last generator step */
    Arena arena;
} GanWorkspace;

int gan_workspace_init(GanWorkspace *ws, const Network *g, const Network *d, int batch, int h,
                       int w, char *err, size_t err_size);
void gan_workspace_free(GanWorkspace *ws);
/* Data-parallel training: the workspace's batch is this replica's slice of
 * a larger one, and every BatchNorm of G and D uses the statistics of the
 * whole batch, summed over the replicas through sync (nn/ops.h). Losses and
 * gradients stay this slice's means; the caller averages them. */
void gan_workspace_sync_batchnorm(GanWorkspace *ws, const BnSync *sync);

/* a: gray [batch,1,h,w], b: color [batch,3,h,w], both in [-1,1]. */
void gan_generator_step(GanWorkspace *ws, Network *g, Network *d, const float *a, const float *b,
                        const LossWeights *lw, GanLosses *losses);
/* fakes[s-1]: the images D judges as fake at scale s (ws->fake or the history pool's). */
void gan_discriminator_step(GanWorkspace *ws, Network *d, const float *b,
                            const float *const fakes[3], GanLosses *losses);

/* Pieces shared with the learned-F objective (gan_cycle.h). */
/* targets[0][s] = down_s(a), targets[1][s] = down_s(b) (ws->down_a/b; scale 1 is a, b). */
void gan_downsample_targets(GanWorkspace *ws, const float *a, const float *b,
                            const float *targets[2][3]);
/* (D(x) - 1)^2 for a generator: D runs forward in training mode and only its
 * input gradient is ADDED to dx (D's parameter grads are untouched). */
double gan_realism_for_generator(Network *d, Activations *da, const float *x, float *dx);
/* 0.5 * (D(x) - target)^2 with D's parameter gradients accumulated. */
double gan_realism_for_discriminator(Network *d, Activations *da, const float *x, float target);

#endif
