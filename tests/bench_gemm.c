/* bench_gemm: single-thread GFLOP/s of the Spynco SGEMM kernels and of
 * OpenBLAS's cblas_sgemm on the convolutions' shapes. Built, not run by ctest:
 *     build/tests/bench_gemm [seconds per measurement, default 0.2]
 * Each figure is the best of 3 measurements. OpenBLAS chooses its kernel from
 * the CPU, or from OPENBLAS_CORETYPE when that is set (OPENBLAS_VERBOSE=2
 * prints which). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/gemm.h"

typedef struct {
    const char *what;
    char op; /* 'n': A*B, 't': A^T*B, 'w': A*B^T */
    int m, n, k;
} Shape;

/* m = output channels, n = a 512-pixel block, k = in_ch * kernel^2 (spynco-s:
 * F = 32, K = 64, nd = 32); the weight gradient sums over the pixel block. */
static const Shape shapes[] = {
    {"G enc0 fwd 7x7", 'n', 32, 512, 49},       {"G enc1 fwd", 'n', 64, 512, 288},
    {"G enc2 fwd", 'n', 128, 512, 576},         {"G res fwd", 'n', 128, 512, 1152},
    {"G dec2 fwd 1x1", 'n', 64, 512, 128},      {"G dec1 fwd", 'n', 64, 512, 576},
    {"G head fwd 1x1", 'n', 3, 512, 64},        {"D l2 fwd 4x4", 'n', 128, 512, 1024},
    {"D l3 fwd 4x4", 'n', 256, 512, 2048},      {"D l4 fwd 4x4", 'n', 1, 512, 4096},
    {"G res d(input)", 'n', 128, 512, 1152},    {"G enc1 d(input)", 'n', 32, 512, 576},
    {"G dec2 d(input) 1x1", 't', 128, 512, 64}, {"G head d(input) 1x1", 't', 64, 512, 3},
    {"G res d(weight)", 'w', 128, 1152, 512},   {"G enc0 d(weight)", 'w', 32, 49, 512},
    {"G enc1 d(weight)", 'w', 64, 288, 512},    {"D l3 d(weight)", 'w', 256, 2048, 512},
    {"D l4 d(weight)", 'w', 1, 4096, 512},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    const Shape *s;
    const float *a, *b;
    float *c;
} Problem;

/* kernel < 0: OpenBLAS. Operand layouts as in nn/conv.c. */
static void run(const Problem *p, int kernel) {
    const Shape *s = p->s;
    int m = s->m, n = s->n, k = s->k;
    if (kernel < 0) {
        CBLAS_TRANSPOSE ta = s->op == 't' ? CblasTrans : CblasNoTrans;
        CBLAS_TRANSPOSE tb = s->op == 'w' ? CblasTrans : CblasNoTrans;
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, p->a, s->op == 't' ? m : k, p->b,
                    s->op == 'w' ? k : n, 1.0f, p->c, n);
    } else if (s->op == 't') {
        gemm_tn(m, n, k, p->a, m, p->b, n, 1.0f, p->c, n);
    } else if (s->op == 'w') {
        gemm_nt(m, n, k, p->a, k, p->b, k, 1.0f, p->c, n);
    } else {
        gemm_nn(m, n, k, p->a, k, p->b, n, 1.0f, p->c, n);
    }
}

static double gflops(const Problem *p, int kernel, double seconds) {
    const Shape *s = p->s;
    double flop = 2.0 * s->m * s->n * s->k, best = 0.0;
    run(p, kernel);
    for (int rep = 0; rep < 3; rep++) {
        long calls = 0;
        double t0 = now(), t;
        do {
            run(p, kernel);
            calls++;
        } while ((t = now() - t0) < seconds);
        double rate = flop * calls / t / 1e9;
        if (rate > best) best = rate;
    }
    return best;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    static const char *names[] = {"scalar", "avx2", "avx512"};
    openblas_set_num_threads(1);
    printf("%-22s %5s %5s %5s |", "GFLOP/s, 1 thread", "m", "n", "k");
    for (int kern = 0; kern < 3; kern++) printf(" %8s", names[kern]);
    printf(" %8s\n", "openblas");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const Shape *s = &shapes[i];
        size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
        float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
        float *c = calloc(nc, sizeof(float));
        for (size_t j = 0; j < na; j++) a[j] = (float)(j % 17) * 0.01f - 0.08f;
        for (size_t j = 0; j < nb; j++) b[j] = (float)(j % 13) * 0.01f - 0.06f;
        Problem p = {s, a, b, c};
        printf("%-22s %5d %5d %5d |", s->what, s->m, s->n, s->k);
        for (int kern = 0; kern < 3; kern++) {
            if (gemm_set_kernel((GemmKernel)kern))
                printf(" %8s", "-");
            else
                printf(" %8.1f", gflops(&p, kern, seconds));
            fflush(stdout);
        }
        printf(" %8.1f\n", gflops(&p, -1, seconds));
        free(a), free(b), free(c);
    }
    return 0;
}
