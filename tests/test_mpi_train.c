/* spynco train under mpirun: 2 processes, each with half of every batch,
 * against 1 process with the same command (the same --batch), on the
 * tests/data crops with the small model of test_train.
 *
 * What "the same result" can mean. The ranks sum their partial gradients
 * (and BatchNorm statistics) in another order than one process does, so
 * the numbers agree to float rounding, not bit for bit. After ONE step that
 * is checked tightly on everything the checkpoint holds. After more steps
 * the rounding differences grow (Adam turns small gradient differences into
 * whole learning-rate steps, and the GAN feeds them back), so later steps
 * are checked on what must still match: the random stream exactly, the
 * history pool image by image, the losses step by step; that from a
 * checkpoint with a full pool, so the pool's random swaps are exercised
 * without 13 steps of training. A 2-process run stopped and resumed is
 * bit-identical to one that ran through. The same one-step and resume
 * checks for `--learned-f`, whose F and D_A are data-parallel too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5io.h"
#include "testutil.h"

#define DATA SPYNCO_TEST_DATA
#define LR 2e-4 /* spynco train's default learning rate */
static const char *dir;
static char err[1024];

/* Open MPI refuses root without the first two; waiting ranks yield the CPU
 * (CI runs tests side by side on 2 cores); ASan needs full stacks to match
 * the MPI leak suppressions in tests/lsan.supp (its libraries' frames). */
static char asan_options[1024] = "ASAN_OPTIONS=";
static char *mpi_env[] = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                          "OMPI_MCA_mpi_yield_when_idle=1",
                          asan_options, NULL};

static char *path_in(const char *sub, const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/%s%s%s", dir, sub, *name ? "/" : "", name);
    return p;
}

/* spynco train on `ranks` processes (1: no mpirun) with the common settings. */
static int train(int ranks, const char *out, const char *extra, const char *log) {
    char launcher[512] = "", cmd[4096];
    if (ranks > 1)
        snprintf(launcher, sizeof launcher, "%s -n %d %s ", MPIEXEC, ranks, MPIEXEC_FLAGS);
    snprintf(cmd, sizeof cmd,
             "exec %s%s train -q --F 8 --K 16 --R 1 --nd 8 --crop 96 --threads 1 --seed 7 "
             "--gray-from-color --gray %s/cogeo_rgb_384x320.tif %s/naip_plain.jpg "
             "--color %s/naip_rgbn_266x204.tif %s/landsat_rgba_240x200.tif --out %s %s",
             launcher, SPYNCO_BIN, DATA, DATA, DATA, DATA, out, extra);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return test_run(argv, mpi_env, log);
}

/* ---- reading checkpoints ------------------------------------------------------ */

typedef struct {
    H5Reader *one, *two; /* one process, two processes */
} Pair;

static int open_pair(Pair *p, const char *one, const char *two) {
    p->one = h5r_open(one, err, sizeof err);
    p->two = p->one ? h5r_open(two, err, sizeof err) : NULL;
    if (p->two) return 0;
    CHECK(0, "%s", err);
    if (p->one) h5r_close(p->one);
    return -1;
}

static void close_pair(Pair *p) {
    h5r_close(p->one);
    h5r_close(p->two);
}

