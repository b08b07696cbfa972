/* The networks' structure: parameter counts of the spec's default config,
 * the tensor table (state_dict paths and shapes), the receptive field derived
 * from the layer list, and the property that makes tiled inference exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/infer.h"
#include "nn/networks.h"
#include "testutil.h"

static char err[256];

/* the GEMM kernels, the best last (it stays selected after a loop over them) */
static const GemmKernel kernels[] = {GEMM_KERNEL_SCALAR, GEMM_KERNEL_AVX2, GEMM_KERNEL_AVX512};
static const char *names[] = {"scalar", "avx2", "avx512"};

static void test_default_counts(void) {
    ModelConfig cfg = model_config_default();
    Network g, d;
    CHECK(network_init_generator(&g, &cfg, err, sizeof err) == 0, "init G: %s", err);
    CHECK(network_init_discriminator(&d, &cfg, err, sizeof err) == 0, "init D: %s", err);
    CHECK(g.num_params == 1951171, "G has %zu parameters, spec says 1,951,171", g.num_params);
    CHECK(d.num_params == 695137, "D has %zu parameters, spec says 695,137", d.num_params);
    const TensorInfo *t = network_find_tensor(&g, "enc0/conv/weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 32 && t->shape[1] == 1 && t->shape[2] == 7,
          "enc0/conv/weight [32,1,7,7]");
    t = network_find_tensor(&g, "res5/bn2/running_var");
    CHECK(t && t->grad == NULL && t->count == 128, "res5/bn2/running_var is a 128 buffer");
    CHECK(t && t->data[0] == 1.0f, "fresh running_var is 1");
    CHECK(network_find_tensor(&g, "head/conv/weight") != NULL, "head/conv/weight");
    CHECK(network_find_tensor(&g, "head/bn/weight") == NULL, "the head has no BN");
    CHECK(network_find_tensor(&d, "l4/conv/weight")->shape[1] == 256, "D l4 reads 8nd");
    CHECK(network_find_tensor(&d, "l0/bn/weight") == NULL, "D l0 has no BN");
    CHECK(g.num_tensors == 3 * 6 + 12 * 6 + 3 * 6 + 2, "G tensor count %d", g.num_tensors);

    ReceptiveField rf = generator_receptive_field(&g);
    printf("  default G: %zu parameters, D: %zu; receptive field %d px, radius %d, stride %d\n",
           g.num_params, d.num_params, rf.size, rf.radius, rf.stride);
    CHECK(rf.stride == 4, "total stride %d", rf.stride);
    CHECK(rf.size >= 110 && rf.size <= 125, "receptive field %d, spec says about 115", rf.size);
    CHECK(rf.radius >= 55 && rf.radius <= 62, "radius %d, spec says about 57", rf.radius);
    network_free(&g);
    network_free(&d);
}

static void test_config_json(void) {
    ModelConfig cfg = model_config_default(), back;
    cfg.ht[0] = 0.2f, cfg.ht[1] = 0.3f, cfg.ht[2] = 0.5f;
    cfg.num_scales = 1;
    char *json = model_config_to_json(&cfg);
    CHECK(model_config_from_json(&back, json, err, sizeof err) == 0, "parse own JSON: %s", err);
    CHECK(!memcmp(back.ht, cfg.ht, sizeof cfg.ht) && back.F == 32 && back.num_scales == 1 &&
              !strcmp(back.name, "spynco-s"),
          "config JSON round trip (%s)", json);
    free(json);
    const char *bad[] = {"{\"F\": 32}", "not json", "{\"name\":\"x\",\"F\":-1,\"K\":64,\"R\":6,"
                         "\"nd\":32,\"ht_weights\":[0.299,0.587,0.114],\"scales\":[1,2,3]}",
                         "{\"name\":\"x\",\"F\":32,\"K\":64,\"R\":6,\"nd\":32,"
                         "\"ht_weights\":[0.5,0.5,0.5],\"scales\":[1]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(model_config_from_json(&back, bad[i], err, sizeof err) == -1 && err[0],
              "bad config %zu accepted", i);
    }
}

/* A small G (F=8, K=16, R=2) with random weights and non-trivial BatchNorm:
 * random gamma, beta and running statistics, so eval mode is not an identity. */
