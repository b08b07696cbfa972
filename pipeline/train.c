#include "pipeline/train.h"

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/samples.h"
#include "nn/infer.h"
#include "nn/ops.h"
#include "nn/rng.h"
#include "pipeline/dist.h"
#include "pipeline/train_learned_f.h"
#include "pipeline/train_report.h"

TrainOptions train_options_default(void) {
    TrainOptions o;
    memset(&o, 0, sizeof o);
    o.model = model_config_default();
    o.crop = 256;
    o.batch = 4;
    o.epochs = 10;
    o.lambdas = loss_weights_default();
    o.lr = 2e-4f, o.beta1 = 0.5f, o.beta2 = 0.999f;
    o.seed = 1;
    o.checkpoint_every = 500;
    return o;
}

/* ---- the training state ------------------------------------------------------ */

typedef struct {
    Network g, d;
    float *g_m, *g_v, *d_m, *d_v; /* Adam moments, laid out like the params blocks */
    long step;                    /* steps done */
    Rng rng;
    int pool_count;
    float *pool[3];               /* HISTORY_POOL_SIZE images per scale, [3, h>>s, w>>s] */
    LearnedF *lf;                 /* --learned-f: F, D_A and their state; NULL otherwise */
} TrainState;

static void state_free(TrainState *st) {
    network_free(&st->g);
    network_free(&st->d);
    free(st->g_m), free(st->g_v), free(st->d_m), free(st->d_v);
    for (int s = 0; s < 3; s++) free(st->pool[s]);
    learned_f_destroy(st->lf);
    memset(st, 0, sizeof *st);
}

static size_t pool_image_floats(int crop, int s) { return (size_t)3 * (crop >> s) * (crop >> s); }

/* Allocates moments and pool for networks already in st. */
static int state_alloc(TrainState *st, int crop) {
    st->g_m = calloc(st->g.params.capacity, sizeof(float));
    st->g_v = calloc(st->g.params.capacity, sizeof(float));
    st->d_m = calloc(st->d.params.capacity, sizeof(float));
    st->d_v = calloc(st->d.params.capacity, sizeof(float));
    int ok = st->g_m && st->g_v && st->d_m && st->d_v;
    for (int s = 0; s < 3 && ok; s++)
        ok = (st->pool[s] = malloc(HISTORY_POOL_SIZE * pool_image_floats(crop, s) * sizeof(float))) != NULL;
    return ok ? 0 : -1;
}

/* ---- options as JSON (stored in checkpoints, so a resume trains the same run) ---- */

static cJSON *string_array(const char *const *items, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

static char *options_to_json(const TrainOptions *o, long steps_per_epoch) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "gray", string_array(o->gray, o->num_gray));
    cJSON_AddItemToObject(j, "color", string_array(o->color, o->num_color));
    cJSON_AddBoolToObject(j, "gray_from_color", o->gray_from_color);
    cJSON *bands = cJSON_AddArrayToObject(j, "color_bands");
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(bands, cJSON_CreateNumber(o->color_bands[i]));
    cJSON_AddNumberToObject(j, "crop", o->crop);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddNumberToObject(j, "steps_per_epoch", (double)steps_per_epoch);
    cJSON_AddNumberToObject(j, "lambda_a", o->lambdas.lambda_a);
    cJSON_AddNumberToObject(j, "lambda_b", o->lambdas.lambda_b);
    cJSON_AddNumberToObject(j, "lambda_c", o->lambdas.lambda_c);
    cJSON_AddBoolToObject(j, "luminance_lock", o->lambdas.luminance_lock);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", o->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "checkpoint_every", o->checkpoint_every);
    cJSON_AddBoolToObject(j, "keep_epochs", o->keep_epochs);
    cJSON_AddBoolToObject(j, "learned_f", o->learned_f);
    /* where the weights came from, as given (null: a fresh start) */
    if (o->init_from) cJSON_AddStringToObject(j, "init", o->init_from);
    else cJSON_AddNullToObject(j, "init");
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

