/* `spynco run` for real: recipes written here, run by the real program as a
 * child process, outputs checked through the GDAL and OGR C APIs. Inputs are
 * the real GeoTIFF crops of tests/data, a zip archive of tiles cut from one of
 * them (written through GDAL's /vsizip/), and larger resampled copies for the
 * runs that are killed or interrupted. A small "vivid" model (testmodel.h)
 * makes pixel comparisons meaningful. Everything happens in a fresh folder
 * under /tmp, removed at the end. */
#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <dirent.h>
#include <errno.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <limits.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testmodel.h"
#include "testutil.h"

#define DATA(name) SPYNCO_TEST_DATA "/" name
#define COGEO DATA("cogeo_rgb_384x320.tif")
#define NAIP DATA("naip_rgbn_266x204.tif")
#define LANDSAT DATA("landsat_rgba_240x200.tif")
#define EVAL_SET DATA("eval_set")
#define BIG_INPUTS 5
#define BIG_W 512 /* the cogeo fixture resampled: each takes a moment to colorize */
#define BIG_H 448
#define KILL_TIMEOUT 300 /* seconds; an ASan build is slow */

static char tmp[256], model[PATH_MAX];

/* ---- paths and files -------------------------------------------------------------- */

/* A path in the temporary folder, by value (testutil.h) */
#define tpath(...) test_path(tmp, __VA_ARGS__)
#define tp(...) (tpath(__VA_ARGS__).s)

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Journal entries in state `state` in OUT/.spynco-journal. */
static int journal_count(const char *out, const char *state) {
    char dir[PATH_MAX], pattern[64], path[PATH_MAX + 300];
    snprintf(dir, sizeof dir, "%s/.spynco-journal", out);
    snprintf(pattern, sizeof pattern, "\"state\":\t\"%s\"", state);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = test_read_file(path);
        n += text && strstr(text, pattern);
        free(text);
    }
    if (d) closedir(d);
    return n;
}

static int vsi_copy(const char *from, const char *to) {
    VSILFILE *in = VSIFOpenL(from, "rb"), *out = in ? VSIFOpenL(to, "wb") : NULL;
    char buf[65536];
    size_t got;
    int ok = in && out;
    while (ok && (got = VSIFReadL(buf, 1, sizeof buf, in)) > 0) ok = VSIFWriteL(buf, 1, got, out) == got;
    if (out && VSIFCloseL(out) != 0) ok = 0;
    if (in) VSIFCloseL(in);
    CHECK(ok, "cannot copy %s to %s", from, to);
    return ok ? 0 : -1;
}

/* gdal_translate with options (NULL-terminated). */
static int translate(const char *src, const char *dst, const char *const *opts) {
    GDALDatasetH in = GDALOpen(src, GA_ReadOnly);
    GDALTranslateOptions *o = GDALTranslateOptionsNew((char **)opts, NULL);
    GDALDatasetH out = in && o ? GDALTranslate(dst, in, o, NULL) : NULL;
    CHECK(out != NULL, "gdal_translate %s -> %s: %s", src, dst, CPLGetLastErrorMsg());
    if (out) GDALClose(out);
    if (in) GDALClose(in);
    GDALTranslateOptionsFree(o);
    return out ? 0 : -1;
}

/* ---- the program --------------------------------------------------------------------- */

static char run_log[PATH_MAX];

/* spynco run [extra...] RECIPE, stdout and stderr into run_log; the exit status. */
static int spynco_run(const char *recipe, ...) {
    char *argv[16] = {SPYNCO_BIN, "run", "--threads", "2"};
    int argc = 4;
    va_list ap;
    va_start(ap, recipe);
    for (char *a; argc < 14 && (a = va_arg(ap, char *));) argv[argc++] = a;
    va_end(ap);
    argv[argc++] = (char *)recipe;
    argv[argc] = NULL;
    unlink(run_log);
    return test_run(argv, NULL, run_log);
}

static char *log_text(void) {
    char *t = test_read_file(run_log);
    return t ? t : calloc(1, 1);
}

static int log_has(const char *part) {
    char *t = log_text();
    int found = strstr(t, part) != NULL;
    free(t);
    return found;
}

/* The summary line of an input (first line of the log naming it and status). */
static int summary_says(const char *input, const char *status) {
    char *t = log_text();
    int found = 0;
    for (char *line = strtok(t, "\n"); line && !found; line = strtok(NULL, "\n"))
        found = strstr(line, input) && strstr(line, status) && !strstr(line, "->");
    free(t);
    return found;
}

static void dump_log(void) {
    char *t = log_text();
    fprintf(stderr, "---- spynco run output ----\n%s----\n", t);
    free(t);
}

/* ---- rasters ------------------------------------------------------------------------- */

typedef struct {
    int width, height, bands, has_gt;
    double gt[6];
    char wkt[4096];
} Info;

static int raster_info(const char *path, Info *info) {
    memset(info, 0, sizeof *info);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds) return -1;
    info->width = GDALGetRasterXSize(ds), info->height = GDALGetRasterYSize(ds);
    info->bands = GDALGetRasterCount(ds);
    info->has_gt = GDALGetGeoTransform(ds, info->gt) == CE_None;
    snprintf(info->wkt, sizeof info->wkt, "%s", GDALGetProjectionRef(ds));
    GDALClose(ds);
    return 0;
}

/* bands planes of a window, bytes; NULL on error. */
static uint8_t *read_pixels(const char *path, int x, int y, int w, int h, int bands) {
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    uint8_t *px = ds ? malloc((size_t)w * h * bands) : NULL;
    if (px && GDALDatasetRasterIO(ds, GF_Read, x, y, w, h, px, w, h, GDT_Byte, bands, NULL, 0, 0,
                                  0) != CE_None) {
        free(px);
        px = NULL;
    }
    if (ds) GDALClose(ds);
    return px;
}

/* Reads every pixel of every band: a corrupt file fails here. */
static int fully_readable(const char *path) {
    Info info;
    if (raster_info(path, &info)) return 0;
    uint8_t *px = read_pixels(path, 0, 0, info.width, info.height, info.bands);
    free(px);
    return px != NULL;
}

static OGRSpatialReferenceH srs_gis(const char *wkt_or_code) {
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRSetFromUserInput(s, wkt_or_code);
    OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    return s;
}

