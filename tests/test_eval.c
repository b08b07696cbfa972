/* `spynco eval` and its metrics.
 *  1. The metrics (pipeline/metrics.h) against scikit-image on real crops
 *     (tests/data/ssim_skimage.h5, scripts/make_ssim_fixtures.py): SSIM within
 *     1e-4, MSE and PSNR against sums computed here; no-data masks against
 *     skimage's SSIM maps; the gray copy of rounded H_t computed here.
 *  2. the luminance lock (nn/ops.h) in place, as colorize --keep-luminance runs it.
 *  3. The real program on tests/data/eval_set (three real colour crops, one
 *     with a no-data collar): every figure of --json and --csv recomputed
 *     here from the files, with the gray computed here and colorized by a
 *     separate `spynco colorize` run; --samples triptychs pixel by pixel;
 *     --keep-luminance (H_t of the output = the gray within 1 DN); list
 *     file, tile size and the library call give the same figures; bad inputs.
 * Everything happens in a fresh folder under /tmp, removed at the end. */
#include <cjson/cJSON.h>
#include <cpl_string.h>
#include <dirent.h>
#include <gdal.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/h5io.h"
#include "io/raster.h"
#include "nn/infer.h"
#include "nn/ops.h"
#include "pipeline/eval.h"
#include "pipeline/metrics.h"
#include "testutil.h"

#define DATA(name) SPYNCO_TEST_DATA "/" name
#define EVAL_SET DATA("eval_set")
#define MODEL SPYNCO_SOURCE_DIR "/models/spynco-default.h5"
#define SET_SIZE 3
/* SSIM against skimage: 1e-4 is the requirement; the agreement is ~3e-8 (the
 * fixture stores float32), so a tighter check catches subtler mistakes. */
#define SSIM_TOL 1e-6

/* the eval set in name order, as a folder walk finds it */
static const char *const SET_FILES[SET_SIZE] = {"cogeo_80x64.jpg", "landsat_rgba_72x64.tif",
                                                "naip_96x72.png"};

static const char *tmp;
static char err[2048];

static const char *in_tmp(const char *name) {
    static char buf[8][1024];
    static int next = 0;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmp, name);
    return p;
}

/* ---- 1. metrics against scikit-image -------------------------------------------- */

typedef struct {
    int w, h;
    uint8_t *x, *y;
    float ssim_channels[3], ssim, mse, psnr;
    float *map; /* [3, h, w] or NULL */
} Pair;

static int read_pair(H5Reader *r, int index, Pair *p) {
    memset(p, 0, sizeof *p);
    char path[32], name[64];
    snprintf(path, sizeof path, "/pair%02d", index % 100);
    if (!h5r_exists(r, path)) return 1;
    int ndim, shape[H5IO_MAX_DIMS];
    snprintf(name, sizeof name, "%s/x", path);
    if (h5r_shape(r, name, &ndim, shape) || ndim != 3 || shape[0] != 3) return -1;
    p->h = shape[1], p->w = shape[2];
    size_t n = (size_t)3 * p->w * p->h;
    p->x = malloc(n), p->y = malloc(n);
    int one[1] = {3};
    int rc = !p->x || !p->y;
    rc = rc || h5r_read(r, name, H5IO_UINT8, 3, shape, p->x);
    snprintf(name, sizeof name, "%s/y", path);
    rc = rc || h5r_read(r, name, H5IO_UINT8, 3, shape, p->y);
    snprintf(name, sizeof name, "%s/ssim_channels", path);
    rc = rc || h5r_read(r, name, H5IO_FLOAT32, 1, one, p->ssim_channels);
    snprintf(name, sizeof name, "%s/ssim", path);
    rc = rc || h5r_read(r, name, H5IO_FLOAT32, 0, NULL, &p->ssim);
    snprintf(name, sizeof name, "%s/mse", path);
    rc = rc || h5r_read(r, name, H5IO_FLOAT32, 0, NULL, &p->mse);
    snprintf(name, sizeof name, "%s/psnr", path);
    rc = rc || h5r_read(r, name, H5IO_FLOAT32, 0, NULL, &p->psnr);
    snprintf(name, sizeof name, "%s/ssim_map", path);
    if (!rc && h5r_exists(r, name)) {
        p->map = malloc(n * sizeof(float));
        rc = !p->map || h5r_read(r, name, H5IO_FLOAT32, 3, shape, p->map);
    }
    return rc ? -1 : 0;
}

static void free_pair(Pair *p) { free(p->x), free(p->y), free(p->map); }

