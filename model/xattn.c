/*
 * xattn.c - see xattn.h.
 *
 * Because an image index never decreases along a sequence, the tokens that
 * see the same image form contiguous runs (and in a batched decode step each
 * sequence's row is its own run); each (run, head) pair is one attention
 * task over that image's n_latents keys.  Rows of tokens without
 * an image stay zero, and to_out has no bias, so their attention branch adds
 * exactly nothing, as in OpenFlamingo (which zeroes their softmax rows).
 * The gates scale the GEMMs through their alpha, adding into x directly.
 */
#include "xattn.h"

#include <math.h>
#include <string.h>

#include "../core/mat.h"

int xattn_load(struct wl *w, const char *prefix, int d, int dv, const struct cfg_xattn *cfg,
               struct xattn_block *b, struct fl_err *err) {
    memset(b, 0, sizeof *b);
    b->d = d;
    b->dv = dv;
    b->heads = cfg->heads;
    b->dim_head = cfg->dim_head;
    b->inner = cfg->heads * cfg->dim_head;
    b->ff = cfg->ff_mult * d;
    const int64_t s1[] = {1}, sd[] = {d}, sq[] = {b->inner, d}, skv[] = {2 * b->inner, dv};
    const int64_t so[] = {d, b->inner}, su[] = {b->ff, d}, sdn[] = {d, b->ff};
    const float *ag, *fg;
    const char *g = "gated_cross_attn_layer";
    int rc;
    if ((rc = wl_getf(w, &ag, 0, err, 1, s1, "%s%s.attn_gate", prefix, g)) < 0 ||
        (rc = wl_getf(w, &fg, 0, err, 1, s1, "%s%s.ff_gate", prefix, g)) < 0 ||
        (rc = wl_getf(w, &b->norm_w, 0, err, 1, sd, "%s%s.attn.norm.weight", prefix, g)) < 0 ||
        (rc = wl_getf(w, &b->norm_b, 0, err, 1, sd, "%s%s.attn.norm.bias", prefix, g)) < 0 ||
        (rc = wl_getf_w(w, &b->to_q, err, 2, sq, "%s%s.attn.to_q.weight", prefix, g)) < 0 ||
        (rc = wl_getf_w(w, &b->to_kv, err, 2, skv, "%s%s.attn.to_kv.weight", prefix, g)) < 0 ||
        (rc = wl_getf_w(w, &b->to_out, err, 2, so, "%s%s.attn.to_out.weight", prefix, g)) < 0 ||
        (rc = wl_getf(w, &b->ff_norm_w, 0, err, 1, sd, "%s%s.ff.0.weight", prefix, g)) < 0 ||
        (rc = wl_getf(w, &b->ff_norm_b, 0, err, 1, sd, "%s%s.ff.0.bias", prefix, g)) < 0 ||
        (rc = wl_getf_w(w, &b->ff_up, err, 2, su, "%s%s.ff.1.weight", prefix, g)) < 0 ||
        (rc = wl_getf_w(w, &b->ff_down, err, 2, sdn, "%s%s.ff.3.weight", prefix, g)) < 0)
        return rc;
    b->attn_gate = tanhf(ag[0]);
    b->ff_gate = tanhf(fg[0]);
    return 0;
}

void xattn_media_kv(const struct xattn_block *b, const float *latents, int n_latents, float *kv) {
    mat_linear_w(kv, latents, &b->to_kv, NULL, n_latents, 0);
}

struct run {
    int t0, len;
    const float *kv;
};

struct xattn_job {
    const struct xattn_block *b;
    const struct run *runs;
    int n_latents;
    struct xattn_scratch *s;
};

static void xattn_fill(void *ctx, int task, struct kern_attn *a) {
    const struct xattn_job *j = ctx;
    const struct xattn_block *b = j->b;
    const struct run *r = &j->runs[task / b->heads];
    const int h = task % b->heads, dh = b->dim_head;
    *a = (struct kern_attn){
        .q = j->s->q + (size_t)r->t0 * b->inner + (size_t)h * dh,
        .ldq = b->inner,
        .n_q = r->len,
        .k = r->kv + (size_t)h * dh,
        .v = r->kv + b->inner + (size_t)h * dh,
        .ldkv = 2 * b->inner,
        .n_kv = j->n_latents,
        .dim = dh,
        .scale = 1.0f / sqrtf((float)dh),
        .out = j->s->attn + (size_t)r->t0 * b->inner + (size_t)h * dh,
        .ld_out = b->inner,
    };
}

void xattn_forward(const struct xattn_block *b, float *x, int n, const float *const *row_kv, int n_latents,
                   struct xattn_scratch *s) {
    const int d = b->d, I = b->inner;
    const float eps = 1e-5f; /* nn.LayerNorm default */
    int any = 0;
    for (int t = 0; t < n && !any; t++)
        any = row_kv[t] != NULL;
    memset(s->attn, 0, (size_t)n * I * sizeof(float));
    if (any) {
        mat_layernorm(s->h, x, b->norm_w, b->norm_b, n, d, eps);
        mat_linear_w(s->q, s->h, &b->to_q, NULL, n, 0);
        struct run runs_buf[64]; /* up to 64 runs per dispatch */
        for (int t = 0; t < n;) {
            int n_runs = 0;
            while (t < n && n_runs < 64) {
                int t0 = t;
                while (t < n && row_kv[t] == row_kv[t0])
                    t++;
                if (row_kv[t0]) runs_buf[n_runs++] = (struct run){t0, t - t0, row_kv[t0]};
            }
            struct xattn_job job = {b, runs_buf, n_latents, s};
            if (n_runs)
                mat_attention_run(n_runs * b->heads, xattn_fill, &job, s->attn_scratch,
                                  s->attn_scratch_floats);
        }
        /* x += tanh(attn_gate) * attn to_out^T (rows without an image are 0) */
        mat_gemm_w(n, b->attn_gate, s->attn, I, &b->to_out, 1, x, d);
    }
    mat_layernorm(s->h, x, b->ff_norm_w, b->ff_norm_b, n, d, eps);
    mat_linear_w(s->ff, s->h, &b->ff_up, NULL, n, 0);
    mat_gelu(s->ff, (size_t)n * b->ff);
    mat_gemm_w(n, b->ff_gate, s->ff, b->ff, &b->ff_down, 1, x, d);
}
