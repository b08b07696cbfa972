/* Checkpoints on real files: C round trip, the spec's layout (HDF5 API and
 * h5dump), interoperability with h5py in both directions, refusal of bad files
 * through the C API and through the `spynco info` process, and atomic writes.
 * Everything happens in a fresh folder under /tmp, removed at the end. */
#include <dirent.h>
#include <gdal.h>
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define OUTPUT_MAX 8192

static char tmpdir[] = "/tmp/spynco-test-checkpoint-XXXXXX";
static char err[512];

/* ---- fixtures ------------------------------------------------------------- */

static char *tmp_file(char *buf, const char *name) {
    snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
    return buf;
}

static void remove_tmpdir(void) {
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    char path[PATH_MAX];
    while (dir && (e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            tmp_file(path, e->d_name);
            if (unlink(path) != 0) rmdir(path);
        }
    if (dir) closedir(dir);
    rmdir(tmpdir);
}

/* Files in the temporary folder whose name contains `part`. */
static int count_files(const char *part) {
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    while (dir && (e = readdir(dir))) n += strstr(e->d_name, part) != NULL;
    if (dir) closedir(dir);
    return n;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, size, f) == size, "write %s", path);
    if (f) fclose(f);
}

static void copy_prefix(const char *from, const char *to, double fraction) {
    FILE *f = fopen(from, "rb");
    CHECK(f != NULL, "open %s", from);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)(ftell(f) * fraction);
    rewind(f);
    char *buf = malloc(size);
    CHECK(buf && fread(buf, 1, size, f) == size, "read %s", from);
    fclose(f);
    if (buf) write_bytes(to, buf, size);
    free(buf);
}

static void write_geotiff(const char *path) {
    GDALAllRegister();
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, 16, 16, 1, GDT_Byte, NULL);
    CHECK(ds != NULL, "create GeoTIFF %s", path);
    if (!ds) return;
    double transform[6] = {650000.0, 0.5, 0.0, 6860000.0, 0.0, -0.5};
    unsigned char pixels[16 * 16];
    for (int i = 0; i < 16 * 16; i++) pixels[i] = (unsigned char)i;
    GDALSetGeoTransform(ds, transform);
    CHECK(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 16, 16, pixels, 16, 16, GDT_Byte,
                       0, 0) == CE_None,
          "write GeoTIFF pixels");
    GDALClose(ds);
    GDALDestroyDriverManager();
}

/* Runs argv[0] (a full path) with stdout and stderr into out; test_run's status. */
static int run(char *const argv[], char *out, size_t size) {
    char log[PATH_MAX];
    tmp_file(log, "run.log");
    int status = test_run(argv, NULL, log);
    char *text = test_read_file(log);
    snprintf(out, size, "%s", text ? text : "");
    free(text);
    unlink(log);
    return status;
}

static const char *describe(int status, char *buf, size_t size) {
    if (status < 0)
        snprintf(buf, size, "could not start");
    else if (status > 128)
        snprintf(buf, size, "killed by signal %d", status - 128);
    else
        snprintf(buf, size, "exit status %d", status);
    return buf;
}

static int run_info(const char *arg1, const char *arg2, char *out, size_t size) {
    char *argv[] = {SPYNCO_BIN, "info", (char *)arg1, (char *)arg2, NULL};
    return run(argv, out, size);
}

/* Both sides of the h5py test fill tensors with this exact float32 pattern
 * (h5py_check.py computes the same). */
static float pattern_value(const char *path, size_t i) {
    unsigned sum = 0;
    for (const char *c = path; *c; c++) sum += (unsigned char)*c;
    return (float)((long)((i * 31 + sum) % 1009) - 504) / 256.0f;
}

static void fill_pattern(Network *net, const char *group) {
    char path[128];
    for (int k = 0; k < net->num_tensors; k++) {
        TensorInfo *t = &net->tensors[k];
        snprintf(path, sizeof path, "/%s/%s", group, t->path);
        for (size_t i = 0; i < t->count; i++) t->data[i] = pattern_value(path, i);
    }
}