static int same_gt(const double a[6], const double b[6], double tol) {
    for (int i = 0; i < 6; i++)
        if (!(fabs(a[i] - b[i]) <= tol)) return 0;
    return 1;
}

/* ---- (a) a zip archive of GeoTIFF tiles into a folder with a mosaic ----------------------- */

static const int TILES[4][2] = {{0, 0}, {192, 0}, {0, 160}, {192, 160}};
static const char *const TILE_MEMBERS[4] = {"t00.tif", "t01.tif", "sub/t10.tif", "sub/t11.tif"};

static void test_zip_mosaic(void) {
    /* four 192x160 tiles of the cogeo fixture, two in a subfolder, and a README */
    for (int i = 0; i < 4; i++) {
        char x[16], y[16], member[PATH_MAX + 64];
        snprintf(x, sizeof x, "%d", TILES[i][0]);
        snprintf(y, sizeof y, "%d", TILES[i][1]);
        const char *opts[] = {"-srcwin", x, y, "192", "160", NULL};
        TestPath tile = tpath("tile%d.tif", i);
        snprintf(member, sizeof member, "/vsizip/%s/%s", tp("tiles.zip"), TILE_MEMBERS[i]);
        if (translate(COGEO, tile.s, opts) || vsi_copy(tile.s, member)) return;
    }
    char readme[PATH_MAX + 64];
    snprintf(readme, sizeof readme, "/vsizip/%s/README.txt", tp("tiles.zip"));
    VSILFILE *f = VSIFOpenL(readme, "wb");
    CHECK(f && VSIFWriteL("tiles\n", 1, 6, f) == 6, "write README.txt into the zip");
    if (f) VSIFCloseL(f);

    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs: tiles.zip\n  output: out_zip\n  tile: 64\n"
             "  mosaic: true\n", model);
    test_write_text(tp("zip.yaml"), recipe);
    int rc = spynco_run(tp("zip.yaml"), "-q", NULL);
    CHECK(rc == 0, "zip recipe: exit %d", rc);
    if (rc) dump_log();
    CHECK(log_has("4 inputs: 4 done, 0 kept, 0 skipped, 0 failed"), "the summary counts 4 tiles "
          "(README.txt is no input)");
    Info cogeo, vrt, tile;
    CHECK(raster_info(COGEO, &cogeo) == 0, "open %s", COGEO);
    const char *names[4] = {"t00_color.tif", "t01_color.tif", "t10_color.tif", "t11_color.tif"};
    for (int i = 0; i < 4; i++) {
        TestPath out = tpath("out_zip/%s", names[i]);
        int ok = raster_info(out.s, &tile) == 0;
        CHECK(ok && tile.width == 192 && tile.height == 160 && tile.bands == 3, "%s: %dx%d, %d bands",
              out.s, tile.width, tile.height, tile.bands);
        double want[6];
        memcpy(want, cogeo.gt, sizeof want);
        want[0] += TILES[i][0] * cogeo.gt[1], want[3] += TILES[i][1] * cogeo.gt[5];
        CHECK(ok && tile.has_gt && same_gt(tile.gt, want, 1e-6), "%s: geotransform of its tile",
              out.s);
    }
    CHECK(journal_count(tp("out_zip"), "done") == 4, "4 journal entries 'done'");
    /* the mosaic: the tiles back in place */
    const char *mosaic = tp("out_zip/mosaic.vrt");
    int ok = raster_info(mosaic, &vrt) == 0;
    CHECK(ok && vrt.width == 384 && vrt.height == 320 && vrt.bands == 3,
          "mosaic %dx%d, %d bands, expected 384x320, 3", vrt.width, vrt.height, vrt.bands);
    CHECK(ok && same_gt(vrt.gt, cogeo.gt, 1e-6), "mosaic geotransform = the cogeo's");
    GDALDatasetH ds = GDALOpen(mosaic, GA_ReadOnly);
    char **files = ds ? GDALGetFileList(ds) : NULL;
    int sources = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; files && files[j]; j++) sources += strstr(files[j], names[i]) != NULL;
    CHECK(sources == 4 && CSLCount(files) == 5, "the mosaic's files: the VRT and the 4 outputs (%d)",
          CSLCount(files));
    CSLDestroy(files);
    if (ds) GDALClose(ds);
    char *text = test_read_file(mosaic);
    CHECK(text && strstr(text, "relativeToVRT=\"1\""), "the mosaic names its sources relatively");
    free(text);
    for (int i = 0; i < 4 && ok; i++) {
        uint8_t *a = read_pixels(mosaic, TILES[i][0], TILES[i][1], 192, 160, 3);
        uint8_t *b = read_pixels(tpath("out_zip/%s", names[i]).s, 0, 0, 192, 160, 3);
        CHECK(a && b && !memcmp(a, b, 3 * 192 * 160), "mosaic pixels of %s", names[i]);
        free(a), free(b);
    }
}

/* ---- (b) reprojection, checked with OGR ---------------------------------------------------- */

/* The bounding box of a raster's footprint transformed to lon/lat, each edge densified. */
static void footprint_lonlat(const Info *in, double box[4]) {
    OGRSpatialReferenceH src = srs_gis(in->wkt), dst = srs_gis("EPSG:4326");
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(src, dst);
    box[0] = box[1] = INFINITY, box[2] = box[3] = -INFINITY;
    for (int edge = 0; edge < 4; edge++)
        for (int k = 0; k <= 100; k++) {
            double t = k / 100.0, px = edge < 2 ? t * in->width : (edge == 2 ? 0 : in->width);
            double py = edge < 2 ? (edge == 0 ? 0 : in->height) : t * in->height;
            double x = in->gt[0] + px * in->gt[1], y = in->gt[3] + py * in->gt[5];
            if (!OCTTransform(ct, 1, &x, &y, NULL)) continue;
            box[0] = fmin(box[0], x), box[2] = fmax(box[2], x);
            box[1] = fmin(box[1], y), box[3] = fmax(box[3], y);
        }
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(src), OSRDestroySpatialReference(dst);
}

/* Mean |difference| over interior points between the colorized input (plain,
 * the input's grid) and the warped output read where OGR puts each point;
 * with mirror, the points are looked up mirrored (a wrong placement). */