static void small_generator(Network *g, unsigned long long seed) {
    ModelConfig cfg = model_config_default();
    cfg.F = 8, cfg.K = 16, cfg.R = 2;
    CHECK(network_init_generator(g, &cfg, err, sizeof err) == 0, "init: %s", err);
    network_init_weights(g, seed);
    TestRng rng = {seed};
    for (int i = 0; i < g->num_units; i++)
        if (g->units[i].has_bn)
            for (int c = 0; c < g->units[i].out_ch; c++) {
                g->units[i].bn_weight[c] = test_uniform(&rng, 0.5f, 1.5f);
                g->units[i].bn_bias[c] = test_uniform(&rng, -0.3f, 0.3f);
                g->units[i].running_mean[c] = test_uniform(&rng, -0.2f, 0.2f);
                g->units[i].running_var[c] = test_uniform(&rng, 0.5f, 1.5f);
            }
}

/* generator_infer on the ch x cw crop of img (H x W) at (ox, oy), told its
 * origin, on a work resized down to the crop, against its output yf on the
 * whole image: the crop's centre is identical, with a wrong origin it is
 * not, and told a wanted part it writes that part identically and skips the
 * work far outside it. */
static void check_infer_crop(const InferModel *m, const float *img, const float *yf, int H, int W,
                             int oy, int ox, int ch, int cw, int radius) {
    InferWork wp;
    float *crop = malloc(sizeof(float) * ch * cw), *yp = malloc(sizeof(float) * 3 * ch * cw);
    for (int y = 0; y < ch; y++) memcpy(crop + y * cw, img + (y + oy) * W + ox, sizeof(float) * cw);
    /* on a work made for a larger input (as colorize's partial tiles) */
    CHECK(infer_work_init(&wp, m, ch + 8, cw + 12, err, sizeof err) == 0, "%s", err);
    CHECK(infer_work_resize(&wp, ch + 12, cw) == -1 && infer_work_resize(&wp, ch, cw + 2) == -1,
          "infer_work_resize: a larger or unaligned size should not fit");
    CHECK(infer_work_resize(&wp, ch, cw) == 0, "infer_work_resize to %dx%d", cw, ch);
    generator_infer(m, &wp, crop, yp, ox, oy, NULL);
    long infer_differ = 0, infer_differ_inside = 0, compared = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++) {
                int inside = y >= radius && x >= radius && y < ch - radius && x < cw - radius;
                int d = yp[(c * ch + y) * cw + x] != yf[(c * H + y + oy) * W + x + ox];
                compared += inside;
                if (inside) infer_differ_inside += d;
                else infer_differ += d;
            }
    CHECK(infer_differ_inside == 0, "generator_infer at (%d, %d): %ld of %ld centre values differ",
          ox, oy, infer_differ_inside, compared);
    CHECK(infer_differ > 0, "generator_infer: border pixels should see the zero padding");
    /* and with the wrong origin the Winograd tiles fall on another grid */
    generator_infer(m, &wp, crop, yp, ox + 4, oy, NULL);
    long wrong = 0;
    for (int y = radius; y < ch - radius; y++)
        for (int x = radius; x < cw - radius; x++)
            wrong += yp[y * cw + x] != yf[(y + oy) * W + x + ox];
    CHECK(wrong > 0, "generator_infer at (%d, %d): the origin changes nothing", ox, oy);
    printf("  tiling, generator_infer at (%d, %d): centre identical; %ld centre values differ with "
           "a wrong origin\n", ox, oy, wrong);
    /* Told the part wanted (odd edges, to test the rounding to each layer's
     * scale), it writes that part with the full image's bits, and the work
     * outside it is skipped: pixels far from it are left untouched. */
    InferRect want = {radius + 1, ch - radius - 3, radius + 2, cw - radius - 1};
    for (int k = 0; k < 3 * ch * cw; k++) yp[k] = NAN;
    generator_infer(m, &wp, crop, yp, ox, oy, &want);
    long want_differ = 0, far = 0, far_written = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++) {
                float v = yp[(c * ch + y) * cw + x];
                if (y >= want.top && y < want.bottom && x >= want.left && x < want.right) {
                    want_differ += v != yf[(c * H + y + oy) * W + x + ox];
                } else if (y < want.top - 1 || y > want.bottom || x < want.left - 1 ||
                           x > want.right) { /* dec0 writes 2x2 blocks: 1 px beyond */
                    far++;
                    far_written += !isnan(v);
                }
            }
    CHECK(want_differ == 0, "generator_infer with a wanted part: %ld values in it differ",
          want_differ);
    CHECK(far > 0 && far_written == 0,
          "generator_infer with a wanted part: %ld of %ld values far outside it were computed",
          far_written, far);
    printf("  tiling, generator_infer on a wanted part: identical, %ld values outside not computed\n",
           far);
    free(crop), free(yp);
    infer_work_free(&wp);
}

