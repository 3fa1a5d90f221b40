/*
 * kern.h - the element-wise, row-wise and attention kernels, compiled once
 * per instruction set and chosen at run time.
 *
 * The kernel bodies live in kern_impl.h as plain C written for the
 * auto-vectoriser (fixed-size inner loops, accumulators that fit in
 * registers).  kern_generic.c compiles them for the baseline x86-64 / any
 * CPU; kern_avx2.c compiles the same text with -mavx2 -mfma and FMA
 * contraction; kern_avx512.c again with AVX-512 (F, BW, VL, DQ, VNNI),
 * which swaps in the q8_0 integer kernel written for it, and
 * kern_avx512bf16.c with AVX512-BF16 on top, which adds the bf16
 * dot-product kernel (gemm_bf16_dot).  kern_best() picks by
 * CPUID once.  Results differ only by rounding (FMA, summation order), well
 * inside every test tolerance.
 *
 * These kernels are single-threaded; core/mat.c splits work over the pool.
 */
#ifndef FL_KERN_H
#define FL_KERN_H

#include <stddef.h>

#include "wmat.h"

/*
 * One attention head: out[r] = softmax_j(scale q_r . k_j + bias) v_j over the
 * keys query r may see.  Rows are views with leading dimensions, so q, k and
 * v can sit inside fused projection buffers or a KV cache.
 */
struct kern_attn {
    const float *q; /* [n_q][dim], leading dimension ldq */
    int ldq, n_q;
    const float *k, *v; /* [n_kv][dim] each, leading dimension ldkv */
    int ldkv, n_kv;
    int dim;
    float scale;
    int causal;  /* query r sees keys j <= q_pos0 + r (else all n_kv) */
    int q_pos0;  /* position of query 0 among the keys */
    float alibi; /* 0, or the ALiBi slope: score += alibi * (j - (q_pos0 + r)) */
    float *out;  /* [n_q][dim], leading dimension ld_out */
    int ld_out;
};

/* gemm_nt_panel_w's blocking: W rows (a multiple of 3) x columns (a
 * multiple of 32) widened at a time, and the most rows of x per call. */
#define KERN_PANEL_ROWS   6
#define KERN_PANEL_COLS   4096
#define KERN_PANEL_FLOATS (KERN_PANEL_ROWS * KERN_PANEL_COLS)
#define KERN_PANEL_MAX_M  64

/* gemm_bf16_dot's panel: 32 W rows as pairs along k (q8_0: and their
 * scales as f32). */
#define KERN_BF16_PANEL_BYTES(k) ((size_t)(((k) + 1) / 2) * 32 * 4 + (size_t)(((k) + 31) / 32) * 32 * 4)

/* gemm_bf16_amx's panel for q8_0: 32 W rows widened to bf16. */
#define KERN_AMX_PANEL_BYTES(k) ((size_t)(k)*32 * 2)

