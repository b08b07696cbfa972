#include "pipeline/cli.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_bound_gdal_cache(void) {
    if (!CPLGetConfigOption("GDAL_CACHEMAX", NULL)) GDALSetCacheMax64(256LL << 20);
}

int cli_parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < -1000000000L || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return *s == 0 || *end ? -1 : 0;
}

int cli_model_option(const char *cmd, int argc, char **argv, int *i, ModelRunOptions *o) {
    const char *a = argv[*i];
    int left = argc - *i - 1;
    if (!strcmp(a, "--keep-luminance")) {
        o->keep_luminance = 1;
    } else if (!strcmp(a, "--no-keep-luminance")) {
        o->keep_luminance = 0;
    } else if (!strcmp(a, "--model") && left >= 1) {
        o->model_path = argv[++*i];
    } else if (!strcmp(a, "--tile") && left >= 1) {
        if (cli_parse_int(argv[++*i], &o->tile) || o->tile < 4 || o->tile % 4) {
            fprintf(stderr, "spynco %s: --tile takes a positive multiple of 4, not '%s'\n", cmd,
                    argv[*i]);
            return -1;
        }
    } else if (!strcmp(a, "--threads") && left >= 1) {
        if (cli_parse_int(argv[++*i], &o->threads) || o->threads < 1) {
            fprintf(stderr, "spynco %s: --threads takes a positive number, not '%s'\n", cmd,
                    argv[*i]);
            return -1;
        }
    } else if (!strcmp(a, "--config") && left >= 2) {
        CPLSetConfigOption(argv[*i + 1], argv[*i + 2]);
        *i += 2;
    } else {
        return 0;
    }
    return 1;
}

volatile sig_atomic_t cli_interrupted = 0;

static void on_interrupt(int sig) {
    (void)sig;
    cli_interrupted = 1;
}

void cli_catch_interrupts(void) {
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    signal(SIGUSR1, on_interrupt);
}