/* In eval mode, an output pixel depends only on input pixels within the
 * receptive field, when the crop's origin keeps the conv grids: so a crop's
 * centre equals the full image's output bit for bit. generator_forward's
 * Winograd tiles (2x2 at H/4) start at the map's corner, so its crops start
 * at multiples of 8; generator_infer is told the origin, multiples of 4 do. */
static void test_tiling_exact(void) {
    Network g;
    small_generator(&g, 7);
    TestRng rng = {99};
    ReceptiveField rf = generator_receptive_field(&g);
    int H = 200, W = 232, ch = 144, cw = 152, oy = 28, ox = 52; /* odd multiples of 4 */
    int fy = oy - 4, fx = ox - 4; /* generator_forward's crop: multiples of 8 */
    float *img = malloc(sizeof(float) * H * W), *crop = malloc(sizeof(float) * ch * cw);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) img[y * W + x] = sinf(0.05f * x) * cosf(0.07f * y) + test_uniform(&rng, -0.3f, 0.3f);
    for (int y = 0; y < ch; y++) memcpy(crop + y * cw, img + (y + fy) * W + fx, sizeof(float) * cw);
    Activations full, part;
    CHECK(activations_init(&full, &g, 1, H, W, 0, err, sizeof err) == 0, "%s", err);
    CHECK(activations_init(&part, &g, 1, ch, cw, 0, err, sizeof err) == 0, "%s", err);
    generator_forward(&g, &full, img, 0);
    generator_forward(&g, &part, crop, 0);
    long differ = 0, compared = 0, differ_inside = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++) {
                float a = part.y[0][(c * ch + y) * cw + x];
                float b = full.y[0][(c * H + y + fy) * W + x + fx];
                int inside = y >= rf.radius && x >= rf.radius && y < ch - rf.radius && x < cw - rf.radius;
                if (inside) {
                    compared++;
                    differ_inside += a != b;
                } else {
                    differ += a != b;
                }
            }
    CHECK(compared > 0 && differ_inside == 0,
          "%ld of %ld pixels within the receptive field's reach differ", differ_inside, compared);
    /* The check must be able to fail: near the crop's border the outputs do differ. */
    CHECK(differ > 0, "border pixels should see the zero padding");
    printf("  tiling: %ld centre values identical, %ld border values differ (radius %d)\n", compared,
           differ, rf.radius);

    /* The same for generator_infer, told the crop's origin: at H/4 odd (28 / 4,
     * 52 / 4) and even (24 / 4, 48 / 4), as its Winograd tiles (F(2x2, 3x3) at
     * H/4; F(2x2, 2x2) for dec1 at H/4, dec0 at H/2) must follow the full
     * image's grid. */
    InferModel m;
    InferWork wf;
    float *yf = malloc(sizeof(float) * 3 * H * W);
    CHECK(infer_model_init(&m, &g, err, sizeof err) == 0, "%s", err);
    CHECK(infer_work_init(&wf, &m, H, W, err, sizeof err) == 0, "%s", err);
    generator_infer(&m, &wf, img, yf, 0, 0, NULL);
    check_infer_crop(&m, img, yf, H, W, oy, ox, ch, cw, rf.radius);
    check_infer_crop(&m, img, yf, H, W, fy, fx, ch, cw, rf.radius);
    free(yf);
    infer_work_free(&wf);
    infer_model_free(&m);
    free(img), free(crop);
    activations_free(&full);
    activations_free(&part);
    network_free(&g);
}

/* act(x) in double, for the reference below */
static double act_ref(double x, Activation act) {
    switch (act) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_LEAKY_RELU: return x > 0 ? x : 0.2 * x;
    case ACT_TANH: return tanh(x);
    default: return x;
    }
}

/* out [co, 2h, 2w] = act(conv3x3(upsample2x(in)) + bias), in [ci, h, w], in
 * double and directly: the arithmetic before Winograd or phases. */
