/* `spynco colorize` for real: GDAL fixtures from tests/data, the real program
 * run as a child process (stderr captured, exit status and signals checked),
 * outputs checked through the GDAL C API (and `gdalinfo -json` when present).
 * Models are built here, small and made to vary strongly across the image so
 * that pixel comparisons can fail; the PyTorch parity files come from
 * tests/data. Everything happens in a fresh folder under /tmp, removed at the
 * end. */
#include <cjson/cJSON.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "io/checkpoint.h"
#include "io/h5io.h"
#include "nn/infer.h"
#include "nn/networks.h"
#include "testmodel.h"
#include "testutil.h"

#define DATA(name) SPYNCO_TEST_DATA "/" name
#define COGEO DATA("cogeo_rgb_384x320.tif")
#define CHILD_TIMEOUT 300 /* seconds; an ASan build is slow, a hang must not be */
#define PARITY_MARGIN 64  /* px from the borders where mirror and zero padding agree */

extern char **environ;

static char tmpdir[] = "/tmp/spynco-test-colorize-XXXXXX";
static char small_model[PATH_MAX], small_model_d[PATH_MAX], big_model[PATH_MAX];
static char big1500[PATH_MAX], big2000[PATH_MAX];
static char gdalinfo_bin[PATH_MAX], mount_bin[PATH_MAX], umount_bin[PATH_MAX];
static char child_log[1 << 16]; /* stderr of the last child */

/* ---- files and paths ------------------------------------------------------------ */

/* A path in the temporary folder, by value (testutil.h) */
#define tpath(...) test_path(tmpdir, __VA_ARGS__)
#define tp(...) (tpath(__VA_ARGS__).s)

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void) {
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* The writer's temporary files beside OUTPUT, ".<name>.tmp-<pid>...", in dir
 * (of the output named name; any output if name is NULL). */
static int temps_of(const char *dir, const char *name) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    size_t len = name ? strlen(name) : 0;
    while (d && (e = readdir(d)))
        n += e->d_name[0] == '.' && strstr(e->d_name, ".tmp-") != NULL &&
             (!name || (!strncmp(e->d_name + 1, name, len) && e->d_name[1 + len] == '.'));
    if (d) closedir(d);
    return n;
}
static int leftover_temps(const char *dir) { return temps_of(dir, NULL); }

/* Full path of a program on PATH into buf; 0 if found. */
static int find_on_path(const char *name, char *buf) {
    const char *path = getenv("PATH");
    char dirs[8192];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, PATH_MAX, "%s/%s", *d ? d : ".", name);
        if (access(buf, X_OK) == 0) return 0;
    }
    buf[0] = 0;
    return -1;
}

/* ---- child processes ------------------------------------------------------------ */

/* Starts argv[0] (a full path) with stderr into a file and stdout into out_path
 * (NULL: /dev/null). env: NULL, "NAME=VALUE" to set, or "NAME" to unset. The
 * environment is prepared before fork: the child only calls async-signal-safe
 * functions (this process may have OpenMP threads). */
