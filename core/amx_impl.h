/*
 * amx_impl.h - BF16 weights times many rows on AMX tiles (Sapphire Rapids,
 * Emerald Rapids and later Xeons).  Included by kern_impl.h for the AMX
 * table only (core/kern_amx.c, compiled with -mamx-tile -mamx-bf16), after
 * tr16x16; tests/test_amx.c includes the same text with AMX_EMULATE, which
 * swaps the six tile instructions for C that does what the manual says they
 * do, so that the packing, the blocking and every edge are tested on any
 * AVX512-BF16 CPU, AMX or not.
 *
 * The product (kern.h gemm_bf16_amx): y[r][j] = alpha sum_t x[r][t] w[j][t]
 * (+ y), W BF16 [n][k] as the model file stores it (or q8_0, below), x rounded to bf16 to
 * nearest even (as PyTorch's bf16 autocast and gemm_bf16_dot do), products
 * summed in f32.
 *
 * TDPBF16PS C, A, B computes, for a 16 x 16 f32 tile C, 16 rows of 32 bf16
 * A and 16 rows of 16 bf16 pairs B: C[i][c] += A[i][2p] B[p][2c] +
 * A[i][2p+1] B[p][2c+1], p < 16 (the probe on the lent AMX machine,
 * 2026-11-29, matched this exactly).  Here W is A: 16 of its rows, 32 values
 * of each, are one tile load from the weights in place (row stride 2k
 * bytes), so no copy of the weights exists, at load time or per call.  x is
 * B: amx_pack_x writes it once per call as pair-interleaved tiles, xv[rb][kb]
 * = 16 rows of 16 (row, pair) u32, where the pair p of row r of block rb is
 * x[16 rb + r][32 kb + 2p .. 2p + 1]; rows past m are 0.  So each C tile is
 * a 16 x 16 block of y transposed (W rows by x rows), transposed back in
 * registers (tr16x16) as it is written.
 *
 * q8_0 weights go through the same tiles: each pair of 16-row tiles of W
 * is first widened into the caller's panel as bf16 rows (q times its
 * block's scale, rounded to nearest even: 8 bits of mantissa, which adds
 * about 3% to the RMS of q8_0's own rounding error), and the panel is A.
 *
 * Needs k % 32 == 0 (a tile load reads 32 values of a W row) and j_lo,
 * j_hi multiples of 16 (16 W rows a tile): core/mat.c sends other shapes
 * elsewhere.
 *
 * Blocking: 2 x 2 C tiles (32 W rows x 32 x rows) take 2 A and 2 B loads
 * per 4 tile products; blocks of AMX_JB W rows and AMX_RB x rows are meant
 * to stay in L2 while the other streams.  The sizes are a first choice, not
 * yet measured (the machines this was written on expose no AMX).
 */
#ifndef AMX_JB
#define AMX_JB 128 /* W rows a block: 256 KB at k = 1024 */
#define AMX_RB 256 /* x rows a block */
#endif

#ifdef AMX_EMULATE
/* The tile registers, and the instructions on them, in C: one thread's. */
static _Thread_local unsigned char amx_reg[8][16][64];