static void up_conv_ref(double *out, const double *in, const FusedConv *f, int h, int w) {
    for (int co = 0; co < f->out_ch; co++)
        for (int y = 0; y < 2 * h; y++)
            for (int x = 0; x < 2 * w; x++) {
                double s = f->bias[co];
                for (int ci = 0; ci < f->in_ch; ci++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int uy = y + ki - 1, ux = x + kj - 1;
                            if (uy >= 0 && uy < 2 * h && ux >= 0 && ux < 2 * w)
                                s += f->weight[((co * f->in_ch + ci) * 3 + ki) * 3 + kj] *
                                     in[((size_t)ci * h + uy / 2) * w + ux / 2];
                        }
                out[((size_t)co * 2 * h + y) * 2 * w + x] = act_ref(s, f->act);
            }
}

/* generator_infer's decoder after dec2 (dec1, dec0 and the head, as Winograd
 * F(2x2, 2x2) per phase) against the direct upsample + conv in double, from
 * the dec2 output it stored, for both tile grid parities at H/4 (origin 0 or
 * 4): independent of nn/winograd_phase.h, which the eval forward shares. */
static void check_decoder_direct(const InferModel *m, InferWork *work, const float *img, float *rgb,
                                 const char *kernel) {
    int H = work->h, W = work->w, d2 = 3 + 2 * m->cfg.R;
    const FusedConv *dec1 = &m->units[d2 + 1], *dec0 = dec1 + 1, *head = dec1 + 2;
    size_t n2 = (size_t)dec1->in_ch * H / 4 * W / 4;
    double *x2 = malloc(sizeof(double) * n2);
    double *x1 = malloc(sizeof(double) * dec1->out_ch * H / 2 * W / 2);
    double *x0 = malloc(sizeof(double) * dec0->out_ch * H * W);
    for (int origin = 0; origin <= 4; origin += 4) {
        generator_infer(m, work, img, rgb, origin, origin, NULL);
        for (size_t i = 0; i < n2; i++) x2[i] = work->dec2[i];
        up_conv_ref(x1, x2, dec1, H / 4, W / 4);
        up_conv_ref(x0, x1, dec0, H / 2, W / 2);
        double most = 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < H * W; p++) {
                double s = head->bias[c];
                for (int i = 0; i < dec0->out_ch; i++)
                    s += head->weight[c * dec0->out_ch + i] * x0[(size_t)i * H * W + p];
                double d = fabs(act_ref(s, head->act) - rgb[c * H * W + p]);
                if (d > most) most = d;
            }
        CHECK(most < 1e-5, "%s, origin %d: decoder differs from the direct conv by %.3g", kernel,
              origin, most);
        printf("  %s, origin %d: decoder vs direct conv in double: max difference %.2e\n", kernel,
               origin, most);
    }
    free(x2), free(x1), free(x0);
}

/* The lean inference path (BN folded, fused epilogues, no stored dec0,
 * upsampling convs as phases, Winograd) computes the same y1 as the training
 * code's eval-mode forward, with every GEMM kernel this CPU has (the portable
 * one included, which also selects the portable Winograd transforms), and
 * its decoder the direct conv's (check_decoder_direct). */
static void test_infer_matches_forward(void) {
    Network g;
    small_generator(&g, 11);
    TestRng rng = {3};
    int H = 76, W = 100;
    float *img = malloc(sizeof(float) * H * W), *rgb = malloc(sizeof(float) * 3 * H * W);
    test_fill_uniform(&rng, img, (size_t)H * W, -1, 1);
    for (int k = 0; k < 3; k++) { /* the best kernel stays selected */
        if (gemm_set_kernel(kernels[k])) continue;
        Activations acts;
        InferModel m;
        InferWork work;
        CHECK(activations_init(&acts, &g, 1, H, W, 0, err, sizeof err) == 0, "%s", err);
        CHECK(infer_model_init(&m, &g, err, sizeof err) == 0, "%s", err);
        CHECK(infer_work_init(&work, &m, H, W, err, sizeof err) == 0, "%s", err);
        generator_forward(&g, &acts, img, 0);
        generator_infer(&m, &work, img, rgb, 0, 0, NULL);
        double e = test_rel_error(rgb, acts.y[0], (size_t)3 * H * W, 1.0);
        CHECK(e < 1e-5, "%s: fused inference differs from the eval forward by %.3g", names[k], e);
        printf("  %s: fused inference vs eval forward: max difference %.2e\n", names[k], e);
        check_decoder_direct(&m, &work, img, rgb, names[k]);
        activations_free(&acts);
        infer_work_free(&work);
        infer_model_free(&m);
    }
    free(img), free(rgb);
    network_free(&g);
}

/* One training forward and backward of g on gray with output gradients
 * from seed: y1 and the parameter gradients into out (count + num_params). */
