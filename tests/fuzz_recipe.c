/* libFuzzer target for the recipe parser (io/recipe.h): any bytes in, either
 * a recipe or an error "r.yaml:LINE:COLUMN: ..." out; never a crash, a leak
 * or undefined behaviour. Built by scripts/fuzz.sh (CMake -DSPYNCO_FUZZ=ON,
 * clang -fsanitize=fuzzer,address,undefined); seeds in tests/fuzz_corpus/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Recipe r;
    char err[1024];
    err[0] = 0;
    int rc = recipe_parse(&r, "r.yaml", "/base", (const char *)data, size, err, sizeof err);
    /* an error always says where */
    if (rc != 0 && strncmp(err, "r.yaml:", 7) != 0) abort();
    if (rc == 0) {
        /* what a run reads of a parsed recipe */
        char name[256];
        const RecipeColorize *c = &r.colorize;
        const char *pattern = c->name ? c->name : "{parent}_{stem}_{name}_{index}.tif";
        for (int i = 0; c->present && i < c->inputs.count; i++)
            recipe_output_name(name, sizeof name, pattern, c->inputs.items[i].path, i + 1,
                               c->inputs.count);
        if (c->present && (!c->output.path || !c->resampling)) abort();
        if (r.train.present && (!r.train.out.path || !r.train.gray.count || !r.train.color.count))
            abort();
    }
    recipe_free(&r);
    return 0;
}
