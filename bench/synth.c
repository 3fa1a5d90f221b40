/* synth.c - see synth.h.  Weights are uniform with the variance of PyTorch's
 * default init scale (1 / fan_in), LayerNorm gains near 1: activations stay
 * O(1) through 24 layers, as in a trained model, so that no kernel meets
 * denormals or infinities a real model would not produce. */
#include "synth.h"

#include <math.h>
#include <stdarg.h>
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

enum kind { WEIGHT, GAIN, BIAS, EMBED, GATE };

struct spec {
    char name[128];
    int n_dims;
    int64_t shape[4];
    enum kind kind;
    int index, scale_index; /* scale_index: q8_0's "_scale" tensor, else -1 */
    enum wmat_type type;
};

/* A growing list of tensors to create. */
struct builder {
    struct spec *t;
    int n, cap, failed;
    enum wmat_type type;     /* how tensors of two or more dimensions are stored */
    enum wmat_type round_as; /* type f32 only: the values that type would hold */
};

/* The storage weights/convert.py --dtype gives a tensor: 1-D ones f32; q8_0
 * only for *weight tensors whose rows are a multiple of 32 (others f32). */
static enum wmat_type storage(const struct spec *t, enum wmat_type want, int64_t k) {
    if (t->n_dims < 2 || want == WMAT_F32) return WMAT_F32;
    if (want == WMAT_BF16) return WMAT_BF16;
    size_t len = strlen(t->name);
    int is_weight = len >= 6 && strcmp(t->name + len - 6, "weight") == 0;
    return is_weight && k % WMAT_Q8_BLOCK == 0 ? WMAT_Q8_0 : WMAT_F32;
}

