/* The recipe parser (io/recipe.h) in process: every key of every job read
 * into the struct, paths resolved against the recipe's folder, and each kind
 * of mistake reported at its exact FILE:LINE:COLUMN with the key named. The
 * example recipes in recipes/ must parse. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/recipe.h"
#include "testutil.h"

#define BASE "/data/recipes"

static int parse(Recipe *r, const char *text, char *err, size_t n) {
    return recipe_parse(r, "r.yaml", BASE, text, strlen(text), err, n);
}

static void test_full_recipe(void) {
    const char *text =
        "version: 1\n"
        "train:\n"
        "  gray: [splits/g.txt, /abs/gray]\n"
        "  color: splits/c.txt\n"
        "  gray_from_color: yes\n"
        "  color_bands: [1, 2, 3]\n"
        "  crop: 128\n"
        "  batch: 8\n"
        "  steps: 1000\n"
        "  stop_after: 10\n"
        "  scales: [1, 2]\n"
        "  lambda_a: 5\n"
        "  lambda_b: 2.5\n"
        "  contours: true\n"
        "  ht: [0.3, 0.6, 0.1]\n"
        "  lr: 0.0001\n"
        "  F: 16\n"
        "  K: 32\n"
        "  R: 0\n"
        "  nd: 16\n"
        "  name: my-model\n"
        "  out: runs/x\n"
        "  seed: 0\n"
        "  threads: 2\n"
        "  checkpoint_every: 50\n"
        "  keep_epochs: false\n"
        "  export: models/x.h5\n"
        "  init: ../models/spynco-default.h5\n"
        "  keep_luminance: true\n"
        "colorize:\n"
        "  model: models/x.h5\n"
        "  inputs:\n"
        "    - scans/*.tif\n"
        "    - ./archive.zip\n"
        "    - /vsizip/rel.zip/a.tif\n"
        "    - /vsizip//abs.zip/b.tif\n"
        "    - /vsicurl/https://example.org/c.tif\n"
        "  output: out\n"
        "  name: \"{parent}_{stem}_{index}.tif\"\n"
        "  format: COG\n"
        "  creation_options: [COMPRESS=LZW, \"BLOCKSIZE=256\"]\n"
        "  tile: 512\n"
        "  threads: 3\n"
        "  band: 2\n"
        "  scale: [0, 2047]\n"
        "  overviews: on\n"
        "  t_srs: EPSG:3857\n"
        "  resampling: cubic\n"
        "  aoi: [-10.5, 40, 10, 50.25]\n"
        "  mosaic: all.vrt\n"
        "eval:\n"
        "  model: models/x.h5\n"
        "  inputs: splits/test.txt\n"
        "  json: eval.json\n"
        "  csv: eval.csv\n"
        "  samples: triptychs\n"
        "  keep_luminance: no\n";
    Recipe r;
    char err[1024] = "";
    int rc = parse(&r, text, err, sizeof err);
    CHECK(rc == 0, "full recipe: %s", err);
    if (rc) {
        recipe_free(&r);
        return;
    }
    const RecipeTrain *t = &r.train;
    CHECK(t->present && t->at.line == 2 && t->at.column == 1, "train at %d:%d", t->at.line,
          t->at.column);
    CHECK(t->gray.count == 2 && !strcmp(t->gray.items[0].path, BASE "/splits/g.txt") &&
              !strcmp(t->gray.items[1].path, "/abs/gray"),
          "train.gray");
    CHECK(t->gray.items[0].at.line == 3 && t->gray.items[0].at.column == 10, "gray[0] at %d:%d",
          t->gray.items[0].at.line, t->gray.items[0].at.column);
    CHECK(t->color.count == 1 && !strcmp(t->color.items[0].path, BASE "/splits/c.txt"),
          "a single path is a list of one");
    CHECK(t->gray_from_color == 1 && t->keep_epochs == 0 && t->keep_luminance == 1, "bools");
    CHECK(t->init.path && !strcmp(t->init.path, BASE "/../models/spynco-default.h5"), "init");
    CHECK(t->color_bands[0] == 1 && t->color_bands[1] == 2 && t->color_bands[2] == 3, "color_bands");
    CHECK(t->crop == 128 && t->batch == 8 && t->steps == 1000 && t->epochs == -1 &&
              t->stop_after == 10 && t->checkpoint_every == 50 && t->threads == 2,
          "integers");
    CHECK(t->F == 16 && t->K == 32 && t->R == 0 && t->nd == 16 && t->seed == 0, "model sizes, seed");
    CHECK(t->num_scales == 2 && t->scales[0] == 1 && t->scales[1] == 2, "scales");
    CHECK(t->lambda_a == 5 && t->lambda_b == 2.5 && t->contours == -1 && t->lr == 0.0001,
          "numbers (contours true = -1)");
    CHECK(t->has_ht && t->ht[0] == 0.3 && t->ht[1] == 0.6 && t->ht[2] == 0.1, "ht");
    CHECK(t->name && !strcmp(t->name, "my-model"), "name");
    CHECK(!strcmp(t->out.path, BASE "/runs/x") && !strcmp(t->export_model.path, BASE "/models/x.h5"),
          "out, export");

    const RecipeColorize *c = &r.colorize;
    CHECK(c->present && !strcmp(c->model.path, BASE "/models/x.h5"), "colorize.model");
    CHECK(c->inputs.count == 5, "5 inputs, not %d", c->inputs.count);
    if (c->inputs.count == 5) {
        const char *want[5] = {BASE "/scans/*.tif", BASE "/archive.zip", "/vsizip/" BASE "/rel.zip/a.tif",
                               "/vsizip//abs.zip/b.tif", "/vsicurl/https://example.org/c.tif"};
        for (int i = 0; i < 5; i++)
            CHECK(!strcmp(c->inputs.items[i].path, want[i]), "inputs[%d] = '%s', not '%s'", i,
                  c->inputs.items[i].path, want[i]);
        CHECK(c->inputs.items[2].at.line == 35 && c->inputs.items[2].at.column == 7,
              "inputs[2] at %d:%d", c->inputs.items[2].at.line, c->inputs.items[2].at.column);
    }
    CHECK(!strcmp(c->output.path, BASE "/out") && !strcmp(c->name, "{parent}_{stem}_{index}.tif"),
          "output, name");
    CHECK(!strcmp(c->format, "COG") && c->creation_options &&
              !strcmp(c->creation_options[0], "COMPRESS=LZW") &&
              !strcmp(c->creation_options[1], "BLOCKSIZE=256") && !c->creation_options[2],
          "format, creation_options");
    CHECK(c->tile == 512 && c->threads == 3 && c->band == 2 && c->overviews == 1, "tile etc.");
    CHECK(c->has_scale && c->scale[0] == 0 && c->scale[1] == 2047, "scale");
    CHECK(!strcmp(c->t_srs, "EPSG:3857") && !strcmp(c->resampling, "cubic"), "t_srs, resampling");
    CHECK(c->has_aoi && c->aoi[0] == -10.5 && c->aoi[1] == 40 && c->aoi[2] == 10 &&
              c->aoi[3] == 50.25,
          "aoi");
    CHECK(c->mosaic && !strcmp(c->mosaic, "all.vrt"), "mosaic");

    const RecipeEval *e = &r.eval;
    CHECK(e->present && !strcmp(e->model.path, BASE "/models/x.h5") && e->inputs.count == 1 &&
              !strcmp(e->json.path, BASE "/eval.json") && !strcmp(e->csv.path, BASE "/eval.csv") &&
              !strcmp(e->samples.path, BASE "/triptychs") && e->keep_luminance == 0,
          "eval");
    recipe_free(&r);
}

static void test_defaults(void) {
    Recipe r;
    char err[1024] = "";
    int rc = parse(&r, "colorize:\n  inputs: a.tif\n  output: out\n  mosaic: yes\n"
                       "  creation_options:\n    COMPRESS: ZSTD\n    LEVEL: 9\n",
                   err, sizeof err);
    CHECK(rc == 0, "minimal colorize: %s", err);
    const RecipeColorize *c = &r.colorize;
    CHECK(rc || (!c->model.path && !c->name && !c->format &&
                 c->tile == 0 && c->threads == 0 && c->band == 0 && !c->has_scale &&
                 !c->overviews && !c->t_srs && !strcmp(c->resampling, "bilinear") && !c->has_aoi &&
                 !strcmp(c->mosaic, "mosaic.vrt")),
          "colorize defaults");
    CHECK(rc || (c->creation_options && !strcmp(c->creation_options[0], "COMPRESS=ZSTD") &&
                 !strcmp(c->creation_options[1], "LEVEL=9")),
          "creation options as a mapping");
    CHECK(!r.train.present && !r.eval.present, "no train, no eval");
    recipe_free(&r);

    rc = parse(&r, "train:\n  gray: g\n  color: c\n  out: o\n  contours: 0.5\n", err, sizeof err);
    const RecipeTrain *t = &r.train;
    CHECK(rc == 0, "minimal train: %s", err);
    CHECK(rc || (t->crop == -1 && t->batch == -1 && t->steps == -1 && t->epochs == -1 &&
                 t->seed == -1 && t->F == -1 && isnan(t->lambda_a) && isnan(t->lr) &&
                 t->contours == 0.5 && !t->has_ht && t->num_scales == 0 && !t->name &&
                 !t->export_model.path),
          "train: what is not given stays unset");
    recipe_free(&r);
}

/* Each mistake: the recipe, then the exact start of the message. */
typedef struct {
    const char *text, *expect;
} Bad;

