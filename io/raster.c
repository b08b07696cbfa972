#include "io/raster.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal_alg.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PERCENTILE_SAMPLES (1 << 20)

static const char *gdal_reason(void) {
    const char *msg = CPLGetLastErrorMsg();
    return msg && *msg ? msg : "no details from GDAL";
}

/* ---- reading -------------------------------------------------------------- */

int raster_unlikely_name(const char *name) {
    static const char *const ext[] = {"txt", "md",   "json", "xml", "msk",  "ovr", "aux",
                                      "prj", "tfw",  "tifw", "jgw", "pgw",  "gfw", "wld",
                                      "csv", "yaml", "yml",  "html", "pdf", "py",  "sh",
                                      "log", "geojson", "shp", "shx", "dbf", "cpg", "qix",
                                      "lst", "list", "zip",  "gz",  "tar", "tgz"};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot + 1, ext[i])) return 1;
    return 0;
}


static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    void *p = realloc(*buf, bytes);
    if (!p) return -1;
    *buf = p;
    *cap = bytes;
    return 0;
}

/* R, G, B by colour interpretation, else bands 1, 2, 3. */
static void find_rgb(GDALDatasetH ds, int bands[3]) {
    int n = GDALGetRasterCount(ds), found[3] = {0, 0, 0};
    for (int b = 1; b <= n; b++) {
        GDALColorInterp ci = GDALGetRasterColorInterpretation(GDALGetRasterBand(ds, b));
        int slot = ci == GCI_RedBand ? 0 : ci == GCI_GreenBand ? 1 : ci == GCI_BlueBand ? 2 : -1;
        if (slot >= 0 && !found[slot]) found[slot] = b;
    }
    for (int i = 0; i < 3; i++) bands[i] = (found[0] && found[1] && found[2]) ? found[i] : i + 1;
}

/* The source's bands (one plane each, in s->raw) and validity of a window,
 * read at buffer size (bw, bh): equal to (w, h) for a normal read, smaller
 * for a decimated one. */
static int read_raw_bands(GraySource *s, int x0, int y0, int w, int h, int bw, int bh,
                          uint8_t *valid, char *err, size_t n) {
    size_t count = (size_t)bw * bh;
    if (grow((void **)&s->raw, &s->raw_cap, count * s->num_bands * sizeof(float)) ||
        grow((void **)&s->mask, &s->mask_cap, count)) {
        snprintf(err, n, "%s: out of memory reading a %dx%d window", s->path, w, h);
        return -1;
    }
    CPLErrorReset();
    if (GDALDatasetRasterIO(s->ds, GF_Read, x0, y0, w, h, s->raw, bw, bh, GDT_Float32, s->num_bands,
                            s->bands, 0, 0, 0) != CE_None) {
        snprintf(err, n, "%s: cannot read pixels %d,%d %dx%d: %s", s->path, x0, y0, w, h,
                 gdal_reason());
        return -1;
    }
    for (size_t i = 0; i < count; i++) valid[i] = 1;
    if (s->has_nodata) {
        /* a per-dataset mask (alpha) is shared by every band: read it once */
        int mask_reads = s->mask_per_dataset ? 1 : s->num_bands;
        for (int b = 0; b < mask_reads; b++) {
            GDALRasterBandH mask = GDALGetMaskBand(GDALGetRasterBand(s->ds, s->bands[b]));
            if (GDALRasterIO(mask, GF_Read, x0, y0, w, h, s->mask, bw, bh, GDT_Byte, 0, 0) !=
                CE_None) {
                snprintf(err, n, "%s: cannot read the no-data mask: %s", s->path, gdal_reason());
                return -1;
            }
            for (size_t i = 0; i < count; i++) valid[i] &= s->mask[i] != 0;
        }
    }
    return 0;
}

