/* spynco: colorize grayscale aerial imagery with a pseudo-cyclic GAN. */
#include <stdio.h>
#include <string.h>

#include "pipeline/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command COMMANDS[] = {
    {"colorize", cmd_colorize, "colorize a gray raster into a georeferenced color raster"},
    {"eval", cmd_eval, "score a model on real colour images (MSE, SSIM, PSNR) against the gray copy"},
    {"train", cmd_train, "train a model from unpaired gray and color images"},
    {"run", cmd_run, "run a recipe: batch colorize, train, evaluate (resumable)"},
    {"export", cmd_export, "strip a training checkpoint to a release model"},
    {"info", cmd_info, "show a checkpoint's config, parameter counts and receptive field"},
    {"bench", cmd_bench, "time the network core (inference, training step)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: spynco COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n'spynco COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("spynco %s\n", SPYNCO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "spynco: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
