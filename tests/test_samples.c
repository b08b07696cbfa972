/* test_samples.c: the training sets of io/samples.h on the fixtures in tests/data
 * and on small files written into a temporary folder. */
#include <cpl_string.h>
#include <fcntl.h>
#include <ftw.h>
#include <gdal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/samples.h"
#include "testutil.h"

static char tmp[256];
static char err[1024];

static const char *fixture(const char *name) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", SPYNCO_TEST_DATA, name);
    return path[k];
}

static const char *in_tmp(const char *name) {
    static char path[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", tmp, name);
    return path[k];
}

static void mkdirs(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    for (char *p = path + strlen(tmp) + 1; *p; p++)
        if (*p == '/') *p = '\0', mkdir(path, 0755), *p = '/';
    mkdir(path, 0755);
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    for (size_t k; (k = fread(buf, 1, sizeof buf, in)) > 0;) fwrite(buf, 1, k, out);
    fclose(in), fclose(out);
}

/* A GeoTIFF from band-sequential data; alpha: the last band is alpha. */
static void write_tif(const char *path, int w, int h, int bands, GDALDataType type,
                      const void *data, int alpha) {
    char **o = NULL;
    if (bands >= 3) o = CSLSetNameValue(o, "PHOTOMETRIC", "RGB");
    if (alpha) o = CSLSetNameValue(o, "ALPHA", "YES");
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, bands, type, o);
    CSLDestroy(o);
    CHECK(ds && GDALDatasetRasterIO(ds, GF_Write, 0, 0, w, h, (void *)data, w, h, type, bands,
                                    NULL, 0, 0, 0) == CE_None,
          "writing %s", path);
    if (ds) GDALClose(ds);
}