static void amx_emu_load(int t, const void *p, size_t stride) {
    for (int i = 0; i < 16; i++)
        memcpy(amx_reg[t][i], (const unsigned char *)p + (size_t)i * stride, 64);
}
static void amx_emu_store(int t, void *p, size_t stride) {
    for (int i = 0; i < 16; i++)
        memcpy((unsigned char *)p + (size_t)i * stride, amx_reg[t][i], 64);
}
static float amx_emu_bf(const unsigned char *row, int i) {
    uint16_t h;
    memcpy(&h, row + 2 * i, 2);
    return wmat_bf16_to_f32(h);
}
static void amx_emu_dp(int c, int a, int b) {
    for (int i = 0; i < 16; i++)
        for (int col = 0; col < 16; col++) {
            float acc;
            memcpy(&acc, amx_reg[c][i] + 4 * col, 4);
            for (int p = 0; p < 16; p++) {
                acc += amx_emu_bf(amx_reg[a][i], 2 * p) * amx_emu_bf(amx_reg[b][p], 2 * col);
                acc += amx_emu_bf(amx_reg[a][i], 2 * p + 1) * amx_emu_bf(amx_reg[b][p], 2 * col + 1);
            }
            memcpy(amx_reg[c][i] + 4 * col, &acc, 4);
        }
}
#define AMX_CONFIG()       ((void)0)
#define AMX_RELEASE()      ((void)0)
#define AMX_ZERO(t)        memset(amx_reg[t], 0, sizeof amx_reg[t])
#define AMX_LOAD(t, p, s)  amx_emu_load(t, p, (size_t)(s))
#define AMX_STORE(t, p, s) amx_emu_store(t, p, (size_t)(s))
#define AMX_DP(c, a, b)    amx_emu_dp(c, a, b)
#else
/* Palette 1, all 8 tiles 16 rows of 64 bytes (the register file's
 * maximum); ldtilecfg's 64-byte operand. */
struct amx_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
static inline void amx_config(void) {
    struct amx_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.colsb[t] = 64;
        c.rows[t] = 16;
    }
    _tile_loadconfig(&c);
}
#define AMX_CONFIG()       amx_config()
#define AMX_RELEASE()      _tile_release()
#define AMX_ZERO(t)        _tile_zero(t)
#define AMX_LOAD(t, p, s)  _tile_loadd(t, p, s)
#define AMX_STORE(t, p, s) _tile_stored(t, p, s)
#define AMX_DP(c, a, b)    _tile_dpbf16ps(c, a, b)
#endif

/* Row blocks [rb0, rb1) of x (m rows of k, k % 32 == 0) rounded to bf16
 * into xv's pair-interleaved tiles (above): per block of 16 rows and 32
 * columns, 16 registers of 16 pairs, transposed. */
static void k_amx_pack_x(const float *x, int ldx, int m, int k, int rb0, int rb1, uint16_t *xv) {
    const int nkb = k / 32;
    for (int rb = rb0; rb < rb1; rb++)
        for (int kb = 0; kb < nkb; kb++) {
            __m512i v[16];
            for (int r = 0; r < 16; r++) {
                const int row = rb * 16 + r;
                if (row < m) {
                    const float *xr = x + (size_t)row * ldx + (size_t)kb * 32;
                    v[r] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + 16), _mm512_loadu_ps(xr));
                } else
                    v[r] = _mm512_setzero_si512();
            }
            tr16x16(v);
            uint16_t *tile = xv + ((size_t)rb * nkb + kb) * 512;
            for (int p = 0; p < 16; p++)
                _mm512_storeu_si512((void *)(tile + p * 32), v[p]);
        }
}

/* One C tile (W rows j0.., x rows r0.., as stored: ct[j][r]) into y:
 * transposed in registers, the rows of x past m dropped. */
static inline void amx_put(const float *ct, float *y, int ldy, int r0, int j0, int m, float alpha,
                           int accumulate) {
    __m512i v[16];
    for (int j = 0; j < 16; j++)
        v[j] = _mm512_loadu_si512((const void *)(ct + j * 16));
    tr16x16(v);
    const int nr = m - r0 < 16 ? m - r0 : 16;
    const __m512 va = _mm512_set1_ps(alpha);
    for (int r = 0; r < nr; r++) {
        float *yr = y + (size_t)(r0 + r) * ldy + j0;
        __m512 o = _mm512_mul_ps(_mm512_castsi512_ps(v[r]), va);
        if (accumulate) o = _mm512_add_ps(o, _mm512_loadu_ps(yr));
        _mm512_storeu_ps(yr, o);
    }
}

/* q8_0 W rows [j0, j0 + nj) as bf16 rows of k: dst[nj][k], each value
 * q * scale rounded to nearest even. */
