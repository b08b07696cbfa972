/* GDAL's VSIStatBufL is a struct stat64 */
#define _LARGEFILE64_SOURCE
/* spynco run: the jobs of a recipe (train, colorize, eval), resumable. */
#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/recipe.h"
#include "pipeline/batch.h"
#include "pipeline/cli.h"
#include "pipeline/colorize.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"
#include "pipeline/eval.h"
#include "pipeline/train.h"

#define EXIT_INTERRUPTED 130

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
        "continues its checkpoint; an eval job evaluates again (its table goes to stdout).\n"
        "An input that fails is reported and the others go on. One run at a time per\n"
        "output folder (a lock: OUTPUT/.spynco-lock).\n"
        "`mpirun -n N spynco run RECIPE`: the ranks share the inputs of the colorize and\n"
        "eval jobs (train is data-parallel); rank 0 prints the summary.\n"
        "Exit status: 0 all done; 1 something failed (see the summary); 2 the recipe or\n"
        "the command line is wrong (FILE:LINE:COLUMN: message), or another run holds the\n"
        "output folder; 130 interrupted by SIGINT/SIGTERM/SIGUSR1 (finished outputs\n"
        "stay, the current one is discarded).\n");
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
    o->stop = &cli_interrupted;
    int rank = dist_rank();
    if (!quiet && rank == 0)
        fprintf(stderr, "train: %s %s\n", resume ? "continuing" : "starting", t->out.path);
    /* under mpirun: data-parallel, every rank with the same outcome */
    int rc = train_run(o, t->out.path, resume, err, n);
    if (rc != 0) return rc < 0 ? -1 : 1;
    /* export only when the checkpoint is newer than the model (HDF5 files carry
     * timestamps: an unchanged model keeps the colorize job's outputs valid);
     * rank 0 writes it, the others wait for it */
    rc = 0;
    if (rank == 0 && t->export_model.path && !newer_or_same(t->export_model.path, last)) {
        rc = export_model(last, t->export_model.path, err, n);
        if (rc == 0 && !quiet) fprintf(stderr, "train: exported %s\n", t->export_model.path);
    }
    return dist_agree(rc, err, n);
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
    if (!e->model.path && !default_model_path()) {
        recipe_error(r, e->at, err, n, "eval: no model given and the default "
                     "models/spynco-default.h5 was not found; add 'model: FILE'");
        return -1;
    }
    return 0;
}

/* The recipe's eval section over `spynco eval`'s defaults; sources must hold
 * e->inputs.count entries. */
static EvalOptions eval_options(const RecipeEval *e, const char **sources, int threads, int quiet) {
    for (int i = 0; i < e->inputs.count; i++) sources[i] = e->inputs.items[i].path;
    return (EvalOptions){
        .model_path = e->model.path, .sources = sources, .num_sources = e->inputs.count,
        .threads = threads > 0 ? threads : e->threads,
        .keep_luminance = e->keep_luminance < 0 ? KEEP_LUMINANCE_DEFAULT : e->keep_luminance,
        .json_path = e->json.path, .csv_path = e->csv.path, .samples_dir = e->samples.path,
        .verbose = !quiet, .progress = quiet ? NULL : GDALTermProgress, .cancel = &cli_interrupted};
}

/* The folder a file is written into, created with its parents. */
static int make_parent(const char *file, char *err, size_t n) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    if (batch_make_folders(dir) == 0) return 0;
    snprintf(err, n, "%.*s: cannot create the folder: %s", (int)(slash - dir), file, strerror(errno));
    return -1;
}

/* 0 every image evaluated; 1 something failed; 130 interrupted (the same
 * on every rank). */