/* A whole float dataset (NULL with a failed CHECK if missing). */
static float *read_floats(H5Reader *r, const char *path, size_t *count) {
    int nd, shape[H5IO_MAX_DIMS];
    if (h5r_shape(r, path, &nd, shape)) {
        CHECK(0, "%s", err);
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    float *x = malloc(n * sizeof(float));
    if (h5r_read(r, path, H5IO_FLOAT32, nd, shape, x)) {
        CHECK(0, "%s", err);
        free(x);
        return NULL;
    }
    *count = n;
    return x;
}

/* Dataset paths of a group, collected by h5r_visit_datasets. */
typedef struct {
    char paths[256][160];
    int count;
} PathList;

static int collect(const char *path, void *p) {
    PathList *l = p;
    if (l->count < 256) snprintf(l->paths[l->count++], sizeof l->paths[0], "%s", path);
    return 0;
}

static int same_text_attr(Pair *p, const char *object, const char *name) {
    char *a = NULL, *b = NULL;
    int same = !h5r_attr_string(p->one, object, name, &a) && !h5r_attr_string(p->two, object, name, &b) &&
               !strcmp(a, b);
    free(a), free(b);
    return same;
}

static int same_int_attr(Pair *p, const char *object, const char *name) {
    long long a = -1, b = -2;
    return !h5r_attr_int(p->one, object, name, &a) && !h5r_attr_int(p->two, object, name, &b) && a == b;
}

static int same_rng(Pair *p) {
    uint64_t a[4], b[4];
    int shape[1] = {4};
    return !h5r_read(p->one, "/train/rng", H5IO_UINT64, 1, shape, a) &&
           !h5r_read(p->two, "/train/rng", H5IO_UINT64, 1, shape, b) && !memcmp(a, b, sizeof a);
}

/* Both files hold the same datasets and the same run description. */
static void check_same_layout(Pair *p) {
    PathList *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    h5r_visit_datasets(p->one, "/", collect, a);
    h5r_visit_datasets(p->two, "/", collect, b);
    int same = a->count == b->count && a->count > 100;
    for (int i = 0; same && i < a->count; i++) same = !strcmp(a->paths[i], b->paths[i]);
    CHECK(same, "the checkpoints hold different datasets (%d and %d)", a->count, b->count);
    free(a), free(b);
    CHECK(same_text_attr(p, "/", "config"), "model config attributes differ");
    CHECK(same_text_attr(p, "/train", "options"), "training options attributes differ (--batch?)");
    CHECK(same_int_attr(p, "/", "step") && same_int_attr(p, "/", "epoch"), "step or epoch differ");
    CHECK(same_int_attr(p, "/train", "pool_count"), "pool counts differ");
    CHECK(same_rng(p), "the random generator states differ: the runs drew different numbers");
}

/* ---- one step: everything to float rounding ----------------------------------- */

/* After one step Adam's moments are (1-beta1) g and (1-beta2) g^2: the
 * checkpoint holds the gradient of the whole batch. Sums of ~10^5 float
 * terms in another order differ by ~1e-7 of the largest gradient (measured
 * 1.3e-7); 1e-5 leaves room, and a real error (a rank's own BatchNorm
 * statistics, a wrong slice or scale) is of order 1e-2 or more.
 * The weights then moved by lr * g / (|g| + eps), about lr * sign(g): equal
 * to 1e-6 wherever g is above rounding. Where the exact gradient is 0 (the
 * conv biases in front of a BatchNorm, which removes any constant) the
 * computed one is rounding noise of either sign, and Adam still moves such a
 * weight by up to lr: those may differ by lr. */
static void check_network_after_one_step(Pair *p, const char *net, double *worst_grad, int *noise) {
    char group[64];
    snprintf(group, sizeof group, "/opt/%s/exp_avg", net);
    PathList *l = calloc(1, sizeof *l);
    h5r_visit_datasets(p->one, group, collect, l);
    CHECK(l->count > 5, "no Adam moments under %s", group);
    /* the network's gradient scale: its largest |g| */
    double gmax = 0, dmax = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < l->count; i++) {
            const char *name = l->paths[i] + strlen(group); /* "/enc0/conv/weight" */
            char sq[200], weight[200];
            snprintf(sq, sizeof sq, "/opt/%s/exp_avg_sq%s", net, name);
            snprintf(weight, sizeof weight, "/%s%s", net, name);
            size_t n = 0, k;
            float *m1 = read_floats(p->one, l->paths[i], &n), *m2 = read_floats(p->two, l->paths[i], &k);
            float *v1 = read_floats(p->one, sq, &k), *v2 = read_floats(p->two, sq, &k);
            float *w1 = read_floats(p->one, weight, &k), *w2 = read_floats(p->two, weight, &k);
            if (m1 && m2 && v1 && v2 && w1 && w2)
                for (size_t j = 0; j < n; j++) {
                    double g = 2.0 * m1[j]; /* exp_avg = (1 - 0.5) g */
                    if (pass == 0) {
                        gmax = fmax(gmax, fabs(g));
                        continue;
                    }
                    dmax = fmax(dmax, fabs(2.0 * (m1[j] - m2[j])));
                    /* exp_avg_sq = 0.001 g^2, compared on the same scale */
                    dmax = fmax(dmax, fabs(sqrt(1000.0 * v1[j]) - sqrt(1000.0 * v2[j])));
                    double dw = fabs((double)w1[j] - w2[j]);
                    int rounding = fabs(g) <= 1e-6 * gmax;
                    *noise += rounding;
                    /* Adam's first step moves a weight by up to lr either way, so
                     * two runs whose noise differs in sign end up to 2 lr apart */
                    if (dw > (rounding ? 2.0 * LR : 1e-6)) {
                        CHECK(0, "%s[%zu]: weights %.9g and %.9g after one step (gradient %.3g of %.3g)",
                              weight, j, w1[j], w2[j], g, gmax);
                        j = n; /* one message per tensor */
                    }
                }
            free(m1), free(m2), free(v1), free(v2), free(w1), free(w2);
        }
    *worst_grad = dmax / gmax;
    CHECK(dmax <= 1e-5 * gmax, "%s: gradients of the whole batch differ by %.3g of the largest (%.3g)",
          net, dmax / gmax, gmax);
    free(l);
}