static pid_t start_child(char *const argv[], const char *env, const char *out_path) {
    static char *envp[4096];
    size_t name_len = env ? strcspn(env, "=") : 0;
    int n = 0;
    for (char **e = environ; *e && n < 4094; e++)
        if (!env || strncmp(*e, env, name_len) || (*e)[name_len] != '=') envp[n++] = *e;
    if (env && env[name_len] == '=') envp[n++] = (char *)env;
    envp[n] = NULL;
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/child.stderr", tmpdir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || out < 0) _exit(126);
        dup2(out, 1);
        dup2(fd, 2);
        close(fd);
        close(out);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

/* Waits (at most timeout seconds, then kills) and loads the child's stderr. */
static int finish_child(pid_t pid, int timeout) {
    int status = -1;
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (long waited = 0; pid > 0;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) break;
        if (waited++ > timeout * 100L) {
            fprintf(stderr, "child %ld still running after %d s: killing it\n", (long)pid, timeout);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        nanosleep(&nap, NULL);
    }
    child_log[0] = 0;
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/child.stderr", tmpdir);
    FILE *f = fopen(log, "rb");
    if (f) {
        child_log[fread(child_log, 1, sizeof child_log - 1, f)] = 0;
        fclose(f);
    }
    return status;
}

static int run_env(char *const argv[], const char *env, const char *out_path) {
    return finish_child(start_child(argv, env, out_path), CHILD_TIMEOUT);
}

static const char *describe(int status) {
    static char buf[64];
    if (status == -1)
        snprintf(buf, sizeof buf, "not started");
    else if (WIFSIGNALED(status))
        snprintf(buf, sizeof buf, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, sizeof buf, "exit status %d", WEXITSTATUS(status));
    return buf;
}

static int exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
/* Failed cleanly: a non-zero exit, no signal (a crash or an abort is a bug). */
static int exited_failed(int status) { return WIFEXITED(status) && WEXITSTATUS(status) != 0; }

static int vcolorize(const char *env, const char *first, va_list ap) {
    /* G's own colours: the parity fixture is the network's output */
    char *argv[64] = {SPYNCO_BIN, "colorize", "--threads", "2", "--no-keep-luminance"};
    int n = 5;
    for (const char *a = first; a && n < 63; a = va_arg(ap, const char *)) argv[n++] = (char *)a;
    argv[n] = NULL;
    return run_env(argv, env, NULL);
}

/* `spynco colorize --threads 2 ARGS...` (later options override: --threads 1 works);
 * env as in start_child. Returns the wait status; stderr in child_log. */
static int colorize_env(const char *env, const char *first, ...) {
    va_list ap;
    va_start(ap, first);
    int st = vcolorize(env, first, ap);
    va_end(ap);
    return st;
}
#define colorize(...) colorize_env(NULL, __VA_ARGS__, (const char *)NULL)

/* Colorizes and checks that it worked (what names the run); 0 if it did. */
static int colorize_ok_(const char *what, const char *first, ...) {
    va_list ap;
    va_start(ap, first);
    int st = vcolorize(NULL, first, ap);
    va_end(ap);
    CHECK(exited_ok(st), "%s: spynco colorize failed (%s); stderr:\n%s", what, describe(st),
          child_log);
    return exited_ok(st) ? 0 : -1;
}
#define COLORIZE_OK(what, ...) colorize_ok_(what, __VA_ARGS__, (const char *)NULL)

/* ---- rasters -------------------------------------------------------------------- */

typedef struct {
    int w, h, bands;
    uint8_t *px; /* band-sequential Byte planes */
    double gt[6];
    int has_gt;
    char *wkt;
    char *driver;
} Image;

static void free_image(Image *im) {
    free(im->px);
    free(im->wkt);
    free(im->driver);
    memset(im, 0, sizeof *im);
}

static int load_image(const char *path, Image *im) {
    memset(im, 0, sizeof *im);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CHECK(ds != NULL, "%s: GDAL cannot open it: %s", path, CPLGetLastErrorMsg());
    if (!ds) return -1;
    im->w = GDALGetRasterXSize(ds), im->h = GDALGetRasterYSize(ds),
    im->bands = GDALGetRasterCount(ds);
    im->px = malloc((size_t)im->w * im->h * (im->bands ? im->bands : 1));
    int rc = im->px && GDALDatasetRasterIO(ds, GF_Read, 0, 0, im->w, im->h, im->px, im->w, im->h,
                                           GDT_Byte, im->bands, NULL, 0, 0, 0) == CE_None
                 ? 0
                 : -1;
    CHECK(rc == 0, "%s: cannot read its pixels", path);
    im->has_gt = GDALGetGeoTransform(ds, im->gt) == CE_None;
    const char *wkt = GDALGetProjectionRef(ds);
    im->wkt = strdup(wkt ? wkt : "");
    im->driver = strdup(GDALGetDriverShortName(GDALGetDatasetDriver(ds)));
    GDALClose(ds);
    if (rc) free_image(im);
    return rc;
}

static const uint8_t *plane(const Image *im, int b) { return im->px + (size_t)b * im->w * im->h; }

/* Differing bytes between two images (-1: different shapes). */
static long count_diff(const Image *a, const Image *b) {
    if (a->w != b->w || a->h != b->h || a->bands != b->bands) return -1;
    long n = 0;
    size_t total = (size_t)a->w * a->h * a->bands;
    for (size_t i = 0; i < total; i++) n += a->px[i] != b->px[i];
    return n;
}

/* Two output files hold the same pixels; what says which run. */
static void check_same_pixels(const char *pa, const char *pb, const char *what) {
    Image a, b;
    if (load_image(pa, &a)) return;
    if (load_image(pb, &b) == 0) {
        long d = count_diff(&a, &b);
        CHECK(d == 0, "%s: %s (%dx%dx%d) and %s (%dx%dx%d) differ in %ld bytes (-1: shape)", what,
              pa, a.w, a.h, a.bands, pb, b.w, b.h, b.bands, d);
        free_image(&b);
    }
    free_image(&a);
}

/* Standard deviation of channel c over the pixels whose alpha (band 4) is set. */
static double channel_std(const Image *im, int c) {
    double s = 0, s2 = 0;
    size_t n = 0, count = (size_t)im->w * im->h;
    for (size_t p = 0; p < count; p++) {
        if (im->bands == 4 && plane(im, 3)[p] == 0) continue;
        double v = plane(im, c)[p];
        s += v, s2 += v * v, n++;
    }
    if (!n) return 0.0;
    double m = s / n, var = s2 / n - m * m;
    return var > 0 ? sqrt(var) : 0.0;
}

/* Loads an output and checks its size, band count and that its colour varies. */
static void check_output(const char *path, int w, int h, int bands, double min_std,
                         const char *what) {
    Image im;
    if (load_image(path, &im)) return;
    CHECK(im.w == w && im.h == h, "%s: output is %dx%d, input %dx%d", what, im.w, im.h, w, h);
    CHECK(im.bands == bands, "%s: output has %d bands, expected %d", what, im.bands, bands);
    for (int c = 0; c < 3 && c < im.bands; c++) {
        double sd = channel_std(&im, c);
        CHECK(sd > min_std, "%s: output channel %d is nearly constant (std %.3f <= %.1f DN)", what,
              c + 1, sd, min_std);
    }
    free_image(&im);
}

/* GDAL utilities through the library (no dependency on the command-line tools). */
static int translate(const char *src, const char *dst, const char *const *args) {
    GDALDatasetH in = GDALOpen(src, GA_ReadOnly);
    GDALTranslateOptions *o = GDALTranslateOptionsNew((char **)args, NULL);
    GDALDatasetH out = in && o ? GDALTranslate(dst, in, o, NULL) : NULL;
    int rc = out ? 0 : -1;
    CHECK(rc == 0, "gdal_translate %s -> %s failed: %s", src, dst, CPLGetLastErrorMsg());
    if (out) GDALClose(out);
    if (in) GDALClose(in);
    GDALTranslateOptionsFree(o);
    return rc;
}

/* ---- models --------------------------------------------------------------------- */

static int setup(void) {
    ModelConfig small = test_small_config("test-vivid"), big = model_config_default();
    snprintf(big.name, sizeof big.name, "test-default-size");
    snprintf(small_model, PATH_MAX, "%s", tp("small.h5"));
    snprintf(small_model_d, PATH_MAX, "%s", tp("small_with_d.h5"));
    snprintf(big_model, PATH_MAX, "%s", tp("big.h5"));
    /* small_model_d: the same G as small_model, plus a D (a training checkpoint) */
    if (test_save_model(small_model, &small, 1, 0, 42) ||
        test_save_model(small_model_d, &small, 1, 1, 42) || test_save_model(big_model, &big, 0, 0, 7))
        return -1;
    snprintf(big1500, PATH_MAX, "%s", tp("cogeo_1500.tif"));
    snprintf(big2000, PATH_MAX, "%s", tp("cogeo_2000.tif"));
    const char *up1500[] = {"-outsize", "1500", "1500", "-r", "bilinear", NULL};
    const char *up2000[] = {"-outsize", "2000", "2000", "-r", "bilinear", NULL};
    if (translate(COGEO, big1500, up1500) || translate(COGEO, big2000, up2000)) return -1;
    find_on_path("gdalinfo", gdalinfo_bin);
    find_on_path("mount", mount_bin);
    find_on_path("umount", umount_bin);
    return 0;
}

/* ---- 1. tile invariance --------------------------------------------------------- */

static void test_tile_invariance(void) {
    static const char *tiles[] = {"64", "100", "1024"};
    for (int i = 0; i < 3; i++)
        COLORIZE_OK("tile invariance", "--model", small_model, "--tile", tiles[i], COGEO,
                    tp("tile_%s.tif", tiles[i]));
    /* the model must make the comparison meaningful */
    Image im;
    if (load_image(tp("tile_1024.tif"), &im) == 0) {
        for (int c = 0; c < 3; c++) {
            double sd = channel_std(&im, c);
            CHECK(sd > 10.0,
                  "the test model's output of %s is too flat: channel %d std %.2f DN <= 10", COGEO,
                  c + 1, sd);
            printf("cogeo colorized by the test model: channel %d std %.1f DN\n", c + 1, sd);
        }
        free_image(&im);
    }
    check_same_pixels(tp("tile_64.tif"), tp("tile_1024.tif"), "--tile 64 vs --tile 1024");
    check_same_pixels(tp("tile_100.tif"), tp("tile_1024.tif"), "--tile 100 vs --tile 1024");
    COLORIZE_OK("threads", "--model", small_model, "--tile", "64", "--threads", "1", COGEO,
                tp("thr1.tif"));
    COLORIZE_OK("threads", "--model", small_model, "--tile", "64", "--threads", "2", COGEO,
                tp("thr2.tif"));
    check_same_pixels(tp("thr1.tif"), tp("thr2.tif"), "--threads 1 vs --threads 2");
    check_same_pixels(tp("thr1.tif"), tp("tile_64.tif"), "--threads 1 vs default run");
    /* the luminance lock runs on each tile's part of the window only */
    COLORIZE_OK("keep luminance", "--model", small_model, "--tile", "64", "--keep-luminance", COGEO,
                tp("lum_64.tif"));
    COLORIZE_OK("keep luminance", "--model", small_model, "--tile", "1024", "--keep-luminance",
                COGEO, tp("lum_1024.tif"));
    check_same_pixels(tp("lum_64.tif"), tp("lum_1024.tif"), "--keep-luminance: --tile 64 vs 1024");
    Image a, b;
    if (load_image(tp("lum_64.tif"), &a) == 0) {
        if (load_image(tp("tile_64.tif"), &b) == 0) {
            CHECK(count_diff(&a, &b) > 0, "--keep-luminance changed nothing");
            free_image(&b);
        }
        free_image(&a);
    }
}

/* ---- 2. parity with the PyTorch reference --------------------------------------- */

static void test_parity(void) {
    enum { H = COGEO_H, W = COGEO_W };
    char err[512];
    H5Reader *r = h5r_open(DATA("parity_small.h5"), err, sizeof err);
    CHECK(r != NULL, "open parity_small.h5: %s", err);
    if (!r) return;
    uint8_t *gray8 = malloc((size_t)H * W), *rgb8 = malloc((size_t)3 * H * W);
    float *y1 = malloc(sizeof(float) * 3 * H * W), *x = malloc(sizeof(float) * H * W);
    float *y = malloc(sizeof(float) * 3 * H * W);
    int s2[2] = {H, W}, s3[3] = {3, H, W};
    int rc = h5r_read(r, "/parity/gray8", H5IO_UINT8, 2, s2, gray8) ||
             h5r_read(r, "/parity/y1", H5IO_FLOAT32, 3, s3, y1) ||
             h5r_read(r, "/parity/rgb8", H5IO_UINT8, 3, s3, rgb8);
    CHECK(rc == 0, "read /parity: %s", err);
    h5r_close(r);

    /* (a) in process: the whole image in one pass, as the reference did */
    Network g;
    InferModel m;
    InferWork work;
    if (rc == 0 &&
        checkpoint_load_model(DATA("golden_small.h5"), &g, NULL, NULL, err, sizeof err) == 0) {
        int ok = infer_model_init(&m, &g, err, sizeof err) == 0;
        network_free(&g);
        CHECK(ok, "infer_model_init: %s", err);
        if (ok && infer_work_init(&work, &m, H, W, err, sizeof err) == 0) {
            for (int i = 0; i < H * W; i++) x[i] = gray8[i] / 127.5f - 1.0f;
            generator_infer(&m, &work, x, y, 0, 0, NULL);
            double inner = 0, all = 0;
            int wc = 0, wy = 0, wx = 0;
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < H; j++)
                    for (int i = 0; i < W; i++) {
                        size_t k = ((size_t)c * H + j) * W + i;
                        double d = fabs((double)y[k] - y1[k]);
                        if (!(d <= all)) all = d;
                        if (j >= PARITY_MARGIN && j < H - PARITY_MARGIN && i >= PARITY_MARGIN &&
                            i < W - PARITY_MARGIN && !(d <= inner))
                            inner = d, wc = c, wy = j, wx = i;
                    }
            CHECK(inner <= 1e-5,
                  "generator_infer vs PyTorch y1: max |diff| %.3g > 1e-5 at c=%d y=%d x=%d", inner,
                  wc, wy, wx);
            printf(
                "parity in process: max |y1 diff| %.3g inside the %d px margin, %.3g everywhere\n",
                inner, PARITY_MARGIN, all);
            infer_work_free(&work);
        } else if (ok) {
            CHECK(0, "infer_work_init: %s", err);
        }
        if (ok) infer_model_free(&m);
    } else if (rc == 0) {
        CHECK(0, "checkpoint_load_model golden_small.h5: %s", err);
    }

    /* (b) through the real program, tiled and mirror-padded */
    Image out;
    if (rc == 0 &&
        COLORIZE_OK("parity", "--model", DATA("golden_small.h5"), COGEO, tp("parity.tif")) == 0 &&
        load_image(tp("parity.tif"), &out) == 0) {
        CHECK(out.w == W && out.h == H && out.bands == 3,
              "parity output is %dx%dx%d, expected %dx%dx3", out.w, out.h, out.bands, W, H);
        if (out.w == W && out.h == H && out.bands >= 3) {
            int worst = 0, over = 0;
            for (int c = 0; c < 3; c++)
                for (int j = PARITY_MARGIN; j < H - PARITY_MARGIN; j++)
                    for (int i = PARITY_MARGIN; i < W - PARITY_MARGIN; i++) {
                        size_t k = ((size_t)c * H + j) * W + i;
                        int d = abs((int)out.px[k] - rgb8[k]);
                        if (d > worst) worst = d;
                        over += d > 1;
                    }
            CHECK(worst <= 1,
                  "spynco colorize vs PyTorch rgb8: %d values differ by more than 1 DN (max %d) "
                  "inside the %d px margin",
                  over, worst, PARITY_MARGIN);
        }
        free_image(&out);
    }
    free(gray8), free(rgb8), free(y1), free(x), free(y);
}

