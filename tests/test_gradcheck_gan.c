/* Finite-difference checks of the whole objective: d(G loss)/d(G's
 * parameters), through both pseudo-cycles, the pyramid, D's input gradient
 * and the contours term; and d(D loss)/d(D's parameters).
 *
 * Inside a network, single weights can move a ReLU or an |.| across its kink,
 * so each tensor is checked along directions instead (gradcheck_direction):
 * its own gradient's direction and a random one, perturbation 1e-4 (the
 * error grows linearly with the perturbation -- kinks, not rounding, dominate:
 * 10% at 1e-3 for enc0's weight, 0.5% at 1e-4).
 * Tolerance: 2% of the tensor's gradient norm. Some tensors have a zero
 * gradient in theory (a conv bias in front of a training-mode BatchNorm, or
 * a BN bias whose per-channel shift the next conv+BN removes); where the
 * analytic gradient is below 1e-6 of the network's, the numeric one must be
 * below 1e-3 of it. */
#include <math.h>
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

static double grad_norm(const Network *net) {
    double s = 0;
    for (int i = 0; i < net->num_tensors; i++)
        for (size_t k = 0; net->tensors[i].grad && k < net->tensors[i].count; k++)
            s += (double)net->tensors[i].grad[k] * net->tensors[i].grad[k];
    return sqrt(s);
}

static void check_network(Ctx *c, Network *net, const char *name) {
    objective(c);
    double total = grad_norm(net);
    double worst = 0;
    int tensors = 0, zero = 0;
    /* The analytic gradient must be kept: every evaluation recomputes grads. */
    float *saved = malloc(net->grads.capacity * sizeof(float));
    memcpy(saved, net->grads.base, net->grads.capacity * sizeof(float));
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (!t->grad) continue;
        const float *grad = saved + (t->grad - net->grads.base);
        double gn = 0;
        for (size_t k = 0; k < t->count; k++) gn += (double)grad[k] * grad[k];
        gn = sqrt(gn);
        double num, ana;
        float *dir = malloc(t->count * sizeof(float));
        gradcheck_random_direction(dir, t->count, 1000 + i);
        if (gn < 1e-6 * total) {
            gradcheck_direction(objective, c, t->data, grad, dir, t->count, EPS, &num, &ana);
            CHECK(fabs(num) < 1e-3 * total, "%s %s: analytic gradient ~0, numeric %.3g", name,
                  t->path, num);
            zero++;
            free(dir);
            continue;
        }
        /* direction 1: random, judged against the gradient's norm */
        gradcheck_direction(objective, c, t->data, grad, dir, t->count, EPS, &num, &ana);
        double e1 = fabs(num - ana) / gn;
        /* direction 2: the gradient itself, so the derivative equals |grad| */
        gradcheck_direction(objective, c, t->data, grad, grad, t->count, EPS, &num, &ana);
        double e2 = fabs(num - gn) / gn;
        free(dir);
        double e = fmax(e1, e2);
        worst = fmax(worst, e);
        tensors++;
        CHECK(e <= RTOL, "%s %s: directional derivative off by %.3g of |grad| %.3g", name, t->path,
              e, gn);
    }
    printf("  %s: %d tensors, worst relative error %.2e; %d with zero gradient\n", name, tensors,
           worst, zero);
    free(saved);
}

int main(void) {
    Ctx c;
    memset(&c, 0, sizeof c);
    ModelConfig cfg = model_config_default();
    cfg.F = 4, cfg.K = 8, cfg.R = 1, cfg.nd = 4;
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
    TestRng rng = {5};
    c.a = malloc(sizeof(float) * B * H * W);
    c.b = malloc(sizeof(float) * B * 3 * H * W);
    for (int i = 0; i < B * H * W; i++) c.a[i] = sinf(0.1f * (i % W)) * 0.8f + test_uniform(&rng, -0.2f, 0.2f);
    test_fill_uniform(&rng, c.b, (size_t)B * 3 * H * W, -1, 1);
    c.lw = (LossWeights){10.0f, 10.0f, 1.0f, 0};

    c.discriminator = 0;
    check_network(&c, &c.g, "G loss wrt G");
    c.lw.luminance_lock = 1; /* train --keep-luminance */
    check_network(&c, &c.g, "G loss wrt G, luminance lock");
    c.lw.luminance_lock = 0;
    /* D's loss on the fakes of the step above */
    objective(&c);
    c.discriminator = 1;
    check_network(&c, &c.d, "D loss wrt D");

    gan_workspace_free(&c.ws);
    network_free(&c.g);
    network_free(&c.d);
    free(c.a), free(c.b);
    return test_summary("test_gradcheck_gan");
}