/* Per tensor, max|a - b| <= tol * max|b| (tensors of one kind in group). */
static double check_tensors(Pair *p, const char *group, const char *must_contain, double tol) {
    PathList *l = calloc(1, sizeof *l);
    h5r_visit_datasets(p->one, group, collect, l);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < l->count; i++) {
        if (!strstr(l->paths[i], must_contain)) continue;
        size_t n = 0, k = 0;
        float *a = read_floats(p->one, l->paths[i], &n), *b = read_floats(p->two, l->paths[i], &k);
        if (a && b && n == k) {
            double rel = test_rel_error(a, b, n, 1e-6);
            worst = fmax(worst, rel);
            CHECK(rel <= tol, "%s differs by %.3g (relative to its largest value)", l->paths[i], rel);
            compared++;
        }
        free(a), free(b);
    }
    CHECK(compared > 0, "nothing matching %s under %s", must_contain, group);
    free(l);
    return worst;
}

static void test_one_step(void) {
    const char *one = path_in("step1-one", ""), *two = path_in("step1-two", "");
    char log[1100];
    snprintf(log, sizeof log, "%s.log", two);
    CHECK(train(1, one, "--batch 4 --steps 1", NULL) == 0, "one process, one step failed");
    int rc = train(2, two, "--batch 4 --steps 1", log);
    CHECK(rc == 0, "two processes, one step: exit %d (log %s)", rc, log);
    Pair p;
    if (open_pair(&p, path_in("step1-one", "last.h5"), path_in("step1-two", "last.h5"))) return;
    check_same_layout(&p);
    double g_rel = 0, d_rel = 0;
    int noise = 0;
    check_network_after_one_step(&p, "G", &g_rel, &noise);
    check_network_after_one_step(&p, "D", &d_rel, &noise);
    /* BatchNorm running statistics: synchronised batch statistics, to rounding */
    double bn = fmax(check_tensors(&p, "/G", "running", 1e-5), check_tensors(&p, "/D", "running", 1e-5));
    /* the pool holds the step's 4 fakes, computed by G with the shared statistics */
    double pool = check_tensors(&p, "/train/pool", "/s", 1e-5);
    printf("  one step, 1 vs 2 processes: gradients differ by %.2g (G) and %.2g (D) of the largest,\n"
           "  BN running statistics by %.2g, pool by %.2g; %d weights with rounding-level\n"
           "  gradients (biases before BatchNorm) within 2 lr\n", g_rel, d_rel, bn, pool, noise);
    close_pair(&p);
}

/* ---- a full history pool: resumed runs ------------------------------------------- */

/* losses.csv as rows of 10 numbers (rows returned, at most max). */
static int read_losses(const char *path, double rows[][10], int max) {
    char *text = test_read_file(path);
    int count = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line && count < max; line = strtok(NULL, "\n")) {
        if (line[0] < '0' || line[0] > '9') continue; /* the header */
        char *p = line;
        for (int c = 0; c < 10; c++) {
            rows[count][c] = strtod(p, &p);
            if (*p == ',') p++;
        }
        count++;
    }
    free(text);
    return count;
}

typedef struct {
    H5Reader *r;
    H5Writer *w;
} Copy;