/* Raw gray (before scaling) and validity of a window, as read_raw_bands. */
static int read_raw_gray(GraySource *s, int x0, int y0, int w, int h, int bw, int bh, float *gray,
                         uint8_t *valid, char *err, size_t n) {
    if (read_raw_bands(s, x0, y0, w, h, bw, bh, valid, err, n)) return -1;
    size_t count = (size_t)bw * bh;
    const float *r = s->raw, *g = r + count, *b = g + count;
    for (size_t i = 0; i < count; i++) {
        float v = s->num_bands == 1 ? r[i] : ht_weighted(s->ht, r[i], g[i], b[i]);
        if (isnan(v)) valid[i] = 0;
        gray[i] = s->round_gray ? rintf(v) : v;
    }
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 2nd and 98th percentiles of the valid gray values on a decimated grid. */
static int percentile_scale(GraySource *s, int verbose, char *err, size_t n) {
    double step = sqrt((double)s->width * s->height / PERCENTILE_SAMPLES);
    if (step < 1.0) step = 1.0;
    int bw = (int)ceil(s->width / step), bh = (int)ceil(s->height / step);
    size_t count = (size_t)bw * bh;
    float *gray = malloc(count * sizeof(float));
    uint8_t *valid = malloc(count);
    if (!gray || !valid) {
        free(gray), free(valid);
        snprintf(err, n, "%s: out of memory computing percentiles", s->path);
        return -1;
    }
    int rc = read_raw_gray(s, 0, 0, s->width, s->height, bw, bh, gray, valid, err, n);
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (valid[i]) gray[kept++] = gray[i];
    if (rc == 0 && kept == 0) {
        snprintf(err, n, "%s: every pixel is no-data; nothing to colorize", s->path);
        rc = -1;
    }
    if (rc == 0) {
        qsort(gray, kept, sizeof(float), cmp_float);
        s->scale_min = gray[(size_t)(0.02 * (kept - 1))];
        s->scale_max = gray[(size_t)(0.98 * (kept - 1))];
        if (s->scale_max <= s->scale_min) s->scale_max = s->scale_min + 1.0;
        if (verbose)
            fprintf(stderr, "scaling %s gray values from their 2nd-98th percentiles %.6g..%.6g "
                            "(of %zu sampled pixels) to 0..255; use --scale MIN MAX to override\n",
                    GDALGetDataTypeName(s->type), s->scale_min, s->scale_max, kept);
    }
    free(gray), free(valid);
    return rc;
}

int gray_source_open(GraySource *s, const char *path, const GrayOptions *opt, char *err,
                     size_t n) {
    memset(s, 0, sizeof *s);
    GDALAllRegister();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        if (access(path, F_OK) != 0 && strncmp(path, "/vsi", 4) != 0)
            snprintf(err, n, "%s: no such file", path);
        else
            snprintf(err, n, "%s: not a raster GDAL can read (%s)", path, gdal_reason());
        return -1;
    }
    return gray_source_attach(s, ds, path, NULL, opt, err, n);
}

