/*
 * wmat.h - a Linear layer's weight matrix [n][k] (out_features x
 * in_features, PyTorch's layout) in the element type the model file stores:
 *
 *   F32    float[n][k]
 *   BF16   uint16_t[n][k], the top halves of binary32 values
 *   Q8_0   int8_t[n][k] plus one F16 scale per block of 32 along each row,
 *          uint16_t[n][k / 32]: w[j][t] = scale[j][t / 32] * q[j][t]
 *
 * The engine computes on them in place (core/mat.h mat_gemm_w): few rows
 * (decode) stream the stored bytes and widen them in registers; more rows
 * (batched decode, prompts, images) widen blocks of rows per thread to f32
 * once and multiply them in register tiles or with sgemm.  Activations stay
 * f32, except one row against q8_0, which is rounded to int16 blocks.
 *
 * The quantiser here is the one weights/convert.py implements in numpy
 * (round to nearest even, scale = max |w| / 127 rounded to F16 first, so the
 * stored scale is the one the values were divided by).  Tests and the
 * synthetic benchmark models use it; the two must agree bit for bit.
 */
#ifndef FL_WMAT_H
#define FL_WMAT_H

#include <stddef.h>
#include <stdint.h>

#define WMAT_Q8_BLOCK 32

enum wmat_type { WMAT_F32, WMAT_BF16, WMAT_Q8_0 };

struct wmat {
    enum wmat_type type;
    int n, k;
    const void *data;      /* float, uint16_t (BF16) or int8_t, [n][k] */
    const uint16_t *scale; /* Q8_0 only: F16 [n][k / WMAT_Q8_BLOCK] */
};

static inline struct wmat wmat_f32(const float *w, int n, int k) {
    return (struct wmat){WMAT_F32, n, k, w, NULL};
}

const char *wmat_type_name(enum wmat_type t);
/* Bytes of weight data (scales included) the matrix occupies. */
size_t wmat_bytes(const struct wmat *w);

static inline float wmat_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    union {
        uint32_t u;
        float f;
    } v;
    if (exp == 0) { /* zero or subnormal: man x 2^-24, exact */
        v.f = (float)man * 5.9604644775390625e-8f;
        v.u |= sign;
    } else {
        v.u = sign | (exp == 31 ? 0x7f800000u : (exp + 112) << 23) | (man << 13);
    }
    return v.f;
}
uint16_t wmat_f32_to_f16(float f);    /* round to nearest even; overflow -> inf */
uint16_t wmat_f32_to_bf16(float f);   /* round to nearest even; NaN stays NaN */
static inline float wmat_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}

/* One row of k values (k a multiple of 32) to q8_0. */
void wmat_q8_quantize_row(const float *w, int k, int8_t *q, uint16_t *scale);
/* An activation row for the q8_0 decode kernel: per block of 32 (k a
 * multiple of 32), scale[b] = max |x| / 32767 and q = rint(x / scale), so
 * every value is kept to 2^-16 of its block's largest. */
void wmat_i16_quantize_row(const float *x, int k, int16_t *q, float *scale);

/* An activation row for the q8_0 kernel with 8-bit products (AVX-512
 * VNNI's vpdpbusd): per block of 32, scale[b] = max |x| / 127 and q =
 * rint(x / scale), and corr[4 b + i] = -128 times the sum of q over the
 * block's values t with (t / 4) % 4 == i (what the kernel's unsigned
 * weights, w + 128, add to each of its lanes). */
void wmat_i8_quantize_row(const float *x, int k, int8_t *q, float *scale, int32_t *corr);

/* Rows [r0, r1) of w as f32, dst[(r1 - r0)][k] (any type). */
void wmat_rows_f32(const struct wmat *w, int r0, int r1, float *dst);

/* Owned copies in another type, for benchmarks and tests (free with
 * wmat_free_owned).  q8_0 needs k % 32 == 0.  Returns 0 or -1 (memory, or k). */
int wmat_convert(const float *w, int n, int k, enum wmat_type to, struct wmat *out);
void wmat_free_owned(struct wmat *w);

#endif
