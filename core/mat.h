/*
 * mat.h - the math kernels every network is built from.
 *
 * Matrix products go to OpenBLAS (the only includer of cblas.h); the
 * element-wise and row-wise kernels (LayerNorm, softmax, activations) are
 * plain C written so that the compiler vectorises them.  Layouts follow
 * PyTorch: row-major activations [rows, features], Linear weights
 * [out_features, in_features].
 *
 * Threads: mat_init sets OpenBLAS's thread count once, in main, before any
 * other thread exists.  The kernels themselves keep no state.
 */
#ifndef FL_MAT_H
#define FL_MAT_H

#include <stddef.h>

/* Sets the BLAS thread count (<= 0: all cores).  Call once, from main. */
void mat_init(int n_threads);
int mat_threads(void);
/* Online cores as the OS reports them. */
int mat_cores(void);

/* y[m, n] = x[m, k] . w[n, k]^T + b[n]   (b may be NULL)  -- nn.Linear.
 * accumulate != 0 adds into y instead of overwriting it (residuals). */
void mat_linear(float *y, const float *x, const float *w, const float *b, int m, int n, int k,
                int accumulate);

/* C = alpha op(A) op(B) + beta C, row-major, with leading dimensions. */
void mat_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b over rows of width
 * dim (b may be NULL: weight-only LayerNorm).  y may equal x. */
void mat_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int dim,
                   float eps);

/* In-place numerically stable softmax of each row of x[rows, cols]. */
void mat_softmax_rows(float *x, int rows, int cols, int ld);

/* In-place activations over n values. */
void mat_quick_gelu(float *x, size_t n); /* x * sigmoid(1.702 x)  (CLIP) */
void mat_gelu(float *x, size_t n);       /* 0.5 x (1 + erf(x / sqrt 2)) (exact) */

/* y[i] += x[i] */
void mat_add(float *y, const float *x, size_t n);

/* exp(x) with < 2 ulp-ish relative error (about 2e-7) over the float range,
 * branch-free so that loops over it vectorise.  Exposed for tests. */
float mat_expf(float x);

#endif