/* ---- 3. georeferencing ---------------------------------------------------------- */

static cJSON *gdalinfo_json(const char *path) {
    char *argv[] = {gdalinfo_bin, "-json", (char *)path, NULL};
    TestPath json_path = tpath("gdalinfo.json");
    const char *out = json_path.s;
    int st = run_env(argv, NULL, out);
    CHECK(exited_ok(st), "gdalinfo -json %s: %s; stderr:\n%s", path, describe(st), child_log);
    FILE *f = fopen(out, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = malloc(size + 1);
    text[fread(text, 1, size, f)] = 0;
    fclose(f);
    cJSON *json = cJSON_Parse(text);
    CHECK(json != NULL, "gdalinfo -json %s: output is not JSON", path);
    free(text);
    return json;
}

static void compare_gdalinfo(const char *in, const char *out) {
    cJSON *a = gdalinfo_json(in), *b = gdalinfo_json(out);
    if (a && b) {
        static const char *keys[] = {"size", "geoTransform"};
        for (int i = 0; i < 2; i++) {
            cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
            cJSON *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
            CHECK(x && y && cJSON_Compare(x, y, 1),
                  "gdalinfo -json: '%s' of %s and %s differ (or are missing)", keys[i], in, out);
        }
        cJSON *ca = cJSON_GetObjectItemCaseSensitive(a, "coordinateSystem");
        cJSON *cb = cJSON_GetObjectItemCaseSensitive(b, "coordinateSystem");
        const char *wa = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ca, "wkt"));
        const char *wb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cb, "wkt"));
        CHECK(wa && wb && !strcmp(wa, wb),
              "gdalinfo -json: coordinateSystem.wkt of %s and %s differ:\n%s\n---\n%s", in, out,
              wa ? wa : "(none)", wb ? wb : "(none)");
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void test_georeferencing(void) {
    static const struct {
        const char *name;
        int epsg;
    } inputs[] = {{"naip_rgbn_266x204.tif", 26911},    {"rasterio_byte_20x20.tif", 26711},
                  {"landsat_rgba_240x200.tif", 32618}, {"rotterdam_pan_u16.tif", 32631},
                  {"cogeo_rgb_384x320.tif", 3857},     {"rotterdam_ms_f64.tif", 32631}};
    if (!gdalinfo_bin[0])
        printf("gdalinfo is not on PATH: skipping the gdalinfo -json comparisons\n");
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char in[PATH_MAX];
        snprintf(in, sizeof in, "%s/%s", SPYNCO_TEST_DATA, inputs[i].name);
        TestPath out_path = tpath("geo_%zu.tif", i);
        const char *out = out_path.s;
        if (COLORIZE_OK(inputs[i].name, "--model", small_model, in, out)) continue;
        GDALDatasetH a = GDALOpen(in, GA_ReadOnly), b = GDALOpen(out, GA_ReadOnly);
        CHECK(a && b, "open %s or %s", in, out);
        if (a && b) {
            CHECK(GDALGetRasterXSize(a) == GDALGetRasterXSize(b) &&
                      GDALGetRasterYSize(a) == GDALGetRasterYSize(b),
                  "%s: output size %dx%d != input %dx%d", inputs[i].name, GDALGetRasterXSize(b),
                  GDALGetRasterYSize(b), GDALGetRasterXSize(a), GDALGetRasterYSize(a));
            double ga[6], gb[6];
            CHECK(GDALGetGeoTransform(a, ga) == CE_None, "%s: input has no geotransform",
                  inputs[i].name);
            CHECK(GDALGetGeoTransform(b, gb) == CE_None, "%s: output has no geotransform",
                  inputs[i].name);
            CHECK(!memcmp(ga, gb, sizeof ga),
                  "%s: geotransform differs: in %.17g %.17g %.17g %.17g %.17g %.17g, out %.17g "
                  "%.17g %.17g %.17g %.17g %.17g",
                  inputs[i].name, ga[0], ga[1], ga[2], ga[3], ga[4], ga[5], gb[0], gb[1], gb[2],
                  gb[3], gb[4], gb[5]);
            const char *wa = GDALGetProjectionRef(a), *wb = GDALGetProjectionRef(b);
            CHECK(wa && wb && *wa && !strcmp(wa, wb), "%s: CRS differs:\n%s\n---\n%s",
                  inputs[i].name, wa ? wa : "(null)", wb ? wb : "(null)");
            OGRSpatialReferenceH srs = OSRNewSpatialReference(wb);
            const char *code = srs ? OSRGetAuthorityCode(srs, NULL) : NULL;
            CHECK(code && atoi(code) == inputs[i].epsg, "%s: output CRS is EPSG:%s, expected %d",
                  inputs[i].name, code ? code : "?", inputs[i].epsg);
            if (srs) OSRDestroySpatialReference(srs);
        }
        if (a) GDALClose(a);
        if (b) GDALClose(b);
        if (gdalinfo_bin[0]) compare_gdalinfo(in, out);
    }
}

