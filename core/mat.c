/*
 * mat.c - see mat.h.
 *
 * All parallelism is the pool's.  OpenBLAS runs single-threaded, called from
 * every pool thread at once on its own slice of a GEMM (columns of C unless
 * C is taller than wide), which is the mode OpenBLAS documents for threaded
 * applications.  Letting OpenBLAS keep threads of its own does not mix: they
 * busy-wait for a while after every GEMM and take the cores away from the
 * pool's LayerNorm, activation and attention tasks (measured: the attention
 * ran no faster on 2 threads than on 1).
 *
 * Tasks: row or column ranges of GEMMs, row ranges for LayerNorm, value
 * ranges for activations, one (sequence, head) pair per
 * attention task, each pool thread with its own slice of attention scratch.
 */
#include "mat.h"

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "err.h"

#include "pool.h"

/* Set by mat_init in main, read-only afterwards. */
static int g_threads = 1;
static struct pool *g_pool;
static const struct kern *g_kern = &kern_generic;

/* Per-thread f32 panels for mat_gemm_w's many-row path: slot t belongs to
 * pool thread t alone, grown by it on first need. */
struct wpanel {
    float *buf;
    size_t cap;
};
static struct wpanel *g_panels;
static int g_n_panels;

/* mat_set_q8_act */
static int g_q8_int8;

int mat_set_q8_act(const char *name) {
    if (strcmp(name, "int16") && strcmp(name, "int8")) return -1;
    g_q8_int8 = !strcmp(name, "int8");
    return 0;
}

/* int8 rows asked for, and this table has their kernel */
static int q8_int8_on(void) { return g_q8_int8 && g_kern && g_kern->gemm_q8_i8_rows; }

const char *mat_q8_act(void) { return q8_int8_on() ? "int8" : "int16"; }

/* The integer rows of mat_gemm_w's 1 to i16_max_m rows against q8_0: int16
 * (kern gemm_q8_i16_rows) or, with mat_set_q8_act("int8"), int8 and their
 * lane corrections (gemm_q8_i8_rows).  Owned by the pool's one compute
 * thread, grown once. */
static struct {
    void *q;    /* int16_t or int8_t values: 2 bytes each, room for either */
    float *s;   /* a scale per block */
    int32_t *c; /* int8: 4 lane corrections per block */
    size_t cap; /* values */
} g_irows;

/* mat_gemm_w's rows rounded to bf16 for kern gemm_bf16_dot: the same owner
 * as g_irows. */
static struct {
    uint16_t *x;
    size_t cap; /* values */
} g_bf16;

/* mat_gemm_w's rows as AMX tiles (kern amx_pack_x): the same owner. */
static struct {
    uint16_t *x;
    size_t cap; /* values */
} g_amx;

static void panels_free(void) {
    for (int i = 0; i < g_n_panels; i++)
        free(g_panels[i].buf);
    free(g_panels);
    g_panels = NULL;
    g_n_panels = 0;
}

int mat_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int mat_init(int n_threads) {
    if (n_threads <= 0) n_threads = mat_cores();
    g_threads = n_threads;
    openblas_set_num_threads(1);
    g_kern = kern_best();
    pool_free(g_pool);
    panels_free();
    g_pool = pool_new(n_threads);
    if (!g_pool) return -1;
    g_panels = calloc((size_t)pool_size(g_pool), sizeof *g_panels);
    if (!g_panels) return -1;
    g_n_panels = pool_size(g_pool);
    return 0;
}

void mat_shutdown(void) {
    pool_free(g_pool);
    g_pool = NULL;
    panels_free();
    free(g_bf16.x);
    g_bf16.x = NULL;
    g_bf16.cap = 0;
    free(g_amx.x);
    g_amx.x = NULL;
    g_amx.cap = 0;
    free(g_irows.q);
    free(g_irows.s);
    free(g_irows.c);
    g_irows.q = NULL;
    g_irows.s = NULL;
    g_irows.c = NULL;
    g_irows.cap = 0;
}

int mat_threads(void) { return g_threads; }
const char *mat_kernels(void) { return g_kern->name; }

/* One slice of [0, len) per pool thread: its length, rounded up to a
 * multiple of align (one slice of all of it on one thread). */