static int copy_dataset(const char *path, void *p) {
    Copy *c = p;
    if (!strncmp(path, "/train/pool/", 12)) return 0;
    int nd, shape[H5IO_MAX_DIMS];
    if (h5r_shape(c->r, path, &nd, shape)) return 1;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    H5ioType type = strstr(path, "/rng") ? H5IO_UINT64 : H5IO_FLOAT32;
    void *data = malloc(n * 8);
    int rc = h5r_read(c->r, path, type, nd, shape, data) || h5w_dataset(c->w, path, type, nd, shape, data);
    free(data);
    return rc;
}

static int copy_attributes(Copy *c) {
    const char *texts[][2] = {{"/", "format"}, {"/", "config"}, {"/train", "options"}};
    const char *ints[][2] = {{"/", "format_version"}, {"/", "epoch"}, {"/", "step"}, {"/opt", "adam_step"}};
    for (int i = 0; i < 3; i++) {
        char *v = NULL;
        int rc = h5r_attr_string(c->r, texts[i][0], texts[i][1], &v) ||
                 h5w_attr_string(c->w, texts[i][0], texts[i][1], v);
        free(v);
        if (rc) return -1;
    }
    for (int i = 0; i < 4; i++) {
        long long v;
        if (h5r_attr_int(c->r, ints[i][0], ints[i][1], &v) || h5w_attr_int(c->w, ints[i][0], ints[i][1], v))
            return -1;
    }
    return h5w_attr_int(c->w, "/train", "pool_count", 50);
}

/* The pool starts drawing once 50 fakes went in. Rather than train that
 * long, the one-step checkpoint is rewritten with a full pool of 50
 * distinct (random) images, and runs resume from it. */
static int write_full_pool(const char *from, const char *to) {
    Copy c = {h5r_open(from, err, sizeof err), NULL};
    if (!c.r) return -1;
    c.w = h5w_open(to, err, sizeof err);
    int rc = !c.w || h5r_visit_datasets(c.r, "/", copy_dataset, &c) || copy_attributes(&c);
    TestRng rng = {2024};
    for (int s = 0; !rc && s < 3; s++) {
        int shape[4] = {50, 3, 96 >> s, 96 >> s};
        size_t n = (size_t)50 * 3 * shape[2] * shape[3];
        float *pool = malloc(n * sizeof(float));
        test_fill_uniform(&rng, pool, n, -1.0f, 1.0f);
        char name[32];
        snprintf(name, sizeof name, "/train/pool/s%d", s + 1);
        rc = h5w_dataset(c.w, name, H5IO_FLOAT32, 4, shape, pool);
        free(pool);
    }
    h5r_close(c.r);
    if (!c.w) return -1;
    if (rc) {
        h5w_abort(c.w);
        return -1;
    }
    return h5w_commit(c.w);
}

/* A new output folder whose last.h5 is a copy of the file at from. */
static int seed_folder(const char *folder, const char *from) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/last.h5'", folder, from, folder);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return test_run(argv, NULL, NULL);
}

static int resume(int ranks, const char *out, const char *extra, const char *log) {
    char launcher[512] = "", cmd[4096];
    if (ranks > 1)
        snprintf(launcher, sizeof launcher, "%s -n %d %s ", MPIEXEC, ranks, MPIEXEC_FLAGS);
    snprintf(cmd, sizeof cmd, "exec %s%s train -q --threads 1 --out %s --resume %s", launcher,
             SPYNCO_BIN, out, extra);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return test_run(argv, mpi_env, log);
}

static int dataset_identical(const char *path, void *ctx) {
    Pair *p = ctx;
    int nd, shape[H5IO_MAX_DIMS];
    if (h5r_shape(p->one, path, &nd, shape)) return 1;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    H5ioType type = strstr(path, "/rng") ? H5IO_UINT64 : H5IO_FLOAT32;
    size_t bytes = n * (type == H5IO_UINT64 ? 8 : 4);
    void *a = malloc(bytes), *b = malloc(bytes);
    int differ = h5r_read(p->one, path, type, nd, shape, a) || h5r_read(p->two, path, type, nd, shape, b) ||
                 memcmp(a, b, bytes);
    if (differ) fprintf(stderr, "  differs: %s\n", path);
    free(a), free(b);
    return differ;
}

