#include "io/samples.h"

#include <cpl_error.h>
#include <gdal.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/raster.h"
#include "io/sources.h"

#define DEFAULT_MAX_MEMORY_PIXELS (16LL << 20)
#define STRIP_PIXELS (1 << 20) /* loading reads this many pixels at a time */
#define WINDOWS_PER_IMAGE 8    /* crops with too much no-data: redraw this often... */
#define IMAGES_PER_CROP 8      /* ...in each of this many images, then give up */

typedef struct {
    char *path;
    int width, height;
    uint8_t *pixels; /* in memory: C planes of width*height; NULL: sampled from disk */
    uint8_t *valid;  /* in memory: 1 where valid; NULL: every pixel valid */
    GraySource src;  /* on disk: kept open */
} SampleImage;

struct SampleSet {
    SampleSetOptions opt;
    int channels;
    SampleImage *images;
    int count, cap;
    float lut[256];          /* 8-bit value -> network input */
    uint8_t *window8, *window_valid; /* a crop read from disk, with its validity */
    /* what open found */
    int unreadable, too_small, on_disk;
    size_t memory;
    int largest_w, largest_h;
    char largest_path[512];
};

static const char *set_name(const SampleSet *s) {
    return s->opt.domain == DOMAIN_GRAY ? "gray set" : "color set";
}

/* ---- loading -------------------------------------------------------------- */

/* Decodes a whole image into im->pixels (and im->valid if it has no-data),
 * strip by strip so GDAL's buffers stay small. */
static int load_image(SampleSet *s, SampleImage *im, GraySource *src, char *err, size_t n) {
    int w = im->width, h = im->height, c = s->channels;
    size_t plane = (size_t)w * h;
    int rows = STRIP_PIXELS / w > 0 ? STRIP_PIXELS / w : 1;
    if (rows > h) rows = h;
    im->pixels = malloc(plane * c);
    im->valid = malloc(plane);
    if (!im->pixels || !im->valid) {
        snprintf(err, n, "%s: out of memory loading a %dx%d image", im->path, w, h);
        return -1;
    }
    for (int y0 = 0; y0 < h; y0 += rows) {
        int r = h - y0 < rows ? h - y0 : rows;
        uint8_t *valid = im->valid + (size_t)y0 * w;
        if (gray_source_read8(src, c, 0, y0, w, r, im->pixels + (size_t)y0 * w, plane, valid, err,
                              n))
            return -1;
    }
    size_t valid_count = 0;
    for (size_t i = 0; i < plane; i++) valid_count += im->valid[i];
    if (valid_count == 0) {
        snprintf(err, n, "%s: every pixel is no-data", im->path);
        return -1;
    }
    if (valid_count == plane) {
        free(im->valid);
        im->valid = NULL;
    }
    s->memory += plane * c + (im->valid ? plane : 0);
    return 0;
}

static void free_image(SampleImage *im) {
    free(im->path);
    free(im->pixels);
    free(im->valid);
    if (im->src.ds) gray_source_close(&im->src);
}

/* A file that cannot be used: an error when the user named it, else a warning. */
static int unreadable(SampleSet *s, int named, const char *msg, char *err, size_t n) {
    if (named) {
        if (msg != err) snprintf(err, n, "%s", msg);
        return -1;
    }
    s->unreadable++;
    if (s->opt.verbose) fprintf(stderr, "warning: %s; skipped\n", msg);
    return 0;
}

