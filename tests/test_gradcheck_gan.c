/* Finite-difference checks of the whole objective: d(G loss)/d(G's
 * parameters), through both pseudo-cycles, the pyramid, D's input gradient
 * and the contours term; and d(D loss)/d(D's parameters).
 *
 * Each tensor is checked along two directions (gradcheck_network),
 * perturbation 1e-4 (the error grows linearly with the perturbation --
 * kinks, not rounding, dominate: 10% at 1e-3 for enc0's weight, 0.5% at
 * 1e-4). Tolerance: 2% of the tensor's gradient norm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/gan.h"
#include "testutil.h"

#define EPS 1e-4f
#define RTOL 2e-2

static char err[256];

typedef struct {
    GanWorkspace ws;
    Network g, d;
    float *a, *b;
    LossWeights lw;
    int discriminator;
} Ctx;

static double objective(void *p) {
    Ctx *c = p;
    GanLosses L;
    if (c->discriminator) {
        const float *fakes[3] = {c->ws.fake[0], c->ws.fake[1], c->ws.fake[2]};
        gan_discriminator_step(&c->ws, &c->d, c->b, fakes, &L);
        return L.total_d;
    }
    gan_generator_step(&c->ws, &c->g, &c->d, c->a, c->b, &c->lw, &L);
    return L.total_g;
}

int main(void) {
    Ctx c;
    memset(&c, 0, sizeof c);
    ModelConfig cfg = gradcheck_tiny_config();
    if (network_init_generator(&c.g, &cfg, err, sizeof err) ||
        network_init_discriminator(&c.d, &cfg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    network_init_weights(&c.g, 1);
    network_init_weights(&c.d, 2);
    int B = 2, H = 96, W = 96;
    if (gan_workspace_init(&c.ws, &c.g, &c.d, B, H, W, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gradcheck_gan_batch(B, H, W, &c.a, &c.b);
    c.lw = (LossWeights){10.0f, 10.0f, 1.0f, 0};

    c.discriminator = 0;
    gradcheck_network(objective, &c, &c.g, "G loss wrt G", EPS, RTOL);
    c.lw.luminance_lock = 1; /* train --keep-luminance */
    gradcheck_network(objective, &c, &c.g, "G loss wrt G, luminance lock", EPS, RTOL);
    c.lw.luminance_lock = 0;
    /* D's loss on the fakes of the step above */
    objective(&c);
    c.discriminator = 1;
    gradcheck_network(objective, &c, &c.d, "D loss wrt D", EPS, RTOL);

    gan_workspace_free(&c.ws);
    network_free(&c.g);
    network_free(&c.d);
    free(c.a), free(c.b);
    return test_summary("test_gradcheck_gan");
}