/* ---- 4. input kinds ------------------------------------------------------------- */

/* The cogeo image as one Byte band, gray = H_t(R,G,B) rounded, computed as
 * raster.h describes (float32, rintf), with the same georeferencing. */
static int write_cogeo_gray(const char *path) {
    Image rgb;
    if (load_image(COGEO, &rgb)) return -1;
    const float ht[3] = {0.299f, 0.587f, 0.114f};
    size_t count = (size_t)rgb.w * rgb.h;
    uint8_t *gray = malloc(count);
    for (size_t i = 0; i < count; i++) {
        float r = plane(&rgb, 0)[i], g = plane(&rgb, 1)[i], b = plane(&rgb, 2)[i];
        gray[i] = (uint8_t)rintf(ht[0] * r + ht[1] * g + ht[2] * b);
    }
    GDALDatasetH ds =
        GDALCreate(GDALGetDriverByName("GTiff"), path, rgb.w, rgb.h, 1, GDT_Byte, NULL);
    int rc = ds && GDALSetGeoTransform(ds, rgb.gt) == CE_None &&
                     GDALSetProjection(ds, rgb.wkt) == CE_None &&
                     GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, rgb.w, rgb.h, gray,
                                  rgb.w, rgb.h, GDT_Byte, 0, 0) == CE_None
                 ? 0
                 : -1;
    if (ds) GDALClose(ds);
    CHECK(rc == 0, "cannot write the gray image %s", path);
    free(gray);
    free_image(&rgb);
    return rc;
}

