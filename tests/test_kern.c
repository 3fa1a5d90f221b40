/*
 * test_kern.c - the math kernels against plain double-precision loops: both
 * kernel tables (generic and AVX2, when the CPU has it) for LayerNorm,
 * softmax, the activations and attention (odd sizes, head widths that are
 * not a multiple of 16, a single token), mat_gemm's sliced GEMMs in every
 * transpose combination, and the pool (every task exactly once).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/kern.h"
#include "../core/mat.h"
#include "../core/pool.h"
#include "test.h"

static uint64_t rng = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = scale * frand();
}

static void check_rowwise(const struct kern *k) {
    const int rows = 7, dim = 77; /* not multiples of 8: the tails run */
    float x[7 * 77], y[7 * 77], w[77], b[77];
    double want[7 * 77];
    fill(x, sizeof x / 4, 3.0f);
    fill(w, 77, 1.0f);
    fill(b, 77, 1.0f);
    for (int pass = 0; pass < 2; pass++) {
        const float *bias = pass ? NULL : b;
        k->layernorm(y, x, w, bias, rows, dim, 1e-5f);
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < dim; j++)
                mean += x[r * dim + j];
            mean /= dim;
            for (int j = 0; j < dim; j++)
                var += (x[r * dim + j] - mean) * (x[r * dim + j] - mean);
            var /= dim;
            for (int j = 0; j < dim; j++)
                want[r * dim + j] = (x[r * dim + j] - mean) / sqrt(var + 1e-5) * w[j] + (bias ? bias[j] : 0);
        }
        CHECK(max_rel(y, want, rows * dim) < 2e-6);
    }
    /* softmax with a leading dimension, including huge and tiny logits */
    const int ld = 80;
    float s[7 * 80], sm[7 * 80];
    fill(s, sizeof s / 4, 20.0f);
    s[3] = 90.0f, s[5] = -200.0f;
    memcpy(sm, s, sizeof s);
    k->softmax_rows(sm, rows, dim, ld);
    for (int r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < dim; j++)
            mx = fmax(mx, s[r * ld + j]);
        for (int j = 0; j < dim; j++)
            sum += exp(s[r * ld + j] - mx);
        for (int j = 0; j < dim; j++)
            want[r * dim + j] = exp(s[r * ld + j] - mx) / sum;
        CHECK(max_rel(sm + r * ld, want + r * dim, dim) < 1e-6);
        CHECK(sm[r * ld + 78] == s[r * ld + 78]); /* outside cols: untouched */
    }
    /* activations over a range that covers saturation */
    float a[1001], g[1001];
    double wq[1001], wg[1001];
    for (int i = 0; i < 1001; i++)
        a[i] = -60.0f + 0.12f * i;
    memcpy(g, a, sizeof a);
    k->quick_gelu(g, 1001);
    for (int i = 0; i < 1001; i++)
        wq[i] = a[i] / (1.0 + exp(-1.702 * a[i]));
    double worst = 0;
    for (int i = 0; i < 1001; i++)
        worst = fmax(worst, fabs(g[i] - wq[i]) / fmax(1.0, fabs(wq[i])));
    CHECK(worst < 1e-6);
    memcpy(g, a, sizeof a);
    k->gelu(g, 1001);
    for (int i = 0; i < 1001; i++)
        wg[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
    worst = 0;
    for (int i = 0; i < 1001; i++)
        worst = fmax(worst, fabs(g[i] - wg[i]) / fmax(1.0, fabs(wg[i])));
    fprintf(stderr, "%s: gelu max error %.2g\n", k->name, worst);
    CHECK(worst < 2e-6);
}

/* One head against double precision: n_q queries, n_kv keys, optional
 * causal limit from q_pos0 and an ALiBi slope; q, k, v and out inside
 * wider buffers so that the leading dimensions are exercised. */