static int pattern_mismatches(const Network *net, const char *group) {
    char path[128];
    int bad = 0;
    for (int k = 0; k < net->num_tensors; k++) {
        const TensorInfo *t = &net->tensors[k];
        snprintf(path, sizeof path, "/%s/%s", group, t->path);
        for (size_t i = 0; i < t->count; i++) bad += t->data[i] != pattern_value(path, i);
    }
    return bad;
}

/* Default-config G and D with seeded weights and non-trivial BN statistics. */
static void make_model(Network *g, Network *d, const ModelConfig *cfg, unsigned long long seed) {
    CHECK(network_init_generator(g, cfg, err, sizeof err) == 0, "init G: %s", err);
    CHECK(network_init_discriminator(d, cfg, err, sizeof err) == 0, "init D: %s", err);
    network_init_weights(g, seed);
    network_init_weights(d, seed + 1);
    TestRng rng = {seed};
    Network *nets[] = {g, d};
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < nets[n]->num_tensors; k++)
            if (!nets[n]->tensors[k].grad) /* BN running statistics */
                test_fill_uniform(&rng, nets[n]->tensors[k].data, nets[n]->tensors[k].count, 0.1f,
                                  2.0f);
}

static int same_config(const ModelConfig *a, const ModelConfig *b) {
    return !strcmp(a->name, b->name) && a->F == b->F && a->K == b->K && a->R == b->R &&
           a->nd == b->nd && !memcmp(a->ht, b->ht, sizeof a->ht) &&
           a->num_scales == b->num_scales &&
           !memcmp(a->scales, b->scales, (size_t)a->num_scales * sizeof a->scales[0]);
}

/* Tensors that differ in path, shape or any bit of their values. */
static int tensor_differences(const Network *a, const Network *b) {
    if (a->num_tensors != b->num_tensors) return -1;
    int bad = 0;
    for (int k = 0; k < a->num_tensors; k++) {
        const TensorInfo *x = &a->tensors[k], *y = &b->tensors[k];
        bad += strcmp(x->path, y->path) || x->ndim != y->ndim ||
               memcmp(x->shape, y->shape, sizeof x->shape) || x->count != y->count ||
               memcmp(x->data, y->data, x->count * sizeof(float));
    }
    return bad;
}

/* ---- 1. C round trip ------------------------------------------------------ */

static void test_round_trip(void) {
    ModelConfig cfg = model_config_default();
    Network g, d, g2, d2;
    make_model(&g, &d, &cfg, 11);
    char path[PATH_MAX], release[PATH_MAX];
    CheckpointMeta meta = {3, 4567}, meta2 = {0, 0};
    CHECK(checkpoint_save_model(tmp_file(path, "model.h5"), &g, &d, &meta, err, sizeof err) == 0,
          "save: %s", err);
    CHECK(count_files(".tmp-") == 0, "no temporary file left after saving");

    CHECK(checkpoint_load_model(path, &g2, &d2, &meta2, err, sizeof err) == 0, "load: %s", err);
    CHECK(same_config(&g2.cfg, &cfg) && same_config(&d2.cfg, &cfg), "config survives");
    CHECK(meta2.epoch == 3 && meta2.step == 4567, "meta %ld/%ld", meta2.epoch, meta2.step);
    CHECK(tensor_differences(&g, &g2) == 0, "G tensors bit-identical");
    CHECK(tensor_differences(&d, &d2) == 0, "D tensors bit-identical");
    network_free(&g2);
    network_free(&d2);

    ModelConfig header;
    CheckpointMeta meta3;
    CHECK(checkpoint_read_config(path, &header, &meta3, err, sizeof err) == 0, "read config: %s",
          err);
    CHECK(same_config(&header, &cfg) && meta3.epoch == 3 && meta3.step == 4567,
          "checkpoint_read_config");

    /* A release model: G only, loadable without D. */
    CHECK(checkpoint_save_model(tmp_file(release, "release.h5"), &g, NULL, NULL, err, sizeof err) ==
              0,
          "save release: %s", err);
    CHECK(checkpoint_load_model(release, &g2, NULL, NULL, err, sizeof err) == 0, "load release: %s",
          err);
    CHECK(tensor_differences(&g, &g2) == 0, "release G bit-identical");
    network_free(&g2);
    H5Reader *r = h5r_open(release, err, sizeof err);
    CHECK(r && !h5r_exists(r, "/D") && h5r_exists(r, "/G/head/conv/bias"), "release has no /D");
    h5r_close(r);
    network_free(&g);
    network_free(&d);
}