static int slice_len(int len, int align) {
    const int per = (len + g_threads - 1) / g_threads;
    return (per + align - 1) / align * align;
}

struct gemm_job {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, by_rows, step;
    float alpha, beta;
    const float *a, *b;
    float *c;
};

static void gemm_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct gemm_job *j = ctx;
    int lo = task * j->step, hi = lo + j->step;
    const float *a = j->a, *b = j->b;
    float *c = j->c;
    int m = j->m, n = j->n;
    if (m == 1 && !j->trans_a) { /* a row vector times B: a GEMV over columns lo..hi */
        hi = hi > n ? n : hi;
        if (j->trans_b) /* c[lo..hi) = B[lo..hi, :] a */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, j->k, j->alpha, b + (size_t)lo * j->ldb, j->ldb,
                        a, 1, j->beta, c + lo, 1);
        else /* c[lo..hi) = B[:, lo..hi]^T a */
            cblas_sgemv(CblasRowMajor, CblasTrans, j->k, hi - lo, j->alpha, b + lo, j->ldb, a, 1, j->beta,
                        c + lo, 1);
        return;
    }
    if (j->by_rows) { /* rows lo..hi of op(A) and C */
        hi = hi > m ? m : hi;
        m = hi - lo;
        a += j->trans_a ? (size_t)lo : (size_t)lo * j->lda;
        c += (size_t)lo * j->ldc;
    } else { /* columns lo..hi of op(B) and C */
        hi = hi > n ? n : hi;
        n = hi - lo;
        b += j->trans_b ? (size_t)lo * j->ldb : (size_t)lo;
        c += lo;
    }
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans,
                m, n, j->k, j->alpha, a, j->lda, b, j->ldb, j->beta, c, j->ldc);
}

void mat_gemm_blas(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
                k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mat_blas_threads(int n) { openblas_set_num_threads(n); }

/* Few rows times a transposed matrix, in column slices (kern gemm_nt_rows). */
static void rows_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct gemm_job *j = ctx;
    int lo = task * j->step, hi = lo + j->step > j->n ? j->n : lo + j->step;
    g_kern->gemm_nt_rows(j->a, j->lda, j->m, j->b + (size_t)lo * j->ldb, j->ldb, hi - lo, j->k, j->c + lo,
                         j->ldc, j->beta != 0);
}

/* Up to this many rows, y = x W^T runs on gemm_nt_rows (measured on the
 * 2-core AVX2 machine at 8192 x 2048: OpenBLAS sgemm reads W at 5-6 GB/s
 * for 2 to 16 rows, because it packs W first; see docs/ARCHITECTURE.md). */
#define MAT_FEW_ROWS 16

void mat_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    struct gemm_job j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, 0, 0, alpha, beta, a, b, c};
    const int T = g_threads;
    int tasks = 1;
    if (m > 1 && m <= MAT_FEW_ROWS && !trans_a && trans_b && alpha == 1.0f &&
        (beta == 0.0f || beta == 1.0f) && (double)n * k >= 1e5) {
        j.step = slice_len(n, 16);
        pool_for(g_pool, (n + j.step - 1) / j.step, rows_task, &j);
        return;
    }
    if (m == 1 && !trans_a) {
        /* decode: a matrix-vector product (sgemm would pack the whole
         * matrix first), in column slices over the pool */
        int split = T > 1 && (double)n * k >= 1e5;
        j.step = split ? slice_len(n, 16) : n;
        pool_for(g_pool, (n + j.step - 1) / j.step, gemm_task, &j);
        return;
    }
    if (T > 1 && (double)m * n * k >= 4e6) {
        /* About one slice per thread: by columns of C unless C is taller
         * than wide.  A row slice makes each thread pack all of B (the
         * weights) for itself; a column slice packs half of it and all of
         * A.  Measured (2 threads, OpenBLAS 0.3.21): the image tower at
         * batch 1, 257 x 3072 x 1024, 116 GFLOP/s by rows, 126 by columns;
         * at batch 8, 2056 rows, the same either way.  Few rows (a prompt,
         * a batch of decodes) would otherwise leave slices of a few rows
         * that OpenBLAS runs poorly. */
        j.by_rows = m >= n;
        int len = j.by_rows ? m : n, align = j.by_rows ? 8 : 16;
        j.step = slice_len(len, align);
        tasks = (len + j.step - 1) / j.step;
    }
    if (tasks <= 1) {
        mat_gemm_blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    pool_for(g_pool, tasks, gemm_task, &j);
}