/* Mean squared difference over valid pixels of 3 planes, in integers. */
static double own_mse(const uint8_t *const a[3], const uint8_t *const b[3], const uint8_t *valid,
                      size_t plane) {
    long long sum = 0, count = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            if (valid && !valid[i]) continue;
            long long d = (long long)a[c][i] - b[c][i];
            sum += d * d, count++;
        }
    return (double)sum / count;
}

static double own_psnr(double mse) { return mse == 0.0 ? INFINITY : 10.0 * log10(65025.0 / mse); }

/* The gray of 8-bit colour as the C code defines it: float H_t, rounded half to even. */
static void own_gray(uint8_t *gray, const uint8_t *rgb, size_t plane) {
    const float w[3] = {0.299f, 0.587f, 0.114f};
    for (size_t i = 0; i < plane; i++) {
        float v = w[0] * (float)rgb[i] + w[1] * (float)rgb[plane + i];
        v = v + w[2] * (float)rgb[2 * plane + i];
        gray[i] = (uint8_t)rintf(v);
    }
}

static int close_to(double a, double b, double tol) {
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

/* SSIM with a block of no-data: the mean of skimage's map over the windows
 * that avoid the block, per channel. */
static void check_masked(const Pair *p, const char *what) {
    int w = p->w, h = p->h;
    size_t plane = (size_t)w * h;
    uint8_t *valid = malloc(plane);
    int bx0 = w / 3, by0 = h / 2 - 2, bx1 = bx0 + 3, by1 = by0 + 3; /* inclusive */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            valid[(size_t)y * w + x] = !(x >= bx0 && x <= bx1 && y >= by0 && y <= by1);
    for (int c = 0; c < 3; c++) {
        double sum = 0.0;
        long count = 0;
        for (int y = SSIM_RADIUS; y < h - SSIM_RADIUS; y++)
            for (int x = SSIM_RADIUS; x < w - SSIM_RADIUS; x++) {
                int clear = x + SSIM_RADIUS < bx0 || x - SSIM_RADIUS > bx1 ||
                            y + SSIM_RADIUS < by0 || y - SSIM_RADIUS > by1;
                if (clear) sum += p->map[c * plane + (size_t)y * w + x], count++;
            }
        double s = NAN;
        int rc = metric_ssim(&s, p->x + c * plane, p->y + c * plane, valid, w, h, err, sizeof err);
        if (count == 0) {
            CHECK(rc == -1 && strstr(err, "no-data"), "%s, channel %d: every window has no-data, "
                  "yet metric_ssim gave %d (%s)", what, c, rc, rc ? err : "");
        } else {
            CHECK(rc == 0 && fabs(s - sum / count) < SSIM_TOL,
                  "%s, channel %d with no-data: SSIM %.8f, skimage's map over the clear windows "
                  "%.8f (%ld windows)", what, c, s, sum / count, count);
        }
    }
    const uint8_t *xs[3] = {p->x, p->x + plane, p->x + 2 * plane};
    const uint8_t *ys[3] = {p->y, p->y + plane, p->y + 2 * plane};
    size_t n = 0;
    double sum = 0.0;
    for (int c = 0; c < 3; c++) sum += metric_sum_sq(xs[c], ys[c], valid, plane, &n);
    CHECK(n == 3 * (plane - 16) && sum / n == own_mse(xs, ys, valid, plane),
          "%s: masked MSE %.10g over %zu values, expected %.10g", what, sum / n, n,
          own_mse(xs, ys, valid, plane));
    free(valid);
}

static void test_metrics(void) {
    H5Reader *r = h5r_open(DATA("ssim_skimage.h5"), err, sizeof err);
    CHECK(r != NULL, "open the SSIM fixtures: %s", err);
    if (!r) return;
    int pairs = 0, gray_pairs = 0, masked = 0;
    double worst = 0.0;
    for (int i = 0;; i++) {
        Pair p;
        int rc = read_pair(r, i, &p);
        if (rc == 1) break;
        CHECK(rc == 0, "pair %d: %s", i, err);
        if (rc) {
            free_pair(&p);
            break;
        }
        pairs++;
        char what[32];
        snprintf(what, sizeof what, "pair%02d (%dx%d)", i, p.w, p.h);
        size_t plane = (size_t)p.w * p.h;
        for (int c = 0; c < 3; c++) {
            double s = NAN;
            int ok = metric_ssim(&s, p.x + c * plane, p.y + c * plane, NULL, p.w, p.h, err,
                                 sizeof err) == 0;
            double d = fabs(s - p.ssim_channels[c]);
            if (d > worst || !ok) worst = ok ? d : INFINITY;
            CHECK(ok && d < SSIM_TOL, "%s channel %d: SSIM %.8f, skimage %.8f", what, c, s,
                  p.ssim_channels[c]);
        }
        const uint8_t *xs[3] = {p.x, p.x + plane, p.x + 2 * plane};
        const uint8_t *ys[3] = {p.y, p.y + plane, p.y + 2 * plane};
        ImageScores sc;
        int ok = image_scores(&sc, xs, ys, NULL, p.w, p.h, err, sizeof err) == 0;
        double mse = own_mse(xs, ys, NULL, plane);
        CHECK(ok && sc.mse == mse && close_to(sc.mse, p.mse, 1e-6),
              "%s: MSE %.10g, computed here %.10g, skimage %.8g", what, sc.mse, mse, p.mse);
        CHECK(ok && sc.psnr == own_psnr(mse) && close_to(sc.psnr, p.psnr, 1e-6),
              "%s: PSNR %.10g, computed here %.10g, skimage %.8g", what, sc.psnr, own_psnr(mse),
              p.psnr);
        CHECK(ok && fabs(sc.ssim - p.ssim) < SSIM_TOL, "%s: SSIM %.8f, skimage %.8f", what, sc.ssim,
              p.ssim);

        /* the gray copy pairs: y = rounded H_t of x in all three channels */
        if (!memcmp(p.y, p.y + plane, plane) && !memcmp(p.y, p.y + 2 * plane, plane)) {
            gray_pairs++;
            uint8_t *gray = malloc(plane), *lib = malloc(plane);
            own_gray(gray, p.x, plane);
            const float ht[3] = {0.299f, 0.587f, 0.114f};
            ht_gray8(lib, p.x, plane, plane, ht);
            CHECK(!memcmp(gray, p.y, plane), "%s: the fixture's gray copy differs from H_t "
                  "rounded here", what);
            CHECK(!memcmp(lib, gray, plane), "%s: ht_gray8 differs from H_t rounded here", what);
            const uint8_t *copy[3] = {lib, lib, lib};
            ImageScores base;
            ok = image_scores(&base, xs, copy, NULL, p.w, p.h, err, sizeof err) == 0;
            CHECK(ok && base.mse == mse && base.ssim == sc.ssim && base.psnr == sc.psnr,
                  "%s: the gray copy's scores differ from the fixture pair's", what);
            free(gray), free(lib);
        }
        if (p.map) {
            masked++;
            check_masked(&p, what);
        }
        /* rows in parallel, but the result must not depend on the thread count */
        if (i == 0) {
            double one, two;
            omp_set_num_threads(1);
            metric_ssim(&one, p.x, p.y, NULL, p.w, p.h, err, sizeof err);
            omp_set_num_threads(2);
            metric_ssim(&two, p.x, p.y, NULL, p.w, p.h, err, sizeof err);
            CHECK(one == two, "SSIM with 1 and 2 threads: %.17g != %.17g", one, two);
            double s;
            CHECK(metric_ssim(&s, p.x, p.y, NULL, 10, 12, err, sizeof err) == -1 &&
                      strstr(err, "smaller"),
                  "a 10x12 image must be refused for SSIM (%s)", err);
        }
        free_pair(&p);
    }
    h5r_close(r);
    CHECK(pairs >= 10 && gray_pairs == 2 && masked >= 2,
          "fixtures: %d pairs, %d gray copies, %d SSIM maps", pairs, gray_pairs, masked);
    printf("SSIM against skimage: %d pairs, largest difference %.2e\n", pairs, worst);
}

/* ---- 2. keep_luminance -------------------------------------------------------------- */

static void test_keep_luminance_math(void) {
    enum { N = 4096 };
    static float rgb[3 * N], gray[N];
    const float weights[2][3] = {{0.299f, 0.587f, 0.114f}, {0.2f, 0.3f, 0.5f}};
    TestRng rng = {99};
    for (int k = 0; k < 2; k++) {
        const float *w = weights[k];
        test_fill_uniform(&rng, rgb, 3 * N, -1.5f, 1.5f);
        test_fill_uniform(&rng, gray, N, -1.0f, 1.0f);
        luminance_lock_forward(rgb, rgb, gray, w, 1, N);
        double worst = 0.0;
        for (int i = 0; i < N; i++) {
            double y = (double)w[0] * rgb[i] + (double)w[1] * rgb[N + i] + (double)w[2] * rgb[2 * N + i];
            worst = fmax(worst, fabs(y - gray[i]));
        }
        CHECK(worst < 1e-6, "luminance lock in place, weights %g %g %g: |H_t(rgb) - gray| up to %.3g", w[0],
              w[1], w[2], worst);
    }
}

/* ---- 3. the program ------------------------------------------------------------------ */

/* `spynco ARGS...` with stdout and stderr in log (truncated first); the exit status. */
static int spynco(const char *log, ...) {
    char *argv[48] = {SPYNCO_BIN};
    int n = 1;
    va_list ap;
    va_start(ap, log);
    for (const char *a; n < 47 && (a = va_arg(ap, const char *));) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    unlink(log);
    return test_run(argv, NULL, log);
}
#define SPYNCO(log, ...) spynco(log, __VA_ARGS__, (const char *)NULL)

static char *log_text(const char *log) {
    static char *text = NULL;
    free(text);
    text = test_read_file(log);
    return text ? text : "";
}

typedef struct {
    int w, h, bands;
    uint8_t *px;    /* band-sequential */
    uint8_t *valid; /* from the mask of band 1, NULL if every pixel is valid */
} Raster;

static int load(const char *path, Raster *r) {
    memset(r, 0, sizeof *r);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CHECK(ds != NULL, "%s: GDAL cannot open it", path);
    if (!ds) return -1;
    r->w = GDALGetRasterXSize(ds), r->h = GDALGetRasterYSize(ds), r->bands = GDALGetRasterCount(ds);
    size_t plane = (size_t)r->w * r->h;
    r->px = malloc(plane * r->bands);
    int rc = GDALDatasetRasterIO(ds, GF_Read, 0, 0, r->w, r->h, r->px, r->w, r->h, GDT_Byte,
                                 r->bands, NULL, 0, 0, 0) == CE_None ? 0 : -1;
    GDALRasterBandH b1 = GDALGetRasterBand(ds, 1);
    if (rc == 0 && !(GDALGetMaskFlags(b1) & GMF_ALL_VALID)) {
        r->valid = malloc(plane);
        rc = GDALRasterIO(GDALGetMaskBand(b1), GF_Read, 0, 0, r->w, r->h, r->valid, r->w, r->h,
                          GDT_Byte, 0, 0) == CE_None ? 0 : -1;
        for (size_t i = 0; rc == 0 && i < plane; i++) r->valid[i] = r->valid[i] != 0;
    }
    GDALClose(ds);
    CHECK(rc == 0, "%s: cannot read it", path);
    return rc;
}

static void unload(Raster *r) {
    free(r->px), free(r->valid);
    memset(r, 0, sizeof *r);
}

/* The gray as a GeoTIFF: 1 band, or gray + alpha where there is no-data. */
static void write_gray(const char *path, const uint8_t *gray, const uint8_t *valid, int w, int h) {
    size_t plane = (size_t)w * h;
    int bands = valid ? 2 : 1;
    uint8_t *px = malloc(2 * plane);
    memcpy(px, gray, plane);
    for (size_t i = 0; valid && i < plane; i++) px[plane + i] = valid[i] ? 255 : 0;
    char **o = valid ? CSLSetNameValue(NULL, "ALPHA", "YES") : NULL;
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, bands, GDT_Byte, o);
    CSLDestroy(o);
    CHECK(ds && GDALDatasetRasterIO(ds, GF_Write, 0, 0, w, h, px, w, h, GDT_Byte, bands, NULL, 0,
                                    0, 0) == CE_None,
          "writing %s", path);
    if (ds) GDALClose(ds);
    free(px);
}

