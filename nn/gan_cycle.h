/* gan_cycle.h: the learned-F variant of the objective (issue 6): CycleGAN
 * built from SpyncoGAN's pieces, to measure what the handcrafted H_t buys.
 *
 * F (color -> gray) is G's architecture with 3 input and 1 output channels
 * (network_init_generator_channels); it takes H_t's place everywhere H_t
 * translated color to gray, and F(x) means F's full-resolution output (F's
 * own pyramid outputs are computed but unused). D_B is the spec's color
 * PatchGAN D; D_A is the same PatchGAN with 1 input channel. For each
 * configured scale s, with y_s = G(a)_s and z_s = G(F(b))_s:
 *
 *   cycle A:  lambda_a * |F(y_s) - down_s(a)|_1   (F runs on each y_s)
 *   cycle B:  lambda_b * |z_s - down_s(b)|_1
 *   realism:  (D_B(y_s) - 1)^2 for G, and (D_A(F(b)) - 1)^2 for F (full resolution)
 *
 * gradients reaching G and F through each other (cycle A through F into G,
 * cycle B through G into F). No contours term and no luminance lock (both
 * are defined through H_t: lw's lambda_c and luminance_lock are not read)
 * and no identity loss (F and G map between different channel counts).
 * D_B's step is gan_discriminator_step, unchanged; D_A minimises
 * 0.5*((D_A(a) - 1)^2 + D_A(F(b)_pool)^2) on real gray a and F's fakes from
 * their own history pool.
 *
 * F reads G's outputs at H/2^(s-1), which must be multiples of 4: with scale
 * s in use, the crop must be a multiple of 4 * 2^(s-1) (16 for {1,2,3}).
 * Order of the networks' runs (so BatchNorm running statistics follow it):
 * G(a); for each s: F(y_s), D_B(y_s); F(b), G(F(b)), D_A(F(b)).
 */
#ifndef SPYNCO_GAN_CYCLE_H
#define SPYNCO_GAN_CYCLE_H

#include "nn/gan.h"

/* F (3 -> 1, G's layers) and D_A (1 input channel) for a model config; 0 or -1 (message in err). */
int learned_f_networks_init(Network *f, Network *da, const ModelConfig *cfg, char *err,
                            size_t err_size);

typedef struct {
    int batch, h, w;
    Activations f_acts[3]; /* F on y_s (H, H/2, H/4; configured scales), [0] also on b */
    Activations da_acts;   /* D_A at H */
    float *fake_a;         /* F(b) from the last generator step [batch,1,h,w] */
    Arena arena;
} CycleWorkspace;

/* The crop side F needs: a multiple of this (4 * 2^(largest scale - 1)). */
int cycle_crop_multiple(const ModelConfig *cfg);
int cycle_workspace_init(CycleWorkspace *cw, const Network *f, const Network *da, int batch, int h,
                         int w, char *err, size_t err_size);
void cycle_workspace_free(CycleWorkspace *cw);
/* Data-parallel training: F's and D_A's BatchNorms use the whole batch's
 * statistics through sync, as gan_workspace_sync_batchnorm does for G and D. */
void cycle_workspace_sync_batchnorm(CycleWorkspace *cw, const BnSync *sync);

/* G's and F's gradients (both zeroed, then filled) for a: gray [batch,1,h,w]
 * and b: color [batch,3,h,w]. ws holds G's and D_B's activations, the pooled
 * targets and y_s in ws->fake (for D_B's pool); cw->fake_a gets F(b). D_B's
 * and D_A's parameter grads are untouched. Sets losses->learned_f. */
void gan_cycle_generator_step(GanWorkspace *ws, CycleWorkspace *cw, Network *g, Network *f,
                              Network *d_b, Network *d_a, const float *a, const float *b,
                              const LossWeights *lw, GanLosses *losses);
/* D_A's loss on real gray a and fake_a (F's fakes, after the history pool);
 * D_A's grads are zeroed, then filled; losses->total_da. */
void gan_cycle_discriminator_a_step(CycleWorkspace *cw, Network *d_a, const float *a,
                                    const float *fake_a, GanLosses *losses);

#endif
