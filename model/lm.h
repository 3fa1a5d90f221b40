/*
 * lm.h - the language model with its gated cross-attention blocks: MPT (as
 * MosaicGPT-1B and MPT-7B) and GPT-NeoX (RedPajama-INCITE), one decoder
 * layer abstraction whose family differences are configuration.
 *
 * Objects and owners:
 *   lm_model   weights (mapped), immutable, shared by every sequence
 *   lm_media   the images of one request: each image's cross-attention keys
 *              and values for every block, computed once (lm_media_add) and
 *              shared by all sequences of the request (e.g. beams)
 *   lm_seq     one sequence: its KV cache (allocated once, n_ctx positions),
 *              the number of tokens and of <image> tokens seen
 *   lm_scratch the buffers of a forward pass over up to max_tokens tokens;
 *              one per computing thread
 * lm_forward appends tokens to a sequence and returns their logits.  It
 * allocates nothing.  One thread at a time per sequence and scratch.
 */
#ifndef FL_LM_H
#define FL_LM_H

#include "../core/err.h"
#include "../weights/config.h"
#include "../weights/st.h"

struct lm_model;
struct lm_media;
struct lm_seq;
struct lm_scratch;

/* Binds the language model and cross-attention tensors (names in
 * docs/FORMAT.md) of f for the config.  f must outlive the model. */
int lm_load(const struct st_file *f, const struct fl_config *cfg, struct lm_model **out,
            struct fl_err *err);
void lm_free(struct lm_model *m);
const struct cfg_lm *lm_config(const struct lm_model *m);

/* Room for max_images images. */
int lm_media_init(const struct lm_model *m, int max_images, struct lm_media **out, struct fl_err *err);
void lm_media_free(struct lm_media *md);
void lm_media_clear(struct lm_media *md);
int lm_media_count(const struct lm_media *md);
/* Adds one image given its Perceiver latents [num_latents][vision width]. */
int lm_media_add(const struct lm_model *m, struct lm_media *md, const float *latents, struct fl_err *err);

/* Images whose keys and values live elsewhere (the server's image cache):
 * lm_media_kv computes one image's keys and values for every block into
 * kv[lm_media_kv_floats(m)]; a media made by lm_media_init_ref holds no
 * storage, and lm_media_add_ref appends such a buffer by reference (it must
 * outlive the media's use). */
size_t lm_media_kv_floats(const struct lm_model *m);
void lm_media_kv(const struct lm_model *m, const float *latents, float *kv);
int lm_media_init_ref(const struct lm_model *m, int max_images, struct lm_media **out, struct fl_err *err);
int lm_media_add_ref(const struct lm_model *m, struct lm_media *md, const float *kv, struct fl_err *err);

/* A sequence of up to n_ctx tokens (capped by the model's max_seq_len). */
int lm_seq_init(const struct lm_model *m, int n_ctx, struct lm_seq **out, struct fl_err *err);
void lm_seq_free(struct lm_seq *s);
void lm_seq_reset(struct lm_seq *s);
int lm_seq_len(const struct lm_seq *s);
int lm_seq_capacity(const struct lm_seq *s);
/* dst becomes a copy of src (same model; dst's capacity >= src's length). */
void lm_seq_copy(struct lm_seq *dst, const struct lm_seq *src);
/* dst becomes src's first n positions (n <= src's length, dst's capacity),
 * of which n_image_tokens are <image> tokens. */
void lm_seq_copy_prefix(struct lm_seq *dst, const struct lm_seq *src, int n, int n_image_tokens);
/* Bytes of the sequence's KV cache (its capacity, not its length). */
size_t lm_seq_bytes(const struct lm_seq *s);

int lm_scratch_init(const struct lm_model *m, int max_tokens, int n_ctx, struct lm_scratch **out,
                    struct fl_err *err);
void lm_scratch_free(struct lm_scratch *s);
int lm_scratch_max_tokens(const struct lm_scratch *s);

/* Which logits a group of lm_forward_batch returns. */
enum lm_logits { LM_LOGITS_NONE, LM_LOGITS_LAST, LM_LOGITS_ALL };

/* Some tokens to append to one sequence in a batched forward pass. */
struct lm_group {
    struct lm_seq *s;
    const struct lm_media *md; /* the sequence's images (may be NULL) */
    const int *ids;
    int n;
    enum lm_logits logits;
};

/*
 * One forward pass over several sequences at once: every Linear runs as one
 * GEMM over all groups' rows, attention per sequence over its own KV cache,
 * cross-attention per row over its own sequence's latest image.  A batched
 * decode step is n_groups groups of one token; a prefill chunk can ride
 * along.  logits receives the requested rows ([vocab] each) in group order.
 * The rows must fit the scratch (sum of n <= max_tokens; FL_ELIMIT
 * otherwise); each group is checked as lm_forward checks, and nothing runs
 * unless all pass.  Results equal lm_forward's up to the rounding of a
 * different GEMM blocking.
 */
int lm_forward_batch(const struct lm_model *m, const struct lm_group *g, int n_groups, struct lm_scratch *sc,
                     float *logits, struct fl_err *err);

/*
 * Appends ids[0..n) to s and runs them.  <image> ids (tokens.media) take the
 * next image of md in order; each token attends to the latest image at or
 * before it.  logits: NULL, or [n][vocab] when all_logits, or [vocab] for
 * the last token only.  Errors: more tokens than the sequence holds (the
 * context), more <image> tokens than images, an id outside the vocabulary.
 * Long inputs are processed in chunks of the scratch's max_tokens.
 */
int lm_forward(const struct lm_model *m, struct lm_seq *s, const struct lm_media *md,
               struct lm_scratch *sc, const int *ids, int n, float *logits, int all_logits,
               struct fl_err *err);

#endif
