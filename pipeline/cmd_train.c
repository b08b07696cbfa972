/* spynco train / spynco export. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"
#include "pipeline/train.h"

static void train_usage(FILE *out) {
    TrainOptions d = train_options_default();
    fprintf(out,
        "usage: spynco train --gray SRC... --color SRC... --out DIR [options]\n"
        "       spynco train --out DIR --resume [--steps N | --epochs N] [--threads N]\n"
        "\n"
        "Trains a SpyncoGAN from two UNPAIRED sets: gray images (domain A) and color\n"
        "images (domain B). SRC is a folder (searched recursively), a list file (one\n"
        "path per line) or a raster (large ones are sampled by random windows).\n"
        "\n"
        "data:\n"
        "  --gray SRC...         gray sources (1 band)\n"
        "  --gray-from-color     let gray sources be color images made gray through H_t\n"
        "  --color SRC...        color sources (bands 1-3 or R,G,B by colour interpretation)\n"
        "  --color-bands R,G,B   1-based bands of color sources (e.g. 1,2,3 for RGBN)\n"
        "  --crop N              square crop side, multiple of 4, >= 96 (default %d)\n"
        "  --batch N             batch size (default %d; 4 or more keeps BatchNorm's\n"
        "                        statistics close to what inference uses); under mpirun\n"
        "                        the whole step's batch, shared evenly by the processes\n"
        "length:\n"
        "  --steps N             total steps of the run\n"
        "  --epochs N            total epochs (default %d); an epoch = the larger set once\n"
        "  --resume              continue DIR/last.h5 (its settings) up to the total\n"
        "  --stop-after N        stop after N steps of this session, with a checkpoint\n"
        "objective:\n"
        "  --scales LIST         pyramid outputs in the losses (default 1,2,3; 1 = L^1)\n"
        "  --lambda-a X          pseudo-cycle A weight (default %g)\n"
        "  --lambda-b X          pseudo-cycle B weight (default %g)\n"
        "  --contours [X]        add the contours loss, weight X (default %g)\n"
        "  --keep-luminance      train the outputs with the input's luminance put back\n"
        "                        (what colorize --keep-luminance emits): G learns the\n"
        "                        chroma only; beyond the spec, off by default\n"
        "  --ht R,G,B            H_t weights (default 0.299,0.587,0.114); they sum to 1\n"
        "  --lr X                Adam learning rate (default %g), beta (0.5, 0.999)\n"
        "  --learned-f           CycleGAN row: learn F (color -> gray, G's layers with 3\n"
        "                        inputs, 1 output) and a gray discriminator D_A in place\n"
        "                        of H_t; cycle A |F(G(a)_s) - a_s|, cycle B |G(F(b))_s - b_s|\n"
        "                        over the scales, F(b) judged by D_A. Crops: multiples of\n"
        "                        16 with scale 3 (F reads G's H/4 output); no --contours\n"
        "                        or --keep-luminance; with --init, F and D_A start fresh.\n"
        "                        The exported model is G alone, as usual\n"
        "model:\n"
        "  --F N --K N --R N --nd N   widths and residual blocks (default 32 64 6 32)\n"
        "  --name NAME           model name stored in the checkpoint (default spynco-s)\n"
        "  --init FILE           start from the weights of FILE (a checkpoint or a release\n"
        "                        model such as models/spynco-default.h5: fine-tuning for\n"
        "                        a region); its architecture and H_t are used, D is fresh\n"
        "                        if FILE has none, Adam and the pool start afresh\n"
        "run:\n"
        "  --out DIR             output folder: last.h5, losses.csv/.svg, sample grids\n"
        "  --seed N              random seed (default %llu)\n"
        "  --threads N           OpenMP threads (default: all cores); same data, seed and\n"
        "                        threads give the same weights\n"
        "  --checkpoint-every N  steps between checkpoints (default %d)\n"
        "  --keep-epochs         also keep DIR/epoch_NNNN.h5 after every epoch\n"
        "  -q                    quiet\n"
        "\n"
        "SIGINT/SIGTERM/SIGUSR1 stop after the current step with a checkpoint (exit 130).\n"
        "\n"
        "mpirun -n N spynco train ... trains data-parallel on N processes (one or more\n"
        "machines): each takes --batch/N images of every batch; the result is that of\n"
        "one process with the same options, up to float rounding. Set --threads to\n"
        "the cores each process may use. For a clean stop, send SIGUSR1 to mpirun.\n",
        d.crop, d.batch, d.epochs, d.lambdas.lambda_a, d.lambdas.lambda_b,
        CONTOURS_LAMBDA_DEFAULT, d.lr, d.seed, d.checkpoint_every);
}

static int parse_long(const char *s, long lo, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out) {
    char *end;
    *out = strtof(s, &end);
    return !*s || *end ? -1 : 0;
}

static int parse_list(const char *s, float *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        char *end;
        out[n++] = strtof(p, &end);
        if (end == p) return -1;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *p ? -1 : n;
}

int cmd_train(int argc, char **argv) {
    TrainOptions o = train_options_default();
    const char *out = NULL;
    int resume = 0, explicit_length = 0;
    long v;
    float f[3];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int left = argc - i - 1;
#define NEED(k)                                                                   \
    if (left < (k)) {                                                             \
        fprintf(stderr, "spynco train: %s needs a value\n", a);                   \
        return 2;                                                                 \
    }
#define BAD(msg)                                                                  \
    do {                                                                          \
        fprintf(stderr, "spynco train: %s '%s'\n", msg, argv[i]);                 \
        return 2;                                                                 \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--gray") || !strcmp(a, "--color")) {
            int is_gray = a[2] == 'g';
            int *count = is_gray ? &o.num_gray : &o.num_color;
            const char **list = is_gray ? o.gray : o.color;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (*count == TRAIN_MAX_SOURCES) BAD("too many sources at");
                list[(*count)++] = argv[++i];
            }
            if (*count == 0) BAD("no source after");
        } else if (!strcmp(a, "--gray-from-color")) {
            o.gray_from_color = 1;
        } else if (!strcmp(a, "--color-bands")) {
            NEED(1);
            ++i;
            if (parse_list(argv[i], f, 3) != 3 || f[0] < 1 || f[1] < 1 || f[2] < 1)
                BAD("--color-bands takes three band numbers R,G,B, not");
            for (int k = 0; k < 3; k++) o.color_bands[k] = (int)f[k];
        } else if (!strcmp(a, "--crop")) {
            NEED(1);
            if (parse_long(argv[++i], 96, &v) || v % 4) BAD("--crop takes a multiple of 4 >= 96, not");
            o.crop = (int)v;
        } else if (!strcmp(a, "--batch")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--batch takes a positive number, not");
            o.batch = (int)v;
        } else if (!strcmp(a, "--steps")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--steps takes a positive number, not");
            o.steps = v, explicit_length = 1;
        } else if (!strcmp(a, "--epochs")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--epochs takes a positive number, not");
            o.epochs = (int)v, o.steps = 0, explicit_length = 1;
        } else if (!strcmp(a, "--stop-after")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--stop-after takes a positive number, not");
            o.stop_after = v;
        } else if (!strcmp(a, "--scales")) {
            NEED(1);
            int k = parse_list(argv[++i], f, 3);
            if (k < 1) BAD("--scales takes a list like 1,2,3, not");
            o.model.num_scales = k;
            for (int s = 0; s < k; s++) o.model.scales[s] = (int)f[s];
        } else if (!strcmp(a, "--contours")) {
            o.lambdas.lambda_c = CONTOURS_LAMBDA_DEFAULT;
            if (left >= 1 && argv[i + 1][0] != '-' && parse_float(argv[i + 1], &f[0]) == 0)
                o.lambdas.lambda_c = f[0], i++;
        } else if (!strcmp(a, "--lambda-a") || !strcmp(a, "--lambda-b") || !strcmp(a, "--lr")) {
            NEED(1);
            if (parse_float(argv[++i], &f[0]) || !(f[0] >= 0)) BAD("expected a number, not");
            if (!strcmp(a, "--lambda-a")) o.lambdas.lambda_a = f[0];
            else if (!strcmp(a, "--lambda-b")) o.lambdas.lambda_b = f[0];
            else o.lr = f[0];
        } else if (!strcmp(a, "--learned-f")) {
            o.learned_f = 1;
        } else if (!strcmp(a, "--ht")) {
            NEED(1);
            if (parse_list(argv[++i], f, 3) != 3) BAD("--ht takes three weights R,G,B, not");
            memcpy(o.model.ht, f, sizeof f);
        } else if (!strcmp(a, "--F") || !strcmp(a, "--K") || !strcmp(a, "--R") || !strcmp(a, "--nd")) {
            NEED(1);
            if (parse_long(argv[++i], 0, &v)) BAD("expected a number, not");
            if (!strcmp(a, "--F")) o.model.F = (int)v;
            else if (!strcmp(a, "--K")) o.model.K = (int)v;
            else if (!strcmp(a, "--R")) o.model.R = (int)v;
            else o.model.nd = (int)v;
        } else if (!strcmp(a, "--name")) {
            NEED(1);
            snprintf(o.model.name, sizeof o.model.name, "%s", argv[++i]);
        } else if (!strcmp(a, "--out")) {
            NEED(1);
            out = argv[++i];
        } else if (!strcmp(a, "--seed")) {
            NEED(1);
            if (parse_long(argv[++i], 0, &v)) BAD("--seed takes a number, not");
            o.seed = (unsigned long long)v;
        } else if (!strcmp(a, "--threads")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--threads takes a positive number, not");
            o.threads = (int)v;
        } else if (!strcmp(a, "--checkpoint-every")) {
            NEED(1);
            if (parse_long(argv[++i], 1, &v)) BAD("--checkpoint-every takes a positive number, not");
            o.checkpoint_every = (int)v;
        } else if (!strcmp(a, "--keep-epochs")) {
            o.keep_epochs = 1;
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (!strcmp(a, "--keep-luminance")) {
            o.lambdas.luminance_lock = 1;
        } else if (!strcmp(a, "--init")) {
            NEED(1);
            o.init_from = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else {
            fprintf(stderr, "spynco train: unknown option '%s'\n\n", a);
            train_usage(stderr);
            return 2;
        }
#undef NEED
#undef BAD
    }
    if (!out) {
        fprintf(stderr, "spynco train: --out DIR is required\n");
        return 2;
    }
    if (resume && o.init_from) {
        fprintf(stderr, "spynco train: --init starts a new run; it cannot go with --resume\n");
        return 2;
    }
    if (resume && !explicit_length) o.steps = 0, o.epochs = 0; /* keep the stored total */
    o.stop = &cli_interrupted;
    cli_catch_interrupts();
    char err[1024];
    if (dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "spynco train: %s\n", err);
        return 1;
    }
    int rc = train_run(&o, out, resume, err, sizeof err);
    /* every rank has the same outcome (and message): rank 0 reports it */
    if (rc < 0 && dist_rank() == 0) fprintf(stderr, "spynco train: %s\n", err);
    dist_finalize();
    if (rc < 0) return 1;
    return rc == 1 && cli_interrupted ? 130 : 0;
}

int cmd_export(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: spynco export CHECKPOINT MODEL\n"
               "Writes MODEL: the generator of CHECKPOINT without the discriminator and the\n"
               "training state, for `spynco colorize --model MODEL`.\n");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: spynco export CHECKPOINT MODEL\n");
        return 2;
    }
    char err[1024];
    if (export_model(argv[1], argv[2], err, sizeof err)) {
        fprintf(stderr, "spynco export: %s\n", err);
        return 1;
    }
    return 0;
}
