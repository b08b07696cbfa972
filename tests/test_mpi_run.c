/* `spynco run` under mpirun: the same batch recipe (a folder of real GeoTIFFs:
 * four tiles of the cogeo fixture, the whole of it, and a cut copy that GDAL
 * opens but cannot read; a mosaic) run by one process and by
 * `mpirun -n 2`. The outputs must be pixel-identical (the single process
 * uses another tile size and thread count: colorize does not depend on
 * them) with the same georeferencing; rank 0 writes the mosaic and the
 * summary once; the journal has one valid entry per output, written by both
 * ranks; the cut input fails alone (exit 1 on every rank). A rerun under
 * mpirun keeps every output untouched; a run on a folder locked by another
 * process is refused (exit 2). An eval job shared by 2 ranks gives one
 * process's figures. `test_mpi_run setup`: a setup step failing on one
 * rank only stops every rank, with one message (no hang). `test_mpi_run
 * train`: a train job on 2 ranks exports one process's model. `test_mpi_run
 * signal`: SIGUSR1 or SIGINT to mpirun mid-run; a rerun finishes the job. */
#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <dirent.h>
#include <fcntl.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/h5io.h"
#include "testmodel.h"
#include "testutil.h"

#define COGEO SPYNCO_TEST_DATA "/cogeo_rgb_384x320.tif"
#define GOOD 5 /* good inputs: 4 tiles and the whole */
static const char *const NAMES[GOOD] = {"t0", "t1", "t2", "t3", "cogeo_rgb_384x320"};
static char dir[256], model[PATH_MAX], log_path[PATH_MAX];

/* Open MPI refuses root without the first two; waiting ranks yield the CPU
 * (CI runs tests side by side on 2 cores); ASan needs full stacks to match
 * the MPI leak suppressions in tests/lsan.supp. One compute thread a rank. */
static char asan_options[1024] = "ASAN_OPTIONS=";
static char *mpi_env[] = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                          "OMPI_MCA_mpi_yield_when_idle=1", "OMP_NUM_THREADS=1", asan_options,
                          NULL};

static const char *path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *path(const char *fmt, ...) {
    static char buf[8][PATH_MAX];
    static int k;
    char *p = buf[k++ % 8];
    int len = snprintf(p, PATH_MAX, "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p + len, PATH_MAX - len, fmt, ap);
    va_end(ap);
    return p;
}

/* Starts the shell command cmd (exec mpirun ...: its pid is mpirun's),
 * output into log_path. */
static pid_t start(const char *cmd) {
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    unlink(log_path);
    return test_spawn(argv, mpi_env, log_path);
}

#define HUNG (-2)
#define RUN_LIMIT 300 /* seconds; the runs take a few (ASan: tens) */

/* The exit status of the run started as pid (test_wait), or HUNG if it
 * still runs after `limit` seconds: then mpirun gets SIGTERM (it ends its
 * ranks), SIGKILL 5 s later, so that no process stays behind. */
static int finish(pid_t pid, int limit) {
    for (long ms = 0; pid > 0; ms += 50) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid)
            return test_wait(pid);
        if (ms >= limit * 1000L) {
            kill(pid, SIGTERM);
            sleep(5);
            kill(pid, SIGKILL);
            test_wait(pid);
            return HUNG;
        }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    return -1;
}

/* spynco run RECIPE on `ranks` processes (1: no mpirun), output into log_path. */
static int run(int ranks, const char *recipe, const char *flags) {
    char launcher[512] = "", cmd[4096];
    if (ranks > 1)
        snprintf(launcher, sizeof launcher, "%s -n %d %s ", MPIEXEC, ranks, MPIEXEC_FLAGS);
    snprintf(cmd, sizeof cmd, "exec %s%s run %s %s", launcher, SPYNCO_BIN, flags, recipe);
    return finish(start(cmd), RUN_LIMIT);
}

static char *log_text(void) {
    char *t = test_read_file(log_path);
    return t ? t : calloc(1, 1);
}

static int occurrences(const char *text, const char *part) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, part)); p++) n++;
    return n;
}

static void dump_log(void) {
    char *t = log_text();
    fprintf(stderr, "---- %s ----\n%s----\n", log_path, t);
    free(t);
}