/* Bands 1..bands of a window of a raster, band-sequential. */
static void read_region(const char *path, int x0, int y0, int w, int h, int bands,
                        GDALDataType type, void *out) {
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CHECK(ds && GDALDatasetRasterIO(ds, GF_Read, x0, y0, w, h, out, w, h, type, bands, NULL, 0,
                                    0, 0) == CE_None,
          "reading %s", path);
    if (ds) GDALClose(ds);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* stderr into a file while a call runs, to check warnings and the summary. */
static int saved_stderr = -1;
static void capture_begin(void) {
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(in_tmp("stderr.log"), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 2);
    close(fd);
}
static const char *capture_end(void) {
    static char text[8192];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(in_tmp("stderr.log"), "r");
    size_t k = fread(text, 1, sizeof text - 1, f);
    text[k] = '\0';
    fclose(f);
    fputs(text, stderr); /* still shown in the test's log */
    return text;
}

static SampleSetOptions options(SampleDomain domain, int crop) {
    SampleSetOptions o = {.domain = domain, .ht = {0.299f, 0.587f, 0.114f}, .crop = crop};
    return o;
}

static SampleSet *open1(const char *source, const SampleSetOptions *o) {
    const char *sources[1] = {source};
    return sample_set_open(sources, 1, o, err, sizeof err);
}

static uint8_t to_u8(float v) { return (uint8_t)lrintf((v + 1.0f) * 127.5f); }

/* The 8 rotations/flips of a c x n x n image, computed independently of
 * samples.c: rot90 (counter-clockwise) applied r times, then optionally a
 * left-right mirror. */
static void dihedral8(const uint8_t *img, int c, int n, uint8_t *out /* [8][c][n][n] */) {
    size_t sz = (size_t)c * n * n;
    uint8_t *cur = malloc(sz), *nxt = malloc(sz);
    memcpy(cur, img, sz);
    for (int r = 0; r < 4; r++) {
        memcpy(out + r * sz, cur, sz);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                    out[(4 + r) * sz + ((size_t)ch * n + y) * n + x] =
                        cur[((size_t)ch * n + y) * n + (n - 1 - x)];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                    nxt[((size_t)ch * n + y) * n + x] = cur[((size_t)ch * n + x) * n + (n - 1 - y)];
        memcpy(cur, nxt, sz);
    }
    free(cur), free(nxt);
}

/* Which of the 8 transforms of img a crop (floats) is, or -1. */
static int which_transform(const float *crop, const uint8_t *cands, int c, int n) {
    size_t sz = (size_t)c * n * n;
    for (int k = 0; k < 8; k++) {
        size_t i = 0;
        while (i < sz && to_u8(crop[i]) == cands[k * sz + i] && crop[i] != 0.0f) i++;
        if (i == sz) return k;
    }
    return -1;
}

/* ---- sources -------------------------------------------------------------- */

static void test_folder(void) {
    mkdirs("set/a/b/c");
    copy_file(fixture("cogeo_rgb_384x320.tif"), in_tmp("set/a/cogeo.tif"));
    test_write_text(in_tmp("set/a/cogeo.tif.aux.xml"), "<PAMDataset></PAMDataset>\n");
    copy_file(fixture("naip_plain.jpg"), in_tmp("set/a/b/c/naip.jpg"));
    copy_file(fixture("landsat_rgba_240x200.tif"), in_tmp("set/a/b/landsat.tif"));
    copy_file(fixture("naip_rgbn_266x204.tif"), in_tmp("set/z_naip4.tif"));
    test_write_text(in_tmp("set/README.txt"), "not an image\n");
    test_write_text(in_tmp("set/notes.md"), "# notes\n");
    test_write_text(in_tmp("set/bad.tif"), "this is text, not a TIFF\n");
    test_write_text(in_tmp("set/.hidden.tif"), "hidden\n");
    uint8_t tiny[3 * 32 * 32] = {0};
    write_tif(in_tmp("set/tiny.tif"), 32, 32, 3, GDT_Byte, tiny, 0);

    SampleSetOptions o = options(DOMAIN_COLOR, 128);
    o.verbose = 1;
    capture_begin();
    SampleSet *s = open1(in_tmp("set"), &o);
    const char *log = capture_end();
    CHECK(s, "folder: %s", err);
    if (!s) return;
    static const char *expect[] = {"set/a/b/c/naip.jpg", "set/a/b/landsat.tif", "set/a/cogeo.tif",
                                   "set/z_naip4.tif"};
    CHECK(sample_set_count(s) == 4, "folder: %d images, expected 4", sample_set_count(s));
    for (int i = 0; i < 4 && i < sample_set_count(s); i++)
        CHECK(!strcmp(sample_set_path(s, i), in_tmp(expect[i])), "folder: image %d is %s", i,
              sample_set_path(s, i));
    CHECK(strstr(log, "bad.tif") && strstr(log, "skipped 1 unreadable file and 1 image smaller"),
          "folder: the unreadable file is warned about and counted:\n%s", log);
    CHECK(strstr(log, "tiny.tif: 32x32, smaller than the 128x128 crop"),
          "folder: the small image is warned about:\n%s", log);
    CHECK(!strstr(log, "README") && !strstr(log, "notes.md") && !strstr(log, "aux.xml") &&
              !strstr(log, "hidden"),
          "folder: sidecars, documents and hidden files are ignored silently:\n%s", log);
    CHECK(strstr(log, "4 images, 4 in memory") && strstr(log, "0 sampled from disk"),
          "folder: summary:\n%s", log);
    sample_set_close(s);

    /* the same folder as gray: colour images need --gray-from-color */
    o = options(DOMAIN_GRAY, 128);
    s = open1(in_tmp("set"), &o);
    CHECK(!s && strstr(err, "set/a/b/c/naip.jpg") && strstr(err, "--gray-from-color"),
          "gray set of colour images: %s", s ? "opened" : err);
    sample_set_close(s);
    o.gray_from_color = 1;
    s = open1(in_tmp("set"), &o);
    CHECK(s && sample_set_count(s) == 4, "gray from colour: %s", s ? "wrong count" : err);
    sample_set_close(s);
}

static void test_list(void) {
    mkdirs("lists");
    mkdirs("img/sub");
    copy_file(fixture("rasterio_byte_20x20.tif"), in_tmp("img/byte.tif"));
    copy_file(fixture("rotterdam_pan_u16.tif"), in_tmp("img/sub/pan.tif"));
    char text[1024];
    snprintf(text, sizeof text,
             "# gray training images\n\n  ../img/byte.tif  \r\n%s\n# a folder works too\n../img/sub\n",
             fixture("rotterdam_pan_u16.tif"));
    test_write_text(in_tmp("lists/gray.txt"), text);
    SampleSetOptions o = options(DOMAIN_GRAY, 16);
    SampleSet *s = open1(in_tmp("lists/gray.txt"), &o);
    CHECK(s, "list: %s", err);
    if (s) {
        CHECK(sample_set_count(s) == 3, "list: %d images", sample_set_count(s));
        if (sample_set_count(s) == 3) {
            CHECK(!strcmp(sample_set_path(s, 0), in_tmp("lists/../img/byte.tif")),
                  "list: relative to the list's folder: %s", sample_set_path(s, 0));
            CHECK(!strcmp(sample_set_path(s, 1), fixture("rotterdam_pan_u16.tif")),
                  "list: absolute: %s", sample_set_path(s, 1));
            CHECK(!strcmp(sample_set_path(s, 2), in_tmp("lists/../img/sub/pan.tif")),
                  "list: folder entry: %s", sample_set_path(s, 2));
        }
        sample_set_close(s);
    }
    test_write_text(in_tmp("lists/broken.txt"), "# one missing\n../img/byte.tif\n../img/nope.tif\n");
    s = open1(in_tmp("lists/broken.txt"), &o);
    CHECK(!s && strstr(err, "broken.txt:3") && strstr(err, "nope.tif"), "list, missing entry: %s",
          s ? "opened" : err);
    sample_set_close(s);

    /* a single raster, and several sources together */
    s = open1(fixture("rotterdam_pan_u16.tif"), &o);
    CHECK(s && sample_set_count(s) == 1 &&
              !strcmp(sample_set_path(s, 0), fixture("rotterdam_pan_u16.tif")),
          "single raster: %s", s ? "wrong" : err);
    sample_set_close(s);
    const char *two[2] = {in_tmp("img"), fixture("rotterdam_pan_u16.tif")};
    s = sample_set_open(two, 2, &o, err, sizeof err);
    CHECK(s && sample_set_count(s) == 3, "two sources: %s", s ? "wrong count" : err);
    sample_set_close(s);
}

static void test_errors(void) {
    SampleSetOptions o = options(DOMAIN_COLOR, 64);
    SampleSet *s = open1(in_tmp("does/not/exist"), &o);
    CHECK(!s && strstr(err, "does/not/exist") && strstr(err, "no such file"), "missing: %s",
          s ? "opened" : err);
    sample_set_close(s);

    s = open1(fixture("rasterio_byte_20x20.tif"), &o);
    CHECK(!s && strstr(err, "rasterio_byte_20x20.tif") && strstr(err, "gray image in the color set"),
          "1 band in the color set: %s", s ? "opened" : err);
    sample_set_close(s);

    s = open1(in_tmp("set/bad.tif"), &o);
    CHECK(!s && strstr(err, "set/bad.tif") && strstr(err, "not a raster"),
          "named unreadable file: %s", s ? "opened" : err);
    sample_set_close(s);

    mkdirs("empty");
    s = open1(in_tmp("empty"), &o);
    CHECK(!s && strstr(err, "no images"), "empty folder: %s", s ? "opened" : err);
    sample_set_close(s);

    mkdirs("junk");
    test_write_text(in_tmp("junk/a.tif"), "text\n");
    test_write_text(in_tmp("junk/b.txt"), "text\n");
    s = open1(in_tmp("junk"), &o);
    CHECK(!s && strstr(err, "no images") && strstr(err, "only 1 unreadable file"),
          "only unreadable files: %s", s ? "opened" : err);
    sample_set_close(s);

    mkdirs("small");
    uint8_t px[3 * 40 * 30] = {0};
    write_tif(in_tmp("small/a.tif"), 40, 30, 3, GDT_Byte, px, 0);
    write_tif(in_tmp("small/b.tif"), 24, 24, 3, GDT_Byte, px, 0);
    s = open1(in_tmp("small"), &o);
    CHECK(!s && strstr(err, "64x64") && strstr(err, "largest is 40x30") && strstr(err, "a.tif"),
          "all too small: %s", s ? "opened" : err);
    sample_set_close(s);

    o.band_map[0] = 1, o.band_map[1] = 2, o.band_map[2] = 7;
    s = open1(fixture("naip_rgbn_266x204.tif"), &o);
    CHECK(!s && strstr(err, "naip_rgbn_266x204.tif") && strstr(err, "4 bands: fewer than") &&
              strstr(err, "1,2,7"),
          "band map beyond the bands: %s", s ? "opened" : err);
    sample_set_close(s);
    o.band_map[1] = o.band_map[2] = 0;
    s = open1(fixture("naip_rgbn_266x204.tif"), &o);
    CHECK(!s && strstr(err, "three"), "partial band map: %s", s ? "opened" : err);
    sample_set_close(s);

    /* a palette image would be read as gray indices */
    GDALDatasetH pal = GDALCreate(GDALGetDriverByName("GTiff"), in_tmp("palette.tif"), 64, 64, 1,
                                  GDT_Byte, NULL);
    GDALColorTableH table = GDALCreateColorTable(GPI_RGB);
    GDALColorEntry red = {255, 0, 0, 255};
    GDALSetColorEntry(table, 1, &red);
    GDALSetRasterColorTable(GDALGetRasterBand(pal, 1), table);
    GDALDestroyColorTable(table);
    GDALClose(pal);
    o = options(DOMAIN_GRAY, 32);
    s = open1(in_tmp("palette.tif"), &o);
    CHECK(!s && strstr(err, "palette.tif") && strstr(err, "-expand rgb"), "palette: %s",
          s ? "opened" : err);
    sample_set_close(s);

    /* a symlink back to a parent folder, a list that names itself */
    mkdirs("loop/sub");
    copy_file(fixture("rotterdam_pan_u16.tif"), in_tmp("loop/sub/pan.tif"));
    CHECK(symlink("..", in_tmp("loop/sub/up")) == 0, "symlink");
    s = open1(in_tmp("loop"), &o);
    CHECK(!s && strstr(err, "loop/sub/up") && strstr(err, "folder that contains itself"),
          "folder loop: %s", s ? "opened" : err);
    sample_set_close(s);
    test_write_text(in_tmp("lists/self.txt"), "self.txt\n");
    s = open1(in_tmp("lists/self.txt"), &o);
    CHECK(!s && strstr(err, "list that contains itself"), "list loop: %s", s ? "opened" : err);
    sample_set_close(s);

    /* every pixel no-data (alpha 0) */
    uint8_t rgba[4 * 64 * 64] = {0};
    write_tif(in_tmp("nodata.tif"), 64, 64, 4, GDT_Byte, rgba, 1);
    o = options(DOMAIN_COLOR, 32);
    s = open1(in_tmp("nodata.tif"), &o);
    CHECK(!s && strstr(err, "nodata.tif") && strstr(err, "no-data"), "all no-data: %s",
          s ? "opened" : err);
    sample_set_close(s);
}

/* ---- pixels --------------------------------------------------------------- */

/* A 96x96 colour tile cut from the cogeo fixture: the gray set (through H_t)
 * and the color set must give exactly its transforms; all 8 appear. */
static void test_pixels_and_transforms(void) {
    enum { N = 96 };
    static uint8_t rgb[3 * N * N], gray[N * N], cands[8 * 3 * N * N];
    static float out[16 * 3 * N * N];
    read_region(fixture("cogeo_rgb_384x320.tif"), 150, 100, N, N, 3, GDT_Byte, rgb);
    write_tif(in_tmp("tile.tif"), N, N, 3, GDT_Byte, rgb, 0);
    int ties = 0;
    for (int i = 0; i < N * N; i++) {
        double g = 0.299 * rgb[i] + 0.587 * rgb[N * N + i] + 0.114 * rgb[2 * N * N + i];
        ties += fabs(g - floor(g) - 0.5) < 1e-6;
        gray[i] = (uint8_t)nearbyint(g);
    }

    SampleSetOptions o = options(DOMAIN_GRAY, N);
    o.gray_from_color = 1;
    SampleSet *s = open1(in_tmp("tile.tif"), &o);
    CHECK(s, "tile gray: %s", err);
    if (s) {
        dihedral8(gray, 1, N, cands);
        Rng r;
        rng_seed(&r, 7);
        int ok = sample_batch(s, &r, 16, out, err, sizeof err) == 0, matched = 0;
        CHECK(ok, "tile gray batch: %s", err);
        for (int b = 0; ok && b < 16; b++) matched += which_transform(out + b * N * N, cands, 1, N) >= 0;
        CHECK(matched == 16, "gray from colour = round(0.299R + 0.587G + 0.114B) (%d of 16 crops "
              "match; %d exact ties in the tile)", matched, ties);
        sample_set_close(s);
    }

    o = options(DOMAIN_COLOR, N);
    s = open1(in_tmp("tile.tif"), &o);
    CHECK(s, "tile color: %s", err);
    if (!s) return;
    dihedral8(rgb, 3, N, cands);
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++)
            CHECK(memcmp(cands + a * 3 * N * N, cands + b * 3 * N * N, 3 * N * N),
                  "the tile has no symmetry: transforms %d and %d differ", a, b);
    int hits[8] = {0}, unmatched = 0, multiset_ok = 1;
    size_t hist_img[256] = {0};
    for (int i = 0; i < 3 * N * N; i++) hist_img[rgb[i]]++;
    Rng r;
    rng_seed(&r, 11);
    for (int round = 0; round < 25; round++) {
        if (sample_batch(s, &r, 16, out, err, sizeof err)) {
            CHECK(0, "tile color batch: %s", err);
            break;
        }
        for (int b = 0; b < 16; b++) {
            const float *crop = out + (size_t)b * 3 * N * N;
            int k = which_transform(crop, cands, 3, N);
            if (k < 0) unmatched++;
            else hits[k]++;
            size_t hist[256] = {0};
            for (int i = 0; i < 3 * N * N; i++) hist[to_u8(crop[i])]++;
            multiset_ok &= !memcmp(hist, hist_img, sizeof hist);
        }
    }
    CHECK(unmatched == 0, "color crops: %d are not a rotation/flip of the tile", unmatched);
    CHECK(multiset_ok, "every crop keeps the tile's pixel values");
    for (int k = 0; k < 8; k++)
        CHECK(hits[k] > 20, "transform %d drawn %d times in 400 (expected about 50)", k, hits[k]);
    sample_set_close(s);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 16-bit gray: mapped by the image's 2nd-98th percentiles, then 8 bits. */
static void test_16bit(void) {
    enum { N = 160 };
    static uint16_t raw[N * N];
    static float sorted[N * N], out[N * N];
    static uint8_t expect[N * N], cands[8 * N * N];
    read_region(fixture("rotterdam_pan_u16.tif"), 0, 0, N, N, 1, GDT_UInt16, raw);
    for (int i = 0; i < N * N; i++) sorted[i] = raw[i];
    qsort(sorted, N * N, sizeof(float), cmp_float);
    float lo = sorted[(size_t)(0.02 * (N * N - 1))], hi = sorted[(size_t)(0.98 * (N * N - 1))];
    float k = (float)(255.0 / ((double)hi - lo));
    int zeros = 0, full = 0;
    for (int i = 0; i < N * N; i++) {
        float v = (raw[i] - lo) * k;
        expect[i] = (uint8_t)rintf(v < 0 ? 0 : v > 255 ? 255 : v);
        zeros += expect[i] == 0, full += expect[i] == 255;
    }
    CHECK(hi - lo > 255 && zeros > N * N / 100 && full > N * N / 100,
          "the fixture is 16-bit data wider than 8 bits (%g..%g)", lo, hi);
    dihedral8(expect, 1, N, cands);
    SampleSetOptions o = options(DOMAIN_GRAY, N);
    SampleSet *s = open1(fixture("rotterdam_pan_u16.tif"), &o);
    CHECK(s, "16-bit: %s", err);
    if (!s) return;
    Rng r;
    rng_seed(&r, 3);
    int found = -1;
    if (sample_batch(s, &r, 1, out, err, sizeof err) == 0) {
        /* which_transform treats 0.0 as no-data; 8-bit values never map to it */
        found = which_transform(out, cands, 1, N);
    }
    CHECK(found >= 0, "16-bit gray scaled by its 2nd-98th percentiles (%g..%g) to 0..255", lo, hi);
    sample_set_close(s);

    /* Float64, 4 bands: colour from bands 1-3, scaled to use the whole range */
    o = options(DOMAIN_COLOR, 80);
    s = open1(fixture("rotterdam_ms_f64.tif"), &o);
    CHECK(s, "Float64 colour: %s", err);
    if (!s) return;
    static float rgb[3 * 80 * 80];
    CHECK(sample_batch(s, &r, 1, rgb, err, sizeof err) == 0, "Float64 batch: %s", err);
    float mn = 1, mx = -1;
    for (int i = 0; i < 3 * 80 * 80; i++) mn = fminf(mn, rgb[i]), mx = fmaxf(mx, rgb[i]);
    CHECK(mn == -1.0f && mx == 1.0f, "Float64 colour spans [-1, 1]: %g..%g", mn, mx);
    sample_set_close(s);
}

/* Gray + alpha: band 1, alpha as the mask. */
static void test_gray_alpha(void) {
    enum { N = 48 };
    static uint8_t px[2 * N * N];
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) px[y * N + x] = (uint8_t)(3 * x + 2 * y + 1), px[N * N + y * N + x] = 255;
    px[N * N + 5 * N + 7] = 0; /* one no-data pixel */
    write_tif(in_tmp("gray_alpha.tif"), N, N, 2, GDT_Byte, px, 1);
    SampleSetOptions o = options(DOMAIN_GRAY, N);
    SampleSet *s = open1(in_tmp("gray_alpha.tif"), &o);
    CHECK(s, "gray+alpha: %s", err);
    if (!s) return;
    static float out[N * N];
    Rng r;
    rng_seed(&r, 5);
    CHECK(sample_batch(s, &r, 1, out, err, sizeof err) == 0, "gray+alpha batch: %s", err);
    int nodata = 0;
    size_t hist[256] = {0}, want[256] = {0};
    for (int i = 0; i < N * N; i++) {
        if (out[i] == 0.0f) nodata++;
        else hist[to_u8(out[i])]++;
        if (i != 5 * N + 7) want[px[i]]++;
    }
    CHECK(nodata == 1 && !memcmp(hist, want, sizeof hist),
          "gray+alpha: band 1's values, the alpha-0 pixel as no-data (0.0): %d", nodata);
    sample_set_close(s);
}

