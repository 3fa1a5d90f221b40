/*
 * clip.c - see clip.h.
 *
 * Activations live in one state buffer per role, sized for max_batch images
 * at init: x (the residual stream) [B*T, W], h (normed input) [B*T, W],
 * qkv [B*T, 3W], attn (heads concatenated) [B*T, W], mlp [B*T, M].
 * nn.MultiheadAttention's in_proj rows are q | k | v, each split into heads
 * of W/heads features; mat_attention reads them in place (one pool task per
 * image and head).  The Linears are single GEMMs over all B*T rows.
 */
#include "clip.h"

#include <stdlib.h>
#include <string.h>

#include "../core/mat.h"
#include "../weights/wload.h"

struct clip_layer {
    const float *ln1_w, *ln1_b;   /* [W] */
    struct wmat qkv_w, out_w;     /* [3W, W], [W, W] */
    struct wmat fc_w, proj_w;     /* [M, W], [W, M] */
    const float *qkv_b, *out_b;   /* [3W], [W] */
    const float *ln2_w, *ln2_b;   /* [W] */
    const float *fc_b, *proj_b;   /* [M], [W] */
};

struct clip_model {
    struct cfg_vision cfg;
    int grid;      /* S / P */
    int n_tok;     /* grid^2 + 1 */
    int patch_len; /* 3 P P */
    struct wmat conv_w;                  /* [W, 3, P, P] = [W, patch_len] */
    const float *conv_b;                 /* [W] or NULL */
    const float *cls;                    /* [W] */
    const float *pos;                    /* [T, W] */
    const float *ln_pre_w, *ln_pre_b;    /* [W] */
    const float *ln_post_w, *ln_post_b;  /* [W], only when cfg.ln_post */
    struct clip_layer *layers;
    struct wl wl;
};

struct clip_state {
    int max_batch;
    float *patches; /* [B*grid^2, patch_len] */
    float *x, *h, *qkv, *attn, *mlp;
    float *attn_scratch; /* mat_attention_scratch floats */
    size_t attn_scratch_floats;
};