/* ---- fixtures --------------------------------------------------------------------- */

static int make_inputs(void) {
    mkdir(path("in"), 0777);
    static const int at[4][2] = {{0, 0}, {192, 0}, {0, 160}, {192, 160}};
    GDALDatasetH src = GDALOpen(COGEO, GA_ReadOnly);
    int ok = src != NULL;
    for (int i = 0; ok && i < 4; i++) {
        char x[16], y[16];
        snprintf(x, sizeof x, "%d", at[i][0]);
        snprintf(y, sizeof y, "%d", at[i][1]);
        char *args[] = {"-srcwin", x, y, "192", "160", NULL};
        GDALTranslateOptions *o = GDALTranslateOptionsNew(args, NULL);
        GDALDatasetH out = GDALTranslate(path("in/t%d.tif", i), src, o, NULL);
        ok = out != NULL;
        if (out) GDALClose(out);
        GDALTranslateOptionsFree(o);
    }
    if (src) GDALClose(src);
    /* the whole fixture, and its first 40%: a cloud-optimized GeoTIFF keeps its
     * header in front, so GDAL opens the cut copy and fails reading it */
    char *bytes = test_read_file(COGEO);
    struct stat st;
    FILE *whole = fopen(path("in/cogeo_rgb_384x320.tif"), "wb"), *cut = fopen(path("in/cut.tif"), "wb");
    ok = ok && bytes && stat(COGEO, &st) == 0 && whole && cut &&
         fwrite(bytes, 1, st.st_size, whole) == (size_t)st.st_size &&
         fwrite(bytes, 1, st.st_size * 2 / 5, cut) == (size_t)(st.st_size * 2 / 5);
    if (whole) fclose(whole);
    if (cut) fclose(cut);
    free(bytes);
    CHECK(ok, "cannot make the inputs in %s", path("in"));
    return ok ? 0 : -1;
}

static void write_recipe(const char *name, const char *out, int tile, int threads) {
    char text[2 * PATH_MAX];
    snprintf(text, sizeof text,
             "colorize:\n  model: %s\n  inputs: in\n  output: %s\n  tile: %d\n  threads: %d\n"
             "  mosaic: true\n", model, out, tile, threads);
    test_write_text(path("%s", name), text);
}

/* ---- comparisons -------------------------------------------------------------------- */

/* Same size, bands, geotransform, CRS and pixels. */
static int same_raster(const char *a, const char *b) {
    GDALDatasetH da = GDALOpen(a, GA_ReadOnly), db = GDALOpen(b, GA_ReadOnly);
    int same = da && db;
    int w = same ? GDALGetRasterXSize(da) : 0, h = same ? GDALGetRasterYSize(da) : 0;
    int bands = same ? GDALGetRasterCount(da) : 0;
    same = same && w == GDALGetRasterXSize(db) && h == GDALGetRasterYSize(db) &&
           bands == GDALGetRasterCount(db) && bands >= 3;
    double ga[6], gb[6];
    same = same && GDALGetGeoTransform(da, ga) == CE_None && GDALGetGeoTransform(db, gb) == CE_None &&
           !memcmp(ga, gb, sizeof ga);
    same = same && !strcmp(GDALGetProjectionRef(da), GDALGetProjectionRef(db)) &&
           *GDALGetProjectionRef(da);
    size_t bytes = (size_t)w * h * bands;
    uint8_t *pa = same ? malloc(bytes) : NULL, *pb = same ? malloc(bytes) : NULL;
    same = same && pa && pb &&
           GDALDatasetRasterIO(da, GF_Read, 0, 0, w, h, pa, w, h, GDT_Byte, bands, NULL, 0, 0, 0) == CE_None &&
           GDALDatasetRasterIO(db, GF_Read, 0, 0, w, h, pb, w, h, GDT_Byte, bands, NULL, 0, 0, 0) == CE_None &&
           !memcmp(pa, pb, bytes);
    free(pa), free(pb);
    if (da) GDALClose(da);
    if (db) GDALClose(db);
    return same;
}

/* The journal of OUT: entries done and failed, each a whole JSON object of
 * this run (one run id), and the number of processes that wrote them. */
