/* train_learned_f.h: what `spynco train --learned-f` adds to a run (issue 6):
 * CycleGAN's learned F (color -> gray) and gray discriminator D_A in place of
 * the handcrafted H_t, with the objective of nn/gan_cycle.h.
 *
 * A LearnedF holds F, D_A, their Adam moments, the 50-image history pool of
 * F's fakes and the objective's extra workspace. All of it goes into the
 * training checkpoint, so a resumed run stays bit-identical:
 *   /F/<path>, /DA/<path>          the networks (paths as under /G and /D)
 *   /opt/F/..., /opt/DA/...        Adam moments, as /opt/G and /opt/D
 *   /train/pool_f                  [pool_f_count, 1, crop, crop], F's fakes
 *   /train attribute pool_f_count
 * The release model (`spynco export`) is G alone, as for the default run.
 *
 * One step, in train.c's loop: learned_f_generator_step (G's and F's grads)
 * in place of gan_generator_step; Adam on G; D_B's step as usual (pool,
 * gan_discriminator_step, Adam on D); then learned_f_finish_step.
 *
 * Under mpirun (pipeline/dist.h) each rank holds its slice of every batch,
 * as train.c's G and D do: F's and D_A's gradients are averaged over the
 * ranks before Adam, F's fakes gathered so that every rank runs the same
 * pool on the whole batch, and gan_f, total_da averaged. (BatchNorm:
 * cycle_workspace_sync_batchnorm on lf->cw.)
 */
#ifndef SPYNCO_TRAIN_LEARNED_F_H
#define SPYNCO_TRAIN_LEARNED_F_H

#include "io/h5io.h"
#include "nn/gan_cycle.h"
#include "nn/ops.h"
#include "nn/rng.h"

typedef struct {
    Network f, da;
    float *f_m, *f_v, *da_m, *da_v; /* Adam moments, laid out like the params blocks */
    int crop, batch;                /* batch: the whole step's, over every rank */
    int local, first;               /* this rank's slice of it */
    int pool_count;
    float *pool;   /* HISTORY_POOL_SIZE gray images [1, crop, crop] */
    float *fakes;  /* the whole batch's F(b) [batch, 1, crop, crop], before the pool */
    float *pooled; /* and after it: what D_A judges as fake */
    CycleWorkspace cw; /* sized for the slice */
} LearnedF;

/* A new F and D_A, initialised from seed, for crop x crop batches of batch
 * images (split over dist_size() ranks); NULL on failure (message in err:
 * e.g. a crop F cannot read at every scale). */
LearnedF *learned_f_create(const ModelConfig *cfg, unsigned long long seed, int crop, int batch,
                           char *err, size_t err_size);
/* Restores a LearnedF from a training checkpoint; NULL on failure (message in r). */
LearnedF *learned_f_read(H5Reader *r, const ModelConfig *cfg, int crop, int batch);
/* Adds F, D_A, their moments and F's pool to a checkpoint being written
 * (after /train exists); failures are recorded in w. */
int learned_f_write(H5Writer *w, const LearnedF *lf);
void learned_f_destroy(LearnedF *lf);

/* G's and F's gradients for this rank's slices a (gray) and b (color) (d_b:
 * the color discriminator). */
void learned_f_generator_step(LearnedF *lf, GanWorkspace *ws, Network *g, Network *d_b,
                              const float *a, const float *b, const LossWeights *lw, GanLosses *L);
/* After G's and D_B's updates: Adam on F, F's fakes through the history pool
 * (drawing from rng), D_A's step on the slice a, Adam on D_A. step: the
 * 1-based Adam step. Collective under mpirun. */
void learned_f_finish_step(LearnedF *lf, const float *a, Rng *rng, const AdamConfig *adam,
                           long step, GanLosses *L);
/* 1 if every rank holds the same F, D_A and pool (collective; see train.c). */
int learned_f_replicas_identical(const LearnedF *lf);

#endif
