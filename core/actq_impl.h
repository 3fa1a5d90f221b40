/*
 * actq_impl.h - the rounding of activation rows for the q8_0 integer
 * kernels (core/wmat.h wmat_i16_quantize_row, wmat_i8_quantize_row), as
 * plain C written for the vectoriser.  Included twice: by wmat.c, whose
 * public functions are the reference (baseline instruction set), and by
 * kern_impl.h, so that every kernel table has a copy compiled for its own
 * instructions (kern.h i16_quantize_row, i8_quantize_row; core/mat.c runs
 * those per decoded row), with AVX-512 written out in intrinsics (the
 * vectoriser left the plain loops at about 3 ns a value).  Every step is
 * exact IEEE arithmetic (absolute value, maximum, one division, the 1.5 x
 * 2^23 rounding), so every copy gives the same bits; tests/test_wmat.c
 * checks that they do.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "wmat.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

/* act_block on one block in two registers: the scale (NaN for a block with
 * an inf or a NaN), and the rounded values as int32 in v[0], v[1] (0 for
 * such a block).  The same operations as act_block, 16 lanes at a time. */
static inline float act_block16(const float *xb, float top, __m512i v[2]) {
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    if (_mm512_cmp_ps_mask(a0, big, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, big, _CMP_NLE_UQ)) {
        v[0] = v[1] = _mm512_setzero_si512();
        return NAN;
    }
    const float s = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1)) / top;
    if (!(s > 0)) {
        v[0] = v[1] = _mm512_setzero_si512();
        return s;
    }
    const __m512 vs = _mm512_set1_ps(s), c = _mm512_set1_ps(12582912.0f), t = _mm512_set1_ps(top),
                 nt = _mm512_set1_ps(-top);
    const __m512 r0 = _mm512_sub_ps(_mm512_add_ps(_mm512_div_ps(x0, vs), c), c);
    const __m512 r1 = _mm512_sub_ps(_mm512_add_ps(_mm512_div_ps(x1, vs), c), c);
    v[0] = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r0, nt), t));
    v[1] = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r1, nt), t));
    return s;
}

static void actq_i16_row(const float *x, int k, int16_t *q, float *scale) {
    for (int b = 0; b < k / WMAT_Q8_BLOCK; b++) {
        __m512i v[2];
        scale[b] = act_block16(x + (size_t)b * WMAT_Q8_BLOCK, 32767.0f, v);
        _mm256_storeu_si256((void *)(q + (size_t)b * WMAT_Q8_BLOCK), _mm512_cvtepi32_epi16(v[0]));
        _mm256_storeu_si256((void *)(q + (size_t)b * WMAT_Q8_BLOCK + 16), _mm512_cvtepi32_epi16(v[1]));
    }
}

static void actq_i8_row(const float *x, int k, int8_t *q, float *scale, int32_t *corr) {
    const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int b = 0; b < k / WMAT_Q8_BLOCK; b++) {
        __m512i v[2];
        scale[b] = act_block16(x + (size_t)b * WMAT_Q8_BLOCK, 127.0f, v);
        _mm_storeu_si128((void *)(q + (size_t)b * WMAT_Q8_BLOCK), _mm512_cvtepi32_epi8(v[0]));
        _mm_storeu_si128((void *)(q + (size_t)b * WMAT_Q8_BLOCK + 16), _mm512_cvtepi32_epi8(v[1]));
        /* lane i: the sum over t with (t / 4) % 4 == i, i.e. of 4 lanes of
         * v[0] + v[1]: added within each 128-bit quarter, then one per quarter */
        __m512i w = _mm512_add_epi32(v[0], v[1]);
        w = _mm512_add_epi32(w, _mm512_shuffle_epi32(w, _MM_PERM_CDAB));
        w = _mm512_add_epi32(w, _mm512_shuffle_epi32(w, _MM_PERM_BADC));
        w = _mm512_mullo_epi32(_mm512_permutexvar_epi32(pick, w), _mm512_set1_epi32(-128));
        _mm_storeu_si128((void *)(corr + (size_t)b * 4), _mm512_castsi512_si128(w));
    }
}
#else
/* One block of an activation row as integers of at most top in magnitude:
 * r[t] = rint(x[t] / s) with s = max |x| / top, returned; a block holding
 * an inf or a NaN gives a NaN scale and r all 0 (so NaN comes out, as from
 * f32).  No libm calls: this runs per decoded row. */
static inline float act_block(const float *xb, float top, float r[WMAT_Q8_BLOCK]) {
    float amax = 0;
    int bad = 0;
    for (int t = 0; t < WMAT_Q8_BLOCK; t++) {
        const float a = fabsf(xb[t]);
        amax = a > amax ? a : amax;
        bad |= !(a <= FLT_MAX);
    }
    if (bad) {
        memset(r, 0, WMAT_Q8_BLOCK * sizeof *r);
        return NAN;
    }
    const float s = amax / top;
    for (int t = 0; t < WMAT_Q8_BLOCK; t++) {
        /* |x / s| <= top: adding and taking away 1.5 x 2^23 rounds it to
         * the nearest integer, ties to even, as nearbyintf does */
        const float v = s > 0 ? (xb[t] / s + 12582912.0f) - 12582912.0f : 0.0f;
        r[t] = v > top ? top : v < -top ? -top : v;
    }
    return s;
}

static void actq_i16_row(const float *x, int k, int16_t *q, float *scale) {
    float r[WMAT_Q8_BLOCK];
    for (int b = 0; b < k / WMAT_Q8_BLOCK; b++) {
        scale[b] = act_block(x + (size_t)b * WMAT_Q8_BLOCK, 32767.0f, r);
        for (int t = 0; t < WMAT_Q8_BLOCK; t++)
            q[(size_t)b * WMAT_Q8_BLOCK + t] = (int16_t)r[t];
    }
}

static void actq_i8_row(const float *x, int k, int8_t *q, float *scale, int32_t *corr) {
    float r[WMAT_Q8_BLOCK];
    for (int b = 0; b < k / WMAT_Q8_BLOCK; b++) {
        int32_t *cb = corr + (size_t)b * 4;
        scale[b] = act_block(x + (size_t)b * WMAT_Q8_BLOCK, 127.0f, r);
        for (int t = 0; t < WMAT_Q8_BLOCK; t++)
            q[(size_t)b * WMAT_Q8_BLOCK + t] = (int8_t)r[t];
        for (int i = 0; i < 4; i++) { /* lane i: values t with (t / 4) % 4 == i */
            int32_t c = 0;
            for (int u = 0; u < 4; u++)
                c += (int32_t)r[4 * i + u] + (int32_t)r[16 + 4 * i + u];
            cb[i] = -128 * c;
        }
    }
}
#endif
