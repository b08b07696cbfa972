#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>

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
