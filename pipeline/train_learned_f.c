#include "pipeline/train_learned_f.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "pipeline/dist.h"
#include "pipeline/train.h"

/* F and D_A draw their initial weights from streams apart from G's and D's
 * (seed*2+1, seed*2+2), so G and D start as in a default run. */
#define LEARNED_F_SEED_OFFSET (1ull << 32)

void learned_f_destroy(LearnedF *lf) {
    if (!lf) return;
    cycle_workspace_free(&lf->cw);
    network_free(&lf->f);
    network_free(&lf->da);
    free(lf->f_m), free(lf->f_v), free(lf->da_m), free(lf->da_v);
    free(lf->pool), free(lf->fakes), free(lf->pooled);
    free(lf);
}

/* Networks (fresh PyTorch-style BN, weights still zero), zero moments, empty pool, workspace. */
static LearnedF *learned_f_alloc(const ModelConfig *cfg, int crop, int batch, char *err, size_t n) {
    LearnedF *lf = calloc(1, sizeof *lf);
    if (!lf) {
        snprintf(err, n, "out of memory for the learned-F state");
        return NULL;
    }
    lf->crop = crop, lf->batch = batch;
    lf->local = batch / dist_size(), lf->first = dist_rank() * lf->local;
    if (learned_f_networks_init(&lf->f, &lf->da, cfg, err, n)) {
        free(lf);
        return NULL;
    }
    size_t img = (size_t)crop * crop;
    lf->f_m = calloc(lf->f.params.capacity, sizeof(float));
    lf->f_v = calloc(lf->f.params.capacity, sizeof(float));
    lf->da_m = calloc(lf->da.params.capacity, sizeof(float));
    lf->da_v = calloc(lf->da.params.capacity, sizeof(float));
    lf->pool = malloc(HISTORY_POOL_SIZE * img * sizeof(float));
    lf->fakes = malloc((size_t)batch * img * sizeof(float));
    lf->pooled = malloc((size_t)batch * img * sizeof(float));
    if (!lf->f_m || !lf->f_v || !lf->da_m || !lf->da_v || !lf->pool || !lf->fakes || !lf->pooled) {
        snprintf(err, n, "out of memory for the learned-F state");
        learned_f_destroy(lf);
        return NULL;
    }
    if (cycle_workspace_init(&lf->cw, &lf->f, &lf->da, lf->local, crop, crop, err, n)) {
        learned_f_destroy(lf);
        return NULL;
    }
    return lf;
}

LearnedF *learned_f_create(const ModelConfig *cfg, unsigned long long seed, int crop, int batch,
                           char *err, size_t n) {
    LearnedF *lf = learned_f_alloc(cfg, crop, batch, err, n);
    if (!lf) return NULL;
    network_init_weights(&lf->f, seed * 2 + 1 + LEARNED_F_SEED_OFFSET);
    network_init_weights(&lf->da, seed * 2 + 2 + LEARNED_F_SEED_OFFSET);
    return lf;
}

int learned_f_write(H5Writer *w, const LearnedF *lf) {
    if (checkpoint_write_network(w, "F", &lf->f) || checkpoint_write_network(w, "DA", &lf->da) ||
        checkpoint_write_moments(w, &lf->f, "F", lf->f_m, lf->f_v) ||
        checkpoint_write_moments(w, &lf->da, "DA", lf->da_m, lf->da_v))
        return -1;
    int shape[4] = {lf->pool_count, 1, lf->crop, lf->crop};
    if (lf->pool_count > 0 && h5w_dataset(w, "/train/pool_f", H5IO_FLOAT32, 4, shape, lf->pool))
        return -1;
    return h5w_attr_int(w, "/train", "pool_f_count", lf->pool_count);
}