static void journal_summary(const char *out, int *done, int *failed, int *valid, int *writers) {
    char jdir[PATH_MAX + 32];
    snprintf(jdir, sizeof jdir, "%s/.spynco-journal", out);
    DIR *d = opendir(jdir);
    char run[128] = "";
    long pids[2] = {0, 0};
    *done = *failed = *writers = 0, *valid = 1;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char file[2 * PATH_MAX];
        snprintf(file, sizeof file, "%s/%s", jdir, e->d_name);
        char *text = test_read_file(file);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *state = cJSON_GetObjectItem(j, "state"), *id = cJSON_GetObjectItem(j, "run"),
                    *pid = cJSON_GetObjectItem(j, "pid");
        int ok = cJSON_IsString(state) && cJSON_IsString(id) && cJSON_IsNumber(pid) &&
                 strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".json");
        if (ok && !run[0]) snprintf(run, sizeof run, "%s", id->valuestring);
        ok = ok && !strcmp(run, id->valuestring);
        if (ok) {
            *done += !strcmp(state->valuestring, "done");
            *failed += !strcmp(state->valuestring, "failed");
            long p = (long)pid->valuedouble;
            if (p != pids[0] && p != pids[1] && *writers < 2) pids[(*writers)++] = p;
        }
        *valid &= ok;
        cJSON_Delete(j);
    }
    if (d) closedir(d);
}

/* ---- the runs ------------------------------------------------------------------------ */

static void test_one_and_two(void) {
    write_recipe("one.yaml", "one", 128, 2);
    write_recipe("two.yaml", "two", 64, 1);
    int rc = run(1, path("one.yaml"), "-q");
    CHECK(rc == 1, "one process: exit %d, expected 1 (the cut input)", rc);
    if (rc != 1) dump_log();
    rc = run(2, path("two.yaml"), "");
    CHECK(rc == 1, "mpirun -n 2: exit %d, expected 1 (the cut input)", rc);
    char *text = log_text();
    if (rc != 1) dump_log();

    for (int i = 0; i < GOOD; i++) {
        const char *a = path("one/%s_color.tif", NAMES[i]), *b = path("two/%s_color.tif", NAMES[i]);
        CHECK(access(b, F_OK) == 0, "%s missing", b);
        CHECK(same_raster(a, b), "%s and %s differ (size, georeferencing or pixels)", a, b);
    }
    printf("  %d outputs of 2 processes (tile 64, 1 thread each) = those of 1 process (tile 128, "
           "2 threads), pixels and georeferencing\n", GOOD);

    /* both ranks worked; the summary and the mosaic come once, from rank 0 */
    CHECK(strstr(text, "] rank 0: ") && strstr(text, "] rank 1: "), "not both ranks colorized");
    CHECK(occurrences(text, "6 inputs: 5 done, 0 kept, 0 skipped, 1 failed") == 1,
          "the summary's totals, once");
    CHECK(occurrences(text, "mosaic of 5 outputs") == 1, "the mosaic is built once");
    const char *failed_by = strstr(text, "in/cut.tif -> ");
    int bad_rank = failed_by && failed_by - text > 2 ? failed_by[-3] - '0' : -1;
    int summary_line = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        summary_line += !strncmp(line, "in/cut.tif ", 11) && strstr(line, " failed ");
    CHECK(summary_line == 1, "the cut input's failure is in the summary once");
    free(text);
    printf("  the cut input failed on rank %d and appears in rank 0's summary\n", bad_rank);

    int done, failed, valid, writers;
    journal_summary(path("two"), &done, &failed, &valid, &writers);
    CHECK(valid && done == GOOD && failed == 1 && writers == 2, "journal: %d done, %d failed, "
          "valid %d, written by %d processes (expected %d, 1, 1, 2)", done, failed, valid, writers,
          GOOD);

    GDALDatasetH vrt = GDALOpen(path("two/mosaic.vrt"), GA_ReadOnly);
    char **files = vrt ? GDALGetFileList(vrt) : NULL;
    int listed = 0;
    for (int i = 0; i < GOOD; i++)
        for (int j = 0; files && files[j]; j++) {
            char name[64];
            snprintf(name, sizeof name, "/%s_color.tif", NAMES[i]);
            listed += strstr(files[j], name) != NULL;
        }
    CHECK(listed == GOOD && CSLCount(files) == GOOD + 1, "the mosaic lists the %d outputs (%d of "
          "%d files)", GOOD, listed, CSLCount(files));
    CSLDestroy(files);
    if (vrt) GDALClose(vrt);
    CHECK(same_raster(path("one/mosaic.vrt"), path("two/mosaic.vrt")), "the mosaics differ");
}

