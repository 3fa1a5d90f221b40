/*
 * kern_impl.h - kernel bodies, included by kern_generic.c and kern_avx2.c
 * (each defines KERN_TABLE, the name of the struct kern it exports).  See
 * kern.h.  Not a public header: everything here is static.
 *
 * Element-wise loops are written for the auto-vectoriser (no libm calls:
 * exp and erf are branch-free polynomials; the Makefile adds
 * -fno-trapping-math so that clamps become blends).  Reductions and the
 * attention micro-kernels use GCC/clang vector extensions (v8f, 8 floats):
 * explicit SIMD without intrinsics, lowered to AVX2 in kern_avx2.c and to
 * pairs of SSE registers in kern_generic.c.  The attention kernels keep a
 * 4 x 16 block of accumulators in registers while streaming the shared
 * operand once.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "actq_impl.h"
#include "kern.h"

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f ld8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

static inline float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

/* exp(x), relative error about 2e-7, x clamped to [-87, 88] (Cephes expf
 * polynomial with the 1.5 * 2^23 rounding trick for the exponent).  NaN in,
 * NaN out (a NaN must not reach the float-to-int conversion: that is UB). */
static inline float k_exp(float x) {
    const float in = x;
    x = x > -87.0f ? x : -87.0f; /* NaN compares false: becomes -87 here */
    x = x > 88.0f ? 88.0f : x;
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
    int32_t e = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return in == in ? p * scale : in;
}

/* erf(x) from the Numerical Recipes erfc fit (fractional error < 1.2e-7
 * in exact arithmetic; about 1e-6 in float). */
static inline float k_erf(float x) {
    float z = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.5f * z);
    float poly = -1.26551223f +
                 t * (1.00002368f +
                      t * (0.37409196f +
                           t * (0.09678418f +
                                t * (-0.18628806f +
                                     t * (0.27886807f +
                                          t * (-1.13520398f +
                                               t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    float erfc = t * k_exp(-z * z + poly);
    float r = 1.0f - erfc;
    return x < 0 ? -r : r;
}

static inline float k_sum(const float *x, int n) {
    v8f acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc += ld8(x + i);
    float s = hsum8(acc);
    for (; i < n; i++)
        s += x[i];
    return s;
}

static inline float k_max(const float *x, int n) {
    float m = x[0];
    int i = 0;
    if (n >= 8) {
        v8f acc = ld8(x);
        for (i = 8; i + 8 <= n; i += 8) {
            v8f v = ld8(x + i);
            v8i gt = v > acc; /* lanes of all ones where v wins */
            acc = (v8f)(((v8i)v & gt) | ((v8i)acc & ~gt));
        }
        for (int l = 0; l < 8; l++)
            m = acc[l] > m ? acc[l] : m;
    }
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

static void k_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int dim,
                        float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        float mean = k_sum(xr, dim) / (float)dim;
        v8f acc = {0};
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            v8f d = ld8(xr + i) - mean;
            acc += d * d;
        }
        float var = hsum8(acc);
        for (; i < dim; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)dim + eps);
        if (b)
            for (int j = 0; j < dim; j++)
                yr[j] = (xr[j] - mean) * inv * w[j] + b[j];
        else
            for (int j = 0; j < dim; j++)
                yr[j] = (xr[j] - mean) * inv * w[j];
    }
}

static inline void k_softmax_row(float *row, int n) {
    float mx = k_max(row, n);
    for (int j = 0; j < n; j++)
        row[j] = k_exp(row[j] - mx);
    float inv = 1.0f / k_sum(row, n);
    for (int j = 0; j < n; j++)
        row[j] *= inv;
}

static void k_softmax_rows(float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++)
        k_softmax_row(x + (size_t)r * ld, cols);
}

static void k_quick_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + k_exp(-1.702f * x[i]));
}

static void k_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + k_erf(x[i] * 0.70710678118654752f));
}

/* Query rows per block and columns per register block: with AVX-512,
 * 16-lane vectors and 8 rows x 32 columns (16 accumulators, 2 loads and 8
 * broadcasts per 16 FMAs); elsewhere v8f and 4 x 16.  On the ViT-L/14
 * tower at batch 8 the attention was 11% of the time with the narrow
 * block on AVX-512 (perf, 2026-11-29; docs/ARCHITECTURE.md). */
#if defined(__AVX512F__)
#define ATT_RB 8
#define ATT_CB 32
typedef float v16f __attribute__((vector_size(64)));
typedef v16f vatt;
#define ATT_LANES 16
#else
#define ATT_RB    4
#define ATT_CB    16
typedef v8f vatt;
#define ATT_LANES 8
#endif
#define ATT_RB_MAX 8 /* kern_attn_scratch's, for every table */
#define ATT_NV     (ATT_CB / ATT_LANES)

static inline vatt ldatt(const float *p) {
    vatt v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void statt(float *p, vatt v) { memcpy(p, &v, sizeof v); }

/* Key counts padded for the score blocks (32: a multiple of every table's
 * ATT_CB). */
static inline int pad_att(int n) { return (n + 31) & ~31; }

/* s[r][j] = scale * q_r . kt[:, j] for a block of ATT_RB query rows, j < n
 * (a multiple of ATT_CB); kt and s rows are Tp apart. */
static inline void att_scores(const float *const qr[ATT_RB], const float *kt, int Tp, int n, int D,
                              float scale, float *s) {
    for (int j0 = 0; j0 < n; j0 += ATT_CB) {
        vatt acc[ATT_RB][ATT_NV] = {{{0}}};
        for (int d = 0; d < D; d++) {
            vatt kv[ATT_NV];
            for (int c = 0; c < ATT_NV; c++)
                kv[c] = ldatt(kt + (size_t)d * Tp + j0 + c * ATT_LANES);
            for (int r = 0; r < ATT_RB; r++) {
                const vatt qv = (vatt){0} + qr[r][d];
                for (int c = 0; c < ATT_NV; c++)
                    acc[r][c] += qv * kv[c];
            }
        }
        for (int r = 0; r < ATT_RB; r++)
            for (int c = 0; c < ATT_NV; c++)
                statt(s + (size_t)r * Tp + j0 + c * ATT_LANES, acc[r][c] * scale);
    }
}

/* o_r[d0 .. d0 + nv ATT_LANES) = sum_j s[r][j] v[j][d0 ..] for a block of
 * rows; nv (1 .. ATT_NV) a constant where it is inlined. */
static inline void att_values(const float *s, int Tp, int T, const float *v, int ld, int d0, int nv,
                              float out[ATT_RB][ATT_CB]) {
    vatt acc[ATT_RB][ATT_NV] = {{{0}}};
    for (int j = 0; j < T; j++) {
        vatt vv[ATT_NV];
        for (int c = 0; c < nv; c++)
            vv[c] = ldatt(v + (size_t)j * ld + d0 + c * ATT_LANES);
        for (int r = 0; r < ATT_RB; r++) {
            const vatt sv = (vatt){0} + s[(size_t)r * Tp + j];
            for (int c = 0; c < nv; c++)
                acc[r][c] += sv * vv[c];
        }
    }
    for (int r = 0; r < ATT_RB; r++)
        for (int c = 0; c < nv; c++)
            statt(out[r] + c * ATT_LANES, acc[r][c]);
}

/* Keys row r (of a block starting at query i) may see. */
static inline int att_limit(const struct kern_attn *a, int i) {
    if (!a->causal) return a->n_kv;
    int lim = a->q_pos0 + i + 1;
    return lim < a->n_kv ? (lim < 0 ? 0 : lim) : a->n_kv;
}

/* ALiBi bias and softmax over the first lim scores of a row. */
static inline void att_softmax(float *s, int lim, float alibi, int qpos) {
    if (lim <= 0) return;
    if (alibi != 0.0f)
        for (int j = 0; j < lim; j++)
            s[j] += alibi * (float)(j - qpos);
    k_softmax_row(s, lim);
}

static inline float hsum_att(vatt v) {
#if ATT_LANES == 16
    v8f lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    return hsum8(lo + hi);
#else
    return hsum8(v);
#endif
}

/* s[j] = scale q . k_j for keys j < n: 4 keys at a time (4 independent
 * accumulator chains; one chain was bound by the FMA latency). */
static inline void att_row_scores(const float *q, const float *k, int ldk, int n, int D, float scale,
                                  float *s) {
    const int Dv = D & ~(ATT_LANES - 1);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + (size_t)j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        vatt a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int d = 0; d < Dv; d += ATT_LANES) {
            const vatt qv = ldatt(q + d);
            a0 += qv * ldatt(k0 + d);
            a1 += qv * ldatt(k1 + d);
            a2 += qv * ldatt(k2 + d);
            a3 += qv * ldatt(k3 + d);
        }
        float t0 = hsum_att(a0), t1 = hsum_att(a1), t2 = hsum_att(a2), t3 = hsum_att(a3);
        for (int d = Dv; d < D; d++) {
            t0 += q[d] * k0[d];
            t1 += q[d] * k1[d];
            t2 += q[d] * k2[d];
            t3 += q[d] * k3[d];
        }
        s[j] = scale * t0, s[j + 1] = scale * t1, s[j + 2] = scale * t2, s[j + 3] = scale * t3;
    }
    for (; j < n; j++) {
        const float *kj = k + (size_t)j * ldk;
        vatt a0 = {0};
        for (int d = 0; d < Dv; d += ATT_LANES)
            a0 += ldatt(q + d) * ldatt(kj + d);
        float t = hsum_att(a0);
        for (int d = Dv; d < D; d++)
            t += q[d] * kj[d];
        s[j] = scale * t;
    }
}