static void add(struct builder *b, enum kind kind, int nd, int64_t s0, int64_t s1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add(struct builder *b, enum kind kind, int nd, int64_t s0, int64_t s1, const char *fmt, ...) {
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        struct spec *t = realloc(b->t, (size_t)cap * sizeof *t);
        if (!t) {
            b->failed = 1;
            return;
        }
        b->t = t, b->cap = cap;
    }
    struct spec *s = &b->t[b->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->kind = kind, s->n_dims = nd, s->shape[0] = s0, s->shape[1] = s1;
}

/* Lays out and fills every tensor; config goes into the metadata. */
static int build(struct builder *b, const char *config, uint64_t seed, uint8_t **buf, size_t *len,
                 struct fl_err *err) {
    *buf = NULL;
    struct stw *w = stw_new();
    int rc = w && !b->failed ? 0 : fl_err_set(err, FL_ENOMEM, "out of memory");
    for (int i = 0; i < b->n && rc == 0; i++) {
        struct spec *t = &b->t[i];
        int64_t k = 1;
        for (int d = 1; d < t->n_dims; d++) k *= t->shape[d];
        t->type = storage(t, b->type, k);
        t->scale_index = -1;
        static const enum st_dtype st_of[] = {[WMAT_F32] = ST_F32, [WMAT_BF16] = ST_BF16, [WMAT_Q8_0] = ST_I8};
        int idx = stw_add(w, t->name, st_of[t->type], t->n_dims, t->shape, err);
        if (idx >= 0 && t->type == WMAT_Q8_0) {
            char sname[160];
            const int64_t sshape[2] = {t->shape[0], k / WMAT_Q8_BLOCK};
            snprintf(sname, sizeof sname, "%s_scale", t->name);
            t->scale_index = stw_add(w, sname, ST_F16, 2, sshape, err);
            if (t->scale_index < 0) idx = t->scale_index;
        }
        if (idx < 0) rc = idx;
        t->index = idx;
    }
    if (rc == 0) rc = stw_add_meta(w, "config", config, err);
    if (rc == 0) rc = stw_finish(w, buf, len, err);
    uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < b->n && rc == 0; i++) {
        const struct spec *t = &b->t[i];
        size_t elems = 1;
        for (int d = 0; d < t->n_dims; d++) elems *= (size_t)t->shape[d];
        size_t fan_in = elems / (size_t)t->shape[0];
        float half = t->kind == WEIGHT ? sqrtf(3.0f / (float)fan_in)
                     : t->kind == EMBED ? 0.5f
                     : t->kind == GATE  ? 0.5f
                                        : 0.1f;
        float center = t->kind == GAIN ? 1.0f : 0.0f;
        const enum wmat_type as = t->type == WMAT_F32 ? storage(t, b->round_as, (int64_t)fan_in) : t->type;
        if (as == WMAT_F32) {
            fill_uniform(stw_data(w, t->index), elems, center, half, &state);
            continue;
        }
        /* row by row through an f32 row, then stored as the converter would */
        float *row = malloc(fan_in * sizeof *row);
        void *typed = malloc(fan_in * sizeof(uint16_t)); /* one row as bf16 or as q8_0's int8 */
        uint16_t *qs = malloc(fan_in / WMAT_Q8_BLOCK * sizeof *qs + 1);
        if (!row || !typed || !qs) {
            free(row), free(typed), free(qs);
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
            break;
        }
        const int held = t->type == WMAT_F32; /* `as` values kept in f32: through the row buffers */
        const size_t vsize = as == WMAT_BF16 ? sizeof(uint16_t) : 1, nb = fan_in / WMAT_Q8_BLOCK;
        for (int64_t r = 0; r < t->shape[0]; r++) {
            fill_uniform(row, fan_in, center, half, &state);
            void *dst = held ? typed : (char *)stw_data(w, t->index) + (size_t)r * fan_in * vsize;
            uint16_t *dsc =
                held || as != WMAT_Q8_0 ? qs : (uint16_t *)stw_data(w, t->scale_index) + (size_t)r * nb;
            if (as == WMAT_BF16)
                for (size_t j = 0; j < fan_in; j++)
                    ((uint16_t *)dst)[j] = wmat_f32_to_bf16(row[j]);
            else
                wmat_q8_quantize_row(row, (int)fan_in, dst, dsc);
            if (held) {
                const struct wmat one = {as, 1, (int)fan_in, typed, as == WMAT_Q8_0 ? qs : NULL};
                wmat_rows_f32(&one, 0, 1, (float *)stw_data(w, t->index) + (size_t)r * fan_in);
            }
        }
        free(row), free(typed), free(qs);
    }
    stw_free(w);
    free(b->t);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

static void add_vision(struct builder *b, const struct cfg_vision *v) {
    const int64_t W = v->width, M = v->mlp_dim, P = v->patch_size;
    const int64_t T = (v->image_size / P) * (v->image_size / P) + 1;
    const char *p = "vision_encoder.";
    add(b, WEIGHT, 4, W, 3, "%sconv1.weight", p);
    b->t[b->n - 1].shape[2] = P, b->t[b->n - 1].shape[3] = P;
    add(b, EMBED, 1, W, 0, "%sclass_embedding", p);
    add(b, EMBED, 2, T, W, "%spositional_embedding", p);
    add(b, GAIN, 1, W, 0, "%sln_pre.weight", p);
    add(b, BIAS, 1, W, 0, "%sln_pre.bias", p);
    add(b, GAIN, 1, W, 0, "%sln_post.weight", p);
    add(b, BIAS, 1, W, 0, "%sln_post.bias", p);
    for (int i = 0; i < v->layers; i++) {
        const char *r = "transformer.resblocks";
        add(b, GAIN, 1, W, 0, "%s%s.%d.ln_1.weight", p, r, i);
        add(b, BIAS, 1, W, 0, "%s%s.%d.ln_1.bias", p, r, i);
        add(b, WEIGHT, 2, 3 * W, W, "%s%s.%d.attn.in_proj_weight", p, r, i);
        add(b, BIAS, 1, 3 * W, 0, "%s%s.%d.attn.in_proj_bias", p, r, i);
        add(b, WEIGHT, 2, W, W, "%s%s.%d.attn.out_proj.weight", p, r, i);
        add(b, BIAS, 1, W, 0, "%s%s.%d.attn.out_proj.bias", p, r, i);
        add(b, GAIN, 1, W, 0, "%s%s.%d.ln_2.weight", p, r, i);
        add(b, BIAS, 1, W, 0, "%s%s.%d.ln_2.bias", p, r, i);
        add(b, WEIGHT, 2, M, W, "%s%s.%d.mlp.c_fc.weight", p, r, i);
        add(b, BIAS, 1, M, 0, "%s%s.%d.mlp.c_fc.bias", p, r, i);
        add(b, WEIGHT, 2, W, M, "%s%s.%d.mlp.c_proj.weight", p, r, i);
        add(b, BIAS, 1, W, 0, "%s%s.%d.mlp.c_proj.bias", p, r, i);
    }
}

static void vision_json(char *out, size_t cap, const struct cfg_vision *v) {
    snprintf(out, cap,
             "\"vision\": {\"image_size\": %d, \"patch_size\": %d, \"width\": %d, \"layers\": %d, \"heads\": %d, "
             "\"mlp_dim\": %d, \"act\": \"%s\", \"output\": \"%s\", \"ln_post\": %s}",
             v->image_size, v->patch_size, v->width, v->layers, v->heads, v->mlp_dim,
             v->act == CFG_ACT_GELU ? "gelu" : "quick_gelu", v->keep_cls ? "all_tokens" : "patch_tokens",
             v->ln_post ? "true" : "false");
}

int synth_vision(const struct cfg_vision *v, uint64_t seed, enum wmat_type type, uint8_t **buf, size_t *len,
                 struct fl_err *err) {
    struct builder b = {.type = type};
    add_vision(&b, v);
    char vj[512], config[640];
    vision_json(vj, sizeof vj, v);
    snprintf(config, sizeof config, "{\"format_version\": 1, \"name\": \"synthetic-vit\", %s}", vj);
    return build(&b, config, seed, buf, len, err);
}

static void add_perceiver(struct builder *b, const struct cfg_perceiver *c, int64_t D) {
    const int64_t I = (int64_t)c->heads * c->dim_head, F = (int64_t)c->ff_mult * D;
    const char *p = "perceiver.layers";
    add(b, EMBED, 2, c->num_latents, D, "perceiver.latents");
    add(b, GAIN, 1, D, 0, "perceiver.norm.weight");
    add(b, BIAS, 1, D, 0, "perceiver.norm.bias");
    for (int k = 0; k < c->depth; k++) {
        add(b, GAIN, 1, D, 0, "%s.%d.0.norm_media.weight", p, k);
        add(b, BIAS, 1, D, 0, "%s.%d.0.norm_media.bias", p, k);
        add(b, GAIN, 1, D, 0, "%s.%d.0.norm_latents.weight", p, k);
        add(b, BIAS, 1, D, 0, "%s.%d.0.norm_latents.bias", p, k);
        add(b, WEIGHT, 2, I, D, "%s.%d.0.to_q.weight", p, k);
        add(b, WEIGHT, 2, 2 * I, D, "%s.%d.0.to_kv.weight", p, k);
        add(b, WEIGHT, 2, D, I, "%s.%d.0.to_out.weight", p, k);
        add(b, GAIN, 1, D, 0, "%s.%d.1.0.weight", p, k);
        add(b, BIAS, 1, D, 0, "%s.%d.1.0.bias", p, k);
        add(b, WEIGHT, 2, F, D, "%s.%d.1.1.weight", p, k);
        add(b, WEIGHT, 2, D, F, "%s.%d.1.3.weight", p, k);
    }
}

int synth_vision_perceiver(const struct fl_config *c, uint64_t seed, enum wmat_type type, uint8_t **buf,
                           size_t *len, struct fl_err *err) {
    struct builder b = {.type = type};
    add_vision(&b, &c->vision);
    add_perceiver(&b, &c->perceiver, c->vision.width);
    char vj[512], config[1024];
    vision_json(vj, sizeof vj, &c->vision);
    snprintf(config, sizeof config,
             "{\"format_version\": 1, \"name\": \"synthetic-vit-perceiver\", %s, "
             "\"perceiver\": {\"depth\": %d, \"heads\": %d, \"dim_head\": %d, \"num_latents\": %d, "
             "\"ff_mult\": %d}}",
             vj, c->perceiver.depth, c->perceiver.heads, c->perceiver.dim_head, c->perceiver.num_latents,
             c->perceiver.ff_mult);
    return build(&b, config, seed, buf, len, err);
}

/* MosaicGPT (MPT-1B) names: the synthetic model is OpenFlamingo-3B-shaped. */
int synth_lm(const struct fl_config *c, uint64_t seed, enum wmat_type type, uint8_t **buf, size_t *len,
             struct fl_err *err) {
    return synth_lm_rounded(c, seed, type, WMAT_F32, buf, len, err);
}

int synth_lm_rounded(const struct fl_config *c, uint64_t seed, enum wmat_type type, enum wmat_type round_as,
                     uint8_t **buf, size_t *len, struct fl_err *err) {
    struct builder b = {.type = type, .round_as = type == WMAT_F32 ? round_as : WMAT_F32};
    const int64_t d = c->lm.d_model, M = c->lm.mlp_dim, V = c->lm.vocab_size, Wv = c->vision.width;
    const int64_t I = (int64_t)c->xattn.heads * c->xattn.dim_head, F = (int64_t)c->xattn.ff_mult * d;
    if (c->lm.family != CFG_FAMILY_MOSAIC_GPT) return fl_err_set(err, FL_EUNSUPPORTED, "synth_lm: MosaicGPT only");
    add(&b, EMBED, 2, V, d, "lang_encoder.transformer.wte.weight");
    add(&b, GAIN, 1, d, 0, "lang_encoder.transformer.ln_f.weight");
    for (int i = 0; i < c->lm.n_layers; i++) {
        char p[64];
        snprintf(p, sizeof p, "lang_encoder.transformer.blocks.%d.", i);
        add(&b, GAIN, 1, d, 0, "%sdecoder_layer.ln_1.weight", p);
        add(&b, WEIGHT, 2, 3 * d, d, "%sdecoder_layer.attn.Wqkv.weight", p);
        if (c->lm.qk_ln) {
            add(&b, GAIN, 1, d, 0, "%sdecoder_layer.attn.q_ln.weight", p);
            add(&b, GAIN, 1, d, 0, "%sdecoder_layer.attn.k_ln.weight", p);
        }
        add(&b, WEIGHT, 2, d, d, "%sdecoder_layer.attn.out_proj.weight", p);
        add(&b, GAIN, 1, d, 0, "%sdecoder_layer.ln_2.weight", p);
        add(&b, WEIGHT, 2, M, d, "%sdecoder_layer.mlp.mlp_up.weight", p);
        add(&b, WEIGHT, 2, d, M, "%sdecoder_layer.mlp.mlp_down.weight", p);
        if (!cfg_has_xattn(&c->xattn, i)) continue;
        const char *g = "gated_cross_attn_layer";
        add(&b, GATE, 1, 1, 0, "%s%s.attn_gate", p, g);
        add(&b, GATE, 1, 1, 0, "%s%s.ff_gate", p, g);
        add(&b, GAIN, 1, d, 0, "%s%s.attn.norm.weight", p, g);
        add(&b, BIAS, 1, d, 0, "%s%s.attn.norm.bias", p, g);
        add(&b, WEIGHT, 2, I, d, "%s%s.attn.to_q.weight", p, g);
        add(&b, WEIGHT, 2, 2 * I, Wv, "%s%s.attn.to_kv.weight", p, g);
        add(&b, WEIGHT, 2, d, I, "%s%s.attn.to_out.weight", p, g);
        add(&b, GAIN, 1, d, 0, "%s%s.ff.0.weight", p, g);
        add(&b, BIAS, 1, d, 0, "%s%s.ff.0.bias", p, g);
        add(&b, WEIGHT, 2, F, d, "%s%s.ff.1.weight", p, g);
        add(&b, WEIGHT, 2, d, F, "%s%s.ff.3.weight", p, g);
    }
    char vj[512], config[2048];
    vision_json(vj, sizeof vj, &c->vision);
    snprintf(config, sizeof config,
             "{\"format_version\": 1, \"name\": \"synthetic-openflamingo-3b\", %s, "
             "\"perceiver\": {\"depth\": %d, \"heads\": %d, \"dim_head\": %d, \"num_latents\": %d, \"ff_mult\": %d}, "
             "\"lm\": {\"family\": \"mosaic_gpt\", \"d_model\": %d, \"n_layers\": %d, \"n_heads\": %d, "
             "\"mlp_dim\": %d, \"vocab_size\": %d, \"max_seq_len\": %d, \"qk_ln\": %s}, "
             "\"xattn\": {\"every\": %d, \"heads\": %d, \"dim_head\": %d, \"ff_mult\": %d}, "
             "\"tokens\": {\"media\": %d, \"endofchunk\": %d, \"pad\": %d, \"eos\": %d}}",
             vj, c->perceiver.depth, c->perceiver.heads, c->perceiver.dim_head, c->perceiver.num_latents,
             c->perceiver.ff_mult, c->lm.d_model, c->lm.n_layers, c->lm.n_heads, c->lm.mlp_dim, c->lm.vocab_size,
             c->lm.max_seq_len, c->lm.qk_ln ? "true" : "false", c->xattn.every, c->xattn.heads, c->xattn.dim_head,
             c->xattn.ff_mult, c->tokens.media, c->tokens.endofchunk, c->tokens.pad, c->tokens.eos);
    return build(&b, config, seed, buf, len, err);
}
