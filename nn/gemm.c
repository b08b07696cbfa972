#include "nn/gemm.h"

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define GEMM_X86 1
#include <immintrin.h>
#endif

/* Blocking: a KC x NR strip of packed B (32 KB for NR = 32) stays in L1 while
 * the MR-row strips of the packed MC x KC block of A stream from L2. */
#define GEMM_KC 256
#define GEMM_MC 128
#define MR_MAX 8
#define NR_MAX 32

/* Per-thread packing buffers: no allocation, nothing shared between threads. */
static _Thread_local struct {
    _Alignas(64) float a[GEMM_MC * GEMM_KC];
    _Alignas(64) float b[GEMM_KC * NR_MAX];
    _Alignas(64) float tile[MR_MAX * NR_MAX];
} buf;

/* A matrix operand: element (i, j) is at p[i*rs + j*cs] (transposes swap rs and cs). */
typedef struct {
    const float *p;
    ptrdiff_t rs, cs;
} Mat;

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* ---- microkernels -------------------------------------------------------
 * Each sums a * b over kc steps from zero (a: MR values of A per step, b: NR
 * values of B per step, both packed), then C[0..MR, 0..NR] (row stride ldc)
 * += the sums if `add`, else = the sums. */

#define SCALAR_MR 4
#define SCALAR_NR 8
static void micro_scalar(int kc, const float *a, const float *b, float *c, int ldc, int add) {
    float acc[SCALAR_MR][SCALAR_NR] = {{0.0f}};
    for (int p = 0; p < kc; p++, a += SCALAR_MR, b += SCALAR_NR)
        for (int i = 0; i < SCALAR_MR; i++)
            for (int j = 0; j < SCALAR_NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < SCALAR_MR; i++)
        for (int j = 0; j < SCALAR_NR; j++)
            c[(size_t)i * ldc + j] = add ? c[(size_t)i * ldc + j] + acc[i][j] : acc[i][j];
}

#ifdef GEMM_X86
/* 6 x 16: 12 accumulators, 2 B vectors and a broadcast in 16 ymm registers. */
#define AVX2_MR 6
#define AVX2_NR 16
__attribute__((target("avx2,fma"))) static void micro_avx2(int kc, const float *a, const float *b,
                                                           float *c, int ldc, int add) {
    __m256 acc[AVX2_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < AVX2_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int p = 0; p < kc; p++, a += AVX2_MR, b += AVX2_NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < AVX2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < AVX2_MR; i++)
        for (int h = 0; h < 2; h++) {
            float *ch = c + (size_t)i * ldc + 8 * h;
            _mm256_storeu_ps(ch, add ? _mm256_add_ps(_mm256_loadu_ps(ch), acc[i][h]) : acc[i][h]);
        }
}

/* 8 x 32: 16 accumulators, 2 B vectors, a broadcast (32 zmm registers). */
#define AVX512_MR 8
#define AVX512_NR 32
__attribute__((target("avx512f"))) static void micro_avx512(int kc, const float *a, const float *b,
                                                            float *c, int ldc, int add) {
    __m512 acc[AVX512_MR][2];
#pragma GCC unroll 16
    for (int i = 0; i < AVX512_MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++, a += AVX512_MR, b += AVX512_NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
        for (int i = 0; i < AVX512_MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < AVX512_MR; i++)
        for (int h = 0; h < 2; h++) {
            float *ch = c + (size_t)i * ldc + 16 * h;
            _mm512_storeu_ps(ch, add ? _mm512_add_ps(_mm512_loadu_ps(ch), acc[i][h]) : acc[i][h]);
        }
}

/* dst[r*ldd + c] = src[c*lds + r] for r, c < 8. Packs the transposed B of the
 * weight gradient, where element-wise packing costs about a third of the FMAs' time. */
__attribute__((target("avx2"))) static void transpose8(float *dst, ptrdiff_t ldd, const float *src,
                                                       ptrdiff_t lds) {
    __m256 r[8], t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
}
#endif

/* ---- the blocked driver -------------------------------------------------
 * Always inlined into one copy per kernel: the tile size is then a constant
 * and the packing loops are vectorised for that kernel's instruction set. */
#define INLINE static inline __attribute__((always_inline))
typedef void (*MicroFn)(int kc, const float *a, const float *b, float *c, int ldc, int add);
typedef void (*Transpose8Fn)(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds);

/* Rows i0..i0+mc, columns p0..p0+kc of A as MR-row strips: strip s, step p
 * holds rows s*MR..s*MR+MR at column p, zero past row mc. */
INLINE void pack_a(float *dst, Mat A, int i0, int p0, int mc, int kc, int mr) {
    for (int s = 0; s < mc; s += mr) {
        int rows = min_int(mr, mc - s);
        const float *src = A.p + (i0 + s) * A.rs + p0 * A.cs;
        if (rows == mr && A.cs == 1) /* the common case, as a vectorisable transpose */
            for (int p = 0; p < kc; p++, dst += mr)
                for (int r = 0; r < mr; r++) dst[r] = src[r * A.rs + p];
        else
            for (int p = 0; p < kc; p++, dst += mr)
                for (int r = 0; r < mr; r++) dst[r] = r < rows ? src[r * A.rs + p * A.cs] : 0.0f;
    }
}

/* Rows p0..p0+kc, columns j0..j0+nc of B as one NR-column strip, zero past
 * nc; t8 (if not NULL) transposes 8 x 8 blocks of a transposed B. */
INLINE void pack_b(float *dst, Mat B, int p0, int j0, int kc, int nc, int nr, Transpose8Fn t8) {
    const float *src = B.p + p0 * B.rs + j0 * B.cs;
    int p = 0;
    if (nc == nr && B.cs == 1)
        for (; p < kc; p++) memcpy(dst + p * nr, src + p * B.rs, nr * sizeof(float));
    else if (nc == nr && B.rs == 1 && t8)
        for (; p + 8 <= kc; p += 8)
            for (int j = 0; j < nr; j += 8) t8(dst + p * nr + j, nr, src + j * B.cs + p, B.cs);
    for (; p < kc; p++)
        for (int j = 0; j < nr; j++) dst[p * nr + j] = j < nc ? src[p * B.rs + j * B.cs] : 0.0f;
}

/* A partial tile runs the same kernel on a full-size copy, so its elements
 * get exactly the operations they would get in a full tile. */
INLINE void edge_tile(MicroFn micro, int nr_full, int kc, const float *a, const float *b, float *c,
                      int ldc, int mr, int nr, int add) {
    float *t = buf.tile;
    for (int i = 0; i < mr && add; i++)
        for (int j = 0; j < nr; j++) t[i * nr_full + j] = c[(size_t)i * ldc + j];
    micro(kc, a, b, t, nr_full, add);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) c[(size_t)i * ldc + j] = t[i * nr_full + j];
}