/* o[d0 .. d0 + nv ATT_LANES) = sum_j s[j] v_j[d0 ..]: nv (1 .. 8)
 * accumulators, one per vector of the row, all live across the keys. */
static inline void att_row_values(const float *s, const float *v, int ldv, int n, int d0, int nv, float *o) {
    vatt acc[8] = {{0}};
    for (int j = 0; j < n; j++) {
        const vatt sv = (vatt){0} + s[j];
        const float *vj = v + (size_t)j * ldv + d0;
        for (int c = 0; c < nv; c++)
            acc[c] += sv * ldatt(vj + c * ATT_LANES);
    }
    for (int c = 0; c < nv; c++)
        statt(o + d0 + c * ATT_LANES, acc[c]);
}

/* Few queries (decode): dot products against each key row, no transpose. */
static void att_rows(const struct kern_attn *a, float *s) {
    const int D = a->dim, Dv = D & ~(ATT_LANES - 1);
    for (int i = 0; i < a->n_q; i++) {
        const float *q = a->q + (size_t)i * a->ldq;
        float *o = a->out + (size_t)i * a->ld_out;
        const int lim = att_limit(a, i);
        att_row_scores(q, a->k, a->ldkv, lim, D, a->scale, s);
        att_softmax(s, lim, a->alibi, a->q_pos0 + i);
        int d = 0;
        for (; d + 8 * ATT_LANES <= Dv; d += 8 * ATT_LANES)
            att_row_values(s, a->v, a->ldkv, lim, d, 8, o);
        switch ((Dv - d) / ATT_LANES) { /* constant counts: the accumulators stay in registers */
        case 7: att_row_values(s, a->v, a->ldkv, lim, d, 7, o); break;
        case 6: att_row_values(s, a->v, a->ldkv, lim, d, 6, o); break;
        case 5: att_row_values(s, a->v, a->ldkv, lim, d, 5, o); break;
        case 4: att_row_values(s, a->v, a->ldkv, lim, d, 4, o); break;
        case 3: att_row_values(s, a->v, a->ldkv, lim, d, 3, o); break;
        case 2: att_row_values(s, a->v, a->ldkv, lim, d, 2, o); break;
        case 1: att_row_values(s, a->v, a->ldkv, lim, d, 1, o); break;
        default: break;
        }
        for (d = Dv; d < D; d++) {
            float acc = 0;
            for (int j = 0; j < lim; j++)
                acc += s[j] * a->v[(size_t)j * a->ldkv + d];
            o[d] = acc;
        }
    }
}

static void k_attention(const struct kern_attn *a, float *scratch) {
    const int D = a->dim, n_kv = a->n_kv;
    if (a->n_q < ATT_RB) {
        att_rows(a, scratch);
        return;
    }
    const int Tp = pad_att(n_kv);
    float *kt = scratch;                 /* [D][Tp], K transposed, zero padded */
    float *s = scratch + (size_t)D * Tp; /* [ATT_RB][Tp] scores of one row block */
    for (int d = 0; d < D; d++) {
        float *row = kt + (size_t)d * Tp;
        for (int j = 0; j < n_kv; j++)
            row[j] = a->k[(size_t)j * a->ldkv + d];
        for (int j = n_kv; j < Tp; j++)
            row[j] = 0;
    }
    const int Dv = D & ~(ATT_CB - 1); /* columns done by the register block */
    for (int i0 = 0; i0 < a->n_q; i0 += ATT_RB) {
        const int R = a->n_q - i0 < ATT_RB ? a->n_q - i0 : ATT_RB;
        const float *qr[ATT_RB];
        for (int r = 0; r < ATT_RB; r++)
            qr[r] = a->q + (size_t)(r < R ? i0 + r : i0) * a->ldq; /* pad: repeat */
        const int top = att_limit(a, i0 + R - 1);                  /* the block's widest row */
        att_scores(qr, kt, Tp, pad_att(top), D, a->scale, s);
        for (int r = 0; r < R; r++) {
            const int lim = att_limit(a, i0 + r);
            float *row = s + (size_t)r * Tp;
            att_softmax(row, lim, a->alibi, a->q_pos0 + i0 + r);
            for (int j = lim; j < top; j++)
                row[j] = 0; /* masked: no weight */
        }
        float acc[ATT_RB][ATT_CB];
        for (int d0 = 0; d0 < Dv; d0 += ATT_CB) {
            att_values(s, Tp, top, a->v, a->ldkv, d0, ATT_NV, acc);
            for (int r = 0; r < R; r++)
                memcpy(a->out + (size_t)(i0 + r) * a->ld_out + d0, acc[r], sizeof acc[r]);
        }
        int dv = Dv;
        if (ATT_NV > 1 && D - dv >= ATT_LANES) { /* one vector's width more */
            att_values(s, Tp, top, a->v, a->ldkv, dv, 1, acc);
            for (int r = 0; r < R; r++)
                memcpy(a->out + (size_t)(i0 + r) * a->ld_out + dv, acc[r], ATT_LANES * sizeof(float));
            dv += ATT_LANES;
        }
        for (int r = 0; r < R; r++) /* head widths that are not a multiple of the vector */
            for (int d = dv; d < D; d++) {
                float o = 0;
                for (int j = 0; j < top; j++)
                    o += s[(size_t)r * Tp + j] * a->v[(size_t)j * a->ldkv + d];
                a->out[(size_t)(i0 + r) * a->ld_out + d] = o;
            }
    }
}

/* ---- few rows times a weight matrix: y = x W^T (+ y) ---------------------- */

/* Two rows of x against four rows of W: 8 dot products over k, the W rows
 * read once for both x rows. */
static inline void nt_tile(const float *x0, const float *x1, const float *const w[4], int k,
                           float out[2][4]) {
    v8f a0[4] = {{0}}, a1[4] = {{0}};
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        v8f u = ld8(x0 + i), v = ld8(x1 + i);
        for (int q = 0; q < 4; q++) {
            v8f b = ld8(w[q] + i);
            a0[q] += u * b;
            a1[q] += v * b;
        }
    }
    for (int q = 0; q < 4; q++) {
        float s0 = hsum8(a0[q]), s1 = hsum8(a1[q]);
        for (int t = i; t < k; t++) {
            s0 += x0[t] * w[q][t];
            s1 += x1[t] * w[q][t];
        }
        out[0][q] = s0;
        out[1][q] = s1;
    }
}

/* y[r][j] (= or +=) sum_t x[r][t] w[j][t] for r < m (<= NT_MAX_ROWS), j < n.
 * For a few rows (a batch of decoding sequences): each W row comes from
 * memory once and serves all m rows from the cache, where sgemm would pack W
 * first and a GEMV per row would read W m times.  Blocks of NT_JB W rows x
 * NT_KC columns (and the same columns of x) stay in L1 while every row pair
 * passes over them. */
#define NT_MAX_ROWS 16
#define NT_JB       16
#define NT_KC       256
static void k_gemm_nt_rows(const float *x, int ldx, int m, const float *w, int ldw, int n, int k, float *y,
                           int ldy, int accumulate) {
    for (int j0 = 0; j0 < n; j0 += NT_JB) {
        const int nj = n - j0 < NT_JB ? n - j0 : NT_JB;
        float acc[NT_MAX_ROWS][NT_JB];
        memset(acc, 0, sizeof acc);
        for (int t0 = 0; t0 < k; t0 += NT_KC) {
            const int kl = k - t0 < NT_KC ? k - t0 : NT_KC;
            for (int q0 = 0; q0 < nj; q0 += 4) {
                const float *wr[4];
                for (int q = 0; q < 4; q++) /* past the last row: repeat a real one, results dropped */
                    wr[q] = w + (size_t)(j0 + (q0 + q < nj ? q0 + q : q0)) * ldw + t0;
                for (int r = 0; r < m; r += 2) {
                    const float *x0 = x + (size_t)r * ldx + t0, *x1 = r + 1 < m ? x0 + ldx : x0;
                    float out[2][4];
                    nt_tile(x0, x1, wr, kl, out);
                    for (int q = 0; q < 4; q++) {
                        acc[r][q0 + q] += out[0][q];
                        if (r + 1 < m) acc[r + 1][q0 + q] += out[1][q];
                    }
                }
            }
        }
        for (int r = 0; r < m; r++) {
            float *yr = y + (size_t)r * ldy + j0;
            for (int q = 0; q < nj; q++)
                yr[q] = accumulate ? yr[q] + acc[r][q] : acc[r][q];
        }
    }
}

