/* spynco colorize: a georeferenced gray raster in, a georeferenced color raster out. */
#include <cpl_string.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/cli.h"
#include "pipeline/colorize.h"
#include "pipeline/commands.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: spynco colorize [-q] [--model FILE] [--tile N] [--threads N] [-b BAND]\n"
        "                       [--scale MIN MAX] [--keep-luminance | --no-keep-luminance]\n"
        "                       [-of FORMAT] [-co NAME=VALUE]...\n"
        "                       [--overviews] [--config KEY VALUE]... INPUT OUTPUT\n"
        "\n"
        "Colorizes INPUT (any raster GDAL reads: GeoTIFF, JPEG, PNG, VRT, /vsizip/...) into\n"
        "OUTPUT, a 3-band RGB (4-band RGBA where INPUT has no-data) Byte raster with INPUT's\n"
        "size, geotransform and CRS.\n"
        "\n"
        "  -q               quiet: no log, no progress bar\n"
        "  --model FILE     model checkpoint (default: $SPYNCO_MODEL, else the bundled\n"
        "                   models/spynco-default.h5)\n"
        "  --tile N         output tile size, a multiple of 4 (default %d); the result\n"
        "                   does not depend on it, memory does (about 0.65 GB at 2048 and\n"
        "                   0.2 GB at 1024, plus GDAL's block cache, 256 MB unless\n"
        "                   --config GDAL_CACHEMAX)\n"
        "  --threads N      compute threads (default: all cores)\n"
        "  -b BAND          use this band as the gray input (default: band 1 of a 1-2 band\n"
        "                   raster; R,G,B through the model's H_t weights for 3+ bands)\n"
        "  --scale MIN MAX  map input values MIN..MAX to 0..255 (default for non-Byte data:\n"
        "                   the 2nd and 98th percentiles)\n"
        "  --keep-luminance make the output's luminance exactly the input gray: add\n"
        "                   gray - H_t(rgb) to R, G and B (up to 8-bit rounding and\n"
        "                   clamping); --no-keep-luminance: G's colours as they are\n"
        "                   (default: %s)\n"
        "  -of FORMAT       GDAL output format (default GTiff; COG writes a Cloud Optimized\n"
        "                   GeoTIFF with overviews)\n"
        "  -co NAME=VALUE   creation option, overrides the defaults (GTiff: TILED=YES,\n"
        "                   BLOCKXSIZE=512, BLOCKYSIZE=512, COMPRESS=DEFLATE, PREDICTOR=2,\n"
        "                   ZLEVEL=3, BIGTIFF=IF_SAFER; COG: COMPRESS=DEFLATE, LEVEL=3\n"
        "                   unless -co COMPRESS, PREDICTOR=YES; GTiff and COG:\n"
        "                   NUM_THREADS=--threads)\n"
        "  --overviews      build overviews (GeoTIFF)\n"
        "  --config K V     set a GDAL configuration option\n"
        "\n"
        "OUTPUT appears only when complete; on failure or interruption nothing is left there.\n",
        COLORIZE_DEFAULT_TILE, KEEP_LUMINANCE_DEFAULT ? "on" : "off");
}

int cmd_colorize(int argc, char **argv) {
    ColorizeOptions opt = {0};
    ModelRunOptions m = {.keep_luminance = KEEP_LUMINANCE_DEFAULT};
    const char *pos[2] = {NULL, NULL};
    int npos = 0, rc = 2;
    char **create_options = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int left = argc - i - 1, shared = cli_model_option("colorize", argc, argv, &i, &m);
        if (shared < 0) goto out;
        if (shared) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            CSLDestroy(create_options);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            opt.quiet = 1;
        } else if (!strcmp(a, "--overviews")) {
            opt.overviews = 1;
        } else if (!strcmp(a, "-b") && left >= 1) {
            if (cli_parse_int(argv[++i], &opt.band) || opt.band < 1) {
                fprintf(stderr, "spynco colorize: -b takes a band number (1, 2, ...), not '%s'\n", argv[i]);
                goto out;
            }
        } else if (!strcmp(a, "--scale") && left >= 2) {
            if (cli_parse_double(argv[i + 1], &opt.scale_min) ||
                cli_parse_double(argv[i + 2], &opt.scale_max) ||
                !(opt.scale_max > opt.scale_min)) {
                fprintf(stderr, "spynco colorize: --scale takes two numbers MIN < MAX\n");
                goto out;
            }
            opt.has_scale = 1;
            i += 2;
        } else if (!strcmp(a, "-of") && left >= 1) {
            opt.format = argv[++i];
        } else if (!strcmp(a, "-co") && left >= 1) {
            if (!strchr(argv[++i], '=')) {
                fprintf(stderr, "spynco colorize: -co takes NAME=VALUE, not '%s'\n", argv[i]);
                goto out;
            }
            create_options = CSLAddString(create_options, argv[i]);
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "spynco colorize: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            goto out;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "spynco colorize: one INPUT and one OUTPUT, not more ('%s')\n", a);
            goto out;
        }
    }
    if (npos != 2) {
        usage(stderr);
        goto out;
    }
    cli_bound_gdal_cache();
    opt.model_path = m.model_path, opt.tile = m.tile, opt.threads = m.threads;
    opt.keep_luminance = m.keep_luminance;
    opt.create_options = create_options;
    cli_catch_interrupts();
    opt.cancel = &cli_interrupted;
    char err[1024];
    CPLPushErrorHandler(CPLQuietErrorHandler);
    rc = colorize_file(pos[0], pos[1], &opt, err, sizeof err) ? 1 : 0;
    CPLPopErrorHandler();
    if (rc) fprintf(stderr, "spynco colorize: %s\n", *opt.cancel ? "interrupted; nothing written" : err);
out:
    CSLDestroy(create_options);
    GDALDestroyDriverManager();
    return rc;
}