/* Two checkpoints equal bit for bit, every dataset. */
static void check_resume_exact(const char *resumed, const char *through, const char *what) {
    Pair p;
    if (open_pair(&p, resumed, through)) return;
    CHECK(h5r_visit_datasets(p.one, "/", dataset_identical, &p) == 0,
          "%s: differs from running through", what);
    close_pair(&p);
    printf("  %s: bit-identical to running through\n", what);
}

#define RESUMED_TO 4 /* 3 steps of 4 images after the one-step checkpoint */

static void test_full_pool(void) {
    char full[1100], log[1100], to[32];
    snprintf(full, sizeof full, "%s/full-pool.h5", dir);
    snprintf(log, sizeof log, "%s/full-pool.log", dir);
    snprintf(to, sizeof to, "--steps %d", RESUMED_TO);
    int rc = write_full_pool(path_in("step1-one", "last.h5"), full);
    CHECK(rc == 0, "cannot write the full-pool checkpoint: %s", err);
    if (rc) return;
    const char *one = path_in("pool-one", ""), *two = path_in("pool-two", ""),
               *twice = path_in("pool-twice", "");
    seed_folder(one, full), seed_folder(two, full), seed_folder(twice, full);
    CHECK(resume(1, one, to, log) == 0, "one process, resumed with a full pool, failed (log %s)", log);
    CHECK(resume(2, two, to, log) == 0, "two processes, resumed with a full pool, failed (log %s)", log);

    /* 1 vs 2 processes: the same draws, the same images in the pool's slots */
    Pair p;
    if (open_pair(&p, path_in("pool-one", "last.h5"), path_in("pool-two", "last.h5"))) return;
    check_same_layout(&p);
    double worst_same = 0, least_other = 1e9;
    int replaced = 0;
    Pair start;
    if (open_pair(&start, full, path_in("pool-one", "last.h5"))) {
        close_pair(&p);
        return;
    }
    for (int s = 1; s <= 3; s++) {
        char name[32];
        snprintf(name, sizeof name, "/train/pool/s%d", s);
        size_t n = 0, k = 0, m = 0;
        float *a = read_floats(p.one, name, &n), *b = read_floats(p.two, name, &k);
        float *was = read_floats(start.one, name, &m);
        size_t per = n / 50;
        for (size_t i = 0; a && b && was && n == k && n == m && i < 50; i++) {
            double same = 0, other = 0;
            const float *x = a + i * per, *y = b + i * per, *z = b + ((i + 1) % 50) * per;
            for (size_t j = 0; j < per; j++) same += fabs(x[j] - y[j]), other += fabs(x[j] - z[j]);
            worst_same = fmax(worst_same, same / per);
            least_other = fmin(least_other, other / per);
            if (s == 1) replaced += memcmp(x, was + i * per, per * sizeof(float)) != 0;
        }
        free(a), free(b), free(was);
    }
    close_pair(&start);
    close_pair(&p);
    /* 12 fakes went by, each swapped in with probability 1/2 */
    CHECK(replaced >= 1 && replaced <= 12, "%d pool slots replaced by 12 fakes", replaced);
    CHECK(least_other > 0.1, "pool images too alike (%.3g) for the check to mean anything", least_other);
    CHECK(worst_same < 0.01, "a pool slot holds different images in the two runs: mean difference "
          "%.3g (distinct images: %.3g)", worst_same, least_other);
    double a[RESUMED_TO + 2][10], b[RESUMED_TO + 2][10], worst = 0;
    int na = read_losses(path_in("pool-one", "losses.csv"), a, RESUMED_TO + 2);
    int nb = read_losses(path_in("pool-two", "losses.csv"), b, RESUMED_TO + 2);
    CHECK(na == RESUMED_TO - 1 && nb == na, "losses.csv rows: %d and %d", na, nb);
    for (int r = 0; r < na && r < nb; r++)
        for (int c = 0; c < 9; c++) /* every column but the seconds */
            worst = fmax(worst, fabs(a[r][c] - b[r][c]) / fmax(fabs(a[r][c]), 1e-6));
    CHECK(worst < 1e-3, "losses differ by %.3g (relative)", worst);
    printf("  full pool, 3 more steps, 1 vs 2 processes: same draws (%d slots replaced), pool\n"
           "  images differ by %.2g on average (distinct ones by %.2g), losses by %.2g\n",
           replaced, worst_same, least_other, worst);

    /* 2 processes, stopped after one step and resumed: bit for bit the same */
    CHECK(resume(2, twice, "--steps 4 --stop-after 1", log) == 0, "stop after one step failed");
    CHECK(resume(2, twice, "", log) == 0, "second resume failed (log %s)", log);
    check_resume_exact(path_in("pool-twice", "last.h5"), path_in("pool-two", "last.h5"),
                       "2 processes, stopped after a step and resumed");
}

