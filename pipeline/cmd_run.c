/* GDAL's VSIStatBufL is a struct stat64 */
#define _LARGEFILE64_SOURCE
/* spynco run: the jobs of a recipe (train, colorize, eval), resumable. */
#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/recipe.h"
#include "pipeline/batch.h"
#include "pipeline/commands.h"
#include "pipeline/train.h"

#define EXIT_INTERRUPTED 130

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out) {
    fprintf(out,
        "usage: spynco run [-q] [--dry-run] [--threads N] [--config KEY VALUE]... RECIPE\n"
        "\n"
        "Runs the jobs of a recipe (a YAML file, see docs/recipes.md) in this order:\n"
        "train, colorize, eval. Paths in the recipe are relative to its folder.\n"
        "\n"
        "  -q               quiet: no log, no progress bars (the summary still prints)\n"
        "  --dry-run        list what would be done (each input -> output, or why it is\n"
        "                   skipped or kept) and write nothing\n"
        "  --threads N      compute threads for every job (default: the recipe's, else all\n"
        "                   cores)\n"
        "  --config K V     set a GDAL configuration option\n"
        "\n"
        "Resumable: the colorize job keeps a journal in OUTPUT/.spynco-journal/; a rerun\n"
        "keeps outputs that are complete and valid and redoes the rest; a train job\n"
        "continues its checkpoint. An input that fails is reported and the others go on.\n"
        "Exit status: 0 all done; 1 something failed (see the summary); 2 the recipe or\n"
        "the command line is wrong (FILE:LINE:COLUMN: message); 130 interrupted by\n"
        "SIGINT/SIGTERM (finished outputs stay, the current one is discarded).\n");
}

/* ---- train --------------------------------------------------------------------------- */

static int path_exists(const char *path) {
    VSIStatBufL st;
    return VSIStatL(path, &st) == 0;
}

static int check_sources(const Recipe *r, const RecipePaths *p, const char *key, char *err,
                         size_t n) {
    if (p->count > TRAIN_MAX_SOURCES) {
        recipe_error(r, p->items[TRAIN_MAX_SOURCES].at, err, n, "%s: at most %d sources; put "
                     "them in a folder or a list file", key, TRAIN_MAX_SOURCES);
        return -1;
    }
    for (int i = 0; i < p->count; i++)
        if (!path_exists(p->items[i].path)) {
            recipe_error(r, p->items[i].at, err, n, "%s[%d]: '%s' does not exist", key, i,
                         p->items[i].path);
            return -1;
        }
    return 0;
}

/* The recipe's train section over `spynco train`'s defaults. */
static int train_options(TrainOptions *o, const Recipe *r, int threads, char *err, size_t n) {
    const RecipeTrain *t = &r->train;
    *o = train_options_default();
    if (check_sources(r, &t->gray, "train.gray", err, n) ||
        check_sources(r, &t->color, "train.color", err, n))
        return -1;
    for (int i = 0; i < t->gray.count; i++) o->gray[i] = t->gray.items[i].path;
    for (int i = 0; i < t->color.count; i++) o->color[i] = t->color.items[i].path;
    o->num_gray = t->gray.count, o->num_color = t->color.count;
    o->gray_from_color = t->gray_from_color, o->keep_epochs = t->keep_epochs;
    o->lambdas.luminance_lock = t->keep_luminance;
    if (t->init.path) {
        if (!path_exists(t->init.path)) {
            recipe_error(r, t->init.at, err, n, "train.init: '%s' does not exist", t->init.path);
            return -1;
        }
        o->init_from = t->init.path;
    }
    memcpy(o->color_bands, t->color_bands, sizeof o->color_bands);
    if (t->crop >= 0) o->crop = (int)t->crop;
    if (t->batch >= 0) o->batch = (int)t->batch;
    if (t->steps >= 0) o->steps = t->steps;
    if (t->epochs >= 0) o->epochs = (int)t->epochs, o->steps = 0;
    if (t->stop_after >= 0) o->stop_after = t->stop_after;
    if (t->checkpoint_every >= 0) o->checkpoint_every = (int)t->checkpoint_every;
    if (t->threads >= 0) o->threads = (int)t->threads;
    if (threads > 0) o->threads = threads;
    if (t->F >= 0) o->model.F = (int)t->F;
    if (t->K >= 0) o->model.K = (int)t->K;
    if (t->R >= 0) o->model.R = (int)t->R;
    if (t->nd >= 0) o->model.nd = (int)t->nd;
    if (t->seed >= 0) o->seed = (unsigned long long)t->seed;
    if (t->num_scales) {
        o->model.num_scales = t->num_scales;
        memcpy(o->model.scales, t->scales, sizeof t->scales);
    }
    if (!isnan(t->lambda_a)) o->lambdas.lambda_a = (float)t->lambda_a;
    if (!isnan(t->lambda_b)) o->lambdas.lambda_b = (float)t->lambda_b;
    if (!isnan(t->contours))
        o->lambdas.lambda_c = t->contours < 0 ? CONTOURS_LAMBDA_DEFAULT : (float)t->contours;
    if (!isnan(t->lr)) o->lr = (float)t->lr;
    for (int i = 0; t->has_ht && i < 3; i++) o->model.ht[i] = (float)t->ht[i];
    if (t->name) snprintf(o->model.name, sizeof o->model.name, "%s", t->name);
    char why[256];
    if (model_config_check(&o->model, why, sizeof why)) {
        recipe_error(r, t->at, err, n, "train: the model settings are not valid: %s", why);
        return -1;
    }
    return 0;
}