void mat_linear(float *y, const float *x, const float *w, const float *b, int m, int n, int k,
                int accumulate) {
    const struct wmat wm = wmat_f32(w, n, k);
    mat_linear_w(y, x, &wm, b, m, accumulate);
}

/* ---- weights of any stored type (core/wmat.h) ---------------------------- */

struct wgemm_job {
    const float *x;
    int ldx, m, ldy, step, accumulate;
    float alpha;
    const struct wmat *w;
    float *y;
};

static void wrows_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct wgemm_job *j = ctx;
    int lo = task * j->step, hi = lo + j->step > j->w->n ? j->w->n : lo + j->step;
    g_kern->gemm_nt_rows_w(j->x, j->ldx, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha, j->accumulate);
}

/* The int16 path takes up to the kernel table's i16_max_m rows (kern.h:
 * 11 for AVX2, where it was measured against the panel kernel faster up to
 * 10 rows, even at 12, slower from 16; more with AVX-512 VNNI) of up to
 * MAT_I16_MAX_K columns (the LM's widest, MPT-7B's MLP, is 16384);
 * docs/ARCHITECTURE.md. */
#define MAT_I16_MAX_K 32768

struct wgemm_int_job {
    const void *xq; /* int16_t, or int8_t with xc */
    const float *xs;
    const int32_t *xc;
    const struct wmat *w;
    float *y;
    float alpha;
    int m, ldy, accumulate, step;
};

static void wgemm_int_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct wgemm_int_job *j = ctx;
    int lo = task * j->step, hi = lo + j->step > j->w->n ? j->w->n : lo + j->step;
    if (j->xc)
        g_kern->gemm_q8_i8_rows(j->xq, j->xs, j->xc, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha,
                                j->accumulate);
    else
        g_kern->gemm_q8_i16_rows(j->xq, j->xs, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha, j->accumulate);
}

/* Without memory for a panel: the few-row kernel, 16 rows at a time, on W
 * rows [lo, hi) (slower, the same result to rounding). */
static void few_rows_fallback(const struct wgemm_job *j, int lo, int hi) {
    for (int r = 0; r < j->m; r += MAT_FEW_ROWS)
        g_kern->gemm_nt_rows_w(j->x + (size_t)r * j->ldx, j->ldx,
                               j->m - r < MAT_FEW_ROWS ? j->m - r : MAT_FEW_ROWS, j->w, lo, hi,
                               j->y + (size_t)r * j->ldy, j->ldy, j->alpha, j->accumulate);
}

/* Thread `thread`'s panel of at least `floats` floats, 64-byte aligned
 * (the kernels keep vectors in it), or NULL.  The contents do not survive
 * growing. */
static float *panel_of(int thread, size_t floats) {
    struct wpanel *p = &g_panels[thread];
    if (p->cap < floats) {
        free(p->buf);
        p->cap = 0;
        p->buf = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!p->buf) return NULL;
        p->cap = floats;
    }
    return p->buf;
}

/* Many rows: this task's panel of W rows widened to f32 in the thread's own
 * buffer, then one sgemm for all m rows against it. */
static void wpanel_task(void *ctx, int task, int thread) {
    struct wgemm_job *j = ctx;
    const struct wmat *w = j->w;
    int lo = task * j->step, hi = lo + j->step > w->n ? w->n : lo + j->step;
    float *panel = panel_of(thread, (size_t)j->step * (size_t)w->k);
    if (!panel) {
        few_rows_fallback(j, lo, hi);
        return;
    }
    g_kern->widen_rows(w, lo, hi, panel);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->m, hi - lo, w->k, j->alpha, j->x, j->ldx, panel,
                w->k, j->accumulate ? 1.0f : 0.0f, j->y + lo, j->ldy);
}

