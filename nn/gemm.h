/* gemm.h: single-threaded SGEMM for the convolutions (row-major, float32).
 *
 * Design (Goto/BLIS style): k is cut into blocks of GEMM_KC, m into blocks of
 * about GEMM_MC rows. Per block, the rows of A are packed into MR-row strips
 * and the columns of B into NR-column strips, both contiguous in the order
 * the microkernel reads them, zero-padded at the edges; the microkernel keeps
 * an MR x NR tile of C in registers, broadcasting one A value per row and
 * loading NR B values per k step. The packing buffers are thread-local
 * statics (about 160 KB per thread), so calls allocate nothing, share no
 * mutable state and may run in parallel from OpenMP threads; each call uses
 * only its own thread.
 *
 * Dispatch: the microkernel is chosen once at run time, so the portable build
 * (no -march) still uses AVX-512 where the CPU has it: AVX-512F 8 x 32,
 * AVX2+FMA 6 x 16, or plain C 4 x 8 (the SIMD kernels are compiled with GCC
 * target attributes).
 *
 * Determinism: k is cut at fixed multiples of GEMM_KC. For each k block the
 * microkernel sums A[i,p]*B[p,j] from zero, p in increasing order (an FMA per
 * step in the SIMD kernels, a multiply and an add in plain C), then adds the
 * block's sum to C (or stores it, for beta 0 on the first block). Edge tiles
 * run the same kernel on a zero-padded copy. So each C element gets the same
 * operations on its own row of A and column of B whatever m, n or its place
 * in C: a pixel gets the same bits in any column block (tiled inference is
 * exact). Summing each block from zero also keeps the error independent of
 * C's magnitude (the weight gradient accumulates many blocks into C).
 *
 * beta must be 0 (C is overwritten, never read) or 1 (C is accumulated into).
 * Not named sgemm_nn etc.: libopenblas exports those names internally, and
 * ours would interpose on them and break cblas_sgemm in the same process.
 */
#ifndef SPYNCO_GEMM_H
#define SPYNCO_GEMM_H

#include <stddef.h>

/* C[m x n] = beta*C + A[m x k] * B[k x n] */
void gemm_nn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);
/* C[m x n] = beta*C + A^T * B[k x n], A stored as k x m */
void gemm_tn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);
/* C[m x n] = beta*C + A[m x k] * B^T, B stored as n x k */
void gemm_nt(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);

/* For tests and benchmarks: selects the microkernel used by later calls (the
 * best one the CPU supports is the default). Returns 0, or -1 if this CPU
 * cannot run it (the selection is then unchanged). Set it before parallel
 * work starts: products from different kernels differ in the last bits. */
typedef enum { GEMM_KERNEL_SCALAR, GEMM_KERNEL_AVX2, GEMM_KERNEL_AVX512 } GemmKernel;
int gemm_set_kernel(GemmKernel kernel);
/* The microkernel later calls use. */
GemmKernel gemm_current_kernel(void);

/* An A operand used for many products (a layer's weights), packed once in the
 * layout of the microkernel selected when it was packed; products with it use
 * that kernel and give the same bits as gemm_nn with it. */
typedef struct {
    int m, k;
    GemmKernel kernel;
    float *data; /* gemm_packed_floats(m, k) floats, the caller's memory */
} GemmPacked;
size_t gemm_packed_floats(int m, int k);
/* Packs A [m x k] (row stride lda) into data. */
void gemm_pack(GemmPacked *packed, float *data, const float *A, int lda, int m, int k);
/* Filling a packed operand in place (the Winograd weight transforms compute
 * A's entries): gemm_packed_layout sets p up over data for m x k and the
 * current kernel without writing anything; the caller then writes every
 * entry, and zeros in rows m .. up to the next multiple of the strip. Rows
 * r0 .. r0+strip-1 (r0 a multiple of gemm_packed_strip) of column c lie
 * contiguous from gemm_packed_offset(p, r0, c), and for c a multiple of a
 * power of two q <= 256, columns c .. c+q-1 follow each other. */
void gemm_packed_layout(GemmPacked *p, float *data, int m, int k);
int gemm_packed_strip(const GemmPacked *p);
size_t gemm_packed_offset(const GemmPacked *p, int row, int col);
/* C[m x n] = beta*C + A * B[k x n], A packed. */
void gemm_packed_nn(int n, const GemmPacked *A, const float *B, int ldb, float beta, float *C,
                    int ldc);

#endif
