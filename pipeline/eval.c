#include "pipeline/eval.h"

#include <cjson/cJSON.h>
#include <cpl_conv.h>
#include <cpl_error.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/raster.h"
#include "io/sources.h"
#include "pipeline/colorize.h"
#include "pipeline/dist.h"
#include "pipeline/metrics.h"

#define STRIP_PIXELS (1 << 20) /* images are read this many pixels at a time */

/* ---- the list of images ------------------------------------------------------- */

typedef enum { IMAGE_PENDING, IMAGE_DONE, IMAGE_FAILED, IMAGE_SKIPPED } ImageStatus;

typedef struct {
    char *path;
    int named;
    ImageStatus status;
    int width, height;
    ImageScores model, baseline; /* ssim as a fraction */
    double seconds;
    char *message;               /* why it failed or was passed over */
} ImageRecord;

typedef struct {
    ImageRecord *items;
    int count, cap;
} ImageList;

static int list_add(void *ctx, const char *path, int named, char *err, size_t n) {
    ImageList *l = ctx;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        ImageRecord *p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            snprintf(err, n, "out of memory listing images");
            return -1;
        }
        l->items = p, l->cap = cap;
    }
    ImageRecord r = {.path = strdup(path), .named = named};
    if (!r.path) {
        snprintf(err, n, "out of memory listing images");
        return -1;
    }
    l->items[l->count++] = r;
    return 0;
}

static void list_free(ImageList *l) {
    for (int i = 0; i < l->count; i++) free(l->items[i].path), free(l->items[i].message);
    free(l->items);
}

/* ---- one image ------------------------------------------------------------------ */

typedef struct {
    const EvalOptions *opt;
    const InferModel *model;
    ImageList list;
    int index;                     /* the image being evaluated */
    DistQueue *serve;              /* rank 0 of several: answer the queue between tiles */
    /* one image's planes, grown as needed */
    uint8_t *real, *valid, *gray, *color, *triptych;
    size_t cap_pixels;
} Eval;

static int grow_buffers(Eval *e, size_t pixels) {
    if (pixels <= e->cap_pixels) return 0;
    free(e->real), free(e->valid), free(e->gray), free(e->color), free(e->triptych);
    e->real = malloc(3 * pixels);
    e->valid = malloc(pixels);
    e->gray = malloc(pixels);
    e->color = malloc(3 * pixels);
    e->triptych = e->opt->samples_dir ? malloc(9 * pixels) : NULL;
    int ok = e->real && e->valid && e->gray && e->color && (e->triptych || !e->opt->samples_dir);
    e->cap_pixels = ok ? pixels : 0;
    return ok ? 0 : -1;
}

/* The gray image in memory as colorize_tiles reads it, and where its tiles go. */
typedef struct {
    int width, height;
    const uint8_t *gray, *valid;
    uint8_t *color; /* 3 planes */
} MemoryImage;

static int read_gray(void *ctx, int x0, int y0, int w, int h, float *gray, uint8_t *valid,
                     char *err, size_t n) {
    (void)err, (void)n;
    const MemoryImage *m = ctx;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            size_t src = (size_t)(y0 + j) * m->width + x0 + i, dst = (size_t)j * w + i;
            gray[dst] = m->gray[src];
            valid[dst] = m->valid[src];
        }
    return 0;
}

static int write_color(void *ctx, int x0, int y0, int w, int h, const uint8_t *pixels, char *err,
                       size_t n) {
    (void)err, (void)n;
    const MemoryImage *m = ctx;
    size_t plane = (size_t)m->width * m->height, tile = (size_t)w * h;
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < h; j++)
            memcpy(m->color + c * plane + (size_t)(y0 + j) * m->width + x0,
                   pixels + c * tile + (size_t)j * w, (size_t)w);
    return 0;
}

/* Progress of one image's tiles as a share of the whole set. */
typedef struct {
    const EvalOptions *opt;
    int index, count;
    DistQueue *serve;
} SetProgress;

