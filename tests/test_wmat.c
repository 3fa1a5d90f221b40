/*
 * test_wmat.c - weights stored as BF16 and q8_0 (core/wmat.h): the F16 and
 * BF16 conversions (every F16 bit pattern, rounding ties), the q8_0
 * quantiser (error bound, exact values, zero blocks), and products over
 * every type against plain double loops over the widened weights: every
 * kernel table the CPU runs directly, and mat_gemm_w on 1 and 3 threads through its
 * few-row and panel paths, on sizes that are not multiples of the vector
 * width, the 16-row block or the 256-column block.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kern.h"
#include "../core/mat.h"
#include "../core/wmat.h"
#include "test.h"

static uint64_t rng = 777;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

static void test_f16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = wmat_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (wmat_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0);
    CHECK(wmat_f16_to_f32(0x3c00) == 1.0f);
    CHECK(wmat_f16_to_f32(0xc000) == -2.0f);
    CHECK(wmat_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(wmat_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(wmat_f16_to_f32(0x7c00)));
    /* ties go to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    CHECK(wmat_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);
    CHECK(wmat_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02);
    CHECK(wmat_f32_to_f16(70000.0f) == 0x7c00);
    CHECK(wmat_f32_to_f16(-1e-9f) == 0x8000);
    CHECK(wmat_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(wmat_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);      /* tie, to even */
    CHECK(wmat_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);  /* tie, to even */
    CHECK(wmat_bf16_to_f32(0xc040) == -3.0f);
    CHECK(isnan(wmat_bf16_to_f32(wmat_f32_to_bf16(NAN))));
}

static void test_quantizer(void) {
    enum { K = 96 };
    float w[K];
    int8_t q[K];
    uint16_t s[K / 32];
    for (int i = 0; i < K; i++)
        w[i] = 0.3f * frand();
    for (int i = 32; i < 64; i++) /* an all-zero block */
        w[i] = 0;
    w[70] = -2.5f; /* the largest magnitude of the third block, negative */
    wmat_q8_quantize_row(w, K, q, s);
    CHECK(s[1] == 0);
    for (int i = 32; i < 64; i++)
        CHECK(q[i] == 0);
    CHECK(q[70] == -127);
    CHECK(fabsf(wmat_f16_to_f32(s[2]) - 2.5f / 127) < 1e-5f);
    double worst = 0;
    for (int i = 0; i < K; i++) {
        float sc = wmat_f16_to_f32(s[i / 32]);
        double err = fabs(sc * q[i] - w[i]);
        if (sc > 0) worst = fmax(worst, err / sc);
    }
    CHECK(worst <= 0.5 + 1e-3); /* within half a step of the block's scale */
}

/* y = alpha x W^T (+ y0) in double, W widened by the reference code */
static void reference(const float *x, int m, const struct wmat *w, float alpha, const float *y0, double *out) {
    float *wf = malloc((size_t)w->n * w->k * sizeof *wf);
    wmat_rows_f32(w, 0, w->n, wf);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < w->n; j++) {
            double acc = 0;
            for (int t = 0; t < w->k; t++)
                acc += (double)x[(size_t)r * w->k + t] * wf[(size_t)j * w->k + t];
            out[(size_t)r * w->n + j] = alpha * acc + (y0 ? y0[(size_t)r * w->n + j] : 0);
        }
    free(wf);
}

/* m rows of x (k a multiple of 32) as the int16 kernel takes them (xq, xs:
 * wmat_i16_quantize_row) and as the f32 values those stand for (xd). */
static void i16_rows_of(const float *x, int m, int k, int16_t *xq, float *xs, float *xd) {
    for (int r = 0; r < m; r++) {
        wmat_i16_quantize_row(x + (size_t)r * k, k, xq + (size_t)r * k, xs + (size_t)r * (k / 32));
        for (int t = 0; t < k; t++)
            xd[(size_t)r * k + t] = (float)xq[(size_t)r * k + t] * xs[(size_t)r * (k / 32) + t / 32];
    }
}

/* The same for the int8 kernel (wmat_i8_quantize_row: xq, xs, the lane
 * corrections xc). */