static void test_input_kinds(void) {
    const char *pan = DATA("rotterdam_pan_u16.tif"), *naip = DATA("naip_rgbn_266x204.tif");
    /* UInt16 pan: percentile scaling by default, said on stderr; not with --scale */
    if (COLORIZE_OK("pan", "--model", small_model, pan, tp("pan.tif")) == 0) {
        CHECK(strstr(child_log, "percentile") != NULL,
              "UInt16 input: stderr does not mention the percentile scaling:\n%s", child_log);
        check_output(tp("pan.tif"), 160, 160, 3, 10.0, "UInt16 pan");
    }
    if (COLORIZE_OK("pan --scale", "--model", small_model, "--scale", "0", "2047", pan,
                    tp("pan_s.tif")) == 0) {
        CHECK(strstr(child_log, "percentile") == NULL,
              "--scale given, yet stderr mentions percentiles:\n%s", child_log);
        check_output(tp("pan_s.tif"), 160, 160, 3, 10.0, "UInt16 pan --scale 0 2047");
        Image a, b;
        if (load_image(tp("pan.tif"), &a) == 0) {
            if (load_image(tp("pan_s.tif"), &b) == 0) {
                CHECK(count_diff(&a, &b) > (long)a.w * a.h / 4,
                      "UInt16 pan: --scale 0 2047 gives nearly the percentile-scaled result (%ld "
                      "bytes differ)",
                      count_diff(&a, &b));
                free_image(&b);
            }
            free_image(&a);
        }
    }
    /* NAIP R,G,B,NIR (the 4th labelled alpha): H_t over R,G,B; -b 4 must differ */
    if (COLORIZE_OK("naip", "--model", small_model, naip, tp("naip.tif")) == 0 &&
        COLORIZE_OK("naip -b 4", "--model", small_model, "-b", "4", naip, tp("naip_b4.tif")) == 0) {
        CHECK(strstr(child_log, "band 4") != NULL, "-b 4: stderr does not say band 4 is used:\n%s",
              child_log);
        colorize("--model", small_model, naip, tp("naip_again.tif"));
        CHECK(strstr(child_log, "bands 1,2,3 as R,G,B") != NULL,
              "naip: stderr does not say R,G,B go through H_t:\n%s", child_log);
        Image a, b;
        if (load_image(tp("naip.tif"), &a) == 0) {
            if (load_image(tp("naip_b4.tif"), &b) == 0) {
                long d = a.bands >= 3 && b.bands >= 3 && a.w == b.w && a.h == b.h ? 0 : -1;
                for (size_t k = 0; d >= 0 && k < (size_t)3 * a.w * a.h; k++)
                    d += a.px[k] != b.px[k];
                CHECK(d > (long)a.w * a.h / 4,
                      "naip: -b 4 (NIR) gives nearly the result of R,G,B (%ld of %d RGB bytes "
                      "differ)",
                      d, 3 * a.w * a.h);
                free_image(&b);
            }
            free_image(&a);
        }
        check_output(tp("naip.tif"), 266, 204, 4, 10.0, "naip RGBN");
    }
    /* 8-bit RGB through H_t, rounded: the same as colorizing that gray image */
    if (write_cogeo_gray(tp("cogeo_gray.tif")) == 0 &&
        COLORIZE_OK("gray", "--model", small_model, tp("cogeo_gray.tif"), tp("gray.tif")) == 0)
        check_same_pixels(tp("gray.tif"), tp("tile_1024.tif"),
                          "cogeo's H_t gray (1 band) vs cogeo RGB");
    /* sides not multiples of 4 nor of the tile: same pixels with small tiles */
    if (COLORIZE_OK("naip --tile 64", "--model", small_model, "--tile", "64", naip,
                    tp("naip_t64.tif")) == 0)
        check_same_pixels(tp("naip.tif"), tp("naip_t64.tif"), "naip 266x204: --tile 64 vs default");

    /* RGBA: alpha out = 255 where alpha in > 0, else 0; colour 0 there */
    const char *landsat = DATA("landsat_rgba_240x200.tif");
    Image in, out;
    if (COLORIZE_OK("landsat", "--model", small_model, landsat, tp("landsat.tif")) == 0 &&
        load_image(landsat, &in) == 0) {
        if (load_image(tp("landsat.tif"), &out) == 0) {
            CHECK(out.bands == 4 && out.w == in.w && out.h == in.h,
                  "landsat RGBA: output %dx%dx%d, expected %dx%dx4", out.w, out.h, out.bands, in.w,
                  in.h);
            if (out.bands == 4 && out.w == in.w && out.h == in.h) {
                long bad_alpha = 0, bad_rgb = 0, holes = 0;
                for (size_t p = 0; p < (size_t)in.w * in.h; p++) {
                    int valid = plane(&in, 3)[p] > 0;
                    holes += !valid;
                    bad_alpha += plane(&out, 3)[p] != (valid ? 255 : 0);
                    if (!valid)
                        for (int c = 0; c < 3; c++) bad_rgb += plane(&out, c)[p] != 0;
                }
                CHECK(holes > 100, "landsat fixture: only %ld no-data pixels, the test needs some",
                      holes);
                CHECK(bad_alpha == 0,
                      "landsat RGBA: %ld output alpha values are not 255/0 as the input alpha >0/0",
                      bad_alpha);
                CHECK(bad_rgb == 0, "landsat RGBA: %ld colour values are not 0 where alpha is 0",
                      bad_rgb);
            }
            free_image(&out);
        }
        free_image(&in);
        check_output(tp("landsat.tif"), 240, 200, 4, 10.0, "landsat RGBA");
    }
    /* Float64 multiband: 4 bands out, as floats may hold NaN */
    if (COLORIZE_OK("f64", "--model", small_model, DATA("rotterdam_ms_f64.tif"), tp("f64.tif")) ==
        0)
        check_output(tp("f64.tif"), 80, 80, 4, 10.0, "Float64 multiband");
    /* a plain JPEG: no georeferencing out either */
    if (COLORIZE_OK("jpeg", "--model", small_model, DATA("naip_plain.jpg"), tp("jpeg.tif")) == 0) {
        check_output(tp("jpeg.tif"), 266, 204, 3, 10.0, "plain JPEG");
        Image im;
        if (load_image(tp("jpeg.tif"), &im) == 0) {
            static const double unit[6] = {0, 1, 0, 0, 0, 1};
            CHECK(!im.has_gt || !memcmp(im.gt, unit, sizeof unit),
                  "plain JPEG: the output has a geotransform %g %g %g %g %g %g", im.gt[0], im.gt[1],
                  im.gt[2], im.gt[3], im.gt[4], im.gt[5]);
            CHECK(im.wkt[0] == 0, "plain JPEG: the output has a CRS: %s", im.wkt);
            free_image(&im);
        }
    }
    /* 20x20: smaller than any tile and than the receptive field */
    if (COLORIZE_OK("20x20", "--model", small_model, DATA("rasterio_byte_20x20.tif"),
                    tp("tiny.tif")) == 0)
        check_output(tp("tiny.tif"), 20, 20, 3, 10.0, "20x20");

    /* a VRT over a fixture, and the fixture inside a zip: same pixels as the file */
    TestPath vrt_path = tpath("cogeo.vrt");
    const char *src = COGEO, *vrt = vrt_path.s;
    GDALBuildVRTOptions *vo = GDALBuildVRTOptionsNew(NULL, NULL);
    int usage_error = 0;
    GDALDatasetH v = GDALBuildVRT(vrt, 1, NULL, &src, vo, &usage_error);
    CHECK(v != NULL, "GDALBuildVRT %s: %s", vrt, CPLGetLastErrorMsg());
    if (v) GDALClose(v);
    GDALBuildVRTOptionsFree(vo);
    if (v && COLORIZE_OK("vrt", "--model", small_model, vrt, tp("vrt.tif")) == 0)
        check_same_pixels(tp("vrt.tif"), tp("tile_1024.tif"), "VRT over cogeo vs cogeo");

    char zip[PATH_MAX];
    snprintf(zip, sizeof zip, "/vsizip/%s/a.zip/a.tif", tmpdir);
    VSILFILE *zf = VSIFOpenL(zip, "wb");
    FILE *f = fopen(COGEO, "rb");
    CHECK(zf && f, "cannot open %s for writing or %s for reading", zip, COGEO);
    int copied = zf && f;
    char buf[65536];
    for (size_t got; copied && (got = fread(buf, 1, sizeof buf, f)) > 0;)
        copied = VSIFWriteL(buf, 1, got, zf) == got;
    if (f) fclose(f);
    if (zf) copied = VSIFCloseL(zf) == 0 && copied;
    CHECK(copied, "writing %s failed", zip);
    if (copied && COLORIZE_OK("vsizip", "--model", small_model, zip, tp("zip.tif")) == 0)
        check_same_pixels(tp("zip.tif"), tp("tile_1024.tif"), "/vsizip/ input vs the plain file");
}

