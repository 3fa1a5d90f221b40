/*
 * test_amx.c - BF16 and q8_0 weights times many rows on AMX tiles
 * (core/amx_impl.h, kern gemm_bf16_amx).
 *
 * The AMX table's code is compiled a second time, whole, with the six tile
 * instructions done in C as the manual describes them (tests/amx_emulated.c,
 * which says why it is a file of its own): so on any CPU with AVX512-BF16
 * (the rest of that code's instructions) this checks the packing of x into
 * pair-interleaved tiles against its definition, and the product against a
 * double loop on the bf16-rounded rows, on shapes that leave partial blocks
 * everywhere: x rows not a multiple of 16 or 32 or of the 256-row block, W
 * row ranges starting and ending inside the 128-row block and on a lone
 * 16-row tile, alpha, accumulate, columns outside the range untouched, a NaN
 * row that spoils only itself, and each row's result bit for bit the same
 * alone as in the batch.  Where the CPU and kernel really offer AMX
 * (kern_amx_usable), the real table's kernel goes through the same checks
 * and must agree with the emulation (tests/test_wmat.c then checks
 * mat_gemm_w's AMX path).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "../core/kern.h"
#include "../core/mat.h"
#include "../core/wmat.h"

/* tests/amx_emulated.c: the emulated table, NULL where it was not built */
extern const struct kern *const amx_emulated;

static uint64_t rng = 4242;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

/* y = alpha xr W^T (+ y0) in double over W rows [j_lo, j_hi), xr the
 * bf16-rounded rows, W's values (q8_0: q * scale) rounded to bf16 too;
 * other columns keep y0 */
static void reference(const float *xr, int m, const struct wmat *w, int j_lo, int j_hi, float alpha,
                      const float *y0, int acc, double *out) {
    float *wf = malloc((size_t)w->n * w->k * sizeof *wf);
    wmat_rows_f32(w, 0, w->n, wf);
    for (size_t i = 0; i < (size_t)w->n * w->k; i++)
        wf[i] = wmat_bf16_to_f32(wmat_f32_to_bf16(wf[i]));
    for (int r = 0; r < m; r++)
        for (int j = 0; j < w->n; j++) {
            const size_t o = (size_t)r * w->n + j;
            if (j < j_lo || j >= j_hi) {
                out[o] = y0[o];
                continue;
            }
            double s = 0;
            for (int t = 0; t < w->k; t++)
                s += (double)xr[(size_t)r * w->k + t] * wf[(size_t)j * w->k + t];
            out[o] = alpha * s + (acc ? y0[o] : 0);
        }
    free(wf);
}

/* x's tiles as amx_impl.h defines them: xv[rb][kb][p][r][2] =
 * bf16(x[16 rb + r][32 kb + 2 p ..]), 0 past m. */
static int pack_is_right(const uint16_t *xv, const float *x, int m, int k) {
    const int n_rb = ((m + 31) & ~31) / 16, nkb = k / 32;
    for (int rb = 0; rb < n_rb; rb++)
        for (int kb = 0; kb < nkb; kb++)
            for (int p = 0; p < 16; p++)
                for (int r = 0; r < 16; r++)
                    for (int h = 0; h < 2; h++) {
                        const int row = rb * 16 + r, col = kb * 32 + 2 * p + h;
                        const uint16_t want = row < m ? wmat_f32_to_bf16(x[(size_t)row * k + col]) : 0;
                        if (xv[((size_t)rb * nkb + kb) * 512 + p * 32 + r * 2 + h] != want) return 0;
                    }
    return 1;
}

typedef void (*amx_pack_fn)(const float *, int, int, int, int, int, uint16_t *);
typedef void (*amx_gemm_fn)(const uint16_t *, int, const struct wmat *, int, int, float *, int, float, int,
                            void *);

/* One kernel (pack + product) on one shape: every check above.  got: the
 * product of all rows over [j_lo, j_hi), alpha 0.37, accumulate, for the
 * caller's comparison between kernels. */
