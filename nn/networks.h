/* networks.h: the SpyncoGAN generator G and PatchGAN discriminator D.
 *
 * Both networks are a list of ConvUnits (conv -> optional BatchNorm ->
 * activation), exactly as ../shared/docs/model-spec.md lays them out:
 *
 *   G: enc0 enc1 enc2 | res{i}/conv1 res{i}/conv2 (i < R) | dec2 dec1 dec0 | head
 *   D: l0 l1 l2 l3 l4
 *
 * A Network owns three blocks (arena.h): params (conv weights and biases, BN
 * gamma and beta), grads (same layout) and buffers (BN running statistics).
 * `tensors` names every view with its PyTorch state_dict path ('.' -> '/'),
 * which is also its HDF5 path under /G or /D in a checkpoint.
 *
 * The channel counts are parameters for the learned-F variant (CycleGAN's
 * second generator F: color -> gray, G's architecture with 3 inputs and 1
 * output; and a gray discriminator D_A with 1 input): the plain init
 * functions build the spec's G (1 -> 3) and D (3 -> score).
 *
 * Activations live apart, in an Activations block sized for one input shape
 * (batch, height, width): a network can run many shapes (G on a tile, D on
 * each pyramid scale) and several threads can each run their own.
 *
 *   Network g;  network_init_generator(&g, &cfg);
 *   Activations acts;  activations_init(&acts, &g, batch, h, w, training);
 *   generator_forward(&g, &acts, gray, training);   // acts.y[0..2] = y1,y2,y3
 *   generator_backward(&g, &acts, gray_unused, dy); // grads += ...
 */
#ifndef SPYNCO_NETWORKS_H
#define SPYNCO_NETWORKS_H

#include <stddef.h>

#include "nn/arena.h"
#include "nn/conv.h"
#include "nn/ops.h"

#define MODEL_NAME_MAX 64
#define MODEL_MAX_SCALES 3

typedef struct {
    char name[MODEL_NAME_MAX]; /* e.g. "spynco-s" */
    int F, K, R;               /* generator: encoder width, decoder width, residual blocks */
    int nd;                    /* discriminator width */
    float ht[3];               /* H_t weights for R, G, B */
    int num_scales;            /* pyramid outputs used by the losses */
    int scales[MODEL_MAX_SCALES];
} ModelConfig;

/* The default config "spynco-s": F=32, K=64, R=6, nd=32, BT.601 weights, scales {1,2,3}. */
ModelConfig model_config_default(void);
/* 0 if valid; otherwise -1 with a message in err. */
int model_config_check(const ModelConfig *cfg, char *err, size_t err_size);
/* Canonical JSON text (the checkpoint's `config` attribute); caller frees. */
char *model_config_to_json(const ModelConfig *cfg);
/* Parses and checks; -1 with a message naming the bad field. */
int model_config_from_json(ModelConfig *cfg, const char *json, char *err, size_t err_size);

typedef enum { ACT_NONE, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH } Activation;

typedef struct {
    char conv_path[32], bn_path[32]; /* "enc0/conv", "enc0/bn"; "res1/conv2", "res1/bn2" */
    int in_ch, out_ch, kernel, stride, pad;
    int has_bn;
    int upsample_before; /* nearest x2 upsampling of the input first (G's dec1, dec0) */
    Activation act;
    float *weight, *bias, *bn_weight, *bn_bias;      /* params */
    float *dweight, *dbias, *dbn_weight, *dbn_bias;  /* grads */
    float *running_mean, *running_var;               /* buffers */
} ConvUnit;

typedef struct {
    char path[64];  /* "enc0/conv/weight" */
    float *data;    /* view into params or buffers */
    float *grad;    /* view into grads; NULL for buffers */
    int ndim;
    int shape[4];
    size_t count;
} TensorInfo;

typedef enum { NET_GENERATOR, NET_DISCRIMINATOR } NetKind;

typedef struct {
    NetKind kind;
    ModelConfig cfg;
    int in_ch, out_ch; /* image channels in (both kinds) and out (generator) */
    int num_units;
    ConvUnit *units;
    Arena params, grads, buffers;
    int num_tensors;
    TensorInfo *tensors;
    size_t num_params; /* learnable parameters (params block, without padding) */
} Network;

/* Both return 0, or -1 (out of memory or invalid config, message in err). */
int network_init_generator(Network *net, const ModelConfig *cfg, char *err, size_t err_size);
int network_init_discriminator(Network *net, const ModelConfig *cfg, char *err, size_t err_size);
/* The same networks with other image channel counts (1..3): in_ch -> out_ch
 * for a generator (G is 1 -> 3, F is 3 -> 1), in_ch for a discriminator. */