static int newer_or_same(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_mtim.tv_sec > sb.st_mtim.tv_sec ||
           (sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec >= sb.st_mtim.tv_nsec);
}

/* 0 done, 1 stopped by a signal, -1 failed (message in err). */
static int run_train(const Recipe *r, TrainOptions *o, int quiet, char *err, size_t n) {
    const RecipeTrain *t = &r->train;
    char last[4200];
    snprintf(last, sizeof last, "%s/last.h5", t->out.path);
    int resume = access(last, F_OK) == 0;
    /* resuming without a length in the recipe: the checkpoint's total */
    if (resume && t->steps < 0 && t->epochs < 0) o->steps = 0, o->epochs = 0;
    if (resume) o->init_from = NULL; /* the run started from it already */
    o->quiet = quiet;
    o->stop = &interrupted;
    if (!quiet) fprintf(stderr, "train: %s %s\n", resume ? "continuing" : "starting", t->out.path);
    int rc = train_run(o, t->out.path, resume, err, n);
    if (rc != 0) return rc < 0 ? -1 : 1;
    /* export only when the checkpoint is newer than the model (HDF5 files carry
     * timestamps: an unchanged model keeps the colorize job's outputs valid) */
    if (t->export_model.path && !newer_or_same(t->export_model.path, last)) {
        if (export_model(last, t->export_model.path, err, n)) return -1;
        if (!quiet) fprintf(stderr, "train: exported %s\n", t->export_model.path);
    }
    return 0;
}

static void print_train_plan(const Recipe *r, const TrainOptions *o) {
    const RecipeTrain *t = &r->train;
    char last[4200];
    snprintf(last, sizeof last, "%s/last.h5", t->out.path);
    int resume = access(last, F_OK) == 0;
    printf("train: %s %s (%d gray, %d color sources, crop %d, batch %d, ", resume ? "continue"
           : "start", t->out.path, o->num_gray, o->num_color, o->crop, o->batch);
    if (resume && t->steps < 0 && t->epochs < 0) printf("up to the checkpoint's total)\n");
    else if (o->steps) printf("%ld steps)\n", o->steps);
    else printf("%d epochs)\n", o->epochs);
    if (t->export_model.path) printf("train: export the model to %s\n", t->export_model.path);
}

/* ---- eval ------------------------------------------------------------------------------ */

static int check_eval(const Recipe *r, char *err, size_t n) {
    const RecipeEval *e = &r->eval;
    for (int i = 0; i < e->inputs.count; i++)
        if (!path_exists(e->inputs.items[i].path)) {
            recipe_error(r, e->inputs.items[i].at, err, n, "eval.inputs[%d]: '%s' does not exist",
                         i, e->inputs.items[i].path);
            return -1;
        }
    const char *export = r->train.present ? r->train.export_model.path : NULL;
    if (e->model.path && !path_exists(e->model.path) && !(export && !strcmp(export, e->model.path))) {
        recipe_error(r, e->model.at, err, n, "eval.model: '%s' does not exist", e->model.path);
        return -1;
    }
    recipe_error(r, e->at, err, n, "eval: this build of spynco has no evaluation yet (spynco "
                 "eval, issue 6); remove the eval job");
    return -1;
}

/* ---- colorize --------------------------------------------------------------------------- */

