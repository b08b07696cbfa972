/* recipe.h: batch recipes for `spynco run`, YAML files parsed with libyaml.
 *
 * A recipe holds up to three jobs, run in this order: `train` (the settings
 * of `spynco train`), `colorize` (inputs -> output folder, optionally
 * reprojected, clipped to an area of interest and mosaicked) and `eval`.
 * docs/recipes.md lists every key with its type and default.
 *
 * Parsing is strict and pure: unknown keys, wrong types, duplicate keys,
 * missing required keys and out-of-range values are errors reported as
 * "FILE:LINE:COLUMN: KEY: message" (1-based, at the offending key or value);
 * nothing is silently ignored. The parser touches neither the file system
 * (besides reading the recipe in recipe_load) nor GDAL: relative paths are
 * resolved against the recipe's folder but not checked; whoever uses them
 * (pipeline/batch.h) checks them and reports through recipe_error at the
 * marks kept here.
 *
 * Settings that the recipe leaves out keep "not given" values (NULL, 0, -1
 * or NAN, as noted per field) so that the defaults stay where the commands
 * define them.
 */
#ifndef SPYNCO_RECIPE_H
#define SPYNCO_RECIPE_H

#include <stddef.h>

typedef struct {
    int line, column; /* 1-based; 0: unknown */
} RecipeMark;

typedef struct {
    char *path;     /* resolved against the recipe's folder; NULL: not given */
    RecipeMark at;  /* where the value is written */
} RecipePath;

typedef struct {
    RecipePath *items;
    int count;
} RecipePaths;

typedef struct {
    int present;
    RecipeMark at;             /* the `colorize:` key */
    RecipePath model;          /* NULL: the default model */
    RecipePaths inputs;        /* required: files, globs, folders, list files, archives */
    RecipePath output;         /* required: the output folder */
    char *name;                /* output file name pattern; NULL: "{stem}_color.EXT", EXT the
                                  format's extension (tif for GTiff and COG) */
    RecipeMark name_at;
    char *format;              /* GDAL driver; NULL: GTiff */
    RecipeMark format_at;
    char **creation_options;   /* NULL-terminated NAME=VALUE list; NULL: none */
    int tile, threads, band;   /* 0: not given */
    int overviews;             /* bool */
    int has_scale;
    double scale[2];           /* min, max */
    char *t_srs;               /* NULL: keep each input's CRS */
    RecipeMark t_srs_at;
    char *resampling;          /* warp resampling, "bilinear" if not given */
    int has_aoi;
    double aoi[4];             /* west, south, east, north in degrees (EPSG:4326) */
    RecipeMark aoi_at;
    char *mosaic;              /* VRT file name in the output folder; NULL: no mosaic */
    RecipeMark mosaic_at;
} RecipeColorize;

typedef struct {
    int present;
    RecipeMark at;
    RecipePaths gray, color;   /* required */
    RecipePath out;            /* required: the training folder */
    RecipePath export_model;   /* release model written after training; NULL: none */
    RecipePath init;           /* start a new run from these weights; NULL: fresh */
    int gray_from_color, keep_epochs, keep_luminance; /* bools */
    int color_bands[3];        /* 0: not given */
    long crop, batch, steps, epochs, stop_after, checkpoint_every, threads; /* -1: not given */
    long F, K, R, nd;          /* -1: not given */
    long long seed;            /* -1: not given */
    int num_scales;            /* 0: not given */
    int scales[3];
    double lambda_a, lambda_b, lr; /* NAN: not given */
    double contours;           /* NAN: not given; 0: false; -1: true (the default weight); else the weight */
    int has_ht;
    double ht[3];
    char *name;                /* model name; NULL: not given */
} RecipeTrain;

typedef struct {
    int present;
    RecipeMark at;
    RecipePath model;          /* NULL: the default model */
    RecipePaths inputs;        /* required: real color images (files, folders, list files) */
    RecipePath json, csv, samples; /* NULL: not written */
    int keep_luminance;        /* -1: not given */
} RecipeEval;

typedef struct {
    char *file;                /* the recipe's name in messages */
    char *dir;                 /* folder that relative paths are resolved against */
    RecipeTrain train;
    RecipeColorize colorize;
    RecipeEval eval;
    void *pool;                /* every allocation above, freed by recipe_free */
} Recipe;

/* Parses text (len bytes, need not be NUL-terminated) named `file` in
 * messages, resolving relative paths against dir. 0, or -1 with
 * "file:line:column: ..." in err; r must be freed with recipe_free either way. */
int recipe_parse(Recipe *r, const char *file, const char *dir, const char *text, size_t len,
                 char *err, size_t err_size);
/* Reads and parses the recipe file at path; paths are relative to its folder. */
int recipe_load(Recipe *r, const char *path, char *err, size_t err_size);
void recipe_free(Recipe *r);

/* Formats "file:line:column: " + message into err (for checks made later,
 * at a mark kept in the recipe). */
void recipe_error(const Recipe *r, RecipeMark at, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The output file name for an input: the pattern's {stem} (file name without
 * its extension), {name} (file name), {parent} (folder or archive it is in)
 * and {index} (1-based position among count inputs, zero-padded) replaced.
 * -1 if it does not fit in out_size. */
int recipe_output_name(char *out, size_t out_size, const char *pattern, const char *input,
                       int index, int count);

#endif
