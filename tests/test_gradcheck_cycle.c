/* Finite-difference checks of the learned-F objective (nn/gan_cycle.h):
 * d(G+F loss)/d(G's parameters) and d(G+F loss)/d(F's parameters), through
 * both cycles -- cycle A reaches G through F's input gradient, cycle B
 * reaches F through G's -- the pyramid and both discriminators' input
 * gradients; and d(D_A loss)/d(D_A's parameters).
 *
 * Directions and zero-gradient rule as in test_gradcheck_gan.c
 * (gradcheck_network), perturbation 1e-4. The two networks in series cross
 * more ReLU and |.| kinks than G alone, and the error does not fall
 * steadily with the perturbation (G's enc1 weight along its gradient: 6.8%
 * at 1e-3, 0.3% at 3e-4, 4.3% at 1e-4, 1.4% at 1e-5), so the tolerance is
 * 6% of the tensor's gradient norm. Leaving out any one of the
 * cross-gradients (F -> G, G -> F, D_A -> F) gives errors of 17% to 110%
 * on many tensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn/gan_cycle.h"
#include "testutil.h"

#define EPS 1e-4f
#define RTOL 6e-2

static char err[256];

typedef struct {
    GanWorkspace ws;
    CycleWorkspace cw;
    Network g, d_b, f, d_a;
    float *a, *b;
    LossWeights lw;
    int discriminator_a;
} Ctx;

static double objective(void *p) {
    Ctx *c = p;
    GanLosses L;
    if (c->discriminator_a) {
        gan_cycle_discriminator_a_step(&c->cw, &c->d_a, c->a, c->cw.fake_a, &L);
        return L.total_da;
    }
    gan_cycle_generator_step(&c->ws, &c->cw, &c->g, &c->f, &c->d_b, &c->d_a, c->a, c->b, &c->lw, &L);
    return L.total_g;
}

int main(void) {
    Ctx c;
    memset(&c, 0, sizeof c);
    ModelConfig cfg = gradcheck_tiny_config();
    int B = 2, H = 96, W = 96;
    if (network_init_generator(&c.g, &cfg, err, sizeof err) ||
        network_init_discriminator(&c.d_b, &cfg, err, sizeof err) ||
        learned_f_networks_init(&c.f, &c.d_a, &cfg, err, sizeof err) ||
        gan_workspace_init(&c.ws, &c.g, &c.d_b, B, H, W, err, sizeof err) ||
        cycle_workspace_init(&c.cw, &c.f, &c.d_a, B, H, W, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    CHECK(c.f.in_ch == 3 && c.f.out_ch == 1 && c.d_a.in_ch == 1, "F is %d -> %d, D_A reads %d",
          c.f.in_ch, c.f.out_ch, c.d_a.in_ch);
    network_init_weights(&c.g, 1);
    network_init_weights(&c.d_b, 2);
    network_init_weights(&c.f, 3);
    network_init_weights(&c.d_a, 4);
    gradcheck_gan_batch(B, H, W, &c.a, &c.b);
    c.lw = (LossWeights){10.0f, 10.0f, 0.0f, 0};

    gradcheck_network(objective, &c, &c.g, "G+F loss wrt G", EPS, RTOL);
    gradcheck_network(objective, &c, &c.f, "G+F loss wrt F", EPS, RTOL);
    /* D_A's loss on real a and the F(b) of the step above */
    objective(&c);
    c.discriminator_a = 1;
    gradcheck_network(objective, &c, &c.d_a, "D_A loss wrt D_A", EPS, RTOL);

    cycle_workspace_free(&c.cw);
    gan_workspace_free(&c.ws);
    network_free(&c.g);
    network_free(&c.d_b);
    network_free(&c.f);
    network_free(&c.d_a);
    free(c.a), free(c.b);
    return test_summary("test_gradcheck_cycle");
}