int clip_load(const struct st_file *f, const struct cfg_vision *cfg, const char *prefix,
              struct clip_model **out, struct fl_err *err) {
    *out = NULL;
    struct clip_model *m = calloc(1, sizeof *m);
    if (!m) return fl_err_set(err, FL_ENOMEM, "out of memory for the vision model");
    m->cfg = *cfg;
    m->grid = cfg->image_size / cfg->patch_size;
    m->n_tok = m->grid * m->grid + 1;
    m->patch_len = 3 * cfg->patch_size * cfg->patch_size;
    wl_init(&m->wl, f);
    m->layers = calloc((size_t)cfg->layers, sizeof *m->layers);
    if (!m->layers) {
        clip_free(m);
        return fl_err_set(err, FL_ENOMEM, "out of memory for the vision model");
    }

    const int64_t W = cfg->width, M = cfg->mlp_dim, P = cfg->patch_size, T = m->n_tok;
    const int64_t s_w[] = {W}, s_conv[] = {W, 3, P, P}, s_pos[] = {T, W};
    const int64_t s_qkv[] = {3 * W, W}, s_qkvb[] = {3 * W}, s_ww[] = {W, W};
    const int64_t s_fc[] = {M, W}, s_m[] = {M}, s_proj[] = {W, M};
    struct wl *w = &m->wl;
    const char *p = prefix;
    int rc;
    if ((rc = wl_getf_w(w, &m->conv_w, err, 4, s_conv, "%sconv1.weight", p)) < 0 ||
        (rc = wl_getf(w, &m->conv_b, 1, err, 1, s_w, "%sconv1.bias", p)) < 0 ||
        (rc = wl_getf(w, &m->cls, 0, err, 1, s_w, "%sclass_embedding", p)) < 0 ||
        (rc = wl_getf(w, &m->pos, 0, err, 2, s_pos, "%spositional_embedding", p)) < 0 ||
        (rc = wl_getf(w, &m->ln_pre_w, 0, err, 1, s_w, "%sln_pre.weight", p)) < 0 ||
        (rc = wl_getf(w, &m->ln_pre_b, 0, err, 1, s_w, "%sln_pre.bias", p)) < 0 ||
        (rc = wl_getf(w, &m->ln_post_w, !cfg->ln_post, err, 1, s_w, "%sln_post.weight", p)) < 0 ||
        (rc = wl_getf(w, &m->ln_post_b, !cfg->ln_post, err, 1, s_w, "%sln_post.bias", p)) < 0) {
        clip_free(m);
        return rc;
    }
    for (int i = 0; i < cfg->layers; i++) {
        struct clip_layer *l = &m->layers[i];
        const char *r = "transformer.resblocks";
        if ((rc = wl_getf(w, &l->ln1_w, 0, err, 1, s_w, "%s%s.%d.ln_1.weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->ln1_b, 0, err, 1, s_w, "%s%s.%d.ln_1.bias", p, r, i)) < 0 ||
            (rc = wl_getf_w(w, &l->qkv_w, err, 2, s_qkv, "%s%s.%d.attn.in_proj_weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->qkv_b, 0, err, 1, s_qkvb, "%s%s.%d.attn.in_proj_bias", p, r, i)) < 0 ||
            (rc = wl_getf_w(w, &l->out_w, err, 2, s_ww, "%s%s.%d.attn.out_proj.weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->out_b, 0, err, 1, s_w, "%s%s.%d.attn.out_proj.bias", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->ln2_w, 0, err, 1, s_w, "%s%s.%d.ln_2.weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->ln2_b, 0, err, 1, s_w, "%s%s.%d.ln_2.bias", p, r, i)) < 0 ||
            (rc = wl_getf_w(w, &l->fc_w, err, 2, s_fc, "%s%s.%d.mlp.c_fc.weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->fc_b, 0, err, 1, s_m, "%s%s.%d.mlp.c_fc.bias", p, r, i)) < 0 ||
            (rc = wl_getf_w(w, &l->proj_w, err, 2, s_proj, "%s%s.%d.mlp.c_proj.weight", p, r, i)) < 0 ||
            (rc = wl_getf(w, &l->proj_b, 0, err, 1, s_w, "%s%s.%d.mlp.c_proj.bias", p, r, i)) < 0) {
            clip_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void clip_free(struct clip_model *m) {
    if (!m) return;
    wl_free(&m->wl);
    free(m->layers);
    free(m);
}

const struct cfg_vision *clip_config(const struct clip_model *m) { return &m->cfg; }
int clip_out_tokens(const struct clip_model *m) { return m->cfg.keep_cls ? m->n_tok : m->n_tok - 1; }
size_t clip_owned_bytes(const struct clip_model *m) { return m->wl.owned_bytes; }

double clip_flops_per_image(const struct cfg_vision *c) {
    double g = c->image_size / c->patch_size, T = g * g + 1, W = c->width, M = c->mlp_dim;
    double patch = 2.0 * g * g * W * 3 * c->patch_size * c->patch_size;
    double per_layer = 2.0 * T * (3 * W * W + W * W + 2 * W * M) /* linears */
                       + 2.0 * 2.0 * T * T * W;                    /* QK^T and PV */
    return patch + c->layers * per_layer;
}

int clip_state_init(const struct clip_model *m, int max_batch, struct clip_state **out,
                    struct fl_err *err) {
    *out = NULL;
    if (max_batch < 1) max_batch = 1;
    struct clip_state *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory for vision scratch");
    size_t rows = (size_t)max_batch * (size_t)m->n_tok, W = (size_t)m->cfg.width;
    s->max_batch = max_batch;
    s->patches = malloc((size_t)max_batch * (size_t)(m->grid * m->grid) * (size_t)m->patch_len * sizeof(float));
    s->x = malloc(rows * W * sizeof(float));
    s->h = malloc(rows * W * sizeof(float));
    s->qkv = malloc(rows * 3 * W * sizeof(float));
    s->attn = malloc(rows * W * sizeof(float));
    s->mlp = malloc(rows * (size_t)m->cfg.mlp_dim * sizeof(float));
    s->attn_scratch_floats = mat_attention_scratch(m->n_tok, m->cfg.width / m->cfg.heads);
    s->attn_scratch = malloc(s->attn_scratch_floats * sizeof(float));
    if (!s->patches || !s->x || !s->h || !s->qkv || !s->attn || !s->mlp || !s->attn_scratch) {
        clip_state_free(s);
        return fl_err_set(err, FL_ENOMEM, "out of memory for vision scratch (batch %d)", max_batch);
    }
    *out = s;
    return 0;
}

void clip_state_free(struct clip_state *s) {
    if (!s) return;
    free(s->patches);
    free(s->x);
    free(s->h);
    free(s->qkv);
    free(s->attn);
    free(s->mlp);
    free(s->attn_scratch);
    free(s);
}

/* pixels [n][3][S][S] -> s->patches [n*grid^2][3*P*P], in conv1's weight order
 * (channel, ky, kx) and the grid in row-major order. */
static void im2col(const struct clip_model *m, const float *pixels, int n, float *patches) {
    const int S = m->cfg.image_size, P = m->cfg.patch_size, G = m->grid;
    for (int i = 0; i < n; i++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *dst = patches + ((size_t)(i * G + gy) * G + gx) * (size_t)m->patch_len;
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < P; ky++) {
                        const float *src = pixels + (((size_t)i * 3 + c) * S + (size_t)(gy * P + ky)) * S + (size_t)gx * P;
                        memcpy(dst, src, (size_t)P * sizeof *dst);
                        dst += P;
                    }
            }
}

static void encode_chunk(const struct clip_model *m, struct clip_state *s, const float *pixels,
                         int n, float *out) {
    const struct cfg_vision *c = &m->cfg;
    const int T = m->n_tok, W = c->width, M = c->mlp_dim, G2 = m->grid * m->grid;
    const int rows = n * T;

    /* Patch embedding into a compact [n*G2, W] block (h is free now), then
     * interleave CLS and add positions. */
    im2col(m, pixels, n, s->patches);
    mat_linear_w(s->h, s->patches, &m->conv_w, m->conv_b, n * G2, 0);
    for (int i = 0; i < n; i++) {
        float *x = s->x + (size_t)i * T * W;
        for (int j = 0; j < W; j++) x[j] = m->cls[j] + m->pos[j];
        for (int t = 1; t < T; t++) {
            const float *e = s->h + ((size_t)i * G2 + (size_t)(t - 1)) * W;
            const float *pe = m->pos + (size_t)t * W;
            float *xt = x + (size_t)t * W;
            for (int j = 0; j < W; j++) xt[j] = e[j] + pe[j];
        }
    }
    mat_layernorm(s->x, s->x, m->ln_pre_w, m->ln_pre_b, rows, W, c->ln_eps);

    for (int li = 0; li < c->layers; li++) {
        const struct clip_layer *l = &m->layers[li];
        mat_layernorm(s->h, s->x, l->ln1_w, l->ln1_b, rows, W, c->ln_eps);
        mat_linear_w(s->qkv, s->h, &l->qkv_w, l->qkv_b, rows, 0);
        mat_attention(s->qkv, n, T, W, c->heads, s->attn, s->attn_scratch, s->attn_scratch_floats);
        mat_linear_w(s->x, s->attn, &l->out_w, l->out_b, rows, 1);
        mat_layernorm(s->h, s->x, l->ln2_w, l->ln2_b, rows, W, c->ln_eps);
        mat_linear_w(s->mlp, s->h, &l->fc_w, l->fc_b, rows, 0);
        if (c->act == CFG_ACT_QUICK_GELU) mat_quick_gelu(s->mlp, (size_t)rows * M);
        else mat_gelu(s->mlp, (size_t)rows * M);
        mat_linear_w(s->x, s->mlp, &l->proj_w, l->proj_b, rows, 1);
    }

    const int skip = c->keep_cls ? 0 : 1, n_out = T - skip;
    for (int i = 0; i < n; i++) {
        const float *src = s->x + ((size_t)i * T + (size_t)skip) * W;
        float *dst = out + (size_t)i * n_out * W;
        if (c->ln_post) mat_layernorm(dst, src, m->ln_post_w, m->ln_post_b, n_out, W, c->ln_eps);
        else memcpy(dst, src, (size_t)n_out * W * sizeof *dst);
    }
}

void clip_encode(const struct clip_model *m, struct clip_state *s, const float *pixels, int n,
                 float *out) {
    const size_t in_stride = (size_t)3 * m->cfg.image_size * m->cfg.image_size;
    const size_t out_stride = (size_t)clip_out_tokens(m) * m->cfg.width;
    for (int done = 0; done < n;) {
        int k = n - done < s->max_batch ? n - done : s->max_batch;
        encode_chunk(m, s, pixels + done * in_stride, k, out + done * out_stride);
        done += k;
    }
}