static void check_kernel(const char *name, amx_pack_fn pack, amx_gemm_fn gemm, enum wmat_type type, int m,
                         int n, int k, int j_lo, int j_hi, float *got) {
    const int n_rb = ((m + 31) & ~31) / 16;
    float *wf = malloc((size_t)n * k * sizeof *wf), *x = malloc((size_t)m * k * sizeof *x);
    float *xr = malloc((size_t)m * k * sizeof *xr), *y0 = malloc((size_t)m * n * sizeof *y0);
    float *y = malloc((size_t)m * n * sizeof *y), *y1 = malloc((size_t)n * sizeof *y1);
    double *want = malloc((size_t)m * n * sizeof *want);
    uint16_t *xv = aligned_alloc(64, (size_t)n_rb * 16 * k * sizeof *xv);
    uint16_t *xv1 = aligned_alloc(64, (size_t)32 * k * sizeof *xv1);
    for (size_t i = 0; i < (size_t)n * k; i++)
        wf[i] = frand();
    for (size_t i = 0; i < (size_t)m * k; i++) {
        x[i] = frand() * 3;
        xr[i] = wmat_bf16_to_f32(wmat_f32_to_bf16(x[i]));
    }
    for (size_t i = 0; i < (size_t)m * n; i++)
        y0[i] = frand();
    struct wmat w;
    CHECK(wmat_convert(wf, n, k, type, &w) == 0);
    void *panel = type == WMAT_Q8_0 ? aligned_alloc(64, KERN_AMX_PANEL_BYTES(k)) : NULL;
    memset(xv, 0xff, (size_t)n_rb * 16 * k * sizeof *xv); /* the padding rows must be written */
    pack(x, k, m, k, 0, n_rb / 2, xv);                    /* in two calls, as the pool does */
    pack(x, k, m, k, n_rb / 2, n_rb, xv);
    CHECK(pack_is_right(xv, x, m, k));
    for (int acc = 0; acc < 2; acc++) {
        const float alpha = acc ? 0.37f : 1.0f;
        memcpy(y, y0, (size_t)m * n * sizeof *y);
        gemm(xv, m, &w, j_lo, j_hi, y, n, alpha, acc, panel);
        reference(xr, m, &w, j_lo, j_hi, alpha, y0, acc, want);
        int outside = 0; /* columns outside [j_lo, j_hi): not a bit changed */
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
                if (j < j_lo || j >= j_hi)
                    outside |= memcmp(&y[(size_t)r * n + j], &y0[(size_t)r * n + j], 4);
        const double err = max_rel(y, want, (size_t)m * n);
        CHECK(!outside);
        CHECK(err < 1e-5);
        if (outside || !(err < 1e-5))
            fprintf(stderr, "%s %s: m %d n %d k %d [%d, %d) acc %d: error %g%s\n", name, wmat_type_name(type),
                    m, n, k, j_lo, j_hi, acc, err, outside ? ", columns outside the range written" : "");
    }
    memcpy(got, y, (size_t)m * n * sizeof *y);
    /* each row alone (packed as a 1-row x): the same bits as in the batch */
    int differ = 0;
    for (int r = 0; r < m; r += (m > 40 ? 7 : 1)) {
        pack(x + (size_t)r * k, k, 1, k, 0, 2, xv1);
        memcpy(y1, y0 + (size_t)r * n, (size_t)n * sizeof *y1);
        gemm(xv1, 1, &w, j_lo, j_hi, y1, n, 0.37f, 1, panel);
        differ += memcmp(y1, y + (size_t)r * n, (size_t)n * sizeof *y1) != 0;
    }
    CHECK_INT(differ, 0);
    /* a NaN in one row spoils that row and no other */
    if (m >= 3) {
        x[(size_t)1 * k + k / 2] = NAN;
        pack(x, k, m, k, 0, n_rb, xv);
        memcpy(y, y0, (size_t)m * n * sizeof *y);
        gemm(xv, m, &w, j_lo, j_hi, y, n, 1.0f, 0, panel);
        int nan_row = 1, others = 1;
        for (int j = j_lo; j < j_hi; j++) {
            nan_row &= isnan(y[(size_t)1 * n + j]);
            others &= !isnan(y[j]) && !isnan(y[(size_t)2 * n + j]);
        }
        CHECK(nan_row && others);
    }
    wmat_free_owned(&w);
    free(wf), free(x), free(xr), free(y0), free(y), free(y1), free(want), free(xv), free(xv1), free(panel);
}

