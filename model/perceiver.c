/*
 * perceiver.c - see perceiver.h.
 *
 * Per layer, with n images, Tm media tokens, L latents, D width and inner
 * width I = heads x dim_head:
 *   kvin [n][Tm + L][D]  = per image: LN_media(media) rows, then LN_lat(latents) rows
 *   q    [n*L][I]        = LN_lat(latents) Wq^T
 *   kv   [n*(Tm+L)][2I]  = kvin Wkv^T         (columns: K heads, then V heads)
 *   attn [n*L][I]        one pool task per (image, head), no mask
 *   latents += attn Wout^T;  latents += FF(latents)
 * LN_lat(latents) is computed once per layer straight into its place in kvin
 * and used from there for q too.
 */
#include "perceiver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mat.h"
#include "../weights/wload.h"

struct perc_layer {
    const float *norm_media_w, *norm_media_b, *norm_lat_w, *norm_lat_b; /* [D] */
    struct wmat to_q;   /* [I, D] */
    struct wmat to_kv;  /* [2I, D] */
    struct wmat to_out; /* [D, I] */
    const float *ff_norm_w, *ff_norm_b; /* [D] */
    struct wmat ff_up;   /* [F, D] */
    struct wmat ff_down; /* [D, F] */
};

struct perc_model {
    struct cfg_perceiver cfg;
    int D, I, F, L, Tm;
    const float *latents; /* [L, D] */
    const float *norm_w, *norm_b;
    struct perc_layer *layers;
    struct wl wl;
};

struct perc_state {
    int max_images;
    float *lat;  /* [n*L][D] the running latents */
    float *kvin; /* [n][Tm+L][D] */
    float *q;    /* [n*L][I] */
    float *kv;   /* [n*(Tm+L)][2I] */
    float *attn; /* [n*L][I] */
    float *ff;   /* [n*L][F] */
    float *tmp;  /* [n*L][D] */
    float *scratch;
    size_t scratch_floats;
};