/* ---- BF16 and q8_0 weights (core/wmat.h) ------------------------------------ */

/* Rows of x that pass over one W row together (their accumulators and the
 * widened weights fill the 16 vector registers). */
#define WQ_GROUP 4

typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));

/* 8 int8 values as floats.  GCC lowers __builtin_convertvector from an
 * 8-byte vector element by element (measured: q8_0 decode slower than f32),
 * so the AVX2 table says vpmovsxbd + vcvtdq2ps itself. */
#if defined(__AVX2__)
#include <immintrin.h>
static inline v8f ld8_i8(const int8_t *p) {
    __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
    v8f v;
    memcpy(&v, &f, sizeof v);
    return v;
}
#else
static inline v8f ld8_i8(const int8_t *p) {
    v8f v;
    for (int i = 0; i < 8; i++)
        v[i] = (float)p[i];
    return v;
}
#endif

static inline v8f ld8_bf16(const uint16_t *p) {
#if defined(__AVX2__)
    __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16);
#else
    v8u16 v;
    memcpy(&v, p, sizeof v);
    v8u32 u = __builtin_convertvector(v, v8u32) << 16;
#endif
    v8f f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* F16 scales to f32 without branches (the vectoriser turns the select
 * into a blend): normals and zeros by moving the bits, subnormals as
 * mantissa x 2^-24; scales are never inf or NaN (the quantiser divides a
 * finite maximum by 127). */
static void f16_to_f32_run(const uint16_t *h, int n, float *out) {
    for (int i = 0; i < n; i++) {
        uint32_t e = (h[i] >> 10) & 0x1fu, man = h[i] & 0x3ffu, sign = (uint32_t)(h[i] & 0x8000u) << 16;
        uint32_t bits = sign | ((e + 112u) << 23) | (man << 13);
        float sub = (float)man * 5.9604644775390625e-8f, f;
        memcpy(&f, &bits, sizeof f);
        out[i] = e == 0 ? (sign ? -sub : sub) : f;
    }
}

/* Columns per pass of wq_row: a chunk's q8_0 scales, as f32, sit on the
 * stack (any row length works, in chunks). */
#define WQ_CHUNK 8192

/* out[r] += sum_t x[r][t] w[j][t] over t in [t0, t1), for mm <= WQ_GROUP
 * rows of x: each stored weight loaded once and widened in registers.
 * q8_0 (t0, t1 multiples of 32): per block, the int8 values times x summed
 * in 4 x 8 lanes, then scaled once; sc = the scales of blocks t0 / 32... */
static inline void wq_row(const float *x, int ldx, int mm, const struct wmat *w, int j, int t0, int t1,
                          const float *sc, float out[WQ_GROUP]) {
    const size_t row = (size_t)j * w->k;
    v8f a[WQ_GROUP] = {{0}};
    float tail[WQ_GROUP] = {0};
    if (w->type == WMAT_Q8_0) {
        const int8_t *q = (const int8_t *)w->data + row;
        const int nb = (t1 - t0) / WMAT_Q8_BLOCK;
        if (mm == 1) { /* decode: two blocks per step, two accumulator chains */
            v8f a0 = {0}, a1 = {0};
            int b = 0;
            for (; b + 2 <= nb; b += 2) {
                const int t = t0 + b * WMAT_Q8_BLOCK;
                const int8_t *qb = q + t;
                const float *xr = x + t;
                v8f d0 = ld8_i8(qb) * ld8(xr) + ld8_i8(qb + 8) * ld8(xr + 8);
                v8f e0 = ld8_i8(qb + 16) * ld8(xr + 16) + ld8_i8(qb + 24) * ld8(xr + 24);
                v8f d1 = ld8_i8(qb + 32) * ld8(xr + 32) + ld8_i8(qb + 40) * ld8(xr + 40);
                v8f e1 = ld8_i8(qb + 48) * ld8(xr + 48) + ld8_i8(qb + 56) * ld8(xr + 56);
                a0 += sc[b] * (d0 + e0);
                a1 += sc[b + 1] * (d1 + e1);
            }
            for (; b < nb; b++) {
                const int t = t0 + b * WMAT_Q8_BLOCK;
                v8f d = ld8_i8(q + t) * ld8(x + t) + ld8_i8(q + t + 8) * ld8(x + t + 8) +
                        ld8_i8(q + t + 16) * ld8(x + t + 16) + ld8_i8(q + t + 24) * ld8(x + t + 24);
                a0 += sc[b] * d;
            }
            a[0] = a0 + a1;
        } else {
            for (int b = 0; b < nb; b++) {
                const int t = t0 + b * WMAT_Q8_BLOCK;
                const v8f w0 = ld8_i8(q + t), w1 = ld8_i8(q + t + 8), w2 = ld8_i8(q + t + 16),
                          w3 = ld8_i8(q + t + 24);
                for (int r = 0; r < mm; r++) {
                    const float *xr = x + (size_t)r * ldx + t;
                    v8f d = w0 * ld8(xr) + w1 * ld8(xr + 8) + w2 * ld8(xr + 16) + w3 * ld8(xr + 24);
                    a[r] += sc[b] * d;
                }
            }
        }
    } else if (w->type == WMAT_BF16) { /* any k */
        const uint16_t *wb = (const uint16_t *)w->data + row;
        int t = t0;
        for (; t + 16 <= t1; t += 16) {
            const v8f w0 = ld8_bf16(wb + t), w1 = ld8_bf16(wb + t + 8);
            for (int r = 0; r < mm; r++) {
                const float *xr = x + (size_t)r * ldx + t;
                a[r] += w0 * ld8(xr) + w1 * ld8(xr + 8);
            }
        }
        for (; t < t1; t++)
            for (int r = 0; r < mm; r++)
                tail[r] += wmat_bf16_to_f32(wb[t]) * x[(size_t)r * ldx + t];
    } else { /* F32 (mat_gemm_w sends it to mat_gemm; here for completeness) */
        const float *wf = (const float *)w->data + row;
        int t = t0;
        for (; t + 8 <= t1; t += 8) {
            const v8f w0 = ld8(wf + t);
            for (int r = 0; r < mm; r++)
                a[r] += w0 * ld8(x + (size_t)r * ldx + t);
        }
        for (; t < t1; t++)
            for (int r = 0; r < mm; r++)
                tail[r] += wf[t] * x[(size_t)r * ldx + t];
    }
    for (int r = 0; r < mm; r++)
        out[r] += hsum8(a[r]) + tail[r];
}

/* y[r][j] = alpha sum_t x[r][t] w[j][t] (+ y[r][j] if accumulate) for the W
 * rows j in [j_lo, j_hi), r < m <= NT_MAX_ROWS, any stored type.  One W
 * row at a time: its stored bytes come from memory once and stay in L1
 * while groups of WQ_GROUP rows of x pass over them, widened in registers
 * each time.  At 1 to 4 rows the bytes read are the cost (decode); at 8
 * and 16, widening per group still beat widening 16 x 256 blocks into L1
 * once and reading them back for every row pair (measured, 8192 x 2048
 * q8_0, 2 threads: 8 rows 7.8 ms that way). */
static void k_gemm_nt_rows_w(const float *x, int ldx, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                             int ldy, float alpha, int accumulate) {
    float sc[WQ_CHUNK / WMAT_Q8_BLOCK];
    for (int j = j_lo; j < j_hi; j++) {
        float acc[NT_MAX_ROWS] = {0};
        for (int t0 = 0; t0 < w->k; t0 += WQ_CHUNK) {
            const int t1 = w->k - t0 < WQ_CHUNK ? w->k : t0 + WQ_CHUNK;
            if (w->type == WMAT_Q8_0)
                f16_to_f32_run(w->scale + ((size_t)j * w->k + t0) / WMAT_Q8_BLOCK, (t1 - t0) / WMAT_Q8_BLOCK, sc);
            int r0 = 0; /* a constant group size: its accumulators stay in registers */
            for (; r0 + WQ_GROUP <= m; r0 += WQ_GROUP)
                wq_row(x + (size_t)r0 * ldx, ldx, WQ_GROUP, w, j, t0, t1, sc, acc + r0);
            if (r0 < m) wq_row(x + (size_t)r0 * ldx, ldx, m - r0, w, j, t0, t1, sc, acc + r0);
        }
        for (int r = 0; r < m; r++) {
            float *yr = y + (size_t)r * ldy + j;
            *yr = accumulate ? *yr + alpha * acc[r] : alpha * acc[r];
        }
    }
}