/* Integer datasets (RNG state, counters, the history pool) through h5io. */
static void test_h5io_types(void) {
    char path[PATH_MAX];
    H5Writer *w = h5w_open(tmp_file(path, "types.h5"), err, sizeof err);
    CHECK(w != NULL, "open writer: %s", err);
    if (!w) return;
    uint64_t state[4] = {1, UINT64_MAX, 0x8000000000000000ull, 42}, state2[4];
    int64_t counter = -5, counter2 = 0;
    uint8_t pool[2][3] = {{0, 127, 255}, {1, 2, 3}}, pool2[2][3];
    int four = 4, pool_shape[2] = {2, 3};
    h5w_dataset(w, "/rng/state", H5IO_UINT64, 1, &four, state);
    h5w_dataset(w, "/counter", H5IO_INT64, 0, NULL, &counter);
    h5w_dataset(w, "/pool/images", H5IO_UINT8, 2, pool_shape, pool);
    h5w_attr_string(w, "/pool", "note", "ünïcode text");
    h5w_attr_int(w, "/pool", "count", -7);
    CHECK(h5w_commit(w) == 0, "commit: %s", err);

    H5Reader *r = h5r_open(path, err, sizeof err);
    CHECK(r != NULL, "open reader: %s", err);
    if (!r) return;
    CHECK(h5r_read(r, "/rng/state", H5IO_UINT64, 1, &four, state2) == 0 &&
              !memcmp(state, state2, sizeof state),
          "uint64 round trip: %s", err);
    CHECK(h5r_read(r, "/counter", H5IO_INT64, 0, NULL, &counter2) == 0 && counter2 == -5,
          "int64 scalar round trip: %s", err);
    CHECK(h5r_read(r, "/pool/images", H5IO_UINT8, 2, pool_shape, pool2) == 0 &&
              !memcmp(pool, pool2, sizeof pool),
          "uint8 round trip: %s", err);
    char *note = NULL;
    long long count = 0;
    CHECK(h5r_attr_string(r, "/pool", "note", &note) == 0 && !strcmp(note, "ünïcode text"),
          "string attribute: %s", err);
    free(note);
    CHECK(h5r_attr_int(r, "/pool", "count", &count) == 0 && count == -7, "int attribute");
    float floats[6];
    CHECK(h5r_read(r, "/pool/images", H5IO_FLOAT32, 2, pool_shape, floats) == -1 &&
              strstr(err, "holds integers"),
          "integers refused as floats: %s", err);
    int wrong[2] = {3, 2};
    CHECK(h5r_read(r, "/pool/images", H5IO_UINT8, 2, wrong, pool2) == -1 &&
              strstr(err, "has shape [2,3], expected [3,2]") && strstr(err, path),
          "shape mismatch names both shapes and the file: %s", err);
    CHECK(h5r_attr_int(r, "/pool", "note", &count) == -1 && strstr(err, "expected an integer"),
          "string refused as integer: %s", err);
    CHECK(h5r_attr_string(r, "/", "nothing", &note) == -1 && strstr(err, "missing attribute"),
          "missing attribute: %s", err);
    CHECK(!h5r_exists(r, "/rng/state/deeper") && !h5r_exists(r, "/none/x"), "h5r_exists");
    h5r_close(r);
}

/* ---- 2. layout ------------------------------------------------------------ */

static void check_dataset(hid_t file, const char *path, int ndim, const hsize_t *dims) {
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    CHECK(ds >= 0, "dataset %s exists", path);
    if (ds < 0) return;
    hid_t space = H5Dget_space(ds), type = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t got[H5S_MAX_RANK];
    int n = H5Sget_simple_extent_dims(space, got, NULL);
    CHECK(n == ndim && !memcmp(got, dims, (size_t)ndim * sizeof(hsize_t)), "%s shape", path);
    CHECK(H5Tequal(type, H5T_IEEE_F32LE) > 0, "%s is float32", path);
    CHECK(H5Pget_layout(dcpl) == H5D_CONTIGUOUS, "%s is contiguous", path);
    H5Pclose(dcpl);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(ds);
}