static void test_determinism(void) {
    SampleSetOptions o = options(DOMAIN_COLOR, 64);
    SampleSet *s = open1(in_tmp("set"), &o);
    CHECK(s, "determinism: %s", err);
    if (!s) return;
    size_t len = 8 * 3 * 64 * 64;
    float *a = malloc(len * sizeof(float)), *b = malloc(len * sizeof(float)),
          *c = malloc(len * sizeof(float));
    Rng r;
    rng_seed(&r, 42);
    sample_batch(s, &r, 8, a, err, sizeof err);
    sample_batch(s, &r, 8, c, err, sizeof err);
    CHECK(memcmp(a, c, len * sizeof(float)), "the next batch differs");
    rng_seed(&r, 42);
    sample_batch(s, &r, 8, b, err, sizeof err);
    CHECK(!memcmp(a, b, len * sizeof(float)), "same seed, same batch");
    rng_seed(&r, 43);
    sample_batch(s, &r, 8, b, err, sizeof err);
    CHECK(memcmp(a, b, len * sizeof(float)), "another seed, another batch");
    free(a), free(b), free(c);
    sample_set_close(s);
}

/* Windows read from disk equal crops from memory, and no-data is skipped. */
static void test_large_and_nodata(void) {
    enum { N = 64, B = 50 };
    SampleSetOptions o = options(DOMAIN_COLOR, N);
    SampleSet *mem = open1(fixture("landsat_rgba_240x200.tif"), &o);
    o.max_memory_pixels = 1000;
    o.verbose = 1;
    capture_begin();
    SampleSet *disk = open1(fixture("landsat_rgba_240x200.tif"), &o);
    const char *log = capture_end();
    CHECK(mem && disk, "landsat: %s", err);
    CHECK(strstr(log, "1 image, 0 in memory (0.0 MiB), 1 sampled from disk"), "summary: %s", log);
    if (mem && disk) {
        size_t len = (size_t)B * 3 * N * N;
        float *a = malloc(len * sizeof(float)), *b = malloc(len * sizeof(float));
        Rng ra, rb;
        rng_seed(&ra, 99), rng_seed(&rb, 99);
        int ok = !sample_batch(mem, &ra, B, a, err, sizeof err) &&
                 !sample_batch(disk, &rb, B, b, err, sizeof err);
        CHECK(ok, "landsat batches: %s", err);
        CHECK(ok && !memcmp(a, b, len * sizeof(float)) && !memcmp(&ra, &rb, sizeof ra),
              "windows read from disk equal crops from memory");
        int worst = 0, with_nodata = 0;
        for (int k = 0; ok && k < B; k++) {
            int nodata = 0;
            const float *crop = a + (size_t)k * 3 * N * N;
            for (int i = 0; i < N * N; i++)
                nodata += crop[i] == 0.0f && crop[N * N + i] == 0.0f && crop[2 * N * N + i] == 0.0f;
            worst = nodata > worst ? nodata : worst;
            with_nodata += nodata > 0;
        }
        /* 58% of the image is no-data and 74% of all 64x64 windows have more than 10% */
        CHECK(ok && worst * 10 <= N * N && with_nodata > 0,
              "crops keep at most 10%% no-data (worst %d of %d pixels; %d of %d crops have some)",
              worst, N * N, with_nodata, B);
        free(a), free(b);
    }
    sample_set_close(mem);
    sample_set_close(disk);

    /* valid only in an 8x8 corner: no 32x32 crop can qualify, memory or disk */
    static uint8_t rgba[4 * 64 * 64];
    for (int i = 0; i < 64 * 64; i++) {
        rgba[i] = rgba[64 * 64 + i] = rgba[2 * 64 * 64 + i] = (uint8_t)(i % 251);
        rgba[3 * 64 * 64 + i] = (i / 64 < 8 && i % 64 < 8) ? 255 : 0;
    }
    write_tif(in_tmp("corner.tif"), 64, 64, 4, GDT_Byte, rgba, 1);
    for (int pass = 0; pass < 2; pass++) {
        o = options(DOMAIN_COLOR, 32);
        o.max_memory_pixels = pass ? 100 : 0;
        SampleSet *s = open1(in_tmp("corner.tif"), &o);
        CHECK(s, "corner: %s", err);
        if (!s) continue;
        static float out[3 * 32 * 32];
        Rng r;
        rng_seed(&r, 1);
        CHECK(sample_batch(s, &r, 1, out, err, sizeof err) != 0 && strstr(err, "no-data"),
              "mostly no-data (%s): an error after bounded tries: %s", pass ? "disk" : "memory",
              err);
        sample_set_close(s);
    }
}

