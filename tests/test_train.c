/* spynco train, for real: the process on real imagery (tests/data crops),
 * checkpoint contents, bit-identical resume, a kill during a checkpoint
 * write, export, and the errors a user meets with bad data. Small model
 * (F=8, K=16, R=1, nd=8) and 96-pixel crops keep it quick.
 *
 * `test_train learned-f` (its own ctest entry, so the two run side by side)
 * does the same for `spynco train --learned-f`: it learns, its checkpoint
 * holds F and D_A with their training state, it resumes bit-identically,
 * exports G alone, and refuses what it cannot train. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/h5io.h"
#include "testutil.h"

#define DATA SPYNCO_TEST_DATA
static const char *dir;
static char err[1024];

static char *path_in(const char *sub, const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s%s%s", dir, sub, *name ? "/" : "", name);
    return p;
}

/* The shell command of spynco train with the common small settings plus extra
 * arguments (exec: signals reach spynco itself, not the shell). */
static void train_command(char *cmd, size_t size, const char *out, const char *extra) {
    snprintf(cmd, size,
             "exec %s train -q --F 8 --K 16 --R 1 --nd 8 --crop 96 --batch 2 --threads 2 --seed 7 "
             "--gray-from-color --gray %s/cogeo_rgb_384x320.tif %s/naip_plain.jpg "
             "--color %s/naip_rgbn_266x204.tif %s/landsat_rgba_240x200.tif --out %s %s",
             SPYNCO_BIN, DATA, DATA, DATA, DATA, out, extra);
}

static int train(const char *out, const char *extra, char *const env[], const char *log) {
    char cmd[4096];
    train_command(cmd, sizeof cmd, out, extra);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return test_run(argv, env, log);
}

/* spynco train --resume in out, the run's options from its checkpoint. */
static int resume(const char *out, const char *extra, const char *log) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "exec %s train -q --threads 2 --out %s --resume %s", SPYNCO_BIN, out,
             extra);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return test_run(argv, NULL, log);
}

/* Compares every dataset of two HDF5 files bit for bit. */
typedef struct {
    H5Reader *other;
    const char *self_path;
    H5Reader *self;
    int differ, compared;
} CompareCtx;

static int compare_dataset(const char *path, void *p) {
    CompareCtx *c = p;
    int nd, shape[H5IO_MAX_DIMS], nd2, shape2[H5IO_MAX_DIMS];
    if (h5r_shape(c->self, path, &nd, shape) || h5r_shape(c->other, path, &nd2, shape2) || nd != nd2) {
        c->differ++;
        return 0;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    H5ioType type = strstr(path, "/rng") ? H5IO_UINT64 : H5IO_FLOAT32;
    size_t bytes = n * (type == H5IO_UINT64 ? 8 : 4);
    void *a = malloc(bytes), *b = malloc(bytes);
    if (h5r_read(c->self, path, type, nd, shape, a) || h5r_read(c->other, path, type, nd, shape, b) ||
        memcmp(a, b, bytes)) {
        c->differ++;
        fprintf(stderr, "  differs: %s\n", path);
    }
    c->compared++;
    free(a), free(b);
    return 0;
}

static int files_identical(const char *x, const char *y, int *compared) {
    CompareCtx c = {0};
    c.self = h5r_open(x, err, sizeof err);
    c.other = c.self ? h5r_open(y, err, sizeof err) : NULL;
    if (!c.self || !c.other) {
        fprintf(stderr, "%s\n", err);
        if (c.self) h5r_close(c.self);
        return 0;
    }
    h5r_visit_datasets(c.self, "/", compare_dataset, &c);
    h5r_close(c.self);
    h5r_close(c.other);
    *compared = c.compared;
    return c.differ == 0 && c.compared > 0;
}

static long checkpoint_step(const char *path) {
    CheckpointMeta meta;
    ModelConfig cfg;
    if (checkpoint_read_config(path, &cfg, &meta, err, sizeof err)) return -1;
    return meta.step;
}

/* The training options a checkpoint stores (JSON; caller frees), "" if unreadable. */
static char *stored_options(const char *path) {
    char *json = NULL;
    H5Reader *r = h5r_open(path, err, sizeof err);
    if (r && h5r_attr_string(r, "/train", "options", &json)) json = NULL;
    if (r) h5r_close(r);
    return json ? json : strdup("");
}

/* Mean of a losses.csv column over rows [from, to). */
static double csv_mean(const char *csv_path, int column, int from, int to) {
    char *text = test_read_file(csv_path);
    double sum = 0;
    int row = -1, used = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n"), row++) {
        if (row < from || row >= to) continue;
        char *field = line;
        for (int k = 0; k < column && field; k++) field = strchr(field, ',') ? strchr(field, ',') + 1 : NULL;
        if (field) sum += atof(field), used++;
    }
    free(text);
    return used ? sum / used : -1;
}