struct kern {
    const char *name;
    /* rows of width dim; b may be NULL (weight-only LayerNorm); y may be x */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int rows, int dim, float eps);
    void (*softmax_rows)(float *x, int rows, int cols, int ld);
    void (*quick_gelu)(float *x, size_t n);
    void (*gelu)(float *x, size_t n);
    /* One head (struct kern_attn); scratch: kern_attn_scratch(n_kv, dim). */
    void (*attention)(const struct kern_attn *a, float *scratch);
    /* y[r][j] = (y[r][j] if accumulate, else 0) + sum_t x[r][t] w[j][t], for
     * r < m and j < n: a few rows times a row-major weight matrix (batched
     * decode), reading each weight row once. */
    void (*gemm_nt_rows)(const float *x, int ldx, int m, const float *w, int ldw, int n, int k, float *y,
                         int ldy, int accumulate);
    /* The same over any weight type (core/wmat.h), for the W rows [j_lo,
     * j_hi) (columns j_lo.. of y): y = alpha x W^T (+ y if accumulate), m <=
     * 16.  Each block of stored weights is widened once, in L1. */
    void (*gemm_nt_rows_w)(const float *x, int ldx, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                           int ldy, float alpha, int accumulate);
    /* y[r][j] = alpha x_r . w[j] (+ y[r][j] if accumulate) for j in [j_lo,
     * j_hi), w q8_0, m rows x_r quantized per block to int16 (x_r[t] ~
     * xq[r k + t] xs[r k / 32 + t / 32], wmat_i16_quantize_row): integer dot
     * products per block.  A row's result does not depend on m. */
    void (*gemm_q8_i16_rows)(const int16_t *xq, const float *xs, int m, const struct wmat *w, int j_lo,
                             int j_hi, float *y, int ldy, float alpha, int accumulate);
    /* wmat_i16_quantize_row and wmat_i8_quantize_row compiled for this
     * table (core/actq_impl.h): the same bits, faster. */
    void (*i16_quantize_row)(const float *x, int k, int16_t *q, float *scale);
    void (*i8_quantize_row)(const float *x, int k, int8_t *q, float *scale, int32_t *corr);
    /* Up to this many rows, gemm_q8_i16_rows is the faster way to multiply by
     * q8_0 weights (core/mat.c), measured per table; from there the panel. */
    int i16_max_m;
    /* AVX-512 VNNI tables only (NULL elsewhere): the same product for m rows
     * x_r quantized per block to int8 (x_r[t] ~ xq[r k + t] xs[r k / 32 + t
     * / 32], xc: the lane corrections, wmat_i8_quantize_row), with 8-bit
     * products.  A row's result depends on neither m nor j_lo, j_hi. */
    void (*gemm_q8_i8_rows)(const int8_t *xq, const float *xs, const int32_t *xc, int m, const struct wmat *w,
                            int j_lo, int j_hi, float *y, int ldy, float alpha, int accumulate);
    /* AVX512-BF16 tables only (NULL elsewhere): rows of x rounded to bf16
     * (to nearest even, rows of k rounded up to even, padded with 0) ... */
    void (*bf16_pack_x)(const float *x, int ldx, int m, int k, uint16_t *xb);
    /* ... times BF16 or q8_0 weights with vdpbf16ps: y = alpha xb W^T (+ y
     * if accumulate) for W rows [j_lo, j_hi), any m, as PyTorch's bf16
     * autocast computes it (products of bf16 values summed in f32; q8_0's
     * int8 values are exact in bf16, its scales applied in f32 per block).
     * panel: KERN_BF16_PANEL_BYTES(k) bytes of the caller's, 64-byte
     * aligned. */
    void (*gemm_bf16_dot)(const uint16_t *xb, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                          int ldy, float alpha, int accumulate, void *panel);
    /* The AMX table only (NULL elsewhere; core/amx_impl.h): row blocks [rb0,
     * rb1) of 16 rows of x (m rows, k % 32 == 0) rounded to bf16 into AMX
     * tiles, xv[rb][k / 32][512]; the rows past m are 0 ... */
    void (*amx_pack_x)(const float *x, int ldx, int m, int k, int rb0, int rb1, uint16_t *xv);
    /* ... times BF16 or q8_0 weights on AMX tiles: gemm_bf16_dot's product
     * (q8_0: each weight q * scale rounded to bf16), for W rows [j_lo, j_hi)
     * (multiples of 16), xv holding all m rows rounded up to a multiple of
     * 32.  panel: KERN_AMX_PANEL_BYTES(k) bytes of the caller's for q8_0. */
    void (*gemm_bf16_amx)(const uint16_t *xv, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                          int ldy, float alpha, int accumulate, void *panel);
    /* Rows [r0, r1) of w as f32: dst[r1 - r0][w->k]. */
    void (*widen_rows)(const struct wmat *w, int r0, int r1, float *dst);
    /* The same product as gemm_nt_rows_w for m <= KERN_PANEL_MAX_M rows and
     * k % 8 == 0, widening blocks of W once into panel (KERN_PANEL_FLOATS
     * floats of the caller's; unused for F32, which is read in place) and
     * multiplying in register tiles: for stored types the faster way from
     * about 8 rows on, for F32 from 2 (batched decode, short prompts). */
    void (*gemm_nt_panel_w)(const float *x, int ldx, int m, const struct wmat *w, int j_lo, int j_hi,
                            float *y, int ldy, float alpha, int accumulate, float *panel);
};

/* Floats of scratch one attention call with up to n_kv keys needs. */
size_t kern_attn_scratch(int n_kv, int dim);

extern const struct kern kern_generic;
extern const struct kern kern_avx2;
extern const struct kern kern_avx512;
extern const struct kern kern_avx512bf16;
extern const struct kern kern_amx;

/* The best kernels this CPU runs (AMX, AVX-512 with BF16, AVX-512 VNNI,
 * AVX2 + FMA, generic; FLAMINGO_KERNELS=NAME picks a lesser one). */
const struct kern *kern_best(void);
#define KERN_MAX_TABLES 5
/* Every table built in, whether this CPU runs it or not, generic first (the
 * names FLAMINGO_KERNELS accepts). */
extern const struct kern *const kern_all[KERN_MAX_TABLES];
/* Every table this CPU runs, generic first, best last (for tests and
 * benchmarks); returns how many (at most KERN_MAX_TABLES). */
int kern_tables(const struct kern *out[KERN_MAX_TABLES]);
/* Whether the AMX table runs here (asked once; the first call requests the
 * tile state from Linux and, where granted, runs a small product with an
 * exact answer on the tiles):
 *   KERN_AMX_OK      CPUID has AMX-TILE and AMX-BF16, the OS enables the
 *                    tile state, Linux granted it (arch_prctl
 *                    ARCH_REQ_XCOMP_PERM), and the product came out right
 *   KERN_AMX_ABSENT  no AMX-BF16 (or no AVX512-BF16, or not x86-64)
 *   KERN_AMX_DENIED  AMX, but Linux refused this process the tiles
 *   KERN_AMX_WRONG   the tiles ran and the product came out wrong: a bug
 *                    here, never used (tests/test_amx.c fails on it) */
enum { KERN_AMX_WRONG = -2, KERN_AMX_DENIED = -1, KERN_AMX_ABSENT = 0, KERN_AMX_OK = 1 };
int kern_amx_status(void);
int kern_amx_usable(void); /* kern_amx_status() == KERN_AMX_OK */
/* That product on table t's AMX kernel (48 W rows, one of them a lone
 * 16-row tile; 33 rows of x, a partial tile; k = 64; every sum an exact
 * small integer): 1 if all of y is right, 0 if not, -1 without memory. */
int kern_amx_self_test(const struct kern *t);

#endif
