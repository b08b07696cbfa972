#include "nn/networks.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"

#define LEAKY_SLOPE 0.2f

/* ---- building the unit lists ------------------------------------------- */

static void unit_set(ConvUnit *u, const char *conv_path, const char *bn_path, int in_ch,
                     int out_ch, int kernel, int stride, int pad, Activation act) {
    memset(u, 0, sizeof *u);
    snprintf(u->conv_path, sizeof u->conv_path, "%s", conv_path);
    if (bn_path) snprintf(u->bn_path, sizeof u->bn_path, "%s", bn_path);
    u->has_bn = bn_path != NULL;
    u->in_ch = in_ch;
    u->out_ch = out_ch;
    u->kernel = kernel;
    u->stride = stride;
    u->pad = pad;
    u->act = act;
}

static void add_tensor(Network *net, const char *unit_path, const char *leaf, float *data,
                       float *grad, int ndim, const int *shape) {
    TensorInfo *t = &net->tensors[net->num_tensors++];
    snprintf(t->path, sizeof t->path, "%s/%s", unit_path, leaf);
    t->data = data;
    t->grad = grad;
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
}

/* Lays out (or, on a counting arena, sizes) the views of every unit, and
 * records the tensor table on the real pass. Same call order in all blocks. */
static void layout_units(Network *net, int real) {
    Arena *p = &net->params, *g = &net->grads, *b = &net->buffers;
    net->num_tensors = 0;
    net->num_params = 0;
    for (int i = 0; i < net->num_units; i++) {
        ConvUnit *u = &net->units[i];
        size_t wcount = (size_t)u->out_ch * u->in_ch * u->kernel * u->kernel;
        u->weight = arena_take(p, wcount);
        u->dweight = arena_take(g, wcount);
        u->bias = arena_take(p, u->out_ch);
        u->dbias = arena_take(g, u->out_ch);
        net->num_params += wcount + u->out_ch;
        if (u->has_bn) {
            u->bn_weight = arena_take(p, u->out_ch);
            u->dbn_weight = arena_take(g, u->out_ch);
            u->bn_bias = arena_take(p, u->out_ch);
            u->dbn_bias = arena_take(g, u->out_ch);
            u->running_mean = arena_take(b, u->out_ch);
            u->running_var = arena_take(b, u->out_ch);
            net->num_params += 2 * (size_t)u->out_ch;
        }
        if (!real) continue;
        int wshape[4] = {u->out_ch, u->in_ch, u->kernel, u->kernel};
        add_tensor(net, u->conv_path, "weight", u->weight, u->dweight, 4, wshape);
        add_tensor(net, u->conv_path, "bias", u->bias, u->dbias, 1, &u->out_ch);
        if (u->has_bn) {
            add_tensor(net, u->bn_path, "weight", u->bn_weight, u->dbn_weight, 1, &u->out_ch);
            add_tensor(net, u->bn_path, "bias", u->bn_bias, u->dbn_bias, 1, &u->out_ch);
            add_tensor(net, u->bn_path, "running_mean", u->running_mean, NULL, 1, &u->out_ch);
            add_tensor(net, u->bn_path, "running_var", u->running_var, NULL, 1, &u->out_ch);
        }
    }
}

static int network_finish(Network *net, char *err, size_t n) {
    net->params = net->grads = net->buffers = arena_counter();
    layout_units(net, 0);
    net->tensors = calloc((size_t)net->num_units * 6, sizeof *net->tensors);
    if (!net->tensors || arena_alloc(&net->params) || arena_alloc(&net->grads) ||
        arena_alloc(&net->buffers)) {
        snprintf(err, n, "out of memory allocating the network");
        network_free(net);
        return -1;
    }
    layout_units(net, 1);
    for (int i = 0; i < net->num_units; i++) /* PyTorch's fresh BatchNorm2d */
        if (net->units[i].has_bn)
            for (int c = 0; c < net->units[i].out_ch; c++) {
                net->units[i].bn_weight[c] = 1.0f;
                net->units[i].running_var[c] = 1.0f;
            }
    return 0;
}