static void test_rerun(void) {
    double mtimes[GOOD];
    ino_t inodes[GOOD];
    for (int i = 0; i < GOOD; i++) mtimes[i] = test_mtime(path("two/%s_color.tif", NAMES[i]), &inodes[i]);
    unlink(path("in/cut.tif"));
    int rc = run(2, path("two.yaml"), "");
    char *text = log_text();
    CHECK(rc == 0 && strstr(text, "5 inputs: 0 done, 5 kept, 0 skipped, 0 failed") &&
              !strstr(text, "] rank "),
          "rerun under mpirun: exit %d, everything kept, nothing colorized", rc);
    if (rc) dump_log();
    free(text);
    for (int i = 0; i < GOOD; i++) {
        ino_t inode = 0;
        double m = test_mtime(path("two/%s_color.tif", NAMES[i]), &inode);
        CHECK(m == mtimes[i] && inode == inodes[i], "%s_color.tif was rewritten", NAMES[i]);
    }
}

/* Another process holds the folder's lock: every rank exits 2, the message
 * names the folder and the holder (as the lock file says). */
static void test_locked(void) {
    int fd = open(path("two/.spynco-lock"), O_RDWR | O_CREAT, 0666);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "cannot lock %s", path("two/.spynco-lock"));
    char holder[64];
    int len = snprintf(holder, sizeof holder, "process %ld on the test", (long)getpid());
    CHECK(fd >= 0 && ftruncate(fd, 0) == 0 && pwrite(fd, holder, len, 0) == len, "write the lock");
    int rc = run(2, path("two.yaml"), "-q");
    char expected[PATH_MAX + 200], *text = log_text();
    snprintf(expected, sizeof expected, "%s: another spynco run is writing into this folder (%s)",
             path("two"), holder);
    CHECK(rc == 2 && occurrences(text, expected) == 1, "locked folder: exit %d (expected 2), "
          "message \"%s\" once", rc, expected);
    if (rc != 2) dump_log();
    free(text);
    if (fd >= 0) close(fd);
}

/* An eval job: the images shared by 2 ranks give the figures of one process
 * (the JSON but for the time taken); a gray image fails alone (exit 1). */
static void test_eval(void) {
    cJSON *json[2] = {NULL, NULL};
    for (int ranks = 1; ranks <= 2; ranks++) {
        char text[3 * PATH_MAX];
        snprintf(text, sizeof text,
                 "eval:\n  model: %s\n  inputs: [%s/eval_set, %s/rotterdam_pan_u16.tif]\n"
                 "  json: eval%d/eval.json\n  samples: eval%d/samples\n  threads: 1\n",
                 model, SPYNCO_TEST_DATA, SPYNCO_TEST_DATA, ranks, ranks);
        const char *recipe = path("eval%d.yaml", ranks);
        test_write_text(recipe, text);
        int rc = run(ranks, recipe, "-q");
        char *log = log_text();
        CHECK(rc == 1 && occurrences(log, "3 images (1 more failed)") == 1 &&
                  occurrences(log, "rotterdam_pan_u16.tif: 1 band") == 1,
              "eval on %d process(es): exit %d (expected 1), the table and the failure once", ranks,
              rc);
        if (rc != 1) dump_log();
        free(log);
        char *body = test_read_file(path("eval%d/eval.json", ranks));
        json[ranks - 1] = body ? cJSON_Parse(body) : NULL;
        free(body);
        cJSON_DeleteItemFromObject(json[ranks - 1], "seconds");
        DIR *d = opendir(path("eval%d/samples", ranks));
        int pngs = 0;
        for (struct dirent *e; d && (e = readdir(d));) pngs += strstr(e->d_name, ".png") != NULL;
        if (d) closedir(d);
        CHECK(pngs == 3, "eval on %d process(es): %d triptychs, expected 3", ranks, pngs);
    }
    CHECK(json[0] && json[1] && cJSON_Compare(json[0], json[1], 1),
          "eval: the JSON of 2 processes differs from one process's");
    cJSON_Delete(json[0]), cJSON_Delete(json[1]);
}