static void test_learns_and_checkpoint_layout(void) {
    const char *out = path_in("learn", "");
    char log[1100];
    snprintf(log, sizeof log, "%s.log", out);
    int rc = train(out, "--steps 60 --lr 1e-3", NULL, log);
    CHECK(rc == 0, "training exited with %d (log %s)", rc, log);
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/losses.csv", out);
    /* columns: step,epoch,lr,total_g,cons_a,cons_b,... -- the pseudo-cycle terms must fall */
    double a0 = csv_mean(csv, 4, 0, 10), a1 = csv_mean(csv, 4, 50, 60);
    double b0 = csv_mean(csv, 5, 0, 10), b1 = csv_mean(csv, 5, 50, 60);
    printf("  consistency A %.3f -> %.3f, consistency B %.3f -> %.3f over 60 steps\n", a0, a1, b0, b1);
    CHECK(a0 > 0 && a1 < 0.8 * a0, "consistency A did not decrease: %.3f -> %.3f", a0, a1);
    CHECK(b0 > 0 && b1 < 0.8 * b0, "consistency B did not decrease: %.3f -> %.3f", b0, b1);

    char last[1100];
    snprintf(last, sizeof last, "%s/last.h5", out);
    H5Reader *r = h5r_open(last, err, sizeof err);
    CHECK(r != NULL, "%s", err);
    if (!r) return;
    const char *must[] = {"/G/enc0/conv/weight", "/G/enc0/bn/running_var", "/G/res0/conv2/bias",
                          "/G/res0/bn1/weight", "/G/dec1/bn/running_mean", "/G/head/conv/weight",
                          "/D/l0/conv/weight", "/D/l3/bn/running_var", "/D/l4/conv/bias",
                          "/opt/G/exp_avg/enc0/conv/weight", "/opt/G/exp_avg_sq/head/conv/bias",
                          "/opt/D/exp_avg/l2/bn/weight", "/opt/D/exp_avg_sq/l4/conv/weight",
                          "/train/rng", "/train/pool/s1", "/train/pool/s2", "/train/pool/s3"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(h5r_exists(r, must[i]), "checkpoint lacks %s", must[i]);
    const char *attrs[] = {"format", "format_version", "config", "epoch", "step"};
    for (size_t i = 0; i < 5; i++) CHECK(h5r_has_attr(r, "/", attrs[i]), "no root attribute %s", attrs[i]);
    long long pool = 0;
    CHECK(h5r_attr_int(r, "/train", "pool_count", &pool) == 0 && pool == 50, "pool holds %lld", pool);
    h5r_close(r);
    CHECK(checkpoint_step(last) == 60, "last.h5 at step %ld", checkpoint_step(last));
    char *options = stored_options(last);
    CHECK(strstr(options, "\"init\":null"), "a fresh run must store init null: %s", options);
    free(options);
    char file[1100];
    snprintf(file, sizeof file, "%s/losses.svg", out);
    CHECK(access(file, F_OK) == 0, "no losses.svg");
    /* 4 images per set, batch 2: an epoch is 2 steps, so the grids exist */
    snprintf(file, sizeof file, "%s/samples_epoch_0001.png", out);
    CHECK(access(file, F_OK) == 0, "no sample grid %s", file);

    /* export, then colorize with the release model */
    char model[1100], cmd[4096];
    snprintf(model, sizeof model, "%s/model.h5", dir);
    char *exp[] = {SPYNCO_BIN, "export", last, model, NULL};
    CHECK(test_run(exp, NULL, NULL) == 0, "export failed");
    r = h5r_open(model, err, sizeof err);
    CHECK(r && h5r_exists(r, "/G") && !h5r_exists(r, "/D") && !h5r_exists(r, "/opt") &&
              !h5r_exists(r, "/train"),
          "the exported model must hold G only");
    if (r) h5r_close(r);
    snprintf(cmd, sizeof cmd, "%s/colorized.tif", dir);
    char *col[] = {SPYNCO_BIN, "colorize", "-q", "--model", model, DATA "/rasterio_byte_20x20.tif", cmd, NULL};
    CHECK(test_run(col, NULL, NULL) == 0, "colorize with the exported model failed");
}

/* --init: a new run from a release model's weights. With a zero learning
 * rate one step leaves every learned tensor as the file had it, so G's
 * weights must equal the model's; the widths come from the file (the --F
 * asked for is ignored); D, absent from a release model, is created. */
static void test_init_from_model(void) {
    char model[1100], last[1100];
    snprintf(model, sizeof model, "%s/model.h5", dir);
    const char *out = path_in("init", "");
    snprintf(last, sizeof last, "%s/last.h5", out);
    CHECK(train(out, "--init", NULL, NULL) != 0, "--init without a file was accepted");
    char extra[1300];
    snprintf(extra, sizeof extra, "--steps 1 --lr 0 --init %s --F 16", model);
    CHECK(train(out, extra, NULL, NULL) == 0, "training from --init %s failed", model);
    H5Reader *m = h5r_open(model, err, sizeof err), *c = m ? h5r_open(last, err, sizeof err) : NULL;
    CHECK(m && c, "%s", err);
    if (!m || !c) {
        if (m) h5r_close(m);
        return;
    }
    const char *learned[] = {"/G/enc0/conv/weight", "/G/res0/bn2/weight", "/G/dec0/conv/bias",
                             "/G/head/conv/weight"};
    for (size_t i = 0; i < sizeof learned / sizeof learned[0]; i++) {
        int nd, shape[H5IO_MAX_DIMS], nd2, shape2[H5IO_MAX_DIMS];
        CHECK(h5r_shape(m, learned[i], &nd, shape) == 0 && h5r_shape(c, learned[i], &nd2, shape2) == 0 &&
                  nd == nd2 && !memcmp(shape, shape2, (size_t)nd * sizeof *shape),
              "%s: shape differs from the --init file", learned[i]);
        size_t n = 1;
        for (int k = 0; k < nd; k++) n *= (size_t)shape[k];
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        CHECK(h5r_read(m, learned[i], H5IO_FLOAT32, nd, shape, x) == 0 &&
                  h5r_read(c, learned[i], H5IO_FLOAT32, nd, shape, y) == 0 && !memcmp(x, y, n * sizeof *x),
              "%s differs from the --init file after a step at lr 0", learned[i]);
        free(x), free(y);
    }
    CHECK(h5r_exists(c, "/D/l0/conv/weight"), "no discriminator in the new run");
    h5r_close(m), h5r_close(c);
    char cmd[1400], log[1100];
    snprintf(log, sizeof log, "%s/init-resume.log", dir);
    snprintf(cmd, sizeof cmd, "exec %s train --out %s --resume --init %s", SPYNCO_BIN, out, model);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    CHECK(test_run(argv, NULL, log) == 2, "--init with --resume must be a usage error");
    /* the checkpoint says where the run started, also after a resume */
    char init_option[1200];
    snprintf(init_option, sizeof init_option, "\"init\":\"%s\"", model);
    char *options = stored_options(last);
    CHECK(strstr(options, init_option), "no %s in the stored options: %s", init_option, options);
    free(options);
    CHECK(resume(out, "--steps 2", log) == 0, "resuming the --init run failed");
    options = stored_options(last);
    CHECK(checkpoint_step(last) == 2 && strstr(options, init_option),
          "the resumed run lost %s: %s", init_option, options);
    free(options);
    snprintf(extra, sizeof extra, "--steps 1 --init %s/no-such-model.h5", dir);
    CHECK(train(path_in("init2", ""), extra, NULL, log) == 1, "a missing --init file must fail");
    char *text = test_read_file(log);
    CHECK(text && strstr(text, "no-such-model.h5"), "the message must name the file: %s", text ? text : "");
    free(text);
}

/* 9 steps with `flags` in one go into one/, and stopped after 5 into two/
 * then resumed (the flags must come back from the checkpoint): the two
 * last.h5 must be bit-identical. The number of datasets compared. */
static int check_resume_is_exact(const char *one, const char *two, const char *flags) {
    char args[600], last_one[1100], last_two[1100];
    snprintf(args, sizeof args, "%s --steps 9 --checkpoint-every 4", flags);
    CHECK(train(one, args, NULL, NULL) == 0, "the one-go run failed (flags '%s')", flags);
    strcat(args, " --stop-after 5");
    CHECK(train(two, args, NULL, NULL) == 0, "the first part failed (flags '%s')", flags);
    snprintf(last_one, sizeof last_one, "%s/last.h5", one);
    snprintf(last_two, sizeof last_two, "%s/last.h5", two);
    CHECK(checkpoint_step(last_two) == 5, "stopped at step %ld, expected 5", checkpoint_step(last_two));
    CHECK(resume(two, "", NULL) == 0, "resume failed (flags '%s')", flags);
    int compared = 0;
    CHECK(files_identical(last_one, last_two, &compared),
          "5 steps + resume to 9 differs from 9 steps in one run (flags '%s')", flags);
    return compared;
}

static void test_resume_is_exact(void) {
    int compared = check_resume_is_exact(path_in("one", ""), path_in("two", ""), "");
    printf("  resume: %d datasets bit-identical (weights, BN statistics, Adam, RNG, pool)\n", compared);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void test_kill_during_checkpoint(void) {
    const char *out = path_in("killed", ""), *ref = path_in("ref", "");
    char cmd[4096];
    train_command(cmd, sizeof cmd, out, "--steps 12 --checkpoint-every 3");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *env[] = {"SPYNCO_CHECKPOINT_DELAY_MS=1500", NULL};
    pid_t pid = test_spawn(argv, env, NULL);
    char last[1100];
    snprintf(last, sizeof last, "%s/last.h5", out);
    /* wait for one finished checkpoint, then for the next one to be under way
     * (an epoch is one step here: 2 images per set, batch 2) */
    int waited = 0;
    while (waited < 600 && access(last, F_OK) != 0) sleep_ms(50), waited++;
    while (waited < 600 && !test_count_entries(out, ".tmp-")) sleep_ms(20), waited++;
    int writing = test_count_entries(out, ".tmp-") > 0;
    kill(pid, SIGKILL);
    int status = test_wait(pid);
    CHECK(writing, "never saw a checkpoint being written");
    CHECK(status == 128 + SIGKILL, "the run was not killed (%d)", status);
    long step = checkpoint_step(last);
    CHECK(step > 0 && step < 12, "after the kill last.h5 is at step %ld (%s)", step, err);
    CHECK(resume(out, "", NULL) == 0, "resume after the kill failed");
    CHECK(!test_count_entries(out, ".tmp-"), "a temporary file was left behind");
    CHECK(train(ref, "--steps 12 --checkpoint-every 3", NULL, NULL) == 0, "reference run failed");
    char last_ref[1100];
    snprintf(last_ref, sizeof last_ref, "%s/last.h5", ref);
    int compared = 0;
    CHECK(files_identical(last, last_ref, &compared), "killed+resumed run differs from one run");
    printf("  killed during the checkpoint after step %ld: resumed to the same weights\n", step);
}

static int expect_failure(const char *what, const char *args, const char *keyword) {
    char cmd[4096], log[1100];
    snprintf(log, sizeof log, "%s/fail.log", dir);
    unlink(log);
    snprintf(cmd, sizeof cmd, "exec %s train --F 8 --K 16 --R 1 --nd 8 --batch 2 --steps 2 --out %s %s",
             SPYNCO_BIN, path_in("bad", ""), args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = test_run(argv, NULL, log);
    char *text = test_read_file(log);
    CHECK(rc == 1 || rc == 2, "%s: exit status %d", what, rc);
    CHECK(text && strstr(text, keyword), "%s: message lacks '%s': %s", what, keyword, text ? text : "");
    free(text);
    return rc;
}

static void test_bad_data(void) {
    char empty[1100], small[1200], mixed[1100], cmd[4096];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    mkdir(empty, 0755);
    snprintf(cmd, sizeof cmd, "--crop 96 --gray %s --color %s/cogeo_rgb_384x320.tif", empty, DATA);
    expect_failure("empty folder", cmd, "no images");
    snprintf(cmd, sizeof cmd, "--crop 96 --gray %s/rasterio_byte_20x20.tif --color %s/cogeo_rgb_384x320.tif",
             DATA, DATA);
    expect_failure("images smaller than the crop", cmd, "96");
    snprintf(cmd, sizeof cmd, "--crop 96 --gray %s/cogeo_rgb_384x320.tif --color %s/naip_rgbn_266x204.tif",
             DATA, DATA);
    expect_failure("3-band gray without conversion", cmd, "cogeo_rgb_384x320.tif");
    snprintf(cmd, sizeof cmd, "--crop 100 --gray %s/missing-folder --color %s/cogeo_rgb_384x320.tif", dir, DATA);
    expect_failure("missing source", cmd, "missing-folder");
    expect_failure("crop not a multiple of 4", "--crop 98 --gray x --color y", "--crop");
    /* an unreadable file among good ones: skipped with a warning, training goes on */
    snprintf(mixed, sizeof mixed, "%s/mixed", dir);
    mkdir(mixed, 0755);
    snprintf(small, sizeof small, "%s/broken.tif", mixed);
    FILE *f = fopen(small, "w");
    fputs("not a tiff", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cp %s/naip_rgbn_266x204.tif %s/cogeo_rgb_384x320.tif %s/", DATA, DATA, mixed);
    char *cp[] = {"/bin/sh", "-c", cmd, NULL};
    test_run(cp, NULL, NULL);
    char log[1100];
    snprintf(log, sizeof log, "%s/mixed.log", dir);
    snprintf(cmd, sizeof cmd, "exec %s train --F 8 --K 16 --R 1 --nd 8 --crop 96 --batch 2 --steps 2 "
                              "--gray-from-color --gray %s --color %s --out %s",
             SPYNCO_BIN, mixed, mixed, path_in("mixed-out", ""));
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = test_run(argv, NULL, log);
    char *text = test_read_file(log);
    CHECK(rc == 0, "a broken file among good ones stopped training (%d): %s", rc, text ? text : "");
    CHECK(text && strstr(text, "broken.tif"), "no warning naming broken.tif: %s", text ? text : "");
    free(text);
}

/* ---- --learned-f ---------------------------------------------------------------- */

static void test_learned_f_learns(void) {
    const char *out = path_in("lf-learn", "");
    char log[1100];
    snprintf(log, sizeof log, "%s.log", out);
    /* not -q: the log names the parameter counts */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "exec %s train --F 8 --K 16 --R 1 --nd 8 --crop 96 --batch 2 --threads 2 --seed 7 "
             "--gray-from-color --gray %s/cogeo_rgb_384x320.tif %s/naip_plain.jpg "
             "--color %s/naip_rgbn_266x204.tif %s/landsat_rgba_240x200.tif --out %s "
             "--learned-f --steps 40 --lr 1e-3",
             SPYNCO_BIN, DATA, DATA, DATA, DATA, out);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = test_run(argv, NULL, log);
    CHECK(rc == 0, "--learned-f training exited with %d (log %s)", rc, log);
    char *text = test_read_file(log);
    CHECK(text && strstr(text, "F 31009, D_A 44505 parameters"),
          "the log lacks F's and D_A's parameter counts: %s", text ? text : "");
    free(text);

    char csv[1100];
    snprintf(csv, sizeof csv, "%s/losses.csv", out);
    text = test_read_file(csv);
    const char *header = "step,epoch,lr,total_g,cons_a,cons_b,gan,contours,total_d,seconds,gan_f,"
                         "total_da\n";
    CHECK(text && !strncmp(text, header, strlen(header)), "losses.csv header: %.100s",
          text ? text : "");
    free(text);
    /* the cycle terms (columns cons_a, cons_b) must fall */
    double a0 = csv_mean(csv, 4, 0, 10), a1 = csv_mean(csv, 4, 30, 40);
    double b0 = csv_mean(csv, 5, 0, 10), b1 = csv_mean(csv, 5, 30, 40);
    printf("  learned F: cycle A %.3f -> %.3f, cycle B %.3f -> %.3f over 40 steps\n", a0, a1, b0, b1);
    CHECK(a0 > 0 && a1 < 0.8 * a0, "cycle A did not decrease: %.3f -> %.3f", a0, a1);
    CHECK(b0 > 0 && b1 < 0.8 * b0, "cycle B did not decrease: %.3f -> %.3f", b0, b1);
    double f_gan = csv_mean(csv, 10, 0, 40), da = csv_mean(csv, 11, 0, 40);
    CHECK(f_gan > 0 && da > 0, "gan_f %.3f, total_da %.3f: the D_A columns are empty", f_gan, da);

    char last[1100];
    snprintf(last, sizeof last, "%s/last.h5", out);
    H5Reader *r = h5r_open(last, err, sizeof err);
    CHECK(r != NULL, "%s", err);
    if (!r) return;
    const char *must[] = {"/G/enc0/conv/weight", "/D/l0/conv/weight", "/F/enc0/conv/weight",
                          "/F/res0/bn1/running_var", "/F/head/conv/bias", "/DA/l0/conv/weight",
                          "/DA/l3/bn/running_mean", "/opt/F/exp_avg/enc0/conv/weight",
                          "/opt/F/exp_avg_sq/head/conv/weight", "/opt/DA/exp_avg/l4/conv/bias",
                          "/opt/DA/exp_avg_sq/l1/bn/weight", "/train/pool_f"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(h5r_exists(r, must[i]), "the --learned-f checkpoint lacks %s", must[i]);
    /* F is 3 -> 1 (enc0 reads 3 channels, the head writes 1); D_A reads 1 channel */
    int nd = 0, shape[H5IO_MAX_DIMS];
    CHECK(!h5r_shape(r, "/F/enc0/conv/weight", &nd, shape) && nd == 4 && shape[1] == 3,
          "/F/enc0/conv/weight is not [8,3,7,7]");
    CHECK(!h5r_shape(r, "/F/head/conv/weight", &nd, shape) && nd == 4 && shape[0] == 1,
          "/F/head/conv/weight is not [1,16,1,1]");
    CHECK(!h5r_shape(r, "/DA/l0/conv/weight", &nd, shape) && nd == 4 && shape[1] == 1,
          "/DA/l0/conv/weight is not [8,1,4,4]");
    CHECK(!h5r_shape(r, "/train/pool_f", &nd, shape) && nd == 4 && shape[0] == 50 && shape[1] == 1,
          "/train/pool_f is not [50,1,96,96]");
    long long pool = 0;
    CHECK(h5r_attr_int(r, "/train", "pool_f_count", &pool) == 0 && pool == 50, "F's pool holds %lld",
          pool);
    h5r_close(r);

    char info[1100];
    snprintf(info, sizeof info, "%s/info.txt", dir);
    char *inf[] = {SPYNCO_BIN, "info", last, NULL};
    CHECK(test_run(inf, NULL, info) == 0, "spynco info on the --learned-f checkpoint failed");
    text = test_read_file(info);
    const char *want[] = {"G parameters: 30,259", "D (D_B) parameters: 44,761",
                          "F parameters: 31,009", "D_A parameters: 44,505", "F and D_A"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(text && strstr(text, want[i]), "spynco info lacks '%s': %s", want[i], text ? text : "");
    free(text);

    /* the release model is G alone, and it colorizes */
    char model[1100], colorized[1100];
    snprintf(model, sizeof model, "%s/lf-model.h5", dir);
    char *exp[] = {SPYNCO_BIN, "export", last, model, NULL};
    CHECK(test_run(exp, NULL, NULL) == 0, "export of the --learned-f checkpoint failed");
    r = h5r_open(model, err, sizeof err);
    CHECK(r && h5r_exists(r, "/G") && !h5r_exists(r, "/F") && !h5r_exists(r, "/DA") &&
              !h5r_exists(r, "/D") && !h5r_exists(r, "/opt"),
          "the exported model must hold G only");
    if (r) h5r_close(r);
    snprintf(colorized, sizeof colorized, "%s/lf-colorized.tif", dir);
    char *col[] = {SPYNCO_BIN, "colorize", "-q", "--model", model, DATA "/rasterio_byte_20x20.tif",
                   colorized, NULL};
    CHECK(test_run(col, NULL, NULL) == 0, "colorize with the --learned-f model failed");
}

static void test_learned_f_resume_is_exact(void) {
    const char *two = path_in("lf-two", "");
    int compared = check_resume_is_exact(path_in("lf-one", ""), two, "--learned-f");
    char last_two[1100];
    snprintf(last_two, sizeof last_two, "%s/last.h5", two);
    H5Reader *r = h5r_open(last_two, err, sizeof err);
    CHECK(r && h5r_exists(r, "/F") && h5r_exists(r, "/opt/DA"), "the resumed run lost F or D_A");
    if (r) h5r_close(r);
    printf("  --learned-f resume: %d datasets bit-identical (G, D, F, D_A, Adam, RNG, both pools)\n",
           compared);
}

static void test_learned_f_refusals(void) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "--learned-f --crop 100 --gray-from-color --gray %s/cogeo_rgb_384x320.tif "
             "--color %s/cogeo_rgb_384x320.tif", DATA, DATA);
    expect_failure("--learned-f with a crop F cannot read at H/4", cmd, "multiples of 16");
    snprintf(cmd, sizeof cmd,
             "--learned-f --contours --crop 96 --gray-from-color --gray %s/cogeo_rgb_384x320.tif "
             "--color %s/cogeo_rgb_384x320.tif", DATA, DATA);
    expect_failure("--learned-f with --contours", cmd, "--contours");
    snprintf(cmd, sizeof cmd,
             "--learned-f --keep-luminance --crop 96 --gray-from-color --gray "
             "%s/cogeo_rgb_384x320.tif --color %s/cogeo_rgb_384x320.tif", DATA, DATA);
    expect_failure("--learned-f with --keep-luminance", cmd, "--keep-luminance");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "learned-f")) {
        dir = test_tmpdir("train-lf");
        test_learned_f_learns();
        test_learned_f_resume_is_exact();
        test_learned_f_refusals();
        test_remove_tree(dir);
        return test_summary("test_train learned-f");
    }
    dir = test_tmpdir("train");
    test_learns_and_checkpoint_layout();
    test_init_from_model();
    test_resume_is_exact();
    test_kill_during_checkpoint();
    test_bad_data();
    test_remove_tree(dir);
    return test_summary("test_train");
}