int gray_source_attach(GraySource *s, GDALDatasetH ds, const char *path, const int *rgb,
                       const GrayOptions *opt, char *err, size_t n) {
    memset(s, 0, sizeof *s);
    s->ds = ds;
    s->path = strdup(path);
    s->width = GDALGetRasterXSize(s->ds);
    s->height = GDALGetRasterYSize(s->ds);
    int count = GDALGetRasterCount(s->ds);
    if (count < 1) {
        snprintf(err, n, "%s: the dataset has no raster bands", path);
        gray_source_close(s);
        return -1;
    }
    memcpy(s->ht, opt->ht, sizeof s->ht);
    if (rgb) {
        if (count < 3) {
            snprintf(err, n, "%s: %d band%s, but a colour image needs 3 (R, G, B)", path, count,
                     count > 1 ? "s" : "");
            gray_source_close(s);
            return -1;
        }
        if (rgb[0] || rgb[1] || rgb[2]) {
            for (int i = 0; i < 3; i++)
                if (rgb[i] < 1 || rgb[i] > count) {
                    snprintf(err, n, "%s: colour bands %d,%d,%d, but the raster has bands 1-%d",
                             path, rgb[0], rgb[1], rgb[2], count);
                    gray_source_close(s);
                    return -1;
                }
            memcpy(s->bands, rgb, sizeof s->bands);
        } else {
            find_rgb(s->ds, s->bands);
        }
        s->num_bands = 3;
    } else if (opt->band) {
        if (opt->band > count) {
            snprintf(err, n, "%s: -b %d, but the raster has %d band%s", path, opt->band, count,
                     count > 1 ? "s" : "");
            gray_source_close(s);
            return -1;
        }
        s->num_bands = 1, s->bands[0] = opt->band;
    } else if (count >= 3) {
        s->num_bands = 3;
        find_rgb(s->ds, s->bands);
    } else {
        s->num_bands = 1, s->bands[0] = 1;
    }
    s->type = GDALGetRasterDataType(GDALGetRasterBand(s->ds, s->bands[0]));
    int flags = GDALGetMaskFlags(GDALGetRasterBand(s->ds, s->bands[0]));
    s->mask_per_dataset = (flags & GMF_PER_DATASET) != 0;
    s->has_nodata = !(flags & GMF_ALL_VALID);
    for (int b = 1; b < s->num_bands; b++)
        if (!(GDALGetMaskFlags(GDALGetRasterBand(s->ds, s->bands[b])) & GMF_ALL_VALID))
            s->has_nodata = 1;
    int is_float = GDALDataTypeIsFloating(s->type);
    int is_byte = s->type == GDT_Byte;
    s->round_gray = is_byte && s->num_bands == 3;
    if (opt->verbose) {
        if (rgb)
            fprintf(stderr, "colour from bands %d,%d,%d as R,G,B\n", s->bands[0], s->bands[1],
                    s->bands[2]);
        else if (s->num_bands == 3)
            fprintf(stderr, "gray from bands %d,%d,%d as R,G,B through H_t (%.4g, %.4g, %.4g)%s\n",
                    s->bands[0], s->bands[1], s->bands[2], s->ht[0], s->ht[1], s->ht[2],
                    s->round_gray ? ", rounded to 8 bits" : "");
        else
            fprintf(stderr, "gray from band %d\n", s->bands[0]);
    }
    if (opt->has_scale) {
        if (!(opt->scale_max > opt->scale_min)) {
            snprintf(err, n, "--scale MIN MAX needs MIN < MAX (got %g %g)", opt->scale_min,
                     opt->scale_max);
            gray_source_close(s);
            return -1;
        }
        s->scale_min = opt->scale_min, s->scale_max = opt->scale_max;
    } else if (is_byte) {
        s->scale_min = 0.0, s->scale_max = 255.0;
    } else if (percentile_scale(s, opt->verbose, err, n)) {
        gray_source_close(s);
        return -1;
    }
    /* NaN can appear in any float raster: the output then needs alpha too. */
    if (is_float) s->has_nodata = 1;
    return 0;
}

int gray_source_read(GraySource *s, int x0, int y0, int w, int h, float *gray, uint8_t *valid,
                     char *err, size_t n) {
    if (read_raw_gray(s, x0, y0, w, h, w, h, gray, valid, err, n)) return -1;
    size_t count = (size_t)w * h;
    if (s->scale_min == 0.0 && s->scale_max == 255.0) return 0;
    float lo = (float)s->scale_min, k = (float)(255.0 / (s->scale_max - s->scale_min));
    for (size_t i = 0; i < count; i++) {
        float v = (gray[i] - lo) * k;
        gray[i] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
    }
    return 0;
}

int gray_source_read_rgb(GraySource *s, int x0, int y0, int w, int h, float *rgb, uint8_t *valid,
                         char *err, size_t n) {
    if (s->num_bands != 3) {
        snprintf(err, n, "%s: not read as a colour image", s->path);
        return -1;
    }
    if (read_raw_bands(s, x0, y0, w, h, w, h, valid, err, n)) return -1;
    size_t count = (size_t)w * h;
    float lo = (float)s->scale_min, k = (float)(255.0 / (s->scale_max - s->scale_min));
    for (int c = 0; c < 3; c++) {
        const float *raw = s->raw + c * count;
        float *out = rgb + c * count;
        for (size_t i = 0; i < count; i++) {
            float v = (raw[i] - lo) * k;
            if (isnan(v)) valid[i] = 0, v = 0.0f;
            out[i] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
        }
    }
    return 0;
}

