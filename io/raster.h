/* raster.h: GDAL rasters in and out of the colorizer.
 *
 * GraySource turns any raster GDAL opens into the generator's input: a gray
 * image on the 0..255 scale plus a validity mask, read window by window.
 *  - 1 band, or the band chosen with `band`: that band.
 *  - 3 or more bands (no `band`): R, G, B (by colour interpretation, else
 *    bands 1-3) through the model's H_t weights. For 8-bit input the gray
 *    value is rounded to an integer, as a scan would be, so colorizing an RGB
 *    file equals colorizing its 8-bit gray version.
 *  - Byte data is used as is; other types are mapped linearly from
 *    [scale_min, scale_max] to [0, 255] and clamped: the user's --scale, or by
 *    default the 2nd and 98th percentiles of the gray values, from one
 *    streaming pass over a decimated grid of at most ~1M pixels.
 *  - No data: the mask band (nodata value, alpha band or per-dataset mask) of
 *    every band used, and NaN. has_nodata says whether the output needs an
 *    alpha band (a declared mask, or a floating-point type).
 *
 * ColorWriter creates the colorized raster: 3 Byte bands (RGB) plus alpha
 * when the input has no-data, the input's size, geotransform and CRS (or
 * those of a window of it), and Spynco's metadata. It writes to a temporary
 * file beside OUTPUT and renames it only when everything, including the final
 * close, succeeded; formats without Create() support (COG, PNG, JPEG...) go
 * through a temporary GeoTIFF and CreateCopy. With a WarpSpec the finished
 * raster is reprojected by GDAL's warper (gdalwarp's library, PROJ
 * underneath) onto the given grid, with an alpha band for the area outside
 * the source, before it moves into place.
 *
 * All GDAL calls must come from one thread.
 */
#ifndef SPYNCO_RASTER_H
#define SPYNCO_RASTER_H

#include <gdal.h>
#include <stddef.h>
#include <stdint.h>

/* Sidecars, documents, archives and other files that are no images, by
 * their extension (.txt, .xml, .msk, .ovr, .zip, ...): folders skip them. */
int raster_unlikely_name(const char *name);

typedef struct {
    int band;               /* 1-based band to use as gray; 0: automatic */
    int has_scale;          /* use scale_min/max instead of percentiles */
    double scale_min, scale_max;
    float ht[3];            /* the model's H_t weights */
    int verbose;            /* log decisions (bands, scaling) to stderr */
} GrayOptions;

typedef struct {
    GDALDatasetH ds;
    char *path;
    int width, height;
    int num_bands;          /* 1 (gray) or 3 (RGB through H_t) */
    int bands[3];
    float ht[3];
    GDALDataType type;
    int round_gray;         /* 8-bit RGB: round H_t to integers */
    double scale_min, scale_max; /* raw gray -> 0..255 (0, 255 for Byte) */
    int has_nodata;
    int mask_per_dataset;
    float *raw;             /* read buffers, grown as needed */
    uint8_t *mask;
    float *window;          /* gray_source_read8's 0..255 values */
    size_t raw_cap, mask_cap, window_cap;
} GraySource;

/* H_t of one pixel: every gray made from colour is this sum, in this order. */
static inline float ht_weighted(const float w[3], float r, float g, float b) {
    return w[0] * r + w[1] * g + w[2] * b;
}
/* The gray a scan of 8-bit colour gives, as colorize makes it from a Byte RGB
 * raster: H_t rounded to an integer (half to even). rgb: R, G, B planes
 * `plane` apart; gray: count values. */
void ht_gray8(uint8_t *gray, const uint8_t *rgb, size_t plane, size_t count, const float w[3]);

int gray_source_open(GraySource *src, const char *path, const GrayOptions *opt, char *err,
                     size_t err_size);
/* gray_source_open for a dataset the caller opened (it can then tell an
 * unreadable file from an unsuitable one); the source owns ds from here on,
 * even on failure. rgb != NULL makes a colour source instead: three bands,
 * rgb[0..2] (1-based) or, all 0, R, G, B as gray_source_open picks them;
 * fewer than 3 bands is an error. Non-Byte colour is mapped by the
 * percentiles of its H_t gray, one scale for all three bands so that the
 * colour balance and H_t of the scaled colour stay those of the data. */