/* From this many rows up to KERN_PANEL_MAX_M, stored weights go to
 * gemm_nt_panel_w (measured, docs/ARCHITECTURE.md: 1.0-1.5x the few-row
 * kernel from 8 rows on, slower below: widening costs one pass), q8_0
 * only past i16_max_m (the int16 kernel is faster up to there).  F32
 * weights go there from 2 rows to MAT_F32_TILE_MAX_M (1.3-2.3x mat_gemm's
 * few-row kernel).  Beyond 16 rows OpenBLAS's sgemm is faster: with its
 * AVX-512 kernels (core/blas_core.c) it took 9.3 / 10.1 ms at 24 rows of
 * the LM's MLP products against 12.3 / 12.3 for the tiles, and 10.8 / 9.5
 * at 32 against 16.0 / 13.5 (2026-11-29; with its SSE3 kernels, from 48). */
#define MAT_PANEL_MIN_M    8
#define MAT_F32_TILE_MAX_M 16

/* Some rows against stored weights: blocks widened once per thread, then
 * register tiles (kern gemm_nt_panel_w). */
static void wtile_task(void *ctx, int task, int thread) {
    const struct wgemm_job *j = ctx;
    int lo = task * j->step, hi = lo + j->step > j->w->n ? j->w->n : lo + j->step;
    float *panel = j->w->type == WMAT_F32 ? NULL : panel_of(thread, KERN_PANEL_FLOATS);
    if (!panel && j->w->type != WMAT_F32) {
        few_rows_fallback(j, lo, hi);
        return;
    }
    g_kern->gemm_nt_panel_w(j->x, j->ldx, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha, j->accumulate, panel);
}

/* From this many rows, BF16 weights go to gemm_bf16_dot where the CPU has
 * AVX512-BF16, and q8_0 weights past the int16 kernel's rows (i16_max_m, 8
 * in that table): the rows are rounded to bf16, as PyTorch's bf16 autocast
 * does, and multiplied at twice the f32 FMA rate.  Measured against the
 * f32 few-row and tile kernels it was as fast at 2 rows (both read the
 * weights at the memory's rate) and 1.2-1.5x faster from 8
 * (docs/ARCHITECTURE.md).  One row (one sequence's decode) keeps f32. */
#define MAT_BF16_DOT_MIN_M 2
/* Up to this many rows: past it (prompts, images) the weights are widened
 * to f32 panels for OpenBLAS's sgemm, which with its AVX-512 kernels runs
 * at 175-240 GFLOP/s there against the dot product's 130-150: vdpbf16ps
 * does 32 multiply-adds an instruction at one a cycle, two 16-lane FMAs
 * do as many (docs/ARCHITECTURE.md, "OpenBLAS's kernels"). */
#define MAT_BF16_DOT_MAX_M 64

struct wgemm_bf16_job {
    struct wgemm_job f32; /* the f32 rows and the product: the fallback's */
    const uint16_t *xb;
};

static void wgemm_bf16_task(void *ctx, int task, int thread) {
    const struct wgemm_bf16_job *b = ctx;
    const struct wgemm_job *j = &b->f32;
    int lo = task * j->step, hi = lo + j->step > j->w->n ? j->w->n : lo + j->step;
    void *panel = panel_of(thread, (KERN_BF16_PANEL_BYTES(j->w->k) + sizeof(float) - 1) / sizeof(float));
    if (!panel) {
        few_rows_fallback(j, lo, hi);
        return;
    }
    g_kern->gemm_bf16_dot(b->xb, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha, j->accumulate, panel);
}

/* From this many rows, BF16 and q8_0 weights go to AMX tiles where the CPU
 * has them (kern gemm_bf16_amx, the AMX table): one tile is 16 rows of x.
 * Not yet measured (no AMX on the machines this was written on).  A tile
 * product does 16 x 16 x 32 multiply-adds where vdpbf16ps does 32, so for
 * BF16 the tiles should win wherever the weights come from cache.  For q8_0
 * at 16 rows the int8 kernel ran at 80-88 G multiply-adds/s a core, less
 * than the 16 x 17 G weights/s that 18 GB/s of q8_0 would feed, while the
 * tiles' cost there is widening each weight once (a few instructions per
 * 32), so they should reach the memory's rate first.  To be measured with
 * tools/device_check.sh. */
