/*
 * mat.h - the math kernels every network is built from.
 *
 * Matrix products go to OpenBLAS (the only includer of cblas.h); the
 * element-wise, row-wise and attention kernels come from core/kern.h (the
 * best instruction set this CPU has) and are split over a thread pool.
 * Layouts follow PyTorch: row-major activations [rows, features], Linear
 * weights [out_features, in_features].
 *
 * Threads: mat_init sets OpenBLAS's thread count and creates the pool once,
 * in main, before any other thread exists; after that the settings are
 * read-only.  Only one thread at a time may call the kernels (the engine
 * thread in the server, main in the CLI).
 */
#ifndef FL_MAT_H
#define FL_MAT_H

#include <stddef.h>

#include "kern.h"

/* Sets the thread count of OpenBLAS and of the pool (<= 0: all cores) and
 * picks the kernels.  Call from main (again to change the count).  Returns
 * 0, or -1 when the pool's threads cannot be created. */
int mat_init(int n_threads);
void mat_shutdown(void);
int mat_threads(void);
/* "generic" or "avx2" */
const char *mat_kernels(void);
/* Online cores as the OS reports them. */
int mat_cores(void);

/* y[m, n] = x[m, k] . w[n, k]^T + b[n]   (b may be NULL)  -- nn.Linear.
 * accumulate != 0 adds into y instead of overwriting it (residuals). */
void mat_linear(float *y, const float *x, const float *w, const float *b, int m, int n, int k,
                int accumulate);

/* C = alpha op(A) op(B) + beta C, row-major, with leading dimensions. */
void mat_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* For benchmarks only: one plain cblas_sgemm call, and OpenBLAS's own
 * thread count (mat_init leaves it at 1; set it back after measuring). */
void mat_gemm_blas(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);
void mat_blas_threads(int n);

/* Weights stored as F32, BF16 or q8_0 (core/wmat.h), used in place:
 * y[m, n] = alpha x[m, k] . W^T (+ y when accumulate), row strides ldx, ldy.
 * 1 to the table's i16_max_m rows against q8_0 are quantized to int16
 * blocks and multiplied by integer dot products (kern gemm_q8_i16_rows: a
 * row gets the same bits alone or batched; with mat_set_q8_act("int8"),
 * int8 blocks and kern gemm_q8_i8_rows, the same way); where the CPU has AVX512-BF16,
 * 2 to 64 rows against BF16 (and q8_0 past i16_max_m) are rounded to bf16
 * for kern gemm_bf16_dot; otherwise 2 to 7 rows against BF16 widen W in
 * registers (kern gemm_nt_rows_w) and up to 64 rows widen blocks of 6 W
 * rows once into a per-thread panel and multiply in register tiles (kern
 * gemm_nt_panel_w), as do 2 to 16 rows against F32, in place; more rows
 * widen a panel of up to 128 W rows per thread to f32 and run sgemm on it
 * (F32: mat_gemm).  core/mat.c has the measured thresholds.
 * Buffers are grown once; without memory for one, the few-row kernel does
 * the work instead. */
void mat_gemm_w(int m, float alpha, const float *x, int ldx, const struct wmat *w, int accumulate, float *y,
                int ldy);
/* The rows of x against q8_0 weights on the integer path: "int16" (the
 * default: 15 bits of each value per block of 32, which adds nothing
 * measurable to the weights' own rounding) or "int8" (kern
 * gemm_q8_i8_rows, 7 bits per block as llama.cpp's q8_0 rows: 1.3-1.4x
 * the int16 kernel's multiply-adds, where the table has it: AVX-512
 * VNNI).  mat_set_q8_act: 0, or -1 for another name; the environment's
 * FLAMINGO_Q8_ACT sets it for the flamingo binary (cli/main.c).
 * mat_q8_act: the one in use, "int8" only where the table has that
 * kernel. */
int mat_set_q8_act(const char *name);
const char *mat_q8_act(void);
/* The name of the kernel mat_gemm_w runs for m rows against w (for
 * `flamingo bench --synthetic gemm`). */
const char *mat_gemm_w_kernel(int m, const struct wmat *w);
/* nn.Linear over a wmat: y[m, n] = x[m, k] . W^T + b (b may be NULL). */
void mat_linear_w(float *y, const float *x, const struct wmat *w, const float *b, int m, int accumulate);

/* y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b over rows of width
 * dim (b may be NULL: weight-only LayerNorm).  y may equal x. */
void mat_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int dim,
                   float eps);

/* Scratch for attention over up to n_kv keys of width head_dim: one slice per
 * pool thread, so size it after the last mat_init. */
size_t mat_attention_scratch(int n_kv, int head_dim);

/* n_tasks independent attention heads on the pool: fill(ctx, task, a) writes
 * the description of head `task` (every field of struct kern_attn).  scratch
 * holds mat_attention_scratch(max n_kv, dim) floats (scratch_floats). */
void mat_attention_run(int n_tasks, void (*fill)(void *ctx, int task, struct kern_attn *a), void *ctx,
                       float *scratch, size_t scratch_floats);

/* Multi-head self-attention without a mask for n independent sequences:
 * qkv [n][T][3 W] holds q | k | v (heads of W / heads features each) as
 * nn.MultiheadAttention's in_proj makes them; out [n][T][W] gets the heads
 * concatenated.  scratch: mat_attention_scratch(T, W / heads) floats. */
void mat_attention(const float *qkv, int n, int T, int W, int heads, float *out, float *scratch,
                   size_t scratch_floats);

/* In-place activations over n values. */
void mat_quick_gelu(float *x, size_t n); /* x * sigmoid(1.702 x)  (CLIP) */
void mat_gelu(float *x, size_t n);       /* 0.5 x (1 + erf(x / sqrt 2)) (exact) */

#endif