/* A batch in parts (data-parallel ranks): each part equals its slice of
 * the whole batch, and the generator ends where the whole batch leaves it,
 * for crops from memory and from disk, with and without no-data redraws. */
static void test_batch_parts(void) {
    enum { N = 64, B = 24 };
    /* with an alpha mask (crops of other ranks are read for their validity)
     * and without one (they are not read at all) */
    const char *files[2] = {"landsat_rgba_240x200.tif", "cogeo_rgb_384x320.tif"};
    const int cuts[4] = {0, 7, 16, B}; /* three ranks' unequal slices */
    for (int f = 0; f < 2; f++)
        for (int disk = 0; disk < 2; disk++) {
            SampleSetOptions o = options(DOMAIN_COLOR, N);
            o.max_memory_pixels = disk ? 1000 : 0;
            SampleSet *set = open1(fixture(files[f]), &o);
            CHECK(set, "%s: %s", files[f], err);
            if (!set) continue;
            size_t per = (size_t)3 * N * N;
            float *whole = malloc(B * per * sizeof(float)), *part = malloc(B * per * sizeof(float));
            Rng r0;
            rng_seed(&r0, 5);
            int ok = !sample_batch(set, &r0, B, whole, err, sizeof err);
            for (int k = 0; ok && k < 3; k++) {
                Rng r;
                rng_seed(&r, 5);
                int count = cuts[k + 1] - cuts[k];
                memset(part, 0xff, B * per * sizeof(float));
                ok = !sample_batch_part(set, &r, B, cuts[k], count, part, err, sizeof err);
                CHECK(ok && !memcmp(part, whole + cuts[k] * per, count * per * sizeof(float)),
                      "%s (%s): crops %d..%d differ from the whole batch's", files[f],
                      disk ? "disk" : "memory", cuts[k], cuts[k + 1] - 1);
                CHECK(ok && !memcmp(&r, &r0, sizeof r), "%s (%s): the part leaves the generator "
                      "elsewhere", files[f], disk ? "disk" : "memory");
                /* nothing written beyond the part */
                const unsigned char *rest = (const unsigned char *)(part + count * per);
                CHECK(rest[0] == 0xff && rest[(B - count) * per * sizeof(float) - 1] == 0xff,
                      "sample_batch_part wrote past its crops");
            }
            CHECK(ok, "%s: %s", files[f], err);
            free(whole), free(part);
            sample_set_close(set);
        }
}

int main(void) {
    GDALAllRegister();
    snprintf(tmp, sizeof tmp, "/tmp/spynco_test_samples_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_folder();
    test_list();
    test_errors();
    test_pixels_and_transforms();
    test_16bit();
    test_gray_alpha();
    test_determinism();
    test_large_and_nodata();
    test_batch_parts();
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_samples");
}
