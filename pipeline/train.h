/* train.h: train a SpyncoGAN from two unpaired image sets, resumably.
 *
 * One step (CycleGAN's order): draw a gray batch a and a color batch b;
 * gan_generator_step (G's gradients, D frozen); Adam on G; the generator's
 * outputs y_s go through the 50-image history pool; gan_discriminator_step
 * on real b and pooled fakes; Adam on D. The learning rate is constant for
 * the first half of the steps, then falls linearly towards 0. With
 * learned_f (--learned-f), F and D_A are learned in place of H_t
 * (train_learned_f.h, nn/gan_cycle.h).
 *
 * Everything that decides the next step lives in the checkpoint: weights and
 * BatchNorm statistics, both Adam states, the step, the random generator
 * (data sampling and the pool draw from it) and the pool's images. So a run
 * stopped after N steps and resumed to N+M gives bit-identical weights to
 * one run of N+M steps (same thread count).
 *
 * Under mpirun (pipeline/dist.h, docs/distributed.md) the same call trains
 * data-parallel: opt->batch is the whole step's batch, split evenly over
 * the ranks; BatchNorm statistics, gradients and losses are summed over
 * them and the history pool sees every rank's fakes, so the run equals one
 * process's up to float rounding. Rank 0 alone writes OUT_DIR; errors and
 * stops are agreed, so every rank returns the same.
 *
 * In OUT_DIR: last.h5 (the newest checkpoint, written atomically every
 * checkpoint_every steps and at the end), epoch_NNNN.h5 if asked,
 * losses.csv, losses.svg, and samples_epoch_NNNN.png (gray | colorized |
 * real color) after every epoch.
 */
#ifndef SPYNCO_TRAIN_H
#define SPYNCO_TRAIN_H

#include <signal.h>

#include "nn/gan.h"

#define TRAIN_MAX_SOURCES 64
#define HISTORY_POOL_SIZE 50

typedef struct {
    ModelConfig model;            /* F, K, R, nd, H_t weights, scales */
    const char *gray[TRAIN_MAX_SOURCES], *color[TRAIN_MAX_SOURCES];
    int num_gray, num_color;
    int gray_from_color;          /* gray images may be color ones made gray through H_t */
    int color_bands[3];           /* 1-based R, G, B bands of color sources; 0: automatic */
    int crop, batch;
    long steps;                   /* total steps of the run (0: from epochs) */
    int epochs;
    LossWeights lambdas;
    float lr, beta1, beta2;
    unsigned long long seed;
    int threads;
    int checkpoint_every;         /* steps between checkpoints */
    int keep_epochs;              /* also keep epoch_NNNN.h5 */
    int learned_f;                /* learn F (color -> gray) instead of H_t: train_learned_f.h */
    int quiet;
    const char *init_from;        /* start from this checkpoint's weights (fine-tuning); NULL: fresh */
    long stop_after;              /* stop (with a checkpoint) after this many steps of this session */
    const volatile sig_atomic_t *stop; /* set by a signal: checkpoint and stop */
} TrainOptions;

TrainOptions train_options_default(void);

/* Trains into out_dir; with resume, continues out_dir/last.h5 up to the
 * total number of steps (the stored one, or opt's steps/epochs if given).
 * Returns 0 when the run is complete, 1 when it stopped early with a
 * checkpoint (stop flag or stop_after), -1 on error (message in err). */
int train_run(const TrainOptions *opt, const char *out_dir, int resume, char *err, size_t err_size);

/* Writes the release model (G only, no training state) of a checkpoint. */
int export_model(const char *checkpoint, const char *model_path, char *err, size_t err_size);

#endif