/* Strings of a restored option set live in one allocation owned by the caller. */
typedef struct {
    char *strings[2 * TRAIN_MAX_SOURCES + 1]; /* gray, color, init */
    int count;
} StringPool;

static void string_pool_free(StringPool *p) {
    for (int i = 0; i < p->count; i++) free(p->strings[i]);
    p->count = 0;
}

static int json_number(const cJSON *j, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

static int options_from_json(TrainOptions *o, long *steps_per_epoch, const char *text,
                             StringPool *strings) {
    cJSON *j = cJSON_Parse(text);
    int rc = -1;
    enum { NUMBERS = 11 };
    double v[NUMBERS];
    const char *keys[NUMBERS] = {"crop", "batch", "steps", "steps_per_epoch", "lambda_a", "lambda_b",
                                 "lambda_c", "lr", "beta1", "beta2", "checkpoint_every"};
    if (!cJSON_IsObject(j)) goto done;
    for (int i = 0; i < NUMBERS; i++)
        if (json_number(j, keys[i], &v[i])) goto done;
    const char *lists[2] = {"gray", "color"};
    for (int l = 0; l < 2; l++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, lists[l]), *item;
        int n = 0;
        if (!cJSON_IsArray(a)) goto done;
        cJSON_ArrayForEach(item, a) {
            if (!cJSON_IsString(item) || n >= TRAIN_MAX_SOURCES) goto done;
            char *s = strdup(item->valuestring);
            strings->strings[strings->count++] = s;
            if (l == 0) o->gray[n++] = s; else o->color[n++] = s;
        }
        if (l == 0) o->num_gray = n; else o->num_color = n;
    }
    const cJSON *bands = cJSON_GetObjectItemCaseSensitive(j, "color_bands");
    for (int i = 0; i < 3; i++) {
        const cJSON *b = cJSON_GetArrayItem(bands, i);
        if (!cJSON_IsNumber(b)) goto done;
        o->color_bands[i] = b->valueint;
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (!cJSON_IsString(seed)) goto done;
    o->seed = strtoull(seed->valuestring, NULL, 10);
    o->gray_from_color = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "gray_from_color"));
    o->keep_epochs = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "keep_epochs"));
    o->learned_f = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "learned_f"));
    /* kept so that the resumed run's checkpoints still say it (absent before the option) */
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(j, "init");
    o->init_from = NULL;
    if (cJSON_IsString(init)) o->init_from = strings->strings[strings->count++] = strdup(init->valuestring);
    o->crop = (int)v[0], o->batch = (int)v[1], o->steps = (long)v[2];
    *steps_per_epoch = (long)v[3];
    /* absent in checkpoints from before the option: off */
    int lock = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "luminance_lock"));
    o->lambdas = (LossWeights){(float)v[4], (float)v[5], (float)v[6], lock};
    o->lr = (float)v[7], o->beta1 = (float)v[8], o->beta2 = (float)v[9];
    o->checkpoint_every = (int)v[10];
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

/* ---- checkpoints ---------------------------------------------------------------- */