/* What the test computes itself for one image of the set. */
typedef struct {
    int w, h;
    ImageScores model, baseline; /* ssim as a fraction */
} Expected;

/* Colorizes the gray of SET_FILES[i] (computed here) with `spynco colorize`
 * (keep: --keep-luminance) and scores it; checks the luminance when keep. */
static int expect_image(int i, int keep, Expected *e, Raster *real_out, uint8_t **gray_out,
                        Raster *color_out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", EVAL_SET, SET_FILES[i]);
    Raster real, color = {0};
    if (load(path, &real)) return -1;
    int w = real.w, h = real.h;
    size_t plane = (size_t)w * h;
    uint8_t *gray = malloc(plane);
    own_gray(gray, real.px, plane);
    for (size_t k = 0; real.valid && k < plane; k++)
        if (!real.valid[k]) real.px[k] = real.px[plane + k] = real.px[2 * plane + k] = gray[k] = 0;
    char gray_path[1024], out_path[1024];
    snprintf(gray_path, sizeof gray_path, "%s/gray_%d.tif", tmp, i);
    snprintf(out_path, sizeof out_path, "%s/color_%d_%d.tif", tmp, i, keep);
    write_gray(gray_path, gray, real.valid, w, h);
    /* keep-luminance is colorize's default (KEEP_LUMINANCE_DEFAULT) */
    int st = keep ? SPYNCO(in_tmp("colorize.log"), "colorize", "-q", "--threads", "2", "--model",
                           MODEL, gray_path, out_path)
                  : SPYNCO(in_tmp("colorize.log"), "colorize", "-q", "--threads", "2", "--model",
                           MODEL, "--no-keep-luminance", gray_path, out_path);
    CHECK(st == 0, "colorize %s: status %d: %s", gray_path, st, log_text(in_tmp("colorize.log")));
    int rc = st == 0 ? load(out_path, &color) : -1;
    if (rc == 0) {
        CHECK(color.w == w && color.h == h && color.bands == (real.valid ? 4 : 3),
              "%s: colorized %dx%dx%d", out_path, color.w, color.h, color.bands);
        const uint8_t *rs[3] = {real.px, real.px + plane, real.px + 2 * plane};
        const uint8_t *cs[3] = {color.px, color.px + plane, color.px + 2 * plane};
        const uint8_t *copy[3] = {gray, gray, gray};
        e->w = w, e->h = h;
        rc = image_scores(&e->model, rs, cs, real.valid, w, h, err, sizeof err) ||
             image_scores(&e->baseline, rs, copy, real.valid, w, h, err, sizeof err);
        CHECK(rc == 0, "%s: scores: %s", path, err);
        CHECK(e->model.mse == own_mse(rs, cs, real.valid, plane) &&
                  e->baseline.mse == own_mse(rs, copy, real.valid, plane),
              "%s: image_scores' MSE differs from the one computed here", path);
        /* luminance: H_t(output) against the gray, where no channel is clamped */
        double worst = 0.0;
        long checked = 0;
        for (size_t k = 0; k < plane; k++) {
            if (real.valid && !real.valid[k]) continue;
            uint8_t r = cs[0][k], g = cs[1][k], b = cs[2][k];
            if (r == 0 || g == 0 || b == 0 || r == 255 || g == 255 || b == 255) continue;
            worst = fmax(worst, fabs(0.299 * r + 0.587 * g + 0.114 * b - gray[k]));
            checked++;
        }
        if (keep)
            CHECK(worst <= 1.0 && checked > (long)plane / 3,
                  "%s with --keep-luminance: |H_t(output) - gray| up to %.2f DN over %ld pixels",
                  path, worst, checked);
        else
            CHECK(worst > 2.0, "%s: without --keep-luminance the output's luminance should "
                  "differ from the gray (up to %.2f DN only)", path, worst);
        if (keep) {
            GDALDatasetH ds = GDALOpen(out_path, GA_ReadOnly);
            const char *md = ds ? GDALGetMetadataItem(ds, "SPYNCO_KEEP_LUMINANCE", NULL) : NULL;
            CHECK(md && !strcmp(md, "YES"), "%s: SPYNCO_KEEP_LUMINANCE is %s", out_path,
                  md ? md : "missing");
            if (ds) GDALClose(ds);
        }
    }
    if (rc == 0 && real_out) *real_out = real, *gray_out = gray, *color_out = color;
    else unload(&real), unload(&color), free(gray);
    return rc;
}

