/* cli.h: what the subcommands' option parsers share.
 *
 * `colorize` and `eval` run the same model the same way, so they take the
 * same model options, parsed here with the same messages:
 *
 *   ModelRunOptions m = {.keep_luminance = KEEP_LUMINANCE_DEFAULT};
 *   for (int i = 1; i < argc; i++) {
 *       int r = cli_model_option("colorize", argc, argv, &i, &m);
 *       if (r < 0) return 2;   // bad value, message printed
 *       if (r > 0) continue;   // consumed (with its values)
 *       ...                    // the command's own options
 *   }
 *
 * plus number parsing and the interrupt flag the long loops of every command poll. */
#ifndef SPYNCO_CLI_H
#define SPYNCO_CLI_H

#include <signal.h>

typedef struct {
    const char *model_path; /* --model FILE */
    int tile;               /* --tile N, multiple of 4; 0: the default */
    int threads;            /* --threads N; 0: all cores */
    int keep_luminance;     /* --keep-luminance / --no-keep-luminance */
} ModelRunOptions;

/* 1: argv[*i] was --model, --tile, --threads, --[no-]keep-luminance or
 * --config KEY VALUE (applied at once), *i now on its last value; 0: none of
 * them (or a value is missing); -1: a bad value, said on stderr as "spynco CMD: ...". */
int cli_model_option(const char *cmd, int argc, char **argv, int *i, ModelRunOptions *o);

/* Caps GDAL's block cache at 256 MB unless the user set GDAL_CACHEMAX (--config
 * or environment): it would otherwise grow to 5% of RAM, and the commands'
 * memory is meant to depend on the tile size, not on the rasters. */
void cli_bound_gdal_cache(void);

/* 0 and *out set if s is a whole decimal integer (|v| <= 1e9) or number; else -1. */
int cli_parse_int(const char *s, int *out);
int cli_parse_double(const char *s, double *out);

/* Set by SIGINT, SIGTERM and SIGUSR1 (which mpirun passes on to the ranks)
 * once cli_catch_interrupts has run, instead of dying: long loops poll it and
 * stop cleanly, nothing half-written. A command may set it too (another MPI
 * rank was interrupted). */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_interrupts(void);

#endif
