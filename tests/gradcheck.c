#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

GradResult gradcheck(LossFn loss, void *ctx, float *x, const float *grad, size_t n, int samples,
                     float eps, double rtol) {
    GradResult r = {0.0, 0, 0};
    double rms = 0.0;
    for (size_t i = 0; i < n; i++) rms += (double)grad[i] * grad[i];
    rms = sqrt(rms / (double)n);
    size_t step = n > (size_t)samples ? n / (size_t)samples : 1;
    for (size_t i = 0; i < n; i += step) {
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double numeric = (lp - lm) / (2.0 * (double)eps);
        double scale = fmax(fabs((double)grad[i]), rms);
        double rel = scale > 0 ? fabs(numeric - grad[i]) / scale : fabs(numeric);
        if (rel > r.worst) r.worst = rel;
        if (!(rel <= rtol)) r.failures++;
        r.checked++;
    }
    return r;
}

void gradcheck_random_direction(float *dir, size_t n, unsigned long long seed) {
    unsigned long long s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        dir[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

void gradcheck_direction(LossFn loss, void *ctx, float *x, const float *grad, const float *dir,
                         size_t n, float eps, double *numeric, double *analytic) {
    float *saved = malloc(n * sizeof(float));
    float *u = malloc(n * sizeof(float));
    double norm = 0.0, dot = 0.0;
    for (size_t i = 0; i < n; i++) norm += (double)dir[i] * dir[i];
    norm = sqrt(norm);
    for (size_t i = 0; i < n; i++) {
        u[i] = norm > 0 ? (float)(dir[i] / norm) : 0.0f;
        saved[i] = x[i];
        dot += (double)grad[i] * u[i];
    }
    for (size_t i = 0; i < n; i++) x[i] = saved[i] + eps * u[i];
    double lp = loss(ctx);
    for (size_t i = 0; i < n; i++) x[i] = saved[i] - eps * u[i];
    double lm = loss(ctx);
    for (size_t i = 0; i < n; i++) x[i] = saved[i];
    free(saved);
    free(u);
    *numeric = (lp - lm) / (2.0 * (double)eps);
    *analytic = dot;
}

static double grad_norm(const Network *net) {
    double s = 0;
    for (int i = 0; i < net->num_tensors; i++)
        for (size_t k = 0; net->tensors[i].grad && k < net->tensors[i].count; k++)
            s += (double)net->tensors[i].grad[k] * net->tensors[i].grad[k];
    return sqrt(s);
}

void gradcheck_network(LossFn objective, void *c, Network *net, const char *name, float eps,
                         double rtol) {
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
            gradcheck_direction(objective, c, t->data, grad, dir, t->count, eps, &num, &ana);
            CHECK(fabs(num) < 1e-3 * total, "%s %s: analytic gradient ~0, numeric %.3g", name,
                  t->path, num);
            zero++;
            free(dir);
            continue;
        }
        /* direction 1: random, judged against the gradient's norm */
        gradcheck_direction(objective, c, t->data, grad, dir, t->count, eps, &num, &ana);
        double e1 = fabs(num - ana) / gn;
        /* direction 2: the gradient itself, so the derivative equals |grad| */
        gradcheck_direction(objective, c, t->data, grad, grad, t->count, eps, &num, &ana);
        double e2 = fabs(num - gn) / gn;
        free(dir);
        double e = fmax(e1, e2);
        worst = fmax(worst, e);
        tensors++;
        CHECK(e <= rtol, "%s %s: directional derivative off by %.3g of |grad| %.3g", name, t->path,
              e, gn);
    }
    printf("  %s: %d tensors, worst relative error %.2e; %d with zero gradient\n", name, tensors,
           worst, zero);
    free(saved);
}

ModelConfig gradcheck_tiny_config(void) {
    ModelConfig cfg = model_config_default();
    cfg.F = 4, cfg.K = 8, cfg.R = 1, cfg.nd = 4;
    return cfg;
}

void gradcheck_gan_batch(int B, int H, int W, float **a, float **b) {
    TestRng rng = {5};
    *a = malloc(sizeof(float) * B * H * W);
    *b = malloc(sizeof(float) * B * 3 * H * W);
    for (int i = 0; i < B * H * W; i++)
        (*a)[i] = sinf(0.1f * (i % W)) * 0.8f + test_uniform(&rng, -0.2f, 0.2f);
    test_fill_uniform(&rng, *b, (size_t)B * 3 * H * W, -1, 1);
}