static cJSON *load_json(const char *path) {
    char *text = test_read_file(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL, "%s: missing or not JSON", path);
    free(text);
    return j;
}

static double json_number(const cJSON *o, const char *group, const char *key) {
    const cJSON *g = group ? cJSON_GetObjectItem(o, group) : o;
    const cJSON *v = g ? cJSON_GetObjectItem(g, key) : NULL;
    if (cJSON_IsNull(v)) return INFINITY; /* cJSON writes infinity as null */
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The JSON's figures against the means of what the test computed. */
static void check_json(const cJSON *j, const Expected *e, int keep, const char *what) {
    CHECK(json_number(j, NULL, "images") == SET_SIZE && json_number(j, NULL, "failed") == 0,
          "%s: images %g, failed %g", what, json_number(j, NULL, "images"),
          json_number(j, NULL, "failed"));
    const cJSON *kl = cJSON_GetObjectItem(j, "keep_luminance");
    CHECK(cJSON_IsBool(kl) && cJSON_IsTrue(kl) == keep, "%s: keep_luminance should be %d", what,
          keep);
    const char *groups[2] = {"model", "baseline"};
    for (int g = 0; g < 2; g++) {
        double mse = 0, ssim = 0, psnr = 0;
        for (int i = 0; i < SET_SIZE; i++) {
            const ImageScores *s = g ? &e[i].baseline : &e[i].model;
            mse += s->mse, ssim += s->ssim, psnr += s->psnr;
        }
        mse /= SET_SIZE, ssim = 100.0 * ssim / SET_SIZE, psnr /= SET_SIZE;
        double jm = json_number(j, groups[g], "mse"), js = json_number(j, groups[g], "ssim"),
               jp = json_number(j, groups[g], "psnr");
        CHECK(close_to(jm, mse, 1e-12) && close_to(js, ssim, 1e-12) && close_to(jp, psnr, 1e-12),
              "%s, %s: JSON mse %.12g ssim %.12g psnr %.12g; computed here %.12g %.12g %.12g",
              what, groups[g], jm, js, jp, mse, ssim, psnr);
    }
}

/* The same figures in two JSON files (bit for bit). */
static void check_same_figures(const cJSON *a, const cJSON *b, const char *what) {
    const char *groups[2] = {"model", "baseline"}, *keys[3] = {"mse", "ssim", "psnr"};
    CHECK(json_number(a, NULL, "images") == json_number(b, NULL, "images"), "%s: image counts",
          what);
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 3; k++)
            CHECK(json_number(a, groups[g], keys[k]) == json_number(b, groups[g], keys[k]),
                  "%s: %s %s %.17g != %.17g", what, groups[g], keys[k],
                  json_number(a, groups[g], keys[k]), json_number(b, groups[g], keys[k]));
}