static double warped_difference(const char *input, const char *plain, const char *warped,
                                int mirror, int *opaque) {
    Info in, out;
    if (raster_info(input, &in) || raster_info(warped, &out)) return 1e9;
    OGRSpatialReferenceH src = srs_gis(in.wkt), dst = srs_gis(out.wkt);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(src, dst);
    uint8_t *a = read_pixels(plain, 0, 0, in.width, in.height, 3);
    uint8_t *b = read_pixels(warped, 0, 0, out.width, out.height, 4);
    double sum = 0;
    int count = 0;
    *opaque = 1;
    for (int j = 1; j < 8 && a && b; j++)
        for (int i = 1; i < 8; i++) {
            int px = i * in.width / 8, py = j * in.height / 8;
            int qx = mirror ? in.width - 1 - px : px, qy = mirror ? in.height - 1 - py : py;
            double x = in.gt[0] + (qx + 0.5) * in.gt[1], y = in.gt[3] + (qy + 0.5) * in.gt[5];
            if (!OCTTransform(ct, 1, &x, &y, NULL)) continue;
            int ox = (int)floor((x - out.gt[0]) / out.gt[1]), oy = (int)floor((y - out.gt[3]) / out.gt[5]);
            if (ox < 0 || oy < 0 || ox >= out.width || oy >= out.height) continue;
            size_t ip = (size_t)py * in.width + px, op = (size_t)oy * out.width + ox;
            size_t iplane = (size_t)in.width * in.height, oplane = (size_t)out.width * out.height;
            for (int c = 0; c < 3; c++) sum += abs((int)a[c * iplane + ip] - (int)b[c * oplane + op]);
            if (b[3 * oplane + op] != 255) *opaque = 0;
            count += 3;
        }
    free(a), free(b);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(src), OSRDestroySpatialReference(dst);
    return count ? sum / count : 1e9;
}

static void test_reproject(void) {
    char recipe[2 * PATH_MAX];
    /* the same inputs on their own grids: the reference for pixels (and for (c)) */
    snprintf(recipe, sizeof recipe, "colorize:\n  model: %s\n  inputs: [%s, %s]\n  output: plain\n",
             model, COGEO, NAIP);
    test_write_text(tp("plain.yaml"), recipe);
    int rc = spynco_run(tp("plain.yaml"), "-q", NULL);
    CHECK(rc == 0, "plain recipe: exit %d", rc);
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs:\n    - %s\n    - %s\n  output: lonlat\n"
             "  name: \"{stem}_ll.tif\"\n  t_srs: EPSG:4326\n  resampling: near\n",
             model, COGEO, NAIP);
    test_write_text(tp("warp.yaml"), recipe);
    rc = spynco_run(tp("warp.yaml"), "-q", NULL);
    CHECK(rc == 0, "reprojection recipe: exit %d", rc);
    if (rc) dump_log();
    const char *inputs[2] = {COGEO, NAIP};
    const char *plain[2] = {"plain/cogeo_rgb_384x320_color.tif", "plain/naip_rgbn_266x204_color.tif"};
    const char *warped[2] = {"lonlat/cogeo_rgb_384x320_ll.tif", "lonlat/naip_rgbn_266x204_ll.tif"};
    OGRSpatialReferenceH wgs84 = srs_gis("EPSG:4326");
    for (int i = 0; i < 2; i++) {
        Info in, out;
        TestPath w = tpath("%s", warped[i]);
        if (raster_info(inputs[i], &in) || raster_info(w.s, &out)) {
            CHECK(0, "cannot open %s", w.s);
            continue;
        }
        OGRSpatialReferenceH s = srs_gis(out.wkt);
        CHECK(OSRIsSame(s, wgs84), "%s is in EPSG:4326", w.s);
        OSRDestroySpatialReference(s);
        CHECK(out.bands == 4, "%s has an alpha band (%d bands)", w.s, out.bands);
        /* the output covers exactly the input's footprint, to a pixel */
        double box[4];
        footprint_lonlat(&in, box);
        double ext[4] = {out.gt[0], out.gt[3] + out.height * out.gt[5],
                         out.gt[0] + out.width * out.gt[1], out.gt[3]};
        double px = out.gt[1], py = -out.gt[5];
        CHECK(fabs(ext[0] - box[0]) <= px && fabs(ext[2] - box[2]) <= px &&
                  fabs(ext[1] - box[1]) <= py && fabs(ext[3] - box[3]) <= py,
              "%s: extent %.8f %.8f %.8f %.8f, the input's footprint in lon/lat %.8f %.8f %.8f "
              "%.8f (pixel %.2g x %.2g)", w.s, ext[0], ext[1], ext[2], ext[3], box[0], box[1],
              box[2], box[3], px, py);
        /* each point's colour is where OGR puts it (nearest neighbour: the same pixel
         * up to a pixel's shift), far closer than at the mirrored place */
        int opaque, opaque_m;
        TestPath p = tpath("%s", plain[i]);
        double d = warped_difference(inputs[i], p.s, w.s, 0, &opaque);
        double wrong = warped_difference(inputs[i], p.s, w.s, 1, &opaque_m);
        printf("%s: mean |colour difference| %.1f DN at OGR's places, %.1f mirrored\n",
               warped[i], d, wrong);
        CHECK(d < 12 && d < 0.4 * wrong && opaque, "%s: colours %.1f DN from the unwarped output's "
              "at the same places (%.1f at mirrored places), opaque %d", w.s, d, wrong, opaque);
    }
    OSRDestroySpatialReference(wgs84);
}

/* ---- (c) an area of interest: one raster clipped, one outside -------------------------------- */