/* The visitor of sources_walk: adds one image to the set. */
static int add_image(void *ctx, const char *path, int named, char *err, size_t n) {
    SampleSet *s = ctx;
    const SampleSetOptions *o = &s->opt;
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        const char *why = CPLGetLastErrorMsg();
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: not a raster GDAL can read%s%s%s", path, *why ? " (" : "",
                 why, *why ? ")" : "");
        return unreadable(s, named, msg, err, n);
    }
    /* the wrong kind of image is the user's mistake, even inside a folder */
    int bands = GDALGetRasterCount(ds), top = 0;
    for (int i = 0; i < 3; i++) top = o->band_map[i] > top ? o->band_map[i] : top;
    char map[64];
    snprintf(map, sizeof map, "fewer than the colour bands %d,%d,%d asked for", o->band_map[0],
             o->band_map[1], o->band_map[2]);
    const char *wrong = NULL;
    if (bands > 0 && GDALGetRasterColorTable(GDALGetRasterBand(ds, 1)))
        wrong = "a palette image; expand it to RGB first (gdal_translate -expand rgb)";
    else if (o->domain == DOMAIN_GRAY && bands >= 3 && !o->gray_from_color)
        wrong = "a colour image in the gray set; use --gray-from-color to make such images gray "
                "through H_t";
    else if (o->domain == DOMAIN_COLOR && bands > 0 && bands < 3)
        wrong = "a gray image in the color set, which needs 3 bands (R, G, B)";
    else if (o->domain == DOMAIN_COLOR && top > bands)
        wrong = map;
    if (wrong) {
        snprintf(err, n, "%s: %d band%s: %s", path, bands, bands == 1 ? "" : "s", wrong);
        GDALClose(ds);
        return -1;
    }
    GrayOptions gopt = {.band = 0};
    memcpy(gopt.ht, o->ht, sizeof gopt.ht);
    GraySource src;
    if (gray_source_attach(&src, ds, path, o->domain == DOMAIN_COLOR ? o->band_map : NULL, &gopt,
                           err, n))
        return unreadable(s, named, err, err, n);
    int small = src.width < src.height ? src.width : src.height;
    int best = s->largest_w < s->largest_h ? s->largest_w : s->largest_h;
    if (small > best) {
        s->largest_w = src.width, s->largest_h = src.height;
        snprintf(s->largest_path, sizeof s->largest_path, "%s", path);
    }
    if (src.width < o->crop || src.height < o->crop) {
        s->too_small++;
        if (o->verbose)
            fprintf(stderr, "warning: %s: %dx%d, smaller than the %dx%d crop; skipped\n", path,
                    src.width, src.height, o->crop, o->crop);
        gray_source_close(&src);
        return 0;
    }
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        SampleImage *p = realloc(s->images, cap * sizeof *p);
        if (!p) {
            gray_source_close(&src);
            snprintf(err, n, "out of memory listing images");
            return -1;
        }
        s->images = p, s->cap = cap;
    }
    SampleImage im = {.path = strdup(path), .width = src.width, .height = src.height};
    if ((long long)src.width * src.height > o->max_memory_pixels) {
        im.src = src;
        s->on_disk++;
    } else {
        int rc = load_image(s, &im, &src, err, n);
        gray_source_close(&src);
        if (rc) {
            free_image(&im);
            return unreadable(s, named, err, err, n);
        }
    }
    s->images[s->count++] = im;
    return 0;
}

static void summary(const SampleSet *s) {
    fprintf(stderr, "%s: %d image%s, %d in memory (%.1f MiB), %d sampled from disk", set_name(s),
            s->count, s->count == 1 ? "" : "s", s->count - s->on_disk, s->memory / 1048576.0,
            s->on_disk);
    if (s->unreadable || s->too_small) fprintf(stderr, "; skipped");
    if (s->unreadable)
        fprintf(stderr, " %d unreadable file%s%s", s->unreadable, s->unreadable == 1 ? "" : "s",
                s->too_small ? " and" : "");
    if (s->too_small)
        fprintf(stderr, " %d image%s smaller than the %dx%d crop", s->too_small,
                s->too_small == 1 ? "" : "s", s->opt.crop, s->opt.crop);
    fputc('\n', stderr);
}

SampleSet *sample_set_open(const char *const *sources, int num_sources, const SampleSetOptions *opt,
                           char *err, size_t n) {
    if (opt->crop < 1) {
        snprintf(err, n, "the crop size must be positive (got %d)", opt->crop);
        return NULL;
    }
    const int *bm = opt->band_map;
    int mapped = (bm[0] > 0) + (bm[1] > 0) + (bm[2] > 0);
    if (opt->domain == DOMAIN_COLOR && (mapped == 1 || mapped == 2 || bm[0] < 0 || bm[1] < 0 ||
                                        bm[2] < 0)) {
        snprintf(err, n, "colour bands %d,%d,%d: give three 1-based bands (or none)", bm[0], bm[1],
                 bm[2]);
        return NULL;
    }
    SampleSet *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    s->opt = *opt;
    if (!s->opt.max_memory_pixels) s->opt.max_memory_pixels = DEFAULT_MAX_MEMORY_PIXELS;
    s->channels = opt->domain == DOMAIN_GRAY ? 1 : 3;
    for (int v = 0; v < 256; v++) s->lut[v] = v / 127.5f - 1.0f;
    GDALAllRegister();
    /* failures become our own messages (and warnings) that name the file */
    CPLPushErrorHandler(CPLQuietErrorHandler);
    int rc = sources_walk(sources, num_sources, add_image, s, err, n);
    CPLPopErrorHandler();
    if (rc == 0 && s->count == 0) {
        rc = -1;
        if (s->too_small)
            snprintf(err, n, "%s: no image is at least %dx%d (the crop size); the largest is %dx%d "
                     "(%s)", set_name(s), opt->crop, opt->crop, s->largest_w, s->largest_h,
                     s->largest_path);
        else if (s->unreadable)
            snprintf(err, n, "%s: no images in the given sources, only %d unreadable file%s",
                     set_name(s), s->unreadable, s->unreadable == 1 ? "" : "s");
        else
            snprintf(err, n, "%s: no images in the given sources", set_name(s));
    }
    size_t window = (size_t)opt->crop * opt->crop;
    if (rc == 0 && s->on_disk) {
        s->window8 = malloc(window * s->channels);
        s->window_valid = malloc(window);
        if (!s->window8 || !s->window_valid) {
            snprintf(err, n, "out of memory");
            rc = -1;
        }
    }
    if (rc) {
        sample_set_close(s);
        return NULL;
    }
    if (opt->verbose) summary(s);
    return s;
}

int sample_set_count(const SampleSet *s) { return s->count; }

