/* flamingo.c - see flamingo.h. */
#include "flamingo.h"

#include <stdlib.h>
#include <string.h>

int fm_open(const char *path, struct fm_model **out, struct fl_err *err) {
    *out = NULL;
    struct fm_model *m = calloc(1, sizeof *m);
    if (!m) return fl_err_set(err, FL_ENOMEM, "out of memory");
    int rc = st_open(path, &m->file, err);
    if (rc == 0 && (rc = cfg_parse(st_metadata(m->file, "config"), &m->cfg, err)) < 0) fl_err_prefix(err, "%s", path);
    if (rc == 0 && !m->cfg.has_lm)
        rc = fl_err_set(err, FL_EFORMAT, "%s: not a Flamingo model (its config has no language model)", path);
    if (rc == 0) rc = clip_load(m->file, &m->cfg.vision, "vision_encoder.", &m->clip, err);
    if (rc == 0) {
        const struct cfg_vision *v = &m->cfg.vision;
        int n_media = cfg_vision_tokens(v) - (v->keep_cls ? 0 : 1);
        rc = perc_load(m->file, &m->cfg.perceiver, v->width, n_media, &m->perc, err);
    }
    if (rc == 0) rc = lm_load(m->file, &m->cfg, &m->lm, err);
    const char *tj = m->file ? st_metadata(m->file, "tokenizer") : NULL;
    if (rc == 0 && tj) {
        rc = tok_load(tj, strlen(tj), &m->tok, err);
        if (rc < 0) fl_err_prefix(err, "%s", path);
    }
    if (rc == 0 && m->tok) {
        const struct cfg_tokens *t = &m->cfg.tokens;
        if (tok_id(m->tok, "<image>") != t->media || tok_id(m->tok, "<|endofchunk|>") != t->endofchunk)
            rc = fl_err_set(err, FL_EFORMAT, "%s: the tokenizer's <image> and <|endofchunk|> ids differ from the config's",
                            path);
        else if (tok_vocab_size(m->tok) > m->cfg.lm.vocab_size)
            rc = fl_err_set(err, FL_EFORMAT, "%s: the tokenizer has %d tokens but the embedding only %d rows", path,
                            tok_vocab_size(m->tok), m->cfg.lm.vocab_size);
    }
    if (rc < 0) {
        fm_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void fm_close(struct fm_model *m) {
    if (!m) return;
    tok_free(m->tok);
    lm_free(m->lm);
    perc_free(m->perc);
    clip_free(m->clip);
    st_close(m->file);
    free(m);
}

int fm_ctx_init(const struct fm_model *m, int max_images, int max_tokens, int n_ctx, struct fm_ctx **out,
                struct fl_err *err) {
    *out = NULL;
    struct fm_ctx *c = calloc(1, sizeof *c);
    if (!c) return fl_err_set(err, FL_ENOMEM, "out of memory");
    if (max_images < 1) max_images = 1;
    c->model = m;
    c->max_images = max_images;
    c->n_ctx = n_ctx;
    const struct cfg_vision *v = &m->cfg.vision;
    const size_t n_tok = (size_t)clip_out_tokens(m->clip), W = (size_t)v->width;
    const int batch = max_images < 8 ? max_images : 8;
    int rc = clip_state_init(m->clip, batch, &c->clip, err);
    if (rc == 0) rc = perc_state_init(m->perc, batch, &c->perc, err);
    if (rc == 0) rc = lm_media_init(m->lm, max_images, &c->media, err);
    if (rc == 0) rc = lm_scratch_init(m->lm, max_tokens, n_ctx, &c->scratch, err);
    if (rc == 0) {
        c->tokens = malloc((size_t)batch * n_tok * W * sizeof(float));
        c->latents = malloc((size_t)batch * m->cfg.perceiver.num_latents * W * sizeof(float));
        if (!c->tokens || !c->latents) rc = fl_err_set(err, FL_ENOMEM, "out of memory for image buffers");
    }
    if (rc < 0) {
        fm_ctx_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void fm_ctx_free(struct fm_ctx *c) {
    if (!c) return;
    clip_state_free(c->clip);
    perc_state_free(c->perc);
    lm_media_free(c->media);
    lm_scratch_free(c->scratch);
    free(c->tokens);
    free(c->latents);
    free(c);
}

int fm_add_images(struct fm_ctx *c, const float *pixels, int n, struct fl_err *err) {
    const struct fm_model *m = c->model;
    if (lm_media_count(c->media) + n > c->max_images)
        return fl_err_set(err, FL_ELIMIT, "%d images; at most %d per request", lm_media_count(c->media) + n,
                          c->max_images);
    const int S = m->cfg.vision.image_size, W = m->cfg.vision.width, L = m->cfg.perceiver.num_latents;
    const int batch = c->max_images < 8 ? c->max_images : 8;
    for (int done = 0; done < n;) {
        int k = n - done < batch ? n - done : batch;
        clip_encode(m->clip, c->clip, pixels + (size_t)done * 3 * S * S, k, c->tokens);
        perc_forward(m->perc, c->perc, c->tokens, k, c->latents);
        for (int i = 0; i < k; i++) {
            int rc = lm_media_add(m->lm, c->media, c->latents + (size_t)i * L * W, err);
            if (rc < 0) return rc;
        }
        done += k;
    }
    return 0;
}
