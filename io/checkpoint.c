#include "io/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENSOR_PATH_MAX 80 /* "/G/" + TensorInfo.path */

/* "F=32, K=64, R=6, nd=32": what decides every tensor's shape. */
static const char *config_summary(char *buf, size_t size, const ModelConfig *cfg) {
    snprintf(buf, size, "F=%d, K=%d, R=%d, nd=%d", cfg->F, cfg->K, cfg->R, cfg->nd);
    return buf;
}

/* ---- saving --------------------------------------------------------------- */

int checkpoint_write_network(H5Writer *w, const char *group, const Network *net) {
    char path[TENSOR_PATH_MAX];
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        snprintf(path, sizeof path, "/%s/%s", group, t->path);
        if (h5w_dataset(w, path, H5IO_FLOAT32, t->ndim, t->shape, t->data)) return -1;
    }
    return 0;
}

int checkpoint_write_model(H5Writer *w, const Network *g, const Network *d,
                           const CheckpointMeta *meta) {
    /* The file stores one config, so D must have been built from the same one. */
    if (d && d->cfg.nd != g->cfg.nd)
        return h5w_fail(w, "cannot save: D has nd=%d but G's config says nd=%d", d->cfg.nd,
                        g->cfg.nd);
    char *config = model_config_to_json(&g->cfg);
    if (!config) return h5w_fail(w, "out of memory");
    h5w_attr_string(w, "/", "format", CHECKPOINT_FORMAT);
    h5w_attr_int(w, "/", "format_version", CHECKPOINT_VERSION);
    h5w_attr_string(w, "/", "config", config);
    h5w_attr_int(w, "/", "epoch", meta ? meta->epoch : 0);
    h5w_attr_int(w, "/", "step", meta ? meta->step : 0);
    free(config);
    if (checkpoint_write_network(w, "G", g)) return -1;
    return d ? checkpoint_write_network(w, "D", d) : 0;
}

int checkpoint_save_model(const char *path, const Network *g, const Network *d,
                          const CheckpointMeta *meta, char *err, size_t err_size) {
    H5Writer *w = h5w_open(path, err, err_size);
    if (!w) return -1;
    checkpoint_write_model(w, g, d, meta);
    return h5w_commit(w);
}

/* ---- loading -------------------------------------------------------------- */

int checkpoint_read_header(H5Reader *r, ModelConfig *cfg, CheckpointMeta *meta) {
    if (!h5r_has_attr(r, "/", "format"))
        return h5r_fail(r, "not a Spynco checkpoint (format attribute is missing)");
    char *format = NULL;
    if (h5r_attr_string(r, "/", "format", &format)) return -1;
    if (strcmp(format, CHECKPOINT_FORMAT)) {
        h5r_fail(r, "not a Spynco checkpoint (format attribute is '%.64s', expected '%s')", format,
                 CHECKPOINT_FORMAT);
        free(format);
        return -1;
    }
    free(format);

    long long version;
    if (h5r_attr_int(r, "/", "format_version", &version)) return -1;
    if (version != CHECKPOINT_VERSION)
        return h5r_fail(r,
                        "checkpoint format version %lld is not supported (this spynco reads "
                        "version %d)%s",
                        version, CHECKPOINT_VERSION,
                        version > CHECKPOINT_VERSION ? "; it was written by a newer spynco" : "");

    char *json = NULL;
    if (h5r_attr_string(r, "/", "config", &json)) return -1;
    char msg[256];
    int bad = model_config_from_json(cfg, json, msg, sizeof msg);
    free(json);
    if (bad) return h5r_fail(r, "invalid 'config' attribute: %s", msg);

    long long epoch, step;
    if (h5r_attr_int(r, "/", "epoch", &epoch) || h5r_attr_int(r, "/", "step", &step)) return -1;
    if (meta) {
        meta->epoch = (long)epoch;
        meta->step = (long)step;
    }
    return 0;
}

static int read_tensors(H5Reader *r, const char *group, Network *net) {
    char path[TENSOR_PATH_MAX], summary[64], found_text[128], expected_text[128];
    int ndim, shape[H5IO_MAX_DIMS];
    for (int i = 0; i < net->num_tensors; i++) {
        TensorInfo *t = &net->tensors[i];
        snprintf(path, sizeof path, "/%s/%s", group, t->path);
        h5io_format_shape(expected_text, sizeof expected_text, t->ndim, t->shape);
        config_summary(summary, sizeof summary, &net->cfg);
        if (!h5r_exists(r, path))
            return h5r_fail(r, "missing dataset %s (config %s expects it with shape %s)", path,
                            summary, expected_text);
        if (h5r_shape(r, path, &ndim, shape)) return -1;
        int same = ndim == t->ndim;
        for (int k = 0; same && k < ndim; k++) same = shape[k] == t->shape[k];
        if (!same)
            return h5r_fail(r, "%s has shape %s, config %s expects %s", path,
                            h5io_format_shape(found_text, sizeof found_text, ndim, shape), summary,
                            expected_text);
        if (h5r_read(r, path, H5IO_FLOAT32, t->ndim, t->shape, t->data)) return -1;
    }
    return 0;
}