static int CPL_STDCALL image_progress(double done, const char *msg, void *arg) {
    const SetProgress *p = arg;
    if (p->serve) dist_queue_poll(p->serve);
    if (!p->opt->progress) return TRUE;
    return p->opt->progress((p->index + done) / p->count, msg, p->opt->progress_arg);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* "DIR/.NAME.tmp-PID": a temporary file beside path, renamed over it when complete. */
static char *temp_beside(const char *path) {
    char *copy1 = strdup(path), *copy2 = strdup(path), *out = NULL;
    if (copy1 && copy2) {
        const char *dir = dirname(copy1), *base = basename(copy2);
        size_t len = strlen(dir) + strlen(base) + 32;
        if ((out = malloc(len))) snprintf(out, len, "%s/.%s.tmp-%ld", dir, base, (long)getpid());
    }
    free(copy1), free(copy2);
    return out;
}

/* The triptych gray | colorized | real as a PNG in the samples folder. */
static int write_triptych(Eval *e, const ImageRecord *r, char *err, size_t n) {
    int w = r->width, h = r->height, W = 3 * w;
    size_t plane = (size_t)w * h, big = (size_t)W * h;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++) {
            uint8_t *row = e->triptych + c * big + (size_t)y * W;
            memcpy(row, e->gray + (size_t)y * w, w);
            memcpy(row + w, e->color + c * plane + (size_t)y * w, w);
            memcpy(row + 2 * w, e->real + c * plane + (size_t)y * w, w);
        }
    char *copy = strdup(r->path), *name = copy ? basename(copy) : NULL;
    char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && dot != name) *dot = 0;
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%04d_%s.png", e->opt->samples_dir, e->index + 1,
             name ? name : "image");
    free(copy);
    char *tmp = temp_beside(path);
    if (!tmp) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    CPLErrorReset();
    GDALDatasetH mem = GDALCreate(GDALGetDriverByName("MEM"), "", W, h, 3, GDT_Byte, NULL);
    int bad = !mem || GDALDatasetRasterIO(mem, GF_Write, 0, 0, W, h, e->triptych, W, h, GDT_Byte,
                                          3, NULL, 0, 0, 0) != CE_None;
    GDALDatasetH png = bad ? NULL : GDALCreateCopy(GDALGetDriverByName("PNG"), tmp, mem, FALSE,
                                                   NULL, NULL, NULL);
    if (!png) bad = 1;
    else GDALClose(png);
    if (mem) GDALClose(mem);
    bad = bad || CPLGetLastErrorType() == CE_Failure;
    char aux[PATH_MAX + 400];
    snprintf(aux, sizeof aux, "%s.aux.xml", tmp);
    unlink(aux);
    if (bad || rename(tmp, path)) {
        snprintf(err, n, "%s: cannot write the triptych: %s", path,
                 bad ? CPLGetLastErrorMsg() : strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* Evaluates one image into r. 0: done; 1: passed over or failed (r->status,
 * r->message); -1: fatal (err): out of memory, interrupted, samples unwritable. */
static int eval_image(Eval *e, ImageRecord *r, char *err, size_t n) {
    const EvalOptions *opt = e->opt;
    char why[1024];
    double start = now();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(r->path, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        const char *gdal = CPLGetLastErrorMsg();
        if (r->named && access(r->path, F_OK) != 0 && strncmp(r->path, "/vsi", 4))
            snprintf(why, sizeof why, "%s: no such file", r->path);
        else
            snprintf(why, sizeof why, "%s: not a raster GDAL can read%s%s%s", r->path,
                     *gdal ? " (" : "", gdal, *gdal ? ")" : "");
        r->status = r->named ? IMAGE_FAILED : IMAGE_SKIPPED;
        r->message = strdup(why);
        return 1;
    }
    int bands = GDALGetRasterCount(ds);
    const char *wrong = NULL;
    if (bands > 0 && GDALGetRasterColorTable(GDALGetRasterBand(ds, 1)))
        wrong = "a palette image; expand it to RGB first (gdal_translate -expand rgb)";
    else if (bands < 3)
        wrong = "eval needs colour images (3 bands: R, G, B) to compare with";
    if (wrong) {
        snprintf(why, sizeof why, "%s: %d band%s: %s", r->path, bands, bands == 1 ? "" : "s",
                 wrong);
        GDALClose(ds);
        r->status = IMAGE_FAILED;
        r->message = strdup(why);
        return 1;
    }
    GrayOptions gopt = {.band = 0};
    memcpy(gopt.ht, e->model->cfg.ht, sizeof gopt.ht);
    static const int automatic_rgb[3] = {0, 0, 0};
    GraySource src;
    if (gray_source_attach(&src, ds, r->path, automatic_rgb, &gopt, why, sizeof why)) {
        r->status = IMAGE_FAILED;
        r->message = strdup(why);
        return 1;
    }
    int w = src.width, h = src.height;
    r->width = w, r->height = h;
    if (w < SSIM_MIN_SIDE || h < SSIM_MIN_SIDE) {
        snprintf(why, sizeof why, "%s: %dx%d is smaller than SSIM's %dx%d window", r->path, w, h,
                 SSIM_MIN_SIDE, SSIM_MIN_SIDE);
        gray_source_close(&src);
        r->status = IMAGE_FAILED;
        r->message = strdup(why);
        return 1;
    }
    size_t plane = (size_t)w * h;
    if (grow_buffers(e, plane)) {
        gray_source_close(&src);
        snprintf(err, n, "%s: out of memory for a %dx%d image", r->path, w, h);
        return -1;
    }
    int rows = STRIP_PIXELS / w > 0 ? STRIP_PIXELS / w : 1, rc = 0;
    for (int y0 = 0; rc == 0 && y0 < h; y0 += rows) {
        int count = h - y0 < rows ? h - y0 : rows;
        rc = gray_source_read8(&src, 3, 0, y0, w, count, e->real + (size_t)y0 * w, plane,
                               e->valid + (size_t)y0 * w, why, sizeof why);
    }
    gray_source_close(&src);
    if (rc) {
        r->status = IMAGE_FAILED;
        r->message = strdup(why);
        return 1;
    }
    size_t valid_count = 0;
    for (size_t i = 0; i < plane; i++) valid_count += e->valid[i];
    const uint8_t *valid = valid_count == plane ? NULL : e->valid;
    ht_gray8(e->gray, e->real, plane, plane, e->model->cfg.ht);

    MemoryImage m = {w, h, e->gray, e->valid, e->color};
    SetProgress sp = {opt, e->index, e->list.count, e->serve};
    TileOptions topt = {.tile = opt->tile ? opt->tile : COLORIZE_DEFAULT_TILE,
                        .threads = opt->threads, .bands = 3,
                        .keep_luminance = opt->keep_luminance,
                        .progress = opt->progress || e->serve ? image_progress : NULL,
                        .progress_arg = &sp,
                        .cancel = opt->cancel};
    if (colorize_tiles(e->model, w, h, read_gray, &m, write_color, &m, &topt, why, sizeof why)) {
        snprintf(err, n, "%s: %s", r->path, why);
        return -1;
    }
    const uint8_t *real[3] = {e->real, e->real + plane, e->real + 2 * plane};
    const uint8_t *color[3] = {e->color, e->color + plane, e->color + 2 * plane};
    const uint8_t *copy[3] = {e->gray, e->gray, e->gray};
    if (image_scores(&r->model, real, color, valid, w, h, why, sizeof why) ||
        image_scores(&r->baseline, real, copy, valid, w, h, why, sizeof why)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: %s", r->path, why);
        r->status = IMAGE_FAILED;
        r->message = strdup(msg);
        return 1;
    }
    if (opt->samples_dir && write_triptych(e, r, err, n)) return -1;
    r->status = IMAGE_DONE;
    r->seconds = now() - start;
    return 0;
}

/* ---- the set's figures and files ---------------------------------------------- */

static void mean_scores(const ImageList *l, EvalResult *out) {
    memset(&out->model, 0, sizeof out->model);
    memset(&out->baseline, 0, sizeof out->baseline);
    for (int i = 0; i < l->count; i++) {
        const ImageRecord *r = &l->items[i];
        if (r->status != IMAGE_DONE) continue;
        out->model.mse += r->model.mse, out->model.ssim += r->model.ssim;
        out->model.psnr += r->model.psnr;
        out->baseline.mse += r->baseline.mse, out->baseline.ssim += r->baseline.ssim;
        out->baseline.psnr += r->baseline.psnr;
    }
    EvalScores *s[2] = {&out->model, &out->baseline};
    for (int k = 0; k < 2; k++) {
        s[k]->mse /= out->images;
        s[k]->ssim = 100.0 * s[k]->ssim / out->images;
        s[k]->psnr /= out->images;
    }
}

/* Writes text to path through a temporary file renamed when complete. */
static int write_atomically(const char *path, const char *text, char *err, size_t n) {
    char *tmp = temp_beside(path);
    FILE *f = tmp ? fopen(tmp, "w") : NULL;
    if (!f) {
        snprintf(err, n, "%s: cannot write: %s", path, tmp ? strerror(errno) : "out of memory");
        free(tmp);
        return -1;
    }
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        snprintf(err, n, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static void add_scores(cJSON *o, const char *name, const EvalScores *s) {
    cJSON *g = cJSON_AddObjectToObject(o, name);
    cJSON_AddNumberToObject(g, "mse", s->mse);
    cJSON_AddNumberToObject(g, "ssim", s->ssim);
    cJSON_AddNumberToObject(g, "psnr", s->psnr); /* cJSON writes infinity as null */
}

static int write_json(const EvalOptions *opt, const Eval *e, const EvalResult *res, char *err,
                      size_t n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "images", res->images);
    add_scores(o, "model", &res->model);
    add_scores(o, "baseline", &res->baseline);
    cJSON_AddNumberToObject(o, "failed", res->failed);
    cJSON_AddStringToObject(o, "model_path", res->model_path);
    cJSON_AddStringToObject(o, "model_name", res->model_name);
    cJSON_AddNumberToObject(o, "step", (double)res->step);
    cJSON_AddBoolToObject(o, "keep_luminance", res->keep_luminance);
    char *config = model_config_to_json(&e->model->cfg); /* F, K, R, H_t weights, ... */
    cJSON *parsed = config ? cJSON_Parse(config) : NULL;
    free(config);
    if (parsed) cJSON_AddItemToObject(o, "model_config", parsed);
    cJSON_AddNumberToObject(o, "tile", opt->tile ? opt->tile : COLORIZE_DEFAULT_TILE);
    cJSON_AddNumberToObject(o, "seconds", res->seconds);
    cJSON_AddStringToObject(o, "averaging", "mean over images of the per-image MSE, SSIM (%) and "
                                            "PSNR (dB); baseline: the gray copy");
    cJSON_AddStringToObject(o, "spynco_version", SPYNCO_VERSION);
    cJSON *src = cJSON_AddArrayToObject(o, "sources");
    for (int i = 0; i < opt->num_sources; i++)
        cJSON_AddItemToArray(src, cJSON_CreateString(opt->sources[i]));
    cJSON *failures = cJSON_AddArrayToObject(o, "failures");
    for (int i = 0; i < e->list.count; i++) {
        const ImageRecord *r = &e->list.items[i];
        if (r->status != IMAGE_FAILED) continue;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", r->path);
        cJSON_AddStringToObject(f, "error", r->message ? r->message : "");
        cJSON_AddItemToArray(failures, f);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) {
        snprintf(err, n, "out of memory writing %s", opt->json_path);
        return -1;
    }
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (line) text = line, text[len] = '\n', text[len + 1] = 0;
    int rc = write_atomically(opt->json_path, text, err, n);
    free(text);
    return rc;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const EvalOptions *opt, const Eval *e, char *err, size_t n) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        snprintf(err, n, "out of memory writing %s", opt->csv_path);
        return -1;
    }
    fprintf(f, "path,width,height,model_mse,model_ssim,model_psnr,baseline_mse,baseline_ssim,"
               "baseline_psnr,seconds\n");
    for (int i = 0; i < e->list.count; i++) {
        const ImageRecord *r = &e->list.items[i];
        if (r->status != IMAGE_DONE) continue;
        csv_field(f, r->path);
        fprintf(f, ",%d,%d,%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.3f\n", r->width, r->height,
                r->model.mse, 100.0 * r->model.ssim, r->model.psnr, r->baseline.mse,
                100.0 * r->baseline.ssim, r->baseline.psnr, r->seconds);
    }
    int rc = fclose(f) ? -1 : 0;
    if (rc) snprintf(err, n, "out of memory writing %s", opt->csv_path);
    else rc = write_atomically(opt->csv_path, text, err, n);
    free(text);
    return rc;
}

/* ---- the run -------------------------------------------------------------------- */

/* The counts, the failures on stderr, the means and the files, once every
 * image has its outcome. Returns as eval_run. */
static int report(const Eval *e, const EvalOptions *opt, EvalResult *out, double start, char *err,
                  size_t n) {
    for (int i = 0; i < e->list.count; i++) {
        const ImageRecord *r = &e->list.items[i];
        out->images += r->status == IMAGE_DONE, out->failed += r->status == IMAGE_FAILED;
        if (r->status == IMAGE_FAILED) fprintf(stderr, "error: %s; not evaluated\n", r->message);
        else if (r->status == IMAGE_SKIPPED && opt->verbose)
            fprintf(stderr, "warning: %s; passed over\n", r->message);
    }
    int skipped = e->list.count - out->images - out->failed;
    if (out->images == 0) {
        if (out->failed)
            snprintf(err, n, "no image could be evaluated (%d failed)", out->failed);
        else
            snprintf(err, n, "no images in the given sources, only %d file%s GDAL cannot read",
                     skipped, skipped == 1 ? "" : "s");
        return -1;
    }
    mean_scores(&e->list, out);
    out->seconds = now() - start;
    if (opt->json_path && write_json(opt, e, out, err, n)) return -1;
    if (opt->csv_path && write_csv(opt, e, err, n)) return -1;
    if (out->failed) {
        snprintf(err, n, "%d of %d image%s could not be evaluated (see above); the figures are "
                 "over the other %d", out->failed, out->images + out->failed,
                 out->images + out->failed == 1 ? "" : "s", out->images);
        return 1;
    }
    return 0;
}

static int make_folder(const char *dir, char *err, size_t n) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    /* the ranks of a distributed run may race to create it */
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    snprintf(err, n, "%s: cannot create the samples folder: %s", dir, strerror(errno));
    return -1;
}