static void train_pass(Network *g, Activations *A, const float *gray, float *out) {
    generator_forward(g, A, gray, 1);
    activations_zero_grads(A);
    TestRng rng = {7};
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < (size_t)3 * A->y_h[s] * A->y_w[s]; i++)
            A->d_y[s][i] = test_uniform(&rng, -1.0f, 1.0f);
    network_zero_grads(g);
    generator_backward(g, A);
    size_t n = (size_t)3 * A->y_h[0] * A->y_w[0];
    memcpy(out, A->y[0], n * sizeof(float));
    memcpy(out + n, g->grads.base, g->num_params * sizeof(float));
}

/* Kept transformed weights (activations_reuse_weights, which a training
 * step sets) give the same bits as transforming on every call, and turning
 * reuse on again drops them: changed weights are seen. */
static void test_reused_weights(void) {
    Network g;
    small_generator(&g, 11);
    Activations A;
    int H = 32, W = 32;
    CHECK(activations_init(&A, &g, 1, H, W, 1, err, sizeof err) == 0, "%s", err);
    float *gray = malloc((size_t)H * W * sizeof(float));
    TestRng rng = {3};
    for (int i = 0; i < H * W; i++) gray[i] = test_uniform(&rng, -1.0f, 1.0f);
    size_t n = (size_t)3 * H * W + g.num_params;
    float *fresh = malloc(n * sizeof(float)), *kept = malloc(n * sizeof(float));
    train_pass(&g, &A, gray, fresh);
    activations_reuse_weights(&A, 1);
    train_pass(&g, &A, gray, kept); /* transforms and keeps */
    train_pass(&g, &A, gray, kept); /* uses what it kept */
    CHECK(!memcmp(fresh, kept, n * sizeof(float)), "kept transformed weights change the results");
    const TensorInfo *t = network_find_tensor(&g, "res0/conv1/weight");
    for (size_t i = 0; i < t->count; i++) t->data[i] *= 1.5f;
    activations_reuse_weights(&A, 1); /* the weights changed */
    train_pass(&g, &A, gray, kept);
    activations_reuse_weights(&A, 0);
    train_pass(&g, &A, gray, fresh);
    CHECK(!memcmp(fresh, kept, n * sizeof(float)), "changed weights not seen after reuse restarts");
    free(gray), free(fresh), free(kept);
    activations_free(&A);
    network_free(&g);

    /* D's l3 (F(2x2, 4x4) from 15x15 outputs on): forward and d(input) */
    Network d;
    ModelConfig cfg = model_config_default();
    cfg.nd = 8;
    CHECK(network_init_discriminator(&d, &cfg, err, sizeof err) == 0, "init D: %s", err);
    network_init_weights(&d, 5);
    H = W = 128;
    CHECK(activations_init(&A, &d, 1, H, W, 1, err, sizeof err) == 0, "%s", err);
    CHECK(A.apps[3].weights.data[0] != NULL, "D's l3 keeps its transformed weights");
    float *rgb = malloc((size_t)3 * H * W * sizeof(float));
    test_fill_uniform(&rng, rgb, (size_t)3 * H * W, -1.0f, 1.0f);
    size_t scores = (size_t)A.y_h[0] * A.y_w[0];
    n = scores + d.num_params;
    fresh = malloc(n * sizeof(float)), kept = malloc(n * sizeof(float));
    for (int pass = 0; pass < 3; pass++) { /* fresh; then kept: transformed, then reused */
        if (pass < 2) activations_reuse_weights(&A, pass);
        discriminator_forward(&d, &A, rgb, 1);
        activations_zero_grads(&A);
        for (size_t i = 0; i < scores; i++) A.d_y[0][i] = A.y[0][i];
        network_zero_grads(&d);
        discriminator_backward(&d, &A, 1); /* l3's d(input) feeds l2's weight gradient */
        float *out = pass ? kept : fresh;
        memcpy(out, A.y[0], scores * sizeof(float));
        memcpy(out + scores, d.grads.base, d.num_params * sizeof(float));
    }
    CHECK(!memcmp(fresh, kept, n * sizeof(float)), "D: kept transformed weights change the results");
    free(rgb), free(fresh), free(kept);
    activations_free(&A);
    network_free(&d);
}

int main(void) {
    test_default_counts();
    test_infer_matches_forward();
    test_config_json();
    test_tiling_exact();
    test_reused_weights();
    return test_summary("test_networks");
}