/* ---- a setup step failing on one rank ------------------------------------------ */

/* Copies `bytes` bytes of from (all: -1) to to. */
static int copy_file(const char *from, const char *to, long bytes) {
    char *data = test_read_file(from);
    struct stat st;
    FILE *f = fopen(to, "wb");
    size_t n = data && stat(from, &st) == 0 ? (size_t)(bytes < 0 ? st.st_size : bytes) : 0;
    int ok = n && f && fwrite(data, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(data);
    CHECK(ok, "cannot copy %s to %s", from, to);
    return ok ? 0 : -1;
}

/* spynco run RECIPE on 2 ranks, rank N in the folder rankN: each reads the
 * recipe (a relative path) and what it names relative to it from there, as
 * ranks on machines with their own copies of the files would. */
static int run_per_rank(const char *recipe) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s -n 2 %s /bin/sh -c 'cd %s/rank$OMPI_COMM_WORLD_RANK && "
             "exec %s run -q %s'", MPIEXEC, MPIEXEC_FLAGS, dir, SPYNCO_BIN, recipe);
    /* a failure ends a run within seconds; a rank left behind hangs it */
    return finish(start(cmd), 60);
}

/* One rank cannot get through a setup step: every rank stops there with the
 * same status, the message (naming the rank) comes once, nothing is
 * written. Before, a rank that could not load the eval model returned
 * alone and the others waited for it forever. Rank 1's copy of the model
 * is cut short (an interrupted copy): it exists, so the recipe checks pass,
 * but it does not load and its checksum differs. */
