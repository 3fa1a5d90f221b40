/*
 * sampler.h - from a step's logits to the next token.
 *
 * The processing order (documented in docs/GENERATION.md):
 *   1. banned tokens (<image>, <PAD>) to -inf
 *   2. repetition_penalty over every token of the prompt and the output,
 *      as HF: a logit l of a seen token becomes l / p if l > 0, else l * p
 *   3. presence and frequency penalties over the output tokens, as OpenAI
 *      and vLLM: l -= presence * (count > 0) + frequency * count
 *   4. temperature 0: the first maximal logit (greedy); otherwise
 *   5. l /= temperature, then top-k (ties at the k-th value kept, as HF),
 *      top-p (HF's rule: drop the tokens whose ascending cumulative
 *      probability is <= 1 - top_p), min-p (drop p < min_p * max p), and a
 *      draw from the softmax with the request's own random stream.
 * Log-probabilities reported are those of the model's distribution after
 * step 1 (before penalties and temperature).
 */
#ifndef FL_SAMPLER_H
#define FL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

struct smp_params {
    float temperature; /* 0: greedy */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    float repetition_penalty; /* 1: off */
    float presence_penalty, frequency_penalty; /* 0: off */
    uint64_t seed;
};

/* Checks ranges; the message names the field ("temperature must be ..."). */
int smp_check(const struct smp_params *p, struct fl_err *err);
void smp_defaults(struct smp_params *p);

/* Per-sequence sampling state: the random stream and token counts. */
struct smp_state;

int smp_init(int vocab, const struct smp_params *p, struct smp_state **out, struct fl_err *err);
void smp_free(struct smp_state *s);
/* Counts a token of the prompt (prompt = 1) or of the output. */
void smp_observe(struct smp_state *s, int id, int prompt);

/* Picks the next token from logits[vocab] (modified in place).  banned:
 * ids that must never be chosen.  Returns the id; *logprob gets its
 * log-probability under the model (see above), and the top n_top
 * alternatives go to top_ids/top_lp (n_top <= 20). */
int smp_next(struct smp_state *s, float *logits, const int *banned, int n_banned, float *logprob,
             int n_top, int *top_ids, float *top_lp);

/* log_softmax of logits[n] into out[n] (out may equal logits). */
void smp_log_softmax(const float *logits, int n, float *out);

#endif