static void i8_rows_of(const float *x, int m, int k, int8_t *xq, float *xs, int32_t *xc, float *xd) {
    for (int r = 0; r < m; r++) {
        wmat_i8_quantize_row(x + (size_t)r * k, k, xq + (size_t)r * k, xs + (size_t)r * (k / 32),
                             xc + (size_t)r * (k / 32) * 4);
        for (int t = 0; t < k; t++)
            xd[(size_t)r * k + t] = (float)xq[(size_t)r * k + t] * xs[(size_t)r * (k / 32) + t / 32];
    }
}

/* The int8 kernel of every table that has one, on W rows [j_lo, n) of an
 * n-row W (j_lo > 0: columns before it untouched): within 1e-5 of the
 * double loop on the int8 rows (want: their reference), and each row of
 * the m alone bit for bit as in the batch.  Returns the failures. */
static int check_i8_kernel(const struct wmat *w, int m, const int8_t *xq, const float *xs, const int32_t *xc,
                           const float *y0, const double *want, float alpha, int acc, int *cases) {
    const struct kern *tables[KERN_MAX_TABLES];
    const int n_tables = kern_tables(tables), n = w->n, k = w->k, nb = k / 32;
    float *y = malloc((size_t)m * n * sizeof *y), *y1 = malloc((size_t)n * sizeof *y1);
    int fails = 0;
    for (int t = 0; t < n_tables; t++) {
        if (!tables[t]->gemm_q8_i8_rows) continue;
        for (int j_lo = 0; j_lo <= 2 && j_lo < n; j_lo += 2) {
            memcpy(y, y0, (size_t)m * n * sizeof *y);
            tables[t]->gemm_q8_i8_rows(xq, xs, xc, m, w, j_lo, n, y, n, alpha, acc);
            int bad = 0;
            for (int r = 0; r < m; r++)
                for (int j = 0; j < j_lo; j++) {
                    bad |= y[(size_t)r * n + j] != y0[(size_t)r * n + j];
                    y[(size_t)r * n + j] = (float)want[(size_t)r * n + j];
                }
            (*cases)++;
            if (bad || !(max_rel(y, want, (size_t)m * n) < 1e-5)) {
                fails++;
                fprintf(stderr, "i8 rows: table %s m %d n %d k %d j_lo %d: %g%s\n", tables[t]->name, m, n, k,
                        j_lo, max_rel(y, want, (size_t)m * n), bad ? ", columns before j_lo written" : "");
            }
        }
        memcpy(y, y0, (size_t)m * n * sizeof *y);
        tables[t]->gemm_q8_i8_rows(xq, xs, xc, m, w, 0, n, y, n, alpha, acc);
        for (int r = 0; r < m; r++) { /* each row exactly what it gives alone, and in a sub-range */
            memcpy(y1, y0 + (size_t)r * n, (size_t)n * sizeof *y1);
            tables[t]->gemm_q8_i8_rows(xq + (size_t)r * k, xs + (size_t)r * nb, xc + (size_t)r * nb * 4, 1, w,
                                       0, n, y1, n, alpha, acc);
            if (n > 5 && !acc) /* rows 3.. again, grouped 3-6, 7-10, ...: the same bits */
                tables[t]->gemm_q8_i8_rows(xq + (size_t)r * k, xs + (size_t)r * nb, xc + (size_t)r * nb * 4,
                                           1, w, 3, n - 1, y1, n, alpha, 0);
            (*cases)++;
            if (memcmp(y1, y + (size_t)r * n, (size_t)n * sizeof *y1) != 0) {
                fails++;
                fprintf(stderr, "i8 rows: table %s m %d n %d k %d row %d differs from the row alone\n",
                        tables[t]->name, m, n, k, r);
            }
        }
    }
    free(y);
    free(y1);
    return fails;
}

