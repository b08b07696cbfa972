/* colorize.h: colorize a raster of any size, tile by tile, seamlessly.
 *
 * Tiles: output tiles of tile x tile pixels whose origins are multiples of
 * the tile size (itself a multiple of the network's total stride, 4), each
 * computed on a window extended by a halo of the receptive-field radius
 * (rounded up to the stride). Outside the raster the window is mirror-padded
 * (reflection without repeating the edge pixel). Every output pixel thus sees
 * exactly the same input whatever the tile size, and the network's results
 * do not depend on position: the output is bit-identical for any tile size.
 * No-data pixels enter the network as mid-gray and leave with alpha 0 and
 * color 0. With keep_luminance, each window's output is corrected so that
 * its H_t equals the input gray (nn/infer.h), before the 8-bit conversion.
 *
 * Threads: the calling (main) thread does all reading, writing and progress
 * reporting; one compute thread runs the generator on a tile with OpenMP
 * inside every layer, while the main thread reads the next tile and writes
 * the previous one. Memory: two tiles' buffers plus the network's working
 * set for one window, independent of the raster's size.
 *
 * A region of the raster can be colorized alone (an area of interest): its
 * tiles start at the region's corner and their halos read the real pixels
 * around it, so with the corner on the stride grid (multiples of 4) the
 * result equals that part of the whole raster's output, bit for bit.
 *
 * colorize_tiles is the engine, fed by callbacks (a GDAL raster in
 * colorize_file; images in memory for `eval`).
 */
#ifndef SPYNCO_COLORIZE_H
#define SPYNCO_COLORIZE_H

#include <gdal.h>
#include <signal.h>
#include <stdint.h>

#include "io/raster.h"
#include "nn/infer.h"

/* Large, because each window carries a halo of the receptive field on every
 * side: (1 + 2*60/tile)^2 of the work, 1.13x at 2048 against 1.27x at 1024. */
#define COLORIZE_DEFAULT_TILE 2048
/* Whether `colorize` and `eval` keep the input's luminance (luminance_lock in
 * nn/ops.h) unless told otherwise: on, because it measures better on every
 * test set (docs/results.md). */
#define KEEP_LUMINANCE_DEFAULT 1

/* Reads gray (0..255) and validity of a window inside the raster. */
typedef int (*TileReader)(void *ctx, int x0, int y0, int w, int h, float *gray, uint8_t *valid,
                          char *err, size_t err_size);
/* Receives `bands` band-sequential planes (RGB or RGBA) of a finished window,
 * at x0, y0 relative to the region's corner. */
typedef int (*TileWriter)(void *ctx, int x0, int y0, int w, int h, const uint8_t *pixels,
                          char *err, size_t err_size);

typedef struct {
    int tile;         /* output tile size, multiple of 4 */
    int threads;      /* OpenMP threads of the compute thread; 0: all cores */
    int bands;        /* 3 (RGB) or 4 (RGBA: alpha from validity) */
    int keep_luminance; /* H_t of the output = the input gray (before clamping) */
    GDALProgressFunc progress; /* called from the calling thread; may be NULL */
    void *progress_arg;
    const volatile sig_atomic_t *cancel; /* set (by a signal handler) to stop early; may be NULL */
    int region[4];    /* x0, y0 (multiples of 4), width, height; width 0: the whole raster */
} TileOptions;

int colorize_tiles(const InferModel *model, int width, int height, TileReader read, void *read_ctx,
                   TileWriter write, void *write_ctx, const TileOptions *opt, char *err,
                   size_t err_size);

typedef struct {
    const char *model_path;
    int tile, threads, quiet;
    int keep_luminance;   /* the CLI's default is KEEP_LUMINANCE_DEFAULT */
    int band;
    int has_scale;
    double scale_min, scale_max;
    const char *format;
    char **create_options;
    int overviews;
    const volatile sig_atomic_t *cancel;
    int window[4];          /* x0, y0 (multiples of 4), width, height; width 0: all of INPUT */
    const WarpSpec *warp;   /* reproject the result (raster.h); NULL: INPUT's grid */
    /* Called from the calling thread after every tile and during the last
     * stages, quiet or not; may be NULL. Rank 0 of a distributed run answers
     * the other ranks' requests there (dist_queue_poll). */
    void (*poll)(void *arg);
    void *poll_arg;
} ColorizeOptions;

/* Colorizes INPUT (or a window of it) into OUTPUT, reprojected if asked
 * (nothing is left at OUTPUT on failure). */
int colorize_file(const char *input, const char *output, const ColorizeOptions *opt, char *err,
                  size_t err_size);

/* The model `colorize` uses without --model: $SPYNCO_MODEL, else
 * models/spynco-default.h5 beside the program (../models or ../share/spynco),
 * else in the source tree it was built from. NULL if none exists. */
const char *default_model_path(void);
/* given (a --model) if set, else default_model_path(); NULL with the
 * message in err if neither is there (colorize's and eval's words). */
const char *model_path_or_default(const char *given, char *err, size_t err_size);

#endif
