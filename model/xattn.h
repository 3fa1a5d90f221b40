/*
 * xattn.h - OpenFlamingo's gated cross-attention block (GatedCrossAttentionBlock).
 *
 * Before some decoder layers, the text attends to the image latents:
 *   x = x + tanh(attn_gate) * to_out(Attn(q = to_q(LN(x)), kv = to_kv(latents)))
 *   x = x + tanh(ff_gate)   * FF(x)            (FF: LN, Linear, GELU, Linear)
 * Each token attends only to the latents of the latest <image> at or before
 * it (OpenFlamingo's only_attend_immediate_media); a token with no image
 * before it gets exactly zero from the attention branch but still goes
 * through the feed-forward branch.
 *
 * The keys and values of an image depend only on its latents, so they are
 * computed once per image and block (xattn_media_kv) and reused for every
 * token of the prompt and of the generation.  The caller keeps them.
 */
#ifndef FL_XATTN_H
#define FL_XATTN_H

#include "../core/err.h"
#include "../weights/config.h"
#include "../weights/wload.h"

struct xattn_block {
    int d, dv, heads, dim_head, inner, ff;
    float attn_gate, ff_gate; /* tanh already applied */
    const float *norm_w, *norm_b;       /* [d] */
    struct wmat to_q;                   /* [inner, d] */
    struct wmat to_kv;                  /* [2 inner, dv] */
    struct wmat to_out;                 /* [d, inner] */
    const float *ff_norm_w, *ff_norm_b; /* [d] */
    struct wmat ff_up;                  /* [ff, d] */
    struct wmat ff_down;                /* [d, ff] */
};

/* Per-call buffers for up to max_tokens tokens (owned by the caller). */
struct xattn_scratch {
    float *h;    /* [max_tokens][d] */
    float *q;    /* [max_tokens][inner] */
    float *attn; /* [max_tokens][inner] */
    float *ff;   /* [max_tokens][ff] */
    float *attn_scratch;
    size_t attn_scratch_floats;
};

/* Binds "<prefix>gated_cross_attn_layer.*" through w for text width d and
 * latent width dv. */
int xattn_load(struct wl *w, const char *prefix, int d, int dv, const struct cfg_xattn *cfg,
               struct xattn_block *out, struct fl_err *err);

/* An image's keys and values for this block: latents [n_latents][dv] ->
 * kv [n_latents][2 inner] (columns: K heads, then V heads). */
void xattn_media_kv(const struct xattn_block *b, const float *latents, int n_latents, float *kv);

/* x [n][d] in place.  row_kv[t] is the kv (n_latents rows) of the image
 * token t sees, or NULL when it sees none.  Rows may belong to different
 * sequences with different images (a batched decode step); consecutive
 * rows with the same kv share one attention task. */
void xattn_forward(const struct xattn_block *b, float *x, int n, const float *const *row_kv, int n_latents,
                   struct xattn_scratch *s);

#endif