static void test_aoi(void) {
    Info in;
    if (raster_info(COGEO, &in)) {
        CHECK(0, "open %s", COGEO);
        return;
    }
    /* the aoi: lon/lat of the points (102.5, 61.5) and (300.5, 250.5) in pixels:
     * pixels 102..300 x 61..250, the corner moved down to multiples of 4 (100, 60) */
    OGRSpatialReferenceH src = srs_gis(in.wkt), wgs84 = srs_gis("EPSG:4326");
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(src, wgs84);
    double x[2] = {in.gt[0] + 102.5 * in.gt[1], in.gt[0] + 300.5 * in.gt[1]};
    double y[2] = {in.gt[3] + 61.5 * in.gt[5], in.gt[3] + 250.5 * in.gt[5]};
    int ok = OCTTransform(ct, 2, x, y, NULL);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(src), OSRDestroySpatialReference(wgs84);
    CHECK(ok, "transform the aoi corners");
    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs: [%s, %s]\n  output: aoi\n"
             "  aoi: [%.10f, %.10f, %.10f, %.10f]\n", model, COGEO, NAIP, x[0], y[1], x[1], y[0]);
    test_write_text(tp("aoi.yaml"), recipe);
    int rc = spynco_run(tp("aoi.yaml"), "-q", NULL);
    CHECK(rc == 0, "aoi recipe: exit %d", rc);
    CHECK(summary_says("naip_rgbn_266x204.tif", "skipped") && log_has("outside the aoi"),
          "the NAIP raster (California) is reported as skipped, outside the aoi");
    CHECK(!exists(tp("aoi/naip_rgbn_266x204_color.tif")), "no output for a skipped raster");
    const char *clipped = tp("aoi/cogeo_rgb_384x320_color.tif");
    Info out;
    ok = raster_info(clipped, &out) == 0;
    CHECK(ok && out.width == 201 && out.height == 191, "clipped output %dx%d, expected 201x191",
          out.width, out.height);
    double want[6];
    memcpy(want, in.gt, sizeof want);
    want[0] += 100 * in.gt[1], want[3] += 60 * in.gt[5];
    CHECK(ok && out.has_gt && same_gt(out.gt, want, 1e-6), "clipped geotransform: origin at pixel "
          "100,60 of the input");
    /* the same pixels as the whole raster's output there (halos read the real
     * neighbours, tiles on the stride grid) */
    uint8_t *a = ok ? read_pixels(clipped, 0, 0, 201, 191, 3) : NULL;
    uint8_t *b = read_pixels(tp("plain/cogeo_rgb_384x320_color.tif"), 100, 60, 201, 191, 3);
    CHECK(a && b && !memcmp(a, b, 3 * 201 * 191), "clipped pixels = the whole output's window");
    free(a), free(b);
}

/* ---- (d) SIGKILL mid-way, rerun; (e) damaged outputs; SIGINT ----------------------------------- */

static void make_big_inputs(void) {
    mkdir(tp("bigs"), 0777);
    char w[16], h[16];
    snprintf(w, sizeof w, "%d", BIG_W);
    snprintf(h, sizeof h, "%d", BIG_H);
    const char *opts[] = {"-outsize", w, h, "-r", "bilinear", NULL};
    for (int i = 0; i < BIG_INPUTS; i++) translate(COGEO, tpath("bigs/big%d.tif", i + 1).s, opts);
}

