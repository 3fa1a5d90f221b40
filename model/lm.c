/*
 * lm.c - see lm.h.
 *
 * One decoder layer, three families.  Everything a family changes is in one
 * of two places: the name table (which tensors, and whether Linears and
 * LayerNorms have biases) and four switches in the layer's forward pass:
 *   qkv layout   MPT [q | k | v] over the full width; GPT-NeoX per head
 *                [h][q, k, v][head_dim] (read in place through strides)
 *   qk_ln        MPT-1B: LayerNorm over the full q and k before the split
 *   positions    MPT: ALiBi slopes in the attention; GPT-NeoX: rotary on q, k
 *   residual     sequential, or GPT-NeoX's parallel form
 * The KV cache is [layer][k or v][position][d_model] per sequence, head h in
 * columns h*head_dim; keys are stored after q/k-norm and rotary, as the
 * upstream caches hold them.
 */
#include "lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mat.h"
#include "../weights/wload.h"
#include "xattn.h"

struct family_names {
    const char *layer_prefix; /* printf pattern with the layer index */
    const char *embed, *unembed, *norm_f;
    const char *norm1, *qkv, *q_ln, *k_ln, *out, *norm2, *up, *down;
    int bias;
};

static const struct family_names NAMES[] = {
    [CFG_FAMILY_MOSAIC_GPT] = {"lang_encoder.transformer.blocks.%d.", "lang_encoder.transformer.wte.weight",
                               NULL, "lang_encoder.transformer.ln_f", "ln_1", "attn.Wqkv", "attn.q_ln",
                               "attn.k_ln", "attn.out_proj", "ln_2", "mlp.mlp_up", "mlp.mlp_down", 0},
    [CFG_FAMILY_MPT] = {"lang_encoder.transformer.blocks.%d.", "lang_encoder.transformer.wte.weight", NULL,
                        "lang_encoder.transformer.norm_f", "norm_1", "attn.Wqkv", "attn.q_ln", "attn.k_ln",
                        "attn.out_proj", "norm_2", "ffn.up_proj", "ffn.down_proj", 0},
    [CFG_FAMILY_GPT_NEOX] = {"lang_encoder.gpt_neox.layers.%d.", "lang_encoder.gpt_neox.embed_in.weight",
                             "lang_encoder.embed_out.weight", "lang_encoder.gpt_neox.final_layer_norm",
                             "input_layernorm", "attention.query_key_value", NULL, NULL, "attention.dense",
                             "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h", 1},
};

struct lm_layer {
    const float *n1_w, *n1_b;     /* [d] (b: NULL for MPT) */
    struct wmat qkv_w;            /* [3d, d] */
    const float *qkv_b;           /* [3d] */
    const float *q_ln, *k_ln;     /* [d] or NULL */
    struct wmat out_w, up_w, down_w; /* [d, d], [M, d], [d, M] */
    const float *out_b;           /* [d] */
    const float *n2_w, *n2_b;     /* [d] */
    const float *up_b, *down_b;   /* [M], [d] */
    int xattn;                    /* index of its cross-attention block, or -1 */
};

struct lm_model {
    struct cfg_lm cfg;
    struct cfg_xattn xcfg;
    struct cfg_tokens tokens;
    int d, hd, n_latents, dv;
    struct wmat embed, unembed; /* [V, d]; unembed == embed when tied */
    const float *nf_w, *nf_b;
    struct lm_layer *layers;
    struct xattn_block *blocks; /* [n_xattn] */
    int n_xattn;
    float *alibi;    /* [heads] slopes, MPT */
    float *inv_freq; /* [rot / 2], GPT-NeoX */
    int rot;
    struct wl wl;
};

struct lm_media {
    int max_images, n_images, n_xattn, L, kv_width;
    float *kv;         /* [n_xattn][max_images][L][kv_width] */
    const float **ptr; /* [n_xattn][max_images] into kv */
};