#if defined(__AVX2__)
/* acc += (the block's int dot product) * *f for one row of 32 int16 */
#define I16_ROW_BLOCK(w0, w1, xr, f, acc)                                                                    \
    (acc) = _mm256_fmadd_ps(                                                                                 \
        _mm256_cvtepi32_ps(_mm256_add_epi32(                                                                 \
            _mm256_madd_epi16((w0), _mm256_loadu_si256((const __m256i *)(const void *)(xr))),                \
            _mm256_madd_epi16((w1), _mm256_loadu_si256((const __m256i *)(const void *)((xr) + 16))))),       \
        _mm256_broadcast_ss(f), (acc))

/* f[i][b - b0] = sc[b - b0] * xs[i][b] for rows i < mm and blocks [b0, b1)
 * (rows of f WQ_CHUNK / 32 floats): the W row's and each x row's scales
 * multiplied once, one vector pass per row, so that the int16 kernels'
 * inner loops broadcast them from memory. */
static inline void i16_scale_products(const float *xs, int k, int mm, const float *sc, int b0, int b1,
                                      float *f) {
    const int nb = k / WMAT_Q8_BLOCK;
    for (int i = 0; i < mm; i++)
        for (int b = b0; b < b1; b++)
            f[(size_t)i * (WQ_CHUNK / WMAT_Q8_BLOCK) + b - b0] = sc[b - b0] * xs[(size_t)i * nb + b];
}

/* Up to 4 rows (mm, a constant at each call site) against W row q over
 * blocks [b0, b1): out[i] += the row's sum (two accumulators, even and odd
 * blocks). */
static inline void i16_rows4(const int16_t *xq, const float *xs, int k, int mm, const int8_t *q,
                             const float *sc, int b0, int b1, float out[4]) {
    float f[4][WQ_CHUNK / WMAT_Q8_BLOCK];
    i16_scale_products(xs, k, mm, sc, b0, b1, f[0]);
    __m256 a0[4], a1[4];
    for (int i = 0; i < mm; i++)
        a0[i] = a1[i] = _mm256_setzero_ps();
    int b = b0;
    for (; b + 2 <= b1; b += 2) {
        const int t = b * WMAT_Q8_BLOCK;
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t)));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t + 16)));
        const __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t + 32)));
        const __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t + 48)));
        for (int i = 0; i < mm; i++) {
            const int16_t *xr = xq + (size_t)i * k + t;
            I16_ROW_BLOCK(w0, w1, xr, &f[i][b - b0], a0[i]);
            I16_ROW_BLOCK(w2, w3, xr + 32, &f[i][b + 1 - b0], a1[i]);
        }
    }
    if (b < b1) {
        const int t = b * WMAT_Q8_BLOCK;
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t)));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + t + 16)));
        for (int i = 0; i < mm; i++)
            I16_ROW_BLOCK(w0, w1, xq + (size_t)i * k + t, &f[i][b - b0], a0[i]);
    }
    for (int i = 0; i < mm; i++) {
        v8f v;
        const __m256 s2 = _mm256_add_ps(a0[i], a1[i]);
        memcpy(&v, &s2, sizeof v);
        out[i] += hsum8(v);
    }
}
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* AVX-512 VNNI: one q8_0 block is one register (32 weights widened to
 * int16), and vpdpwssd multiplies it by the row's 32 int16 values and sums
 * pairs into 16 int32 lanes in one instruction; then the lanes to float,
 * times the two scales' product.  Up to 8 rows per pass over the W row: 16
 * accumulators and the two widened blocks fit the 32 registers. */
#define I16_GROUP 8
static inline __m512 i16_block512(__m512i w, const int16_t *xr, const float *f, __m512 acc) {
    const __m512i d = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512((const void *)xr));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(*f), acc);
}

static inline void i16_rows(const int16_t *xq, const float *xs, int k, int mm, const int8_t *q,
                            const float *sc, int b0, int b1, float out[I16_GROUP]) {
    float f[I16_GROUP][WQ_CHUNK / WMAT_Q8_BLOCK];
    i16_scale_products(xs, k, mm, sc, b0, b1, f[0]);
    __m512 a0[I16_GROUP], a1[I16_GROUP];
    for (int i = 0; i < mm; i++)
        a0[i] = a1[i] = _mm512_setzero_ps();
    int b = b0;
    for (; b + 2 <= b1; b += 2) {
        const int t = b * WMAT_Q8_BLOCK;
        const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(q + t)));
        const __m512i w1 =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(q + t + 32)));
        for (int i = 0; i < mm; i++) {
            const int16_t *xr = xq + (size_t)i * k + t;
            a0[i] = i16_block512(w0, xr, &f[i][b - b0], a0[i]);
            a1[i] = i16_block512(w1, xr + 32, &f[i][b + 1 - b0], a1[i]);
        }
    }
    if (b < b1) {
        const int t = b * WMAT_Q8_BLOCK;
        const __m512i w0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(q + t)));
        for (int i = 0; i < mm; i++)
            a0[i] = i16_block512(w0, xq + (size_t)i * k + t, &f[i][b - b0], a0[i]);
    }
    for (int i = 0; i < mm; i++)
        out[i] += _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i]));
}

/* a + the 4 W rows' exact int32 lane sums d of a block, as floats, times
 * their scales s (4 lanes each) and x's scale xs (q8_group4w's kernels). */
static inline __m512 q8_lanes_add(__m512i d, __m512 s, float xs, __m512 a) {
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(s, _mm512_set1_ps(xs)), a);
}

/* A block's 4 W-row scales st4[0..3] (q8_scales4), each in the 4 lanes of
 * its row's 128-bit lane. */
static inline __m512 q8_scales_lanes(const float *st4) {
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_loadu_ps(st4)));
}

/* The next 4 W rows, 128 bytes per block of 32 columns t: all of them by
 * the end of the row.  At k = 2048 the hardware's prefetchers lose 4
 * interleaved streams of 2 KB each (measured: one row of x ran up to 1.6x
 * slower than the row-at-a-time kernel without this, and no slower with
 * it). */
static inline void q8_prefetch4(const int8_t *next, int t) {
    _mm_prefetch((const char *)(next + 4 * t), _MM_HINT_T0);
    _mm_prefetch((const char *)(next + 4 * t + 64), _MM_HINT_T0);
}

/* 4 W rows at once (qr[0..3]; next: the rows to prefetch): per block, the 4 rows'
 * 32 int8 values widened to int16 (one register each: 4 lanes of 128 bits,
 * 4 pairs each) and their lanes transposed 4 x 4 (8 shuffles), so that
 * register g holds pairs 4g .. 4g + 3 of every row, one row per 128-bit
 * lane.  Then vpdpwssd with x's 8 values 8g .. 8g + 7 broadcast to every
 * lane adds them to all 4 rows' sums; after the block's 4, lane (c, i)
 * holds row c's products of pairs i, i + 4, i + 8, i + 12 (exact int32;
 * past 2^24 its conversion to float rounds, by at most 2^-24 of it, where
 * i16_rows' sums of 2 products stay exact), which become floats once,
 * times the rows' scales and x's scale.  Per
 * block and row of x that is one dot product, a quarter of a conversion
 * and of an fma, against one of each in i16_rows: what batched decode (4
 * to 8 rows) spent its time on.  Lanes are summed once per row at the end.
 * st: the 4 rows' scales of blocks [b0, b1) as st[b - b0][4]; acc[i]: row i
 * of x against the 4 W rows, lane (c, i') for W row c. */
static inline void i16_rows4w(const int16_t *xq, const float *xs, int k, int mm, const int8_t *const qr[4],
                              const int8_t *next, const float *st, int b0, int b1, __m512 acc[I16_GROUP]) {
    const int nb = k / WMAT_Q8_BLOCK;
    __m512 a[I16_GROUP];
    for (int i = 0; i < mm; i++)
        a[i] = acc[i];
    for (int b = b0; b < b1; b++) {
        const int t = b * WMAT_Q8_BLOCK;
        q8_prefetch4(next, t);
        const __m512i r0 =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(qr[0] + t)));
        const __m512i r1 =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(qr[1] + t)));
        const __m512i r2 =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(qr[2] + t)));
        const __m512i r3 =
            _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(qr[3] + t)));
        const __m512i t0 = _mm512_shuffle_i32x4(r0, r1, 0x44), t1 = _mm512_shuffle_i32x4(r0, r1, 0xee);
        const __m512i t2 = _mm512_shuffle_i32x4(r2, r3, 0x44), t3 = _mm512_shuffle_i32x4(r2, r3, 0xee);
        const __m512i g0 = _mm512_shuffle_i32x4(t0, t2, 0x88), g1 = _mm512_shuffle_i32x4(t0, t2, 0xdd);
        const __m512i g2 = _mm512_shuffle_i32x4(t1, t3, 0x88), g3 = _mm512_shuffle_i32x4(t1, t3, 0xdd);
        const __m512 s = q8_scales_lanes(st + (size_t)(b - b0) * 4);
        for (int i = 0; i < mm; i++) {
            const int16_t *xr = xq + (size_t)i * k + t;
            __m512i d = _mm512_dpwssd_epi32(
                _mm512_setzero_si512(), g0,
                _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)xr)));
            d = _mm512_dpwssd_epi32(
                d, g1, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(xr + 8))));
            d = _mm512_dpwssd_epi32(
                d, g2, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(xr + 16))));
            d = _mm512_dpwssd_epi32(
                d, g3, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(xr + 24))));
            a[i] = q8_lanes_add(d, s, xs[(size_t)i * nb + b], a[i]);
        }
    }
    for (int i = 0; i < mm; i++)
        acc[i] = a[i];
}

