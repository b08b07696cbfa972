#include "testmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/checkpoint.h"
#include "io/h5io.h"
#include "testutil.h"

/* The gray cogeo image (H_t, rounded), as the parity file holds it. */
static int load_cogeo_gray(uint8_t *gray8) {
    char err[512];
    int shape[2] = {COGEO_H, COGEO_W};
    H5Reader *r = h5r_open(SPYNCO_TEST_DATA "/parity_small.h5", err, sizeof err);
    int rc = r ? h5r_read(r, "/parity/gray8", H5IO_UINT8, 2, shape, gray8) : -1;
    CHECK(rc == 0, "read /parity/gray8: %s", err);
    if (r) h5r_close(r);
    return rc;
}

/* An untrained model gives a nearly constant colour, which no pixel check can
 * tell from another. So: BN gamma in [1,3] and random beta; running
 * statistics randomised around those of the cogeo image's own activations
 * (fully random ones saturated the output to one flat colour); then the head
 * scaled (about 10x) and shifted so that its pre-tanh output spreads over
 * about [-1.5, 1.5]: every channel varies by ~85 DN on the fixtures. */
static int make_vivid(Network *g, unsigned long long seed) {
    TestRng rng = {seed};
    for (int i = 0; i < g->num_units; i++) {
        ConvUnit *u = &g->units[i];
        for (int c = 0; u->has_bn && c < u->out_ch; c++) {
            u->bn_weight[c] = test_uniform(&rng, 1.0f, 3.0f);
            u->bn_bias[c] = test_uniform(&rng, -0.5f, 0.5f);
        }
    }
    char err[512];
    float *x = malloc(sizeof(float) * COGEO_H * COGEO_W);
    uint8_t *gray8 = malloc((size_t)COGEO_H * COGEO_W);
    Activations acts;
    int rc = load_cogeo_gray(gray8);
    if (rc == 0) {
        rc = activations_init(&acts, g, 1, COGEO_H, COGEO_W, 0, err, sizeof err);
        CHECK(rc == 0, "activations_init: %s", err);
    }
    if (rc == 0) {
        for (int i = 0; i < COGEO_H * COGEO_W; i++) x[i] = gray8[i] / 127.5f - 1.0f;
        /* training mode: every BN unit's batch mean and 1/std, layer by layer */
        generator_forward(g, &acts, x, 1);
        for (int i = 0; i < g->num_units; i++) {
            ConvUnit *u = &g->units[i];
            const UnitActs *a = &acts.apps[i];
            for (int c = 0; u->has_bn && c < u->out_ch; c++) {
                float sd = 1.0f / a->rstd[c];
                u->running_mean[c] = a->mean[c] + 0.2f * sd * test_normal(&rng);
                u->running_var[c] = sd * sd * test_uniform(&rng, 0.7f, 1.3f);
            }
        }
        generator_forward(g, &acts, x, 0);
        ConvUnit *head = &g->units[g->num_units - 1];
        const UnitActs *a = &acts.apps[g->num_units - 1]; /* the full-resolution head */
        size_t hw = (size_t)COGEO_H * COGEO_W,
               per_out = (size_t)head->in_ch * head->kernel * head->kernel;
        for (int c = 0; c < head->out_ch; c++) {
            double s = 0, s2 = 0;
            for (size_t k = 0; k < hw; k++) {
                double v = a->conv_out[c * hw + k];
                s += v, s2 += v * v;
            }
            double m = s / hw, sd = sqrt(fmax(s2 / hw - m * m, 1e-12)), k = 1.5 / sd;
            for (size_t j = 0; j < per_out; j++) head->weight[c * per_out + j] *= (float)k;
            head->bias[c] = (float)((head->bias[c] - m) * k);
        }
        activations_free(&acts);
    }
    free(x), free(gray8);
    return rc;
}

int test_save_model(const char *path, const ModelConfig *cfg, int vivid, int with_d,
                      unsigned long long seed) {
    char err[512];
    Network g, d;
    int rc = network_init_generator(&g, cfg, err, sizeof err);
    CHECK(rc == 0, "network_init_generator: %s", err);
    if (rc) return -1;
    network_init_weights(&g, seed);
    if (vivid) rc = make_vivid(&g, seed + 1);
    int have_d = 0;
    if (with_d && rc == 0) {
        rc = network_init_discriminator(&d, cfg, err, sizeof err);
        CHECK(rc == 0, "network_init_discriminator: %s", err);
        if (rc == 0) network_init_weights(&d, seed + 2), have_d = 1;
    }
    if (rc == 0) {
        rc = checkpoint_save_model(path, &g, have_d ? &d : NULL, NULL, err, sizeof err);
        CHECK(rc == 0, "checkpoint_save_model %s: %s", path, err);
    }
    if (have_d) network_free(&d);
    network_free(&g);
    return rc;
}

ModelConfig test_small_config(const char *name) {
    ModelConfig cfg = model_config_default();
    snprintf(cfg.name, sizeof cfg.name, "%s", name);
    cfg.F = 8, cfg.K = 16, cfg.R = 2, cfg.nd = 8;
    return cfg;
}