static void test_setup_fails_on_one_rank(void) {
    char text[2 * PATH_MAX];
    for (int r = 0; r < 2; r++) {
        mkdir(path("rank%d", r), 0777);
        struct stat st;
        if (stat(model, &st) != 0 ||
            copy_file(model, path("rank%d/model.h5", r), r == 0 ? -1 : (long)st.st_size / 2))
            return;
        snprintf(text, sizeof text, "eval:\n  model: model.h5\n  inputs: %s/eval_set\n"
                 "  threads: 1\n", SPYNCO_TEST_DATA);
        test_write_text(path("rank%d/eval.yaml", r), text);
        snprintf(text, sizeof text, "colorize:\n  model: model.h5\n  inputs: %s\n  output: %s\n"
                 "  threads: 1\n", path("in"), path("setup_out"));
        test_write_text(path("rank%d/colorize.yaml", r), text);
    }
    test_write_text(path("rank0/rank0_only.yaml"), text);
    static const struct {
        const char *recipe, *message;
        int status, by_rank1; /* the failing rank's message names it; a comparison is everyone's */
    } cases[] = {
        {"eval.yaml", "rank1/model.h5: damaged or truncated HDF5 file", 1, 1},
        {"colorize.yaml", "model.h5: the processes read different model files", 1, 0},
        {"rank0_only.yaml", "rank0_only.yaml: cannot read the recipe", 2, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = run_per_rank(cases[i].recipe);
        char *log = log_text();
        CHECK(rc != HUNG, "%s failing on rank 1: the run hangs", cases[i].recipe);
        CHECK(rc == cases[i].status && occurrences(log, cases[i].message) == 1 &&
                  occurrences(log, "(on rank 1)") == cases[i].by_rank1,
              "%s failing on rank 1: exit %d (expected %d), the message (\"%s\") once",
              cases[i].recipe, rc, cases[i].status, cases[i].message);
        if (rc != cases[i].status) dump_log();
        free(log);
    }
    DIR *d = opendir(path("setup_out"));
    int outputs = 0;
    for (struct dirent *e; d && (e = readdir(d));) outputs += strstr(e->d_name, "_color") != NULL;
    if (d) closedir(d);
    CHECK(outputs == 0, "%d outputs written though a rank had another model", outputs);
}

/* ---- a train job ------------------------------------------------------------------ */

#define TRAIN_STEPS 2
#define LR 2e-4 /* the default learning rate */

typedef struct {
    char names[256][160];
    int count;
} Names;

static int add_name(const char *name, void *p) {
    Names *l = p;
    if (l->count < 256) snprintf(l->names[l->count++], sizeof l->names[0], "%s", name);
    return 0;
}

static float *read_all(H5Reader *r, const char *name, size_t *count) {
    int nd, shape[H5IO_MAX_DIMS];
    if (h5r_shape(r, name, &nd, shape)) return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    float *x = malloc(n * sizeof *x);
    if (x && h5r_read(r, name, H5IO_FLOAT32, nd, shape, x)) free(x), x = NULL;
    *count = n;
    return x;
}

/* The exported models of 1 and 2 processes: the same datasets, with values
 * equal to float rounding (the ranks sum the gradients in another order;
 * see test_mpi_train). The conv kernels, the bulk of the model, are checked
 * so. Some 1-D parameters have (nearly) no gradient: a conv bias with a
 * BatchNorm behind it, which removes any constant, or a residual block's
 * last BatchNorm shift, which the next one removes but at the borders. Their
 * computed gradient is rounding noise of either sign that Adam turns into
 * steps of up to lr, and the running means take those biases in: the 1-D
 * datasets (biases, BatchNorm parameters and statistics) are checked within
 * 2 lr a step. */
static void compare_models(const char *one, const char *two) {
    char err[512];
    H5Reader *a = h5r_open(one, err, sizeof err), *b = a ? h5r_open(two, err, sizeof err) : NULL;
    CHECK(a && b, "%s", err);
    Names *la = calloc(1, sizeof *la), *lb = calloc(1, sizeof *lb);
    if (a && b) h5r_visit_datasets(a, "/", add_name, la), h5r_visit_datasets(b, "/", add_name, lb);
    int same = la->count == lb->count && la->count > 20;
    for (int i = 0; same && i < la->count; i++) same = !strcmp(la->names[i], lb->names[i]);
    CHECK(same, "the models hold different datasets (%d and %d)", la->count, lb->count);
    double kernels = 0, vectors = 0;
    int num_kernels = 0;
    for (int i = 0; same && i < la->count; i++) {
        int nd, shape[H5IO_MAX_DIMS];
        size_t n = 0, k = 0;
        float *x = read_all(a, la->names[i], &n), *y = read_all(b, la->names[i], &k);
        int ok = x && y && n == k && h5r_shape(a, la->names[i], &nd, shape) == 0;
        CHECK(ok, "%s: cannot read it from both", la->names[i]);
        if (ok && nd > 1) {
            double rel = test_rel_error(x, y, n, 1e-6);
            kernels = fmax(kernels, rel);
            num_kernels++;
            CHECK(rel <= 1e-5, "%s differs by %.3g of its largest value", la->names[i], rel);
        } else if (ok) {
            double worst = 0;
            for (size_t j = 0; j < n; j++) worst = fmax(worst, fabs((double)x[j] - y[j]));
            vectors = fmax(vectors, worst);
            CHECK(worst <= 2 * LR * TRAIN_STEPS, "%s differs by %.3g (2 lr a step: %g)",
                  la->names[i], worst, 2 * LR * TRAIN_STEPS);
        }
        free(x), free(y);
    }
    CHECK(num_kernels >= 7, "only %d conv kernels compared", num_kernels);
    printf("  exported models of 1 and 2 processes: %d conv kernels equal to %.2g (relative), "
           "biases and BatchNorm to %.2g (2 lr a step: %g)\n", num_kernels, kernels, vectors,
           2 * LR * TRAIN_STEPS);
    free(la), free(lb);
    if (a) h5r_close(a);
    if (b) h5r_close(b);
}

/* A train job on 2 ranks: it runs, rank 0 alone reports, writes and
 * exports (the same files as one process's), and the model equals one
 * process's (a short run: rounding differences stay at rounding level). */
static void test_train_job(void) {
    char text[4 * PATH_MAX];
    for (int ranks = 1; ranks <= 2; ranks++) {
        snprintf(text, sizeof text,
                 "train:\n  gray: %s\n  color: [%s/naip_rgbn_266x204.tif, "
                 "%s/landsat_rgba_240x200.tif]\n  gray_from_color: true\n  crop: 96\n"
                 "  batch: 2\n  steps: %d\n  F: 4\n  K: 8\n  R: 1\n  nd: 4\n  seed: 7\n"
                 "  threads: 1\n  out: train%d\n  export: train%d/model.h5\n",
                 COGEO, SPYNCO_TEST_DATA, SPYNCO_TEST_DATA, TRAIN_STEPS, ranks, ranks);
        test_write_text(path("train%d.yaml", ranks), text);
        int rc = run(ranks, path("train%d.yaml", ranks), "");
        CHECK(rc == 0, "train job on %d process(es): exit %d", ranks, rc);
        if (rc) dump_log();
    }
    char *log = log_text();
    CHECK(occurrences(log, "train: starting") == 1 && occurrences(log, "train: exported") == 1 &&
              occurrences(log, "(1 on each of 2 processes)") == 1 &&
              occurrences(log, "step 2/2") == 1,
          "2 processes: the start, the steps and the export reported once (by rank 0)");
    free(log);
    /* the same files, none left over from a second writer (temporaries) */
    DIR *d = opendir(path("train2"));
    int files = 0, missing = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, ".."))) continue;
        files++;
        missing += access(path("train1/%s", e->d_name), F_OK) != 0;
    }
    if (d) closedir(d);
    CHECK(files >= 3 && missing == 0, "2 processes wrote %d files, %d not among one process's",
          files, missing);
    char *one = test_read_file(path("train1/losses.csv")), *two = test_read_file(path("train2/losses.csv"));
    CHECK(one && two && occurrences(one, "\n") == TRAIN_STEPS + 1 &&
              occurrences(two, "\n") == TRAIN_STEPS + 1,
          "losses.csv: a header and one row a step (one writer)");
    free(one), free(two);
    compare_models(path("train1/model.h5"), path("train2/model.h5"));
}