static void check_csv(const char *path, const Expected *e) {
    char *text = test_read_file(path);
    CHECK(text != NULL, "%s: missing", path);
    if (!text) return;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    static const char header[] = "path,width,height,model_mse,model_ssim,model_psnr,baseline_mse,"
                                 "baseline_ssim,baseline_psnr,";
    CHECK(line && !strncmp(line, header, strlen(header)),
          "%s: header '%s'", path, line ? line : "");
    for (int i = 0; i < SET_SIZE; i++) {
        line = strtok_r(NULL, "\n", &save);
        CHECK(line != NULL, "%s: row %d missing", path, i + 1);
        if (!line) break;
        char *comma = strchr(line, ',');
        CHECK(comma && comma - line > (long)strlen(SET_FILES[i]) &&
                  !strncmp(comma - strlen(SET_FILES[i]), SET_FILES[i], strlen(SET_FILES[i])),
              "%s: row %d is '%s', expected %s", path, i + 1, line, SET_FILES[i]);
        int w = 0, h = 0;
        double v[6];
        int got = comma ? sscanf(comma + 1, "%d,%d,%lf,%lf,%lf,%lf,%lf,%lf", &w, &h, &v[0], &v[1],
                                 &v[2], &v[3], &v[4], &v[5])
                        : 0;
        const double want[6] = {e[i].model.mse,    100 * e[i].model.ssim,    e[i].model.psnr,
                                e[i].baseline.mse, 100 * e[i].baseline.ssim, e[i].baseline.psnr};
        int ok = got == 8 && w == e[i].w && h == e[i].h;
        for (int k = 0; ok && k < 6; k++) ok = close_to(v[k], want[k], 1e-9);
        CHECK(ok, "%s: row %d '%s' does not match (size %dx%d, model %.10g %.10g %.10g, baseline "
              "%.10g %.10g %.10g)", path, i + 1, line, e[i].w, e[i].h, want[0], want[1], want[2],
              want[3], want[4], want[5]);
    }
    CHECK(strtok_r(NULL, "\n", &save) == NULL, "%s: more rows than images", path);
    free(text);
}