LearnedF *learned_f_read(H5Reader *r, const ModelConfig *cfg, int crop, int batch) {
    char msg[256];
    if (!h5r_exists(r, "/F") || !h5r_exists(r, "/DA")) {
        h5r_fail(r, "its training options say --learned-f, but it holds no /F or /DA group");
        return NULL;
    }
    LearnedF *lf = learned_f_alloc(cfg, crop, batch, msg, sizeof msg);
    if (!lf) {
        h5r_fail(r, "%s", msg);
        return NULL;
    }
    long long count = 0;
    if (checkpoint_read_network(r, "F", &lf->f) || checkpoint_read_network(r, "DA", &lf->da) ||
        checkpoint_read_moments(r, &lf->f, "F", lf->f_m, lf->f_v) ||
        checkpoint_read_moments(r, &lf->da, "DA", lf->da_m, lf->da_v) ||
        h5r_attr_int(r, "/train", "pool_f_count", &count))
        goto fail;
    if (count < 0 || count > HISTORY_POOL_SIZE) {
        h5r_fail(r, "/train pool_f_count is %lld, must be 0..%d", count, HISTORY_POOL_SIZE);
        goto fail;
    }
    lf->pool_count = (int)count;
    int shape[4] = {lf->pool_count, 1, crop, crop};
    if (count > 0 && h5r_read(r, "/train/pool_f", H5IO_FLOAT32, 4, shape, lf->pool)) goto fail;
    return lf;
fail:
    learned_f_destroy(lf);
    return NULL;
}

void learned_f_generator_step(LearnedF *lf, GanWorkspace *ws, Network *g, Network *d_b,
                              const float *a, const float *b, const LossWeights *lw, GanLosses *L) {
    gan_cycle_generator_step(ws, &lf->cw, g, &lf->f, d_b, &lf->da, a, b, lw, L);
}

/* CycleGAN's ImagePool, the rule train.c applies to G's fakes: while not
 * full, store and return the new image; then, with probability 1/2, return
 * a random stored image and keep the new one in its place. The whole
 * batch's fakes pass in order, the same on every rank. */
static void pool_query(LearnedF *lf, Rng *rng) {
    size_t sz = (size_t)lf->crop * lf->crop, bytes = sz * sizeof(float);
    for (int i = 0; i < lf->batch; i++) {
        const float *img = lf->fakes + i * sz;
        float *out = lf->pooled + i * sz;
        if (lf->pool_count < HISTORY_POOL_SIZE) {
            memcpy(lf->pool + lf->pool_count++ * sz, img, bytes);
            memcpy(out, img, bytes);
        } else if (rng_uniform(rng) > 0.5) {
            float *slot = lf->pool + rng_below(rng, HISTORY_POOL_SIZE) * sz;
            memcpy(out, slot, bytes);
            memcpy(slot, img, bytes);
        } else {
            memcpy(out, img, bytes);
        }
    }
}

/* Each rank's gradients are the means over its slice; equal slices make
 * their average the gradient of the mean over the whole batch. */
static void average_gradients(Network *net) {
    int ranks = dist_size();
    if (ranks == 1) return;
    float *grad = net->grads.base;
    dist_sum_floats(grad, net->grads.capacity);
    for (size_t i = 0; i < net->grads.capacity; i++) grad[i] /= (float)ranks;
}

void learned_f_finish_step(LearnedF *lf, const float *a, Rng *rng, const AdamConfig *adam,
                           long step, GanLosses *L) {
    average_gradients(&lf->f);
    adam_update(lf->f.params.base, lf->f_m, lf->f_v, lf->f.grads.base, lf->f.params.capacity, adam,
                step);
    size_t img = (size_t)lf->crop * lf->crop;
    dist_allgather_floats(lf->fakes, lf->cw.fake_a, (size_t)lf->local * img);
    pool_query(lf, rng);
    gan_cycle_discriminator_a_step(&lf->cw, &lf->da, a, lf->pooled + (size_t)lf->first * img, L);
    average_gradients(&lf->da);
    adam_update(lf->da.params.base, lf->da_m, lf->da_v, lf->da.grads.base, lf->da.params.capacity,
                adam, step);
    int ranks = dist_size();
    if (ranks > 1) { /* train.c averages the other terms (total_g holds gan_f) */
        double v[2] = {L->gan_f, L->total_da};
        dist_sum_doubles(v, 2);
        L->gan_f = v[0] / ranks, L->total_da = v[1] / ranks;
    }
}

int learned_f_replicas_identical(const LearnedF *lf) {
    const Network *nets[2] = {&lf->f, &lf->da};
    int same = 1;
    for (int i = 0; i < 2; i++) {
        same &= dist_same_everywhere(nets[i]->params.base, nets[i]->params.capacity * sizeof(float));
        same &= dist_same_everywhere(nets[i]->buffers.base, nets[i]->buffers.capacity * sizeof(float));
    }
    size_t img = (size_t)lf->crop * lf->crop;
    return same & dist_same_everywhere(lf->pool, lf->pool_count * img * sizeof(float));
}