static int count_dataset(const char *path, void *ctx) {
    (void)path;
    ++*(int *)ctx;
    return 0;
}

static void test_layout(void) {
    char path[PATH_MAX], out[OUTPUT_MAX], how[64];
    tmp_file(path, "model.h5");
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0, "HDF5 opens %s", path);
    if (file < 0) return;
    check_dataset(file, "/G/enc0/conv/weight", 4, (hsize_t[]){32, 1, 7, 7});
    check_dataset(file, "/G/enc0/conv/bias", 1, (hsize_t[]){32});
    check_dataset(file, "/G/res5/bn2/running_var", 1, (hsize_t[]){128});
    check_dataset(file, "/G/res0/conv1/weight", 4, (hsize_t[]){128, 128, 3, 3});
    check_dataset(file, "/G/dec2/conv/weight", 4, (hsize_t[]){64, 128, 1, 1});
    check_dataset(file, "/G/head/conv/weight", 4, (hsize_t[]){3, 64, 1, 1});
    check_dataset(file, "/D/l4/conv/weight", 4, (hsize_t[]){1, 256, 4, 4});
    check_dataset(file, "/D/l1/bn/weight", 1, (hsize_t[]){64});
    CHECK(H5Lexists(file, "/G/head", H5P_DEFAULT) > 0 &&
              H5Lexists(file, "/G/head/bn", H5P_DEFAULT) == 0,
          "G's head has no BN");
    CHECK(H5Lexists(file, "/D/l0", H5P_DEFAULT) > 0 &&
              H5Lexists(file, "/D/l0/bn", H5P_DEFAULT) == 0,
          "D's l0 has no BN");
    H5Fclose(file);

    /* Exactly the networks' tensors, nothing more (h5py_check.py compares with the spec). */
    ModelConfig cfg = model_config_default();
    Network g, d;
    CHECK(network_init_generator(&g, &cfg, err, sizeof err) == 0 &&
              network_init_discriminator(&d, &cfg, err, sizeof err) == 0,
          "init: %s", err);
    int in_g = 0, in_d = 0;
    H5Reader *r = h5r_open(path, err, sizeof err);
    CHECK(r && h5r_visit_datasets(r, "/G", count_dataset, &in_g) == 0 &&
              h5r_visit_datasets(r, "/D", count_dataset, &in_d) == 0,
          "list datasets: %s", err);
    CHECK(in_g == g.num_tensors && in_d == d.num_tensors, "%d+%d datasets, expected %d+%d", in_g,
          in_d, g.num_tensors, d.num_tensors);
    h5r_close(r);
    network_free(&g);
    network_free(&d);

    char *which[] = {"/bin/sh", "-c", "command -v h5dump", NULL};
    if (run(which, out, sizeof out) != 0) {
        printf("  h5dump not found: skipping the h5dump check\n");
        return;
    }
    char *dump[] = {"/bin/sh", "-c", "h5dump -H \"$0\"", path, NULL};
    int status = run(dump, out, sizeof out);
    CHECK(status == 0, "h5dump -H: %s\n%s", describe(status, how, sizeof how), out);
    CHECK(strstr(out, "GROUP \"enc0\"") && strstr(out, "DATASET \"running_var\"") &&
              strstr(out, "H5T_IEEE_F32LE") && strstr(out, "( 32, 1, 7, 7 )"),
          "h5dump shows the layout:\n%.2000s", out);
}

/* ---- 3. h5py interoperability --------------------------------------------- */