static int network_begin(Network *net, NetKind kind, const ModelConfig *cfg, int in_ch, int out_ch,
                         int units, char *err, size_t n) {
    memset(net, 0, sizeof *net);
    char why[160];
    if (model_config_check(cfg, why, sizeof why)) {
        snprintf(err, n, "invalid model config: %s", why);
        return -1;
    }
    if (in_ch < 1 || in_ch > 3 || out_ch < 1 || out_ch > 3) {
        snprintf(err, n, "image channels must be 1..3 (in %d, out %d)", in_ch, out_ch);
        return -1;
    }
    net->kind = kind;
    net->cfg = *cfg;
    net->in_ch = in_ch, net->out_ch = out_ch;
    net->num_units = units;
    net->units = calloc((size_t)units, sizeof *net->units);
    if (!net->units) {
        snprintf(err, n, "out of memory allocating the network");
        return -1;
    }
    return 0;
}

/* G's unit order: enc0 enc1 enc2, res{i} conv1/conv2, dec2 dec1 dec0, head. */
enum { G_ENC0, G_ENC1, G_ENC2, G_RES0 };
static int g_dec2(const Network *g) { return G_RES0 + 2 * g->cfg.R; }

int network_init_generator(Network *net, const ModelConfig *cfg, char *err, size_t n) {
    return network_init_generator_channels(net, cfg, 1, 3, err, n);
}

int network_init_generator_channels(Network *net, const ModelConfig *cfg, int in_ch, int out_ch,
                                    char *err, size_t n) {
    if (network_begin(net, NET_GENERATOR, cfg, in_ch, out_ch, 3 + 2 * cfg->R + 4, err, n)) return -1;
    int F = cfg->F, K = cfg->K;
    ConvUnit *u = net->units;
    unit_set(&u[G_ENC0], "enc0/conv", "enc0/bn", in_ch, F, 7, 1, 3, ACT_RELU);
    unit_set(&u[G_ENC1], "enc1/conv", "enc1/bn", F, 2 * F, 3, 2, 1, ACT_RELU);
    unit_set(&u[G_ENC2], "enc2/conv", "enc2/bn", 2 * F, 4 * F, 3, 2, 1, ACT_RELU);
    for (int i = 0; i < cfg->R; i++) {
        char conv[32], bn[32];
        for (int j = 1; j <= 2; j++) {
            snprintf(conv, sizeof conv, "res%d/conv%d", i, j);
            snprintf(bn, sizeof bn, "res%d/bn%d", i, j);
            unit_set(&u[G_RES0 + 2 * i + j - 1], conv, bn, 4 * F, 4 * F, 3, 1, 1,
                     j == 1 ? ACT_RELU : ACT_NONE);
        }
    }
    int d2 = g_dec2(net);
    unit_set(&u[d2], "dec2/conv", "dec2/bn", 4 * F, K, 1, 1, 0, ACT_RELU);
    unit_set(&u[d2 + 1], "dec1/conv", "dec1/bn", K, K, 3, 1, 1, ACT_RELU);
    unit_set(&u[d2 + 2], "dec0/conv", "dec0/bn", K, K, 3, 1, 1, ACT_RELU);
    unit_set(&u[d2 + 3], "head/conv", NULL, K, out_ch, 1, 1, 0, ACT_TANH);
    u[d2 + 1].upsample_before = u[d2 + 2].upsample_before = 1;
    return network_finish(net, err, n);
}

int network_init_discriminator(Network *net, const ModelConfig *cfg, char *err, size_t n) {
    return network_init_discriminator_channels(net, cfg, 3, err, n);
}

int network_init_discriminator_channels(Network *net, const ModelConfig *cfg, int in_ch, char *err,
                                        size_t n) {
    if (network_begin(net, NET_DISCRIMINATOR, cfg, in_ch, 1, 5, err, n)) return -1;
    int nd = cfg->nd;
    ConvUnit *u = net->units;
    unit_set(&u[0], "l0/conv", NULL, in_ch, nd, 4, 2, 1, ACT_LEAKY_RELU);
    unit_set(&u[1], "l1/conv", "l1/bn", nd, 2 * nd, 4, 2, 1, ACT_LEAKY_RELU);
    unit_set(&u[2], "l2/conv", "l2/bn", 2 * nd, 4 * nd, 4, 2, 1, ACT_LEAKY_RELU);
    unit_set(&u[3], "l3/conv", "l3/bn", 4 * nd, 8 * nd, 4, 1, 1, ACT_LEAKY_RELU);
    unit_set(&u[4], "l4/conv", NULL, 8 * nd, 1, 4, 1, 1, ACT_NONE);
    return network_finish(net, err, n);
}