static int save_checkpoint(const char *path, const TrainState *st, const TrainOptions *o,
                           long steps_per_epoch, char *err, size_t n) {
    H5Writer *w = h5w_open(path, err, n);
    if (!w) return -1;
    CheckpointMeta meta = {st->step / steps_per_epoch, st->step};
    checkpoint_write_model(w, &st->g, &st->d, &meta);
    checkpoint_write_moments(w, &st->g, "G", st->g_m, st->g_v);
    checkpoint_write_moments(w, &st->d, "D", st->d_m, st->d_v);
    h5w_attr_int(w, "/opt", "adam_step", st->step);
    int rng_shape[1] = {4};
    h5w_dataset(w, "/train/rng", H5IO_UINT64, 1, rng_shape, st->rng.s);
    for (int s = 0; s < 3 && st->pool_count > 0; s++) {
        char name[32];
        snprintf(name, sizeof name, "/train/pool/s%d", s + 1);
        int shape[4] = {st->pool_count, 3, o->crop >> s, o->crop >> s};
        h5w_dataset(w, name, H5IO_FLOAT32, 4, shape, st->pool[s]);
    }
    h5w_attr_int(w, "/train", "pool_count", st->pool_count);
    if (st->lf) learned_f_write(w, st->lf);
    char *json = options_to_json(o, steps_per_epoch);
    h5w_attr_string(w, "/train", "options", json);
    free(json);
    /* Testing aid: widen the window in which a kill hits an unfinished write. */
    const char *delay = getenv("SPYNCO_CHECKPOINT_DELAY_MS");
    if (delay) {
        long ms = atol(delay);
        struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    return h5w_commit(w);
}

/* Restores a training checkpoint; o receives the stored options (strings in sp). */
static int load_checkpoint(const char *path, TrainState *st, TrainOptions *o, long *steps_per_epoch,
                           StringPool *sp, char *err, size_t n) {
    H5Reader *r = h5r_open(path, err, n);
    if (!r) return -1;
    CheckpointMeta meta;
    char *json = NULL;
    long long pool_count = 0, adam_step = 0;
    int rc = -1;
    if (checkpoint_read_model(r, &st->g, &st->d, &meta)) goto done;
    if (!h5r_exists(r, "/train") || !h5r_exists(r, "/opt")) {
        h5r_fail(r, "it holds no training state (a released model?): cannot resume from it");
        goto done;
    }
    if (h5r_attr_string(r, "/train", "options", &json) ||
        h5r_attr_int(r, "/train", "pool_count", &pool_count) ||
        h5r_attr_int(r, "/opt", "adam_step", &adam_step))
        goto done;
    if (options_from_json(o, steps_per_epoch, json, sp)) {
        h5r_fail(r, "/train options attribute is not valid training options JSON");
        goto done;
    }
    o->model = st->g.cfg;
    if (state_alloc(st, o->crop)) {
        h5r_fail(r, "out of memory restoring the training state");
        goto done;
    }
    if (checkpoint_read_moments(r, &st->g, "G", st->g_m, st->g_v) ||
        checkpoint_read_moments(r, &st->d, "D", st->d_m, st->d_v))
        goto done;
    int rng_shape[1] = {4};
    if (h5r_read(r, "/train/rng", H5IO_UINT64, 1, rng_shape, st->rng.s)) goto done;
    st->pool_count = (int)pool_count;
    for (int s = 0; s < 3 && pool_count > 0; s++) {
        char name[32];
        snprintf(name, sizeof name, "/train/pool/s%d", s + 1);
        int shape[4] = {st->pool_count, 3, o->crop >> s, o->crop >> s};
        if (h5r_read(r, name, H5IO_FLOAT32, 4, shape, st->pool[s])) goto done;
    }
    if (o->learned_f && !(st->lf = learned_f_read(r, &st->g.cfg, o->crop, o->batch))) goto done;
    st->step = meta.step;
    if (adam_step != meta.step) {
        h5r_fail(r, "inconsistent: Adam step %lld, checkpoint step %ld", adam_step, meta.step);
        goto done;
    }
    rc = 0;
done:
    free(json);
    h5r_close(r);
    if (rc) state_free(st);
    return rc;
}

int export_model(const char *checkpoint, const char *model_path, char *err, size_t n) {
    Network g;
    CheckpointMeta meta;
    if (checkpoint_load_model(checkpoint, &g, NULL, &meta, err, n)) return -1;
    int rc = checkpoint_save_model(model_path, &g, NULL, &meta, err, n);
    network_free(&g);
    return rc;
}

/* ---- the loop -------------------------------------------------------------------- */

/* CycleGAN's ImagePool, one entry holding all three scales of an image: while
 * not full, store and return the new image; then, with probability 1/2,
 * return a random stored image and keep the new one in its place. The
 * count images of the step (the whole batch) pass in order, from in to out. */
static void pool_query(TrainState *st, int crop, float *const out[3], const float *const in[3],
                       int count) {
    for (int i = 0; i < count; i++) {
        int slot = -1, swap = 0;
        if (st->pool_count < HISTORY_POOL_SIZE) {
            slot = st->pool_count++;
        } else if (rng_uniform(&st->rng) > 0.5) {
            slot = (int)rng_below(&st->rng, HISTORY_POOL_SIZE);
            swap = 1;
        }
        for (int s = 0; s < 3; s++) {
            size_t sz = pool_image_floats(crop, s);
            const float *img = in[s] + i * sz;
            float *dst = out[s] + i * sz;
            if (slot < 0) {
                memcpy(dst, img, sz * sizeof(float));
            } else if (!swap) {
                memcpy(st->pool[s] + slot * sz, img, sz * sizeof(float));
                memcpy(dst, img, sz * sizeof(float));
            } else {
                memcpy(dst, st->pool[s] + slot * sz, sz * sizeof(float));
                memcpy(st->pool[s] + slot * sz, img, sz * sizeof(float));
            }
        }
    }
}

/* ---- several processes (pipeline/dist.h) --------------------------------------- */

static void sum_over_ranks(double *values, int count, void *ctx) {
    (void)ctx;
    dist_sum_doubles(values, (size_t)count);
}
static const BnSync RANKS_BN_SYNC = {sum_over_ranks, NULL};

/* Each rank's gradients are the means over its slice; equal slices make
 * their average the gradient of the mean over the whole batch. */
static void average_gradients(Network *net, int ranks) {
    if (ranks == 1) return;
    float *grad = net->grads.base;
    dist_sum_floats(grad, net->grads.capacity);
    for (size_t i = 0; i < net->grads.capacity; i++) grad[i] /= (float)ranks;
}

static void average_losses(GanLosses *L, int ranks) {
    if (ranks == 1) return;
    double v[12];
    for (int s = 0; s < 3; s++) v[s] = L->cons_a[s], v[3 + s] = L->cons_b[s], v[6 + s] = L->gan[s];
    v[9] = L->contours, v[10] = L->total_g, v[11] = L->total_d;
    dist_sum_doubles(v, 12);
    for (int s = 0; s < 3; s++)
        L->cons_a[s] = v[s] / ranks, L->cons_b[s] = v[3 + s] / ranks, L->gan[s] = v[6 + s] / ranks;
    L->contours = v[9] / ranks, L->total_g = v[10] / ranks, L->total_d = v[11] / ranks;
}

/* Averaged gradients and the same draws keep every rank's copy of the state
 * identical; checked (by hashes) before each checkpoint rank 0 writes. */
static int replicas_identical(const TrainState *st, int crop) {
    int same = dist_same_everywhere(st->g.params.base, st->g.params.capacity * sizeof(float));
    same &= dist_same_everywhere(st->g.buffers.base, st->g.buffers.capacity * sizeof(float));
    same &= dist_same_everywhere(st->d.params.base, st->d.params.capacity * sizeof(float));
    same &= dist_same_everywhere(st->d.buffers.base, st->d.buffers.capacity * sizeof(float));
    same &= dist_same_everywhere(st->rng.s, sizeof st->rng.s);
    for (int s = 0; s < 3; s++)
        same &= dist_same_everywhere(st->pool[s],
                                     st->pool_count * pool_image_floats(crop, s) * sizeof(float));
    if (st->lf) same &= learned_f_replicas_identical(st->lf);
    return same;
}

static float lr_at(const TrainOptions *o, long step) {
    long half = o->steps / 2;
    if (step < half) return o->lr;
    return o->lr * (float)(o->steps - step) / (float)(o->steps - half);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int make_dir(const char *dir, char *err, size_t n) {
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
    }
    snprintf(err, n, "%s: cannot create the output folder (%s)", dir, strerror(errno));
    return -1;
}

/* A run killed while writing leaves its temporary files ("last.h5.tmp-PID",
 * see h5io.h, ".losses.csv.tmp-PID"); the next run in the folder removes them. */
static void remove_stale_temporaries(const char *dir, int quiet) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4200];
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".tmp-")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0 && !quiet)
            fprintf(stderr, "removed %s, left by an interrupted run\n", path);
    }
    if (d) closedir(d);
}