static void test_h5py(void) {
    char out[OUTPUT_MAX], how[64];
    char *probe[] = {PYTHON, "-c", "import h5py", NULL};
    if (run(probe, out, sizeof out) != 0) {
        const char *skip = getenv("SPYNCO_SKIP_H5PY");
        if (skip && !strcmp(skip, "1"))
            printf("  h5py not importable and SPYNCO_SKIP_H5PY=1: skipping the h5py checks\n");
        else
            CHECK(0, "%s cannot import h5py (install python3-h5py, or set SPYNCO_SKIP_H5PY=1): %s",
                  PYTHON, out);
        return;
    }
    /* C writes, h5py checks paths, shapes, dtype, attributes and values. */
    ModelConfig cfg = model_config_default();
    Network g, d;
    make_model(&g, &d, &cfg, 5);
    fill_pattern(&g, "G");
    fill_pattern(&d, "D");
    char c_file[PATH_MAX], py_file[PATH_MAX];
    CheckpointMeta meta = {7, 1234};
    CHECK(checkpoint_save_model(tmp_file(c_file, "pattern.h5"), &g, &d, &meta, err, sizeof err) ==
              0,
          "save: %s", err);
    network_free(&g);
    network_free(&d);
    char *check[] = {PYTHON, H5PY_CHECK, "check", c_file, "7", "1234", NULL};
    int status = run(check, out, sizeof out);
    CHECK(status == 0, "h5py check of the C-written file (%s):\n%s",
          describe(status, how, sizeof how), out);

    /* h5py writes, C loads and compares. */
    char *write[] = {PYTHON, H5PY_CHECK, "write", tmp_file(py_file, "h5py.h5"), NULL};
    status = run(write, out, sizeof out);
    CHECK(status == 0, "h5py write (%s):\n%s", describe(status, how, sizeof how), out);
    CheckpointMeta meta2 = {0, 0};
    if (checkpoint_load_model(py_file, &g, &d, &meta2, err, sizeof err) != 0) {
        CHECK(0, "load the h5py-written file: %s", err);
        return;
    }
    CHECK(!strcmp(g.cfg.name, "h5py-small") && g.cfg.F == 8 && g.cfg.K == 16 && g.cfg.R == 2 &&
              g.cfg.nd == 8 && g.cfg.ht[1] == 0.587f && g.cfg.num_scales == 3,
          "config from h5py (%s F=%d K=%d R=%d nd=%d)", g.cfg.name, g.cfg.F, g.cfg.K, g.cfg.R,
          g.cfg.nd);
    CHECK(meta2.epoch == 7 && meta2.step == 1234, "meta from h5py %ld/%ld", meta2.epoch,
          meta2.step);
    CHECK(pattern_mismatches(&g, "G") == 0, "G values from h5py");
    CHECK(pattern_mismatches(&d, "D") == 0, "D values from h5py");
    network_free(&g);
    network_free(&d);
}

/* The golden fixture is also a checkpoint written by h5py (with compressed datasets). */
static void test_golden_file(void) {
    const char *path = SPYNCO_TEST_DATA "/golden_small.h5";
    if (!file_exists(path)) {
        printf("  %s not present: skipping\n", path);
        return;
    }
    Network g, d;
    if (checkpoint_load_model(path, &g, &d, NULL, err, sizeof err) != 0) {
        CHECK(0, "load the golden file: %s", err);
        return;
    }
    CHECK(!strcmp(g.cfg.name, "golden-small") && g.cfg.F == 8 && d.cfg.nd == 8, "golden config");
    const TensorInfo *var = network_find_tensor(&g, "res1/bn2/running_var");
    int in_range = var != NULL;
    for (size_t i = 0; var && i < var->count; i++)
        in_range &= var->data[i] >= 0.5f && var->data[i] <= 1.5f;
    CHECK(in_range, "golden running_var values as make_golden.py wrote them (0.5..1.5)");
    network_free(&g);
    network_free(&d);
}

/* ---- 4. bad checkpoints --------------------------------------------------- */

typedef enum {
    VALID,
    NO_FORMAT,
    WRONG_FORMAT,
    VERSION_2,
    CONFIG_NOT_JSON,
    CONFIG_INVALID,
    WRONG_SHAPE,
    MISSING_TENSOR,
    EXTRA_TENSOR,
    INTEGER_TENSOR,
    NO_DISCRIMINATOR,
} Variant;