/* ---- 5. output options ---------------------------------------------------------- */

static const char *md_item(GDALDatasetH ds, const char *name, const char *domain) {
    const char *v = GDALGetMetadataItem(ds, name, domain);
    return v ? v : "";
}

static void test_output_options(void) {
    GDALDatasetH ds;
    /* COG, with overviews: the input must be larger than a 512 block */
    if (COLORIZE_OK("COG", "--model", small_model, "-of", "COG", big1500, tp("cog.tif")) == 0 &&
        (ds = GDALOpen(tp("cog.tif"), GA_ReadOnly))) {
        CHECK(!strcmp(md_item(ds, "LAYOUT", "IMAGE_STRUCTURE"), "COG"),
              "-of COG: LAYOUT is '%s', not COG", md_item(ds, "LAYOUT", "IMAGE_STRUCTURE"));
        int ovr = GDALGetOverviewCount(GDALGetRasterBand(ds, 1));
        CHECK(ovr > 0, "-of COG: no overviews on a 1500x1500 output");
        CHECK(GDALGetRasterXSize(ds) == 1500 && GDALGetRasterYSize(ds) == 1500,
              "-of COG: size %dx%d", GDALGetRasterXSize(ds), GDALGetRasterYSize(ds));
        GDALClose(ds);
    }
    CHECK(leftover_temps(tmpdir) == 0, "-of COG left temporary files in %s", tmpdir);
    /* GTiff --overviews */
    if (COLORIZE_OK("--overviews", "--model", small_model, "--overviews", COGEO, tp("ovr.tif")) ==
            0 &&
        (ds = GDALOpen(tp("ovr.tif"), GA_ReadOnly))) {
        CHECK(GDALGetOverviewCount(GDALGetRasterBand(ds, 1)) > 0,
              "--overviews: the GTiff has no overviews");
        GDALClose(ds);
        CHECK(!file_exists(tp("ovr.tif.ovr")),
              "--overviews: external .ovr instead of internal overviews");
    }
    /* -co COMPRESS=LZW */
    if (COLORIZE_OK("-co", "--model", small_model, "-co", "COMPRESS=LZW", COGEO, tp("lzw.tif")) ==
            0 &&
        (ds = GDALOpen(tp("lzw.tif"), GA_ReadOnly))) {
        CHECK(!strcmp(md_item(ds, "COMPRESSION", "IMAGE_STRUCTURE"), "LZW"),
              "-co COMPRESS=LZW: COMPRESSION is '%s'",
              md_item(ds, "COMPRESSION", "IMAGE_STRUCTURE"));
        GDALClose(ds);
        check_same_pixels(tp("lzw.tif"), tp("tile_1024.tif"), "-co COMPRESS=LZW vs default");
    }
    /* defaults: tiled 512x512, DEFLATE, Spynco's metadata */
    TestPath def_path = tpath("tile_1024.tif");
    const char *def = def_path.s;
    if ((ds = GDALOpen(def, GA_ReadOnly))) {
        int bx = 0, by = 0;
        GDALGetBlockSize(GDALGetRasterBand(ds, 1), &bx, &by);
        CHECK(bx == 512 && by == 512, "default GTiff: blocks %dx%d, not 512x512", bx, by);
        CHECK(!strcmp(md_item(ds, "COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE"),
              "default GTiff: COMPRESSION is '%s', not DEFLATE",
              md_item(ds, "COMPRESSION", "IMAGE_STRUCTURE"));
        CHECK(!strcmp(md_item(ds, "SPYNCO_MODEL", NULL), "test-vivid"),
              "SPYNCO_MODEL is '%s', not the model's name test-vivid",
              md_item(ds, "SPYNCO_MODEL", NULL));
        CHECK(!strcmp(md_item(ds, "SPYNCO_VERSION", NULL), SPYNCO_VERSION),
              "SPYNCO_VERSION is '%s', not %s", md_item(ds, "SPYNCO_VERSION", NULL),
              SPYNCO_VERSION);
        const char *hash = md_item(ds, "SPYNCO_MODEL_CONFIG_HASH", NULL);
        CHECK(strlen(hash) == 16 && strspn(hash, "0123456789abcdef") == 16,
              "SPYNCO_MODEL_CONFIG_HASH '%s' is not 16 hex digits", hash);
        float w[3] = {0, 0, 0};
        CHECK(sscanf(md_item(ds, "SPYNCO_HT_WEIGHTS", NULL), "%f,%f,%f", &w[0], &w[1], &w[2]) ==
                      3 &&
                  fabsf(w[0] - 0.299f) < 1e-6f && fabsf(w[1] - 0.587f) < 1e-6f &&
                  fabsf(w[2] - 0.114f) < 1e-6f,
              "SPYNCO_HT_WEIGHTS is '%s', not 0.299,0.587,0.114",
              md_item(ds, "SPYNCO_HT_WEIGHTS", NULL));
        /* the hash follows the config: the golden model's differs */
        GDALDatasetH other = GDALOpen(tp("parity.tif"), GA_ReadOnly);
        if (other) {
            CHECK(strcmp(hash, md_item(other, "SPYNCO_MODEL_CONFIG_HASH", NULL)) != 0,
                  "two models with different configs give the same SPYNCO_MODEL_CONFIG_HASH %s",
                  hash);
            GDALClose(other);
        }
        GDALClose(ds);
    }
    /* PNG: no Create(), so through CreateCopy */
    if (COLORIZE_OK("PNG", "--model", small_model, "-of", "PNG", COGEO, tp("out.png")) == 0) {
        Image im;
        if (load_image(tp("out.png"), &im) == 0) {
            CHECK(!strcmp(im.driver, "PNG"), "-of PNG wrote a %s file", im.driver);
            /* PNG keeps the georeferencing in its .aux.xml sidecar */
            Image in;
            if (load_image(COGEO, &in) == 0) {
                CHECK(im.has_gt && !memcmp(im.gt, in.gt, sizeof in.gt) && !strcmp(im.wkt, in.wkt),
                      "-of PNG: the georeferencing was lost (.aux.xml %s)",
                      file_exists(tp("out.png.aux.xml")) ? "present" : "missing");
                free_image(&in);
            }
            free_image(&im);
        }
        check_same_pixels(tp("out.png"), tp("tile_1024.tif"), "-of PNG vs GTiff");
    }
    CHECK(leftover_temps(tmpdir) == 0, "output options left temporary files in %s", tmpdir);
}

/* ---- 6. the default model ------------------------------------------------------- */

static void test_default_model(void) {
    char env[PATH_MAX + 32];
    snprintf(env, sizeof env, "SPYNCO_MODEL=%s", small_model_d);
    int st = colorize_env(env, COGEO, tp("default.tif"), (const char *)NULL);
    CHECK(exited_ok(st), "SPYNCO_MODEL=%s without --model: %s; stderr:\n%s", small_model_d,
          describe(st), child_log);
    if (exited_ok(st)) {
        CHECK(strstr(child_log, small_model_d) != NULL,
              "stderr does not name the model from SPYNCO_MODEL:\n%s", child_log);
        /* the same G as small.h5: the same pixels */
        check_same_pixels(tp("default.tif"), tp("tile_1024.tif"), "SPYNCO_MODEL vs --model");
    }
    TestPath missing_path = tpath("no-such-model.h5");
    const char *missing = missing_path.s;
    snprintf(env, sizeof env, "SPYNCO_MODEL=%s", missing);
    st = colorize_env(env, COGEO, tp("default_missing.tif"), (const char *)NULL);
    CHECK(exited_failed(st), "SPYNCO_MODEL pointing to a missing file: %s, expected a failure",
          describe(st));
    CHECK(strstr(child_log, "no-such-model.h5") != NULL,
          "SPYNCO_MODEL missing: stderr does not name the file:\n%s", child_log);
    CHECK(!file_exists(tp("default_missing.tif")), "SPYNCO_MODEL missing: an output was written");
}

/* ---- 7. bad input --------------------------------------------------------------- */

/* A failed run: non-zero exit, no signal, the keyword on stderr, nothing at
 * out and no temporary file beside it. */
static void check_failure(int st, const char *what, const char *keyword, const char *out) {
    CHECK(exited_failed(st), "%s: %s, expected a non-zero exit without a signal; stderr:\n%s", what,
          describe(st), child_log);
    CHECK(strstr(child_log, keyword) != NULL, "%s: stderr does not mention '%s':\n%s", what,
          keyword, child_log);
    if (out) {
        CHECK(!file_exists(out), "%s: something was left at %s", what, out);
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        CHECK(leftover_temps(dir) == 0, "%s: temporary files left in %s", what, dir);
    }
}

static void check_usage_error(int st, const char *what, const char *keyword) {
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2,
          "%s: %s, expected exit status 2 (usage); stderr:\n%s", what, describe(st), child_log);
    CHECK(strstr(child_log, keyword) != NULL, "%s: stderr does not mention '%s':\n%s", what,
          keyword, child_log);
}