#define MAT_AMX_MIN_M 16

struct wgemm_amx_job {
    uint16_t *xv; /* written by the packing tasks, read by the product's */
    const float *x;
    const struct wmat *w;
    float *y;
    float alpha;
    int m, ldx, ldy, accumulate, step;
};

static void amx_pack_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct wgemm_amx_job *j = ctx;
    const int rb0 = task * j->step, n_rb = ((j->m + 31) & ~31) / 16;
    g_kern->amx_pack_x(j->x, j->ldx, j->m, j->w->k, rb0, rb0 + j->step < n_rb ? rb0 + j->step : n_rb, j->xv);
}

static void wgemm_amx_task(void *ctx, int task, int thread) {
    const struct wgemm_amx_job *j = ctx;
    const int lo = task * j->step, hi = lo + j->step > j->w->n ? j->w->n : lo + j->step;
    void *panel = NULL;
    if (j->w->type == WMAT_Q8_0) {
        panel = panel_of(thread, (KERN_AMX_PANEL_BYTES(j->w->k) + sizeof(float) - 1) / sizeof(float));
        if (!panel) { /* no memory for it: the few-row kernel, widening in registers */
            const struct wgemm_job f = {.x = j->x,
                                        .ldx = j->ldx,
                                        .m = j->m,
                                        .ldy = j->ldy,
                                        .accumulate = j->accumulate,
                                        .alpha = j->alpha,
                                        .w = j->w,
                                        .y = j->y};
            few_rows_fallback(&f, lo, hi);
            return;
        }
    }
    g_kern->gemm_bf16_amx(j->xv, j->m, j->w, lo, hi, j->y, j->ldy, j->alpha, j->accumulate, panel);
}

/* The AMX path: every row rounded to bf16 tiles in g_amx (16-row blocks
 * over the pool), then kern gemm_bf16_amx on slices of 32 W rows.  0, or
 * -1 without memory for the tiles. */
static int gemm_w_amx(int m, float alpha, const float *x, int ldx, const struct wmat *w, int accumulate,
                      float *y, int ldy) {
    const int n_rb = ((m + 31) & ~31) / 16;
    const size_t need = (size_t)n_rb * 16 * (size_t)w->k;
    if (g_amx.cap < need) {
        free(g_amx.x);
        g_amx.x = aligned_alloc(64, (need * sizeof *g_amx.x + 63) & ~(size_t)63);
        g_amx.cap = g_amx.x ? need : 0;
    }
    if (g_amx.cap < need) return -1;
    struct wgemm_amx_job j = {.xv = g_amx.x,
                              .x = x,
                              .w = w,
                              .y = y,
                              .alpha = alpha,
                              .m = m,
                              .ldx = ldx,
                              .ldy = ldy,
                              .accumulate = accumulate};
    j.step = (n_rb + g_threads - 1) / g_threads;
    pool_for(g_pool, (n_rb + j.step - 1) / j.step, amx_pack_task, &j);
    j.step = slice_len(w->n, 32);
    pool_for(g_pool, (w->n + j.step - 1) / j.step, wgemm_amx_task, &j);
    return 0;
}

/* Which kernel mat_gemm_w runs for m rows against w (the thresholds above,
 * measured on the 2-core development machine). */
enum wpath { WP_MAT_GEMM, WP_I16, WP_TILES, WP_FEW_ROWS, WP_PANEL_SGEMM, WP_BF16_DOT, WP_AMX };