static void check_products(void) {
    static const int ms[] = {1, 2, 5, 8, 11, 13, 16, 17, 32, 40, 64};
    static const int ns[] = {1, 37, 48, 130}; /* 48: W rows in 16-row tiles (the AMX path takes only those) */
    static const int ks[] = {32, 96, 288, 544, KERN_PANEL_COLS + 64}; /* the last: two column blocks */
    const struct kern *tables[KERN_MAX_TABLES];
    const int n_tables = kern_tables(tables);
    int cases = 0, fails = 0;
    for (int type = WMAT_F32; type <= WMAT_Q8_0; type++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                /* bf16: any k (the panel kernel takes multiples of 8) */
                const int n = ns[ni], k = ks[ki] + (type == WMAT_BF16 && ki % 2 ? 5 : 0);
                float *wf = malloc((size_t)n * k * sizeof *wf);
                for (size_t i = 0; i < (size_t)n * k; i++)
                    wf[i] = frand();
                struct wmat w;
                CHECK(wmat_convert(wf, n, k, (enum wmat_type)type, &w) == 0);
                for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                    const int m = ms[mi];
                    float *x = malloc((size_t)m * k * sizeof *x), *y0 = malloc((size_t)m * n * sizeof *y0);
                    float *y = malloc((size_t)m * n * sizeof *y);
                    double *want = malloc((size_t)m * n * sizeof *want);
                    for (size_t i = 0; i < (size_t)m * k; i++)
                        x[i] = frand();
                    for (size_t i = 0; i < (size_t)m * n; i++)
                        y0[i] = frand();
                    /* q8_0: the int16 kernel takes x quantized to int16 blocks, and so does
                     * mat_gemm_w up to the best table's i16_max_m rows: their reference
                     * takes the same x (the quantizer has its own test) */
                    const int i16 = type == WMAT_Q8_0;
                    const int pool_i16 = strcmp(mat_gemm_w_kernel(m, &w), "int16 rows") == 0;
                    /* AMX tiles (core/mat.c): BF16 and q8_0 from MAT_AMX_MIN_M = 16 rows, whole
                     * tiles of W only */
                    const int pool_amx = strcmp(mat_gemm_w_kernel(m, &w), "amx tiles") == 0;
                    CHECK(pool_amx == (kern_best()->gemm_bf16_amx && type != WMAT_F32 && m >= 16 &&
                                       k % 32 == 0 && n % 16 == 0));
                    CHECK(pool_i16 == (i16 && m <= kern_best()->i16_max_m && !pool_amx));
                    int16_t *xq = malloc((size_t)m * k * sizeof *xq);
                    float *xs = malloc((size_t)m * (k / 32 + 1) * sizeof *xs),
                          *xd = malloc((size_t)m * k * sizeof *xd);
                    int8_t *xq8 = malloc((size_t)m * k);
                    float *xs8 = malloc((size_t)m * (k / 32 + 1) * sizeof *xs8),
                          *xd8 = malloc((size_t)m * k * sizeof *xd8);
                    int32_t *xc8 = malloc((size_t)m * (k / 32 + 1) * 4 * sizeof *xc8);
                    double *want8 = malloc((size_t)m * n * sizeof *want8);
                    if (i16) i16_rows_of(x, m, k, xq, xs, xd);
                    if (i16) i8_rows_of(x, m, k, xq8, xs8, xc8, xd8);
                    for (int acc = 0; acc < 2; acc++) {
                        const float alpha = acc ? 0.37f : 1.0f;
                        reference(x, m, &w, alpha, acc ? y0 : NULL, want);
                        for (int t = 0; i16 && t < n_tables; t++) {
                            memcpy(y, y0, (size_t)m * n * sizeof *y);
                            tables[t]->gemm_q8_i16_rows(xq, xs, m, &w, 0, n, y, n, alpha, acc);
                            cases++;
                            if (!(max_rel(y, want, (size_t)m * n) < 2e-4)) fails++; /* against the f32 x */
                        }
                        /* the kernels themselves, every table the CPU runs */
                        for (int t = 0; t < n_tables && m <= 16; t++) {
                            memcpy(y, y0, (size_t)m * n * sizeof *y);
                            tables[t]->gemm_nt_rows_w(x, k, m, &w, 0, n, y, n, alpha, acc);
                            cases++;
                            if (!(max_rel(y, want, (size_t)m * n) < 1e-5)) fails++;
                        }
                        /* the panel kernel, on all of W and on rows 2.. (columns 0 and 1 of y untouched) */
                        float *panel = malloc(KERN_PANEL_FLOATS * sizeof *panel);
                        for (int t = 0; t < n_tables && m <= KERN_PANEL_MAX_M && k % 8 == 0; t++)
                            for (int j_lo = 0; j_lo <= 2 && j_lo < n; j_lo += 2) {
                                memcpy(y, y0, (size_t)m * n * sizeof *y);
                                tables[t]->gemm_nt_panel_w(x, k, m, &w, j_lo, n, y, n, alpha, acc, panel);
                                int bad = 0;
                                for (int r = 0; r < m; r++)
                                    for (int j = 0; j < j_lo; j++)
                                        bad |= y[(size_t)r * n + j] != y0[(size_t)r * n + j];
                                for (int r = 0; r < m && j_lo > 0; r++) /* compare only the rows computed */
                                    for (int j = 0; j < j_lo; j++)
                                        y[(size_t)r * n + j] = (float)want[(size_t)r * n + j];
                                cases++;
                                if (bad || !(max_rel(y, want, (size_t)m * n) < 1e-5)) fails++;
                            }
                        free(panel);
                        if (i16) {
                            reference(xd8, m, &w, alpha, acc ? y0 : NULL, want8);
                            fails += check_i8_kernel(&w, m, xq8, xs8, xc8, y0, want8, alpha, acc, &cases);
                        }
                        if (i16) reference(xd, m, &w, alpha, acc ? y0 : NULL, want);
                        double *want_pool = want;
                        if (i16 && !pool_i16) { /* mat_gemm_w widens: the f32 x's reference */
                            want_pool = malloc((size_t)m * n * sizeof *want_pool);
                            reference(x, m, &w, alpha, acc ? y0 : NULL, want_pool);
                        }
                        /* BF16 and q8_0 weights with AVX512-BF16: the rows rounded to bf16, as
                         * PyTorch's autocast does, then products summed in f32 (gemm_bf16_dot) */
                        if (type != WMAT_F32) {
                            float *xr = malloc((size_t)m * k * sizeof *xr);
                            for (size_t i = 0; i < (size_t)m * k; i++)
                                xr[i] = wmat_bf16_to_f32(wmat_f32_to_bf16(x[i]));
                            double *want_bf = malloc((size_t)m * n * sizeof *want_bf);
                            reference(xr, m, &w, alpha, acc ? y0 : NULL, want_bf);
                            const int kp = (k + 1) & ~1;
                            uint16_t *xb = malloc((size_t)m * kp * sizeof *xb);
                            void *bpanel = aligned_alloc(64, KERN_BF16_PANEL_BYTES(k) / 64 * 64 + 64);
                            for (int t = 0; t < n_tables; t++) {
                                if (!tables[t]->gemm_bf16_dot) continue;
                                tables[t]->bf16_pack_x(x, k, m, k, xb);
                                int bad = 0;
                                for (int r = 0; r < m; r++) /* the packing: each value rounded, the pad 0 */
                                    for (int i = 0; i < kp; i++)
                                        bad |= xb[(size_t)r * kp + i] !=
                                               (i < k ? wmat_f32_to_bf16(x[(size_t)r * k + i]) : 0);
                                cases++;
                                fails += bad;
                                for (int j_lo = 0; j_lo <= 2 && j_lo < n; j_lo += 2) {
                                    memcpy(y, y0, (size_t)m * n * sizeof *y);
                                    tables[t]->gemm_bf16_dot(xb, m, &w, j_lo, n, y, n, alpha, acc, bpanel);
                                    bad = 0;
                                    for (int r = 0; r < m; r++)
                                        for (int j = 0; j < j_lo; j++) {
                                            bad |= y[(size_t)r * n + j] != y0[(size_t)r * n + j];
                                            y[(size_t)r * n + j] = (float)want_bf[(size_t)r * n + j];
                                        }
                                    cases++;
                                    if (bad || !(max_rel(y, want_bf, (size_t)m * n) < 1e-5)) {
                                        fails++;
                                        fprintf(stderr, "bf16 dot: table %s m %d n %d k %d j_lo %d: %g%s\n",
                                                tables[t]->name, m, n, k, j_lo,
                                                max_rel(y, want_bf, (size_t)m * n),
                                                bad ? ", columns before j_lo written" : "");
                                    }
                                }
                            }
                            free(bpanel);
                            free(xb);
                            if (pool_amx && type == WMAT_Q8_0) {
                                /* q8_0 on AMX tiles: each weight q * scale rounded to bf16 too */
                                float *wr = malloc((size_t)n * k * sizeof *wr);
                                wmat_rows_f32(&w, 0, n, wr);
                                for (size_t i = 0; i < (size_t)n * k; i++)
                                    wr[i] = wmat_bf16_to_f32(wmat_f32_to_bf16(wr[i]));
                                struct wmat wb;
                                CHECK(wmat_convert(wr, n, k, WMAT_BF16, &wb) == 0);
                                reference(xr, m, &wb, alpha, acc ? y0 : NULL, want_bf);
                                wmat_free_owned(&wb);
                                free(wr);
                            }
                            free(xr);
                            if (strcmp(mat_gemm_w_kernel(m, &w), "bf16 dot") == 0 || pool_amx) {
                                if (want_pool != want) free(want_pool);
                                want_pool = want_bf;
                            } else
                                free(want_bf);
                        }
                        for (int t = 0; i16 && t < n_tables; t++) {
                            /* m rows at once: each row exactly what it gives alone */
                            memcpy(y, y0, (size_t)m * n * sizeof *y);
                            tables[t]->gemm_q8_i16_rows(xq, xs, m, &w, 0, n, y, n, alpha, acc);
                            cases++;
                            if (!(max_rel(y, want, (size_t)m * n) < 1e-5)) fails++;
                            float *y1 = malloc((size_t)n * sizeof *y1);
                            for (int r = 0; r < m; r++) {
                                memcpy(y1, y0 + (size_t)r * n, (size_t)n * sizeof *y1);
                                tables[t]->gemm_q8_i16_rows(xq + (size_t)r * k, xs + (size_t)r * (k / 32), 1,
                                                            &w, 0, n, y1, n, alpha, acc);
                                cases++;
                                if (memcmp(y1, y + (size_t)r * n, (size_t)n * sizeof *y1) != 0) {
                                    fails++;
                                    fprintf(stderr,
                                            "i16 rows: table %d type %d m %d n %d k %d row %d differs from "
                                            "the row alone\n",
                                            t, type, m, n, k, r);
                                }
                            }
                            free(y1);
                        }
                        /* through the pool: the int16 (q8_0), few-row, panel and many-row paths,
                         * and the int8 rows where the table has them */
                        for (int threads = 1; threads <= 3; threads += 2)
                            for (int a8 = 0; a8 < 2; a8++) {
                                CHECK(mat_init(threads) == 0);
                                CHECK(mat_set_q8_act(a8 ? "int8" : "int16") == 0);
                                const int pool_i8 = strcmp(mat_gemm_w_kernel(m, &w), "int8 rows") == 0;
                                CHECK(pool_i8 == (pool_i16 && a8 && kern_best()->gemm_q8_i8_rows));
                                CHECK(!strcmp(mat_q8_act(),
                                              a8 && kern_best()->gemm_q8_i8_rows ? "int8" : "int16"));
                                memcpy(y, y0, (size_t)m * n * sizeof *y);
                                mat_gemm_w(m, alpha, x, k, &w, acc, y, n);
                                mat_set_q8_act("int16");
                                const double *wp = pool_i8 ? want8 : want_pool;
                                cases++;
                                if (!(max_rel(y, wp, (size_t)m * n) < 1e-5)) {
                                    fails++;
                                    fprintf(stderr, "pool: type %d m %d n %d k %d threads %d%s: %g\n", type,
                                            m, n, k, threads, pool_i8 ? " int8" : "",
                                            max_rel(y, wp, (size_t)m * n));
                                }
                            }
                        if (want_pool != want) free(want_pool);
                    }
                    free(xq);
                    free(xs);
                    free(xd);
                    free(xq8);
                    free(xs8);
                    free(xd8);
                    free(xc8);
                    free(want8);
                    free(x);
                    free(y0);
                    free(y);
                    free(want);
                }
                for (int t = 0; t < n_tables; t++) { /* widening rows 3..n of W */
                    if (n < 4) continue;
                    float *got = malloc((size_t)(n - 3) * k * sizeof *got), *ref = malloc((size_t)(n - 3) * k * sizeof *ref);
                    tables[t]->widen_rows(&w, 3, n, got);
                    wmat_rows_f32(&w, 3, n, ref);
                    CHECK(memcmp(got, ref, (size_t)(n - 3) * k * sizeof *got) == 0);
                    free(got);
                    free(ref);
                }
                wmat_free_owned(&w);
                free(wf);
            }
    CHECK(cases > 300);
    CHECK(fails == 0);
}