typedef struct {
    H5Reader *r;
    const Network *net;
    size_t prefix_len; /* strlen("/G/") */
} ExtraCheck;

static int refuse_unknown_dataset(const char *path, void *ctx) {
    const ExtraCheck *c = ctx;
    if (network_find_tensor(c->net, path + c->prefix_len)) return 0;
    /* PyTorch's state_dict has this BatchNorm counter; Spynco does not use it. */
    const char *last = strrchr(path, '/');
    if (!strcmp(last + 1, "num_batches_tracked")) return 0;
    char summary[64];
    return h5r_fail(c->r,
                    "unexpected dataset %s: config %s has no such tensor, so the config "
                    "does not match the weights",
                    path, config_summary(summary, sizeof summary, &c->net->cfg));
}

int checkpoint_read_network(H5Reader *r, const char *group, Network *net) {
    char root[8];
    snprintf(root, sizeof root, "/%s", group);
    ExtraCheck check = {r, net, strlen(root) + 1};
    if (read_tensors(r, group, net)) return -1;
    return h5r_visit_datasets(r, root, refuse_unknown_dataset, &check) ? -1 : 0;
}

int checkpoint_read_model(H5Reader *r, Network *g, Network *d, CheckpointMeta *meta) {
    ModelConfig cfg;
    char msg[256];
    if (checkpoint_read_header(r, &cfg, meta)) return -1;
    if (d && !h5r_exists(r, "/D"))
        return h5r_fail(r, "holds no discriminator (no /D group): it is a release model, which "
                           "can colorize but not continue training; use a training checkpoint");
    if (network_init_generator(g, &cfg, msg, sizeof msg)) return h5r_fail(r, "%s", msg);
    if (d && network_init_discriminator(d, &cfg, msg, sizeof msg)) {
        network_free(g);
        return h5r_fail(r, "%s", msg);
    }
    if (checkpoint_read_network(r, "G", g) || (d && checkpoint_read_network(r, "D", d))) {
        network_free(g);
        if (d) network_free(d);
        return -1;
    }
    return 0;
}

/* ---- Adam moments ------------------------------------------------------------ */

int checkpoint_write_moments(H5Writer *w, const Network *net, const char *group, const float *m,
                             const float *v) {
    char path[160];
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (!t->grad) continue;
        size_t off = (size_t)(t->data - net->params.base);
        snprintf(path, sizeof path, "/opt/%s/exp_avg/%s", group, t->path);
        if (h5w_dataset(w, path, H5IO_FLOAT32, t->ndim, t->shape, m + off)) return -1;
        snprintf(path, sizeof path, "/opt/%s/exp_avg_sq/%s", group, t->path);
        if (h5w_dataset(w, path, H5IO_FLOAT32, t->ndim, t->shape, v + off)) return -1;
    }
    return 0;
}

int checkpoint_read_moments(H5Reader *r, const Network *net, const char *group, float *m, float *v) {
    char path[160];
    for (int i = 0; i < net->num_tensors; i++) {
        const TensorInfo *t = &net->tensors[i];
        if (!t->grad) continue;
        size_t off = (size_t)(t->data - net->params.base);
        snprintf(path, sizeof path, "/opt/%s/exp_avg/%s", group, t->path);
        if (h5r_read(r, path, H5IO_FLOAT32, t->ndim, t->shape, m + off)) return -1;
        snprintf(path, sizeof path, "/opt/%s/exp_avg_sq/%s", group, t->path);
        if (h5r_read(r, path, H5IO_FLOAT32, t->ndim, t->shape, v + off)) return -1;
    }
    return 0;
}

int checkpoint_load_model(const char *path, Network *g, Network *d, CheckpointMeta *meta, char *err,
                          size_t err_size) {
    H5Reader *r = h5r_open(path, err, err_size);
    if (!r) return -1;
    int rc = checkpoint_read_model(r, g, d, meta);
    h5r_close(r);
    return rc;
}

int checkpoint_read_config(const char *path, ModelConfig *cfg, CheckpointMeta *meta, char *err,
                           size_t err_size) {
    H5Reader *r = h5r_open(path, err, err_size);
    if (!r) return -1;
    int rc = checkpoint_read_header(r, cfg, meta);
    h5r_close(r);
    return rc;
}