struct lm_seq {
    int n_ctx, len, n_image_tokens, d, n_layers;
    float *kv; /* [n_layers][2][n_ctx][d] */
};

/* One group of a forward pass: its rows are x[row0 .. row0 + n). */
struct fgroup {
    struct lm_seq *s;
    const struct lm_media *md;
    int row0, n, pos0;
};

struct lm_scratch {
    int max_tokens, n_ctx;
    float *x, *h, *h2, *qkv, *q, *attn, *mlp; /* [max_tokens][...] */
    int *img;                                 /* [max_tokens] image index within the row's sequence */
    const float **row_kv;                     /* [max_tokens] */
    struct fgroup *groups;                    /* [max_tokens] */
    float *attn_scratch;
    size_t attn_scratch_floats;
    struct xattn_scratch xs;
};

/* MosaicML's gen_slopes: slopes 2^-(h * max / n') for h = 1..n', n' the
 * next power of two, interleaved (odd then even) when n' > n heads. */
static void alibi_slopes(int n, float bias_max, float *out) {
    int np = 1;
    while (np < n)
        np *= 2;
    float s[CFG_MAX_HEADS * 2];
    for (int h = 0; h < np; h++)
        s[h] = 1.0f / powf(2.0f, (float)(h + 1) * (bias_max / (float)np));
    if (np == n) {
        memcpy(out, s, (size_t)n * sizeof *out);
        return;
    }
    int k = 0;
    for (int h = 1; h < np && k < n; h += 2)
        out[k++] = s[h];
    for (int h = 0; h < np && k < n; h += 2)
        out[k++] = s[h];
}

static int get_norm(struct wl *w, const char *name, int bias, int64_t d, const float **wt, const float **b,
                    struct fl_err *err) {
    const int64_t s[] = {d};
    int rc = wl_getf(w, wt, 0, err, 1, s, "%s.weight", name);
    if (rc == 0 && bias) rc = wl_getf(w, b, 0, err, 1, s, "%s.bias", name);
    return rc;
}

static int get_linear(struct wl *w, const char *name, int bias, int64_t out, int64_t in, struct wmat *wt,
                      const float **b, struct fl_err *err) {
    const int64_t s[] = {out, in}, sb[] = {out};
    int rc = wl_getf_w(w, wt, err, 2, s, "%s.weight", name);
    if (rc == 0 && bias) rc = wl_getf(w, b, 0, err, 1, sb, "%s.bias", name);
    return rc;
}