static enum wpath wpath_of(int m, const struct wmat *w) {
    const int f32 = w->type == WMAT_F32;
    if (g_kern->gemm_bf16_amx && w->type != WMAT_F32 && m >= MAT_AMX_MIN_M && w->k % 32 == 0 &&
        w->n % 16 == 0)
        return WP_AMX;
    if (g_kern->gemm_bf16_dot && m <= MAT_BF16_DOT_MAX_M &&
        ((w->type == WMAT_BF16 && m >= MAT_BF16_DOT_MIN_M) ||
         (w->type == WMAT_Q8_0 && m > g_kern->i16_max_m)))
        return WP_BF16_DOT;
    /* the register tiles: f32 from 2 to MAT_F32_TILE_MAX_M rows (no
     * widening: the weights are their own panel), stored types from
     * MAT_PANEL_MIN_M to KERN_PANEL_MAX_M */
    const int tiles = m >= (f32 ? 2 : MAT_PANEL_MIN_M) &&
                      m <= (f32 ? MAT_F32_TILE_MAX_M : KERN_PANEL_MAX_M) && w->k % 8 == 0;
    if (f32) return tiles ? WP_TILES : WP_MAT_GEMM;
    if (m <= g_kern->i16_max_m && w->type == WMAT_Q8_0 && w->k <= MAT_I16_MAX_K) return WP_I16;
    if (tiles) return WP_TILES;
    return m <= MAT_FEW_ROWS ? WP_FEW_ROWS : WP_PANEL_SGEMM;
}

const char *mat_gemm_w_kernel(int m, const struct wmat *w) {
    switch (wpath_of(m, w)) {
    case WP_MAT_GEMM: return m == 1 ? "sgemv" : "sgemm";
    case WP_I16: return q8_int8_on() ? "int8 rows" : "int16 rows";
    case WP_TILES: return w->type == WMAT_F32 ? "4x3 tiles" : "panel, 4x3 tiles";
    case WP_FEW_ROWS: return "few-row";
    case WP_PANEL_SGEMM: return "panel, sgemm";
    case WP_BF16_DOT: return "bf16 dot";
    case WP_AMX: return "amx tiles";
    }
    return "?";
}

/* Rounding rows of x to g_irows, one row per task: on the calling thread
 * alone it was 9% of an 8-sequence decode step's time with int8 rows
 * (perf, 3B q8_0), the other thread waiting. */
struct irows_job {
    const float *x;
    int ldx, k, int8;
};

static void irows_task(void *ctx, int r, int thread) {
    (void)thread;
    const struct irows_job *j = ctx;
    const size_t nb = (size_t)j->k / WMAT_Q8_BLOCK;
    const float *xr = j->x + (size_t)r * j->ldx;
    if (j->int8)
        g_kern->i8_quantize_row(xr, j->k, (int8_t *)g_irows.q + (size_t)r * j->k, g_irows.s + r * nb,
                                g_irows.c + r * nb * 4);
    else
        g_kern->i16_quantize_row(xr, j->k, (int16_t *)g_irows.q + (size_t)r * j->k, g_irows.s + r * nb);
}

/* The integer path: every row rounded to int16 blocks (int8 with their
 * lane corrections when int8) in g_irows, then kern gemm_q8_i16_rows
 * (gemm_q8_i8_rows).  0, or -1 without memory for the rows. */
static int gemm_w_int(int m, float alpha, const float *x, int ldx, const struct wmat *w, int accumulate,
                      float *y, int ldy, int int8) {
    const size_t need = (size_t)m * (size_t)w->k;
    if (g_irows.cap < need) {
        free(g_irows.q);
        free(g_irows.s);
        free(g_irows.c);
        g_irows.q = malloc(need * sizeof(int16_t));
        g_irows.s = malloc(need / WMAT_Q8_BLOCK * sizeof *g_irows.s);
        g_irows.c = malloc(need / WMAT_Q8_BLOCK * 4 * sizeof *g_irows.c);
        g_irows.cap = g_irows.q && g_irows.s && g_irows.c ? need : 0;
    }
    if (g_irows.cap < need) return -1;
    struct irows_job q = {.x = x, .ldx = ldx, .k = w->k, .int8 = int8};
    pool_for(g_pool, m, irows_task, &q); /* one row: on this thread */
    struct wgemm_int_job g = {.xq = g_irows.q,
                              .xs = g_irows.s,
                              .xc = int8 ? g_irows.c : NULL,
                              .w = w,
                              .y = y,
                              .alpha = alpha,
                              .m = m,
                              .ldy = ldy,
                              .accumulate = accumulate};
    g.step = slice_len(w->n, 16);
    pool_for(g_pool, (w->n + g.step - 1) / g.step, wgemm_int_task, &g);
    return 0;
}

/* The bf16 path: every row rounded to bf16 in g_bf16, then kern
 * gemm_bf16_dot.  0, or -1 without memory for the rows. */