/* ---- interrupted ------------------------------------------------------------------- */

/* Open MPI's mpirun answers SIGINT with SIGCONT to the ranks, SIGTERM a
 * second later and SIGKILL a second after that: the job must last well over
 * a second after the signal (small tiles make each input slower) */
#define SIG_INPUTS 80
#define EXIT_INTERRUPTED 130

/* mpirun -n 2 spynco run gets `sig` once the ranks finished a few inputs:
 * the run stops with an exit status of `expected` (-1: 1 or 130), leaves no
 * partial output under an output's name (temporaries, if a rank was
 * killed, are removed by the rerun) and the lock released; a rerun keeps
 * what was finished and does the rest. */
static void test_interrupted(int sig, int expected) {
    const char *name = sig == SIGUSR1 ? "USR1" : "INT";
    char text[2 * PATH_MAX];
    mkdir(path("sig_in"), 0777);
    for (int i = 0; i < SIG_INPUTS; i++)
        if (access(path("sig_in/a%02d.tif", i), F_OK) != 0 &&
            copy_file(COGEO, path("sig_in/a%02d.tif", i), -1))
            return;
    snprintf(text, sizeof text, "colorize:\n  model: %s\n  inputs: sig_in\n  output: sig_%s\n"
             "  tile: 32\n  threads: 1\n", model, name);
    char recipe[PATH_MAX], out[PATH_MAX]; /* path()'s buffers are reused */
    snprintf(recipe, sizeof recipe, "%s", path("sig_%s.yaml", name));
    snprintf(out, sizeof out, "%s", path("sig_%s", name));
    test_write_text(recipe, text);
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "exec %s -n 2 %s %s run -q %s", MPIEXEC, MPIEXEC_FLAGS, SPYNCO_BIN,
             recipe);
    pid_t pid = start(cmd);
    int done = 0, failed, valid, writers;
    for (int ms = 0; ms < 60000 && done < 2; ms += 10) {
        nanosleep(&(struct timespec){0, 10000000}, NULL);
        journal_summary(out, &done, &failed, &valid, &writers);
    }
    kill(pid, sig);
    int rc = finish(pid, 60);
    char *log = log_text();
    journal_summary(out, &done, &failed, &valid, &writers);
    int outputs = test_count_entries(out, "_color.tif");
    int status_ok = expected < 0 ? rc == 1 || rc == EXIT_INTERRUPTED : rc == expected;
    CHECK(status_ok && done >= 2 && done < SIG_INPUTS,
          "SIG%s to mpirun: exit %d (expected %d) after %d of %d inputs", name, rc, expected, done,
          SIG_INPUTS);
    if (!status_ok) dump_log();
    free(log);
    /* only complete outputs under their names: each has a done entry */
    CHECK(valid && outputs == done && (sig != SIGUSR1 || test_count_entries(out, ".tmp-") == 0),
          "SIG%s: %d outputs, %d done in the journal (valid %d), %d temporaries", name, outputs,
          done, valid, test_count_entries(out, ".tmp-"));
    int fd = open(path("sig_%s/.spynco-lock", name), O_RDWR);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "SIG%s: the lock is still held", name);
    if (fd >= 0) close(fd);

    double mtimes[SIG_INPUTS];
    ino_t inodes[SIG_INPUTS];
    for (int i = 0; i < SIG_INPUTS; i++)
        mtimes[i] = test_mtime(path("sig_%s/a%02d_color.tif", name, i), &inodes[i]);
    int stopped = rc;
    rc = run(2, recipe, "-q");
    char summary[128];
    snprintf(summary, sizeof summary, "%d inputs: %d done, %d kept, 0 skipped, 0 failed",
             SIG_INPUTS, SIG_INPUTS - done, done);
    log = log_text();
    CHECK(rc == 0 && strstr(log, summary), "SIG%s, rerun: exit %d, \"%s\"", name, rc, summary);
    if (rc) dump_log();
    free(log);
    int kept = 0;
    for (int i = 0; i < SIG_INPUTS; i++) {
        ino_t inode = 0;
        double m = test_mtime(path("sig_%s/a%02d_color.tif", name, i), &inode);
        kept += mtimes[i] >= 0 && m == mtimes[i] && inode == inodes[i];
    }
    CHECK(kept == done && test_count_entries(out, "_color.tif") == SIG_INPUTS &&
              test_count_entries(out, ".tmp-") == 0,
          "SIG%s, rerun: %d of the %d finished outputs untouched, %d outputs, %d temporaries",
          name, kept, done, test_count_entries(out, "_color.tif"), test_count_entries(out, ".tmp-"));
    printf("  SIG%s to mpirun after %d of %d inputs: exit %d; the rerun kept them and did the "
           "rest\n", name, done, SIG_INPUTS, stopped);
}