/* st[b - b0][c] for blocks [b0, b1) of W rows rows[c], c < 4: the 4 rows'
 * f16 scales as f32, transposed 16 blocks at a time (q8_group4w). */
static inline void q8_scales4(const struct wmat *w, const int rows[4], int b0, int b1, float *st) {
    const int nb = w->k / WMAT_Q8_BLOCK;
    float run[WQ_CHUNK / WMAT_Q8_BLOCK];
    int b = 0;
    for (; b + 16 <= b1 - b0; b += 16) {
        __m512 v[4];
        for (int c = 0; c < 4; c++)
            v[c] = _mm512_cvtph_ps(_mm256_loadu_si256(
                (const __m256i *)(const void *)(w->scale + (size_t)rows[c] * nb + b0 + b)));
        const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
        const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
        /* u[e], 128-bit lane L: the 4 rows' scales of block b + 4L + e */
        const __m512 u[4] = {
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
        for (int e = 0; e < 4; e++) {
            _mm_storeu_ps(st + (size_t)(b + e) * 4, _mm512_extractf32x4_ps(u[e], 0));
            _mm_storeu_ps(st + (size_t)(b + 4 + e) * 4, _mm512_extractf32x4_ps(u[e], 1));
            _mm_storeu_ps(st + (size_t)(b + 8 + e) * 4, _mm512_extractf32x4_ps(u[e], 2));
            _mm_storeu_ps(st + (size_t)(b + 12 + e) * 4, _mm512_extractf32x4_ps(u[e], 3));
        }
    }
    for (int c = 0; c < 4 && b < b1 - b0; c++) {
        f16_to_f32_run(w->scale + (size_t)rows[c] * nb + b0 + b, b1 - b0 - b, run);
        for (int i = 0; i < b1 - b0 - b; i++)
            st[(b + i) * 4 + c] = run[i];
    }
}

/* The q8_0 kernel with 8-bit products (vpdpbusd: 64 multiply-adds of
 * unsigned by signed bytes an instruction, twice vpdpwssd's), for rows of
 * x quantized per block to int8 (wmat_i8_quantize_row: xq, its scales xs,
 * and its lane corrections xc).  4 W rows at a time: per block, register A
 * holds values 0..15 of the 4 rows (one row per 128-bit lane), B values
 * 16..31, each flipped to unsigned (w + 128); x's 16 values broadcast to
 * every lane.  Lane (c, i) then sums row c's products of values 4i..4i+3
 * and 16+4i..16+4i+3, plus 128 times x's sum over those, which xc[4b + i]
 * takes away by starting the sum there: exact int32 (vpdpbusd does not
 * saturate; every partial sum stays below 2^19, the final one below 2^17),
 * to float exactly, times the rows' scales and x's scale.  rows: the 4 W rows (the
 * last repeated for a tail), so that every W row takes the same steps
 * whatever rows share its group: a row's result depends on neither m nor
 * the threads. */
static inline void i8_rows4w(const int8_t *xq, const float *xs, const int32_t *xc, int k, int mm,
                             const int8_t *const qr[4], const int8_t *next, const float *st, int b0, int b1,
                             __m512 acc[I16_GROUP]) {
    const int nb = k / WMAT_Q8_BLOCK;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 a[I16_GROUP];
    for (int i = 0; i < mm; i++)
        a[i] = acc[i];
    for (int b = b0; b < b1; b++) {
        const int t = b * WMAT_Q8_BLOCK;
        q8_prefetch4(next, t);
        const __m512i lo = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(qr[0] + t))),
            _mm256_loadu_si256((const __m256i *)(const void *)(qr[1] + t)), 1);
        const __m512i hi = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(qr[2] + t))),
            _mm256_loadu_si256((const __m256i *)(const void *)(qr[3] + t)), 1);
        const __m512i wa = _mm512_xor_si512(_mm512_shuffle_i64x2(lo, hi, 0x88), flip);
        const __m512i wb = _mm512_xor_si512(_mm512_shuffle_i64x2(lo, hi, 0xdd), flip);
        const __m512 s = q8_scales_lanes(st + (size_t)(b - b0) * 4);
        for (int i = 0; i < mm; i++) {
            const int8_t *xr = xq + (size_t)i * k + t;
            __m512i d = _mm512_broadcast_i32x4(
                _mm_loadu_si128((const __m128i *)(const void *)(xc + ((size_t)i * nb + b) * 4)));
            d = _mm512_dpbusd_epi32(
                d, wa, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)xr)));
            d = _mm512_dpbusd_epi32(
                d, wb, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(xr + 16))));
            a[i] = q8_lanes_add(d, s, xs[(size_t)i * nb + b], a[i]);
        }
    }
    for (int i = 0; i < mm; i++)
        acc[i] = a[i];
}

/* W rows rows[0..3] against all m rows of x, int16 rows (i16_rows4w) or,
 * with their corrections xc, int8 rows (i8_rows4w); writes the first nw
 * of the 4 W rows' results.  next: the W rows to prefetch. */
static void q8_group4w(const void *xq, const float *xs, const int32_t *xc, int m, const struct wmat *w,
                       const int rows[4], int nw, const int8_t *next, float *y, int ldy, float alpha,
                       int accumulate) {
    enum { CB = WQ_CHUNK / WMAT_Q8_BLOCK };
    const int k = w->k, nb = k / WMAT_Q8_BLOCK;
    const int8_t *const qr[4] = {
        (const int8_t *)w->data + (size_t)rows[0] * k, (const int8_t *)w->data + (size_t)rows[1] * k,
        (const int8_t *)w->data + (size_t)rows[2] * k, (const int8_t *)w->data + (size_t)rows[3] * k};
    float st[CB * 4];
    for (int r0 = 0; r0 < m; r0 += I16_GROUP) {
        const int mm = m - r0 < I16_GROUP ? m - r0 : I16_GROUP;
        const int8_t *x8 = (const int8_t *)xq + (size_t)r0 * k;
        const int16_t *x16 = (const int16_t *)xq + (size_t)r0 * k;
        const float *sg = xs + (size_t)r0 * nb;
        const int32_t *cg = xc ? xc + (size_t)r0 * nb * 4 : NULL;
        __m512 acc[I16_GROUP];
        for (int i = 0; i < mm; i++)
            acc[i] = _mm512_setzero_ps();
        for (int b0 = 0; b0 < nb; b0 += CB) {
            const int b1 = nb - b0 < CB ? nb : b0 + CB;
            q8_scales4(w, rows, b0, b1, st);
#define Q8_ROWS4W(n)                                                                                         \
    case n:                                                                                                  \
        if (cg)                                                                                              \
            i8_rows4w(x8, sg, cg, k, n, qr, next, st, b0, b1, acc);                                          \
        else                                                                                                 \
            i16_rows4w(x16, sg, k, n, qr, next, st, b0, b1, acc);                                            \
        break
            switch (mm) { /* constant row counts: the accumulators stay in registers */
                Q8_ROWS4W(8);
                Q8_ROWS4W(7);
                Q8_ROWS4W(6);
                Q8_ROWS4W(5);
                Q8_ROWS4W(4);
                Q8_ROWS4W(3);
                Q8_ROWS4W(2);
                Q8_ROWS4W(1);
            }
#undef Q8_ROWS4W
        }
        for (int i = 0; i < mm; i++) {
            float lanes[16];
            _mm512_storeu_ps(lanes, acc[i]);
            float *yr = y + (size_t)(r0 + i) * ldy;
            for (int c = 0; c < nw; c++) {
                const float v = (lanes[4 * c] + lanes[4 * c + 1]) + (lanes[4 * c + 2] + lanes[4 * c + 3]);
                yr[rows[c]] = accumulate ? yr[rows[c]] + alpha * v : alpha * v;
            }
        }
    }
}

/* y[r][j] = alpha x_r . w[j] (+ y[r][j] if accumulate) for j in [j_lo,
 * j_hi) (kern.h gemm_q8_i8_rows). */