/* The int16 kernel on rows longer than kern_impl.h's WQ_CHUNK (8,192: its
 * scales are converted a chunk at a time, so a row takes two chunks here),
 * with W rows in groups of 4 and a tail, in every table: against the double
 * loop on the rounded rows, and each row of a batch bit for bit as alone. */
static void check_i16_long_rows(void) {
    enum { N = 37, K = 8192 + 19 * 32 }; /* the second chunk: 16 blocks, then 3 */
    static const int ms[] = {1, 5, 9};
    const struct kern *tables[KERN_MAX_TABLES];
    const int n_tables = kern_tables(tables);
    float *wf = malloc((size_t)N * K * sizeof *wf);
    for (size_t i = 0; i < (size_t)N * K; i++)
        wf[i] = frand();
    struct wmat w;
    CHECK(wmat_convert(wf, N, K, WMAT_Q8_0, &w) == 0);
    int bad = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
        const int m = ms[mi];
        float *x = malloc((size_t)m * K * sizeof *x), *xd = malloc((size_t)m * K * sizeof *xd);
        float *xs = malloc((size_t)m * (K / 32) * sizeof *xs), *y = malloc((size_t)m * N * sizeof *y);
        float y1[N];
        int16_t *xq = malloc((size_t)m * K * sizeof *xq);
        double *want = malloc((size_t)m * N * sizeof *want);
        for (size_t i = 0; i < (size_t)m * K; i++)
            x[i] = frand();
        { /* the int8 kernel on the same rows */
            int8_t *xq8 = malloc((size_t)m * K);
            int32_t *xc8 = malloc((size_t)m * (K / 32) * 4 * sizeof *xc8);
            float *y0 = calloc((size_t)m * N, sizeof *y0);
            int cases = 0;
            i8_rows_of(x, m, K, xq8, xs, xc8, xd);
            reference(xd, m, &w, 1.0f, NULL, want);
            bad += check_i8_kernel(&w, m, xq8, xs, xc8, y0, want, 1.0f, 0, &cases);
            CHECK(cases > 0 || !kern_best()->gemm_q8_i8_rows);
            free(xq8);
            free(xc8);
            free(y0);
        }
        i16_rows_of(x, m, K, xq, xs, xd);
        reference(xd, m, &w, 1.0f, NULL, want);
        for (int t = 0; t < n_tables; t++) {
            tables[t]->gemm_q8_i16_rows(xq, xs, m, &w, 0, N, y, N, 1.0f, 0);
            if (!(max_rel(y, want, (size_t)m * N) < 1e-5)) {
                bad++;
                fprintf(stderr, "i16, k %d: table %s m %d: %g\n", K, tables[t]->name, m,
                        max_rel(y, want, (size_t)m * N));
            }
            for (int r = 0; r < m; r++) {
                tables[t]->gemm_q8_i16_rows(xq + (size_t)r * K, xs + (size_t)r * (K / 32), 1, &w, 0, N, y1, N,
                                            1.0f, 0);
                bad += memcmp(y1, y + (size_t)r * N, sizeof y1) != 0;
            }
        }
        free(x);
        free(xd);
        free(xs);
        free(y);
        free(xq);
        free(want);
    }
    CHECK_INT(bad, 0);
    wmat_free_owned(&w);
    free(wf);
}