static int run_eval(const Recipe *r, int threads, int quiet) {
    const RecipeEval *e = &r->eval;
    const char **sources = malloc(e->inputs.count * sizeof *sources);
    if (!sources) {
        fprintf(stderr, "spynco run: eval: out of memory\n");
        return 1;
    }
    EvalOptions opt = eval_options(e, sources, threads, quiet);
    char err[2048];
    int rc = (opt.json_path && make_parent(opt.json_path, err, sizeof err)) ||
             (opt.csv_path && make_parent(opt.csv_path, err, sizeof err)) ||
             (opt.samples_dir && make_parent(opt.samples_dir, err, sizeof err)) ? -1 : 0;
    EvalResult res;
    int rank = dist_rank(); /* the ranks share the images; rank 0 reports */
    if (dist_agree(rc, err, sizeof err)) rc = -1;
    if (rc == 0) {
        if (!quiet && rank == 0)
            fprintf(stderr, "eval: %s on %d source%s\n", opt.model_path ? opt.model_path
                    : default_model_path(), opt.num_sources, opt.num_sources == 1 ? "" : "s");
        rc = eval_run(&opt, &res, err, sizeof err);
    }
    if (rc >= 0 && rank == 0) {
        eval_print_table(stdout, &res);
        fflush(stdout);
    }
    free(sources);
    if (dist_max_int(cli_interrupted)) cli_interrupted = 1;
    if (cli_interrupted) return EXIT_INTERRUPTED;
    if (rc != 0 && rank == 0) fprintf(stderr, "spynco run: eval: %s\n", err);
    return rc == 0 ? 0 : 1;
}

static void print_eval_plan(const Recipe *r) {
    const RecipeEval *e = &r->eval;
    printf("eval: evaluate %s (keep-luminance %s) on",
           e->model.path ? e->model.path : default_model_path(),
           (e->keep_luminance < 0 ? KEEP_LUMINANCE_DEFAULT : e->keep_luminance) ? "on" : "off");
    for (int i = 0; i < e->inputs.count; i++)
        printf("%s %s", i ? "," : "", e->inputs.items[i].path);
    printf("\n");
    if (e->json.path) printf("eval: json %s\n", e->json.path);
    if (e->csv.path) printf("eval: csv %s\n", e->csv.path);
    if (e->samples.path) printf("eval: samples in %s\n", e->samples.path);
}

/* ---- colorize ---------------------------------------------------------------------------- */

/* The largest rc over the ranks; err everywhere: the message of the first
 * rank whose rc is nonzero. */
static int agree(int rc, char *err, size_t n) {
    int worst = dist_max_int(rc);
    dist_agree(rc, err, n);
    return worst;
}

/* Rank 0 answers the other ranks' requests while it colorizes. */
static void poll_queue(void *queue) { dist_queue_poll(queue); }

/* Every rank takes rank 0's findings: what to do with each input and the
 * run id (one run: one identity in the journal). The ranks planned on their
 * own; they must have found the same inputs and outputs, in the same order.
 * 0, or -1 on every rank (the message in err on rank 0). */
static int share_plan(BatchPlan *plan, char *err, size_t n) {
    if (dist_size() == 1) return 0;
    size_t bytes = (size_t)plan->count + 1;
    for (int i = 0; i < plan->count; i++)
        bytes += strlen(plan->items[i].input) + strlen(plan->items[i].output) + 2;
    char *buf = malloc(bytes), *p = buf;
    if (dist_max_int(!buf)) {
        snprintf(err, n, "out of memory");
        free(buf);
        return -1;
    }
    for (int i = 0; i < plan->count; i++)
        p += sprintf(p, "%s%c%s%c", plan->items[i].input, 0, plan->items[i].output, 0);
    int same = dist_same_everywhere(&plan->count, sizeof plan->count) &&
               dist_same_everywhere(buf, (size_t)(p - buf));
    if (same) {
        for (int i = 0; i < plan->count; i++) buf[i] = (char)plan->items[i].status;
        dist_bcast(buf, (size_t)plan->count);
        for (int i = 0; i < plan->count; i++) plan->items[i].status = (ItemStatus)buf[i];
        dist_bcast(plan->run_id, sizeof plan->run_id);
    }
    free(buf);
    if (!same && dist_rank() == 0)
        snprintf(err, n, "the processes found different inputs (did files change while the run "
                 "started, or do the machines see different files?); run again");
    return same ? 0 : -1;
}