static void write_big_recipe(const char *name, const char *out) {
    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs: bigs/*.tif\n  output: %s\n  tile: 256\n", model, out);
    test_write_text(tp("%s", name), recipe);
}

/* Starts `spynco run -q RECIPE` and waits until an output is done and the next
 * one is being written (its temporary file exists); then sends sig. Returns
 * the exit status; *done_at_signal: outputs done by then. */
static int run_and_signal(const char *recipe, const char *out, int sig, int *done_at_signal) {
    char *argv[] = {SPYNCO_BIN, "run", "-q", "--threads", "2", (char *)recipe, NULL};
    unlink(run_log);
    pid_t pid = test_spawn(argv, NULL, run_log);
    struct timespec nap = {0, 1000 * 1000};
    int signalled = 0;
    *done_at_signal = -1;
    for (long waited = 0; waited < KILL_TIMEOUT * 1000L && !signalled; waited++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            CHECK(0, "spynco run ended before it could be signalled (%d done)",
                  journal_count(out, "done"));
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (journal_count(out, "done") >= 1 && test_count_entries(out, ".tmp-") >= 1) {
            kill(pid, sig);
            signalled = 1;
            *done_at_signal = journal_count(out, "done");
        } else {
            nanosleep(&nap, NULL);
        }
    }
    if (!signalled) kill(pid, SIGKILL);
    return test_wait(pid);
}

static void test_kill_and_resume(void) {
    write_big_recipe("kill.yaml", "out_kill");
    const char *out = tp("out_kill");
    int done = 0;
    int status = run_and_signal(tp("kill.yaml"), out, SIGKILL, &done);
    CHECK(status == 128 + SIGKILL, "killed run: status %d, expected %d", status, 128 + SIGKILL);
    CHECK(done >= 1 && done < BIG_INPUTS, "killed after %d of %d outputs", done, BIG_INPUTS);
    printf("SIGKILL after %d of %d outputs, with %d temporary file(s) left\n", done, BIG_INPUTS,
           test_count_entries(out, ".tmp-"));
    CHECK(test_count_entries(out, ".tmp-") >= 1, "the killed writer left its temporary file");
    /* what was finished before the kill */
    double mtimes[BIG_INPUTS];
    ino_t inodes[BIG_INPUTS];
    int finished[BIG_INPUTS], n_finished = 0;
    for (int i = 0; i < BIG_INPUTS; i++) {
        TestPath entry = tpath("out_kill/.spynco-journal/big%d_color.tif.json", i + 1);
        char *text = test_read_file(entry.s);
        finished[i] = text && strstr(text, "\"state\":\t\"done\"");
        free(text);
        mtimes[i] = test_mtime(tpath("out_kill/big%d_color.tif", i + 1).s, &inodes[i]);
        n_finished += finished[i];
    }
    CHECK(n_finished == done, "%d journal entries done, %d seen", n_finished, done);

    int rc = spynco_run(tp("kill.yaml"), "-q", NULL);
    CHECK(rc == 0, "rerun after SIGKILL: exit %d", rc);
    if (rc) dump_log();
    for (int i = 0; i < BIG_INPUTS; i++) {
        TestPath o = tpath("out_kill/big%d_color.tif", i + 1);
        char name[32];
        snprintf(name, sizeof name, "big%d.tif", i + 1);
        ino_t inode = 0;
        double m = test_mtime(o.s, &inode);
        if (finished[i]) {
            CHECK(m == mtimes[i] && inode == inodes[i], "%s was done before the kill: not redone "
                  "(mtime %.9f -> %.9f)", o.s, mtimes[i], m);
            CHECK(summary_says(name, "kept"), "the summary says %s was kept", name);
        } else {
            CHECK(summary_says(name, "done"), "the summary says %s was done", name);
        }
        CHECK(fully_readable(o.s), "%s is complete and readable", o.s);
    }
    CHECK(test_count_entries(out, ".tmp-") == 0 && test_count_entries(tp("out_kill/.spynco-journal"), ".tmp-") == 0,
          "no temporary file left");
    CHECK(journal_count(out, "done") == BIG_INPUTS, "every journal entry says done");
}

/* Damaged outputs (truncated, changed in place, deleted) are found and redone. */
static void test_damaged_outputs(void) {
    const char *out = tp("out_kill");
    TestPath truncated = tpath("out_kill/big1_color.tif"), flipped = tpath("out_kill/big2_color.tif");
    TestPath deleted = tpath("out_kill/big3_color.tif");
    uint8_t *before = read_pixels(flipped.s, 0, 0, BIG_W, BIG_H, 3);
    struct stat st;
    CHECK(stat(truncated.s, &st) == 0 && truncate(truncated.s, st.st_size / 2) == 0,
          "truncate %s", truncated.s);
    /* one byte changed in the middle: same size */
    FILE *f = fopen(flipped.s, "r+b");
    if (f && stat(flipped.s, &st) == 0 && fseek(f, st.st_size / 2, SEEK_SET) == 0) {
        int c = fgetc(f);
        fseek(f, st.st_size / 2, SEEK_SET);
        fputc(c ^ 0x55, f);
    }
    if (f) fclose(f);
    unlink(deleted.s);
    double kept_mtime = test_mtime(tp("out_kill/big4_color.tif"), NULL);

    int rc = spynco_run(tp("kill.yaml"), "--dry-run", NULL);
    CHECK(rc == 0 && log_has("the journal says") && log_has("checksum differs") &&
              log_has("the output is missing"),
          "dry run names the damage (exit %d)", rc);
    rc = spynco_run(tp("kill.yaml"), "-q", NULL);
    CHECK(rc == 0, "rerun after damage: exit %d", rc);
    CHECK(summary_says("big1.tif", "done") && summary_says("big2.tif", "done") &&
              summary_says("big3.tif", "done"),
          "the truncated, changed and deleted outputs are redone");
    CHECK(summary_says("big4.tif", "kept") && summary_says("big5.tif", "kept") &&
              test_mtime(tp("out_kill/big4_color.tif"), NULL) == kept_mtime,
          "the intact ones are kept");
    for (int i = 1; i <= 3; i++)
        CHECK(fully_readable(tpath("out_kill/big%d_color.tif", i).s), "big%d_color.tif valid again", i);
    uint8_t *after = read_pixels(flipped.s, 0, 0, BIG_W, BIG_H, 3);
    CHECK(before && after && !memcmp(before, after, 3 * BIG_W * BIG_H), "redone = the original pixels");
    free(before), free(after);
    CHECK(test_count_entries(out, ".tmp-") == 0, "no temporary file left");
}

static void test_interrupt(void) {
    write_big_recipe("int.yaml", "out_int");
    const char *out = tp("out_int");
    int done = 0;
    int status = run_and_signal(tp("int.yaml"), out, SIGINT, &done);
    CHECK(status == 130, "SIGINT: exit %d, expected 130", status);
    CHECK(log_has("interrupted"), "the summary reports the interruption");
    CHECK(test_count_entries(out, ".tmp-") == 0, "nothing half-written left after SIGINT");
    CHECK(journal_count(out, "interrupted") == 1, "one journal entry 'interrupted'");
    int rc = spynco_run(tp("int.yaml"), "-q", NULL);
    CHECK(rc == 0 && journal_count(out, "done") == BIG_INPUTS, "the rerun finishes (exit %d)", rc);
}

/* Two runs on one output folder: the second is refused while the first
 * (stopped with SIGSTOP, so the test does not race it) holds the lock. */
static void test_lock(void) {
    write_big_recipe("lock.yaml", "out_lock");
    char *argv[] = {SPYNCO_BIN, "run", "-q", "--threads", "2", tp("lock.yaml"), NULL};
    pid_t first = test_spawn(argv, NULL, tp("lock-first.log"));
    char holder[64], *text = NULL;
    snprintf(holder, sizeof holder, "process %ld on ", (long)first);
    struct timespec nap = {0, 1000 * 1000};
    int status = 0, ended = 0;
    for (long waited = 0; waited < KILL_TIMEOUT * 1000L && !ended; waited++) {
        free(text);
        text = test_read_file(tp("out_lock/.spynco-lock"));
        if (text && strstr(text, holder)) break;
        ended = waitpid(first, &status, WNOHANG) == first;
        nanosleep(&nap, NULL);
    }
    free(text);
    if (ended || kill(first, SIGSTOP) != 0) {
        CHECK(0, "the first run ended before the test could stop it");
        return;
    }
    int rc = spynco_run(tp("lock.yaml"), "-q", NULL);
    char expected[PATH_MAX + 128];
    snprintf(expected, sizeof expected, "%s: another spynco run is writing into this folder (%s",
             tp("out_lock"), holder);
    CHECK(rc == 2 && log_has(expected), "a second run on a locked folder: exit %d (expected 2), "
          "message \"%s...\"", rc, expected);
    if (rc != 2) dump_log();
    kill(first, SIGCONT);
    rc = test_wait(first);
    CHECK(rc == 0, "the first run, continued: exit %d", rc);
    rc = spynco_run(tp("lock.yaml"), "-q", NULL);
    CHECK(rc == 0 && log_has("5 inputs: 0 done, 5 kept"), "after the first run: exit %d, all kept", rc);
}

/* ---- (f) malformed recipes: exit 2, FILE:LINE:COLUMN ------------------------------------------- */

static void test_malformed(void) {
    struct {
        const char *name, *text, *at;
    } cases[] = {
        {"syntax.yaml", "colorize:\n  inputs: [a.tif\n  output: out\n", ":3:9: YAML syntax error"},
        {"unknown.yaml", "colorize:\n  inputs: a.tif\n  output: out\n  tiel: 512\n",
         ":4:3: colorize: unknown key 'tiel' (did you mean 'tile'?)"},
        {"type.yaml", "colorize:\n  inputs: a.tif\n  output: out\n  tile: big\n",
         ":4:9: colorize.tile: expected an integer, got 'big'"},
        {"value.yaml", "colorize:\n  inputs: a.tif\n  output: out\n  tile: 1001\n",
         ":4:9: colorize.tile: 1001 is not a multiple of 4"},
        {"dup.yaml", "colorize:\n  inputs: a.tif\n  output: out\n  tile: 1000\n  threads: 2\n"
                     "  tile: 12\n", ":6:3: duplicate key 'tile'"},
        {"missing.yaml", "colorize:\n  inputs:\n    - missing/*.tif\n  output: out\n",
         ":3:7: colorize.inputs[0]: '"},
        {"missing2.yaml", "colorize:\n  inputs: [nothere.tif]\n  output: out\n",
         ":2:12: colorize.inputs[0]: '"},
        {"tsrs.yaml", "colorize:\n  inputs: bigs\n  output: out\n  t_srs: EPSG:99999999\n",
         ":4:10: colorize.t_srs: 'EPSG:99999999' is not a CRS GDAL knows"},
        {"format.yaml", "colorize:\n  inputs: bigs\n  output: out\n  format: NoSuchFormat\n",
         ":4:11: colorize.format: 'NoSuchFormat' is not a raster format"},
        {"names.yaml", "colorize:\n  inputs: bigs\n  output: out\n  name: same.tif\n",
         ":4:9: colorize.name: '"},
        {"mosaic.yaml", "colorize:\n  inputs: [" COGEO ", " NAIP "]\n  output: out\n  mosaic: true\n",
         ":4:11: colorize.mosaic: the outputs would be in different CRSs"},
        {"model.yaml", "colorize:\n  inputs: bigs\n  output: out\n  model: nomodel.h5\n",
         ":4:10: colorize.model: cannot read '"},
        {"train.yaml", "train:\n  gray: nogray\n  color: bigs\n  out: t\n",
         ":2:9: train.gray[0]: '"},
        {"loop.yaml", "colorize:\n  inputs: [loopy]\n  output: out\n",
         ":2:12: colorize.inputs[0]: "},
    };
    /* a link back to its own folder: walked once, an error, not endless copies */
    mkdir(tp("loopy"), 0777);
    vsi_copy(NAIP, tp("loopy/a.tif"));
    CHECK(symlink(".", tp("loopy/again")) == 0, "symlink loopy/again -> .");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        TestPath recipe = tpath("%s", cases[i].name);
        test_write_text(recipe.s, cases[i].text);
        char expect[PATH_MAX + 256];
        snprintf(expect, sizeof expect, "%s%s", recipe.s, cases[i].at);
        int rc = spynco_run(recipe.s, NULL);
        CHECK(rc == 2 && log_has(expect), "%s: exit %d (expected 2), message \"%s...\"",
              cases[i].name, rc, expect);
        if (rc != 2 || !log_has(expect)) dump_log();
        CHECK(!exists(tp("out")), "%s: nothing written", cases[i].name);
    }
    CHECK(log_has("loopy/again: a folder that contains itself"), "the link loop is named");
}