static void format_duration(char *buf, size_t n, double seconds) {
    if (seconds < 0 || !isfinite(seconds)) snprintf(buf, n, "?");
    else if (seconds < 120) snprintf(buf, n, "%.0fs", seconds);
    else if (seconds < 7200) snprintf(buf, n, "%.0fm", seconds / 60);
    else snprintf(buf, n, "%.1fh", seconds / 3600);
}

/* A new run starting from the weights of a checkpoint or release model
 * (fine-tuning): G (and D when the file has one; otherwise a fresh D) with
 * their BatchNorm statistics; the architecture and H_t come from the file,
 * the objective (scales, lambdas) and everything else from the options.
 * Adam, the step count and the history pool start afresh. */
static int init_from_checkpoint(TrainState *st, TrainOptions *o, char *err, size_t n) {
    ModelConfig file_cfg;
    if (checkpoint_read_config(o->init_from, &file_cfg, NULL, err, n)) return -1;
    H5Reader *r = h5r_open(o->init_from, err, n);
    if (!r) return -1;
    int has_d = h5r_exists(r, "/D");
    int rc = checkpoint_read_model(r, &st->g, has_d ? &st->d : NULL, NULL);
    h5r_close(r);
    if (rc) return -1;
    int scales = o->model.num_scales, list[MODEL_MAX_SCALES];
    memcpy(list, o->model.scales, sizeof list);
    o->model = file_cfg;
    o->model.num_scales = scales;
    memcpy(o->model.scales, list, sizeof list);
    st->g.cfg = o->model;
    if (has_d) {
        st->d.cfg = o->model;
    } else {
        if (network_init_discriminator(&st->d, &o->model, err, n)) return -1;
        network_init_weights(&st->d, o->seed * 2 + 2);
    }
    if (!o->quiet)
        fprintf(stderr, "starting from the weights of %s (G%s)\n", o->init_from,
                has_d ? " and D" : "; D fresh");
    return 0;
}