static void amx_q8_rows(const struct wmat *w, int j0, int nj, uint16_t *dst) {
    const int k = w->k, nb = k / 32;
    for (int j = 0; j < nj; j++) {
        const int8_t *q = (const int8_t *)w->data + (size_t)(j0 + j) * k;
        const uint16_t *sc = w->scale + (size_t)(j0 + j) * nb;
        uint16_t *d = dst + (size_t)j * k;
        for (int b = 0; b < nb; b++) {
            const __m512 s = _mm512_set1_ps(wmat_f16_to_f32(sc[b]));
            const __m512 lo =
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(q + b * 32))));
            const __m512 hi =
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(q + b * 32 + 16))));
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, s), _mm512_mul_ps(lo, s));
            _mm512_storeu_si512((void *)(d + b * 32), (__m512i)v);
        }
    }
}

/* y = alpha x W^T (+ y) for W rows [j_lo, j_hi) (multiples of 16), from
 * xv = amx_pack_x of all m rows; panel: KERN_AMX_PANEL_BYTES(k) bytes of
 * the caller's for q8_0 (unused for BF16).  Tiles: 0-3 C, 4-5 W, 6-7 x. */
static void k_gemm_bf16_amx(const uint16_t *xv, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                            int ldy, float alpha, int accumulate, void *panel) {
    const int k = w->k, nkb = k / 32, mp = (m + 31) & ~31; /* x rows in pairs of blocks (padding 0) */
    const size_t wstride = (size_t)k * sizeof(uint16_t), xblock = (size_t)nkb * 512;
    const int q8 = w->type == WMAT_Q8_0;
    const uint16_t *W = q8 ? panel : w->data;
    float ct[4][256] __attribute__((aligned(64)));
    AMX_CONFIG();
    for (int rb = 0; rb < mp; rb += AMX_RB) {
        const int r_hi = rb + AMX_RB < mp ? rb + AMX_RB : mp;
        for (int jb = j_lo; jb < j_hi; jb += AMX_JB) {
            const int j_end = jb + AMX_JB < j_hi ? jb + AMX_JB : j_hi;
            for (int j0 = jb; j0 < j_end; j0 += 32) {
                const int two = j_end - j0 >= 32; /* else 16 W rows: tiles 0, 1 only */
                if (q8) amx_q8_rows(w, j0, two ? 32 : 16, panel);
                const uint16_t *a0 = q8 ? W : W + (size_t)j0 * k, *a1 = a0 + (size_t)16 * k;
                for (int r0 = rb; r0 < r_hi; r0 += 32) {
                    const uint16_t *b0 = xv + (size_t)(r0 / 16) * xblock, *b1 = b0 + xblock;
                    AMX_ZERO(0);
                    AMX_ZERO(1);
                    if (two) {
                        AMX_ZERO(2);
                        AMX_ZERO(3);
                    }
                    for (int kb = 0; kb < nkb; kb++) {
                        AMX_LOAD(4, a0 + kb * 32, wstride);
                        AMX_LOAD(6, b0 + (size_t)kb * 512, 64);
                        AMX_LOAD(7, b1 + (size_t)kb * 512, 64);
                        AMX_DP(0, 4, 6);
                        AMX_DP(1, 4, 7);
                        if (two) { /* the same in every pass: predicted, or unswitched by the compiler */
                            AMX_LOAD(5, a1 + kb * 32, wstride);
                            AMX_DP(2, 5, 6);
                            AMX_DP(3, 5, 7);
                        }
                    }
                    AMX_STORE(0, ct[0], 64);
                    AMX_STORE(1, ct[1], 64);
                    amx_put(ct[0], y, ldy, r0, j0, m, alpha, accumulate);
                    if (r0 + 16 < m) amx_put(ct[1], y, ldy, r0 + 16, j0, m, alpha, accumulate);
                    if (two) {
                        AMX_STORE(2, ct[2], 64);
                        AMX_STORE(3, ct[3], 64);
                        amx_put(ct[2], y, ldy, r0, j0 + 16, m, alpha, accumulate);
                        if (r0 + 16 < m) amx_put(ct[3], y, ldy, r0 + 16, j0 + 16, m, alpha, accumulate);
                    }
                }
            }
        }
    }
    AMX_RELEASE();
}