/* ---- (g) one bad input among good ones ----------------------------------------------------- */

static void test_bad_input(void) {
    mkdir(tp("mixed"), 0777);
    test_write_text(tp("mixed/notes.tif"), "this is no raster\n");
    /* the first 40% of a real GeoTIFF: GDAL opens it, reading fails */
    struct stat st;
    FILE *in = fopen(NAIP, "rb"), *out = fopen(tp("mixed/cut.tif"), "wb");
    char *buf = stat(NAIP, &st) == 0 ? malloc(st.st_size) : NULL;
    size_t keep = buf ? (size_t)st.st_size * 2 / 5 : 0;
    CHECK(in && out && buf && fread(buf, 1, keep, in) == keep && fwrite(buf, 1, keep, out) == keep,
          "cut a GeoTIFF");
    free(buf);
    if (in) fclose(in);
    if (out) fclose(out);
    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs:\n    - %s\n    - mixed/notes.tif\n"
             "    - mixed/cut.tif\n    - %s\n  output: out_mixed\n", model, COGEO, LANDSAT);
    test_write_text(tp("mixed.yaml"), recipe);
    int rc = spynco_run(tp("mixed.yaml"), "-q", NULL);
    CHECK(rc == 1, "a bad input: exit %d, expected 1", rc);
    CHECK(summary_says("cogeo_rgb_384x320.tif", "done") &&
              summary_says("landsat_rgba_240x200.tif", "done"),
          "the good inputs are done");
    CHECK(summary_says("notes.tif", "failed") && summary_says("cut.tif", "failed"),
          "the bad ones failed, with the message in the summary");
    CHECK(log_has("2 done, 0 kept, 0 skipped, 2 failed"), "the totals");
    CHECK(fully_readable(tp("out_mixed/cogeo_rgb_384x320_color.tif")) &&
              fully_readable(tp("out_mixed/landsat_rgba_240x200_color.tif")),
          "the good outputs are valid");
    CHECK(!exists(tp("out_mixed/notes_color.tif")) && !exists(tp("out_mixed/cut_color.tif")) &&
              test_count_entries(tp("out_mixed"), ".tmp-") == 0,
          "nothing left for the bad inputs");
    if (rc != 1) dump_log();
}

/* ---- (h) --dry-run writes nothing ------------------------------------------------------------ */

typedef struct {
    char names[64][256];
    double mtimes[64];
    int count;
} Listing;

static void list_tree(const char *dir, Listing *l) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) && l->count < 64;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(l->names[l->count], sizeof l->names[0], "%s", e->d_name);
        l->mtimes[l->count++] = test_mtime(path, NULL);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) list_tree(path, l);
    }
    if (d) closedir(d);
}

static void test_dry_run(void) {
    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs: [tiles.zip, %s]\n  output: out_dry\n"
             "  t_srs: EPSG:3857\n  mosaic: true\n", model, NAIP);
    test_write_text(tp("dry.yaml"), recipe);
    int rc = spynco_run(tp("dry.yaml"), "--dry-run", NULL);
    CHECK(rc == 0, "dry run: exit %d", rc);
    CHECK(log_has("tiles.zip/sub/t10.tif") && log_has("-> t10_color.tif") &&
              log_has("-> naip_rgbn_266x204_color.tif") && log_has("mosaic: "),
          "the dry run lists each input -> output and the mosaic");
    CHECK(!exists(tp("out_dry")), "a dry run creates no output folder");
    /* over finished outputs: reports them kept and touches nothing */
    Listing before = {.count = 0}, after = {.count = 0};
    list_tree(tp("out_zip"), &before);
    rc = spynco_run(tp("zip.yaml"), "--dry-run", NULL);
    list_tree(tp("out_zip"), &after);
    CHECK(rc == 0 && log_has("keep (complete and valid)"), "dry run over a finished run: kept");
    int same = before.count == after.count && before.count > 5;
    for (int i = 0; same && i < before.count; i++)
        same = !strcmp(before.names[i], after.names[i]) && before.mtimes[i] == after.mtimes[i];
    CHECK(same, "the dry run changed nothing in the output folder (%d -> %d files)", before.count,
          after.count);
}

