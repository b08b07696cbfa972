/* checkpoint.h: saving and loading SpyncoGAN models as HDF5 files.
 *
 * The layout is the one in ../shared/docs/model-spec.md ("Checkpoint (HDF5)"):
 * root attributes `format` = "spynco-checkpoint", `format_version`, `config`
 * (the model config as JSON), `epoch` and `step`; every tensor of G at
 * /G/<path> and of D at /D/<path> as a float32 dataset, <path> being the
 * PyTorch state_dict key with '.' -> '/' (TensorInfo.path). A release model
 * holds /G only. A training checkpoint also holds training state (/opt/...,
 * RNG state, history pool), which the training code adds to the same file:
 *
 *     H5Writer *w = h5w_open(path, err, sizeof err);
 *     if (!w) return -1;
 *     checkpoint_write_model(w, &g, &d, &meta);
 *     h5w_dataset(w, "/opt/G/enc0/conv/weight", ...);   // and so on
 *     return h5w_commit(w);                             // atomic, see h5io.h
 *
 * A learned-F training checkpoint (issue 6, nn/gan_cycle.h) also holds F at
 * /F/<path> and D_A at /DA/<path>, with their Adam moments under /opt/F and
 * /opt/DA; readers of G (and D) ignore those groups, so such a file exports
 * and colorizes like any other.
 *
 * Loading builds the networks from the file's own config and refuses, with a
 * message naming the file and the problem, anything that does not match:
 * format, version, config, a missing, extra or wrongly shaped tensor.
 */
#ifndef SPYNCO_CHECKPOINT_H
#define SPYNCO_CHECKPOINT_H

#include <stddef.h>

#include "io/h5io.h"
#include "nn/networks.h"

#define CHECKPOINT_FORMAT "spynco-checkpoint"
#define CHECKPOINT_VERSION 1

typedef struct {
    long epoch, step;
} CheckpointMeta;

/* Writes the root attributes and the tensors of g (and of d unless NULL: a
 * release model) into w; meta NULL means epoch 0, step 0. Failures are
 * recorded in w (h5w_commit then fails); returns 0 or -1. */
int checkpoint_write_model(H5Writer *w, const Network *g, const Network *d,
                           const CheckpointMeta *meta);
/* The whole model into one new file at path, atomically; 0 or -1 (message in err). */
int checkpoint_save_model(const char *path, const Network *g, const Network *d,
                          const CheckpointMeta *meta, char *err, size_t err_size);

/* Checks format and version and reads config and meta (meta may be NULL). */
int checkpoint_read_header(H5Reader *r, ModelConfig *cfg, CheckpointMeta *meta);
/* Initialises g (and d unless NULL) from the file's config and reads their
 * tensors. g and d must not hold networks yet. On failure nothing stays
 * allocated and -1 is returned with the message in r's err buffer. */
int checkpoint_read_model(H5Reader *r, Network *g, Network *d, CheckpointMeta *meta);
/* Opens path and reads the model, as above; message in err. */
int checkpoint_load_model(const char *path, Network *g, Network *d, CheckpointMeta *meta, char *err,
                          size_t err_size);
/* One network's tensors at /<group>/<path> (G, D, F, DA). Reading checks
 * every shape against net (already built) and refuses extra datasets. */
int checkpoint_write_network(H5Writer *w, const char *group, const Network *net);
int checkpoint_read_network(H5Reader *r, const char *group, Network *net);
/* Adam moments m, v (laid out like net's params block) at
 * /opt/<group>/exp_avg/<path> and /opt/<group>/exp_avg_sq/<path>. */
int checkpoint_write_moments(H5Writer *w, const Network *net, const char *group, const float *m,
                             const float *v);
int checkpoint_read_moments(H5Reader *r, const Network *net, const char *group, float *m, float *v);
/* Only the attributes: format, version, config, epoch and step. */
int checkpoint_read_config(const char *path, ModelConfig *cfg, CheckpointMeta *meta, char *err,
                           size_t err_size);

#endif
