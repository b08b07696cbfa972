/* nn/gemm.h on every kernel this CPU can run (plain C, AVX2, AVX-512): the
 * three variants against a double-precision reference, with edge sizes,
 * padded leading dimensions and beta 0 / 1; and the determinism the tiled
 * inference relies on: an element's bits do not depend on which rows and
 * columns are computed with it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "testutil.h"

typedef enum { OP_NN, OP_TN, OP_NT } Op;
static const char *op_name[] = {"nn", "tn", "nt"};

/* One product C[m x n] (+)= op(A)[m x k] * op(B)[k x n], operands stored as nn/conv.c does. */
typedef struct {
    Op op;
    int m, n, k, lda, ldb, ldc;
    float *a, *b;
} Prod;

static TestRng rng = {2024};

static float a_at(const Prod *p, int i, int q) {
    return p->op == OP_TN ? p->a[(size_t)q * p->lda + i] : p->a[(size_t)i * p->lda + q];
}
static float b_at(const Prod *p, int q, int j) {
    return p->op == OP_NT ? p->b[(size_t)j * p->ldb + q] : p->b[(size_t)q * p->ldb + j];
}

static void gemm(Op op, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc) {
    if (op == OP_NN) gemm_nn(m, n, k, a, lda, b, ldb, beta, c, ldc);
    if (op == OP_TN) gemm_tn(m, n, k, a, lda, b, ldb, beta, c, ldc);
    if (op == OP_NT) gemm_nt(m, n, k, a, lda, b, ldb, beta, c, ldc);
}

/* Random operands; leading dimensions padded by `pad` to catch stride mistakes. */
static Prod prod_new(Op op, int m, int n, int k, int pad) {
    Prod p = {op, m, n, k, 0, 0, n + pad, NULL, NULL};
    int a_rows = op == OP_TN ? k : m, a_cols = op == OP_TN ? m : k;
    int b_rows = op == OP_NT ? n : k, b_cols = op == OP_NT ? k : n;
    p.lda = a_cols + pad, p.ldb = b_cols + pad;
    p.a = malloc(sizeof(float) * (size_t)a_rows * p.lda);
    p.b = malloc(sizeof(float) * (size_t)b_rows * p.ldb);
    test_fill_uniform(&rng, p.a, (size_t)a_rows * p.lda, -1, 1);
    test_fill_uniform(&rng, p.b, (size_t)b_rows * p.ldb, -1, 1);
    return p;
}

static void prod_free(Prod *p) { free(p->a), free(p->b); }

/* Runs the product into C, whose row padding holds a sentinel, and checks each
 * element against the float rounding-error bound of a k-term sum:
 * |c - exact| <= (k+2) u (|c0| + sum |a b|), u = 2^-24. Returns the worst
 * error as a fraction of that bound. */
static double check_product(const Prod *p, float beta) {
    const float sentinel = 12345.0f;
    size_t nc = (size_t)p->m * p->ldc;
    float *c = malloc(sizeof(float) * nc), *c0 = malloc(sizeof(float) * nc);
    test_fill_uniform(&rng, c0, nc, -1, 1);
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->ldc; j++) {
            size_t e = (size_t)i * p->ldc + j;
            c[e] = j >= p->n ? sentinel : beta != 0.0f ? c0[e] : NAN; /* beta 0 must not read C */
        }
    gemm(p->op, p->m, p->n, p->k, p->a, p->lda, p->b, p->ldb, beta, c, p->ldc);
    double worst = 0.0;
    int bad = 0, touched = 0;
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->ldc; j++) {
            size_t e = (size_t)i * p->ldc + j;
            if (j >= p->n) {
                touched += c[e] != sentinel;
                continue;
            }
            double start = beta != 0.0f ? c0[e] : 0.0, sum = start, mag = fabs(start);
            for (int q = 0; q < p->k; q++) {
                double t = (double)a_at(p, i, q) * b_at(p, q, j);
                sum += t, mag += fabs(t);
            }
            double bound = (p->k + 2) * ldexp(mag, -24) + 1e-30, r = fabs(c[e] - sum) / bound;
            if (!(r <= 1.0)) bad++;
            if (!(r <= worst)) worst = r;
        }
    CHECK(bad == 0, "%s m=%d n=%d k=%d beta=%g: %d elements outside the error bound (worst %.3g)",
          op_name[p->op], p->m, p->n, p->k, (double)beta, bad, worst);
    CHECK(touched == 0, "%s m=%d n=%d k=%d: wrote %d elements past column n", op_name[p->op], p->m,
          p->n, p->k, touched);
    free(c), free(c0);
    return worst;
}

static void test_accuracy(const char *kernel) {
    static const int ms[] = {1, 3, 8, 13, 64}, ns[] = {1, 31, 33, 100}, ks[] = {1, 49, 300};
    double worst = 0.0;
    for (int op = OP_NN; op <= OP_NT; op++) {
        for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                    Prod p = prod_new((Op)op, ms[a], ns[b], ks[c], (int)(a + b + c) % 3 * 5);
                    for (int beta = 0; beta <= 1; beta++)
                        worst = fmax(worst, check_product(&p, (float)beta));
                    prod_free(&p);
                }
        /* Several k blocks and m blocks, a partial last strip of columns. */
        Prod p = prod_new((Op)op, 261, 70, 600, 3);
        worst = fmax(worst, check_product(&p, 1.0f));
        prod_free(&p);
    }
    printf("  %-6s accuracy: worst error %.3f of the float error bound\n", kernel, worst);
}