int train_run(const TrainOptions *opt_in, const char *out_dir, int resume, char *err, size_t n) {
    TrainOptions o = *opt_in;
    TrainState st;
    memset(&st, 0, sizeof st);
    StringPool sp = {{0}, 0};
    SampleSet *gray_set = NULL, *color_set = NULL;
    GanWorkspace ws;
    memset(&ws, 0, sizeof ws);
    TrainPreview preview;
    memset(&preview, 0, sizeof preview);
    float *a = NULL, *b = NULL, *fakes[3] = {NULL, NULL, NULL}, *pooled[3] = {NULL, NULL, NULL};
    FILE *csv = NULL;
    int rc = -1;
    long steps_per_epoch = 0;
    char last[4096];
    snprintf(last, sizeof last, "%s/last.h5", out_dir);
    /* Several ranks: each runs this same function on its slice of every batch;
     * rank 0 alone writes files and talks. */
    int rank = dist_rank(), ranks = dist_size();
    int local = 0, first = 0; /* this rank's slice of each batch */
    if (rank != 0) o.quiet = 1;
    if (o.threads > 0) omp_set_num_threads(o.threads);
    if (rank == 0) {
        if (make_dir(out_dir, err, n)) goto setup_end;
        remove_stale_temporaries(out_dir, o.quiet);
    }

    if (resume) {
        if (access(last, F_OK) != 0) {
            snprintf(err, n, "%s: nothing to resume (no last.h5 there)", out_dir);
            goto setup_end;
        }
        TrainOptions stored = o;
        if (load_checkpoint(last, &st, &stored, &steps_per_epoch, &sp, err, n)) goto setup_end;
        /* the run's identity comes from the checkpoint; a new total may be asked for */
        long total = o.steps ? o.steps : o.epochs ? o.epochs * steps_per_epoch : stored.steps;
        stored.threads = o.threads, stored.quiet = o.quiet, stored.stop = o.stop;
        stored.stop_after = o.stop_after;
        o = stored;
        o.steps = total;
        if (!o.quiet)
            fprintf(stderr, "resuming %s at step %ld of %ld\n", last, st.step, o.steps);
    }
    char cfg_err[160];
    if (model_config_check(&o.model, cfg_err, sizeof cfg_err)) {
        snprintf(err, n, "model config: %s", cfg_err);
        goto setup_end;
    }
    if (o.crop % 4 || o.crop < 96) {
        snprintf(err, n, "--crop %d: must be a multiple of 4 and at least 96 (the discriminator "
                         "needs 24 pixels at the smallest scale)", o.crop);
        goto setup_end;
    }
    if (o.batch < 1) {
        snprintf(err, n, "--batch must be at least 1");
        goto setup_end;
    }
    if (o.batch % ranks) {
        snprintf(err, n, "--batch %d cannot be shared evenly by %d processes: the batch is the "
                         "whole step's, split over the processes; make it a multiple of %d",
                 o.batch, ranks, ranks);
        goto setup_end;
    }
    if (o.learned_f && (o.lambdas.lambda_c > 0 || o.lambdas.luminance_lock)) {
        snprintf(err, n, "%s works through H_t, which --learned-f replaces: use one of them",
                 o.lambdas.lambda_c > 0 ? "--contours" : "--keep-luminance");
        goto setup_end;
    }
    if (o.num_gray < 1 || o.num_color < 1) {
        snprintf(err, n, "training needs --gray and --color sources");
        goto setup_end;
    }
    SampleSetOptions gopt = {.domain = DOMAIN_GRAY, .gray_from_color = o.gray_from_color,
                             .crop = o.crop, .verbose = !o.quiet};
    SampleSetOptions copt = {.domain = DOMAIN_COLOR, .crop = o.crop, .verbose = !o.quiet};
    memcpy(gopt.ht, o.model.ht, sizeof gopt.ht);
    memcpy(copt.ht, o.model.ht, sizeof copt.ht);
    memcpy(copt.band_map, o.color_bands, sizeof copt.band_map);
    if (!(gray_set = sample_set_open(o.gray, o.num_gray, &gopt, err, n))) goto setup_end;
    if (!(color_set = sample_set_open(o.color, o.num_color, &copt, err, n))) goto setup_end;
    if (!resume) {
        int larger = sample_set_count(gray_set) > sample_set_count(color_set)
                         ? sample_set_count(gray_set) : sample_set_count(color_set);
        steps_per_epoch = (larger + o.batch - 1) / o.batch;
        if (!o.steps) o.steps = (long)o.epochs * steps_per_epoch;
        if (o.init_from) {
            if (init_from_checkpoint(&st, &o, err, n)) goto setup_end;
        } else {
            if (network_init_generator(&st.g, &o.model, err, n) ||
                network_init_discriminator(&st.d, &o.model, err, n))
                goto setup_end;
            network_init_weights(&st.g, o.seed * 2 + 1);
            network_init_weights(&st.d, o.seed * 2 + 2);
        }
        rng_seed(&st.rng, o.seed);
        if (o.learned_f && !(st.lf = learned_f_create(&o.model, o.seed, o.crop, o.batch, err, n)))
            goto setup_end;
        if (state_alloc(&st, o.crop)) {
            snprintf(err, n, "out of memory for the training state");
            goto setup_end;
        }
    }
    if (o.steps < 1) {
        snprintf(err, n, "nothing to train: the run's total is %ld steps", o.steps);
        goto setup_end;
    }
    local = o.batch / ranks, first = rank * local;
    if (gan_workspace_init(&ws, &st.g, &st.d, local, o.crop, o.crop, err, n)) goto setup_end;
    if (ranks > 1) gan_workspace_sync_batchnorm(&ws, &RANKS_BN_SYNC);
    if (ranks > 1 && st.lf) cycle_workspace_sync_batchnorm(&st.lf->cw, &RANKS_BN_SYNC);
    size_t img = (size_t)o.crop * o.crop;
    a = malloc((size_t)local * img * sizeof(float));
    b = malloc((size_t)local * 3 * img * sizeof(float));
    int buffers_ok = a && b;
    for (int s = 0; s < 3; s++) { /* the whole batch's fakes, before and after the pool */
        fakes[s] = malloc((size_t)o.batch * pool_image_floats(o.crop, s) * sizeof(float));
        pooled[s] = malloc((size_t)o.batch * pool_image_floats(o.crop, s) * sizeof(float));
        buffers_ok = buffers_ok && fakes[s] && pooled[s];
    }
    if (!buffers_ok) {
        snprintf(err, n, "out of memory for the batches");
        goto setup_end;
    }
    if (rank == 0 && (train_report_open(&csv, out_dir, st.step, o.learned_f, err, n) ||
                      train_preview_init(&preview, color_set, o.crop, o.model.ht, o.seed, err, n)))
        goto setup_end;
    rc = 0;
setup_end:
    if (dist_agree(rc, err, n)) {
        rc = -1;
        goto done;
    }

    if (!o.quiet) {
        char procs[64] = "";
        if (ranks > 1) snprintf(procs, sizeof procs, " (%d on each of %d processes)", local, ranks);
        fprintf(stderr, "training %s (G %zu, D %zu parameters) on %d gray / %d color images, crop %d, "
                        "batch %d%s, %ld steps (%ld per epoch), %d threads\n",
                o.model.name, st.g.num_params, st.d.num_params, sample_set_count(gray_set),
                sample_set_count(color_set), o.crop, o.batch, procs, o.steps, steps_per_epoch,
                omp_get_max_threads());
    }
    if (!o.quiet && st.lf)
        fprintf(stderr, "learned F in place of H_t (CycleGAN objective): F %zu, D_A %zu parameters; "
                        "D above is D_B\n", st.lf->f.num_params, st.lf->da.num_params);
    AdamConfig adam = {o.lr, o.beta1, o.beta2, 1e-8f};
    double t_start = now(), t_report = t_start;
    long start_step = st.step, session_steps = 0;
    GanLosses L;
    memset(&L, 0, sizeof L);
    while (st.step < o.steps) {
        /* every rank draws the whole batch (the same random numbers) and loads its slice */
        int failed = sample_batch_part(gray_set, &st.rng, o.batch, first, local, a, err, n) ||
                     sample_batch_part(color_set, &st.rng, o.batch, first, local, b, err, n);
        if (dist_agree(failed, err, n)) {
            rc = -1;
            break;
        }
        adam.lr = lr_at(&o, st.step);
        if (st.lf)
            learned_f_generator_step(st.lf, &ws, &st.g, &st.d, a, b, &o.lambdas, &L);
        else
            gan_generator_step(&ws, &st.g, &st.d, a, b, &o.lambdas, &L);
        average_gradients(&st.g, ranks);
        adam_update(st.g.params.base, st.g_m, st.g_v, st.g.grads.base, st.g.params.capacity, &adam,
                    st.step + 1);
        /* the pool sees the whole batch's fakes in order, the same on every rank */
        for (int s = 0; s < 3; s++)
            dist_allgather_floats(fakes[s], ws.fake[s], (size_t)local * pool_image_floats(o.crop, s));
        pool_query(&st, o.crop, pooled, (const float *const *)fakes, o.batch);
        const float *my_pooled[3];
        for (int s = 0; s < 3; s++) my_pooled[s] = pooled[s] + (size_t)first * pool_image_floats(o.crop, s);
        gan_discriminator_step(&ws, &st.d, b, my_pooled, &L);
        average_gradients(&st.d, ranks);
        adam_update(st.d.params.base, st.d_m, st.d_v, st.d.grads.base, st.d.params.capacity, &adam,
                    st.step + 1);
        if (st.lf) learned_f_finish_step(st.lf, a, &st.rng, &adam, st.step + 1, &L);
        average_losses(&L, ranks);
        st.step++, session_steps++;
        double t = now();
        if (csv) train_report_losses(csv, st.step, st.step / steps_per_epoch, adam.lr, &L, t - t_start);
        int epoch_end = st.step % steps_per_epoch == 0;
        int stopping = dist_max_int(o.stop && *o.stop) || (o.stop_after && session_steps >= o.stop_after);
        if (!o.quiet && (t - t_report > 1.0 || st.step == o.steps || epoch_end || stopping)) {
            double rate = (st.step - start_step) / (t - t_start);
            char eta[32];
            format_duration(eta, sizeof eta, (o.steps - st.step) / rate);
            fprintf(stderr, "\repoch %ld step %ld/%ld | G %.3f (A %.3f B %.3f gan %.3f) D %.3f | "
                            "%.2f steps/s | ETA %s   ",
                    st.step / steps_per_epoch + (epoch_end ? 0 : 1), st.step, o.steps, L.total_g,
                    L.cons_a[0] + L.cons_a[1] + L.cons_a[2], L.cons_b[0] + L.cons_b[1] + L.cons_b[2],
                    L.gan[0] + L.gan[1] + L.gan[2], L.total_d, rate, eta);
            if (epoch_end || st.step == o.steps || stopping) fputc('\n', stderr);
            t_report = t;
        }
        int save = st.step % o.checkpoint_every == 0 || st.step == o.steps || epoch_end || stopping;
        int io = 0; /* rank 0's files; the other ranks learn of a failure below */
        if (save && !replicas_identical(&st, o.crop)) {
            snprintf(err, n, "step %ld: the processes' copies of the model differ, which averaged "
                             "gradients should rule out (is the MPI reduction not reproducible?)",
                     st.step);
            io = -1;
        }
        if (rank == 0 && !io && save) io = save_checkpoint(last, &st, &o, steps_per_epoch, err, n);
        if (rank == 0 && !io && epoch_end) {
            long epoch = st.step / steps_per_epoch;
            char path[4200];
            snprintf(path, sizeof path, "%s/epoch_%04ld.h5", out_dir, epoch);
            fflush(csv);
            if ((o.keep_epochs && save_checkpoint(path, &st, &o, steps_per_epoch, err, n)) ||
                train_preview_write(&preview, &st.g, out_dir, epoch, err, n) ||
                train_report_plot(out_dir, err, n))
                io = -1;
        }
        if (dist_agree(io, err, n)) {
            rc = -1;
            break;
        }
        if (stopping && st.step < o.steps) {
            if (!o.quiet)
                fprintf(stderr, "stopped at step %ld; continue with --resume\n", st.step);
            rc = 1;
            break;
        }
    }
    if (rc >= 0) {
        int io = 0;
        if (rank == 0) {
            fflush(csv);
            io = train_report_plot(out_dir, err, n);
        }
        if (dist_agree(io, err, n)) rc = -1;
    }
done:
    train_preview_free(&preview);
    if (csv) fclose(csv);
    gan_workspace_free(&ws);
    free(a), free(b);
    for (int s = 0; s < 3; s++) free(fakes[s]), free(pooled[s]);
    if (gray_set) sample_set_close(gray_set);
    if (color_set) sample_set_close(color_set);
    state_free(&st);
    string_pool_free(&sp);
    return rc;
}
