/*
 * flamingo.h - a whole Flamingo model: the file, its config, the vision
 * tower, the Perceiver, the language model and the tokenizer, plus the
 * per-request work area that turns images into cross-attention keys.
 *
 *   fm_model  immutable after fm_open; shared by every request
 *   fm_ctx    one computing thread's buffers: vision and Perceiver scratch,
 *             the request's images (lm_media) and the LM scratch
 */
#ifndef FL_FLAMINGO_H
#define FL_FLAMINGO_H

#include "../core/err.h"
#include "../vision/clip.h"
#include "../weights/config.h"
#include "../weights/st.h"
#include "lm.h"
#include "perceiver.h"
#include "tokenizer.h"

struct fm_model {
    struct st_file *file;
    struct fl_config cfg;
    struct clip_model *clip;
    struct perc_model *perc;
    struct lm_model *lm;
    struct tok *tok; /* NULL when the file carries no tokenizer */
};

/* Opens a model file with a language side.  Errors name the file and what
 * is missing (a vision-only file is "not a Flamingo model"). */
int fm_open(const char *path, struct fm_model **out, struct fl_err *err);
void fm_close(struct fm_model *m);

struct fm_ctx {
    const struct fm_model *model;
    int max_images, n_ctx;
    struct clip_state *clip;
    struct perc_state *perc;
    float *tokens;  /* [max_images][vision tokens][vision width] */
    float *latents; /* [max_images][num_latents][vision width] */
    struct lm_media *media;
    struct lm_scratch *scratch;
};

/* Buffers for up to max_images images per request, forward passes of up to
 * max_tokens tokens and sequences of up to n_ctx tokens (create after
 * mat_init). */
int fm_ctx_init(const struct fm_model *m, int max_images, int max_tokens, int n_ctx, struct fm_ctx **out,
                struct fl_err *err);
void fm_ctx_free(struct fm_ctx *c);

/* Encodes n preprocessed images (pixels [n][3][S][S]) through the vision
 * tower and the Perceiver and appends their cross-attention keys and values
 * to c->media.  Images beyond max_images are an error. */
int fm_add_images(struct fm_ctx *c, const float *pixels, int n, struct fl_err *err);

#endif