/* A triptych: gray | colorized | real, 0 where there is no data. */
static void check_triptych(int i, const Raster *real, const uint8_t *gray, const Raster *color) {
    char stem[64], path[1024];
    snprintf(stem, sizeof stem, "%s", SET_FILES[i]);
    *strrchr(stem, '.') = 0;
    snprintf(path, sizeof path, "%s/samples/%04d_%s.png", tmp, i + 1, stem);
    Raster t;
    if (load(path, &t)) return;
    int w = real->w, h = real->h;
    size_t plane = (size_t)w * h, big = (size_t)3 * w * h;
    int ok = t.w == 3 * w && t.h == h && t.bands == 3;
    long wrong = 0;
    for (int c = 0; ok && c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t k = (size_t)y * w + x, o = c * big + (size_t)y * 3 * w + x;
                int v = !real->valid || real->valid[k];
                wrong += t.px[o] != (v ? gray[k] : 0);
                wrong += t.px[o + w] != (v ? color->px[c * plane + k] : 0);
                wrong += t.px[o + 2 * w] != real->px[c * plane + k];
            }
    CHECK(ok && wrong == 0, "%s: %dx%dx%d, %ld wrong values (expected %dx%dx3 gray | colorized | "
          "real)", path, t.w, t.h, t.bands, wrong, 3 * w, h);
    unload(&t);
}