/* A checkpoint of g and d, written field by field with one thing wrong. */
static void write_variant(const char *path, const Network *g, const Network *d, Variant v) {
    H5Writer *w = h5w_open(path, err, sizeof err);
    CHECK(w != NULL, "open %s: %s", path, err);
    if (!w) return;
    char *json = model_config_to_json(&g->cfg);
    if (v != NO_FORMAT)
        h5w_attr_string(w, "/", "format", v == WRONG_FORMAT ? "other-format" : CHECKPOINT_FORMAT);
    h5w_attr_int(w, "/", "format_version", v == VERSION_2 ? 2 : CHECKPOINT_VERSION);
    h5w_attr_string(w, "/", "config",
                    v == CONFIG_NOT_JSON  ? "{\"F\": 32, \"K\":"
                    : v == CONFIG_INVALID ? "{\"name\": \"x\", \"F\": 0, \"K\": 64, \"R\": 6, "
                                            "\"nd\": 32, \"ht_weights\": [0.299, 0.587, 0.114], "
                                            "\"scales\": [1, 2, 3]}"
                                          : json);
    h5w_attr_int(w, "/", "epoch", 1);
    h5w_attr_int(w, "/", "step", 2);
    free(json);
    static const int64_t zeros[1024];
    char name[128];
    for (int k = 0; k < g->num_tensors; k++) {
        const TensorInfo *t = &g->tensors[k];
        snprintf(name, sizeof name, "/G/%s", t->path);
        if (v == MISSING_TENSOR && !strcmp(t->path, "res5/bn2/running_var")) continue;
        if (v == WRONG_SHAPE && !strcmp(t->path, "enc0/conv/weight"))
            h5w_dataset(w, name, H5IO_FLOAT32, 4, (int[]){16, 1, 7, 7}, t->data);
        else if (v == INTEGER_TENSOR && !strcmp(t->path, "enc0/conv/bias"))
            h5w_dataset(w, name, H5IO_INT64, t->ndim, t->shape, zeros);
        else
            h5w_dataset(w, name, H5IO_FLOAT32, t->ndim, t->shape, t->data);
        if (v == EXTRA_TENSOR && !strcmp(t->path, "res5/conv1/weight"))
            h5w_dataset(w, "/G/res6/conv1/weight", H5IO_FLOAT32, t->ndim, t->shape, t->data);
    }
    for (int k = 0; v != NO_DISCRIMINATOR && k < d->num_tensors; k++) {
        snprintf(name, sizeof name, "/D/%s", d->tensors[k].path);
        h5w_dataset(w, name, H5IO_FLOAT32, d->tensors[k].ndim, d->tensors[k].shape,
                    d->tensors[k].data);
    }
    CHECK(h5w_commit(w) == 0, "commit %s: %s", path, err);
}

typedef struct {
    const char *file;
    const char *keywords[2]; /* both must appear in the message */
    int info_fails;          /* `spynco info` refuses it too (it does not need D) */
} BadCase;

static void expect_refused(const BadCase *c) {
    char path[PATH_MAX], out[OUTPUT_MAX], how[64];
    tmp_file(path, c->file);
    Network g, d;
    err[0] = '\0';
    int rc = checkpoint_load_model(path, &g, &d, NULL, err, sizeof err);
    CHECK(rc == -1, "%s: load should fail", c->file);
    if (rc == 0) {
        network_free(&g);
        network_free(&d);
    }
    CHECK(strstr(err, path) != NULL, "%s: message names the file: %s", c->file, err);
    for (int i = 0; i < 2 && c->keywords[i]; i++)
        CHECK(strstr(err, c->keywords[i]) != NULL, "%s: message lacks '%s': %s", c->file,
              c->keywords[i], err);
    printf("  %-16s %s\n", c->file, err);

    int status = run_info(path, NULL, out, sizeof out);
    if (!c->info_fails) {
        CHECK(status == 0, "spynco info %s: %s\n%s", c->file, describe(status, how, sizeof how), out);
        return;
    }
    CHECK(status == 1, "spynco info %s: %s, expected exit status 1\n%s", c->file,
          describe(status, how, sizeof how), out);
    for (int i = 0; i < 2 && c->keywords[i]; i++)
        CHECK(strstr(out, c->keywords[i]) != NULL, "spynco info %s: output lacks '%s': %s", c->file,
              c->keywords[i], out);
}