/* Shapes: m across the 16-row tile, the 32-row pair and the 256-row block;
 * n with a lone 16-row tile at the end (n % 32 == 16) and past the 128-row
 * block; W row ranges that start and end inside it. */
static const struct {
    int m, n, k, j_lo, j_hi;
} shapes[] = {
    {1, 16, 32, 0, 16},     {3, 48, 64, 16, 48},   {16, 32, 96, 0, 32},    {17, 176, 64, 16, 160},
    {31, 80, 32, 32, 80},   {33, 48, 128, 0, 48},  {70, 160, 96, 48, 144}, {257, 48, 64, 0, 48},
    {300, 144, 32, 0, 144}, {40, 32, 1024, 0, 32},
};

/* the emulated kernel with one value of y off by one */
static void broken_gemm(const uint16_t *xv, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                        int ldy, float alpha, int accumulate, void *panel) {
    amx_emulated->gemm_bf16_amx(xv, m, w, j_lo, j_hi, y, ldy, alpha, accumulate, panel);
    y[(size_t)(m - 1) * ldy + j_hi - 1] += 1.0f;
}

static void check_emulated(void) {
    if (!amx_emulated) {
        fprintf(stderr, "test_amx: built without AVX512-BF16: nothing to run\n");
        return;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) {
        fprintf(stderr, "test_amx: no AVX512-BF16 on this CPU: the emulated AMX kernel is not run\n");
        return;
    }
    /* the self-test that guards the real table: right on the emulation, and
     * it notices one wrong value */
    CHECK_INT(kern_amx_self_test(amx_emulated), 1);
    struct kern broken = *amx_emulated;
    broken.gemm_bf16_amx = broken_gemm;
    CHECK_INT(kern_amx_self_test(&broken), 0);
    CHECK(kern_amx_status() != KERN_AMX_WRONG); /* tiles that compute wrong: a bug here */
    const struct kern *real = kern_amx_usable() ? &kern_amx : NULL;
    if (kern_amx_status() == KERN_AMX_DENIED)
        fprintf(stderr, "test_amx: this CPU has AMX, Linux refused it\n");
    fprintf(stderr, "test_amx: emulated tiles%s\n",
            real ? ", and this CPU's AMX" : " (this CPU offers no AMX: the real kernel is not run)");
    CHECK(amx_emulated->gemm_bf16_amx != NULL);
    for (int type = WMAT_BF16; type <= WMAT_Q8_0; type++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            const int m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
            float *a = malloc((size_t)m * n * sizeof *a), *b = malloc((size_t)m * n * sizeof *b);
            rng = 4242 + s; /* the same data for both kernels */
            check_kernel("emulated", amx_emulated->amx_pack_x, amx_emulated->gemm_bf16_amx,
                         (enum wmat_type)type, m, n, k, shapes[s].j_lo, shapes[s].j_hi, a);
            if (real) {
                rng = 4242 + s;
                check_kernel("amx", real->amx_pack_x, real->gemm_bf16_amx, (enum wmat_type)type, m, n, k,
                             shapes[s].j_lo, shapes[s].j_hi, b);
                /* the emulation sums each pair of products in order, rounding after
                 * each; the hardware's rounding inside a pair is its own: close,
                 * maybe not equal */
                double *ad = malloc((size_t)m * n * sizeof *ad);
                for (size_t i = 0; i < (size_t)m * n; i++)
                    ad[i] = a[i];
                const double d = max_rel(b, ad, (size_t)m * n);
                CHECK(d < 1e-6);
                fprintf(stderr, "test_amx: %s m %d n %d k %d: AMX against the emulation %g\n",
                        wmat_type_name((enum wmat_type)type), m, n, k, d);
                free(ad);
            }
            free(a), free(b);
        }
}

int main(void) {
    check_emulated();
    mat_shutdown();
    return TEST_END();
}