/* Every kind of input entry, listed by a dry run: a folder (searched
 * recursively, an archive inside opened, hidden and non-image files left
 * out), a list file (a comment, a relative path, a pattern inside an archive,
 * an entry named twice), a pattern after an archive's name in the recipe. */
static void test_input_kinds(void) {
    mkdir(tp("kinds"), 0777);
    mkdir(tp("kinds/a"), 0777);
    mkdir(tp("lists"), 0777);
    vsi_copy(NAIP, tp("kinds/a/naip.tif"));
    vsi_copy(NAIP, tp("kinds/.hidden.tif"));
    test_write_text(tp("kinds/notes.md"), "not an image\n");
    char member[PATH_MAX + 64];
    snprintf(member, sizeof member, "/vsizip/%s/x.tif", tp("kinds/inner.zip"));
    vsi_copy(LANDSAT, member);
    char list[2 * PATH_MAX];
    snprintf(list, sizeof list, "# inputs of the week\n../bigs/big1.tif\n\n/vsizip/%s/sub/*.tif\n"
             "../bigs/big1.tif\n", tp("tiles.zip"));
    test_write_text(tp("lists/week.txt"), list);
    char recipe[2 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "colorize:\n  model: %s\n  inputs:\n    - kinds\n    - lists/week.txt\n"
             "    - /vsizip/tiles.zip/t0*.tif\n  output: out_kinds\n  name: \"{parent}_{stem}.tif\"\n",
             model);
    test_write_text(tp("kinds.yaml"), recipe);
    int rc = spynco_run(tp("kinds.yaml"), "--dry-run", NULL);
    CHECK(rc == 0 && log_has("colorize: 7 inputs"), "7 inputs from the folder, the list and the "
          "archive pattern (exit %d)", rc);
    const char *expect[7] = {"kinds/a/naip.tif  ", "kinds/inner.zip/x.tif  ", "bigs/big1.tif  ",
                             "tiles.zip/sub/t10.tif  ", "tiles.zip/sub/t11.tif  ",
                             "tiles.zip/t00.tif  ", "tiles.zip/t01.tif  "};
    const char *outputs[7] = {"-> a_naip.tif", "-> inner_x.tif", "-> bigs_big1.tif",
                              "-> sub_t10.tif", "-> sub_t11.tif", "-> tiles_t00.tif",
                              "-> tiles_t01.tif"};
    for (int i = 0; i < 7; i++)
        CHECK(log_has(expect[i]) && log_has(outputs[i]), "the dry run lists %s %s", expect[i],
              outputs[i]);
    CHECK(!log_has("hidden") && !log_has("notes.md"), "hidden files and documents are no inputs");
    if (rc || !log_has("colorize: 7 inputs")) dump_log();
}

/* ---- (i) the colorize job's keep_luminance ------------------------------------------------------ */

/* The SPYNCO_KEEP_LUMINANCE metadata item of a raster ("" if none). */
static void keep_luminance_of(const char *path, char *out, size_t n) {
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    const char *md = ds ? GDALGetMetadataItem(ds, "SPYNCO_KEEP_LUMINANCE", NULL) : NULL;
    snprintf(out, n, "%s", md ? md : "");
    if (ds) GDALClose(ds);
}

/* false, left out (the default: on), true: the output says so, and a change
 * redoes it while the same setting keeps it. */
static void test_keep_luminance(void) {
    const char *settings[3] = {"  keep_luminance: false\n", "", "  keep_luminance: true\n"};
    const char *want[3] = {"NO", "YES", "YES"}, *status[3] = {"done", "done", "kept"};
    const char *out = tp("out_lum/naip_rgbn_266x204_color.tif");
    for (int i = 0; i < 3; i++) {
        char recipe[2 * PATH_MAX], md[16];
        snprintf(recipe, sizeof recipe, "colorize:\n  model: %s\n  inputs: %s\n  output: out_lum\n%s",
                 model, NAIP, settings[i]);
        test_write_text(tp("lum.yaml"), recipe);
        int rc = spynco_run(tp("lum.yaml"), "-q", NULL);
        keep_luminance_of(out, md, sizeof md);
        CHECK(rc == 0 && !strcmp(md, want[i]), "keep_luminance '%.*s': exit %d, "
              "SPYNCO_KEEP_LUMINANCE=%s, expected %s", (int)strcspn(settings[i], "\n"),
              settings[i], rc, md, want[i]);
        CHECK(summary_says("naip_rgbn_266x204.tif", status[i]), "keep_luminance '%.*s': the output "
              "is %s", (int)strcspn(settings[i], "\n"), settings[i], status[i]);
        if (rc) dump_log();
    }
}

/* ---- (j) the eval job = spynco eval ----------------------------------------------------------- */

