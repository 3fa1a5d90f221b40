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

#define GEN_MAX_STOP 8
#define GEN_MAX_LOGPROBS 20

enum gen_finish {
    GEN_FINISH_STOP,    /* an end token or a stop string */
    GEN_FINISH_LENGTH,  /* max_new_tokens, or the context is full */
    GEN_FINISH_CANCEL,  /* the callback asked to stop */
};

struct gen_params {
    int max_new_tokens;
    struct smp_params smp;
    int num_beams;        /* 1: greedy or sampling */
    float length_penalty; /* beam search: score / length^lp; HF's default 1 */
    const char *stop[GEN_MAX_STOP];
    int n_stop;
    int n_logprobs;       /* 0..20 alternatives per token (not with beams) */
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
 * Generates after prompt[n_prompt] with the images already in c->media.
 * out_ids (room for cap ids; may be NULL) receives the generated tokens.
 * Errors: a prompt plus max_new_tokens over the context (FL_ELIMIT, the
 * message says both numbers), more <image> tokens than images, bad params.
 */
int gen_run(struct fm_ctx *c, const int *prompt, int n_prompt, const struct gen_params *p, gen_callback cb,
            void *cb_ctx, int *out_ids, int cap, struct gen_result *res, struct fl_err *err);

#endif