/* 0 all done, 1 something failed, 130 interrupted. */
static int run_colorize(BatchPlan *plan, const BatchOptions *opt) {
    char err[2048];
    if (batch_check_journal(plan, err, sizeof err) || batch_prepare(plan, err, sizeof err)) {
        fprintf(stderr, "spynco run: %s\n", err);
        return 1;
    }
    int todo = 0, done = 0, cursor = 0;
    for (int i = 0; i < plan->count; i++) todo += plan->items[i].status == ITEM_TODO;
    if (!opt->quiet)
        fprintf(stderr, "colorize: %d of %d inputs to do into %s\n", todo, plan->count,
                plan->output_dir);
    for (int i; !interrupted && (i = batch_next_input(plan, &cursor)) >= 0;) {
        const BatchItem *it = &plan->items[i];
        if (!opt->quiet)
            fprintf(stderr, "[%d/%d] %s -> %s\n", ++done, todo, it->display, it->output_name);
        if (batch_run_input(plan, i, opt, err, sizeof err) == ITEM_FAILED)
            fprintf(stderr, "spynco run: %s: %s\n", it->display, err);
    }
    batch_collect(plan);
    int rc = batch_failures(plan) ? 1 : 0;
    if (!interrupted) {
        int m = batch_mosaic(plan, opt, err, sizeof err);
        if (m < 0) fprintf(stderr, "spynco run: %s\n", err), rc = 1;
        if (m == 1) fprintf(stderr, "spynco run: no output to mosaic; %s not written\n",
                            plan->mosaic_path);
    }
    batch_print_summary(plan, stdout);
    if (plan->mosaic_path && !interrupted && access(plan->mosaic_path, F_OK) == 0)
        printf("mosaic: %s\n", plan->mosaic_path);
    fflush(stdout);
    return interrupted ? EXIT_INTERRUPTED : rc;
}

/* ---- the command -------------------------------------------------------------------------- */

int cmd_run(int argc, char **argv) {
    int quiet = 0, dry_run = 0, threads = 0;
    const char *recipe_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--dry-run")) {
            dry_run = 1;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 4096) {
                fprintf(stderr, "spynco run: --threads takes a positive number, not '%s'\n", argv[i]);
                return 2;
            }
            threads = (int)v;
        } else if (!strcmp(a, "--config") && i + 2 < argc) {
            CPLSetConfigOption(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spynco run: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!recipe_path) {
            recipe_path = a;
        } else {
            fprintf(stderr, "spynco run: one RECIPE, not more ('%s')\n", a);
            return 2;
        }
    }
    if (!recipe_path) {
        usage(stderr);
        return 2;
    }
    char err[4096];
    Recipe r;
    if (recipe_load(&r, recipe_path, err, sizeof err)) {
        fprintf(stderr, "spynco run: %s\n", err);
        recipe_free(&r);
        return 2;
    }
    /* Bounded memory whatever the rasters (as colorize): the user's setting wins. */
    if (!CPLGetConfigOption("GDAL_CACHEMAX", NULL)) GDALSetCacheMax64(256LL << 20);
    GDALAllRegister();

    /* Everything the recipe names is checked before any job starts. */
    TrainOptions train;
    BatchPlan plan;
    memset(&plan, 0, sizeof plan);
    int rc = 0;
    if (r.train.present && train_options(&train, &r, threads, err, sizeof err)) rc = 2;
    if (rc == 0 && r.colorize.present) {
        const char *export = r.train.present ? r.train.export_model.path : NULL;
        int from_train = export && r.colorize.model.path && !strcmp(export, r.colorize.model.path);
        if (batch_plan(&plan, &r, from_train, err, sizeof err)) rc = 2;
    }
    if (rc == 0 && r.eval.present && check_eval(&r, err, sizeof err)) rc = 2;
    if (rc) {
        fprintf(stderr, "spynco run: %s\n", err);
    } else if (dry_run) {
        if (r.train.present) print_train_plan(&r, &train);
        if (r.colorize.present) {
            if (access(plan.model_path, R_OK) == 0 && batch_check_journal(&plan, err, sizeof err))
                fprintf(stderr, "spynco run: %s\n", err), rc = 1;
            batch_print_plan(&plan, stdout);
        }
    } else {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (r.train.present) {
            int t = run_train(&r, &train, quiet, err, sizeof err);
            if (t < 0) fprintf(stderr, "spynco run: train: %s\n", err);
            rc = t < 0 ? 1 : t > 0 ? EXIT_INTERRUPTED : 0;
        }
        if (rc == 0 && r.colorize.present) {
            BatchOptions opt = {.threads = threads, .quiet = quiet, .cancel = &interrupted};
            rc = run_colorize(&plan, &opt);
        }
        if (interrupted) fprintf(stderr, "spynco run: interrupted; rerun the recipe to finish\n");
    }
    batch_free(&plan);
    recipe_free(&r);
    GDALDestroyDriverManager();
    return rc;
}