/* ---- --learned-f: F and D_A data-parallel too ---------------------------------------- */

static void test_learned_f(void) {
    const char *one = path_in("lf-one", ""), *two = path_in("lf-two", ""),
               *twice = path_in("lf-twice", "");
    char log[1100];
    snprintf(log, sizeof log, "%s.log", two);
    CHECK(train(1, one, "--learned-f --batch 4 --steps 1", NULL) == 0,
          "--learned-f, one process, one step failed");
    int rc = train(2, two, "--learned-f --batch 4 --steps 1", log);
    CHECK(rc == 0, "--learned-f, two processes, one step: exit %d (log %s)", rc, log);
    Pair p;
    if (open_pair(&p, path_in("lf-one", "last.h5"), path_in("lf-two", "last.h5"))) return;
    check_same_layout(&p);
    CHECK(same_int_attr(&p, "/train", "pool_f_count"), "F's pool counts differ");
    double rel[4] = {0, 0, 0, 0};
    int noise = 0;
    const char *nets[4] = {"G", "D", "F", "DA"};
    for (int i = 0; i < 4; i++) check_network_after_one_step(&p, nets[i], &rel[i], &noise);
    double bn = fmax(check_tensors(&p, "/F", "running", 1e-5), check_tensors(&p, "/DA", "running", 1e-5));
    double pool = check_tensors(&p, "/train", "pool_f", 1e-5);
    printf("  --learned-f, one step, 1 vs 2 processes: gradients differ by %.2g (G), %.2g (D),\n"
           "  %.2g (F), %.2g (D_A) of the largest; F's and D_A's BN statistics by %.2g, F's pool\n"
           "  by %.2g\n", rel[0], rel[1], rel[2], rel[3], bn, pool);
    close_pair(&p);

    /* 2 processes, 3 steps: stopped after 2 and resumed, or straight through */
    CHECK(train(2, twice, "--learned-f --batch 4 --steps 3 --stop-after 2", log) == 0,
          "--learned-f, 2 processes, stop after 2 steps failed (log %s)", log);
    CHECK(resume(2, twice, "", log) == 0, "--learned-f, 2 processes, resume failed (log %s)", log);
    const char *through = path_in("lf-through", "");
    CHECK(train(2, through, "--learned-f --batch 4 --steps 3", log) == 0,
          "--learned-f, 2 processes, 3 steps failed (log %s)", log);
    check_resume_exact(path_in("lf-twice", "last.h5"), path_in("lf-through", "last.h5"),
                       "--learned-f, 2 processes, stopped and resumed");
}

/* ---- a batch the processes cannot share ----------------------------------------- */

static void test_uneven_batch(void) {
    char log[1100];
    snprintf(log, sizeof log, "%s/uneven.log", dir);
    int rc = train(2, path_in("uneven", ""), "--batch 3 --steps 1", log);
    char *text = test_read_file(log);
    CHECK(rc == 1, "--batch 3 on 2 processes: exit %d", rc);
    const char *hit = text ? strstr(text, "--batch 3 cannot be shared evenly by 2 processes") : NULL;
    CHECK(hit != NULL, "no message about the uneven batch: %s", text ? text : "");
    CHECK(!hit || !strstr(hit + 1, "--batch 3 cannot"), "the message is repeated by every rank");
    free(text);
}

int main(void) {
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(asan_options, sizeof asan_options, "ASAN_OPTIONS=%s%sfast_unwind_on_malloc=0",
             asan ? asan : "", asan && *asan ? ":" : "");
    dir = test_tmpdir("mpi-train");
    test_one_step();
    test_full_pool();
    test_learned_f();
    test_uneven_batch();
    test_remove_tree(dir);
    return test_summary("test_mpi_train");
}