const char *sample_set_path(const SampleSet *s, int i) { return s->images[i].path; }

/* ---- sampling ------------------------------------------------------------- */

/* Offset in a crop (rows `stride` apart) of the pixel that lands at (y, x)
 * after transform t: bit 2 flips x, bits 0-1 rotate by t*90 degrees. */
static ptrdiff_t dihedral_offset(int t, int size, ptrdiff_t stride, int y, int x) {
    if (t & 4) x = size - 1 - x;
    int i, j;
    switch (t & 3) {
    case 0: i = y, j = x; break;
    case 1: i = x, j = size - 1 - y; break;
    case 2: i = size - 1 - y, j = size - 1 - x; break;
    default: i = size - 1 - x, j = y; break;
    }
    return i * stride + j;
}

/* Writes the crop at px (C planes `plane` apart, rows `stride` apart) through
 * transform t. The offset is linear in (y, x), so each row is one strided walk. */
static void emit_crop(const SampleSet *s, const uint8_t *px, const uint8_t *valid, ptrdiff_t stride,
                      size_t plane, int t, float *out) {
    int size = s->opt.crop;
    ptrdiff_t o = dihedral_offset(t, size, stride, 0, 0);
    ptrdiff_t dx = dihedral_offset(t, size, stride, 0, 1) - o;
    ptrdiff_t dy = dihedral_offset(t, size, stride, 1, 0) - o;
    for (int c = 0; c < s->channels; c++) {
        const uint8_t *p = px + c * plane;
        float *dst = out + (size_t)c * size * size;
        for (int y = 0; y < size; y++, dst += size) {
            ptrdiff_t row = o + y * dy;
            if (valid)
                for (int x = 0; x < size; x++) {
                    ptrdiff_t k = row + x * dx;
                    dst[x] = valid[k] ? s->lut[p[k]] : 0.0f;
                }
            else
                for (int x = 0; x < size; x++) dst[x] = s->lut[p[row + x * dx]];
        }
    }
}

static int mostly_nodata(const uint8_t *valid, ptrdiff_t stride, int size) {
    if (!valid) return 0;
    size_t invalid = 0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) invalid += !valid[y * stride + x];
    return invalid * 10 > (size_t)size * size;
}

/* Draws one crop; writes it to out unless out is NULL (another rank's crop:
 * then only what decides a redraw is read, so the draws stay the same). */
static int draw_crop(SampleSet *s, Rng *rng, float *out, char *err, size_t n) {
    int size = s->opt.crop;
    for (int tries = 0; tries < IMAGES_PER_CROP; tries++) {
        SampleImage *im = &s->images[rng_below(rng, (uint64_t)s->count)];
        for (int k = 0; k < WINDOWS_PER_IMAGE; k++) {
            int x0 = (int)rng_below(rng, (uint64_t)(im->width - size + 1));
            int y0 = (int)rng_below(rng, (uint64_t)(im->height - size + 1));
            const uint8_t *px = NULL, *valid = NULL;
            ptrdiff_t stride = size;
            size_t plane = 0;
            if (im->pixels) {
                size_t origin = (size_t)y0 * im->width + x0;
                px = im->pixels + origin;
                valid = im->valid ? im->valid + origin : NULL;
                stride = im->width;
                plane = (size_t)im->width * im->height;
            } else if (out || im->src.has_nodata) {
                size_t count = (size_t)size * size;
                if (gray_source_read8(&im->src, s->channels, x0, y0, size, size, s->window8,
                                      count, s->window_valid, err, n))
                    return -1;
                px = s->window8;
                valid = s->window_valid;
                plane = count;
            }
            if (mostly_nodata(valid, stride, size)) continue;
            int transform = (int)rng_below(rng, 8);
            if (out) emit_crop(s, px, valid, stride, plane, transform, out);
            return 0;
        }
    }
    snprintf(err, n, "%s: no %dx%d crop with at most 10%% no-data found (%d windows in each of %d "
             "images tried); are the images mostly no-data?", set_name(s), size, size,
             WINDOWS_PER_IMAGE, IMAGES_PER_CROP);
    return -1;
}

int sample_batch_part(SampleSet *s, Rng *rng, int batch, int first, int count, float *out,
                      char *err, size_t n) {
    size_t per = (size_t)s->channels * s->opt.crop * s->opt.crop;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    int rc = 0;
    for (int b = 0; rc == 0 && b < batch; b++) {
        int mine = b >= first && b < first + count;
        rc = draw_crop(s, rng, mine ? out + (size_t)(b - first) * per : NULL, err, n);
    }
    CPLPopErrorHandler();
    return rc;
}

int sample_batch(SampleSet *s, Rng *rng, int batch, float *out, char *err, size_t n) {
    return sample_batch_part(s, rng, batch, 0, batch, out, err, n);
}

void sample_set_close(SampleSet *s) {
    if (!s) return;
    for (int i = 0; i < s->count; i++) free_image(&s->images[i]);
    free(s->images);
    free(s->window8);
    free(s->window_valid);
    free(s);
}