static void k_gemm_q8_i8_rows(const int8_t *xq, const float *xs, const int32_t *xc, int m,
                              const struct wmat *w, int j_lo, int j_hi, float *y, int ldy, float alpha,
                              int accumulate) {
    const int k = w->k;
    for (int j = j_lo; j < j_hi; j += 4) {
        const int nw = j_hi - j < 4 ? j_hi - j : 4;
        int rows[4];
        for (int c = 0; c < 4; c++)
            rows[c] = c < nw ? j + c : j_hi - 1;
        const int8_t *next = (const int8_t *)w->data + (size_t)(j + 4 < j_hi ? j + 4 : j) * k;
        q8_group4w(xq, xs, xc, m, w, rows, nw, next, y, ldy, alpha, accumulate);
    }
}
#define K_GEMM_Q8_I8_ROWS k_gemm_q8_i8_rows
#define I16_WROWS 4
#elif defined(__AVX2__)
#define I16_GROUP 4
static inline void i16_rows(const int16_t *xq, const float *xs, int k, int mm, const int8_t *q,
                            const float *sc, int b0, int b1, float out[I16_GROUP]) {
    i16_rows4(xq, xs, k, mm, q, sc, b0, b1, out);
}
#else
#define I16_GROUP 4
#endif

/* y[r][j] = alpha sum_t x[r][t] w[j][t] (+ y[r][j] if accumulate) for a
 * q8_0 W's rows [j_lo, j_hi) and m rows of x given as int16 per block
 * (row r: xq + r * k, scales xs + r * k / 32, wmat_i16_quantize_row):
 * per block an integer dot product (int8 x int16 -> int32, exact, |sum| <
 * 2^24), then one multiply by the two scales' product.  Decode's kernel:
 * half the instructions of widening each weight to f32, which is what kept
 * that path off the memory bandwidth.  With AVX-512 VNNI, groups of 4 W
 * rows go through q8_group4w (one dot product per block and row of x
 * instead of three instructions) and the rest one W row at a time; either
 * way each W row's blocks are widened once per group of rows of x, and a
 * row's sum takes the same steps whatever rows are batched with it, so
 * batched decode gives every sequence the bits it would get alone. */
static void k_gemm_q8_i16_rows(const int16_t *xq, const float *xs, int m, const struct wmat *w, int j_lo,
                               int j_hi, float *y, int ldy, float alpha, int accumulate) {
    enum { CB = WQ_CHUNK / WMAT_Q8_BLOCK };
    const int k = w->k, nb = k / WMAT_Q8_BLOCK;
    float sc[CB];
    int j = j_lo;
#ifdef I16_WROWS
    /* whole groups of 4 W rows (the pool's slices start at multiples of 16,
     * so which rows go this way depends on neither m nor the threads) */
    for (; j + I16_WROWS <= j_hi; j += I16_WROWS) {
        const int rows[4] = {j, j + 1, j + 2, j + 3};
        q8_group4w(xq, xs, NULL, m, w, rows, 4, (const int8_t *)w->data + (size_t)(j + 4) * k, y, ldy, alpha,
                   accumulate);
    }
#endif
    for (; j < j_hi; j++) {
        const int8_t *q = (const int8_t *)w->data + (size_t)j * k;
        for (int r0 = 0; r0 < m; r0 += I16_GROUP) {
            const int mm = m - r0 < I16_GROUP ? m - r0 : I16_GROUP;
            const int16_t *xg = xq + (size_t)r0 * k;
            const float *sg = xs + (size_t)r0 * nb;
            float acc[I16_GROUP] = {0};
            for (int b0 = 0; b0 < nb; b0 += CB) {
                const int b1 = nb - b0 < CB ? nb : b0 + CB;
                f16_to_f32_run(w->scale + (size_t)j * nb + b0, b1 - b0, sc);
#if defined(__AVX2__)
                switch (mm) { /* constant row counts: the accumulators stay in registers */
#if I16_GROUP == 8
                case 8: i16_rows(xg, sg, k, 8, q, sc, b0, b1, acc); break;
                case 7: i16_rows(xg, sg, k, 7, q, sc, b0, b1, acc); break;
                case 6: i16_rows(xg, sg, k, 6, q, sc, b0, b1, acc); break;
                case 5: i16_rows(xg, sg, k, 5, q, sc, b0, b1, acc); break;
#endif
                case 4: i16_rows(xg, sg, k, 4, q, sc, b0, b1, acc); break;
                case 3: i16_rows(xg, sg, k, 3, q, sc, b0, b1, acc); break;
                case 2: i16_rows(xg, sg, k, 2, q, sc, b0, b1, acc); break;
                default: i16_rows(xg, sg, k, 1, q, sc, b0, b1, acc); break;
                }
#else
                for (int i = 0; i < mm; i++)
                    for (int b = b0; b < b1; b++) {
                        const int8_t *qb = q + (size_t)b * WMAT_Q8_BLOCK;
                        const int16_t *xb = xg + (size_t)i * k + (size_t)b * WMAT_Q8_BLOCK;
                        int32_t sum = 0;
                        for (int t = 0; t < WMAT_Q8_BLOCK; t++)
                            sum += (int32_t)qb[t] * xb[t];
                        acc[i] += (float)sum * (sc[b - b0] * sg[(size_t)i * nb + b]);
                    }
#endif
            }
            for (int i = 0; i < mm; i++) {
                float *yr = y + (size_t)(r0 + i) * ldy + j;
                *yr = accumulate ? *yr + alpha * acc[i] : alpha * acc[i];
            }
        }
    }
}

/* ---- BF16 weights times bf16-rounded rows: AVX512-BF16 dot products ---- */

#if defined(__AVX512BF16__)
/* x rows (f32, m x k) rounded to bf16 (to nearest even, as PyTorch's bf16
 * autocast does) into xb, rows of kp = k rounded up to even, the pad 0. */
static void k_bf16_pack_x(const float *x, int ldx, int m, int k, uint16_t *xb) {
    const int kp = (k + 1) & ~1;
    for (int r = 0; r < m; r++) {
        const float *xr = x + (size_t)r * ldx;
        uint16_t *d = xb + (size_t)r * kp;
        int t = 0;
        for (; t + 32 <= k; t += 32) {
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + t + 16), _mm512_loadu_ps(xr + t));
            _mm512_storeu_si512((void *)(d + t), (__m512i)v);
        }
        for (; t < k; t++)
            d[t] = wmat_f32_to_bf16(xr[t]);
        if (k & 1) d[k] = 0;
    }
}

/* 16 x 16 32-bit values transposed in registers: r[i][j] -> r[j][i]
 * (unpack 32- and 64-bit halves within 128-bit lanes, then move lanes). */
static inline void tr16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i + q], lane L: column 4L + q of rows 4i .. 4i + 3 */
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int q = 0; q < 4; q++) { /* column 4L + q: lane L of u[q], u[4 + q], u[8 + q], u[12 + q] */
        const __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44),
                      v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xee);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44),
                      v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xee);
        r[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + q] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        r[8 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}

/* 16 W rows' pairs p0 .. p0 + 15 (r[i]: row c0 + i, one register each)
 * stored transposed: panel[p0 + q][c0 .. c0 + 15] = pair q of each row. */
static inline void pack_store16(__m512i r[16], uint32_t *panel, int p0, int c0) {
    tr16x16(r);
    for (int q = 0; q < 16; q++)
        _mm512_store_si512((void *)(panel + (size_t)(p0 + q) * 32 + c0), r[q]);
}

/* W rows [j0, j0 + 32) of a BF16 matrix as pairs along k: panel[p][c][2] =
 * w[j0 + c][2p .. 2p + 1], zero past row nj or column k (kp / 2 pairs).
 * Whole groups of 16 rows and 16 pairs go through registers (tr16x16), the
 * rest one value at a time. */
static void bf16_pack_panel(const struct wmat *w, int j0, int nj, uint32_t *panel) {
    const int k = w->k, np = (k + 1) / 2, pv = k / 32 * 16;
    const uint16_t *base = (const uint16_t *)w->data + (size_t)j0 * k;
    for (int c0 = 0; c0 < 32; c0 += 16) {
        const int full = nj >= c0 + 16;
        for (int p0 = 0; full && p0 < pv; p0 += 16) {
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = _mm512_loadu_si512((const void *)(base + (size_t)(c0 + i) * k + 2 * p0));
            pack_store16(r, panel, p0, c0);
        }
        for (int c = c0; c < c0 + 16; c++) {
            if (c >= nj) {
                for (int p = 0; p < np; p++)
                    panel[(size_t)p * 32 + c] = 0;
                continue;
            }
            const uint16_t *row = base + (size_t)c * k;
            int p = full ? pv : 0;
            for (; 2 * p + 1 < k; p++) {
                uint32_t v;
                memcpy(&v, row + 2 * p, sizeof v);
                panel[(size_t)p * 32 + c] = v;
            }
            if (p < np) panel[(size_t)p * 32 + c] = row[2 * p]; /* odd k: the last value, paired with 0 */
        }
    }
}

/* The same for q8_0 W rows: the int8 values as bf16 pairs (exact: |q| <=
 * 127 has 7 bits), and after the np pairs, each block's F16 scale as f32,
 * [k / 32][32]. */
