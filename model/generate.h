/*
 * generate.h - a prompt (token ids, images already added to the context)
 * in, new tokens out: prefill, then one token at a time from the KV cache.
 *
 * Modes, as HuggingFace generate() runs them under OpenFlamingo:
 *   num_beams 1, temperature 0   greedy (the first maximal logit)
 *   num_beams 1, temperature > 0 sampling (sampler.h: penalties, top-k/p, min-p)
 *   num_beams > 1                beam search as transformers 4.31's
 *                                BeamSearchScorer (early_stopping false,
 *                                length_penalty over the whole sequence,
 *                                prompt included), deterministic
 * The end tokens are <|endofchunk|> and the end-of-text token; neither is
 * part of the output.  <image> and <PAD> are never produced.  Stop strings
 * end the generation where they first appear in the text (the text is cut
 * there); streamed text is held back while it could still be the start of
 * a stop string.  docs/GENERATION.md has the details.
 */
#ifndef FL_GENERATE_H
#define FL_GENERATE_H

#include <stddef.h>

#include "../core/err.h"
#include "flamingo.h"
#include "sampler.h"

#define GEN_MAX_STOP     8
#define GEN_MAX_LOGPROBS 20

enum gen_finish {
    GEN_FINISH_STOP,   /* an end token or a stop string */
    GEN_FINISH_LENGTH, /* max_new_tokens, or the context is full */
    GEN_FINISH_CANCEL, /* the callback asked to stop */
};

struct gen_params {
    int max_new_tokens;
    struct smp_params smp;
    int num_beams;        /* 1: greedy or sampling */
    float length_penalty; /* beam search: score / length^lp; HF's default 1 */
    const char *stop[GEN_MAX_STOP];
    int n_stop;
    int n_logprobs; /* 0..20 alternatives per token (not with beams) */
};

void gen_defaults(struct gen_params *p);
/* Checks every field; the message names it ("max_new_tokens must be ..."). */
int gen_check(const struct gen_params *p, struct fl_err *err);

/* One generated token, with the text it makes visible (possibly empty:
 * part of a UTF-8 character, or held back for a stop string).  A last step
 * with id -1 carries text that only the end releases (held-back text, or
 * an unfinished character as U+FFFD). */
struct gen_step {
    int id;
    float logprob;
    int n_top;
    int top_ids[GEN_MAX_LOGPROBS];
    float top_logprobs[GEN_MAX_LOGPROBS];
    const char *text;
    size_t text_len;
};

/* Called for every token (greedy and sampling), or once per token of the
 * winner at the end (beam search).  A non-zero return cancels. */
typedef int (*gen_callback)(void *ctx, const struct gen_step *step);

struct gen_result {
    int n_prompt, n_generated;
    enum gen_finish finish;
};

/*
 * A generation driven one forward pass at a time, so that a caller can run
 * the passes of many generations together (the server's engine batches
 * them through lm_forward_batch).  The loop:
 *
 *   gen_seq_start(...)
 *   while ((n = gen_seq_next(g, max_rows, groups, cap)) > 0) {
 *       lm_forward_batch(lm, groups, n, scratch, logits, err)   (maybe with other groups)
 *       if (gen_seq_advance(g, logits, err) != 0) break;         (1: done, < 0: error)
 *   }
 *
 * gen_seq_next gives the prompt in chunks of at most max_rows tokens (the
 * last chunk asks for its last logits), then one token per beam per step.
 * gen_seq_advance takes the logits rows those groups asked for, in order
 * (none for a prompt chunk that is not the last), picks tokens, and calls
 * the callback.  The generation owns its sequences (KV caches); md must
 * outlive it.  Errors of gen_seq_start: as gen_run's.
 */
struct gen_seq;

int gen_seq_start(const struct fm_model *m, const struct lm_media *md, const int *prompt, int n_prompt,
                  const struct gen_params *p, gen_callback cb, void *cb_ctx, struct gen_seq **out,
                  struct fl_err *err);
void gen_seq_free(struct gen_seq *g);
int gen_seq_next(const struct gen_seq *g, int max_rows, struct lm_group *out, int cap);
int gen_seq_advance(struct gen_seq *g, const float *logits, struct fl_err *err);
int gen_seq_done(const struct gen_seq *g);
/* Still running the prompt (the next groups are a prompt chunk)? */
int gen_seq_in_prompt(const struct gen_seq *g);
/* The rows of the next decode step (1, or num_beams). */
int gen_seq_width(const struct gen_seq *g);
const struct gen_result *gen_seq_result(const struct gen_seq *g);
/* The generated ids so far (beam search: the winner's, once done). */
const int *gen_seq_ids(const struct gen_seq *g, int *n);

/*
 * Prefix reuse (the server's prefix cache).  gen_seq_reuse, called before
 * the first gen_seq_next, copies the first n positions of src, a sequence
 * that ran the same tokens with the same images, and starts the prompt
 * there; it keeps at least the prompt's last token to run (its logits
 * start the generation) and returns the positions taken.
 * gen_seq_detach_kv hands over the KV cache of a finished greedy or
 * sampling generation (NULL for beam search) and sets *tokens to a
 * malloc'd copy of the tokens its positions hold: the prompt, then the
 * generated tokens that were run.
 */
int gen_seq_reuse(struct gen_seq *g, const struct lm_seq *src, int n);
struct lm_seq *gen_seq_detach_kv(struct gen_seq *g, int **tokens);

/*
 * Generates after prompt[n_prompt] with the images already in c->media.
 * out_ids (room for cap ids; may be NULL) receives the generated tokens.
 * Errors: a prompt plus max_new_tokens over the context (FL_ELIMIT, the
 * message says both numbers), more <image> tokens than images, bad params.
 */
int gen_run(struct fm_ctx *c, const int *prompt, int n_prompt, const struct gen_params *p, gen_callback cb,
            void *cb_ctx, int *out_ids, int cap, struct gen_result *res, struct fl_err *err);

#endif
