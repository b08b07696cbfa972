/* Golden test: the C core against the independent PyTorch reference
 * (scripts/torch_reference.py, fixtures from scripts/make_golden.py, computed
 * in float64). The fixture file is also a checkpoint written by h5py.
 *
 * Tolerances (norm-wise: max|c - ref| / max|ref| per tensor):
 *  - forward outputs and losses: 1e-4;
 *  - gradients: 1e-3, since every weight gradient sums ~10^4-10^5 float
 *    products (batch x pixels) and BatchNorm's backward subtracts two such
 *    sums; conv biases feeding a training-mode BatchNorm have a gradient that
 *    is exactly 0 in theory, so tensors are measured against a floor of 1e-2
 *    times the largest gradient of the network instead of their own ~0 size;
 *  - Adam: 1e-6 absolute where the reference |grad| > 1e-5; below that the
 *    first Adam step lr*g/(|g|+eps) turns rounding noise into a step of up to
 *    lr in either direction, so the two results may differ by 2*lr = 4e-4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/h5io.h"
#include "nn/gan.h"
#include "nn/gemm.h"
#include "nn/ops.h"
#include "testutil.h"

#define GOLDEN SPYNCO_TEST_DATA "/golden_small.h5"

static char err[512];
static H5Reader *file;

static float *read_golden(const char *path, int ndim, const int *shape, size_t *count) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *x = malloc(n * sizeof(float));
    if (h5r_read(file, path, H5IO_FLOAT32, ndim, shape, x)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    if (count) *count = n;
    return x;
}

static double read_scalar(const char *path) {
    float v;
    if (h5r_read(file, path, H5IO_FLOAT32, 0, NULL, &v)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return v;
}

static void compare(const char *what, const float *c, const char *ref_path, int ndim,
                    const int *shape, double floor, double tol) {
    size_t n;
    float *ref = read_golden(ref_path, ndim, shape, &n);
    double e = test_rel_error(c, ref, n, floor);
    CHECK(e <= tol, "%s: relative error %.3g > %.1g", what, e, tol);
    if (e > tol / 10) printf("  %-44s %.2e\n", what, e);
    free(ref);
}

static double max_grad(const Network *net) {
    double m = 0;
    for (int i = 0; i < net->num_tensors; i++)
        for (size_t k = 0; net->tensors[i].grad && k < net->tensors[i].count; k++)
            m = fmax(m, fabs(net->tensors[i].grad[k]));
    return m;
}

static void compare_grads(const Network *net, const char *prefix) {
    double floor = 1e-2 * max_grad(net), worst = 0;
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (!t->grad) continue;
        char path[128];
        snprintf(path, sizeof path, "/golden/train/grad/%s/%s", prefix, t->path);
        float *ref = read_golden(path, t->ndim, t->shape, NULL);
        double e = test_rel_error(t->grad, ref, t->count, floor);
        worst = fmax(worst, e);
        CHECK(e <= 1e-3, "grad %s/%s: relative error %.3g", prefix, t->path, e);
        free(ref);
    }
    printf("  %s gradients: worst relative error %.2e\n", prefix, worst);
}

static void compare_running_stats(const Network *net, const char *prefix) {
    double worst = 0;
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (t->grad) continue;
        char path[128];
        snprintf(path, sizeof path, "/golden/train/after/%s/%s", prefix, t->path);
        float *ref = read_golden(path, t->ndim, t->shape, NULL);
        double e = test_rel_error(t->data, ref, t->count, 1e-3);
        worst = fmax(worst, e);
        CHECK(e <= 1e-4, "running stat %s/%s: relative error %.3g", prefix, t->path, e);
        free(ref);
    }
    printf("  %s running statistics after the step: worst %.2e\n", prefix, worst);
}

static void compare_adam(Network *net, const char *prefix) {
    AdamConfig cfg = {2e-4f, 0.5f, 0.999f, 1e-8f};
    float *m = calloc(net->params.capacity, sizeof(float));
    float *v = calloc(net->params.capacity, sizeof(float));
    adam_update(net->params.base, m, v, net->grads.base, net->params.capacity, &cfg, 1);
    double worst_sure = 0, worst_noisy = 0;
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (!t->grad) continue;
        char path[128];
        snprintf(path, sizeof path, "/golden/train/adam/%s/%s", prefix, t->path);
        float *ref = read_golden(path, t->ndim, t->shape, NULL);
        snprintf(path, sizeof path, "/golden/train/grad/%s/%s", prefix, t->path);
        float *g = read_golden(path, t->ndim, t->shape, NULL);
        for (size_t k = 0; k < t->count; k++) {
            double d = fabs(t->data[k] - ref[k]);
            if (fabs(g[k]) > 1e-5)
                worst_sure = fmax(worst_sure, d);
            else
                worst_noisy = fmax(worst_noisy, d);
        }
        free(ref), free(g);
    }
    CHECK(worst_sure <= 1e-6, "%s Adam step differs by %.3g", prefix, worst_sure);
    CHECK(worst_noisy <= 4.01e-4, "%s Adam step (tiny gradients) differs by %.3g", prefix,
          worst_noisy);
    printf("  %s after one Adam step: max diff %.2e (|g| > 1e-5), %.2e (tiny g)\n", prefix,
           worst_sure, worst_noisy);
    free(m), free(v);
}

/* One training step from the fixture's checkpoint, compared; 1 if a file fails to load. */
static int golden_step(void) {
    Network g, d;
    CheckpointMeta meta;
    if (checkpoint_load_model(GOLDEN, &g, &d, &meta, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    CHECK(g.cfg.F == 8 && g.cfg.K == 16 && g.cfg.R == 2 && d.cfg.nd == 8, "golden config");
    file = h5r_open(GOLDEN, err, sizeof err);
    if (!file) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int B = 2, H = 96, W = 96;
    int a_shape[4] = {B, 1, H, W}, b_shape[4] = {B, 3, H, W};
    float *a = read_golden("/golden/a", 4, a_shape, NULL);
    float *b = read_golden("/golden/b", 4, b_shape, NULL);

    printf("eval mode (running statistics)\n");
    Activations ga, da;
    if (activations_init(&ga, &g, B, H, W, 0, err, sizeof err) ||
        activations_init(&da, &d, B, H, W, 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    generator_forward(&g, &ga, a, 0);
    const char *eval_y[3] = {"/golden/eval/y1", "/golden/eval/y2", "/golden/eval/y3"};
    for (int s = 0; s < 3; s++) {
        int shape[4] = {B, 3, ga.y_h[s], ga.y_w[s]};
        compare(eval_y[s], ga.y[s], eval_y[s], 4, shape, 1e-3, 1e-4);
    }
    discriminator_forward(&d, &da, b, 0);
    int d_shape[4] = {B, 1, da.y_h[0], da.y_w[0]};
    CHECK(da.y_h[0] == 10 && da.y_w[0] == 10, "D output %dx%d", da.y_w[0], da.y_h[0]);
    compare("/golden/eval/d_b", da.y[0], "/golden/eval/d_b", 4, d_shape, 1e-3, 1e-4);
    activations_free(&ga);
    activations_free(&da);

    printf("one training step (train mode, contours on)\n");
    GanWorkspace ws;
    if (gan_workspace_init(&ws, &g, &d, B, H, W, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    LossWeights lw = {10.0f, 10.0f, 1.0f, 0};
    GanLosses L;
    gan_generator_step(&ws, &g, &d, a, b, &lw, &L);
    for (int s = 0; s < 3; s++) {
        int shape[4] = {B, 3, H >> s, W >> s};
        char path[64];
        snprintf(path, sizeof path, "/golden/train/y%d", s + 1);
        compare(path, ws.fake[s], path, 4, shape, 1e-3, 1e-4);
    }
    const char *names[3] = {"cons_a", "cons_b", "gan"};
    for (int s = 0; s < 3; s++) {
        const double *vals[3] = {L.cons_a, L.cons_b, L.gan};
        for (int k = 0; k < 3; k++) {
            char path[64];
            snprintf(path, sizeof path, "/golden/train/loss/%s_s%d", names[k], s + 1);
            double ref = read_scalar(path);
            CHECK(fabs(vals[k][s] - ref) <= 1e-4 * fabs(ref), "%s: %.8g vs %.8g", path, vals[k][s], ref);
        }
    }
    double ref_c = read_scalar("/golden/train/loss/contours");
    double ref_g = read_scalar("/golden/train/loss/total_G");
    CHECK(fabs(L.contours - ref_c) <= 1e-4 * ref_c, "contours %.8g vs %.8g", L.contours, ref_c);
    CHECK(fabs(L.total_g - ref_g) <= 1e-4 * ref_g, "total_G %.8g vs %.8g", L.total_g, ref_g);
    printf("  total_G %.7f (reference %.7f)\n", L.total_g, ref_g);
    compare_grads(&g, "G");

    const float *fakes[3] = {ws.fake[0], ws.fake[1], ws.fake[2]};
    gan_discriminator_step(&ws, &d, b, fakes, &L);
    double ref_d = read_scalar("/golden/train/loss/total_D");
    CHECK(fabs(L.total_d - ref_d) <= 1e-4 * ref_d, "total_D %.8g vs %.8g", L.total_d, ref_d);
    printf("  total_D %.7f (reference %.7f)\n", L.total_d, ref_d);
    compare_grads(&d, "D");
    compare_running_stats(&g, "G");
    compare_running_stats(&d, "D");
    compare_adam(&g, "G");
    compare_adam(&d, "D");

    gan_workspace_free(&ws);
    free(a), free(b);
    h5r_close(file);
    network_free(&g);
    network_free(&d);
    return 0;
}

/* with every GEMM microkernel the CPU runs: each path's transforms go with its kernel */
int main(void) {
    const GemmKernel kernels[3] = {GEMM_KERNEL_AVX512, GEMM_KERNEL_AVX2, GEMM_KERNEL_SCALAR};
    const char *names[3] = {"AVX-512", "AVX2", "plain C"};
    for (int k = 0; k < 3; k++) {
        if (gemm_set_kernel(kernels[k])) continue;
        printf("GEMM kernel %s\n", names[k]);
        if (golden_step()) return 1;
    }
    return test_summary("test_golden");
}
