/* wmat.c - see wmat.h: conversions, the q8_0 quantiser, widening rows. */
#include "wmat.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *wmat_type_name(enum wmat_type t) {
    switch (t) {
    case WMAT_F32: return "f32";
    case WMAT_BF16: return "bf16";
    case WMAT_Q8_0: return "q8_0";
    }
    return "?";
}

size_t wmat_bytes(const struct wmat *w) {
    size_t n = (size_t)w->n * (size_t)w->k;
    switch (w->type) {
    case WMAT_F32: return n * 4;
    case WMAT_BF16: return n * 2;
    case WMAT_Q8_0: return n + n / WMAT_Q8_BLOCK * 2;
    }
    return 0;
}

uint16_t wmat_f32_to_f16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    const uint16_t sign = (uint16_t)((v.u >> 16) & 0x8000);
    const float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00; /* rounds past the largest finite half */
    if (a < 6.103515625e-05f) {              /* below 2^-14: subnormal, steps of 2^-24 */
        float m = nearbyintf(a * 16777216.0f); /* exact scaling; rounds to nearest even */
        return sign | (uint16_t)m;
    }
    /* normal: keep 10 mantissa bits, round to nearest even on the 13 dropped */
    uint32_t u = v.u & 0x7fffffffu;
    uint32_t r = u + 0xfffu + ((u >> 13) & 1u);
    r >>= 13;
    return sign | (uint16_t)(r - ((uint32_t)(127 - 15) << 10));
}

uint16_t wmat_f32_to_bf16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    if (isnan(f)) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

void wmat_q8_quantize_row(const float *w, int k, int8_t *q, uint16_t *scale) {
    for (int b = 0; b < k / WMAT_Q8_BLOCK; b++) {
        const float *x = w + (size_t)b * WMAT_Q8_BLOCK;
        float amax = 0;
        for (int t = 0; t < WMAT_Q8_BLOCK; t++)
            amax = fmaxf(amax, fabsf(x[t]));
        uint16_t h = wmat_f32_to_f16(amax / 127.0f);
        float s = wmat_f16_to_f32(h);
        scale[b] = h;
        for (int t = 0; t < WMAT_Q8_BLOCK; t++) {
            float r = s > 0 ? nearbyintf(x[t] / s) : 0.0f;
            r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
            q[(size_t)b * WMAT_Q8_BLOCK + t] = (int8_t)r;
        }
    }
}

#include "actq_impl.h"

void wmat_i16_quantize_row(const float *x, int k, int16_t *q, float *scale) { actq_i16_row(x, k, q, scale); }

void wmat_i8_quantize_row(const float *x, int k, int8_t *q, float *scale, int32_t *corr) {
    actq_i8_row(x, k, q, scale, corr);
}

void wmat_rows_f32(const struct wmat *w, int r0, int r1, float *dst) {
    const size_t k = (size_t)w->k;
    for (int j = r0; j < r1; j++, dst += k) {
        switch (w->type) {
        case WMAT_F32: memcpy(dst, (const float *)w->data + (size_t)j * k, k * sizeof *dst); break;
        case WMAT_BF16: {
            const uint16_t *s = (const uint16_t *)w->data + (size_t)j * k;
            for (size_t t = 0; t < k; t++)
                dst[t] = wmat_bf16_to_f32(s[t]);
            break;
        }
        case WMAT_Q8_0: {
            const int8_t *s = (const int8_t *)w->data + (size_t)j * k;
            const uint16_t *sc = w->scale + (size_t)j * (k / WMAT_Q8_BLOCK);
            for (size_t t = 0; t < k; t++)
                dst[t] = wmat_f16_to_f32(sc[t / WMAT_Q8_BLOCK]) * (float)s[t];
            break;
        }
        }
    }
}

int wmat_convert(const float *w, int n, int k, enum wmat_type to, struct wmat *out) {
    const size_t nk = (size_t)n * (size_t)k;
    memset(out, 0, sizeof *out);
    out->type = to;
    out->n = n;
    out->k = k;
    if (to == WMAT_F32) {
        float *d = malloc(nk * sizeof *d);
        if (!d) return -1;
        memcpy(d, w, nk * sizeof *d);
        out->data = d;
    } else if (to == WMAT_BF16) {
        uint16_t *d = malloc(nk * sizeof *d);
        if (!d) return -1;
        for (size_t i = 0; i < nk; i++)
            d[i] = wmat_f32_to_bf16(w[i]);
        out->data = d;
    } else {
        if (k % WMAT_Q8_BLOCK) return -1;
        int8_t *d = malloc(nk);
        uint16_t *s = malloc(nk / WMAT_Q8_BLOCK * sizeof *s + 1);
        if (!d || !s) {
            free(d);
            free(s);
            return -1;
        }
        for (int j = 0; j < n; j++)
            wmat_q8_quantize_row(w + (size_t)j * k, k, d + (size_t)j * k, s + (size_t)j * (k / WMAT_Q8_BLOCK));
        out->data = d;
        out->scale = s;
    }
    return 0;
}

void wmat_free_owned(struct wmat *w) {
    free((void *)w->data);
    free((void *)w->scale);
    memset(w, 0, sizeof *w);
}
