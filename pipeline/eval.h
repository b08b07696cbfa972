/* eval.h: how well a model colorizes real colour images, against the gray copy.
 *
 * For every colour image of the sources (io/sources.h: folders, list files,
 * rasters; R, G, B by colour interpretation, else bands 1-3; non-Byte data
 * mapped to 0..255 as `train` maps it):
 *  - gray = H_t(rgb) with the model's weights, rounded to 8 bits (ht_gray8:
 *    what `colorize` makes of an RGB raster, what a scan would give);
 *  - colorized = colorize_tiles on that gray from memory: the exact code path
 *    of `colorize` (tiles, halo, mirror padding, stitching, 8-bit rounding);
 *  - scores (pipeline/metrics.h) of the colorized image and of the baseline,
 *    the gray copy (gray in R, G and B), against the real colours.
 * The set's figures are means over images of the per-image MSE, SSIM and
 * PSNR (PSNR: the mean of per-image PSNR, not the PSNR of the mean MSE).
 * No-data pixels (mask, alpha, NaN) are left out of every figure.
 *
 * An image that cannot be evaluated (unreadable, gray, palette, smaller than
 * SSIM's 11x11 window, all no-data) is reported on stderr and counted as
 * failed; the others are still evaluated. A file in a folder that GDAL cannot
 * open at all is no image: passed over (a warning when verbose). Each image
 * is held in memory (8 bytes per pixel, 17 with samples_dir, plus
 * colorize's tile buffers).
 *
 * Outputs, each written to a temporary file and renamed when complete:
 * json_path (the figures, the model, the options, the failures), csv_path
 * (one row per evaluated image), and in samples_dir one PNG per image,
 * NNNN_<name>.png: gray | colorized | real, side by side.
 * Under mpirun (pipeline/dist.h) every rank calls eval_run: the images are
 * handed out dynamically, each rank writes the triptychs of its own, rank 0
 * gathers the scores, reports the failures and writes the files; every
 * rank returns rank 0's outcome (result and message).
 * All GDAL calls come from the calling thread.
 */
#ifndef SPYNCO_EVAL_H
#define SPYNCO_EVAL_H

#include <gdal.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>

typedef struct {
    const char *model_path;           /* NULL: default_model_path() */
    const char *const *sources;       /* folders, list files, images */
    int num_sources;
    int tile;                         /* 0: COLORIZE_DEFAULT_TILE (the figures do not depend on it) */
    int threads;                      /* 0: all cores */
    int keep_luminance;               /* the CLI's default is KEEP_LUMINANCE_DEFAULT */
    const char *json_path, *csv_path; /* NULL: not written */
    const char *samples_dir;          /* NULL: no triptychs; created if missing */
    int verbose;                      /* warnings about files passed over */
    GDALProgressFunc progress;        /* over the whole set, from the calling thread; may be NULL */
    void *progress_arg;
    const volatile sig_atomic_t *cancel; /* set (by a signal handler) to stop early; may be NULL */
} EvalOptions;

typedef struct {
    double mse;  /* 0..255 scale */
    double ssim; /* in % */
    double psnr; /* dB; +infinity if an image equals its reference */
} EvalScores;

typedef struct {
    int images, failed;           /* evaluated; could not be evaluated */
    EvalScores model, baseline;   /* means over the evaluated images */
    char model_path[PATH_MAX];
    char model_name[64];
    long step;                    /* the model's training step */
    int keep_luminance;
    double seconds;               /* wall time of the whole evaluation */
} EvalResult;

/* 0: every image evaluated; 1: some failed (figures over the others, the
 * failures listed in err and on stderr); -1: nothing evaluated or a fatal
 * error (model, sources, an output file; message in err). */
int eval_run(const EvalOptions *opt, EvalResult *out, char *err, size_t err_size);

/* The result as a small table (the command's stdout). */
void eval_print_table(FILE *f, const EvalResult *r);

#endif