/* The activation quantizers of the q8_0 kernels, int16 (top 32767) and
 * int8 (top 127): scale = block max / top, every value within half a step
 * and at most top, a zero block all zeros, a NaN or an inf in a block a
 * NaN scale (so the product is NaN, as in f32); and int8's lane
 * corrections, -128 x the sums of their values. */
static void check_act_quantizers(void) {
    enum { K = 32 * 6 };
    float x[K], xs[K / 32];
    int16_t q16[K];
    int8_t q8[K];
    int32_t c[K / 32 * 4];
    for (int t = 0; t < K; t++)
        x[t] = frand() * (t < 32 ? 1e-30f : t < 64 ? 1e4f : 1.0f);
    for (int t = 64; t < 96; t++)
        x[t] = 0;
    x[100] = NAN;
    x[140] = -INFINITY;
    int bad = 0;
    for (int int8 = 0; int8 < 2; int8++) {
        const float top = int8 ? 127.0f : 32767.0f;
        if (int8)
            wmat_i8_quantize_row(x, K, q8, xs, c);
        else
            wmat_i16_quantize_row(x, K, q16, xs);
        for (int b = 0; b < K / 32; b++) {
            if (b == 3 || b == 4) {
                bad += !isnan(xs[b]);
                continue;
            }
            float amax = 0;
            for (int t = 0; t < 32; t++)
                amax = fmaxf(amax, fabsf(x[b * 32 + t]));
            bad += xs[b] != amax / top;
            int32_t lane[4] = {0};
            for (int t = 0; t < 32; t++) {
                const int q = int8 ? q8[b * 32 + t] : q16[b * 32 + t];
                bad += !(fabsf((float)q * xs[b] - x[b * 32 + t]) <= 0.5f * xs[b] * (1 + 1e-5f));
                bad += (b == 2 && q != 0) + (abs(q) > (int)top);
                lane[(t % 16) / 4] -= 128 * q;
            }
            for (int i = 0; int8 && i < 4; i++)
                bad += c[b * 4 + i] != lane[i];
        }
    }
    CHECK_INT(bad, 0);
    /* every table's copy (core/actq_impl.h), on that row and on random rows
     * of every scale: the reference's bits */
    const struct kern *tables[KERN_MAX_TABLES];
    const int n_tables = kern_tables(tables);
    float y[K];
    for (int rep = 0; rep < 20; rep++) {
        const float *row = rep ? y : x;
        for (int t = 0; rep && t < K; t++) /* ties at .5 too: integers / 2 within a block's scale */
            y[t] = rep % 3 ? frand() * ldexpf(1.0f, rep - 10) : (float)((int)(frand() * 64)) * 0.5f;
        int16_t r16[K];
        int8_t r8[K];
        float rs16[K / 32], rs8[K / 32], ts[K / 32];
        int32_t rc[K / 32 * 4], tc[K / 32 * 4];
        wmat_i16_quantize_row(row, K, r16, rs16);
        wmat_i8_quantize_row(row, K, r8, rs8, rc);
        for (int t = 0; t < n_tables; t++) {
            tables[t]->i16_quantize_row(row, K, q16, ts);
            bad += memcmp(q16, r16, sizeof q16) != 0 || memcmp(ts, rs16, sizeof ts) != 0;
            tables[t]->i8_quantize_row(row, K, q8, ts, tc);
            bad += memcmp(q8, r8, sizeof q8) != 0 || memcmp(ts, rs8, sizeof ts) != 0 ||
                   memcmp(tc, rc, sizeof tc) != 0;
        }
    }
    CHECK_INT(bad, 0);
}