/* 0 all done, 1 something failed, 2 the output folder is in use, 130
 * interrupted; the same on every rank. Under mpirun rank 0 locks the output
 * folder and checks the journal, the ranks share the inputs to do (dynamic
 * assignment: a slow input holds up only its rank), each writing its outputs
 * and journal entries; rank 0 then reads the run's entries back, writes the
 * mosaic and prints the summary. */
static int run_colorize(BatchPlan *plan, const BatchOptions *opt) {
    int rank = dist_rank(), ranks = dist_size(), lock = -1;
    char err[2048] = "";
    /* Each step's outcome is agreed before the next: a rank that stopped
     * alone would leave the others waiting in a collective. Every rank reads
     * its copy of the model: they must colorize with the same one, whose
     * checksum the journal records. */
    int rc = agree(batch_fingerprint(plan, err, sizeof err) ? 1 : 0, err, sizeof err);
    if (rc == 0 && !dist_same_everywhere(plan->fingerprint, sizeof plan->fingerprint)) {
        snprintf(err, sizeof err, "%s: the processes read different model files (another or a "
                 "damaged copy on some machine?); give them all the same file", plan->model_path);
        rc = 1;
    }
    if (rc == 0 && rank == 0) {
        if (batch_prepare(plan, err, sizeof err)) rc = 1;
        else if ((lock = batch_lock(plan, err, sizeof err)) < 0) rc = 2;
        else batch_check_journal(plan);
    }
    rc = agree(rc, err, sizeof err);
    if (rc == 0 && share_plan(plan, err, sizeof err)) rc = 1;
    int *todo = rc == 0 ? malloc(((size_t)plan->count + 1) * sizeof *todo) : NULL;
    if (rc == 0 && !todo) snprintf(err, sizeof err, "out of memory"), rc = 1;
    DistQueue *q = NULL;
    int count = 0;
    for (int i = 0; todo && i < plan->count; i++)
        if (plan->items[i].status == ITEM_TODO) todo[count++] = i;
    rc = agree(rc, err, sizeof err);
    if (rc == 0 && !(q = dist_queue_create(count))) /* collective: NULL on every rank */
        snprintf(err, sizeof err, "out of memory"), rc = 1;
    if (rc) {
        if (rank == 0) fprintf(stderr, "spynco run: %s\n", err);
        batch_unlock(lock);
        free(todo);
        return rc;
    }
    if (!opt->quiet && rank == 0) {
        fprintf(stderr, "colorize: %d of %d inputs to do into %s", count, plan->count,
                plan->output_dir);
        if (ranks > 1) fprintf(stderr, " by %d processes", ranks);
        fprintf(stderr, "\n");
    }
    /* several processes: no progress bars running into each other */
    BatchOptions run_opt = *opt;
    if (ranks > 1) run_opt.quiet = 1;
    if (ranks > 1 && rank == 0) run_opt.poll = poll_queue, run_opt.poll_arg = q;
    int failed = 0;
    for (long k; (k = dist_queue_next(q, cli_interrupted)) >= 0;) { /* a signal: none for any rank */
        const BatchItem *it = &plan->items[todo[k]];
        if (!opt->quiet && ranks > 1)
            fprintf(stderr, "[%ld/%d] rank %d: %s -> %s\n", k + 1, count, rank, it->display,
                    it->output_name);
        else if (!opt->quiet)
            fprintf(stderr, "[%ld/%d] %s -> %s\n", k + 1, count, it->display, it->output_name);
        if (batch_run_input(plan, todo[k], &run_opt, err, sizeof err) == ITEM_FAILED) {
            fprintf(stderr, "spynco run: %s: %s\n", it->display, err);
            failed = 1;
        }
    }
    /* Rank 0's queue ended after every rank had asked once more, that is
     * after each wrote its last journal entry: the journal is complete. */
    dist_queue_free(q);
    free(todo);
    if (dist_max_int(cli_interrupted)) cli_interrupted = 1; /* a rank's signal stops them all */
    failed = dist_max_int(failed);
    if (rank == 0) {
        batch_collect(plan);
        rc = failed || batch_failures(plan) ? 1 : 0;
        if (!cli_interrupted) {
            int m = batch_mosaic(plan, opt, err, sizeof err);
            if (m < 0) fprintf(stderr, "spynco run: %s\n", err), rc = 1;
            if (m == 1) fprintf(stderr, "spynco run: no output to mosaic; %s not written\n",
                                plan->mosaic_path);
        }
        batch_print_summary(plan, stdout);
        if (plan->mosaic_path && !cli_interrupted && access(plan->mosaic_path, F_OK) == 0)
            printf("mosaic: %s\n", plan->mosaic_path);
        fflush(stdout);
    }
    dist_bcast(&rc, sizeof rc);
    batch_unlock(lock);
    return cli_interrupted ? EXIT_INTERRUPTED : rc;
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
            if (cli_parse_int(argv[++i], &threads) || threads < 1 || threads > 4096) {
                fprintf(stderr, "spynco run: --threads takes a positive number, not '%s'\n", argv[i]);
                return 2;
            }
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
    char err[4096] = "";
    cli_catch_interrupts();
    if (dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "spynco run: %s\n", err);
        return 1;
    }
    /* Under mpirun every rank plans the whole recipe; rank 0 alone talks
     * and writes what is written once (summary, mosaic, checkpoints). */
    int rank = dist_rank();
    Recipe r;
    int rc = recipe_load(&r, recipe_path, err, sizeof err) ? 2 : 0;
    cli_bound_gdal_cache();
    GDALAllRegister();

    /* Everything the recipe names is checked before any job starts. */
    TrainOptions train;
    BatchPlan plan;
    memset(&plan, 0, sizeof plan);
    if (rc == 0 && r.train.present && train_options(&train, &r, threads, err, sizeof err)) rc = 2;
    if (rc == 0 && r.colorize.present) {
        const char *export = r.train.present ? r.train.export_model.path : NULL;
        int from_train = export && r.colorize.model.path && !strcmp(export, r.colorize.model.path);
        if (batch_plan(&plan, &r, from_train, err, sizeof err)) rc = 2;
    }
    if (rc == 0 && r.eval.present && check_eval(&r, err, sizeof err)) rc = 2;
    if (dist_agree(rc, err, sizeof err)) rc = 2; /* the message of the first rank that failed */
    if (rc) {
        if (rank == 0) fprintf(stderr, "spynco run: %s\n", err);
    } else if (dry_run) {
        if (rank == 0 && r.train.present) print_train_plan(&r, &train);
        if (rank == 0 && r.colorize.present) {
            if (access(plan.model_path, R_OK) == 0) {
                if (batch_fingerprint(&plan, err, sizeof err) == 0) batch_check_journal(&plan);
                else fprintf(stderr, "spynco run: %s\n", err), rc = 1;
            }
            batch_print_plan(&plan, stdout);
        }
        if (rank == 0 && r.eval.present) print_eval_plan(&r);
        rc = dist_max_int(rc);
    } else {
        if (r.train.present) {
            int t = run_train(&r, &train, quiet, err, sizeof err);
            if (t < 0 && rank == 0) fprintf(stderr, "spynco run: train: %s\n", err);
            rc = t < 0 ? 1 : t > 0 ? EXIT_INTERRUPTED : 0;
        }
        int trained = rc == 0; /* the later jobs need the model */
        if (trained && r.colorize.present) {
            BatchOptions opt = {.threads = threads, .quiet = quiet, .cancel = &cli_interrupted};
            rc = run_colorize(&plan, &opt);
        }
        /* eval does not use colorize's outputs: it runs after a failed input too */
        if (trained && !cli_interrupted && r.eval.present) {
            int e = run_eval(&r, threads, quiet);
            if (e) rc = e;
        }
        if (cli_interrupted && rank == 0)
            fprintf(stderr, "spynco run: interrupted; rerun the recipe to finish\n");
    }
    batch_free(&plan);
    recipe_free(&r);
    GDALDestroyDriverManager();
    dist_finalize();
    return rc;
}