int gray_source_read8(GraySource *s, int channels, int x0, int y0, int w, int h, uint8_t *out,
                      size_t out_plane, uint8_t *valid, char *err, size_t n) {
    size_t count = (size_t)w * h;
    if (grow((void **)&s->window, &s->window_cap, count * channels * sizeof(float))) {
        snprintf(err, n, "%s: out of memory reading a %dx%d window", s->path, w, h);
        return -1;
    }
    if (channels == 3 ? gray_source_read_rgb(s, x0, y0, w, h, s->window, valid, err, n)
                      : gray_source_read(s, x0, y0, w, h, s->window, valid, err, n))
        return -1;
    for (int c = 0; c < channels; c++)
        for (size_t i = 0; i < count; i++) {
            float v = s->window[c * count + i]; /* NaN where invalid */
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            out[c * out_plane + i] = valid[i] ? (uint8_t)rintf(v) : 0;
        }
    return 0;
}

void ht_gray8(uint8_t *gray, const uint8_t *rgb, size_t plane, size_t count, const float w[3]) {
    const uint8_t *r = rgb, *g = rgb + plane, *b = rgb + 2 * plane;
    for (size_t i = 0; i < count; i++) {
        float v = rintf(ht_weighted(w, r[i], g[i], b[i]));
        gray[i] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
}

void gray_source_close(GraySource *s) {
    if (s->ds) GDALClose(s->ds);
    free(s->path);
    free(s->raw);
    free(s->mask);
    free(s->window);
    memset(s, 0, sizeof *s);
}

/* ---- writing -------------------------------------------------------------- */

static char *sibling_path(const char *path, const char *suffix) {
    char *copy1 = strdup(path), *copy2 = strdup(path);
    const char *dir = dirname(copy1), *base = basename(copy2);
    size_t len = strlen(dir) + strlen(base) + strlen(suffix) + 32;
    char *out = malloc(len);
    snprintf(out, len, "%s/.%s.tmp-%ld%s", dir, base, (long)getpid(), suffix);
    free(copy1), free(copy2);
    return out;
}

/* Compressing blocks in GDAL's worker threads keeps the write of the last
 * tiles, when nothing else is left to do, from running on one core. */
static char **with_threads(char **o, int threads) {
    char value[16];
    snprintf(value, sizeof value, "%d", threads);
    return CSLSetNameValue(o, "NUM_THREADS", threads > 0 ? value : "ALL_CPUS");
}

/* DEFLATE's level in the files colorize writes: 3 compresses 2.5x faster
 * than GDAL's default 6, for files about 3% larger (docs/performance.md) */
#define DEFLATE_LEVEL "3"

static char **default_gtiff_options(int bands, int threads) {
    char **o = with_threads(NULL, threads);
    o = CSLSetNameValue(o, "TILED", "YES");
    o = CSLSetNameValue(o, "BLOCKXSIZE", "512");
    o = CSLSetNameValue(o, "BLOCKYSIZE", "512");
    o = CSLSetNameValue(o, "COMPRESS", "DEFLATE");
    o = CSLSetNameValue(o, "PREDICTOR", "2");
    o = CSLSetNameValue(o, "ZLEVEL", DEFLATE_LEVEL); /* GTiff's ZLEVEL is DEFLATE's only */
    o = CSLSetNameValue(o, "BIGTIFF", "IF_SAFER");
    o = CSLSetNameValue(o, "PHOTOMETRIC", "RGB");
    if (bands == 4) o = CSLSetNameValue(o, "ALPHA", "UNASSOCIATED");
    return o;
}

static char **merge_options(char **base, char **user) {
    for (int i = 0; user && user[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(user[i], &key);
        if (key && value) base = CSLSetNameValue(base, key, value);
        CPLFree(key);
    }
    return base;
}

static int is_gtiff(GDALDriverH d) { return d && d == GDALGetDriverByName("GTiff"); }

int warp_spec_suggest(WarpSpec *spec, int width, int height, const double gt[6],
                      const char *src_wkt, char **dst_wkt, char *err, size_t n) {
    GDALAllRegister();
    if (dst_wkt) *dst_wkt = NULL;
    if (!src_wkt || !*src_wkt) {
        snprintf(err, n, "the raster has no CRS: it cannot be reprojected");
        return -1;
    }
    OGRSpatialReferenceH dst = OSRNewSpatialReference(NULL);
    char *wkt = NULL;
    CPLErrorReset();
    if (OSRSetFromUserInput(dst, spec->t_srs) != OGRERR_NONE || OSRExportToWkt(dst, &wkt) != OGRERR_NONE) {
        snprintf(err, n, "t_srs '%s': not a CRS GDAL knows (%s)", spec->t_srs, gdal_reason());
        OSRDestroySpatialReference(dst);
        CPLFree(wkt);
        return -1;
    }
    OSRDestroySpatialReference(dst);
    /* a band-less in-memory raster carries the grid for the transformer */
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("MEM"), "", width, height, 0, GDT_Byte, NULL);
    void *transform = NULL;
    int rc = -1;
    if (ds && GDALSetGeoTransform(ds, (double *)gt) == CE_None &&
        GDALSetProjection(ds, src_wkt) == CE_None) {
        char **to = CSLSetNameValue(NULL, "DST_SRS", wkt);
        transform = GDALCreateGenImgProjTransformer2(ds, NULL, to);
        CSLDestroy(to);
    }
    double out_gt[6], extent[4];
    int w = 0, h = 0;
    if (transform && GDALSuggestedWarpOutput2(ds, GDALGenImgProjTransform, transform, out_gt, &w,
                                              &h, extent, 0) == CE_None && w > 0 && h > 0) {
        spec->extent[0] = out_gt[0];
        spec->extent[1] = out_gt[3] + h * out_gt[5];
        spec->extent[2] = out_gt[0] + w * out_gt[1];
        spec->extent[3] = out_gt[3];
        spec->width = w, spec->height = h;
        rc = 0;
    } else {
        snprintf(err, n, "cannot reproject to '%s': %s", spec->t_srs, gdal_reason());
    }
    if (transform) GDALDestroyGenImgProjTransformer(transform);
    if (ds) GDALClose(ds);
    if (rc == 0 && dst_wkt) *dst_wkt = wkt;
    else CPLFree(wkt);
    return rc;
}

/* gdalwarp's options for the writer's reprojection. */
static char **warp_arguments(const WarpSpec *spec, const char *format, char **create_options,
                             int add_alpha) {
    char **a = NULL, buf[64];
    a = CSLAddString(a, "-of");
    a = CSLAddString(a, format);
    a = CSLAddString(a, "-t_srs");
    a = CSLAddString(a, spec->t_srs);
    a = CSLAddString(a, "-r");
    a = CSLAddString(a, spec->resampling ? spec->resampling : "bilinear");
    if (spec->width > 0 && spec->height > 0) {
        a = CSLAddString(a, "-te");
        for (int i = 0; i < 4; i++) {
            snprintf(buf, sizeof buf, "%.17g", spec->extent[i]);
            a = CSLAddString(a, buf);
        }
        a = CSLAddString(a, "-ts");
        snprintf(buf, sizeof buf, "%d", spec->width);
        a = CSLAddString(a, buf);
        snprintf(buf, sizeof buf, "%d", spec->height);
        a = CSLAddString(a, buf);
    }
    /* an RGBA source brings its alpha along; an RGB one gets one for the area outside it */
    if (add_alpha) a = CSLAddString(a, "-dstalpha");
    for (int i = 0; create_options && create_options[i]; i++) {
        a = CSLAddString(a, "-co");
        a = CSLAddString(a, create_options[i]);
    }
    return a;
}

int color_writer_create(ColorWriter *w, const char *path, const GraySource *src,
                        const WriterOptions *opt, char *err, size_t n) {
    memset(w, 0, sizeof *w);
    GDALAllRegister();
    const char *format = opt->format ? opt->format : "GTiff";
    GDALDriverH driver = GDALGetDriverByName(format), gtiff = GDALGetDriverByName("GTiff");
    if (!driver || !GDALGetMetadataItem(driver, GDAL_DCAP_RASTER, NULL)) {
        snprintf(err, n, "-of %s: not a raster format GDAL knows (see gdalinfo --formats)", format);
        return -1;
    }
    int direct = GDALGetMetadataItem(driver, GDAL_DCAP_CREATE, NULL) != NULL;
    int is_cog = !strcmp(GDALGetDriverShortName(driver), "COG");
    if (!direct && !GDALGetMetadataItem(driver, GDAL_DCAP_CREATECOPY, NULL)) {
        snprintf(err, n, "-of %s: GDAL cannot write this format", format);
        return -1;
    }
    const int *win = opt->window;
    if (win && (win[0] < 0 || win[1] < 0 || win[2] < 1 || win[3] < 1 ||
                win[0] + win[2] > src->width || win[1] + win[3] > src->height)) {
        snprintf(err, n, "%s: window %d,%d %dx%d does not lie inside the %dx%d raster", path,
                 win[0], win[1], win[2], win[3], src->width, src->height);
        return -1;
    }
    w->bands = src->has_nodata ? 4 : 3;
    w->width = win ? win[2] : src->width, w->height = win ? win[3] : src->height;
    w->overviews = opt->overviews;
    w->whole_blocks = 1;
    w->final_path = strdup(path);
    /* Stages: create (tmp_path) -> reproject (warp_path) -> CreateCopy (copy_tmp_path)
     * -> rename. The creating stage writes the final format only when it is the last. */
    char **final_options = NULL;
    if (is_cog) {
        final_options = with_threads(final_options, opt->threads);
        final_options = CSLSetNameValue(final_options, "COMPRESS", "DEFLATE");
        final_options = CSLSetNameValue(final_options, "PREDICTOR", "YES");
        /* COG's LEVEL is any codec's: set only for the default DEFLATE */
        if (!CSLFetchNameValue(opt->create_options, "COMPRESS"))
            final_options = CSLSetNameValue(final_options, "LEVEL", DEFLATE_LEVEL);
        final_options = CSLSetNameValue(final_options, "BIGTIFF", "IF_SAFER");
    } else if (is_gtiff(driver)) {
        final_options = default_gtiff_options(opt->warp ? 4 : w->bands, opt->threads);
    }
    final_options = merge_options(final_options, opt->create_options);
    int create_is_last = direct && !opt->warp;
    GDALDriverH create_driver = create_is_last ? driver : gtiff;
    if (opt->warp) {
        /* the warper writes COG itself; other formats without Create() get a GeoTIFF */
        w->warp_driver = direct || is_cog ? driver : gtiff;
        w->warp_args = warp_arguments(opt->warp, GDALGetDriverShortName(w->warp_driver),
                                      w->warp_driver == driver ? final_options : NULL,
                                      w->bands == 3);
        w->warp_path = sibling_path(path, w->warp_driver == driver ? "" : ".warped.tif");
    }
    if (!direct && !(opt->warp && is_cog)) {
        w->final_driver = driver;
        w->final_options = CSLDuplicate(final_options);
        w->copy_tmp_path = sibling_path(path, "");
    }
    w->tmp_path = sibling_path(path, create_is_last ? "" : ".tif");
    char **options = create_is_last ? CSLDuplicate(final_options)
                   : default_gtiff_options(w->bands, opt->threads);
    CSLDestroy(final_options);
    CPLErrorReset();
    w->ds = GDALCreate(create_driver, w->tmp_path, w->width, w->height, w->bands, GDT_Byte, options);
    CSLDestroy(options);
    if (!w->ds) {
        snprintf(err, n, "%s: cannot create the output: %s", path, gdal_reason());
        color_writer_abort(w);
        return -1;
    }
    double gt[6];
    if (GDALGetGeoTransform(src->ds, gt) == CE_None) {
        if (win) { /* the window's top-left corner */
            gt[0] += win[0] * gt[1] + win[1] * gt[2];
            gt[3] += win[0] * gt[4] + win[1] * gt[5];
        }
        GDALSetGeoTransform(w->ds, gt);
    }
    const char *wkt = GDALGetProjectionRef(src->ds);
    if (wkt && *wkt) GDALSetProjection(w->ds, wkt);
    for (int i = 0; opt->metadata && opt->metadata[i]; i++) {
        char *key = NULL;
        const char *value = CPLParseNameValue(opt->metadata[i], &key);
        if (key && value) GDALSetMetadataItem(w->ds, key, value, NULL);
        CPLFree(key);
    }
    static const GDALColorInterp interp[4] = {GCI_RedBand, GCI_GreenBand, GCI_BlueBand,
                                              GCI_AlphaBand};
    for (int b = 0; b < w->bands; b++)
        GDALSetRasterColorInterpretation(GDALGetRasterBand(w->ds, b + 1), interp[b]);
    if (CPLGetLastErrorType() == CE_Failure) {
        snprintf(err, n, "%s: cannot set up the output: %s", path, gdal_reason());
        color_writer_abort(w);
        return -1;
    }
    return 0;
}

int color_writer_write(ColorWriter *w, int x0, int y0, int width, int height, const uint8_t *rgba,
                       char *err, size_t n) {
    CPLErrorReset();
    int ok = GDALDatasetRasterIO(w->ds, GF_Write, x0, y0, width, height, (void *)rgba, width,
                                 height, GDT_Byte, w->bands, NULL, 0, 0, 0) == CE_None &&
             CPLGetLastErrorType() != CE_Failure;
    /* Compress and write the finished blocks now, while the network computes
     * the next tile, rather than all at the end (GDAL's cache keeps them until
     * it is full or the file closes). Only while no write has left a block
     * part-filled: flushing one would store it twice. */
    int bw, bh;
    GDALGetBlockSize(GDALGetRasterBand(w->ds, 1), &bw, &bh);
    w->whole_blocks = w->whole_blocks && x0 % bw == 0 && y0 % bh == 0 &&
                      ((x0 + width) % bw == 0 || x0 + width == w->width) &&
                      ((y0 + height) % bh == 0 || y0 + height == w->height);
    if (ok && w->whole_blocks) {
        GDALFlushCache(w->ds);
        ok = CPLGetLastErrorType() != CE_Failure;
    }
    if (!ok) {
        snprintf(err, n, "%s: cannot write pixels %d,%d %dx%d: %s", w->final_path, x0, y0, width,
                 height, gdal_reason());
        return -1;
    }
    return 0;
}

/* Closes a dataset and reports whether closing (flushing) failed. */
static int close_checked(GDALDatasetH ds) {
    CPLErrorReset();
    GDALFlushCache(ds);
    int failed = CPLGetLastErrorType() == CE_Failure;
    GDALClose(ds);
    return failed || CPLGetLastErrorType() == CE_Failure ? -1 : 0;
}

static int build_overviews(GDALDatasetH ds, int width, int height, GDALProgressFunc progress,
                           void *arg) {
    int levels[16], count = 0;
    for (int f = 2; count < 16 && (width / f >= 128 || height / f >= 128); f *= 2) levels[count++] = f;
    if (!count) return 0;
    CPLErrorReset();
    return GDALBuildOverviews(ds, "AVERAGE", count, levels, 0, NULL, progress, arg) == CE_None ? 0
                                                                                              : -1;
}

static void free_writer(ColorWriter *w) {
    free(w->final_path), free(w->tmp_path), free(w->warp_path), free(w->copy_tmp_path);
    CSLDestroy(w->final_options);
    CSLDestroy(w->warp_args);
    memset(w, 0, sizeof *w);
}

static void remove_with_sidecars(const char *path) {
    if (!path) return;
    unlink(path);
    char aux[4096];
    snprintf(aux, sizeof aux, "%s.aux.xml", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s.ovr", path);
    unlink(aux);
}

/* The reprojection stage: tmp_path -> warp_path (overviews too if it is the last stage). */
static int warp_stage(ColorWriter *w, GDALProgressFunc progress, void *arg, char *err, size_t n) {
    GDALWarpAppOptions *wo = GDALWarpAppOptionsNew(w->warp_args, NULL);
    if (!wo) {
        snprintf(err, n, "%s: bad reprojection options: %s", w->final_path, gdal_reason());
        return -1;
    }
    GDALWarpAppOptionsSetProgress(wo, progress, arg);
    CPLErrorReset();
    GDALDatasetH src = GDALOpen(w->tmp_path, GA_ReadOnly);
    int usage_error = 0;
    GDALDatasetH out = src ? GDALWarp(w->warp_path, NULL, 1, &src, wo, &usage_error) : NULL;
    GDALWarpAppOptionsFree(wo);
    int failed = !out;
    if (out && w->overviews && !w->final_driver &&
        strcmp(GDALGetDriverShortName(w->warp_driver), "COG"))
        failed = build_overviews(out, GDALGetRasterXSize(out), GDALGetRasterYSize(out), progress,
                                 arg) != 0;
    if (out && close_checked(out)) failed = 1;
    if (src) GDALClose(src);
    remove_with_sidecars(w->tmp_path);
    if (failed) {
        snprintf(err, n, "%s: reprojecting failed: %s", w->final_path, gdal_reason());
        return -1;
    }
    return 0;
}

int color_writer_finish(ColorWriter *w, GDALProgressFunc progress, void *arg, char *err, size_t n) {
    int last_stage = !w->warp_driver && !w->final_driver;
    if (w->overviews && last_stage && build_overviews(w->ds, w->width, w->height, progress, arg)) {
        snprintf(err, n, "%s: cannot build overviews: %s", w->final_path, gdal_reason());
        color_writer_abort(w);
        return -1;
    }
    GDALDatasetH ds = w->ds;
    w->ds = NULL;
    if (close_checked(ds)) {
        snprintf(err, n, "%s: writing the output failed when closing it: %s", w->final_path,
                 gdal_reason());
        color_writer_abort(w);
        return -1;
    }
    const char *ready = w->tmp_path;
    if (w->warp_driver) {
        if (warp_stage(w, progress, arg, err, n)) {
            color_writer_abort(w);
            return -1;
        }
        ready = w->warp_path;
    }
    if (w->final_driver) {
        CPLErrorReset();
        GDALDatasetH tmp = GDALOpen(ready, GA_ReadOnly);
        GDALDatasetH out = tmp ? GDALCreateCopy(w->final_driver, w->copy_tmp_path, tmp, FALSE,
                                                w->final_options, progress, arg)
                               : NULL;
        int failed = !out || close_checked(out);
        if (tmp) GDALClose(tmp);
        remove_with_sidecars(ready);
        if (failed) {
            snprintf(err, n, "%s: converting to %s failed: %s", w->final_path,
                     GDALGetDriverShortName(w->final_driver), gdal_reason());
            color_writer_abort(w);
            return -1;
        }
        ready = w->copy_tmp_path;
    }
    if (rename(ready, w->final_path) != 0) {
        snprintf(err, n, "%s: cannot move the finished file into place", w->final_path);
        color_writer_abort(w);
        return -1;
    }
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s.aux.xml", ready);
    snprintf(to, sizeof to, "%s.aux.xml", w->final_path);
    if (access(from, F_OK) == 0) rename(from, to);
    free_writer(w);
    return 0;
}

void color_writer_abort(ColorWriter *w) {
    if (w->ds) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        GDALClose(w->ds);
        CPLPopErrorHandler();
    }
    remove_with_sidecars(w->tmp_path);
    remove_with_sidecars(w->warp_path);
    remove_with_sidecars(w->copy_tmp_path);
    free_writer(w);
}