/* The JSON file without its timing. NULL if unreadable. */
static cJSON *read_eval_json(const char *path) {
    char *text = test_read_file(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON_DeleteItemFromObject(j, "seconds");
    return j;
}

/* spynco eval --threads 2 [extra...] --json JSON SOURCES: the exit status. */
static int spynco_eval(const char *json, const char *sources, const char *extra) {
    char *argv[12] = {SPYNCO_BIN, "eval", "-q", "--threads", "2", "--model", model};
    int argc = 7;
    if (extra) argv[argc++] = (char *)extra;
    argv[argc++] = "--json", argv[argc++] = (char *)json, argv[argc++] = (char *)sources;
    argv[argc] = NULL;
    return test_run(argv, NULL, tp("eval.log"));
}

static void test_eval_job(void) {
    /* the keys as the recipe gives them and as `spynco eval` takes them */
    struct {
        const char *keys, *flag;
    } cases[2] = {{"", NULL}, {"  keep_luminance: false\n  threads: 1\n", "--no-keep-luminance"}};
    for (int i = 0; i < 2; i++) {
        char recipe[3 * PATH_MAX];
        snprintf(recipe, sizeof recipe,
                 "eval:\n  model: %s\n  inputs: %s\n  json: evals/%d/eval.json\n"
                 "  csv: evals/%d/eval.csv\n  samples: evals/%d/samples\n%s",
                 model, EVAL_SET, i, i, i, cases[i].keys);
        TestPath yaml = tpath("eval%d.yaml", i);
        test_write_text(yaml.s, recipe);
        int rc = spynco_run(yaml.s, "--dry-run", NULL);
        CHECK(rc == 0 && log_has("eval: evaluate ") && !exists(tpath("evals/%d", i).s),
              "eval dry run: says what it would evaluate, writes nothing (exit %d)", rc);
        rc = spynco_run(yaml.s, "-q", NULL);
        CHECK(rc == 0 && log_has("3 images; model "), "eval recipe %d: exit %d, the table", i, rc);
        if (rc) dump_log();
        TestPath json = tpath("evals/%d/eval.json", i), own = tpath("own%d.json", i);
        CHECK(exists(tpath("evals/%d/eval.csv", i).s) && test_count_entries(tpath("evals/%d/samples", i).s,
              ".png") == 3, "eval recipe %d: csv and 3 triptychs (folders created)", i);
        rc = spynco_eval(own.s, EVAL_SET, cases[i].flag);
        CHECK(rc == 0, "spynco eval: exit %d", rc);
        cJSON *a = read_eval_json(json.s), *b = read_eval_json(own.s);
        cJSON *lum = cJSON_GetObjectItem(a, "keep_luminance"), *n = cJSON_GetObjectItem(a, "images");
        CHECK(a && b && cJSON_Compare(a, b, 1), "eval recipe %d: the JSON equals spynco eval's "
              "(but for seconds)", i);
        CHECK(cJSON_IsNumber(n) && n->valuedouble == 3 && cJSON_IsBool(lum) &&
                  cJSON_IsTrue(lum) == (i == 0),
              "eval recipe %d: 3 images, keep_luminance %s", i, i == 0 ? "true" : "false");
        cJSON_Delete(a), cJSON_Delete(b);
    }
    /* an image that cannot be evaluated (one band): the others are, exit 1 */
    char recipe[3 * PATH_MAX];
    snprintf(recipe, sizeof recipe, "eval:\n  model: %s\n  inputs: [%s, %s]\n  json: evals/bad.json\n",
             model, EVAL_SET, DATA("rotterdam_pan_u16.tif"));
    test_write_text(tp("evalbad.yaml"), recipe);
    int rc = spynco_run(tp("evalbad.yaml"), "-q", NULL);
    CHECK(rc == 1 && log_has("3 images (1 more failed)") && log_has("rotterdam_pan_u16.tif"),
          "eval with a gray image: exit %d (expected 1), the failure named", rc);
    CHECK(exists(tp("evals/bad.json")), "the figures of the others are written");
}

/* ---- a train job whose model the colorize and eval jobs use ----------------------------------- */

static void test_train_then_colorize(void) {
    char recipe[3 * PATH_MAX];
    snprintf(recipe, sizeof recipe,
             "train:\n  gray: %s\n  color: %s\n  crop: 96\n  batch: 1\n  steps: 2\n"
             "  F: 4\n  K: 8\n  R: 1\n  nd: 4\n  out: trained\n  export: trained/model.h5\n"
             "colorize:\n  model: trained/model.h5\n  inputs: %s\n  output: out_trained\n"
             "eval:\n  model: trained/model.h5\n  inputs: %s\n  json: trained/eval.json\n",
             DATA("rotterdam_pan_u16.tif"), COGEO, NAIP, EVAL_SET);
    test_write_text(tp("chain.yaml"), recipe);
    int rc = spynco_run(tp("chain.yaml"), "--dry-run", NULL);
    CHECK(rc == 0 && log_has("train: start") && log_has("eval: evaluate ") &&
              !exists(tp("trained")),
          "dry run of train + colorize + eval before the model exists (exit %d)", rc);
    rc = spynco_run(tp("chain.yaml"), "-q", NULL);
    CHECK(rc == 0, "train + colorize + eval: exit %d", rc);
    if (rc) dump_log();
    CHECK(exists(tp("trained/last.h5")) && exists(tp("trained/model.h5")), "checkpoint and model");
    CHECK(fully_readable(tp("out_trained/naip_rgbn_266x204_color.tif")), "colorized with it");
    cJSON *j = read_eval_json(tp("trained/eval.json"));
    cJSON *path = cJSON_GetObjectItem(j, "model_path"), *step = cJSON_GetObjectItem(j, "step");
    CHECK(cJSON_IsString(path) && !strcmp(path->valuestring, tp("trained/model.h5")) &&
              cJSON_IsNumber(step) && step->valuedouble == 2,
          "evaluated with the exported model (step 2)");
    cJSON_Delete(j);
    double model_mtime = test_mtime(tp("trained/model.h5"), NULL);
    rc = spynco_run(tp("chain.yaml"), "-q", NULL);
    CHECK(rc == 0 && summary_says("naip_rgbn_266x204.tif", "kept") &&
              test_mtime(tp("trained/model.h5"), NULL) == model_mtime && log_has("3 images; model "),
          "a rerun: training complete, model not rewritten, output kept, evaluated (exit %d)", rc);
}

int main(void) {
    GDALAllRegister();
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir("run"));
    snprintf(run_log, sizeof run_log, "%s/run.log", tmp);
    snprintf(model, sizeof model, "%s/vivid.h5", tmp);
    ModelConfig cfg = test_small_config("test-vivid");
    if (test_save_model(model, &cfg, 1, 0, 42)) return test_summary("test_run");
    CPLPushErrorHandler(CPLQuietErrorHandler);
    make_big_inputs();
    test_zip_mosaic();
    test_reproject();
    test_aoi();
    test_kill_and_resume();
    test_damaged_outputs();
    test_interrupt();
    test_lock();
    test_malformed();
    test_bad_input();
    test_dry_run();
    test_input_kinds();
    test_keep_luminance();
    test_eval_job();
    test_train_then_colorize();
    CPLPopErrorHandler();
    if (!test_failed) test_remove_tree(tmp);
    else fprintf(stderr, "kept %s for inspection\n", tmp);
    return test_summary("test_run");
}
