/* gradcheck.h: finite-difference gradient checks (in the spirit of ggml's
 * test-backend-ops).
 *
 * The op under test is wrapped as a scalar function L(x) = sum_i r_i * f(x)_i
 * with a fixed random r, evaluated in float and summed in double. For chosen
 * elements of an input, the central difference (L(x+e) - L(x-e)) / 2e is
 * compared with the analytic gradient from the op's backward (called with
 * d(out) = r). An element passes when
 *     |numeric - analytic| <= rtol * max(|analytic|, rms(analytic gradient)).
 */
#ifndef SPYNCO_GRADCHECK_H
#define SPYNCO_GRADCHECK_H

#include <stddef.h>

#include "nn/networks.h"

typedef double (*LossFn)(void *ctx);

typedef struct {
    double worst;   /* largest |num - ana| / scale seen */
    int checked;
    int failures;
} GradResult;

/* Checks up to `samples` evenly spread elements of x[0..n) against grad[0..n). */
GradResult gradcheck(LossFn loss, void *ctx, float *x, const float *grad, size_t n, int samples,
                     float eps, double rtol);
/* The derivative along a direction of all of x (one number): with u =
 * dir/|dir|, numeric = (L(x+eps*u) - L(x-eps*u)) / 2eps and analytic =
 * grad . u. Robust for whole networks, where single elements may sit on a
 * ReLU kink. */
void gradcheck_direction(LossFn loss, void *ctx, float *x, const float *grad, const float *dir,
                         size_t n, float eps, double *numeric, double *analytic);
/* A random direction in [-1, 1]^n from a seed. */
void gradcheck_random_direction(float *dir, size_t n, unsigned long long seed);

/* Every parameter tensor of net against loss, which must recompute net's
 * grads on each call. Inside a network, single weights can move a ReLU or
 * an |.| across its kink, so each tensor is checked along two directions
 * instead: a random one and its own gradient's, perturbation eps, each
 * within rtol of the tensor's gradient norm (CHECKs, and a summary line).
 * Some tensors have a zero gradient in theory (a conv bias in front of a
 * training-mode BatchNorm, or a BN bias whose per-channel shift the next
 * conv+BN removes): where the analytic gradient is below 1e-6 of the
 * network's, the numeric one must be below 1e-3 of it. */
void gradcheck_network(LossFn loss, void *ctx, Network *net, const char *name, float eps,
                       double rtol);

/* The whole-objective checks' fixture (test_gradcheck_gan, _cycle): the
 * default config at the smallest widths (F=4, K=8, R=1, nd=4), and B gray
 * images a (a horizontal wave plus noise) and B color ones b (uniform in
 * [-1, 1]) of H x W, the same on every call; the caller frees a and b. */
ModelConfig gradcheck_tiny_config(void);
void gradcheck_gan_batch(int B, int H, int W, float **a, float **b);

#endif