/* What a rank found out about one image, for rank 0 (dist_queue_gather). */
typedef struct {
    ImageStatus status;
    int width, height;
    ImageScores model, baseline;
    double seconds;
    char message[512];
} ImageResult;

static void keep_result(ImageResult *res, const ImageRecord *r) {
    *res = (ImageResult){r->status, r->width, r->height, r->model, r->baseline, r->seconds, ""};
    if (r->message) snprintf(res->message, sizeof res->message, "%s", r->message);
}

/* Fills in an image evaluated by another rank. */
static void take_result(ImageRecord *r, const ImageResult *res) {
    if (r->status != IMAGE_PENDING || res->status == IMAGE_PENDING) return;
    r->status = res->status, r->width = res->width, r->height = res->height;
    r->model = res->model, r->baseline = res->baseline, r->seconds = res->seconds;
    if (res->message[0]) r->message = strdup(res->message);
}

/* 1 if every rank listed the same images in the same order. */
static int same_list_everywhere(const ImageList *l) {
    unsigned long long h = 1469598103934665603ull; /* FNV-1a over the paths */
    for (int i = 0; i < l->count; i++)
        for (const char *c = l->items[i].path;; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
            if (!*c) break;
        }
    return dist_same_everywhere(&h, sizeof h);
}

/* The model for inference; its path, name and step into out. */
static int load_model(const EvalOptions *opt, InferModel *model, EvalResult *out, char *err,
                      size_t n) {
    const char *model_path = model_path_or_default(opt->model_path, err, n);
    if (!model_path) return -1;
    if (opt->tile && (opt->tile < 4 || opt->tile % 4)) {
        snprintf(err, n, "--tile %d: the tile size must be a positive multiple of 4", opt->tile);
        return -1;
    }
    Network g;
    CheckpointMeta meta;
    if (checkpoint_load_model(model_path, &g, NULL, &meta, err, n)) return -1;
    int rc = infer_model_init(model, &g, err, n);
    network_free(&g);
    if (rc) return -1;
    snprintf(out->model_path, sizeof out->model_path, "%s", model_path);
    snprintf(out->model_name, sizeof out->model_name, "%s", model->cfg.name);
    out->step = meta.step;
    return 0;
}