int gray_source_attach(GraySource *src, GDALDatasetH ds, const char *path, const int *rgb,
                       const GrayOptions *opt, char *err, size_t err_size);
/* Reads the window [x0, x0+w) x [y0, y0+h), which must lie inside the raster,
 * into gray (0..255) and valid (1 or 0), both w*h, row-major. */
int gray_source_read(GraySource *src, int x0, int y0, int w, int h, float *gray, uint8_t *valid,
                     char *err, size_t err_size);
/* The same window of a colour source (3 bands) as R, G, B planes of w*h
 * values on the 0..255 scale (the source's scaling, clamped); NaN is invalid. */
int gray_source_read_rgb(GraySource *src, int x0, int y0, int w, int h, float *rgb,
                         uint8_t *valid, char *err, size_t err_size);
/* The same window as 8-bit planes: `channels` 1 reads gray (gray_source_read),
 * 3 reads R, G, B (gray_source_read_rgb); planes `out_plane` apart, values
 * clamped to 0..255 and rounded (half to even), no-data 0. */
int gray_source_read8(GraySource *src, int channels, int x0, int y0, int w, int h, uint8_t *out,
                      size_t out_plane, uint8_t *valid, char *err, size_t err_size);
void gray_source_close(GraySource *src);

/* A reprojection: target CRS and grid. */
typedef struct {
    const char *t_srs;       /* anything OSRSetFromUserInput reads: EPSG:3857, WKT, PROJ string */
    const char *resampling;  /* gdalwarp -r: near, bilinear, cubic, ...; NULL: bilinear */
    double extent[4];        /* xmin, ymin, xmax, ymax in t_srs */
    int width, height;       /* the grid's size; 0: GDAL chooses extent and size */
} WarpSpec;

/* Fills spec's extent, width and height with the grid GDAL's warper suggests
 * for a width x height raster with geotransform gt in the CRS src_wkt
 * reprojected to spec->t_srs (as gdalwarp without -te/-tr/-ts would), and
 * its CRS as WKT into dst_wkt (caller frees with CPLFree; may be NULL). */
int warp_spec_suggest(WarpSpec *spec, int width, int height, const double gt[6],
                      const char *src_wkt, char **dst_wkt, char *err, size_t err_size);

typedef struct {
    GDALDatasetH ds;
    char *final_path, *tmp_path, *warp_path, *copy_tmp_path;
    GDALDriverH final_driver; /* CreateCopy at the end; NULL when written directly */
    GDALDriverH warp_driver;  /* format the warper writes; NULL: no reprojection */
    char **warp_args;         /* gdalwarp's options */
    int bands, width, height;
    int overviews;
    int whole_blocks; /* every write so far covered whole blocks of the file */
    char **final_options;
} ColorWriter;

typedef struct {
    const char *format;           /* GDAL driver short name; NULL: GTiff */
    char **create_options;        /* -co NAME=VALUE, override the defaults */
    int overviews;                /* build overviews (always for COG) */
    const char *const *metadata;  /* NAME=VALUE items for the dataset */
    const int *window;            /* x0, y0, width, height of the source; NULL: all of it */
    const WarpSpec *warp;         /* reproject the finished raster; NULL: the source's grid */
    int threads;                  /* GeoTIFF/COG blocks compressed by this many of GDAL's
                                     threads (NUM_THREADS, unless -co sets it); 0: all cores */
} WriterOptions;

int color_writer_create(ColorWriter *w, const char *path, const GraySource *src,
                        const WriterOptions *opt, char *err, size_t err_size);
/* rgba: band-sequential, `bands` planes of w*h bytes. */
int color_writer_write(ColorWriter *w, int x0, int y0, int width, int height, const uint8_t *rgba,
                       char *err, size_t err_size);
/* Builds overviews if asked, closes, reprojects and converts (CreateCopy) if
 * needed and renames into place. Progress of the reprojection and conversion
 * goes to progress (may be NULL; returning FALSE cancels). */
int color_writer_finish(ColorWriter *w, GDALProgressFunc progress, void *progress_arg, char *err,
                        size_t err_size);
/* Closes and deletes everything written; OUTPUT is left untouched. */
void color_writer_abort(ColorWriter *w);

#endif