static const Bad BAD[] = {
    /* YAML syntax */
    {"colorize:\n  inputs: [a.tif\n  output: out\n",
     "r.yaml:3:9: YAML syntax error: did not find expected ',' or ']'"},
    {"colorize:\n\tinputs: a.tif\n", "r.yaml:2:1: YAML syntax error: a tab"},
    {"colorize:\n  inputs: a.tif\n output: out\n", "r.yaml:3:2: YAML syntax error"},
    {"colorize: {inputs: a.tif, output: \"out}\n", "r.yaml:2:1: YAML syntax error"},
    {"", "r.yaml:1:1: the recipe is empty"},
    {"colorize:\n  inputs: a\n  output: o\n---\ntrain: {}\n", "r.yaml:4:1: a recipe is one YAML document"},
    {"- colorize\n", "r.yaml:1:1: a recipe is a mapping of jobs"},
    {"version: 1\n", "r.yaml:1:1: no job"},
    {"a: &x 1\nb: *x\n", "r.yaml:2:4: YAML aliases"},
    {"colorize: !!map {inputs: a, output: o}\n", "r.yaml:1:11: YAML tags"},
    /* unknown keys */
    {"colorise:\n  inputs: a\n", "r.yaml:1:1: recipe: unknown key 'colorise' (did you mean 'colorize'?)"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  tiel: 512\n",
     "r.yaml:4:3: colorize: unknown key 'tiel' (did you mean 'tile'?)"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  speed: fast\n",
     "r.yaml:4:3: colorize: unknown key 'speed' (known keys: model, inputs, output"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  learning_rate: 0.1\n",
     "r.yaml:5:3: train: unknown key 'learning_rate'"},
    {"eval:\n  inputs: t.txt\n  samplez: s\n", "r.yaml:3:3: eval: unknown key 'samplez' (did you mean 'samples'?)"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  output: x\n",
     "r.yaml:4:3: duplicate key 'output' (first at line 3, column 3)"},
    /* wrong types */
    {"colorize:\n  inputs: a.tif\n  output: out\n  tile: abc\n",
     "r.yaml:4:9: colorize.tile: expected an integer, got 'abc'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  tile: \"512\"\n",
     "r.yaml:4:9: colorize.tile: expected an integer, got a quoted string"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  tile: 5.5\n", "r.yaml:4:9: colorize.tile: expected an integer"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  overviews: maybe\n",
     "r.yaml:4:14: colorize.overviews: expected true or false, got 'maybe'"},
    {"colorize:\n  inputs: {a: b}\n  output: out\n",
     "r.yaml:2:11: colorize.inputs: expected a path or a list of paths, got a mapping"},
    {"colorize:\n  inputs: [a, [b]]\n  output: out\n", "r.yaml:2:15: colorize.inputs[1]: expected a path"},
    {"colorize:\n  inputs: a.tif\n  output: [out]\n", "r.yaml:3:11: colorize.output: expected a string, got a list"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  model:\n", "r.yaml:4:9: colorize.model: no value"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  scale: [1]\n",
     "r.yaml:4:10: colorize.scale: expected a list of 2 numbers, got a list"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  aoi: [1, 2, x, 4]\n",
     "r.yaml:4:15: colorize.aoi: expected a list of 4 numbers, got 'x'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  aoi: [1, 2, nan, 4]\n", "r.yaml:4:15: colorize.aoi: expected"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  creation_options: COMPRESS=LZW\n",
     "r.yaml:4:21: colorize.creation_options: expected a list of NAME=VALUE or a mapping"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  creation_options: [LZW]\n",
     "r.yaml:4:22: colorize.creation_options: expected NAME=VALUE, got 'LZW'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  mosaic: [a]\n", "r.yaml:4:11: colorize.mosaic: expected true, false"},
    {"colorize: yes\n", "r.yaml:1:11: colorize: expected a mapping of settings"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  contours: lots\n", "r.yaml:5:13: train.contours: expected a number"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  scales: 1\n", "r.yaml:5:11: train.scales: expected a list of 1 to 3 scales"},
    {"eval:\n  inputs: t.txt\n  keep_luminance: 1\n", "r.yaml:3:19: eval.keep_luminance: expected true or false"},
    {"version: one\ncolorize: {inputs: a, output: o}\n", "r.yaml:1:10: version: expected an integer"},
    /* missing keys */
    {"colorize:\n  inputs: a.tif\n", "r.yaml:1:1: colorize: the required key 'output' is missing"},
    {"colorize:\n  output: out\n", "r.yaml:1:1: colorize: the required key 'inputs' is missing"},
    {"colorize:\n  inputs: []\n  output: out\n", "r.yaml:2:11: colorize.inputs: the list is empty"},
    {"x: 1\ntrain:\n  gray: g\n  color: c\n", "r.yaml:1:1: recipe: unknown key 'x'"},
    {"train:\n  gray: g\n  color: c\n", "r.yaml:1:1: train: the required key 'out' is missing"},
    {"eval:\n  json: e.json\n", "r.yaml:1:1: eval: the required key 'inputs' is missing"},
    /* bad values */
    {"colorize:\n  inputs: a.tif\n  output: out\n  tile: 1001\n",
     "r.yaml:4:9: colorize.tile: 1001 is not a multiple of 4"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  tile: 0\n", "r.yaml:4:9: colorize.tile: 0 is out of range (4 to 16384)"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  threads: 0\n", "r.yaml:4:12: colorize.threads: 0 is out of range"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  scale: [10, 5]\n", "r.yaml:4:10: colorize.scale: needs MIN < MAX"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  aoi: [10, 40, 5, 50]\n",
     "r.yaml:4:8: colorize.aoi: [west, south, east, north] needs west < east"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  aoi: [0, -95, 5, 50]\n",
     "r.yaml:4:8: colorize.aoi: [west, south, east, north] in degrees"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  name: \"{stm}.tif\"\n",
     "r.yaml:4:9: colorize.name: unknown placeholder '{stm}'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  name: sub/{stem}.tif\n",
     "r.yaml:4:9: colorize.name: 'sub/{stem}.tif' must be a file name"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  name: \"{stem\"\n", "r.yaml:4:9: colorize.name: '{' without '}'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  name: .hidden.tif\n", "r.yaml:4:9: colorize.name: '.hidden.tif' must not start with '.'"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  mosaic: all.tif\n", "r.yaml:4:11: colorize.mosaic: 'all.tif' must end in .vrt"},
    {"colorize:\n  inputs: a.tif\n  output: out\n  resampling: bicubic\n",
     "r.yaml:4:15: colorize.resampling: 'bicubic' is not one of near, bilinear"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  crop: 98\n", "r.yaml:5:9: train.crop: 98 is not a multiple of 4"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  crop: 64\n", "r.yaml:5:9: train.crop: 64 is out of range (96 to 8192)"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  steps: 10\n  epochs: 2\n",
     "r.yaml:6:3: train: give steps or epochs, not both ('steps' at line 5)"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  scales: [1, 4]\n", "r.yaml:5:15: train.scales: 4 is out of range (1 to 3)"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  color_bands: [1, 2, 0]\n", "r.yaml:5:16: train.color_bands: band numbers"},
    /* found by the fuzzer: a huge band number was cast to int (undefined) */
    {"train:\n  gray: g\n  color: c\n  out: o\n  color_bands: [2, 3e112, 2]\n",
     "r.yaml:5:16: train.color_bands: band numbers are 1, 2, ... (got 3e+112)"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  lr: 0\n", "r.yaml:5:7: train.lr: 0 is out of range"},
    {"train:\n  gray: g\n  color: c\n  out: o\n  batch: 99999999999999999999\n", "r.yaml:5:10: train.batch: expected an integer"},
    {"version: 2\ncolorize: {inputs: a, output: o}\n", "r.yaml:1:10: version: 2 is out of range (1 to 1)"},
};

static void test_mistakes(void) {
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        Recipe r;
        char err[1024] = "";
        int rc = parse(&r, BAD[i].text, err, sizeof err);
        CHECK(rc == -1 && !strncmp(err, BAD[i].expect, strlen(BAD[i].expect)),
              "case %zu: expected \"%s...\", got %s \"%s\"", i, BAD[i].expect,
              rc ? "error" : "success", err);
        recipe_free(&r);
    }
}

static void test_output_names(void) {
    char out[256];
    struct {
        const char *pattern, *input;
        int index, count;
        const char *want;
    } cases[] = {
        {"{stem}_color.tif", "/d/scans/a.b.tif", 1, 1, "a.b_color.tif"},
        {"{name}.png", "/d/x.tif", 1, 1, "x.tif.png"},
        {"{parent}-{stem}.tif", "/vsizip//d/pack.zip/t1.tif", 1, 1, "pack-t1.tif"},
        {"{parent}-{stem}.tif", "/vsizip//d/pack.zip/sub/t1.tif", 1, 1, "sub-t1.tif"},
        {"{parent}-{stem}.tif", "/vsitar//d/pack.tar.gz/t1.tif", 1, 1, "pack-t1.tif"},
        {"{index}_{stem}.tif", "/d/x.tif", 7, 120, "007_x.tif"},
        {"{stem}.tif", "/d/noext", 1, 1, "noext.tif"},
        {"fixed.tif", "/d/x.tif", 1, 1, "fixed.tif"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = recipe_output_name(out, sizeof out, cases[i].pattern, cases[i].input,
                                    cases[i].index, cases[i].count);
        CHECK(rc == 0 && !strcmp(out, cases[i].want), "%s from %s: '%s', not '%s'",
              cases[i].pattern, cases[i].input, rc ? "(error)" : out, cases[i].want);
    }
    CHECK(recipe_output_name(out, 8, "{stem}_color.tif", "/d/long_name.tif", 1, 1) == -1,
          "a name that does not fit is an error");
}

/* recipe_load: the file's folder for relative paths, its name in messages. */
static void test_load(void) {
    const char *dir = test_tmpdir("recipe");
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/job.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("colorize:\n  inputs: in/a.tif\n  output: out\n  tile: 6\n", f);
    fclose(f);
    Recipe r;
    int rc = recipe_load(&r, path, err, sizeof err);
    char want[600];
    snprintf(want, sizeof want, "%s:4:9: colorize.tile: 6 is not a multiple of 4", path);
    CHECK(rc == -1 && !strcmp(err, want), "load: '%s', not '%s'", err, want);
    recipe_free(&r);
    f = fopen(path, "w");
    fputs("colorize:\n  inputs: in/a.tif\n  output: out\n", f);
    fclose(f);
    rc = recipe_load(&r, path, err, sizeof err);
    snprintf(want, sizeof want, "%s/in/a.tif", dir);
    CHECK(rc == 0 && !strcmp(r.colorize.inputs.items[0].path, want), "relative to the recipe: %s",
          rc ? err : r.colorize.inputs.items[0].path);
    recipe_free(&r);
    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    rc = recipe_load(&r, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "missing.yaml: cannot read the recipe"), "missing file: %s", err);
    recipe_free(&r);
    test_remove_tree(dir);
}

/* The example recipes in recipes/ are valid. */
static void test_examples(void) {
    const char *dir = SPYNCO_SOURCE_DIR "/recipes";
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml")) continue;
        char path[1024], err[1024] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        Recipe r;
        int rc = recipe_load(&r, path, err, sizeof err);
        CHECK(rc == 0, "example %s: %s", e->d_name, err);
        recipe_free(&r);
        count++;
    }
    if (d) closedir(d);
    CHECK(count >= 4, "%d example recipes in %s, expected at least 4", count, dir);
}

int main(void) {
    test_full_recipe();
    test_defaults();
    test_mistakes();
    test_output_names();
    test_load();
    test_examples();
    return test_summary("test_recipe");
}