/* The error q8_0 and BF16 add to a product, against f32 weights: a bound
 * that says the formats are what they claim (relative error of a dot
 * product of random values: ~0.3% for 8 bits, ~0.2% for BF16's 8). */
static void check_quantization_error(void) {
    enum { M = 3, N = 64, K = 512 };
    float *wf = malloc(N * K * sizeof *wf), x[M * K], y[M * N];
    double want[M * N];
    for (int i = 0; i < N * K; i++)
        wf[i] = frand();
    for (int i = 0; i < M * K; i++)
        x[i] = frand();
    struct wmat f32 = wmat_f32(wf, N, K);
    reference(x, M, &f32, 1.0f, NULL, want);
    for (int type = WMAT_BF16; type <= WMAT_Q8_0; type++) {
        struct wmat w;
        CHECK(wmat_convert(wf, N, K, (enum wmat_type)type, &w) == 0);
        mat_gemm_w(M, 1.0f, x, K, &w, 0, y, N);
        double e = max_rel(y, want, M * N);
        CHECK(e > 1e-5 && e < 2e-2); /* really rounded, and only a little */
        wmat_free_owned(&w);
    }
    free(wf);
}

int main(void) {
    test_f16();
    test_quantizer();
    check_products();
    check_act_quantizers();
    check_i16_long_rows();
    check_quantization_error();
    mat_shutdown();
    return TEST_END();
}