static void check_attention(const struct kern *k, int n_q, int n_kv, int D, int causal, int q_pos0,
                            float alibi) {
    const int ldq = D + 3, ldkv = 2 * D + 5, ld_out = D + 2;
    float *q = malloc((size_t)n_q * ldq * sizeof *q), *kv = malloc((size_t)n_kv * ldkv * sizeof *kv);
    float *out = malloc((size_t)n_q * ld_out * sizeof *out);
    float *scratch = malloc(kern_attn_scratch(n_kv, D) * sizeof *scratch);
    double *want = malloc((size_t)n_q * D * sizeof *want), *p = malloc((size_t)n_kv * sizeof *p);
    /* the same data for every table, whatever ran before */
    const uint64_t saved = rng;
    rng = 12345 + (uint64_t)n_q * 1000003u + (uint64_t)n_kv * 1009u + (uint64_t)D * 31u + (uint64_t)q_pos0;
    fill(q, (size_t)n_q * ldq, 2.0f);
    fill(kv, (size_t)n_kv * ldkv, 2.0f);
    rng = saved;
    const float *kk = kv, *v = kv + D;
    const double scale = 1.0 / sqrt((double)D);
    for (int i = 0; i < n_q; i++) {
        int lim = causal ? q_pos0 + i + 1 : n_kv;
        if (lim > n_kv) lim = n_kv;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < lim; j++) {
            double dot = 0;
            for (int d = 0; d < D; d++)
                dot += (double)q[i * ldq + d] * kk[j * ldkv + d];
            p[j] = dot * scale + (double)alibi * (j - (q_pos0 + i));
            mx = fmax(mx, p[j]);
        }
        for (int j = 0; j < lim; j++)
            sum += (p[j] = exp(p[j] - mx));
        for (int d = 0; d < D; d++) {
            double a = 0;
            for (int j = 0; j < lim; j++)
                a += p[j] / sum * v[j * ldkv + d];
            want[i * D + d] = a;
        }
    }
    for (int i = 0; i < n_q * ld_out; i++)
        out[i] = NAN;
    struct kern_attn a = {.q = q,
                          .ldq = ldq,
                          .n_q = n_q,
                          .k = kk,
                          .v = v,
                          .ldkv = ldkv,
                          .n_kv = n_kv,
                          .dim = D,
                          .scale = (float)scale,
                          .causal = causal,
                          .q_pos0 = q_pos0,
                          .alibi = alibi,
                          .out = out,
                          .ld_out = ld_out};
    k->attention(&a, scratch);
    float *packed = malloc((size_t)n_q * D * sizeof *packed);
    for (int i = 0; i < n_q; i++)
        memcpy(packed + i * D, out + i * ld_out, (size_t)D * sizeof *packed);
    double err = max_rel(packed, want, (size_t)n_q * D);
    if (!(err < 2e-6))
        fprintf(stderr, "%s attention n_q=%d n_kv=%d D=%d causal=%d pos0=%d alibi=%g: rel error %.3g\n",
                k->name, n_q, n_kv, D, causal, q_pos0, alibi, err);
    CHECK(err < 2e-6);
    int untouched = 1; /* the gap between rows of out is not written */
    for (int i = 0; i < n_q; i++)
        for (int d = D; d < ld_out; d++)
            untouched &= isnan(out[i * ld_out + d]);
    CHECK(untouched);
    free(q), free(kv), free(out), free(scratch), free(want), free(p), free(packed);
}

