#include "pipeline/colorize.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "nn/ops.h"

/* ---- the compute thread ----------------------------------------------------- */

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, quit, threads, keep_luminance;
    const InferModel *model;
    InferWork *work;
    const float *in;
    float *out;
    int x0, y0;     /* the window's raster position */
    InferRect want; /* the tile in the window */
} ComputeThread;

static void *compute_main(void *arg) {
    ComputeThread *c = arg;
    omp_set_num_threads(c->threads);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending && !c->quit) pthread_cond_wait(&c->cv, &c->mu);
        if (c->quit) break;
        pthread_mutex_unlock(&c->mu);
        generator_infer(c->model, c->work, c->in, c->out, c->x0, c->y0, &c->want);
        if (c->keep_luminance) {
            int w = c->work->w, n = c->want.right - c->want.left;
            size_t plane = (size_t)c->work->h * w;
            for (int y = c->want.top; y < c->want.bottom; y++) {
                size_t at = (size_t)y * w + c->want.left;
                luminance_lock_pixels(c->out + at, c->out + at, c->in + at, c->model->cfg.ht, plane,
                                      n);
            }
        }
        pthread_mutex_lock(&c->mu);
        c->pending = 0;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void compute_submit(ComputeThread *c, const float *in, float *out, int x0, int y0,
                           InferRect want) {
    pthread_mutex_lock(&c->mu);
    c->in = in, c->out = out, c->x0 = x0, c->y0 = y0, c->want = want, c->pending = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void compute_wait(ComputeThread *c) {
    pthread_mutex_lock(&c->mu);
    while (c->pending) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* ---- tiles ------------------------------------------------------------------ */

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* Reflection about the edges without repeating them (..., 2, 1, 0, 1, 2, ...). */
static int mirror(long x, int n) {
    if (n == 1) return 0;
    long period = 2L * (n - 1);
    x %= period;
    if (x < 0) x += period;
    return (int)(x < n ? x : period - x);
}

typedef struct {
    int x0, y0, w, h;   /* the output tile, clipped to the raster */
    int win_w, win_h;   /* its window: the tile (sides rounded up to 4) and the halo */
    float *in, *out;    /* the window: gray in [-1,1], rgb from the network */
    uint8_t *valid;     /* validity of the window */
} Slot;

typedef struct {
    int width, height;                 /* the raster */
    int rx, ry, rw, rh;                /* the region colorized */
    int tile_w, tile_h, halo, win_w, win_h; /* win_*: a whole tile's window, the largest */
    int *src_x, *src_y; /* mirror maps of one window */
    float *box_gray;
    uint8_t *box_valid, *pixels;
} Tiling;

/* Fills a slot's window for the tile at (tx, ty). */
static int load_window(Tiling *t, Slot *s, int tx, int ty, TileReader read, void *ctx, char *err,
                       size_t n) {
    s->x0 = tx, s->y0 = ty;
    s->w = t->rx + t->rw - tx < t->tile_w ? t->rx + t->rw - tx : t->tile_w;
    s->h = t->ry + t->rh - ty < t->tile_h ? t->ry + t->rh - ty : t->tile_h;
    /* a partial tile at the raster's edge gets a window of its own size:
     * the network's work follows the window, and its pixels do not */
    s->win_w = round_up(s->w, 4) + 2 * t->halo, s->win_h = round_up(s->h, 4) + 2 * t->halo;
    int bx0 = INT_MAX, bx1 = -1, by0 = INT_MAX, by1 = -1;
    for (int i = 0; i < s->win_w; i++) {
        t->src_x[i] = mirror((long)tx - t->halo + i, t->width);
        if (t->src_x[i] < bx0) bx0 = t->src_x[i];
        if (t->src_x[i] > bx1) bx1 = t->src_x[i];
    }
    for (int j = 0; j < s->win_h; j++) {
        t->src_y[j] = mirror((long)ty - t->halo + j, t->height);
        if (t->src_y[j] < by0) by0 = t->src_y[j];
        if (t->src_y[j] > by1) by1 = t->src_y[j];
    }
    int bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
    if (read(ctx, bx0, by0, bw, bh, t->box_gray, t->box_valid, err, n)) return -1;
    for (int j = 0; j < s->win_h; j++) {
        size_t row = (size_t)(t->src_y[j] - by0) * bw;
        for (int i = 0; i < s->win_w; i++) {
            size_t k = row + (t->src_x[i] - bx0), o = (size_t)j * s->win_w + i;
            s->valid[o] = t->box_valid[k];
            /* no-data enters the network as mid-gray */
            s->in[o] = t->box_valid[k] ? t->box_gray[k] / 127.5f - 1.0f : 0.0f;
        }
    }
    return 0;
}

static int store_window(Tiling *t, const Slot *s, int bands, TileWriter write, void *ctx, char *err,
                        size_t n) {
    size_t plane = (size_t)s->w * s->h, win = (size_t)s->win_w * s->win_h;
    for (int j = 0; j < s->h; j++)
        for (int i = 0; i < s->w; i++) {
            size_t o = (size_t)(j + t->halo) * s->win_w + i + t->halo, p = (size_t)j * s->w + i;
            int ok = s->valid[o];
            for (int c = 0; c < 3; c++) {
                long v = lrintf((s->out[c * win + o] + 1.0f) * 127.5f);
                t->pixels[c * plane + p] = ok ? (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v) : 0;
            }
            if (bands == 4) t->pixels[3 * plane + p] = ok ? 255 : 0;
        }
    return write(ctx, s->x0 - t->rx, s->y0 - t->ry, s->w, s->h, t->pixels, err, n);
}

int colorize_tiles(const InferModel *model, int width, int height, TileReader read, void *read_ctx,
                   TileWriter write, void *write_ctx, const TileOptions *opt, char *err, size_t n) {
    if (opt->tile < 4 || opt->tile % 4) {
        snprintf(err, n, "--tile %d: the tile size must be a positive multiple of 4", opt->tile);
        return -1;
    }
    Network probe; /* the receptive field comes from the unit list */
    if (network_init_generator(&probe, &model->cfg, err, n)) return -1;
    ReceptiveField rf = generator_receptive_field(&probe);
    network_free(&probe);

    Tiling t = {0};
    t.width = width, t.height = height;
    const int *r = opt->region;
    if (r[2] > 0) {
        if (r[0] < 0 || r[1] < 0 || r[0] % 4 || r[1] % 4 || r[3] < 1 || r[0] + r[2] > width ||
            r[1] + r[3] > height) {
            snprintf(err, n, "region %d,%d %dx%d: not inside the %dx%d raster with its corner on "
                             "multiples of 4", r[0], r[1], r[2], r[3], width, height);
            return -1;
        }
        t.rx = r[0], t.ry = r[1], t.rw = r[2], t.rh = r[3];
    } else {
        t.rw = width, t.rh = height;
    }
    /* a tile need not be larger than the region: same pixels, less work */
    t.tile_w = opt->tile < round_up(t.rw, 4) ? opt->tile : round_up(t.rw, 4);
    t.tile_h = opt->tile < round_up(t.rh, 4) ? opt->tile : round_up(t.rh, 4);
    t.halo = rf.halo;
    t.win_w = t.tile_w + 2 * t.halo, t.win_h = t.tile_h + 2 * t.halo;
    size_t win = (size_t)t.win_w * t.win_h;
    int threads = opt->threads > 0 ? opt->threads : omp_get_num_procs();
    omp_set_num_threads(threads);

    Slot slots[2] = {{0}};
    InferWork work = {0};
    t.src_x = malloc(t.win_w * sizeof(int));
    t.src_y = malloc(t.win_h * sizeof(int));
    t.box_gray = malloc(win * sizeof(float));
    t.box_valid = malloc(win);
    t.pixels = malloc((size_t)4 * t.tile_w * t.tile_h);
    int ok = t.src_x && t.src_y && t.box_gray && t.box_valid && t.pixels;
    for (int i = 0; i < 2 && ok; i++) {
        slots[i].in = malloc(win * sizeof(float));
        slots[i].out = malloc(3 * win * sizeof(float));
        slots[i].valid = malloc(win);
        ok = slots[i].in && slots[i].out && slots[i].valid;
    }
    int rc = -1;
    if (!ok) {
        snprintf(err, n, "out of memory for %dx%d tiles", t.tile_w, t.tile_h);
        goto done;
    }
    if (infer_work_init(&work, model, t.win_h, t.win_w, err, n)) goto done;

    ComputeThread c = {.pending = 0, .quit = 0, .threads = threads,
                       .keep_luminance = opt->keep_luminance, .model = model, .work = &work};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    if (pthread_create(&c.thread, NULL, compute_main, &c)) {
        snprintf(err, n, "cannot start the compute thread");
        goto done;
    }
    int cols = (t.rw + t.tile_w - 1) / t.tile_w, rows = (t.rh + t.tile_h - 1) / t.tile_h;
    long total = (long)cols * rows;
    rc = 0;
    /* Pipeline: read tile i while tile i-1 computes; write tile i-1 while i computes. */
    for (long i = 0; i <= total && rc == 0; i++) {
        Slot *cur = &slots[i % 2], *prev = &slots[(i + 1) % 2];
        if (i < total && load_window(&t, cur, t.rx + (int)(i % cols) * t.tile_w,
                                     t.ry + (int)(i / cols) * t.tile_h, read, read_ctx, err, n))
            rc = -1;
        if (i > 0) compute_wait(&c);
        if (rc) break;
        /* the work holds a whole tile's window: a partial tile's fits */
        if (i < total && infer_work_resize(&work, cur->win_h, cur->win_w)) {
            snprintf(err, n, "a %dx%d window does not fit the %dx%d work", cur->win_w, cur->win_h,
                     t.win_w, t.win_h);
            rc = -1;
            break;
        }
        /* interrupted: start no new tile (the check below ends the loop), so
         * the signal waits for one tile, not two */
        if (i < total && !(opt->cancel && *opt->cancel)) { /* the network computes the tile only */
            InferRect tile = {t.halo, t.halo + cur->h, t.halo, t.halo + cur->w};
            compute_submit(&c, cur->in, cur->out, cur->x0 - t.halo, cur->y0 - t.halo, tile);
        }
        if (i > 0) {
            if (store_window(&t, prev, opt->bands, write, write_ctx, err, n)) rc = -1;
            else if (opt->progress && !opt->progress((double)i / total, NULL, opt->progress_arg)) {
                snprintf(err, n, "cancelled");
                rc = -1;
            }
        }
        if (rc == 0 && opt->cancel && *opt->cancel) {
            snprintf(err, n, "interrupted");
            rc = -1;
        }
    }
    compute_wait(&c);
    pthread_mutex_lock(&c.mu);
    c.quit = 1;
    pthread_cond_broadcast(&c.cv);
    pthread_mutex_unlock(&c.mu);
    pthread_join(c.thread, NULL);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
done:
    infer_work_free(&work);
    for (int i = 0; i < 2; i++) free(slots[i].in), free(slots[i].out), free(slots[i].valid);
    free(t.src_x), free(t.src_y), free(t.box_gray), free(t.box_valid), free(t.pixels);
    return rc;
}

/* ---- files --------------------------------------------------------------------- */

static int read_raster(void *ctx, int x0, int y0, int w, int h, float *gray, uint8_t *valid,
                       char *err, size_t n) {
    return gray_source_read(ctx, x0, y0, w, h, gray, valid, err, n);
}

static int write_raster(void *ctx, int x0, int y0, int w, int h, const uint8_t *pixels, char *err,
                        size_t n) {
    return color_writer_write(ctx, x0, y0, w, h, pixels, err, n);
}

/* Progress: the caller's poll, and the bar unless quiet. In the writer's
 * last stages (reprojection, conversion), which have no cancel flag of
 * their own, also the way to stop them when a signal asks for it. */
typedef struct {
    const ColorizeOptions *opt;
    int stages;
} FileProgress;

static int CPL_STDCALL file_progress(double done, const char *msg, void *arg) {
    const FileProgress *fp = arg;
    const ColorizeOptions *opt = fp->opt;
    if (opt->poll) opt->poll(opt->poll_arg);
    if (fp->stages && opt->cancel && *opt->cancel) return FALSE;
    return opt->quiet ? TRUE : GDALTermProgress(done, msg, NULL);
}

/* FNV-1a: a short, stable fingerprint of the model's config. */
static unsigned long long fnv1a(const char *s) {
    unsigned long long h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

const char *default_model_path(void) {
    static char buf[PATH_MAX + 64];
    const char *env = getenv("SPYNCO_MODEL");
    if (env && *env) return env;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        const char *rel[] = {"../models/spynco-default.h5", "../share/spynco/spynco-default.h5"};
        for (int i = 0; i < 2; i++) {
            snprintf(buf, sizeof buf, "%s/%s", exe, rel[i]);
            if (file_exists(buf)) return buf;
        }
    }
    snprintf(buf, sizeof buf, "%s/models/spynco-default.h5", SPYNCO_SOURCE_DIR);
    return file_exists(buf) ? buf : NULL;
}

const char *model_path_or_default(const char *given, char *err, size_t n) {
    const char *path = given ? given : default_model_path();
    if (!path)
        snprintf(err, n, "no model: give --model FILE or set SPYNCO_MODEL "
                         "(the default models/spynco-default.h5 was not found)");
    return path;
}

int colorize_file(const char *input, const char *output, const ColorizeOptions *opt, char *err,
                  size_t n) {
    const char *model_path = model_path_or_default(opt->model_path, err, n);
    if (!model_path) return -1;
    char real_in[PATH_MAX], real_out[PATH_MAX];
    if (realpath(input, real_in) && realpath(output, real_out) && !strcmp(real_in, real_out)) {
        snprintf(err, n, "%s: the output would overwrite the input", output);
        return -1;
    }
    Network g;
    CheckpointMeta meta;
    if (checkpoint_load_model(model_path, &g, NULL, &meta, err, n)) return -1;
    InferModel model;
    int rc = infer_model_init(&model, &g, err, n);
    ModelConfig cfg = g.cfg;
    network_free(&g);
    if (rc) return -1;

    GrayOptions gopt = {.band = opt->band, .has_scale = opt->has_scale,
                        .scale_min = opt->scale_min, .scale_max = opt->scale_max,
                        .verbose = !opt->quiet};
    memcpy(gopt.ht, cfg.ht, sizeof gopt.ht);
    GraySource src;
    if (gray_source_open(&src, input, &gopt, err, n)) {
        infer_model_free(&model);
        return -1;
    }
    char *json = model_config_to_json(&cfg);
    char md[6][256];
    snprintf(md[0], sizeof md[0], "SPYNCO_VERSION=%s", SPYNCO_VERSION);
    snprintf(md[1], sizeof md[1], "SPYNCO_MODEL=%s", cfg.name);
    snprintf(md[2], sizeof md[2], "SPYNCO_MODEL_CONFIG_HASH=%016llx", fnv1a(json));
    snprintf(md[3], sizeof md[3], "SPYNCO_MODEL_CONFIG=%s", json);
    snprintf(md[4], sizeof md[4], "SPYNCO_HT_WEIGHTS=%.6g,%.6g,%.6g", cfg.ht[0], cfg.ht[1], cfg.ht[2]);
    snprintf(md[5], sizeof md[5], "SPYNCO_KEEP_LUMINANCE=%s", opt->keep_luminance ? "YES" : "NO");
    free(json);
    const char *metadata[7] = {md[0], md[1], md[2], md[3], md[4], md[5], NULL};
    int windowed = opt->window[2] > 0;
    WriterOptions wopt = {.format = opt->format, .create_options = opt->create_options,
                          .overviews = opt->overviews, .metadata = metadata,
                          .window = windowed ? opt->window : NULL, .warp = opt->warp,
                          .threads = opt->threads};
    ColorWriter writer;
    if (color_writer_create(&writer, output, &src, &wopt, err, n)) {
        gray_source_close(&src);
        infer_model_free(&model);
        return -1;
    }
    if (!opt->quiet) {
        fprintf(stderr, "colorizing %s (%dx%d) with %s into %s%s\n", input, src.width, src.height,
                model_path, output, writer.bands == 4 ? " (RGBA: alpha marks no-data)" : "");
        if (windowed)
            fprintf(stderr, "only the window %d,%d %dx%d\n", opt->window[0], opt->window[1],
                    opt->window[2], opt->window[3]);
    }
    TileOptions topt = {.tile = opt->tile ? opt->tile : COLORIZE_DEFAULT_TILE,
                        .threads = opt->threads, .bands = writer.bands,
                        .keep_luminance = opt->keep_luminance,
                        .cancel = opt->cancel};
    FileProgress tiles = {opt, 0}, stages = {opt, 1};
    if (!opt->quiet || opt->poll) topt.progress = file_progress, topt.progress_arg = &tiles;
    if (windowed) memcpy(topt.region, opt->window, sizeof topt.region);
    rc = colorize_tiles(&model, src.width, src.height, read_raster, &src, write_raster, &writer,
                        &topt, err, n);
    if (rc == 0) {
        if (!opt->quiet && opt->warp) fprintf(stderr, "reprojecting to %s\n", opt->warp->t_srs);
        rc = color_writer_finish(&writer, file_progress, &stages, err, n);
        if (rc && opt->cancel && *opt->cancel) snprintf(err, n, "interrupted");
    } else {
        color_writer_abort(&writer);
    }
    gray_source_close(&src);
    infer_model_free(&model);
    return rc;
}