static int gemm_w_bf16(int m, float alpha, const float *x, int ldx, const struct wmat *w, int accumulate,
                       float *y, int ldy) {
    const size_t kp = (size_t)(w->k + 1) & ~(size_t)1, need = (size_t)m * kp;
    if (g_bf16.cap < need) {
        free(g_bf16.x);
        g_bf16.x = malloc(need * sizeof *g_bf16.x);
        g_bf16.cap = g_bf16.x ? need : 0;
    }
    if (g_bf16.cap < need) return -1;
    g_kern->bf16_pack_x(x, ldx, m, w->k, g_bf16.x);
    struct wgemm_bf16_job g = {.f32 = {.x = x,
                                       .ldx = ldx,
                                       .m = m,
                                       .ldy = ldy,
                                       .accumulate = accumulate,
                                       .alpha = alpha,
                                       .w = w,
                                       .y = y,
                                       .step = slice_len(w->n, 32)},
                               .xb = g_bf16.x};
    pool_for(g_pool, (w->n + g.f32.step - 1) / g.f32.step, wgemm_bf16_task, &g);
    return 0;
}

void mat_gemm_w(int m, float alpha, const float *x, int ldx, const struct wmat *w, int accumulate, float *y,
                int ldy) {
    const int T = g_threads;
    enum wpath path = wpath_of(m, w);
    if (path == WP_MAT_GEMM) {
        mat_gemm(0, 1, m, w->n, w->k, alpha, x, ldx, w->data, w->k, accumulate ? 1.0f : 0.0f, y, ldy);
        return;
    }
    if (path == WP_AMX) {
        if (gemm_w_amx(m, alpha, x, ldx, w, accumulate, y, ldy) == 0) return;
        path = m <= MAT_BF16_DOT_MAX_M ? WP_BF16_DOT : WP_PANEL_SGEMM; /* no memory for the tiles */
    }
    if (path == WP_BF16_DOT) {
        if (gemm_w_bf16(m, alpha, x, ldx, w, accumulate, y, ldy) == 0) return;
        path =
            m <= KERN_PANEL_MAX_M && w->k % 8 == 0 ? WP_TILES : WP_PANEL_SGEMM; /* no memory for the rows */
    }
    if (path == WP_I16) {
        if (gemm_w_int(m, alpha, x, ldx, w, accumulate, y, ldy, q8_int8_on()) == 0) return;
        path = WP_FEW_ROWS; /* no memory for the integer rows: widen in registers (m <= 16) */
    }
    struct wgemm_job j = {.x = x, .ldx = ldx, .m = m, .ldy = ldy, .accumulate = accumulate, .alpha = alpha,
                          .w = w, .y = y};
    if (path == WP_TILES) {
        j.step = slice_len(w->n, KERN_PANEL_ROWS);
        pool_for(g_pool, (w->n + j.step - 1) / j.step, wtile_task, &j);
        return;
    }
    if (path == WP_FEW_ROWS) {
        j.step = slice_len(w->n, 16);
        pool_for(g_pool, (w->n + j.step - 1) / j.step, wrows_task, &j);
        return;
    }
    /* panels of at most 128 rows, at least one per thread where n allows */
    int per = (w->n + T - 1) / T;
    j.step = per < 128 ? (per + 15) / 16 * 16 : 128;
    pool_for(g_pool, (w->n + j.step - 1) / j.step, wpanel_task, &j);
}

void mat_linear_w(float *y, const float *x, const struct wmat *w, const float *b, int m, int accumulate) {
    const int n = w->n;
    if (b) {
        for (int r = 0; r < m; r++) {
            float *row = y + (size_t)r * n;
            if (accumulate)
                for (int j = 0; j < n; j++)
                    row[j] += b[j];
            else
                memcpy(row, b, (size_t)n * sizeof *row);
        }
    }
    mat_gemm_w(m, 1.0f, x, w->k, w, b || accumulate, y, n);
}

/* Splits [0, n) into about 4 chunks per thread, chunk sizes rounded to
 * `align` so that vector loops see whole blocks. */