static void check_gemm(void) {
    /* m = 1 is the decode path (a GEMV), large and small enough not to be split */
    const int shapes[][3] = {{300, 200, 100}, {5, 700, 1200}, {1, 1000, 4000}, {1, 48, 144},
                             {1, 5, 3},       {257, 64, 257}, {64, 3, 9},      {64, 700, 600}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
                float *a = malloc((size_t)(ta ? k : m) * lda * 4),
                      *b = malloc((size_t)(tb ? n : k) * ldb * 4);
                float *c = malloc((size_t)m * ldc * 4);
                double *want = malloc((size_t)m * n * 8);
                fill(a, (size_t)(ta ? k : m) * lda, 1.0f);
                fill(b, (size_t)(tb ? n : k) * ldb, 1.0f);
                fill(c, (size_t)m * ldc, 1.0f);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0;
                        for (int p = 0; p < k; p++)
                            acc += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                                   (tb ? b[j * ldb + p] : b[p * ldb + j]);
                        want[i * n + j] = 0.5 * acc - 2.0 * c[i * ldc + j];
                    }
                mat_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, -2.0f, c, ldc);
                double worst = 0;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                        worst = fmax(worst, fabs(c[i * ldc + j] - want[i * n + j]));
                if (!(worst < 1e-3))
                    fprintf(stderr, "gemm %dx%dx%d ta=%d tb=%d: %.3g\n", m, n, k, ta, tb, worst);
                CHECK(worst < 1e-3);
                free(a), free(b), free(c), free(want);
            }
}

/* The few-rows kernel (batched decode) of one table, against double loops:
 * odd sizes around its blocks (4 W rows, 16-row and 256-column blocks, row
 * pairs), leading dimensions wider than the rows, both write modes; and
 * mat_linear, which sends 2..16 rows to it, over the pool. */
static void check_nt_rows(const struct kern *kt) {
    const int shapes[][3] = {{2, 4, 8},    {3, 5, 7},       {1, 1, 1},    {16, 33, 257}, {5, 17, 513},
                             {7, 16, 300}, {16, 100, 2048}, {9, 3, 1000}, {2, 1030, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], ldx = k + 5, ldw = k + 3,
                      ldy = n + 7;
            float *x = malloc((size_t)m * ldx * 4), *w = malloc((size_t)n * ldw * 4),
                  *y = malloc((size_t)m * ldy * 4);
            fill(x, (size_t)m * ldx, 1.0f);
            fill(w, (size_t)n * ldw, 1.0f);
            fill(y, (size_t)m * ldy, 1.0f);
            double worst = 0;
            double *want = malloc((size_t)m * n * 8);
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++) {
                    double acc = accumulate ? y[r * ldy + j] : 0;
                    for (int t = 0; t < k; t++)
                        acc += (double)x[r * ldx + t] * w[j * ldw + t];
                    want[r * n + j] = acc;
                }
            kt->gemm_nt_rows(x, ldx, m, w, ldw, n, k, y, ldy, accumulate);
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++)
                    worst = fmax(worst, fabs(y[r * ldy + j] - want[r * n + j]) / sqrt(k));
            if (!(worst < 1e-5))
                fprintf(stderr, "%s gemm_nt_rows %dx%dx%d acc=%d: %.3g\n", kt->name, m, n, k, accumulate,
                        worst);
            CHECK(worst < 1e-5);
            free(x), free(w), free(y), free(want);
        }
}

static void check_linear_rows(void) {
    for (int m = 1; m <= 17; m++) {
        const int n = 700, k = 333;
        float *x = malloc((size_t)m * k * 4), *w = malloc((size_t)n * k * 4), *b = malloc((size_t)n * 4);
        float *y = malloc((size_t)m * n * 4);
        fill(x, (size_t)m * k, 1.0f);
        fill(w, (size_t)n * k, 1.0f);
        fill(b, (size_t)n, 1.0f);
        mat_linear(y, x, w, b, m, n, k, 0);
        double worst = 0;
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++) {
                double acc = b[j];
                for (int t = 0; t < k; t++)
                    acc += (double)x[r * k + t] * w[j * k + t];
                worst = fmax(worst, fabs(y[r * n + j] - acc));
            }
        if (!(worst < 1e-4)) fprintf(stderr, "mat_linear m=%d: %.3g\n", m, worst);
        CHECK(worst < 1e-4);
        free(x), free(w), free(b), free(y);
    }
}