int lm_load(const struct st_file *f, const struct fl_config *cfg, struct lm_model **out, struct fl_err *err) {
    *out = NULL;
    if (!cfg->has_lm) return fl_err_set(err, FL_EFORMAT, "%s: the config has no language model", st_path(f));
    struct lm_model *m = calloc(1, sizeof *m);
    if (!m) return fl_err_set(err, FL_ENOMEM, "out of memory for the language model");
    const struct cfg_lm *c = &cfg->lm;
    const struct family_names *nm = &NAMES[c->family];
    m->cfg = *c;
    m->xcfg = cfg->xattn;
    m->tokens = cfg->tokens;
    m->d = c->d_model;
    m->hd = c->d_model / c->n_heads;
    m->n_latents = cfg->perceiver.num_latents;
    m->dv = cfg->vision.width;
    wl_init(&m->wl, f);
    for (int i = 0; i < c->n_layers; i++)
        m->n_xattn += cfg_has_xattn(&cfg->xattn, i);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->blocks = calloc((size_t)(m->n_xattn ? m->n_xattn : 1), sizeof *m->blocks);
    if (!m->layers || !m->blocks) {
        lm_free(m);
        return fl_err_set(err, FL_ENOMEM, "out of memory for the language model");
    }
    struct wl *w = &m->wl;
    const int64_t d = m->d, M = c->mlp_dim, V = c->vocab_size;
    const int64_t s_emb[] = {V, d};
    int rc;
    if ((rc = wl_get_w(w, nm->embed, 2, s_emb, &m->embed, err)) < 0 ||
        (rc = nm->unembed ? wl_get_w(w, nm->unembed, 2, s_emb, &m->unembed, err) : 0) < 0 ||
        (rc = get_norm(w, nm->norm_f, nm->bias, d, &m->nf_w, &m->nf_b, err)) < 0) {
        lm_free(m);
        return rc;
    }
    if (!nm->unembed) m->unembed = m->embed; /* MPT: tied */

    int xi = 0;
    for (int i = 0; i < c->n_layers && rc == 0; i++) {
        struct lm_layer *l = &m->layers[i];
        char p[96], name[192];
        snprintf(p, sizeof p, nm->layer_prefix, i);
#define N(suffix) (snprintf(name, sizeof name, "%sdecoder_layer.%s", p, suffix), name)
        if ((rc = get_norm(w, N(nm->norm1), nm->bias, d, &l->n1_w, &l->n1_b, err)) < 0 ||
            (rc = get_linear(w, N(nm->qkv), nm->bias, 3 * d, d, &l->qkv_w, &l->qkv_b, err)) < 0 ||
            (rc = get_linear(w, N(nm->out), nm->bias, d, d, &l->out_w, &l->out_b, err)) < 0 ||
            (rc = get_norm(w, N(nm->norm2), nm->bias, d, &l->n2_w, &l->n2_b, err)) < 0 ||
            (rc = get_linear(w, N(nm->up), nm->bias, M, d, &l->up_w, &l->up_b, err)) < 0 ||
            (rc = get_linear(w, N(nm->down), nm->bias, d, M, &l->down_w, &l->down_b, err)) < 0)
            break;
        if (c->qk_ln && nm->q_ln) {
            const int64_t sd[] = {d};
            char kn[192];
            snprintf(kn, sizeof kn, "%sdecoder_layer.%s.weight", p, nm->k_ln);
            if ((rc = wl_getf(w, &l->q_ln, 0, err, 1, sd, "%sdecoder_layer.%s.weight", p, nm->q_ln)) < 0 ||
                (rc = wl_get(w, kn, 1, sd, 0, &l->k_ln, err)) < 0)
                break;
        }
#undef N
        l->xattn = -1;
        if (cfg_has_xattn(&cfg->xattn, i)) {
            if ((rc = xattn_load(w, p, m->d, m->dv, &cfg->xattn, &m->blocks[xi], err)) < 0) break;
            l->xattn = xi++;
        }
    }
    if (rc == 0 && c->family != CFG_FAMILY_GPT_NEOX) {
        if (!(m->alibi = malloc((size_t)c->n_heads * sizeof *m->alibi)))
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        else
            alibi_slopes(c->n_heads, c->alibi_bias_max, m->alibi);
    }
    if (rc == 0 && c->family == CFG_FAMILY_GPT_NEOX) {
        m->rot = (int)(c->rotary_pct * (float)m->hd);
        if (m->rot > 0 && !(m->inv_freq = malloc((size_t)(m->rot / 2) * sizeof *m->inv_freq)))
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        /* HF computes these in float32: 1 / base^(2i / rot) */
        for (int i = 0; rc == 0 && i < m->rot / 2; i++)
            m->inv_freq[i] = 1.0f / powf(c->rotary_base, (float)(2 * i) / (float)m->rot);
    }
    if (rc < 0) {
        lm_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void lm_free(struct lm_model *m) {
    if (!m) return;
    wl_free(&m->wl);
    free(m->layers);
    free(m->blocks);
    free(m->alibi);
    free(m->inv_freq);
    free(m);
}

const struct cfg_lm *lm_config(const struct lm_model *m) { return &m->cfg; }

/* ---- media -------------------------------------------------------------- */

int lm_media_init(const struct lm_model *m, int max_images, struct lm_media **out, struct fl_err *err) {
    *out = NULL;
    struct lm_media *md = calloc(1, sizeof *md);
    if (!md) return fl_err_set(err, FL_ENOMEM, "out of memory for image keys and values");
    md->max_images = max_images < 1 ? 1 : max_images;
    md->n_xattn = m->n_xattn;
    md->L = m->n_latents;
    md->kv_width = 2 * m->xcfg.heads * m->xcfg.dim_head;
    size_t slots = (size_t)(md->n_xattn ? md->n_xattn : 1) * md->max_images;
    md->kv = malloc(slots * md->L * md->kv_width * sizeof(float));
    md->ptr = calloc(slots, sizeof *md->ptr);
    if (!md->kv || !md->ptr) {
        lm_media_free(md);
        return fl_err_set(err, FL_ENOMEM, "out of memory for the keys and values of %d images", max_images);
    }
    for (size_t i = 0; i < slots; i++)
        md->ptr[i] = md->kv + i * md->L * md->kv_width;
    *out = md;
    return 0;
}

void lm_media_free(struct lm_media *md) {
    if (!md) return;
    free(md->kv);
    free(md->ptr);
    free(md);
}

void lm_media_clear(struct lm_media *md) { md->n_images = 0; }
int lm_media_count(const struct lm_media *md) { return md ? md->n_images : 0; }

int lm_media_add(const struct lm_model *m, struct lm_media *md, const float *latents, struct fl_err *err) {
    if (md->n_images == md->max_images)
        return fl_err_set(err, FL_ELIMIT, "more than %d images", md->max_images);
    for (int x = 0; x < m->n_xattn; x++)
        xattn_media_kv(&m->blocks[x], latents, md->L,
                       (float *)md->ptr[(size_t)x * md->max_images + md->n_images]);
    md->n_images++;
    return 0;
}

size_t lm_media_kv_floats(const struct lm_model *m) {
    size_t per_block = (size_t)m->n_latents * 2 * m->xcfg.heads * m->xcfg.dim_head;
    return (m->n_xattn ? (size_t)m->n_xattn : 1) * per_block;
}

void lm_media_kv(const struct lm_model *m, const float *latents, float *kv) {
    const size_t per_block = (size_t)m->n_latents * 2 * m->xcfg.heads * m->xcfg.dim_head;
    for (int x = 0; x < m->n_xattn; x++) xattn_media_kv(&m->blocks[x], latents, m->n_latents, kv + x * per_block);
}

int lm_media_init_ref(const struct lm_model *m, int max_images, struct lm_media **out, struct fl_err *err) {
    *out = NULL;
    struct lm_media *md = calloc(1, sizeof *md);
    if (!md) return fl_err_set(err, FL_ENOMEM, "out of memory for image references");
    md->max_images = max_images < 1 ? 1 : max_images;
    md->n_xattn = m->n_xattn;
    md->L = m->n_latents;
    md->kv_width = 2 * m->xcfg.heads * m->xcfg.dim_head;
    md->ptr = calloc((size_t)(md->n_xattn ? md->n_xattn : 1) * md->max_images, sizeof *md->ptr);
    if (!md->ptr) {
        free(md);
        return fl_err_set(err, FL_ENOMEM, "out of memory for image references");
    }
    *out = md;
    return 0;
}

int lm_media_add_ref(const struct lm_model *m, struct lm_media *md, const float *kv, struct fl_err *err) {
    (void)m;
    if (md->n_images == md->max_images)
        return fl_err_set(err, FL_ELIMIT, "more than %d images", md->max_images);
    for (int x = 0; x < md->n_xattn; x++)
        md->ptr[(size_t)x * md->max_images + md->n_images] = kv + (size_t)x * md->L * md->kv_width;
    md->n_images++;
    return 0;
}

/* ---- sequences and scratch ---------------------------------------------- */

int lm_seq_init(const struct lm_model *m, int n_ctx, struct lm_seq **out, struct fl_err *err) {
    *out = NULL;
    if (n_ctx < 1 || n_ctx > m->cfg.max_seq_len) n_ctx = m->cfg.max_seq_len;
    struct lm_seq *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory for a sequence");
    s->n_ctx = n_ctx;
    s->d = m->d;
    s->n_layers = m->cfg.n_layers;
    s->kv = malloc((size_t)s->n_layers * 2 * n_ctx * s->d * sizeof(float));
    if (!s->kv) {
        free(s);
        return fl_err_set(err, FL_ENOMEM, "out of memory for a KV cache of %d positions", n_ctx);
    }
    *out = s;
    return 0;
}

void lm_seq_free(struct lm_seq *s) {
    if (!s) return;
    free(s->kv);
    free(s);
}

void lm_seq_reset(struct lm_seq *s) { s->len = s->n_image_tokens = 0; }
int lm_seq_len(const struct lm_seq *s) { return s->len; }
int lm_seq_capacity(const struct lm_seq *s) { return s->n_ctx; }

static float *cache_row(const struct lm_seq *s, int layer, int kind, int pos) {
    return s->kv + (((size_t)layer * 2 + kind) * s->n_ctx + pos) * s->d;
}

void lm_seq_copy_prefix(struct lm_seq *dst, const struct lm_seq *src, int n, int n_image_tokens) {
    FL_ASSERT(dst->d == src->d && dst->n_layers == src->n_layers && n >= 0 && n <= src->len &&
              n <= dst->n_ctx);
    for (int l = 0; l < src->n_layers; l++)
        for (int k = 0; k < 2; k++)
            memcpy(cache_row(dst, l, k, 0), cache_row(src, l, k, 0), (size_t)n * src->d * sizeof(float));
    dst->len = n;
    dst->n_image_tokens = n_image_tokens;
}

void lm_seq_copy(struct lm_seq *dst, const struct lm_seq *src) {
    lm_seq_copy_prefix(dst, src, src->len, src->n_image_tokens);
}

size_t lm_seq_bytes(const struct lm_seq *s) {
    return (size_t)s->n_layers * 2 * s->n_ctx * s->d * sizeof(float);
}

int lm_scratch_init(const struct lm_model *m, int max_tokens, int n_ctx, struct lm_scratch **out,
                    struct fl_err *err) {
    *out = NULL;
    if (max_tokens < 1) max_tokens = 1;
    if (n_ctx < 1 || n_ctx > m->cfg.max_seq_len) n_ctx = m->cfg.max_seq_len;
    struct lm_scratch *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory for LM scratch");
    const size_t T = (size_t)max_tokens, d = (size_t)m->d, M = (size_t)m->cfg.mlp_dim;
    const size_t I = (size_t)m->xcfg.heads * m->xcfg.dim_head, F = (size_t)m->xcfg.ff_mult * d;
    s->max_tokens = max_tokens;
    s->n_ctx = n_ctx;
    s->x = malloc(T * d * sizeof(float));
    s->h = malloc(T * d * sizeof(float));
    s->h2 = malloc(T * d * sizeof(float));
    s->qkv = malloc(T * 3 * d * sizeof(float));
    s->q = malloc(T * d * sizeof(float));
    s->attn = malloc(T * d * sizeof(float));
    s->mlp = malloc(T * (M > F ? M : F) * sizeof(float));
    s->img = malloc(T * sizeof(int));
    s->row_kv = malloc(T * sizeof *s->row_kv);
    s->groups = malloc(T * sizeof *s->groups);
    size_t self_floats = mat_attention_scratch(n_ctx, m->hd);
    size_t cross_floats = mat_attention_scratch(m->n_latents, m->xcfg.dim_head);
    s->attn_scratch_floats = self_floats > cross_floats ? self_floats : cross_floats;
    s->attn_scratch = malloc(s->attn_scratch_floats * sizeof(float));
    s->xs = (struct xattn_scratch){.h = s->h,
                                   .q = malloc(T * I * sizeof(float)),
                                   .attn = malloc(T * I * sizeof(float)),
                                   .ff = s->mlp,
                                   .attn_scratch = s->attn_scratch,
                                   .attn_scratch_floats = s->attn_scratch_floats};
    if (!s->x || !s->h || !s->h2 || !s->qkv || !s->q || !s->attn || !s->mlp || !s->img || !s->row_kv ||
        !s->groups || !s->attn_scratch || !s->xs.q || !s->xs.attn) {
        lm_scratch_free(s);
        return fl_err_set(err, FL_ENOMEM, "out of memory for LM scratch (%d tokens)", max_tokens);
    }
    *out = s;
    return 0;
}

int lm_scratch_max_tokens(const struct lm_scratch *s) { return s->max_tokens; }

void lm_scratch_free(struct lm_scratch *s) {
    if (!s) return;
    free(s->x);
    free(s->h);
    free(s->h2);
    free(s->qkv);
    free(s->q);
    free(s->attn);
    free(s->mlp);
    free(s->img);
    free(s->row_kv);
    free(s->groups);
    free(s->attn_scratch);
    free(s->xs.q);
    free(s->xs.attn);
    free(s);
}

/* ---- the forward pass --------------------------------------------------- */

struct self_job {
    const struct lm_model *m;
    const struct lm_scratch *sc;
    int layer;
    const float *q;
    int ldq, q_head_stride;
};

static void self_fill(void *ctx, int task, struct kern_attn *a) {
    const struct self_job *j = ctx;
    const struct lm_model *m = j->m;
    const int hd = m->hd, H = m->cfg.n_heads, h = task % H;
    const struct fgroup *g = &j->sc->groups[task / H];
    *a = (struct kern_attn){
        .q = j->q + (size_t)g->row0 * j->ldq + (size_t)h * j->q_head_stride,
        .ldq = j->ldq,
        .n_q = g->n,
        .k = cache_row(g->s, j->layer, 0, 0) + (size_t)h * hd,
        .v = cache_row(g->s, j->layer, 1, 0) + (size_t)h * hd,
        .ldkv = m->d,
        .n_kv = g->pos0 + g->n,
        .dim = hd,
        .scale = 1.0f / sqrtf((float)hd),
        .causal = 1,
        .q_pos0 = g->pos0,
        .alibi = m->alibi ? m->alibi[h] : 0.0f,
        .out = j->sc->attn + (size_t)g->row0 * m->d + (size_t)h * hd,
        .ld_out = m->d,
    };
}

/* GPT-NeoX rotary ("rotate half") on the first rot dims of one head vector. */
static void rotary(const struct lm_model *m, float *x, int pos) {
    const int half = m->rot / 2;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * m->inv_freq[i];
        float c = cosf(ang), s = sinf(ang);
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
    }
}

/* Self-attention of one layer over the groups' rows: fills each sequence's
 * KV cache rows and leaves the heads' outputs in sc->attn [rows][d]. */
static void self_attention(const struct lm_model *m, const struct lm_layer *l, int layer,
                           struct lm_scratch *sc, int n_groups, int rows) {
    const int d = m->d, hd = m->hd, H = m->cfg.n_heads;
    mat_linear_w(sc->qkv, sc->h, &l->qkv_w, l->qkv_b, rows, 0);
    for (int gi = 0; gi < n_groups; gi++) {
        const struct fgroup *g = &sc->groups[gi];
        for (int t = 0; t < g->n; t++) {
            const int r = g->row0 + t, pos = g->pos0 + t;
            float *row = sc->qkv + (size_t)r * 3 * d;
            float *kc = cache_row(g->s, layer, 0, pos), *vc = cache_row(g->s, layer, 1, pos);
            if (m->cfg.family == CFG_FAMILY_GPT_NEOX) { /* [h][q, k, v][hd] */
                for (int h = 0; h < H; h++) {
                    float *q = row + (size_t)h * 3 * hd, *k = q + hd, *v = k + hd;
                    if (m->rot) {
                        rotary(m, q, pos);
                        rotary(m, k, pos);
                    }
                    memcpy(kc + (size_t)h * hd, k, (size_t)hd * sizeof(float));
                    memcpy(vc + (size_t)h * hd, v, (size_t)hd * sizeof(float));
                }
            } else if (l->q_ln) { /* [q | k | v], LayerNorm over the full q and k */
                mat_layernorm(sc->q + (size_t)r * d, row, l->q_ln, NULL, 1, d, m->cfg.ln_eps);
                mat_layernorm(kc, row + d, l->k_ln, NULL, 1, d, m->cfg.ln_eps);
                memcpy(vc, row + 2 * d, (size_t)d * sizeof(float));
            } else {
                memcpy(kc, row + d, (size_t)d * sizeof(float));
                memcpy(vc, row + 2 * d, (size_t)d * sizeof(float));
            }
        }
    }
    struct self_job job = {m, sc, layer, sc->qkv, 3 * d, hd};
    if (m->cfg.family == CFG_FAMILY_GPT_NEOX) {
        job.q_head_stride = 3 * hd;
    } else if (l->q_ln) {
        job.q = sc->q, job.ldq = d;
    }
    mat_attention_run(n_groups * H, self_fill, &job, sc->attn_scratch, sc->attn_scratch_floats);
}

static void decoder_layer(const struct lm_model *m, const struct lm_layer *l, int layer,
                          struct lm_scratch *sc, int n_groups, int n) {
    const int d = m->d, M = m->cfg.mlp_dim;
    const float eps = m->cfg.ln_eps;
    mat_layernorm(sc->h, sc->x, l->n1_w, l->n1_b, n, d, eps);
    if (m->cfg.parallel_residual) /* both branches read the layer's input */
        mat_layernorm(sc->h2, sc->x, l->n2_w, l->n2_b, n, d, eps);
    self_attention(m, l, layer, sc, n_groups, n);
    mat_linear_w(sc->x, sc->attn, &l->out_w, l->out_b, n, 1);
    if (!m->cfg.parallel_residual) mat_layernorm(sc->h2, sc->x, l->n2_w, l->n2_b, n, d, eps);
    mat_linear_w(sc->mlp, sc->h2, &l->up_w, l->up_b, n, 0);
    mat_gelu(sc->mlp, (size_t)n * M);
    mat_linear_w(sc->x, sc->mlp, &l->down_w, l->down_b, n, 1);
}

/* Checks one group and fills its rows' image indices; touches no sequence. */
static int check_group(const struct lm_model *m, const struct lm_group *g, int *img, struct fl_err *err) {
    const struct lm_seq *s = g->s;
    if (g->n <= 0) return fl_err_set(err, FL_EINVAL, "no tokens to run");
    if (s->len + g->n > s->n_ctx)
        return fl_err_set(err, FL_ELIMIT, "%d tokens exceed the context of %d", s->len + g->n, s->n_ctx);
    int images = s->n_image_tokens;
    for (int t = 0; t < g->n; t++) {
        const int id = g->ids[t];
        if (id < 0 || id >= m->cfg.vocab_size)
            return fl_err_set(err, FL_EINVAL, "token id %d outside the vocabulary", id);
        if (id == m->tokens.media && ++images > lm_media_count(g->md))
            return fl_err_set(err, FL_EINVAL, "%d <image> tokens but %d images", images,
                              lm_media_count(g->md));
        img[t] = images - 1;
    }
    return 0;
}

int lm_forward_batch(const struct lm_model *m, const struct lm_group *g, int n_groups, struct lm_scratch *sc,
                     float *logits, struct fl_err *err) {
    const int d = m->d;
    int rows = 0;
    for (int i = 0; i < n_groups; i++) {
        if (g[i].n > sc->max_tokens - rows)
            return fl_err_set(err, FL_ELIMIT, "a forward pass of more than %d tokens", sc->max_tokens);
        FL_ASSERT(g[i].s->n_ctx <= sc->n_ctx); /* the scratch's attention buffers cover the sequence */
        for (int j = 0; j < i; j++)
            if (g[j].s == g[i].s)
                return fl_err_set(err, FL_EINVAL, "a sequence appears twice in one forward pass");
        int rc = check_group(m, &g[i], sc->img + rows, err);
        if (rc < 0) return rc;
        sc->groups[i] = (struct fgroup){g[i].s, g[i].md, rows, g[i].n, g[i].s->len};
        rows += g[i].n;
    }
    if (rows == 0) return fl_err_set(err, FL_EINVAL, "no tokens to run");
    for (int i = 0; i < n_groups; i++)
        for (int t = 0; t < g[i].n; t++)
            wmat_rows_f32(&m->embed, g[i].ids[t], g[i].ids[t] + 1, sc->x + (size_t)(sc->groups[i].row0 + t) * d);
    for (int layer = 0; layer < m->cfg.n_layers; layer++) {
        const struct lm_layer *l = &m->layers[layer];
        if (l->xattn >= 0) {
            for (int i = 0; i < n_groups; i++) {
                const struct fgroup *fg = &sc->groups[i];
                for (int t = fg->row0; t < fg->row0 + fg->n; t++)
                    sc->row_kv[t] = sc->img[t] < 0
                                        ? NULL
                                        : fg->md->ptr[(size_t)l->xattn * fg->md->max_images + sc->img[t]];
            }
            xattn_forward(&m->blocks[l->xattn], sc->x, rows, sc->row_kv, m->n_latents, &sc->xs);
        }
        decoder_layer(m, l, layer, sc, n_groups, rows);
    }
    int out_rows = 0;
    for (int i = 0; i < n_groups; i++) {
        struct fgroup *fg = &sc->groups[i];
        fg->s->len += fg->n;
        fg->s->n_image_tokens = sc->img[fg->row0 + fg->n - 1] + 1;
        if (g[i].logits == LM_LOGITS_NONE || !logits) continue;
        const int first = g[i].logits == LM_LOGITS_ALL ? 0 : fg->n - 1, k = fg->n - first;
        /* final norm of the requested rows, gathered in order into h */
        mat_layernorm(sc->h + (size_t)out_rows * d, sc->x + (size_t)(fg->row0 + first) * d, m->nf_w, m->nf_b,
                      k, d, m->cfg.ln_eps);
        out_rows += k;
    }
    if (out_rows) mat_linear_w(logits, sc->h, &m->unembed, NULL, out_rows, 0);
    return 0;
}

int lm_forward(const struct lm_model *m, struct lm_seq *s, const struct lm_media *md, struct lm_scratch *sc,
               const int *ids, int n, float *logits, int all_logits, struct fl_err *err) {
    if (n <= 0) return fl_err_set(err, FL_EINVAL, "no tokens to run");
    if (s->len + n > s->n_ctx)
        return fl_err_set(err, FL_ELIMIT, "%d tokens exceed the context of %d", s->len + n, s->n_ctx);
    const size_t V = (size_t)m->cfg.vocab_size;
    for (int done = 0; done < n;) {
        int k = n - done < sc->max_tokens ? n - done : sc->max_tokens;
        int last = done + k == n;
        struct lm_group g = {s, md, ids + done, k, LM_LOGITS_NONE};
        float *out = NULL;
        if (logits && all_logits)
            g.logits = LM_LOGITS_ALL, out = logits + (size_t)done * V;
        else if (logits && last)
            g.logits = LM_LOGITS_LAST, out = logits;
        int rc = lm_forward_batch(m, &g, 1, sc, out, err);
        if (rc < 0) return rc;
        done += k;
    }
    return 0;
}
