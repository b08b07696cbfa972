/* batch.h: a recipe's colorize job: plan, run input by input, mosaic, summary.
 *
 * batch_plan expands the inputs (files; globs; folders, recursively; list
 * files .txt/.lst/.list, one entry per line relative to the list; .zip, .tar,
 * .tar.gz/.tgz archives, every raster inside through /vsizip/ or /vsitar/),
 * names the outputs, opens every input with GDAL and decides what to do:
 *   todo     colorize it (with a note saying why when an output was there)
 *   skipped  outside the area of interest, or not georeferenced while there is one
 *   failed   not a raster GDAL reads, or no CRS to reproject from
 * and the grid each output will have: the input's, or the window of it that
 * covers the area of interest (corner moved down to multiples of 4, so the
 * pixels equal those of the whole input's output), reprojected onto the grid
 * GDAL's warper suggests when t_srs is given. Recipe mistakes (a missing
 * input, two inputs with one output name, a bad t_srs or format, a mosaic of
 * outputs in different CRSs) are errors at the recipe's FILE:LINE:COLUMN.
 *
 * batch_check_journal then compares each todo item with the journal
 * (journal.h) and turns it into `kept` if its output is complete and valid:
 * the journal says done with the same settings fingerprint (batch_fingerprint:
 * model file, band, scale, keep_luminance, t_srs, resampling, format,
 * creation options, overviews), and
 * the file has the recorded byte size and CRC-32 and, opened with GDAL, the
 * planned size, geotransform and CRS and the recorded bands.
 *
 * Running: batch_lock keeps other runs out of the output folder; the caller
 * hands out the todo items (pipeline/cmd_run.c: through a DistQueue, so the
 * processes of a distributed run share them), batch_run_input colorizes one
 * (colorize_file) and records it in the journal; batch_collect then reads
 * this run's results back from the journal, on one process. The journal is
 * the only link between inputs.
 * All GDAL calls come from the calling thread.
 */
#ifndef SPYNCO_BATCH_H
#define SPYNCO_BATCH_H

#include <signal.h>
#include <stdio.h>

#include "io/raster.h"
#include "io/recipe.h"

typedef enum {
    ITEM_TODO,        /* to colorize; after a run: not reached */
    ITEM_KEPT,        /* complete and valid from an earlier run */
    ITEM_SKIPPED,     /* nothing to do */
    ITEM_FAILED,
    ITEM_DONE,        /* colorized by this run */
    ITEM_INTERRUPTED, /* stopped by a signal */
} ItemStatus;

typedef struct {
    char *input;           /* path for GDAL */
    char *display;         /* shorter, for tables: relative to the recipe's folder */
    char *output_name;     /* file name in the output folder */
    char *output;          /* full path */
    RecipeMark from;       /* the inputs entry it came from */
    ItemStatus status;
    char note[512];        /* why skipped, failed or colorized again */
    double seconds;
    int window[4];         /* input pixels colorized: x0, y0, width, height; width 0: all */
    int has_warp;
    WarpSpec warp;         /* the output grid when reprojecting (t_srs points into the recipe) */
    /* the output as planned */
    int width, height, has_geotransform;
    double geotransform[6];
    char *wkt;             /* CRS; "" if none */
    int bands;             /* 3 or 4, known once written (journal) */
} BatchItem;

typedef struct {
    const Recipe *recipe;
    const RecipeColorize *job;
    char *output_dir, *journal_dir;
    char *model_path;         /* the recipe's model or the default one */
    char *mosaic_path;        /* NULL: no mosaic */
    char fingerprint[20];     /* of the settings and the model; set by batch_check_journal */
    char run_id[64];          /* written into this run's journal entries: batch_collect
                                 reads back those (the processes of one run share it) */
    BatchItem *items;
    int count;
} BatchPlan;

typedef struct {
    int threads;              /* compute threads; 0: the recipe's or all cores */
    int quiet;
    const volatile sig_atomic_t *cancel; /* set by a signal handler to stop */
    void (*poll)(void *arg);  /* ColorizeOptions.poll: called between tiles; may be NULL */
    void *poll_arg;
} BatchOptions;

/* Expands, names and opens the inputs. -1 with "FILE:LINE:COLUMN: ..." in err
 * for a mistake in the recipe. model_optional: the model may not exist yet
 * (another job of the recipe writes it). batch_free in every case. */
int batch_plan(BatchPlan *plan, const Recipe *r, int model_optional, char *err, size_t err_size);
/* The fingerprint of the settings and the model file (its checksum), which
 * the journal records; -1 if the model cannot be read. */
int batch_fingerprint(BatchPlan *plan, char *err, size_t err_size);
/* Marks complete, valid outputs as kept (after batch_fingerprint). */
void batch_check_journal(BatchPlan *plan);
/* What a run would do, one line per input (for --dry-run). */
void batch_print_plan(const BatchPlan *plan, FILE *out);
/* Creates the output and journal folders. */
int batch_prepare(const BatchPlan *plan, char *err, size_t err_size);
/* Takes the output folder for this run: an exclusive lock (flock) on
 * OUTPUT/.spynco-lock, which names the holder (process and host). The
 * kernel releases it however the process ends. Returns the descriptor for
 * batch_unlock, or -1 with a message naming the folder and the process
 * holding it (another run) or the system's reason. */
int batch_lock(const BatchPlan *plan, char *err, size_t err_size);
void batch_unlock(int lock);
/* Colorizes item i and records the outcome in the journal; returns its status
 * (ITEM_DONE, ITEM_FAILED or ITEM_INTERRUPTED), the message in err. */
ItemStatus batch_run_input(const BatchPlan *plan, int i, const BatchOptions *opt, char *err,
                           size_t err_size);
/* Reads the outcome of this run's items from the journal into the plan. */
void batch_collect(BatchPlan *plan);
/* Writes the mosaic VRT of every output there is (atomically): 0 when written
 * or not asked for, 1 when there is no output to mosaic, -1 on failure. */
int batch_mosaic(BatchPlan *plan, const BatchOptions *opt, char *err, size_t err_size);
/* The table: input, status, seconds, output, note; then the totals. */
void batch_print_summary(const BatchPlan *plan, FILE *out);
/* The job's keep_luminance, KEEP_LUMINANCE_DEFAULT when the recipe leaves it out. */
int batch_keep_luminance(const RecipeColorize *job);
/* mkdir -p: the folder and its parents; -1 with errno set. */
int batch_make_folders(const char *path);
/* Inputs that failed or were interrupted. */
int batch_failures(const BatchPlan *plan);
void batch_free(BatchPlan *plan);

#endif