static void q8_pack_panel(const struct wmat *w, int j0, int nj, uint32_t *panel) {
    const int k = w->k, np = k / 2, nb = k / WMAT_Q8_BLOCK;
    const int8_t *base = (const int8_t *)w->data + (size_t)j0 * k;
    float *sp = (float *)(panel + (size_t)np * 32);
    for (int c0 = 0; c0 < 32; c0 += 16) {
        const int full = nj >= c0 + 16;
        for (int p0 = 0; full && p0 < np; p0 += 16) { /* a block of 32 values is 16 pairs */
            __m512i r[16];
            for (int i = 0; i < 16; i++) {
                const int8_t *q = base + (size_t)(c0 + i) * k + 2 * p0;
                const __m512 lo = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)q)));
                const __m512 hi = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(q + 16))));
                r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); /* exact: small integers */
            }
            pack_store16(r, panel, p0, c0);
        }
        for (int c = c0; c < c0 + 16; c++) {
            if (c >= nj) {
                for (int p = 0; p < np; p++)
                    panel[(size_t)p * 32 + c] = 0;
                for (int b = 0; b < nb; b++)
                    sp[(size_t)b * 32 + c] = 0;
                continue;
            }
            const int8_t *row = base + (size_t)c * k;
            for (int p = full ? np : 0; p < np; p++) {
                /* an integer's bf16 is the top half of its float's bits */
                const float lo = (float)row[2 * p], hi = (float)row[2 * p + 1];
                uint32_t bl, bh;
                memcpy(&bl, &lo, sizeof bl);
                memcpy(&bh, &hi, sizeof bh);
                panel[(size_t)p * 32 + c] = (bh & 0xffff0000u) | (bl >> 16);
            }
            float f[256];
            for (int b0 = 0; b0 < nb; b0 += 256) {
                const int n = nb - b0 < 256 ? nb - b0 : 256;
                f16_to_f32_run(w->scale + (size_t)(j0 + c) * nb + b0, n, f);
                for (int b = 0; b < n; b++)
                    sp[(size_t)(b0 + b) * 32 + c] = f[b];
            }
        }
    }
}

/* acc[i][h] += R rows of xb (stride kp) times the 32 packed columns, over
 * pairs [p0, p1): each row's pair broadcast, two vdpbf16ps (16 columns
 * each) per row. */
static inline void bf16_pairs(const uint16_t *xb, int kp, int R, const uint32_t *panel, int p0, int p1,
                              __m512 acc[][2]) {
    for (int p = p0; p < p1; p++) {
        const __m512bh w0 = (__m512bh)_mm512_load_si512((const void *)(panel + (size_t)p * 32));
        const __m512bh w1 = (__m512bh)_mm512_load_si512((const void *)(panel + (size_t)p * 32 + 16));
        for (int i = 0; i < R; i++) {
            uint32_t pair;
            memcpy(&pair, xb + (size_t)i * kp + 2 * p, sizeof pair);
            const __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pair);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xv, w0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xv, w1);
        }
    }
}

/* BF16 weights: R rows x 32 columns over all np pairs.  R rows x 2
 * accumulators + 2 panel vectors fit the 32 registers. */
#define BF16_R 12
static inline void bf16_tile(const uint16_t *xb, int kp, int R, const uint32_t *panel, int np,
                             __m512 acc[][2]) {
    for (int i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    bf16_pairs(xb, kp, R, panel, 0, np, acc);
}

/* The q8_0 tile: per block of 32 columns (16 pairs) the products summed
 * in t, then t times the block's scales added to acc.  R <= 6: 12
 * accumulators, 12 block sums, 2 panel and 2 scale vectors. */
#define Q8BF_R 6
static inline void q8bf_tile(const uint16_t *xb, int kp, int R, const uint32_t *panel, int np,
                             __m512 acc[][2]) {
    const float *sp = (const float *)(panel + (size_t)np * 32);
    for (int i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int b = 0; b < np / 16; b++) {
        __m512 t[Q8BF_R][2];
        for (int i = 0; i < R; i++)
            t[i][0] = t[i][1] = _mm512_setzero_ps();
        bf16_pairs(xb, kp, R, panel, b * 16, b * 16 + 16, t);
        const __m512 s0 = _mm512_load_ps(sp + (size_t)b * 32), s1 = _mm512_load_ps(sp + (size_t)b * 32 + 16);
        for (int i = 0; i < R; i++) {
            acc[i][0] = _mm512_fmadd_ps(t[i][0], s0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(t[i][1], s1, acc[i][1]);
        }
    }
}

/* y[r][j] = alpha sum_t xb[r][t] w[j][t] (+ y[r][j] if accumulate) for BF16
 * or q8_0 W rows [j_lo, j_hi), any m: 32 W rows at a time packed into
 * pairs along k (the panel, KERN_BF16_PANEL_BYTES(k) of the caller's,
 * 64-byte aligned), then every group of BF16_R (q8_0: Q8BF_R) rows of x
 * over it. */
static void k_gemm_bf16_dot(const uint16_t *xb, int m, const struct wmat *w, int j_lo, int j_hi, float *y,
                            int ldy, float alpha, int accumulate, void *panel_mem) {
    const int kp = (w->k + 1) & ~1, np = kp / 2;
    uint32_t *panel = panel_mem;
    __m512 acc[BF16_R][2];
    const __m512 va = _mm512_set1_ps(alpha);
    for (int j0 = j_lo; j0 < j_hi; j0 += 32) {
        const int nj = j_hi - j0 < 32 ? j_hi - j0 : 32;
        const int q8 = w->type == WMAT_Q8_0;
        if (q8)
            q8_pack_panel(w, j0, nj, panel);
        else
            bf16_pack_panel(w, j0, nj, panel);
        const __mmask16 m0 = (__mmask16)(nj >= 16 ? 0xffff : (1u << nj) - 1);
        const __mmask16 m1 = (__mmask16)(nj >= 32 ? 0xffff : nj <= 16 ? 0 : (1u << (nj - 16)) - 1);
        const int RB = q8 ? Q8BF_R : BF16_R;
        for (int r0 = 0; r0 < m; r0 += RB) {
            const int R = m - r0 < RB ? m - r0 : RB;
            const uint16_t *xr = xb + (size_t)r0 * kp;
            if (q8) {
                switch (R) {
                case 6: q8bf_tile(xr, kp, 6, panel, np, acc); break;
                case 5: q8bf_tile(xr, kp, 5, panel, np, acc); break;
                case 4: q8bf_tile(xr, kp, 4, panel, np, acc); break;
                case 3: q8bf_tile(xr, kp, 3, panel, np, acc); break;
                case 2: q8bf_tile(xr, kp, 2, panel, np, acc); break;
                default: q8bf_tile(xr, kp, 1, panel, np, acc); break;
                }
            } else
                switch (R) { /* constant row counts: the accumulators stay in registers */
                case 12: bf16_tile(xr, kp, 12, panel, np, acc); break;
                case 11: bf16_tile(xr, kp, 11, panel, np, acc); break;
                case 10: bf16_tile(xr, kp, 10, panel, np, acc); break;
                case 9: bf16_tile(xr, kp, 9, panel, np, acc); break;
                case 8: bf16_tile(xr, kp, 8, panel, np, acc); break;
                case 7: bf16_tile(xr, kp, 7, panel, np, acc); break;
                case 6: bf16_tile(xr, kp, 6, panel, np, acc); break;
                case 5: bf16_tile(xr, kp, 5, panel, np, acc); break;
                case 4: bf16_tile(xr, kp, 4, panel, np, acc); break;
                case 3: bf16_tile(xr, kp, 3, panel, np, acc); break;
                case 2: bf16_tile(xr, kp, 2, panel, np, acc); break;
                default: bf16_tile(xr, kp, 1, panel, np, acc); break;
                }
            for (int i = 0; i < R; i++) {
                float *yr = y + (size_t)(r0 + i) * ldy + j0;
                __m512 v0 = _mm512_mul_ps(acc[i][0], va), v1 = _mm512_mul_ps(acc[i][1], va);
                if (accumulate) {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
                }
                _mm512_mask_storeu_ps(yr, m0, v0);
                _mm512_mask_storeu_ps(yr + 16, m1, v1);
            }
        }
    }
}
#define K_BF16_DOT    k_gemm_bf16_dot
#define K_BF16_PACK_X k_bf16_pack_x
#if defined(KERN_AMX) && (defined(__AMX_BF16__) || defined(AMX_EMULATE))
#include "amx_impl.h"
#define K_AMX_PACK_X k_amx_pack_x
#define K_BF16_AMX   k_gemm_bf16_amx
#endif
#else
#define K_BF16_DOT    NULL
#define K_BF16_PACK_X NULL
#endif
#ifndef K_GEMM_Q8_I8_ROWS
#define K_GEMM_Q8_I8_ROWS NULL
#endif
#ifndef K_BF16_AMX
#define K_AMX_PACK_X NULL
#define K_BF16_AMX   NULL
#endif

/* ---- many rows against stored weights: widened panels, register tiles ---- */

/* W rows [j0, j0 + nj), columns [t0, t0 + kc) widened to f32, dst[nj][kc]
 * (q8_0: t0 and kc multiples of 32). */
static void widen_block(const struct wmat *w, int j0, int nj, int t0, int kc, float *dst) {
    for (int q = 0; q < nj; q++) {
        const size_t at = (size_t)(j0 + q) * w->k + t0;
        float *d = dst + (size_t)q * kc;
        if (w->type == WMAT_Q8_0) {
            const int8_t *s = (const int8_t *)w->data + at;
            float sc[256];
            for (int b0 = 0; b0 < kc / WMAT_Q8_BLOCK; b0 += 256) {
                const int nb = kc / WMAT_Q8_BLOCK - b0 < 256 ? kc / WMAT_Q8_BLOCK - b0 : 256;
                f16_to_f32_run(w->scale + at / WMAT_Q8_BLOCK + b0, nb, sc);
                for (int b = 0; b < nb; b++) {
                    const int8_t *sb = s + (size_t)(b0 + b) * WMAT_Q8_BLOCK;
                    float *db = d + (size_t)(b0 + b) * WMAT_Q8_BLOCK;
                    const float f = sc[b];
                    st8(db, ld8_i8(sb) * f), st8(db + 8, ld8_i8(sb + 8) * f);
                    st8(db + 16, ld8_i8(sb + 16) * f), st8(db + 24, ld8_i8(sb + 24) * f);
                }
            }
        } else if (w->type == WMAT_BF16) {
            const uint16_t *s = (const uint16_t *)w->data + at;
            int t = 0;
            for (; t + 8 <= kc; t += 8)
                st8(d + t, ld8_bf16(s + t));
            for (; t < kc; t++)
                d[t] = wmat_bf16_to_f32(s[t]);
        } else {
            memcpy(d, (const float *)w->data + at, (size_t)kc * sizeof *d);
        }
    }
}

/* Rows [r0, r1) of w widened to f32, dst[r1 - r0][k] (the panels of the
 * many-row path). */
static void k_widen_rows(const struct wmat *w, int r0, int r1, float *dst) {
    widen_block(w, r0, r1 - r0, 0, w->k, dst);
}

/* 4 rows of x times 3 rows of a widened panel over kc columns (a multiple
 * of 8): out[r][q] = x[r] . p[q].  12 accumulators, 3 panel vectors and
 * one x vector fill the 16 registers, and 12 independent FMA chains cover
 * the FMA latency. */
static inline void tile4x3(const float *const x[4], const float *const p[3], int kc, float out[4][3]) {
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};
    v8f a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};
    for (int t = 0; t < kc; t += 8) {
        const v8f w0 = ld8(p[0] + t), w1 = ld8(p[1] + t), w2 = ld8(p[2] + t);
        v8f v = ld8(x[0] + t);
        a00 += v * w0, a01 += v * w1, a02 += v * w2;
        v = ld8(x[1] + t);
        a10 += v * w0, a11 += v * w1, a12 += v * w2;
        v = ld8(x[2] + t);
        a20 += v * w0, a21 += v * w1, a22 += v * w2;
        v = ld8(x[3] + t);
        a30 += v * w0, a31 += v * w1, a32 += v * w2;
    }
    out[0][0] = hsum8(a00), out[0][1] = hsum8(a01), out[0][2] = hsum8(a02);
    out[1][0] = hsum8(a10), out[1][1] = hsum8(a11), out[1][2] = hsum8(a12);
    out[2][0] = hsum8(a20), out[2][1] = hsum8(a21), out[2][2] = hsum8(a22);
    out[3][0] = hsum8(a30), out[3][1] = hsum8(a31), out[3][2] = hsum8(a32);
}