static void test_bad_input(void) {
    TestPath out_path = tpath("bad.tif");
    const char *out = out_path.s;
    TestPath missing_path = tpath("missing.tif");
    const char *missing = missing_path.s;
    check_failure(colorize("--model", small_model, missing, out), "missing input", missing, out);
    TestPath text_path = tpath("text.tif");
    const char *text = text_path.s;
    test_write_text(text, "this is not a raster\n");
    check_failure(colorize("--model", small_model, text, out), "text input", text, out);
    TestPath empty_path = tpath("zero_bands.vrt");
    const char *empty = empty_path.s;
    test_write_text(empty, "<VRTDataset rasterXSize=\"10\" rasterYSize=\"10\"></VRTDataset>\n");
    check_failure(colorize("--model", small_model, empty, out), "zero-band VRT", empty, out);
    TestPath bad_model_path = tpath("bad_model.h5");
    const char *bad_model = bad_model_path.s;
    test_write_text(bad_model, "not a model\n");
    check_failure(colorize("--model", bad_model, COGEO, out), "text model", bad_model, out);
    check_failure(colorize("--model", small_model, "-b", "5", DATA("naip_rgbn_266x204.tif"), out),
                  "-b 5 on 4 bands", "-b 5", out);
    TestPath nodir_path = tpath("no-such-dir/out.tif");
    const char *nodir = nodir_path.s;
    check_failure(colorize("--model", small_model, COGEO, nodir), "output in a missing folder",
                  nodir, NULL);
    CHECK(!file_exists(tp("no-such-dir")), "the missing output folder was created");
    check_failure(colorize("--model", small_model, COGEO, "/proc/spynco-test-out.tif"),
                  "output under /proc", "/proc/spynco-test-out.tif", "/proc/spynco-test-out.tif");

    /* full disk (i): a file-size limit; the shell ignores SIGXFSZ (inherited
     * by spynco), so writes past the limit fail with EFBIG instead of killing */
    long need = file_size(tp("tile_1024.tif"));
    CHECK(need > 64 * 1024, "the cogeo output (%ld bytes) is too small for the full-disk tests",
          need);
    char *limit = "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"";
    char *argv[] = {"/bin/sh", "-c",      limit,       SPYNCO_BIN, "colorize",  "--threads",
                    "2",       "--model", small_model, COGEO,      (char *)out, NULL};
    check_failure(run_env(argv, NULL, NULL), "ulimit -f 64", out, out);

    /* full disk (ii): a 64 KB tmpfs */
    TestPath mnt_path = tpath("tmpfs");
    const char *mnt = mnt_path.s;
    mkdir(mnt, 0755);
    char *mount_argv[] = {mount_bin, "-t", "tmpfs", "-o", "size=64k", "tmpfs", (char *)mnt, NULL};
    int st = mount_bin[0] ? run_env(mount_argv, NULL, NULL) : -1;
    if (!exited_ok(st)) {
        printf("cannot mount a tmpfs (%s): skipping the full-tmpfs test\n",
               mount_bin[0] ? child_log : "no mount");
    } else {
        TestPath full_path = tpath("tmpfs/out.tif");
        const char *full_out = full_path.s;
        check_failure(colorize("--model", small_model, COGEO, full_out), "full tmpfs", full_out,
                      full_out);
        char *umount_argv[] = {umount_bin, (char *)mnt, NULL};
        st = run_env(umount_argv, NULL, NULL);
        CHECK(exited_ok(st), "umount %s: %s", mnt, child_log);
    }
    rmdir(mnt);

    /* usage errors: exit 2 */
    check_usage_error(colorize("--model", small_model, "--tile", "30", COGEO, out), "--tile 30",
                      "--tile");
    check_usage_error(colorize("--model", small_model, "-b", "0", COGEO, out), "-b 0", "-b");
    check_usage_error(colorize("--model", small_model, "--scale", "5", "1", COGEO, out),
                      "--scale 5 1", "--scale");
    check_usage_error(colorize("--model", small_model, COGEO), "missing OUTPUT", "usage");
    check_usage_error(colorize("--model", small_model, "--bogus", COGEO, out), "unknown option",
                      "--bogus");
    CHECK(!file_exists(out), "a usage error left a file at %s", out);
}

