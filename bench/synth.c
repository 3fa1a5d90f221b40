/* synth.c - see synth.h.  Weights are uniform with the variance of PyTorch's
 * default init scale (1 / fan_in), LayerNorm gains near 1: activations stay
 * O(1) through 24 layers, as in a trained model, so that no kernel meets
 * denormals or infinities a real model would not produce. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../weights/stw.h"

static uint64_t next(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void fill_uniform(float *x, size_t n, float center, float half, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        float u = (float)(next(s) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        x[i] = center + half * (2.0f * u - 1.0f);
    }
}

int synth_vision(const struct cfg_vision *v, uint64_t seed, uint8_t **buf, size_t *len,
                 struct fl_err *err) {
    *buf = NULL;
    struct stw *w = stw_new();
    if (!w) return fl_err_set(err, FL_ENOMEM, "out of memory");
    const int64_t W = v->width, M = v->mlp_dim, P = v->patch_size;
    const int64_t T = (v->image_size / P) * (v->image_size / P) + 1;
    enum kind { WEIGHT, GAIN, BIAS, EMBED };
    struct {
        char name[96];
        int n_dims;
        int64_t shape[4];
        enum kind kind;
        int index;
    } *t = calloc(16 + 12 * (size_t)v->layers, sizeof *t);
    int n = 0, rc = 0;
    if (!t) {
        stw_free(w);
        return fl_err_set(err, FL_ENOMEM, "out of memory");
    }
#define ADD(kind_, nd, s0, s1, s2, s3, ...)                                         \
    do {                                                                             \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                          \
        t[n].n_dims = nd, t[n].kind = kind_;                                         \
        t[n].shape[0] = s0, t[n].shape[1] = s1, t[n].shape[2] = s2, t[n].shape[3] = s3; \
        n++;                                                                         \
    } while (0)
    const char *p = "vision_encoder.";
    ADD(WEIGHT, 4, W, 3, P, P, "%sconv1.weight", p);
    ADD(EMBED, 1, W, 0, 0, 0, "%sclass_embedding", p);
    ADD(EMBED, 2, T, W, 0, 0, "%spositional_embedding", p);
    ADD(GAIN, 1, W, 0, 0, 0, "%sln_pre.weight", p);
    ADD(BIAS, 1, W, 0, 0, 0, "%sln_pre.bias", p);
    ADD(GAIN, 1, W, 0, 0, 0, "%sln_post.weight", p);
    ADD(BIAS, 1, W, 0, 0, 0, "%sln_post.bias", p);
    for (int i = 0; i < v->layers; i++) {
        const char *r = "transformer.resblocks";
        ADD(GAIN, 1, W, 0, 0, 0, "%s%s.%d.ln_1.weight", p, r, i);
        ADD(BIAS, 1, W, 0, 0, 0, "%s%s.%d.ln_1.bias", p, r, i);
        ADD(WEIGHT, 2, 3 * W, W, 0, 0, "%s%s.%d.attn.in_proj_weight", p, r, i);
        ADD(BIAS, 1, 3 * W, 0, 0, 0, "%s%s.%d.attn.in_proj_bias", p, r, i);
        ADD(WEIGHT, 2, W, W, 0, 0, "%s%s.%d.attn.out_proj.weight", p, r, i);
        ADD(BIAS, 1, W, 0, 0, 0, "%s%s.%d.attn.out_proj.bias", p, r, i);
        ADD(GAIN, 1, W, 0, 0, 0, "%s%s.%d.ln_2.weight", p, r, i);
        ADD(BIAS, 1, W, 0, 0, 0, "%s%s.%d.ln_2.bias", p, r, i);
        ADD(WEIGHT, 2, M, W, 0, 0, "%s%s.%d.mlp.c_fc.weight", p, r, i);
        ADD(BIAS, 1, M, 0, 0, 0, "%s%s.%d.mlp.c_fc.bias", p, r, i);
        ADD(WEIGHT, 2, W, M, 0, 0, "%s%s.%d.mlp.c_proj.weight", p, r, i);
        ADD(BIAS, 1, W, 0, 0, 0, "%s%s.%d.mlp.c_proj.bias", p, r, i);
    }
#undef ADD
    for (int i = 0; i < n && rc == 0; i++) {
        int k = stw_add(w, t[i].name, ST_F32, t[i].n_dims, t[i].shape, err);
        if (k < 0) rc = k;
        t[i].index = k;
    }
    char config[512];
    snprintf(config, sizeof config,
             "{\"format_version\": 1, \"name\": \"synthetic-vit\", \"vision\": {\"image_size\": %d, "
             "\"patch_size\": %d, \"width\": %d, \"layers\": %d, \"heads\": %d, \"mlp_dim\": %d, "
             "\"act\": \"%s\", \"output\": \"%s\", \"ln_post\": %s}}",
             v->image_size, v->patch_size, v->width, v->layers, v->heads, v->mlp_dim,
             v->act == CFG_ACT_GELU ? "gelu" : "quick_gelu", v->keep_cls ? "all_tokens" : "patch_tokens",
             v->ln_post ? "true" : "false");
    if (rc == 0) rc = stw_add_meta(w, "config", config, err);
    if (rc == 0) rc = stw_finish(w, buf, len, err);
    uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t elems = 1;
        for (int d = 0; d < t[i].n_dims; d++) elems *= (size_t)t[i].shape[d];
        size_t fan_in = elems / (size_t)t[i].shape[0];
        float half = t[i].kind == WEIGHT ? sqrtf(3.0f / (float)fan_in) : t[i].kind == EMBED ? 0.5f : 0.1f;
        fill_uniform(stw_data(w, t[i].index), elems, t[i].kind == GAIN ? 1.0f : 0.0f, half, &state);
    }
    free(t);
    stw_free(w);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}
