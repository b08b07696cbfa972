/* spynco bench: times the network core on synthetic input (default config,
 * fresh weights): G inference at a tile size, or one full training step. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/gan.h"
#include "nn/infer.h"
#include "pipeline/commands.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: spynco bench [--infer TILE [--halo] | --train SIZE] [--batch N] [--repeat N] "
            "[--threads N]\n"
            "  --infer TILE  time G's inference path (as colorize runs it) on a TILE x TILE input\n"
            "                (default 256)\n"
            "  --halo        with the receptive field's halo around the tile, as colorize\n"
            "                computes each tile (megapixels/s counts the tile's pixels)\n"
            "  --train SIZE  time one training step (G and D, both pseudo-cycles, 3 scales)\n"
            "  --batch N     batch size (default 1)\n"
            "  --repeat N    timed runs after one warm-up; the median is printed (default 5)\n"
            "  --threads N   OpenMP threads (default: all cores)\n"
            "Prints one line: what, threads, median seconds, and megapixels/s or steps/s.\n");
}

int cmd_bench(int argc, char **argv) {
    int train = 0, size = 256, batch = 1, repeat = 5, threads = 0, with_halo = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--infer") && has_value) {
            size = atoi(argv[++i]);
        } else if (!strcmp(a, "--halo")) {
            with_halo = 1;
        } else if (!strcmp(a, "--train") && has_value) {
            train = 1, size = atoi(argv[++i]);
        } else if (!strcmp(a, "--batch") && has_value) {
            batch = atoi(argv[++i]);
        } else if (!strcmp(a, "--repeat") && has_value) {
            repeat = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads") && has_value) {
            threads = atoi(argv[++i]);
        } else {
            bench_usage(stderr);
            return 2;
        }
    }
    if (size < 32 || size % 4 || batch < 1 || repeat < 1 || threads < 0 || (train && with_halo)) {
        fprintf(stderr, "spynco bench: size must be a multiple of 4 >= 32; batch, repeat >= 1; "
                        "--halo goes with --infer\n");
        return 2;
    }
    if (threads) omp_set_num_threads(threads);
    char err[256];
    ModelConfig cfg = model_config_default();
    Network g, d;
    if (network_init_generator(&g, &cfg, err, sizeof err) ||
        network_init_discriminator(&d, &cfg, err, sizeof err)) {
        fprintf(stderr, "spynco bench: %s\n", err);
        return 1;
    }
    network_init_weights(&g, 1);
    network_init_weights(&d, 2);
    int halo = with_halo ? generator_receptive_field(&g).halo : 0;
    int win = size + 2 * halo; /* the input: the tile and its halo */
    size_t n = (size_t)batch * win * win;
    float *a = malloc(n * sizeof(float)), *b = malloc(3 * n * sizeof(float));
    for (size_t i = 0; i < 3 * n; i++) b[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    for (size_t i = 0; i < n; i++) a[i] = b[i];
    double *times = malloc((size_t)repeat * sizeof(double));
    int rc = 0;
    if (train) {
        GanWorkspace ws;
        if (gan_workspace_init(&ws, &g, &d, batch, size, size, err, sizeof err)) {
            fprintf(stderr, "spynco bench: %s\n", err);
            rc = 1;
        } else {
            LossWeights lw = loss_weights_default();
            GanLosses L;
            for (int r = -1; r < repeat; r++) {
                double t0 = now();
                gan_generator_step(&ws, &g, &d, a, b, &lw, &L);
                const float *fakes[3] = {ws.fake[0], ws.fake[1], ws.fake[2]};
                gan_discriminator_step(&ws, &d, b, fakes, &L);
                if (r >= 0) times[r] = now() - t0;
            }
            gan_workspace_free(&ws);
        }
    } else {
        /* the inference path colorize runs: BN folded, fused epilogues, y1 only */
        InferModel m;
        InferWork work;
        if (infer_model_init(&m, &g, err, sizeof err)) {
            fprintf(stderr, "spynco bench: %s\n", err);
            rc = 1;
        } else if (infer_work_init(&work, &m, win, win, err, sizeof err)) {
            fprintf(stderr, "spynco bench: %s\n", err);
            infer_model_free(&m);
            rc = 1;
        } else {
            InferRect tile = {halo, halo + size, halo, halo + size};
            for (int r = -1; r < repeat; r++) {
                double t0 = now();
                for (int i = 0; i < batch; i++)
                    generator_infer(&m, &work, a + (size_t)i * win * win,
                                    b + (size_t)i * 3 * win * win, 0, 0, with_halo ? &tile : NULL);
                if (r >= 0) times[r] = now() - t0;
            }
            infer_work_free(&work);
            infer_model_free(&m);
        }
    }
    if (!rc) {
        qsort(times, (size_t)repeat, sizeof(double), cmp_double);
        double med = times[repeat / 2];
        if (train)
            printf("train %dx%d batch %d threads %d: median %.3f s/step, %.2f steps/s\n", size, size,
                   batch, omp_get_max_threads(), med, 1.0 / med);
        else
            printf("infer %dx%d%s batch %d threads %d: median %.4f s, %.3f megapixels/s\n", size,
                   size, with_halo ? " with its halo" : "", batch, omp_get_max_threads(), med,
                   (double)batch * size * size / med / 1e6);
    }
    free(times), free(a), free(b);
    network_free(&g);
    network_free(&d);
    return rc;
}