int network_init_generator_channels(Network *net, const ModelConfig *cfg, int in_ch, int out_ch,
                                    char *err, size_t err_size);
int network_init_discriminator_channels(Network *net, const ModelConfig *cfg, int in_ch, char *err,
                                        size_t err_size);
void network_free(Network *net);
void network_zero_grads(Network *net);
/* PyTorch's default initialisation (kaiming-uniform convs, BN 1/0, running 0/1), from a seed. */
void network_init_weights(Network *net, unsigned long long seed);
const TensorInfo *network_find_tensor(const Network *net, const char *path);

/* Receptive field of G's full-resolution output, derived from the unit list:
 * size in pixels and the total stride of the encoder. */
typedef struct {
    int size;   /* receptive field in input pixels */
    int radius; /* farthest input pixel an output pixel reads, on either side,
                   over every phase of the stride (nearest upsampling makes
                   the field lopsided): the halo a tile needs */
    int stride; /* total stride: tile origins must be multiples of it */
    int halo;   /* radius rounded up to the stride: the halo of tiled inference */
} ReceptiveField;
ReceptiveField generator_receptive_field(const Network *g);

/* ---- activations ---------------------------------------------------------- */

typedef struct {
    ConvShape shape;
    const float *in; /* what the conv read (set by the forward) */
    float *d_in;     /* where its input gradient goes (NULL: not needed) */
    float *conv_out, *out, *mean, *rstd;
    float *d_out, *d_conv_out;
    int store_d_in;          /* its conv's d(input) is the first write into d_in */
    ConvWeightCache weights; /* the conv's transformed weights, kept while
                                Activations.reuse_weights is set */
} UnitActs;

typedef struct {
    int batch, h, w, with_grads, threads;
    Arena arena;
    int num_apps;
    UnitActs *apps;        /* one per application of a unit (G's head is applied 3 times) */
    float *scratch;        /* conv workspace for the largest layer */
    int reuse_weights;     /* the network's weights stay the same until this is
                              cleared (activations_reuse_weights) */
    float *grads_start, *grads_end; /* activations_zero_grads clears grads_start .. grads_end */
    double *bn_stats;      /* BatchNorm scratch (BN_STATS_DOUBLES of the widest unit) */
    const BnSync *bn_sync; /* NULL: the batch is whole; else a slice, BN statistics summed
                              over the replicas through it (nn/ops.h) */
    /* generator */
    float **res_sum, **d_res_sum; /* r_i = r_{i-1} + t_i, i < R */
    float *y[3];                  /* G: y1 (H), y2 (H/2), y3 (H/4); D: y[0] = scores */
    int y_h[3], y_w[3];
    float *d_y[3];
    /* discriminator */
    float *d_input; /* d(loss)/d(input), filled by discriminator_backward */
} Activations;

/* with_grads: also reserve what backward needs. H and W must be multiples of 4 for G. */
int activations_init(Activations *acts, const Network *net, int batch, int h, int w,
                     int with_grads, char *err, size_t err_size);
void activations_free(Activations *acts);

/* G: gray [batch,1,h,w] in [-1,1] -> acts->y[0..2]. training: batch statistics.
 * (Any generator: input [batch,in_ch,h,w], outputs with out_ch channels.) */
void generator_forward(Network *g, Activations *acts, const float *gray, int training);
/* Back-propagates acts->d_y[0..2] (filled by the caller) into g's grads. */
void generator_backward(Network *g, Activations *acts);
/* The same, and also ADDS d(loss)/d(input) [batch,in_ch,h,w] to d_input: the
 * gradient passed on when the input is another network's output (learned F). */
void generator_backward_input(Network *g, Activations *acts, float *d_input);
/* D: rgb [batch,in_ch,h,w] -> acts->y[0] scores [batch,1,y_h[0],y_w[0]]. */
void discriminator_forward(Network *d, Activations *acts, const float *rgb, int training);
/* Back-propagates acts->d_y[0] into d's grads when param_grads is set (D's
 * own step, which has no use for d(input): acts->d_input is then left
 * alone), else into acts->d_input only (D passing the generator its
 * gradient). */
void discriminator_backward(Network *d, Activations *acts, int param_grads);
/* on: the network's weights will not change until this is called with 0,
 * so the convs may keep their transformed weights from one call to the next
 * (a training step's two pseudo-cycles). Either way the kept ones are
 * dropped. Off by default. */
void activations_reuse_weights(Activations *acts, int on);
/* Zeroes every activation gradient (call before filling d_y). */
void activations_zero_grads(Activations *acts);

#endif