/* ---- 8. interruption ------------------------------------------------------------ */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* `spynco bench`, colorize's inference path timed: one line a run, the halo
 * variant named, and --halo refused for a training step. */
static void test_bench(void) {
    static const char *runs[][2] = {{"", "infer 64x64 batch 1 threads 1: median "},
                                    {"--halo", "infer 64x64 with its halo batch 1 threads 1: "}};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {SPYNCO_BIN, "bench", "--infer", "64", "--repeat", "1", "--threads", "1",
                        (char *)runs[i][0], NULL};
        if (!*runs[i][0]) argv[8] = NULL;
        int st = run_env(argv, NULL, tp("bench.txt"));
        char *text = test_read_file(tp("bench.txt"));
        CHECK(exited_ok(st) && text && strstr(text, runs[i][1]) && strstr(text, " megapixels/s\n"),
              "spynco bench --infer 64 %s: %s, printed: %s", runs[i][0], describe(st),
              text ? text : "(nothing)");
        free(text);
    }
    char *argv[] = {SPYNCO_BIN, "bench", "--train", "64", "--halo", NULL};
    check_usage_error(run_env(argv, NULL, NULL), "bench --train --halo", "--halo");
}

static void test_interrupt(void) {
    TestPath out_path = tpath("interrupted.tif");
    const char *out = out_path.s;
    char *argv[] = {SPYNCO_BIN, "colorize", "--threads", "1",         "--tile", "128",
                    "--model",  big_model,  big2000,     (char *)out, NULL};
    double t0 = now();
    pid_t pid = start_child(argv, NULL, NULL);
    /* wait until the output's temporary file exists (the tiles are running),
     * then a second more: the signal must land in the middle of the work */
    struct timespec nap = {0, 20 * 1000 * 1000}, second = {1, 0};
    int started = 0;
    while (!(started = temps_of(tmpdir, "interrupted.tif") > 0) &&
           waitpid(pid, NULL, WNOHANG) == 0 && now() - t0 < 120)
        nanosleep(&nap, NULL);
    CHECK(started, "the run to interrupt never created its temporary output");
    nanosleep(&second, NULL);
    int alive = waitpid(pid, NULL, WNOHANG) == 0;
    CHECK(alive, "the run to interrupt finished within 1 s of starting its tiles: make it longer");
    kill(pid, SIGTERM);
    double t1 = now();
    int st = finish_child(pid, CHILD_TIMEOUT);
    printf("interruption: SIGTERM %.1f s after the start, exit %.1f s later (%s)\n", t1 - t0,
           now() - t1, describe(st));
    if (alive) check_failure(st, "SIGTERM", "interrupted", out);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    double t0 = now();
    if (setup() == 0) {
        static const struct {
            const char *name;
            void (*fn)(void);
        } tests[] = {{"tile invariance", test_tile_invariance},
                     {"parity", test_parity},
                     {"georeferencing", test_georeferencing},
                     {"input kinds", test_input_kinds},
                     {"output options", test_output_options},
                     {"default model", test_default_model},
                     {"bad input", test_bad_input},
                     {"bench", test_bench},
                     {"interruption", test_interrupt}};
        for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
            double t = now();
            int failed = test_failed;
            tests[i].fn();
            printf("%-16s %5.1f s%s\n", tests[i].name, now() - t,
                   test_failed > failed ? "  FAILED" : "");
        }
    }
    CHECK(leftover_temps(tmpdir) == 0, "temporary files were left in %s", tmpdir);
    printf("total %.1f s\n", now() - t0);
    CPLPopErrorHandler();
    remove_tmpdir();
    GDALDestroyDriverManager();
    return test_summary("test_colorize");
}