/* y[r][j] = alpha sum_t x[r][t] w[j][t] (+ y[r][j] if accumulate) for W
 * rows [j_lo, j_hi), m <= KERN_PANEL_MAX_M rows, any stored type with k a
 * multiple of 8 (q8_0: of 32).  F32 weights are multiplied in place (panel
 * unused, may be NULL).
 *
 * KERN_PANEL_ROWS W rows x KERN_PANEL_COLS columns at a time (whole rows
 * up to that width: contiguous bytes) are widened once into the caller's
 * panel, then every group of 4 rows of x passes over it in 4 x 3 register
 * tiles.  Widening is one pass per weight and the multiply m passes, so
 * from about 8 rows on this beats widening in registers for every group of
 * rows (gemm_nt_rows_w).  While the panel is multiplied, the next block's
 * stored bytes are prefetched: with k > KERN_PANEL_COLS they are 6 short
 * runs that the hardware prefetcher does not follow.  Other blockings
 * measured no better on the 2-core Zen 3 (docs/ARCHITECTURE.md): the tile
 * itself runs at about 70% of the FMA peak even with all its operands in
 * L1, and that, more than memory, limits this kernel there. */
static void k_gemm_nt_panel_w(const float *x, int ldx, int m, const struct wmat *w, int j_lo, int j_hi,
                              float *y, int ldy, float alpha, int accumulate, float *panel) {
    enum { JB = KERN_PANEL_ROWS, KC = KERN_PANEL_COLS };
    const size_t esz = w->type == WMAT_Q8_0 ? 1 : w->type == WMAT_BF16 ? 2 : 4;
    float acc[KERN_PANEL_MAX_M][JB];
    for (int j0 = j_lo; j0 < j_hi; j0 += JB) {
        const int nj = j_hi - j0 < JB ? j_hi - j0 : JB;
        memset(acc, 0, sizeof acc);
        for (int t0 = 0; t0 < w->k; t0 += KC) {
            const int kc = w->k - t0 < KC ? w->k - t0 : KC;
            /* f32 weights are their own panel: rows of stride k */
            const float *pb = w->type == WMAT_F32 ? (const float *)w->data + (size_t)j0 * w->k + t0 : panel;
            const size_t lp = w->type == WMAT_F32 ? (size_t)w->k : (size_t)kc;
            if (w->type != WMAT_F32) widen_block(w, j0, nj, t0, kc, panel);
            /* the next block: further along these rows, or the next rows */
            const int t0n = t0 + KC < w->k ? t0 + KC : 0, j0n = t0 + KC < w->k ? j0 : j0 + JB;
            const int njn = j0n >= j_hi ? 0 : (j_hi - j0n < JB ? j_hi - j0n : JB);
            const int kcn = w->k - t0n < KC ? w->k - t0n : KC;
            for (int g = 0; g < m; g += 4) {
                const float *xr[4], *pr[3];
                for (int i = 0; i < 4; i++) /* past the last row: repeat a real one, results dropped */
                    xr[i] = x + (size_t)(g + i < m ? g + i : g) * ldx + t0;
                for (int q0 = 0; q0 < nj; q0 += 3) {
                    const int nq = nj - q0 < 3 ? nj - q0 : 3;
                    if (g == 0)
                        for (int q = q0; q < q0 + 3 && q < njn; q++) {
                            const char *src = (const char *)w->data + ((size_t)(j0n + q) * w->k + t0n) * esz;
                            for (size_t off = 0; off < (size_t)kcn * esz; off += 64)
                                __builtin_prefetch(src + off);
                        }
                    for (int q = 0; q < 3; q++) /* past the last row: repeat a real one */
                        pr[q] = pb + (size_t)(q0 + (q < nq ? q : 0)) * lp;
                    float out[4][3];
                    tile4x3(xr, pr, kc, out);
                    for (int i = 0; i < 4 && g + i < m; i++)
                        for (int q = 0; q < nq; q++)
                            acc[g + i][q0 + q] += out[i][q];
                }
            }
        }
        for (int i = 0; i < m; i++) {
            float *yr = y + (size_t)i * ldy + j0;
            for (int q = 0; q < nj; q++)
                yr[q] = accumulate ? yr[q] + alpha * acc[i][q] : alpha * acc[i][q];
        }
    }
}

const struct kern KERN_TABLE = {
    .name = KERN_NAME,
    .layernorm = k_layernorm,
    .softmax_rows = k_softmax_rows,
    .quick_gelu = k_quick_gelu,
    .gelu = k_gelu,
    .attention = k_attention,
    .gemm_nt_rows = k_gemm_nt_rows,
    .gemm_nt_rows_w = k_gemm_nt_rows_w,
    .widen_rows = k_widen_rows,
    .gemm_nt_panel_w = k_gemm_nt_panel_w,
    .gemm_q8_i16_rows = k_gemm_q8_i16_rows,
    .i16_quantize_row = actq_i16_row,
    .i8_quantize_row = actq_i8_row,
    .i16_max_m = KERN_I16_MAX_M,
    .gemm_q8_i8_rows = K_GEMM_Q8_I8_ROWS,
    .bf16_pack_x = K_BF16_PACK_X,
    .gemm_bf16_dot = K_BF16_DOT,
    .amx_pack_x = K_AMX_PACK_X,
    .gemm_bf16_amx = K_BF16_AMX,
};
