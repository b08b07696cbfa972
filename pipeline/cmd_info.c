/* spynco info: what a checkpoint holds. Loads every tensor, so a damaged or
 * inconsistent file is reported rather than described. */
#include <stdio.h>
#include <string.h>

#include "io/checkpoint.h"
#include "nn/gan_cycle.h"
#include "pipeline/commands.h"

static void usage(FILE *out) {
    fprintf(out, "usage: spynco info [--help] FILE\n"
                 "\n"
                 "Shows a checkpoint's format version, model config, epoch and step, whether it\n"
                 "holds the discriminator, a learned F with its discriminator D_A (from\n"
                 "`spynco train --learned-f`) and training state, the parameter counts and G's\n"
                 "receptive field. Every tensor is loaded and checked against the config.\n");
}

/* 1951171 -> "1,951,171" */
static const char *with_separators(char *buf, size_t size, size_t value) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", value);
    size_t used = 0;
    for (int i = 0; i < n && used + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[used++] = ',';
        buf[used++] = digits[i];
    }
    buf[used] = '\0';
    return buf;
}

/* f and da: the learned-F variant's networks, or NULL. */
static void print_info(const char *path, const Network *g, const Network *d, const Network *f,
                       const Network *da, int has_opt, const CheckpointMeta *meta) {
    const ModelConfig *c = &g->cfg;
    char count[32];
    printf("checkpoint: %s\n", path);
    printf("format: %s, version %d\n", CHECKPOINT_FORMAT, CHECKPOINT_VERSION);
    printf("model: %s (F=%d, K=%d, R=%d, nd=%d)\n", c->name, c->F, c->K, c->R, c->nd);
    printf("H_t weights: R %g, G %g, B %g\n", c->ht[0], c->ht[1], c->ht[2]);
    printf("loss scales:");
    for (int i = 0; i < c->num_scales; i++) printf(" %d", c->scales[i]);
    printf("\nepoch %ld, step %ld\n", meta->epoch, meta->step);
    printf("holds: G%s%s%s\n", d ? ", D" : " only (release model)",
           f ? ", F and D_A (learned F, --learned-f)" : "", has_opt ? ", training state (/opt)" : "");
    printf("G parameters: %s\n", with_separators(count, sizeof count, g->num_params));
    if (d) printf("D%s parameters: %s\n", f ? " (D_B)" : "",
                  with_separators(count, sizeof count, d->num_params));
    if (f) {
        printf("F parameters: %s\n", with_separators(count, sizeof count, f->num_params));
        printf("D_A parameters: %s\n", with_separators(count, sizeof count, da->num_params));
    }
    ReceptiveField rf = generator_receptive_field(g);
    printf("receptive field: %d px (radius %d px), total stride %d\n", rf.size, rf.radius,
           rf.stride);
}

/* F and D_A of a --learned-f training checkpoint; on failure nothing stays allocated. */
static int read_learned_f(H5Reader *r, const ModelConfig *cfg, Network *f, Network *da) {
    char msg[256];
    if (learned_f_networks_init(f, da, cfg, msg, sizeof msg)) return h5r_fail(r, "%s", msg);
    if (checkpoint_read_network(r, "F", f) || checkpoint_read_network(r, "DA", da)) {
        network_free(f);
        network_free(da);
        return -1;
    }
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' || path) {
            fprintf(stderr, "spynco info: %s '%s'\n\n",
                    argv[i][0] == '-' ? "unknown option" : "unexpected argument", argv[i]);
            usage(stderr);
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    char err[512];
    H5Reader *r = h5r_open(path, err, sizeof err);
    if (!r) {
        fprintf(stderr, "spynco info: %s\n", err);
        return 1;
    }
    Network g, d, f, da;
    CheckpointMeta meta;
    int has_d = h5r_exists(r, "/D"), has_opt = h5r_exists(r, "/opt");
    int has_f = h5r_exists(r, "/F") || h5r_exists(r, "/DA");
    int rc = checkpoint_read_model(r, &g, has_d ? &d : NULL, &meta);
    if (rc == 0 && has_f && (rc = read_learned_f(r, &g.cfg, &f, &da))) {
        network_free(&g);
        if (has_d) network_free(&d);
    }
    h5r_close(r);
    if (rc) {
        fprintf(stderr, "spynco info: %s\n", err);
        return 1;
    }
    print_info(path, &g, has_d ? &d : NULL, has_f ? &f : NULL, has_f ? &da : NULL, has_opt, &meta);
    network_free(&g);
    if (has_d) network_free(&d);
    if (has_f) network_free(&f), network_free(&da);
    return 0;
}