static void test_bad_files(void) {
    ModelConfig cfg = model_config_default();
    Network g, d;
    make_model(&g, &d, &cfg, 3);
    char path[PATH_MAX];
    static const struct {
        Variant v;
        const char *file;
    } variants[] = {
        {VALID, "valid.h5"},
        {NO_FORMAT, "no-format.h5"},
        {WRONG_FORMAT, "wrong-format.h5"},
        {VERSION_2, "version-2.h5"},
        {CONFIG_NOT_JSON, "config-json.h5"},
        {CONFIG_INVALID, "config-f0.h5"},
        {WRONG_SHAPE, "wrong-shape.h5"},
        {MISSING_TENSOR, "missing.h5"},
        {EXTRA_TENSOR, "extra.h5"},
        {INTEGER_TENSOR, "integer.h5"},
        {NO_DISCRIMINATOR, "release.h5"},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        write_variant(tmp_file(path, variants[i].file), &g, &d, variants[i].v);
    network_free(&g);
    network_free(&d);

    char valid[PATH_MAX];
    tmp_file(valid, "valid.h5");
    write_bytes(tmp_file(path, "empty.h5"), "", 0);
    copy_prefix(valid, tmp_file(path, "truncated.h5"), 0.5);
    const char text[] = "epoch,step\n1,2\n";
    write_bytes(tmp_file(path, "text.h5"), text, sizeof text - 1);
    write_geotiff(tmp_file(path, "image.tif"));
    mkdir(tmp_file(path, "folder.h5"), 0755);

    static const BadCase cases[] = {
        {"absent.h5", {"no such file"}, 1},
        {"empty.h5", {"empty file"}, 1},
        {"truncated.h5", {"truncated"}, 1},
        {"text.h5", {"not an HDF5 file"}, 1},
        {"image.tif", {"not an HDF5 file", "TIFF"}, 1},
        {"folder.h5", {"is a folder"}, 1},
        {"no-format.h5", {"not a Spynco checkpoint", "format attribute is missing"}, 1},
        {"wrong-format.h5", {"not a Spynco checkpoint", "'other-format'"}, 1},
        {"version-2.h5", {"version 2 is not supported", "reads version 1"}, 1},
        {"config-json.h5", {"invalid 'config' attribute", "not a JSON object"}, 1},
        {"config-f0.h5", {"invalid 'config' attribute", "F=0"}, 1},
        {"wrong-shape.h5", {"/G/enc0/conv/weight has shape [16,1,7,7]", "expects [32,1,7,7]"}, 1},
        {"missing.h5", {"missing dataset /G/res5/bn2/running_var", "[128]"}, 1},
        {"extra.h5", {"unexpected dataset /G/res6/conv1/weight", "R=6"}, 1},
        {"integer.h5", {"/G/enc0/conv/bias", "holds integers"}, 1},
        {"release.h5", {"release model", "no /D"}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_refused(&cases[i]);

    /* The valid one, for contrast: loads, and `spynco info` describes it. */
    char out[OUTPUT_MAX], how[64], expected[128];
    CHECK(checkpoint_load_model(valid, &g, &d, NULL, err, sizeof err) == 0, "valid.h5: %s", err);
    int status = run_info(valid, NULL, out, sizeof out);
    CHECK(status == 0, "spynco info valid.h5: %s\n%s", describe(status, how, sizeof how), out);
    ReceptiveField rf = generator_receptive_field(&g);
    snprintf(expected, sizeof expected, "receptive field: %d px (radius %d px), total stride %d",
             rf.size, rf.radius, rf.stride);
    const char *want[] = {"G parameters: 1,951,171",
                          "D parameters: 695,137",
                          "F=32, K=64, R=6, nd=32",
                          "spynco-s",
                          "epoch 1, step 2",
                          "holds: G, D",
                          expected};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr(out, want[i]) != NULL, "spynco info lacks '%s':\n%s", want[i], out);
    if (g.num_params != 1951171) printf("  note: G has %zu parameters\n", g.num_params);
    network_free(&g);
    network_free(&d);
    status = run_info(tmp_file(path, "release.h5"), NULL, out, sizeof out);
    CHECK(status == 0 && strstr(out, "release model") && !strstr(out, "D parameters"),
          "spynco info on a release model:\n%s", out);

    /* Usage. */
    CHECK(run_info(NULL, NULL, out, sizeof out) == 2 && strstr(out, "usage"),
          "no file: exit 2 with usage\n%s", out);
    CHECK(run_info("--help", NULL, out, sizeof out) == 0 && strstr(out, "usage"),
          "--help: exit 0 with usage\n%s", out);
    CHECK(run_info("--bogus", NULL, out, sizeof out) == 2 && strstr(out, "unknown option"),
          "unknown option: exit 2\n%s", out);
    CHECK(run_info(valid, valid, out, sizeof out) == 2, "two files: exit 2\n%s", out);
}

/* ---- 5. atomic writes ----------------------------------------------------- */

static void test_atomic(void) {
    ModelConfig cfg = model_config_default();
    cfg.F = 8, cfg.K = 16, cfg.R = 1, cfg.nd = 8;
    Network g, d;
    make_model(&g, &d, &cfg, 9);
    char path[PATH_MAX], missing_dir[PATH_MAX];
    int files_before = count_files("");

    snprintf(missing_dir, sizeof missing_dir, "%s/no-such-folder/model.h5", tmpdir);
    CHECK(checkpoint_save_model(missing_dir, &g, &d, NULL, err, sizeof err) == -1 &&
              strstr(err, "does not exist"),
          "saving into a missing folder fails clearly: %s", err);
    CHECK(count_files("") == files_before && !file_exists(tmp_file(path, "no-such-folder")),
          "a failed save leaves nothing");
    CHECK(checkpoint_save_model(tmpdir, &g, &d, NULL, err, sizeof err) == -1 &&
              strstr(err, "is a folder"),
          "saving over a folder fails clearly: %s", err);

    tmp_file(path, "overwrite.h5");
    CheckpointMeta first = {1, 10}, second = {2, 20}, got = {0, 0};
    CHECK(checkpoint_save_model(path, &g, &d, &first, err, sizeof err) == 0, "save: %s", err);
    CHECK(checkpoint_save_model(path, &g, NULL, &second, err, sizeof err) == 0, "overwrite: %s",
          err);
    CHECK(count_files(".tmp-") == 0, "no temporary file after saving");
    Network g2;
    CHECK(checkpoint_load_model(path, &g2, NULL, &got, err, sizeof err) == 0 && got.epoch == 2 &&
              got.step == 20,
          "overwritten checkpoint holds the second save: %s", err);
    network_free(&g2);

    /* A write that fails half-way keeps the previous file intact. */
    H5Writer *w = h5w_open(path, err, sizeof err);
    CHECK(w != NULL, "open writer: %s", err);
    int one = 1;
    float x = 1.0f;
    if (w) {
        checkpoint_write_model(w, &g, &d, &first);
        h5w_dataset(w, "/opt/x", H5IO_FLOAT32, 1, &one, &x);
        CHECK(h5w_dataset(w, "/opt/x", H5IO_FLOAT32, 1, &one, &x) == -1, "second /opt/x fails");
        CHECK(h5w_commit(w) == -1 && strstr(err, "/opt/x"), "commit reports the failure: %s", err);
    }
    CHECK(count_files(".tmp-") == 0, "no temporary file after a failed write");
    CHECK(checkpoint_load_model(path, &g2, NULL, &got, err, sizeof err) == 0 && got.epoch == 2,
          "the previous checkpoint survives a failed write: %s", err);
    network_free(&g2);

    /* Aborting leaves nothing. */
    char aborted[PATH_MAX];
    w = h5w_open(tmp_file(aborted, "aborted.h5"), err, sizeof err);
    CHECK(w != NULL, "open writer: %s", err);
    if (w) {
        checkpoint_write_model(w, &g, &d, NULL);
        h5w_abort(w);
    }
    CHECK(!file_exists(aborted) && count_files(".tmp-") == 0, "abort leaves nothing");
    network_free(&g);
    network_free(&d);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_h5io_types();
    test_layout();
    test_h5py();
    test_golden_file();
    test_bad_files();
    test_atomic();
    remove_tmpdir();
    return test_summary("test_checkpoint");
}