/* Computes rows i0..i0+ms, columns j0..j0+ns of the product on their own,
 * starting from the same C values, with operands either at their offset in
 * the full storage or copied to compact storage (other leading dimensions),
 * and compares the bits with the full product. */
static int subset_differs(const Prod *p, const float *c0, const float *full, int i0, int ms, int j0,
                          int ns, int compact) {
    const float *a = p->op == OP_TN ? p->a + i0 : p->a + (size_t)i0 * p->lda;
    const float *b = p->op == OP_NT ? p->b + (size_t)j0 * p->ldb : p->b + j0;
    int lda = p->lda, ldb = p->ldb;
    float *a_copy = NULL, *b_copy = NULL;
    if (compact) {
        int a_rows = p->op == OP_TN ? p->k : ms, a_cols = p->op == OP_TN ? ms : p->k;
        int b_rows = p->op == OP_NT ? ns : p->k, b_cols = p->op == OP_NT ? p->k : ns;
        a_copy = malloc(sizeof(float) * (size_t)a_rows * a_cols);
        b_copy = malloc(sizeof(float) * (size_t)b_rows * b_cols);
        for (int r = 0; r < a_rows; r++)
            memcpy(a_copy + (size_t)r * a_cols, a + (size_t)r * lda, sizeof(float) * a_cols);
        for (int r = 0; r < b_rows; r++)
            memcpy(b_copy + (size_t)r * b_cols, b + (size_t)r * ldb, sizeof(float) * b_cols);
        a = a_copy, b = b_copy, lda = a_cols, ldb = b_cols;
    }
    float *c = malloc(sizeof(float) * (size_t)ms * ns);
    for (int i = 0; i < ms; i++)
        memcpy(c + (size_t)i * ns, c0 + (size_t)(i0 + i) * p->ldc + j0, sizeof(float) * ns);
    gemm(p->op, ms, ns, p->k, a, lda, b, ldb, 1.0f, c, ns);
    int differs = 0;
    for (int i = 0; i < ms; i++)
        differs |= memcmp(c + (size_t)i * ns, full + (size_t)(i0 + i) * p->ldc + j0,
                          sizeof(float) * ns) != 0;
    free(a_copy), free(b_copy), free(c);
    return differs;
}

static void test_subsets_exact(const char *kernel) {
    /* {i0, ms, j0, ns}: columns land at other positions within the kernel's
     * strips (offsets 1, 7, 33, ...), rows in other strips and blocks. */
    static const int subsets[][4] = {
        {0, 150, 1, 100},  {0, 150, 7, 17},   {0, 150, 33, 1},    {0, 150, 100, 400},
        {0, 150, 499, 1},  {1, 9, 0, 530},    {5, 1, 0, 530},     {13, 130, 0, 530},
        {129, 21, 0, 530}, {77, 3, 250, 250}, {140, 10, 511, 19},
    };
    int m = 150, n = 530, k = 300; /* several k blocks, m blocks and column strips */
    for (int op = OP_NN; op <= OP_NT; op++) {
        Prod p = prod_new((Op)op, m, n, k, 0);
        float *c0 = malloc(sizeof(float) * (size_t)m * n), *full = malloc(sizeof(float) * m * n);
        test_fill_uniform(&rng, c0, (size_t)m * n, -1, 1); /* as if a bias */
        memcpy(full, c0, sizeof(float) * m * n);
        gemm(p.op, m, n, k, p.a, p.lda, p.b, p.ldb, 1.0f, full, p.ldc);
        int differ = 0;
        for (size_t s = 0; s < sizeof subsets / sizeof *subsets; s++) {
            const int *q = subsets[s];
            for (int compact = 0; compact <= 1; compact++) {
                int d = subset_differs(&p, c0, full, q[0], q[1], q[2], q[3], compact);
                CHECK(!d,
                      "%s %s: rows %d+%d, columns %d+%d (%s storage) differ from the full product",
                      kernel, op_name[op], q[0], q[1], q[2], q[3], compact ? "compact" : "offset");
                differ += d;
            }
        }
        printf("  %-6s %s: %d of %d row/column subsets bit-identical to the full product\n", kernel,
               op_name[op], (int)(2 * sizeof subsets / sizeof *subsets) - differ,
               (int)(2 * sizeof subsets / sizeof *subsets));
        free(c0), free(full);
        prod_free(&p);
    }
}

int main(void) {
    static const struct {
        GemmKernel id;
        const char *name;
    } kernels[] = {
        {GEMM_KERNEL_SCALAR, "scalar"}, {GEMM_KERNEL_AVX2, "avx2"}, {GEMM_KERNEL_AVX512, "avx512"}};
    CHECK(gemm_set_kernel(GEMM_KERNEL_SCALAR) == 0, "the plain C kernel must always be available");
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++) {
        if (gemm_set_kernel(kernels[i].id)) {
            printf("  %-6s not supported by this CPU: skipped\n", kernels[i].name);
            continue;
        }
        test_accuracy(kernels[i].name);
        test_subsets_exact(kernels[i].name);
    }
    return test_summary("test_gemm");
}