static int n_chunks(size_t n, size_t align, size_t *chunk) {
    size_t want = (size_t)g_threads * 4;
    size_t c = (n + want - 1) / want;
    c = (c + align - 1) / align * align;
    if (c == 0) c = align;
    *chunk = c;
    return (int)((n + c - 1) / c);
}

struct rows_job {
    float *y;
    const float *x, *w, *b;
    int rows, dim;
    float eps;
    size_t chunk;
};

static void layernorm_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct rows_job *j = ctx;
    int r0 = (int)(task * j->chunk), r1 = r0 + (int)j->chunk > j->rows ? j->rows : r0 + (int)j->chunk;
    size_t off = (size_t)r0 * j->dim;
    g_kern->layernorm(j->y + off, j->x + off, j->w, j->b, r1 - r0, j->dim, j->eps);
}

void mat_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int dim, float eps) {
    struct rows_job j = {.y = y, .x = x, .w = w, .b = b, .rows = rows, .dim = dim, .eps = eps};
    pool_for(g_pool, n_chunks((size_t)rows, 1, &j.chunk), layernorm_task, &j);
}

struct act_job {
    float *x;
    size_t n, chunk;
    void (*fn)(float *, size_t);
};

static void act_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct act_job *j = ctx;
    size_t i0 = (size_t)task * j->chunk, len = i0 + j->chunk > j->n ? j->n - i0 : j->chunk;
    j->fn(j->x + i0, len);
}

void mat_quick_gelu(float *x, size_t n) {
    struct act_job j = {.x = x, .n = n, .fn = g_kern->quick_gelu};
    pool_for(g_pool, n_chunks(n, 64, &j.chunk), act_task, &j);
}

void mat_gelu(float *x, size_t n) {
    struct act_job j = {.x = x, .n = n, .fn = g_kern->gelu};
    pool_for(g_pool, n_chunks(n, 64, &j.chunk), act_task, &j);
}

struct attn_run {
    void (*fill)(void *, int, struct kern_attn *);
    void *ctx;
    float *scratch;
    size_t scratch_floats, per_thread;
};

static void attn_run_task(void *ctx, int task, int thread) {
    const struct attn_run *r = ctx;
    struct kern_attn a;
    r->fill(r->ctx, task, &a);
    FL_ASSERT(kern_attn_scratch(a.n_kv, a.dim) <= r->per_thread);
    g_kern->attention(&a, r->scratch + (size_t)thread * r->per_thread);
}

size_t mat_attention_scratch(int n_kv, int head_dim) {
    return (size_t)pool_size(g_pool) * kern_attn_scratch(n_kv, head_dim);
}

void mat_attention_run(int n_tasks, void (*fill)(void *ctx, int task, struct kern_attn *a), void *ctx,
                       float *scratch, size_t scratch_floats) {
    struct attn_run r = {fill, ctx, scratch, scratch_floats, scratch_floats / (size_t)pool_size(g_pool)};
    pool_for(g_pool, n_tasks, attn_run_task, &r);
}

struct self_attn {
    const float *qkv;
    float *out;
    int T, W, heads;
};

static void self_attn_fill(void *ctx, int task, struct kern_attn *a) {
    const struct self_attn *j = ctx;
    const int seq = task / j->heads, h = task % j->heads, D = j->W / j->heads;
    const float *base = j->qkv + (size_t)seq * j->T * 3 * j->W;
    *a = (struct kern_attn){
        .q = base + (size_t)h * D,
        .ldq = 3 * j->W,
        .n_q = j->T,
        .k = base + j->W + (size_t)h * D,
        .v = base + 2 * j->W + (size_t)h * D,
        .ldkv = 3 * j->W,
        .n_kv = j->T,
        .dim = D,
        .scale = 1.0f / sqrtf((float)D),
        .out = j->out + (size_t)seq * j->T * j->W + (size_t)h * D,
        .ld_out = j->W,
    };
}

void mat_attention(const float *qkv, int n, int T, int W, int heads, float *out, float *scratch,
                   size_t scratch_floats) {
    FL_ASSERT(W % heads == 0);
    struct self_attn j = {qkv, out, T, W, heads};
    mat_attention_run(n * heads, self_attn_fill, &j, scratch, scratch_floats);
}