static int leftover_temps(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

static Expected plain[SET_SIZE]; /* the set's figures without --keep-luminance */

static void test_program(void) {
    char log[1024];
    snprintf(log, sizeof log, "%s", in_tmp("eval.log"));
    Expected keep[SET_SIZE];
    int st = SPYNCO(log, "eval", "--threads", "2", "--no-keep-luminance", "--model", MODEL, "--json", in_tmp("a.json"),
                    "--csv", in_tmp("a.csv"), "--samples", in_tmp("samples"), EVAL_SET);
    CHECK(st == 0, "spynco eval: status %d: %s", st, log_text(log));
    CHECK(strstr(log_text(log), "gray copy") && strstr(log_text(log), "SSIM"),
          "the table is missing: %s", log_text(log));
    for (int i = 0; i < SET_SIZE; i++) {
        Raster real, color;
        uint8_t *gray;
        if (expect_image(i, 0, &plain[i], &real, &gray, &color)) return;
        check_triptych(i, &real, gray, &color);
        unload(&real), unload(&color), free(gray);
    }
    cJSON *a = load_json(in_tmp("a.json"));
    if (!a) return;
    check_json(a, plain, 0, "eval --json");
    check_csv(in_tmp("a.csv"), plain);
    ModelConfig cfg;
    CheckpointMeta meta;
    CHECK(checkpoint_read_config(MODEL, &cfg, &meta, err, sizeof err) == 0, "%s", err);
    CHECK(json_number(a, NULL, "step") == meta.step, "JSON step %g, the model's %ld",
          json_number(a, NULL, "step"), meta.step);
    CHECK(leftover_temps(tmp) == 0 && leftover_temps(in_tmp("samples")) == 0,
          "temporary files left behind");

    /* the luminance-preserving option, from the list file */
    st = SPYNCO(log, "eval", "-q", "--threads", "2", "--model", MODEL, "--keep-luminance",
                "--json", in_tmp("keep.json"), DATA("eval_set/list.txt"));
    CHECK(st == 0, "eval --keep-luminance: status %d: %s", st, log_text(log));
    for (int i = 0; i < SET_SIZE; i++)
        if (expect_image(i, 1, &keep[i], NULL, NULL, NULL)) return;
    cJSON *k = load_json(in_tmp("keep.json"));
    if (k) check_json(k, keep, 1, "eval --keep-luminance");
    CHECK(keep[0].model.mse != plain[0].model.mse, "--keep-luminance changed nothing");
    cJSON_Delete(k);

    /* tile size and the list file do not change a figure; nor does the library call */
    st = SPYNCO(log, "eval", "-q", "--threads", "2", "--no-keep-luminance", "--tile", "64", "--model", MODEL, "--json",
                in_tmp("tiles.json"), DATA("eval_set/list.txt"));
    CHECK(st == 0, "eval --tile 64: status %d: %s", st, log_text(log));
    cJSON *t = load_json(in_tmp("tiles.json"));
    if (t) check_same_figures(a, t, "--tile 64 and a list file");
    cJSON_Delete(t);
    const char *sources[1] = {EVAL_SET};
    EvalOptions opt = {.model_path = MODEL, .sources = sources, .num_sources = 1, .threads = 2};
    EvalResult res;
    st = eval_run(&opt, &res, err, sizeof err);
    CHECK(st == 0 && res.images == SET_SIZE && res.failed == 0 && res.step == meta.step,
          "eval_run: %d (%s), %d images", st, st ? err : "", res.images);
    /* cJSON prints 15 significant digits when they read back within an ulp or so */
    CHECK(close_to(res.model.mse, json_number(a, "model", "mse"), 1e-14) &&
              close_to(res.model.ssim, json_number(a, "model", "ssim"), 1e-14) &&
              close_to(res.baseline.psnr, json_number(a, "baseline", "psnr"), 1e-14),
          "eval_run's figures differ from the program's: %.17g %.17g %.17g", res.model.mse,
          res.model.ssim, res.baseline.psnr);
    cJSON_Delete(a);
}

static void test_bad_input(void) {
    char log[1024];
    snprintf(log, sizeof log, "%s", in_tmp("bad.log"));
    int st = SPYNCO(log, "eval", "-q", "--model", MODEL, in_tmp("nope.png"));
    CHECK(st == 1 && strstr(log_text(log), "nope.png") && strstr(log_text(log), "no such file"),
          "missing file: status %d: %s", st, log_text(log));

    /* unusable images are reported and counted; the others are still evaluated */
    mkdir(in_tmp("bad"), 0755);
    test_write_text(in_tmp("bad/text.png"), "not an image\n");
    uint8_t tiny[3 * 8 * 8] = {0};
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), in_tmp("bad/tiny.tif"), 8, 8, 3,
                                 GDT_Byte, NULL);
    CHECK(ds && GDALDatasetRasterIO(ds, GF_Write, 0, 0, 8, 8, tiny, 8, 8, GDT_Byte, 3, NULL, 0, 0,
                                    0) == CE_None, "writing tiny.tif");
    if (ds) GDALClose(ds);
    char good[2048];
    snprintf(good, sizeof good, "%s/%s", EVAL_SET, SET_FILES[2]);
    st = SPYNCO(log, "eval", "-q", "--threads", "2", "--no-keep-luminance", "--model", MODEL, "--json",
                in_tmp("bad.json"), in_tmp("bad/text.png"), DATA("rasterio_byte_20x20.tif"),
                good, in_tmp("bad/tiny.tif"));
    const char *text = log_text(log);
    CHECK(st == 1 && strstr(text, "text.png: not a raster") &&
              strstr(text, "rasterio_byte_20x20.tif: 1 band") && strstr(text, "colour") &&
              strstr(text, "tiny.tif: 8x8 is smaller") && strstr(text, "3 of 4 images"),
          "unusable images: status %d: %s", st, text);
    cJSON *j = load_json(in_tmp("bad.json"));
    if (j) {
        CHECK(json_number(j, NULL, "images") == 1 && json_number(j, NULL, "failed") == 3 &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(j, "failures")) == 3,
              "one good image among three bad ones: the JSON should count 1 and list 3 failures");
        CHECK(close_to(json_number(j, "model", "mse"), plain[2].model.mse, 1e-12) &&
                  close_to(json_number(j, "baseline", "ssim"), 100 * plain[2].baseline.ssim, 1e-12),
              "the good image's figures changed among bad ones");
    }
    cJSON_Delete(j);

    /* in a folder, a file GDAL cannot open is passed over with a warning */
    mkdir(in_tmp("mixed"), 0755);
    test_write_text(in_tmp("mixed/README"), "notes\n");
    char *cp[] = {"/bin/cp", good, (char *)in_tmp("mixed/image.png"), NULL};
    test_run(cp, NULL, NULL);
    st = SPYNCO(log, "eval", "--threads", "2", "--model", MODEL, in_tmp("mixed"));
    CHECK(st == 0 && strstr(log_text(log), "README") && strstr(log_text(log), "passed over") &&
              strstr(log_text(log), "1 image;"),
          "folder with a README: status %d: %s", st, log_text(log));

    mkdir(in_tmp("empty"), 0755);
    st = SPYNCO(log, "eval", "-q", "--model", MODEL, in_tmp("empty"));
    CHECK(st == 1 && strstr(log_text(log), "no images"), "empty folder: status %d: %s", st,
          log_text(log));
    mkdir(in_tmp("junk"), 0755);
    test_write_text(in_tmp("junk/notes"), "text\n");
    st = SPYNCO(log, "eval", "-q", "--model", MODEL, in_tmp("junk"));
    CHECK(st == 1 && strstr(log_text(log), "no images") && strstr(log_text(log), "1 file"),
          "folder without images: status %d: %s", st, log_text(log));

    st = SPYNCO(log, "eval", "-q", "--model", in_tmp("none.h5"), EVAL_SET);
    CHECK(st == 1 && strstr(log_text(log), "none.h5"), "missing model: status %d: %s", st,
          log_text(log));
    st = SPYNCO(log, "eval", "-q", "--model", MODEL, "--json", in_tmp("no/such/dir/x.json"),
                EVAL_SET);
    CHECK(st == 1 && strstr(log_text(log), "x.json"), "unwritable JSON: status %d: %s", st,
          log_text(log));
    CHECK(leftover_temps(tmp) == 0, "temporary files left behind after failures");

    st = SPYNCO(log, "eval", "--model", MODEL);
    CHECK(st == 2 && strstr(log_text(log), "COLOR_SRC"), "no sources: status %d", st);
    st = SPYNCO(log, "eval", "--tile", "6", EVAL_SET);
    CHECK(st == 2 && strstr(log_text(log), "--tile"), "--tile 6: status %d", st);
    st = SPYNCO(log, "eval", "--bogus", EVAL_SET);
    CHECK(st == 2, "unknown option: status %d", st);
    st = SPYNCO(log, "eval", "--help");
    CHECK(st == 0 && strstr(log_text(log), "--keep-luminance") && strstr(log_text(log), "PSNR"),
          "--help: status %d", st);
}

int main(void) {
    GDALAllRegister();
    tmp = test_tmpdir("eval");
    test_metrics();
    test_keep_luminance_math();
    test_program();
    test_bad_input();
    test_remove_tree(tmp);
    GDALDestroyDriverManager();
    return test_summary("test_eval");
}