void network_free(Network *net) {
    arena_free(&net->params);
    arena_free(&net->grads);
    arena_free(&net->buffers);
    free(net->units);
    free(net->tensors);
    memset(net, 0, sizeof *net);
}

void network_zero_grads(Network *net) {
    if (net->grads.base) memset(net->grads.base, 0, net->grads.capacity * sizeof(float));
}

/* splitmix64: a seedable generator for initialisation, independent of libc. */
static double init_uniform(unsigned long long *state) {
    unsigned long long z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

void network_init_weights(Network *net, unsigned long long seed) {
    unsigned long long state = seed;
    for (int i = 0; i < net->num_units; i++) {
        ConvUnit *u = &net->units[i];
        int fan_in = u->in_ch * u->kernel * u->kernel;
        /* kaiming_uniform_(a=sqrt(5)) and the bias rule both give bound 1/sqrt(fan_in). */
        double bound = 1.0 / sqrt((double)fan_in);
        size_t wcount = (size_t)u->out_ch * fan_in;
        for (size_t k = 0; k < wcount; k++)
            u->weight[k] = (float)((2.0 * init_uniform(&state) - 1.0) * bound);
        for (int c = 0; c < u->out_ch; c++) {
            u->bias[c] = (float)((2.0 * init_uniform(&state) - 1.0) * bound);
            if (u->has_bn) {
                u->bn_weight[c] = 1.0f;
                u->bn_bias[c] = 0.0f;
                u->running_mean[c] = 0.0f;
                u->running_var[c] = 1.0f;
            }
        }
    }
}

const TensorInfo *network_find_tensor(const Network *net, const char *path) {
    for (int i = 0; i < net->num_tensors; i++)
        if (!strcmp(net->tensors[i].path, path)) return &net->tensors[i];
    return NULL;
}

/* ---- receptive field --------------------------------------------------- */

/* Walks an output pixel's dependency interval back through the units, for
 * every phase of the total stride, and keeps the widest reach on each side. */
ReceptiveField generator_receptive_field(const Network *g) {
    ReceptiveField rf = {0, 0, 1, 0};
    for (int i = 0; i < g->num_units; i++) {
        if (g->units[i].upsample_before) break;
        rf.stride *= g->units[i].stride;
    }
    /* The unit list, read backwards, is y1's data path: head, dec0, dec1, ... enc0. */
    int last = g->num_units - 1;
    long base = 1000L * rf.stride;
    for (int phase = 0; phase < rf.stride; phase++) {
        long x = base + phase, lo = x, hi = x;
        for (int i = last; i >= 0; i--) {
            const ConvUnit *u = &g->units[i];
            lo = lo * u->stride - u->pad;
            hi = hi * u->stride - u->pad + u->kernel - 1;
            if (u->upsample_before) { /* floor division: back to the pre-upsampling grid */
                lo = lo >= 0 ? lo / 2 : -((-lo + 1) / 2);
                hi = hi >= 0 ? hi / 2 : -((-hi + 1) / 2);
            }
        }
        int size = (int)(hi - lo + 1);
        int reach = (int)(x - lo > hi - x ? x - lo : hi - x);
        if (size > rf.size) rf.size = size;
        if (reach > rf.radius) rf.radius = reach;
    }
    rf.halo = (rf.radius + rf.stride - 1) / rf.stride * rf.stride;
    return rf;
}

/* ---- activations -------------------------------------------------------- */

/* Generator applications: every unit once, then the head twice more (on dec1
 * and dec2). Discriminator: every unit once. */
static int num_applications(const Network *net) {
    return net->kind == NET_GENERATOR ? net->num_units + 2 : net->num_units;
}

static const ConvUnit *app_unit(const Network *net, int app) {
    return &net->units[app < net->num_units ? app : net->num_units - 1];
}

static size_t shape_out_count(const ConvShape *s) {
    return (size_t)s->batch * s->out_ch * s->out_h * s->out_w;
}

/* Input (channels, h, w) of each application, from the one before it. */
static void app_shapes(const Network *net, ConvShape *shapes, int batch, int h, int w) {
    int apps = num_applications(net);
    int ch = net->in_ch;
    for (int a = 0; a < net->num_units; a++) {
        const ConvUnit *u = app_unit(net, a);
        if (u->upsample_before) h *= 2, w *= 2;
        shapes[a] = conv_shape(batch, ch, h, w, u->out_ch, u->kernel, u->stride, u->pad);
        shapes[a].upsampled = u->upsample_before; /* reads the stored half-size input */
        h = shapes[a].out_h;
        w = shapes[a].out_w;
        ch = u->out_ch;
    }
    if (net->kind == NET_GENERATOR) {
        /* the extra head applications read dec1 and dec2 */
        int d2 = g_dec2(net);
        const ConvUnit *head = &net->units[net->num_units - 1];
        for (int k = 0; k < 2; k++) {
            const ConvShape *src = &shapes[d2 + 1 - k];
            shapes[apps - 2 + k] = conv_shape(batch, src->out_ch, src->out_h, src->out_w, head->out_ch,
                                              head->kernel, head->stride, head->pad);
        }
    }
}

/* G's output gradients whose first write stores, so that nobody clears
 * them: dec0's (the head's d(input) on it), dec2's input (dec2's d(input)),
 * each residual block's inner one (its conv2's d(input)), the trunk's r_i
 * (the skip's copy of d r_{i+1}, before conv1's d(input) adds), enc0's and
 * enc1's (enc1's and enc2's d(input)). See generator_backward_input. The
 * rest (dec1's, dec2's, the heads') take several sums in turn. */
static int stored_d_out(const Network *net, int a) {
    if (net->kind != NET_GENERATOR) return 0;
    return a <= G_ENC2 || (a >= G_RES0 && a < g_dec2(net)) || a == g_dec2(net) + 2;
}
/* ... and the applications whose conv's d(input) is that first write */
static int stores_d_in(const Network *net, int a) {
    if (net->kind != NET_GENERATOR) return 0;
    int d2 = g_dec2(net);
    return a == G_ENC1 || a == G_ENC2 || a == d2 || a == net->num_units - 1 ||
           (a >= G_RES0 && a < d2 && (a - G_RES0) % 2 == 1);
}

static void layout_activations(Activations *A, const Network *net, const ConvShape *shapes) {
    Arena *ar = &A->arena;
    int apps = A->num_apps;
    size_t max_scratch = 0;
    for (int a = 0; a < apps; a++) {
        const ConvUnit *u = app_unit(net, a);
        UnitActs *x = &A->apps[a];
        size_t count = shape_out_count(&shapes[a]);
        x->shape = shapes[a];
        x->store_d_in = stores_d_in(net, a);
        x->conv_out = arena_take(ar, count);
        x->out = (u->has_bn || u->act != ACT_NONE) ? arena_take(ar, count) : x->conv_out;
        x->mean = arena_take(ar, u->out_ch);
        x->rstd = arena_take(ar, u->out_ch);
        size_t sc = conv_scratch_floats(&shapes[a], A->threads);
        if (sc > max_scratch) max_scratch = sc;
    }
    int R = net->kind == NET_GENERATOR ? net->cfg.R : 0;
    if (net->kind == NET_GENERATOR) {
        size_t res_count = shape_out_count(&shapes[G_ENC2]);
        for (int i = 0; i < R; i++) A->res_sum[i] = arena_take(ar, res_count);
    }
    A->scratch = arena_take(ar, max_scratch);
    if (!A->with_grads) return;
    for (int a = 0; a < apps; a++) { /* training only: two products per conv reuse them */
        size_t n = conv_weight_cache_floats(&shapes[a]);
        for (int k = 0; k < 2 && n; k++) A->apps[a].weights.data[k] = arena_take(ar, n);
    }
    /* Everything from here on is gradient. The gradients that backwards
     * accumulate into come first: activations_zero_grads clears them in one
     * go, from grads_start up to grads_end. After them: the output gradients
     * whose first writer stores (stored_d_out), and a BN unit's d_conv_out,
     * which its fused backward stores. */
    A->grads_start = ar->base ? ar->base + ar->used : NULL;
    for (int a = 0; a < apps; a++)
        if (!stored_d_out(net, a)) A->apps[a].d_out = arena_take(ar, shape_out_count(&shapes[a]));
    if (net->kind == NET_DISCRIMINATOR) {
        A->d_input = arena_take(ar, (size_t)shapes[0].batch * shapes[0].in_ch * shapes[0].in_h *
                                        shapes[0].in_w);
    }
    for (int pass = 0; pass < 2; pass++) { /* without BN, then with BN */
        for (int a = 0; a < apps; a++) {
            const ConvUnit *u = app_unit(net, a);
            UnitActs *x = &A->apps[a];
            if (u->has_bn != pass) continue;
            x->d_conv_out = (u->has_bn || u->act != ACT_NONE)
                                ? arena_take(ar, shape_out_count(&shapes[a]))
                                : x->d_out;
        }
        if (pass == 0) A->grads_end = ar->base ? ar->base + ar->used : NULL;
    }
    for (int a = 0; a < apps; a++)
        if (stored_d_out(net, a)) A->apps[a].d_out = arena_take(ar, shape_out_count(&shapes[a]));
}

/* Wires each application's input and input-gradient views. */
static void wire_applications(Activations *A, const Network *net) {
    UnitActs *x = A->apps;
    if (net->kind == NET_DISCRIMINATOR) {
        for (int a = 1; a < net->num_units; a++) x[a].d_in = x[a - 1].d_out;
        x[0].d_in = A->d_input;
        A->y[0] = x[net->num_units - 1].out;
        A->d_y[0] = x[net->num_units - 1].d_out;
        A->y_h[0] = x[net->num_units - 1].shape.out_h;
        A->y_w[0] = x[net->num_units - 1].shape.out_w;
        return;
    }
    int R = net->cfg.R, d2 = g_dec2(net), head = net->num_units - 1;
    x[G_ENC1].d_in = x[G_ENC0].d_out;
    x[G_ENC2].d_in = x[G_ENC1].d_out;
    for (int i = 0; i < R; i++) {
        UnitActs *c1 = &x[G_RES0 + 2 * i], *c2 = c1 + 1;
        /* r_i = r_{i-1} + t_i: d r_i is t_i's output gradient. */
        A->d_res_sum[i] = c2->d_out;
        c1->d_in = i ? A->d_res_sum[i - 1] : x[G_ENC2].d_out;
        c2->d_in = c1->d_out;
    }
    x[d2].d_in = R ? A->d_res_sum[R - 1] : x[G_ENC2].d_out;
    x[d2 + 1].d_in = x[d2].d_out; /* dec1 and dec0 read their input at half size */
    x[d2 + 2].d_in = x[d2 + 1].d_out;
    /* the head on dec0 -> y1, on dec1 -> y2, on dec2 -> y3 */
    int src[3] = {d2 + 2, d2 + 1, d2}, app[3] = {head, head + 1, head + 2};
    for (int s = 0; s < 3; s++) {
        x[app[s]].d_in = x[src[s]].d_out;
        A->y[s] = x[app[s]].out;
        A->d_y[s] = x[app[s]].d_out;
        A->y_h[s] = x[app[s]].shape.out_h;
        A->y_w[s] = x[app[s]].shape.out_w;
    }
}

int activations_init(Activations *A, const Network *net, int batch, int h, int w, int with_grads,
                     char *err, size_t n) {
    memset(A, 0, sizeof *A);
    if (net->kind == NET_GENERATOR && (h % 4 || w % 4 || h < 4 || w < 4)) {
        snprintf(err, n, "generator input %dx%d: sides must be positive multiples of 4", w, h);
        return -1;
    }
    A->batch = batch, A->h = h, A->w = w, A->with_grads = with_grads;
    A->threads = omp_get_max_threads();
    A->num_apps = num_applications(net);
    ConvShape *shapes = calloc((size_t)A->num_apps, sizeof *shapes);
    A->apps = calloc((size_t)A->num_apps, sizeof *A->apps);
    int R = net->kind == NET_GENERATOR ? net->cfg.R : 0;
    A->res_sum = calloc((size_t)R + 1, sizeof *A->res_sum);
    A->d_res_sum = calloc((size_t)R + 1, sizeof *A->d_res_sum);
    if (!shapes || !A->apps || !A->res_sum || !A->d_res_sum) goto oom;
    app_shapes(net, shapes, batch, h, w);
    if (net->kind == NET_DISCRIMINATOR) {
        const ConvShape *last = &shapes[net->num_units - 1];
        if (last->out_h < 1 || last->out_w < 1) {
            snprintf(err, n, "discriminator input %dx%d is too small (at least 24x24)", w, h);
            free(shapes);
            activations_free(A);
            return -1;
        }
    }
    int widest = 1;
    for (int i = 0; i < net->num_units; i++)
        if (net->units[i].has_bn && net->units[i].out_ch > widest) widest = net->units[i].out_ch;
    A->bn_stats = malloc(BN_STATS_DOUBLES(widest) * sizeof *A->bn_stats);
    if (!A->bn_stats) goto oom;
    A->arena = arena_counter();
    layout_activations(A, net, shapes);
    if (arena_alloc(&A->arena)) goto oom;
    layout_activations(A, net, shapes);
    wire_applications(A, net);
    free(shapes);
    return 0;
oom:
    snprintf(err, n, "out of memory for activations of a %dx%dx%d batch", batch, h, w);
    free(shapes);
    activations_free(A);
    return -1;
}

void activations_free(Activations *A) {
    arena_free(&A->arena);
    free(A->apps);
    free(A->res_sum);
    free(A->d_res_sum);
    free(A->bn_stats);
    memset(A, 0, sizeof *A);
}

void activations_reuse_weights(Activations *A, int on) {
    A->reuse_weights = on;
    for (int a = 0; a < A->num_apps; a++) A->apps[a].weights.valid[0] = A->apps[a].weights.valid[1] = 0;
}

void activations_zero_grads(Activations *A) {
    if (A->with_grads) zero_floats(A->grads_start, (size_t)(A->grads_end - A->grads_start));
}

/* ---- forward and backward ----------------------------------------------- */

/* A BN unit's activation as batchnorm_act's slope: BN units end in ReLU,
 * LeakyReLU or nothing (G's tanh head has no BN). */
static float bn_act_slope(Activation act) {
    return act == ACT_RELU ? 0.0f : act == ACT_LEAKY_RELU ? LEAKY_SLOPE : 1.0f;
}

static void unit_forward(const ConvUnit *u, UnitActs *x, const float *in, Activations *A,
                         int training) {
    x->in = in;
    ConvShape shape = x->shape;
    shape.training = training; /* picks the conv's forward algorithm (conv.h) */
    shape.weights = A->reuse_weights ? &x->weights : NULL;
    const ConvShape *s = &shape;
    size_t count = shape_out_count(s);
    conv2d_forward(x->conv_out, in, u->weight, u->bias, s, A->scratch);
    if (u->has_bn) {
        batchnorm_act_forward(x->out, x->mean, x->rstd, u->running_mean, u->running_var,
                              x->conv_out, u->bn_weight, u->bn_bias, bn_act_slope(u->act),
                              s->batch, s->out_ch, s->out_h * s->out_w, training, A->bn_sync,
                              A->bn_stats);
        return;
    }
    switch (u->act) {
    case ACT_RELU: relu_forward(x->out, x->conv_out, count); break;
    case ACT_LEAKY_RELU: leaky_relu_forward(x->out, x->conv_out, LEAKY_SLOPE, count); break;
    case ACT_TANH: tanh_forward(x->out, x->conv_out, count); break;
    case ACT_NONE: break;
    }
}

static void unit_backward(const ConvUnit *u, UnitActs *x, Activations *A, int param_grads) {
    ConvShape shape = x->shape;
    shape.weights = A->reuse_weights ? &x->weights : NULL;
    shape.store_din = x->store_d_in;
    const ConvShape *s = &shape;
    size_t count = shape_out_count(s);
    if (u->has_bn) { /* and the conv's bias gradient with it */
        batchnorm_act_backward(x->d_conv_out, param_grads ? u->dbn_weight : NULL,
                               param_grads ? u->dbn_bias : NULL, param_grads ? u->dbias : NULL,
                               x->d_out, x->conv_out, x->mean, x->rstd, u->bn_weight, u->bn_bias,
                               bn_act_slope(u->act), s->batch,
                               s->out_ch, s->out_h * s->out_w, 1, A->bn_sync, A->bn_stats);
    } else {
        switch (u->act) { /* into the zeroed d_conv_out (d_out itself without an activation) */
        case ACT_RELU: relu_backward(x->d_conv_out, x->d_out, x->out, count); break;
        case ACT_LEAKY_RELU:
            leaky_relu_backward(x->d_conv_out, x->d_out, x->out, LEAKY_SLOPE, count);
            break;
        case ACT_TANH: tanh_backward(x->d_conv_out, x->d_out, x->out, count); break;
        case ACT_NONE: break;
        }
    }
    conv2d_backward(x->d_in, param_grads ? u->dweight : NULL,
                    param_grads && !u->has_bn ? u->dbias : NULL,
                    x->d_conv_out, x->in, u->weight, s, A->scratch);
}

void generator_forward(Network *g, Activations *A, const float *gray, int training) {
    UnitActs *x = A->apps;
    ConvUnit *u = g->units;
    int R = g->cfg.R, d2 = g_dec2(g), head = g->num_units - 1;
    unit_forward(&u[G_ENC0], &x[G_ENC0], gray, A, training);
    unit_forward(&u[G_ENC1], &x[G_ENC1], x[G_ENC0].out, A, training);
    unit_forward(&u[G_ENC2], &x[G_ENC2], x[G_ENC1].out, A, training);
    const float *r = x[G_ENC2].out;
    size_t res_count = shape_out_count(&x[G_ENC2].shape);
    for (int i = 0; i < R; i++) {
        int c1 = G_RES0 + 2 * i;
        unit_forward(&u[c1], &x[c1], r, A, training);
        unit_forward(&u[c1 + 1], &x[c1 + 1], x[c1].out, A, training);
        float *sum = A->res_sum[i];
        const float *t = x[c1 + 1].out;
#pragma omp parallel for if (res_count > 32768)
        for (size_t k = 0; k < res_count; k++) sum[k] = r[k] + t[k];
        r = sum;
    }
    unit_forward(&u[d2], &x[d2], r, A, training);
    unit_forward(&u[d2 + 1], &x[d2 + 1], x[d2].out, A, training);
    unit_forward(&u[d2 + 2], &x[d2 + 2], x[d2 + 1].out, A, training);
    unit_forward(&u[head], &x[head], x[d2 + 2].out, A, training);
    unit_forward(&u[head], &x[head + 1], x[d2 + 1].out, A, training);
    unit_forward(&u[head], &x[head + 2], x[d2].out, A, training);
}

void generator_backward(Network *g, Activations *A) { generator_backward_input(g, A, NULL); }

void generator_backward_input(Network *g, Activations *A, float *d_input) {
    UnitActs *x = A->apps;
    ConvUnit *u = g->units;
    int R = g->cfg.R, d2 = g_dec2(g), head = g->num_units - 1;
    for (int k = 2; k >= 0; k--) unit_backward(&u[head], &x[head + k], A, 1);
    unit_backward(&u[d2 + 2], &x[d2 + 2], A, 1);
    unit_backward(&u[d2 + 1], &x[d2 + 1], A, 1);
    unit_backward(&u[d2], &x[d2], A, 1);
    size_t res_count = shape_out_count(&x[G_ENC2].shape);
    for (int i = R - 1; i >= 0; i--) {
        int c1 = G_RES0 + 2 * i;
        /* r_i = r_{i-1} + t_i: the skip passes d r_i straight to r_{i-1}. */
        const float *d_sum = A->d_res_sum[i];
        float *d_prev = x[c1].d_in; /* its first write: stored_d_out */
#pragma omp parallel for if (res_count > 32768)
        for (size_t k = 0; k < res_count; k++) d_prev[k] = d_sum[k];
        unit_backward(&u[c1 + 1], &x[c1 + 1], A, 1);
        unit_backward(&u[c1], &x[c1], A, 1);
    }
    unit_backward(&u[G_ENC2], &x[G_ENC2], A, 1);
    unit_backward(&u[G_ENC1], &x[G_ENC1], A, 1);
    x[G_ENC0].d_in = d_input; /* NULL: G's gray input needs no gradient */
    unit_backward(&u[G_ENC0], &x[G_ENC0], A, 1);
}

void discriminator_forward(Network *d, Activations *A, const float *rgb, int training) {
    const float *in = rgb;
    for (int a = 0; a < d->num_units; a++) {
        unit_forward(&d->units[a], &A->apps[a], in, A, training);
        in = A->apps[a].out;
    }
}

void discriminator_backward(Network *d, Activations *A, int param_grads) {
    A->apps[0].d_in = param_grads ? NULL : A->d_input;
    for (int a = d->num_units - 1; a >= 0; a--)
        unit_backward(&d->units[a], &A->apps[a], A, param_grads);
}