/* C = (add ? C : 0) + A*B with an MR x NR microkernel. A is packed here,
 * or, if `packed` is not NULL, was packed by gemm_pack (same layout). */
INLINE void blocked(int m, int n, int k, Mat A, const float *packed, Mat B, int add, float *C,
                    int ldc, int MR, int NR, MicroFn micro, Transpose8Fn t8) {
    const int mc_max = GEMM_MC - GEMM_MC % MR;
    if (k <= 0 && !add)
        for (int i = 0; i < m; i++) memset(C + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
    for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
        int kc = min_int(GEMM_KC, k - p0), add_block = add || p0 > 0;
        for (int i0 = 0; i0 < m; i0 += mc_max) {
            int mc = min_int(mc_max, m - i0);
            const float *a_block = buf.a;
            if (packed)
                a_block = packed + (size_t)p0 * round_up(m, MR) + (size_t)i0 * kc;
            else
                pack_a(buf.a, A, i0, p0, mc, kc, MR);
            for (int j0 = 0; j0 < n; j0 += NR) {
                int nr = min_int(NR, n - j0);
                /* B rows of exactly NR contiguous, aligned columns are already packed */
                const float *b_strip = B.p + (size_t)p0 * NR;
                if (!(n == NR && B.cs == 1 && B.rs == NR && (uintptr_t)B.p % 64 == 0)) {
                    pack_b(buf.b, B, p0, j0, kc, nr, NR, t8);
                    b_strip = buf.b;
                }
                for (int i = 0; i < mc; i += MR) {
                    const float *a = a_block + (size_t)i * kc;
                    float *c = C + (size_t)(i0 + i) * ldc + j0;
                    int mr = min_int(MR, mc - i);
                    if (mr == MR && nr == NR)
                        micro(kc, a, b_strip, c, ldc, add_block);
                    else
                        edge_tile(micro, NR, kc, a, b_strip, c, ldc, mr, nr, add_block);
                }
            }
        }
    }
}

typedef void (*GemmFn)(int m, int n, int k, Mat A, const float *packed, Mat B, int add, float *C,
                       int ldc);

static void gemm_scalar(int m, int n, int k, Mat A, const float *packed, Mat B, int add, float *C,
                        int ldc) {
    blocked(m, n, k, A, packed, B, add, C, ldc, SCALAR_MR, SCALAR_NR, micro_scalar, NULL);
}

#ifdef GEMM_X86
__attribute__((target("avx2,fma"))) static void gemm_avx2(int m, int n, int k, Mat A,
                                                          const float *packed, Mat B, int add,
                                                          float *C, int ldc) {
    blocked(m, n, k, A, packed, B, add, C, ldc, AVX2_MR, AVX2_NR, micro_avx2, transpose8);
}

__attribute__((target("avx512f"))) static void gemm_avx512(int m, int n, int k, Mat A,
                                                           const float *packed, Mat B, int add,
                                                           float *C, int ldc) {
    blocked(m, n, k, A, packed, B, add, C, ldc, AVX512_MR, AVX512_NR, micro_avx512, transpose8);
}
#endif

/* ---- dispatch -------------------------------------------------------------- */

