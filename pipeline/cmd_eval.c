/* spynco eval: how well a model colorizes real colour images, against the gray copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/cli.h"
#include "pipeline/colorize.h"
#include "pipeline/commands.h"
#include "pipeline/eval.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: spynco eval [-q] [--model FILE] [--tile N] [--threads N]\n"
        "                   [--keep-luminance | --no-keep-luminance] [--json FILE] [--csv FILE]\n"
        "                   [--samples DIR] [--config KEY VALUE]... COLOR_SRC...\n"
        "\n"
        "Measures how well the model colorizes real colour images. For each image of the\n"
        "COLOR_SRCs (images, folders searched recursively, list files with one path per\n"
        "line relative to the list, as recipes/splits/*.txt): gray = H_t(R,G,B) with the\n"
        "model's weights, rounded to 8 bits; colorized exactly as `spynco colorize` does;\n"
        "compared with the real colours. The baseline is the gray copy (gray in R, G, B).\n"
        "\n"
        "  MSE   mean squared difference, 0-255 scale, over pixels and the 3 channels\n"
        "  SSIM  Wang et al. 2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, L 255,\n"
        "        per channel then averaged, in %% (= scikit-image's structural_similarity\n"
        "        with gaussian_weights=True, use_sample_covariance=False, data_range=255)\n"
        "  PSNR  10 log10(255^2 / MSE), dB\n"
        "The set's figures are means over images of the per-image MSE, SSIM and PSNR\n"
        "(PSNR: the mean of per-image PSNR). No-data pixels are left out.\n"
        "\n"
        "  -q               quiet: no progress bar, no warnings\n"
        "  --model FILE     model checkpoint (default: $SPYNCO_MODEL, else the bundled\n"
        "                   models/spynco-default.h5)\n"
        "  --tile N         colorize tile size, a multiple of 4 (default %d); the figures\n"
        "                   do not depend on it\n"
        "  --threads N      compute threads (default: all cores)\n"
        "  --keep-luminance make the output's luminance exactly the input gray, as\n"
        "                   `colorize --keep-luminance`; --no-keep-luminance: G's colours\n"
        "                   as they are (default: %s)\n"
        "  --json FILE      the figures, model, options and failures as JSON\n"
        "  --csv FILE       one row per image: path, size, model and baseline figures\n"
        "  --samples DIR    one PNG per image, NNNN_<name>.png: gray | colorized | real\n"
        "  --config K V     set a GDAL configuration option\n"
        "\n"
        "The table goes to stdout. Files appear only when complete. An image that cannot\n"
        "be evaluated (unreadable, not colour, smaller than 11x11) is reported and the\n"
        "others are still evaluated; the exit status is then 1.\n",
        COLORIZE_DEFAULT_TILE, KEEP_LUMINANCE_DEFAULT ? "on" : "off");
}

int cmd_eval(int argc, char **argv) {
    EvalOptions opt = {.verbose = 1};
    ModelRunOptions m = {.keep_luminance = KEEP_LUMINANCE_DEFAULT};
    const char **sources = calloc(argc > 1 ? argc : 1, sizeof *sources);
    int quiet = 0, rc = 2;
    if (!sources) {
        fprintf(stderr, "spynco eval: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int left = argc - i - 1, shared = cli_model_option("eval", argc, argv, &i, &m);
        if (shared < 0) goto out;
        if (shared) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(sources);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--json") && left >= 1) {
            opt.json_path = argv[++i];
        } else if (!strcmp(a, "--csv") && left >= 1) {
            opt.csv_path = argv[++i];
        } else if (!strcmp(a, "--samples") && left >= 1) {
            opt.samples_dir = argv[++i];
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "spynco eval: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            goto out;
        } else {
            sources[opt.num_sources++] = a;
        }
    }
    if (opt.num_sources == 0) {
        fprintf(stderr, "spynco eval: give at least one COLOR_SRC (image, folder or list)\n\n");
        usage(stderr);
        goto out;
    }
    cli_bound_gdal_cache();
    opt.model_path = m.model_path, opt.tile = m.tile, opt.threads = m.threads;
    opt.keep_luminance = m.keep_luminance;
    opt.sources = sources;
    opt.verbose = !quiet;
    opt.progress = quiet ? NULL : GDALTermProgress;
    cli_catch_interrupts();
    opt.cancel = &cli_interrupted;
    char err[2048];
    EvalResult res;
    int status = eval_run(&opt, &res, err, sizeof err);
    if (status >= 0) eval_print_table(stdout, &res);
    if (status != 0)
        fprintf(stderr, "spynco eval: %s\n", *opt.cancel ? "interrupted; nothing written" : err);
    rc = status == 0 ? 0 : 1;
out:
    free(sources);
    GDALDestroyDriverManager();
    return rc;
}