int perc_load(const struct st_file *f, const struct cfg_perceiver *cfg, int dim, int n_media,
              struct perc_model **out, struct fl_err *err) {
    *out = NULL;
    struct perc_model *m = calloc(1, sizeof *m);
    if (!m) return fl_err_set(err, FL_ENOMEM, "out of memory for the perceiver");
    m->cfg = *cfg;
    m->D = dim;
    m->I = cfg->heads * cfg->dim_head;
    m->F = cfg->ff_mult * dim;
    m->L = cfg->num_latents;
    m->Tm = n_media;
    wl_init(&m->wl, f);
    m->layers = calloc((size_t)cfg->depth, sizeof *m->layers);
    if (!m->layers) {
        perc_free(m);
        return fl_err_set(err, FL_ENOMEM, "out of memory for the perceiver");
    }
    const int64_t D = dim, I = m->I, F = m->F;
    const int64_t s_lat[] = {m->L, D}, s_d[] = {D}, s_q[] = {I, D}, s_kv[] = {2 * I, D}, s_out[] = {D, I};
    const int64_t s_up[] = {F, D}, s_down[] = {D, F};
    struct wl *w = &m->wl;
    int rc;
    if ((rc = wl_getf(w, &m->latents, 0, err, 2, s_lat, "perceiver.latents")) < 0 ||
        (rc = wl_getf(w, &m->norm_w, 0, err, 1, s_d, "perceiver.norm.weight")) < 0 ||
        (rc = wl_getf(w, &m->norm_b, 0, err, 1, s_d, "perceiver.norm.bias")) < 0) {
        perc_free(m);
        return rc;
    }
    for (int k = 0; k < cfg->depth; k++) {
        struct perc_layer *l = &m->layers[k];
        const char *p = "perceiver.layers";
        if ((rc = wl_getf(w, &l->norm_media_w, 0, err, 1, s_d, "%s.%d.0.norm_media.weight", p, k)) < 0 ||
            (rc = wl_getf(w, &l->norm_media_b, 0, err, 1, s_d, "%s.%d.0.norm_media.bias", p, k)) < 0 ||
            (rc = wl_getf(w, &l->norm_lat_w, 0, err, 1, s_d, "%s.%d.0.norm_latents.weight", p, k)) < 0 ||
            (rc = wl_getf(w, &l->norm_lat_b, 0, err, 1, s_d, "%s.%d.0.norm_latents.bias", p, k)) < 0 ||
            (rc = wl_getf_w(w, &l->to_q, err, 2, s_q, "%s.%d.0.to_q.weight", p, k)) < 0 ||
            (rc = wl_getf_w(w, &l->to_kv, err, 2, s_kv, "%s.%d.0.to_kv.weight", p, k)) < 0 ||
            (rc = wl_getf_w(w, &l->to_out, err, 2, s_out, "%s.%d.0.to_out.weight", p, k)) < 0 ||
            (rc = wl_getf(w, &l->ff_norm_w, 0, err, 1, s_d, "%s.%d.1.0.weight", p, k)) < 0 ||
            (rc = wl_getf(w, &l->ff_norm_b, 0, err, 1, s_d, "%s.%d.1.0.bias", p, k)) < 0 ||
            (rc = wl_getf_w(w, &l->ff_up, err, 2, s_up, "%s.%d.1.1.weight", p, k)) < 0 ||
            (rc = wl_getf_w(w, &l->ff_down, err, 2, s_down, "%s.%d.1.3.weight", p, k)) < 0) {
            perc_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void perc_free(struct perc_model *m) {
    if (!m) return;
    wl_free(&m->wl);
    free(m->layers);
    free(m);
}

int perc_state_init(const struct perc_model *m, int max_images, struct perc_state **out,
                    struct fl_err *err) {
    *out = NULL;
    if (max_images < 1) max_images = 1;
    struct perc_state *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory for perceiver scratch");
    const size_t n = (size_t)max_images, L = (size_t)m->L, T = (size_t)(m->Tm + m->L);
    s->max_images = max_images;
    s->lat = malloc(n * L * m->D * sizeof(float));
    s->kvin = malloc(n * T * m->D * sizeof(float));
    s->q = malloc(n * L * m->I * sizeof(float));
    s->kv = malloc(n * T * 2 * m->I * sizeof(float));
    s->attn = malloc(n * L * m->I * sizeof(float));
    s->ff = malloc(n * L * m->F * sizeof(float));
    s->tmp = malloc(n * L * m->D * sizeof(float));
    s->scratch_floats = mat_attention_scratch((int)T, m->cfg.dim_head);
    s->scratch = malloc(s->scratch_floats * sizeof(float));
    if (!s->lat || !s->kvin || !s->q || !s->kv || !s->attn || !s->ff || !s->tmp || !s->scratch) {
        perc_state_free(s);
        return fl_err_set(err, FL_ENOMEM, "out of memory for perceiver scratch (%d images)", max_images);
    }
    *out = s;
    return 0;
}

void perc_state_free(struct perc_state *s) {
    if (!s) return;
    free(s->lat);
    free(s->kvin);
    free(s->q);
    free(s->kv);
    free(s->attn);
    free(s->ff);
    free(s->tmp);
    free(s->scratch);
    free(s);
}

struct perc_attn {
    const struct perc_model *m;
    const struct perc_state *s;
};

static void perc_attn_fill(void *ctx, int task, struct kern_attn *a) {
    const struct perc_attn *j = ctx;
    const struct perc_model *m = j->m;
    const int img = task / m->cfg.heads, h = task % m->cfg.heads, dh = m->cfg.dim_head;
    const int T = m->Tm + m->L;
    const float *kv = j->s->kv + (size_t)img * T * 2 * m->I;
    *a = (struct kern_attn){
        .q = j->s->q + (size_t)img * m->L * m->I + (size_t)h * dh, .ldq = m->I, .n_q = m->L,
        .k = kv + (size_t)h * dh, .v = kv + m->I + (size_t)h * dh, .ldkv = 2 * m->I, .n_kv = T,
        .dim = dh, .scale = 1.0f / sqrtf((float)dh),
        .out = j->s->attn + (size_t)img * m->L * m->I + (size_t)h * dh, .ld_out = m->I,
    };
}

void perc_forward(const struct perc_model *m, struct perc_state *s, const float *media, int n,
                  float *latents) {
    FL_ASSERT(n >= 1 && n <= s->max_images);
    const int D = m->D, I = m->I, F = m->F, L = m->L, Tm = m->Tm, T = Tm + L;
    const float eps = 1e-5f; /* nn.LayerNorm default, as OpenFlamingo builds them */
    for (int i = 0; i < n; i++) memcpy(s->lat + (size_t)i * L * D, m->latents, (size_t)L * D * sizeof(float));
    for (int k = 0; k < m->cfg.depth; k++) {
        const struct perc_layer *l = &m->layers[k];
        for (int i = 0; i < n; i++) {
            float *dst = s->kvin + (size_t)i * T * D;
            mat_layernorm(dst, media + (size_t)i * Tm * D, l->norm_media_w, l->norm_media_b, Tm, D, eps);
            mat_layernorm(dst + (size_t)Tm * D, s->lat + (size_t)i * L * D, l->norm_lat_w, l->norm_lat_b, L, D, eps);
        }
        for (int i = 0; i < n; i++) /* q from the normed latents, which sit after each image's media rows */
            mat_linear_w(s->q + (size_t)i * L * I, s->kvin + ((size_t)i * T + Tm) * D, &l->to_q, NULL, L, 0);
        mat_linear_w(s->kv, s->kvin, &l->to_kv, NULL, n * T, 0);
        struct perc_attn job = {m, s};
        mat_attention_run(n * m->cfg.heads, perc_attn_fill, &job, s->scratch, s->scratch_floats);
        mat_linear_w(s->lat, s->attn, &l->to_out, NULL, n * L, 1);
        mat_layernorm(s->tmp, s->lat, l->ff_norm_w, l->ff_norm_b, n * L, D, eps);
        mat_linear_w(s->ff, s->tmp, &l->ff_up, NULL, n * L, 0);
        mat_gelu(s->ff, (size_t)n * L * F);
        mat_linear_w(s->lat, s->ff, &l->ff_down, NULL, n * L, 1);
    }
    mat_layernorm(latents, s->lat, m->norm_w, m->norm_b, n * L, D, eps);
}