static const GemmFn kernels[] = {
    [GEMM_KERNEL_SCALAR] = gemm_scalar,
#ifdef GEMM_X86
    [GEMM_KERNEL_AVX2] = gemm_avx2,
    [GEMM_KERNEL_AVX512] = gemm_avx512,
#endif
};

static int cpu_has(GemmKernel kernel) {
    switch (kernel) {
    case GEMM_KERNEL_SCALAR:
        return 1;
#ifdef GEMM_X86
    case GEMM_KERNEL_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GEMM_KERNEL_AVX512:
        return __builtin_cpu_supports("avx512f");
#endif
    default:
        return 0;
    }
}

/* -1 until the first call picks the best kernel; every thread picks the same. */
static atomic_int selected = -1;

int gemm_set_kernel(GemmKernel kernel) {
    if (!cpu_has(kernel)) return -1;
    atomic_store_explicit(&selected, (int)kernel, memory_order_relaxed);
    return 0;
}

static const int kernel_mr[] = {
    [GEMM_KERNEL_SCALAR] = SCALAR_MR,
#ifdef GEMM_X86
    [GEMM_KERNEL_AVX2] = AVX2_MR,
    [GEMM_KERNEL_AVX512] = AVX512_MR,
#endif
};

static int current_kernel(void) {
    int kernel = atomic_load_explicit(&selected, memory_order_relaxed);
    if (kernel < 0) {
        kernel = cpu_has(GEMM_KERNEL_AVX512) ? GEMM_KERNEL_AVX512
                 : cpu_has(GEMM_KERNEL_AVX2) ? GEMM_KERNEL_AVX2
                                             : GEMM_KERNEL_SCALAR;
        atomic_store_explicit(&selected, kernel, memory_order_relaxed);
    }
    return kernel;
}

GemmKernel gemm_current_kernel(void) { return (GemmKernel)current_kernel(); }

static void gemm(int m, int n, int k, Mat A, Mat B, float beta, float *C, int ldc) {
    assert(beta == 0.0f || beta == 1.0f);
    kernels[current_kernel()](m, n, k, A, NULL, B, beta != 0.0f, C, ldc);
}

void gemm_nn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc) {
    gemm(m, n, k, (Mat){A, lda, 1}, (Mat){B, ldb, 1}, beta, C, ldc);
}

void gemm_tn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc) {
    gemm(m, n, k, (Mat){A, 1, lda}, (Mat){B, ldb, 1}, beta, C, ldc);
}

void gemm_nt(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc) {
    gemm(m, n, k, (Mat){A, lda, 1}, (Mat){B, 1, ldb}, beta, C, ldc);
}

/* ---- pre-packed A ------------------------------------------------------------
 * The layout blocked() packs per k block, for all m rows at once: k block p0
 * starts at p0 * round_up(m, MR), its MR-row strips follow each other. */

size_t gemm_packed_floats(int m, int k) { return (size_t)k * (m + MR_MAX - 1); }

void gemm_pack(GemmPacked *p, float *data, const float *A, int lda, int m, int k) {
    gemm_packed_layout(p, data, m, k);
    int mr = kernel_mr[p->kernel];
    /* full 8-row strips (AVX-512's, whose CPUs have AVX2) go as 8x8 transposes */
    int by_transpose = mr == 8 && p->kernel == GEMM_KERNEL_AVX512;
    Mat a = {A, lda, 1};
    for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
        int kc = min_int(GEMM_KC, k - p0);
        float *dst = data + (size_t)p0 * round_up(m, mr);
        for (int s = 0; s < m; s += mr) { /* strip by strip: pack_a's row limit is per call */
            int p = 0;
#ifdef GEMM_X86
            if (by_transpose && s + 8 <= m)
                for (; p + 8 <= kc; p += 8, dst += 64)
                    transpose8(dst, 8, A + (size_t)s * lda + p0 + p, lda);
#else
            (void)by_transpose;
#endif
            for (; p < kc; p++, dst += mr)
                for (int r = 0; r < mr; r++)
                    dst[r] = s + r < m ? a.p[(s + r) * a.rs + (p0 + p) * a.cs] : 0.0f;
        }
    }
}

void gemm_packed_layout(GemmPacked *p, float *data, int m, int k) {
    p->m = m, p->k = k, p->kernel = current_kernel(), p->data = data;
}

int gemm_packed_strip(const GemmPacked *p) { return kernel_mr[p->kernel]; }

size_t gemm_packed_offset(const GemmPacked *p, int row, int col) {
    int mr = kernel_mr[p->kernel], p0 = col / GEMM_KC * GEMM_KC, kc = min_int(GEMM_KC, p->k - p0);
    return (size_t)p0 * round_up(p->m, mr) + (size_t)(row / mr) * mr * kc + (size_t)(col - p0) * mr +
           row % mr;
}

void gemm_packed_nn(int n, const GemmPacked *A, const float *B, int ldb, float beta, float *C,
                    int ldc) {
    assert(beta == 0.0f || beta == 1.0f);
    kernels[A->kernel](A->m, n, A->k, (Mat){NULL, 0, 0}, A->data, (Mat){B, ldb, 1}, beta != 0.0f,
                       C, ldc);
}