static atomic_int hits[1000];
static void count_task(void *ctx, int task, int thread) {
    for (volatile int spin = 0; spin < (task % 7) * 1000; spin++) {
    }
    if (ctx) { /* a slow task: longer than the pool's spin, so the others go to sleep on it */
        struct timespec ts = {0, 300 * 1000};
        nanosleep(&ts, NULL);
    }
    if (thread >= 0 && thread < 4) atomic_fetch_add(&hits[task], 1); /* at the end: pool_for waited */
}

static void check_pool(void) {
    for (int threads = 1; threads <= 4; threads++) {
        struct pool *p = pool_new(threads);
        CHECK(p != NULL && pool_size(p) == threads);
        /* back to back (the workers spin between loops), after a pause
         * (they sleep), and with slow tasks (the caller sleeps waiting) */
        for (int round = 0; round < 70; round++) {
            const int slow = round >= 50;
            int n = slow ? 1 + round % 5 : 1 + (round * 37) % 1000;
            for (int i = 0; i < n; i++)
                atomic_store(&hits[i], 0);
            if (round % 5 == 0) {
                struct timespec ts = {0, 500 * 1000};
                nanosleep(&ts, NULL);
            }
            pool_for(p, n, count_task, slow ? (void *)p : NULL);
            int ok = 1;
            for (int i = 0; i < n; i++)
                ok &= atomic_load(&hits[i]) == 1;
            CHECK(ok);
        }
        pool_for(p, 0, count_task, NULL);
        pool_free(p);
    }
    pool_free(NULL);
}

int main(void) {
    mat_init(2);
    const struct kern *tables[KERN_MAX_TABLES];
    const int n_tables = kern_tables(tables);
    for (int t = 0; t < n_tables; t++) {
        fprintf(stderr, "kernels: %s\n", tables[t]->name);
        check_rowwise(tables[t]);
        check_nt_rows(tables[t]);
        /* {n_q, n_kv, dim, causal, q_pos0, alibi}: ViT, Perceiver (64 latents
         * over 320 keys), cross-attention (64 keys), LM prefill with and
         * without a cached prefix, decode (one query), odd widths; few
         * queries with head widths of 1 to 12 vectors and a tail. */
        const struct {
            int n_q, n_kv, D, causal, pos0;
            float alibi;
        } cases[] = {
            {257, 257, 64, 0, 0, 0},      {17, 17, 16, 0, 0, 0},         {1, 64, 64, 0, 0, 0},
            {5, 5, 80, 0, 0, 0},          {33, 33, 24, 0, 0, 0},         {64, 64, 128, 0, 0, 0},
            {3, 3, 7, 0, 0, 0},           {64, 320, 64, 0, 0, 0},        {9, 64, 64, 0, 0, 0},
            {37, 37, 128, 1, 0, 0},       {37, 37, 128, 1, 0, -0.25f},   {6, 41, 80, 1, 35, 0},
            {6, 41, 80, 1, 35, -0.0625f}, {1, 100, 128, 1, 99, -0.5f},   {2, 100, 12, 1, 98, 0},
            {4, 4, 64, 1, 0, 0},          {5, 130, 16, 1, 125, -0.003f}, {8, 8, 48, 0, 0, 0},
            {15, 70, 24, 1, 55, 0},       {23, 23, 96, 1, 0, -0.125f},   {1, 37, 48, 1, 36, 0},
            {2, 50, 80, 0, 0, 0},         {3, 20, 112, 1, 17, -0.25f},   {1, 9, 96, 0, 0, 0},
            {5, 33, 200, 1, 28, 0},       {7, 7, 32, 1, 0, 0},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_attention(tables[t], cases[i].n_q, cases[i].n_kv, cases[i].D, cases[i].causal,
                            cases[i].pos0, cases[i].alibi);
    }
    check_gemm();
    check_linear_rows();
    check_pool();
    mat_shutdown();
    return TEST_END();
}
