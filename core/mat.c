/*
 * mat.c - see mat.h.
 *
 * The row kernels accumulate in 8 independent float lanes so that gcc and
 * clang vectorise them without -ffast-math (which would also let the
 * compiler change results elsewhere).  exp is a branch-free Cephes-style
 * polynomial for the same reason: libm's expf does not vectorise.
 */
#include "mat.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

static int g_threads = 1;

int mat_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void mat_init(int n_threads) {
    if (n_threads <= 0) n_threads = mat_cores();
    g_threads = n_threads;
    openblas_set_num_threads(n_threads);
}

int mat_threads(void) { return g_threads; }

void mat_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mat_linear(float *y, const float *x, const float *w, const float *b, int m, int n, int k,
                int accumulate) {
    if (b) {
        for (int r = 0; r < m; r++) {
            float *row = y + (size_t)r * n;
            if (accumulate)
                for (int j = 0; j < n; j++) row[j] += b[j];
            else
                memcpy(row, b, (size_t)n * sizeof *row);
        }
    }
    float beta = (b || accumulate) ? 1.0f : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, beta, y, n);
}

static inline float sum8(const float *x, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[i + l];
    float s = 0;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < 8; l++) s += acc[l];
    return s;
}

void mat_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int dim,
                   float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        float mean = sum8(xr, dim) / (float)dim;
        float acc[8] = {0};
        int i = 0;
        for (; i + 8 <= dim; i += 8)
            for (int l = 0; l < 8; l++) {
                float d = xr[i + l] - mean;
                acc[l] += d * d;
            }
        float var = 0;
        for (; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        for (int l = 0; l < 8; l++) var += acc[l];
        var /= (float)dim;
        float inv = 1.0f / sqrtf(var + eps);
        if (b)
            for (int j = 0; j < dim; j++) yr[j] = (xr[j] - mean) * inv * w[j] + b[j];
        else
            for (int j = 0; j < dim; j++) yr[j] = (xr[j] - mean) * inv * w[j];
    }
}

static inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* x = k ln2 + r, |r| <= ln2/2; k by the 1.5 * 2^23 rounding trick */
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - kf * 0.693145751953125f;
    r = r - kf * 1.428606765330187045e-6f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

float mat_expf(float x) { return exp_poly(x); }

void mat_softmax_rows(float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        float mx = row[0];
        for (int j = 1; j < cols; j++) mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < cols; j++) row[j] = exp_poly(row[j] - mx);
        float inv = 1.0f / sum8(row, cols);
        for (int j = 0; j < cols; j++) row[j] *= inv;
    }
}

void mat_quick_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + exp_poly(-1.702f * x[i]));
}

void mat_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void mat_add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