int eval_run(const EvalOptions *opt, EvalResult *out, char *err, size_t n) {
    memset(out, 0, sizeof *out);
    double start = now();
    InferModel model;
    /* each rank reads its own copy (another machine's may be damaged): all
     * go on, or all stop with the first failure's message */
    int rc = load_model(opt, &model, out, err, n);
    if (dist_agree(rc, err, n)) {
        if (rc == 0) infer_model_free(&model);
        return -1;
    }
    out->keep_luminance = opt->keep_luminance;

    Eval e = {.opt = opt, .model = &model};
    GDALAllRegister();
    /* failures become our own messages that name the file */
    CPLPushErrorHandler(CPLQuietErrorHandler);
    rc = sources_walk(opt->sources, opt->num_sources, list_add, &e.list, err, n);
    if (rc == 0 && e.list.count == 0) {
        snprintf(err, n, "no images in the given sources");
        rc = -1;
    }
    if (rc == 0 && opt->samples_dir) rc = make_folder(opt->samples_dir, err, n);
    if (dist_agree(rc, err, n)) rc = -1; /* every rank stops, with the first failure's message */
    else if (!same_list_everywhere(&e.list)) {
        snprintf(err, n, "the processes found different images in the sources (did files change "
                 "while the run started, or do the machines see different files?)");
        rc = -1;
    }
    ImageResult *results = rc == 0 ? calloc((size_t)e.list.count, sizeof *results) : NULL;
    if (rc == 0 && !results) snprintf(err, n, "out of memory"), rc = -1;
    DistQueue *q = NULL;
    if (dist_agree(rc, err, n)) rc = -1;
    else if (!(q = dist_queue_create(e.list.count))) {
        snprintf(err, n, "out of memory");
        rc = -1;
    }
    if (q) {
        int rank = dist_rank(), ranks = dist_size();
        /* several processes: rank 0's bar (over its own share) and no other */
        GDALProgressFunc progress = rank == 0 ? opt->progress : NULL;
        EvalOptions mine = *opt;
        mine.progress = progress;
        e.opt = &mine;
        e.serve = ranks > 1 && rank == 0 ? q : NULL;
        if (progress) progress(0.0, NULL, opt->progress_arg);
        int stop = 0;
        for (long k; (k = dist_queue_next(q, stop)) >= 0;) { /* stop: none for any rank */
            ImageRecord *r = &e.list.items[k];
            e.index = (int)k;
            if (eval_image(&e, r, err, n) < 0) rc = -1, stop = 1;
            if (opt->cancel && *opt->cancel) stop = 1;
            keep_result(&results[k], r);
            if (rc == 0 && progress) progress((k + 1.0) / e.list.count, NULL, opt->progress_arg);
        }
        if (rc == 0 && progress && ranks > 1) progress(1.0, NULL, opt->progress_arg); /* the others' share */
        e.opt = opt;
        if (dist_max_int(opt->cancel && *opt->cancel) && rc == 0) { /* a signal stops all */
            snprintf(err, n, "interrupted");
            rc = -1;
        }
        if (dist_agree(rc, err, n)) rc = -1;
        if (dist_queue_gather(q, results, sizeof *results)) snprintf(err, n, "out of memory"), rc = -1;
        dist_queue_free(q);
        for (int i = 0; rc == 0 && i < e.list.count; i++) take_result(&e.list.items[i], &results[i]);
    }
    free(results);
    CPLPopErrorHandler();
    /* rank 0 has every image's outcome: it counts, reports and writes */
    if (rc == 0 && dist_rank() == 0) rc = report(&e, opt, out, start, err, n);
    list_free(&e.list);
    free(e.real), free(e.valid), free(e.gray), free(e.color), free(e.triptych);
    infer_model_free(&model);
    /* every rank returns rank 0's outcome */
    dist_bcast(&rc, sizeof rc);
    dist_bcast(out, sizeof *out);
    dist_bcast(err, n);
    return rc;
}

static void print_psnr(FILE *f, double psnr) {
    if (isinf(psnr)) fprintf(f, " %9s\n", "inf");
    else fprintf(f, " %9.2f\n", psnr);
}

void eval_print_table(FILE *f, const EvalResult *r) {
    fprintf(f, "%d image%s", r->images, r->images == 1 ? "" : "s");
    if (r->failed) fprintf(f, " (%d more failed)", r->failed);
    fprintf(f, "; model %s (%s, step %ld), keep-luminance %s\n", r->model_path, r->model_name,
            r->step, r->keep_luminance ? "on" : "off");
    fprintf(f, "%-10s %9s %9s %9s\n", "", "MSE", "SSIM %", "PSNR dB");
    fprintf(f, "%-10s %9.2f %9.2f", "model", r->model.mse, r->model.ssim);
    print_psnr(f, r->model.psnr);
    fprintf(f, "%-10s %9.2f %9.2f", "gray copy", r->baseline.mse, r->baseline.ssim);
    print_psnr(f, r->baseline.psnr);
    fprintf(f, "(means over images; PSNR is the mean of per-image PSNR)\n");
}