/* test_mpi_run [setup|train|signal]: the runs above, or one other part
 * (each its own ctest entry, with its own time limit). */
int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "";
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(asan_options, sizeof asan_options, "ASAN_OPTIONS=%s%sfast_unwind_on_malloc=0",
             asan ? asan : "", asan && *asan ? ":" : "");
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    snprintf(dir, sizeof dir, "%s", test_tmpdir("mpi-run"));
    snprintf(model, sizeof model, "%s/vivid.h5", dir);
    snprintf(log_path, sizeof log_path, "%s/run.log", dir);
    ModelConfig cfg = test_small_config("test-vivid");
    if (test_save_model(model, &cfg, 1, 0, 42) == 0 && make_inputs() == 0) {
        if (!strcmp(part, "setup")) {
            test_setup_fails_on_one_rank();
        } else if (!strcmp(part, "train")) {
            test_train_job();
        } else if (!strcmp(part, "signal")) {
            /* SIGUSR1 is passed on to the ranks, which stop cleanly (130);
             * on SIGINT mpirun ends the ranks itself (SIGTERM, after a grace
             * period SIGKILL) and gives its own status (Open MPI: 1) */
            test_interrupted(SIGUSR1, EXIT_INTERRUPTED);
            test_interrupted(SIGINT, -1);
        } else {
            test_one_and_two();
            test_rerun();
            test_locked();
            test_eval();
        }
    }
    CPLPopErrorHandler();
    if (!test_failed) test_remove_tree(dir);
    else fprintf(stderr, "kept %s for inspection\n", dir);
    char name[64];
    snprintf(name, sizeof name, "test_mpi_run%s%s", *part ? " " : "", part);
    return test_summary(name);
}
