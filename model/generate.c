/*
 * generate.c - see generate.h.
 *
 * Beam search keeps two sets of num_beams sequences: the running beams and
 * the next step's, each next beam built by copying its parent's KV cache and
 * running its new token.  The scorer follows transformers 4.31:
 *   per step: log_softmax of each beam's logits, banned tokens to -inf (after
 *   the log_softmax: no renormalisation), plus the beam's running score;
 *   the best 2 x num_beams of all beams x vocabulary (ties: lower beam, then
 *   lower token id); in that order an end token within the first num_beams
 *   candidates finishes a hypothesis (the sequence without the end token,
 *   scored sum / len^lp with len = prompt + generated tokens), other
 *   candidates fill the next beams; the search is done when num_beams
 *   hypotheses exist and the worst of them is at least the best candidate's
 *   sum / (len + 1)^lp.  At the end the running beams join the hypotheses
 *   (unless done) and the highest score wins, the later one on a tie.
 * Beams start with scores 0, -1e9, -1e9, ... so that the first step expands
 * the first beam only.
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gen_defaults(struct gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 32;
    smp_defaults(&p->smp);
    p->num_beams = 1;
    p->length_penalty = 1.0f;
}

int gen_check(const struct gen_params *p, struct fl_err *err) {
    if (p->max_new_tokens < 1) return fl_err_set(err, FL_EINVAL, "max_new_tokens must be at least 1");
    if (p->num_beams < 1 || p->num_beams > 16) return fl_err_set(err, FL_EINVAL, "num_beams must be in [1, 16]");
    if (!(p->length_penalty >= -10 && p->length_penalty <= 10))
        return fl_err_set(err, FL_EINVAL, "length_penalty must be in [-10, 10]");
    if (p->n_logprobs < 0 || p->n_logprobs > GEN_MAX_LOGPROBS)
        return fl_err_set(err, FL_EINVAL, "top_logprobs must be in [0, %d]", GEN_MAX_LOGPROBS);
    if (p->n_stop < 0 || p->n_stop > GEN_MAX_STOP)
        return fl_err_set(err, FL_EINVAL, "at most %d stop strings", GEN_MAX_STOP);
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0] || strlen(p->stop[i]) > 256)
            return fl_err_set(err, FL_EINVAL, "stop[%d] must be 1 to 256 bytes", i);
    return smp_check(&p->smp, err);
}

/* ---- text, stop strings and the callback -------------------------------- */

struct text_out {
    const struct tok *tok;
    const struct gen_params *p;
    struct tok_stream stream;
    char *text;
    size_t len, cap, emitted;
    int stopped;
    gen_callback cb;
    void *cb_ctx;
};

static int text_reserve(struct text_out *o, size_t more) {
    if (o->len + more + 1 <= o->cap) return 0;
    size_t cap = o->cap ? o->cap * 2 : 256;
    while (cap < o->len + more + 1) cap *= 2;
    char *t = realloc(o->text, cap);
    if (!t) return -1;
    o->text = t;
    o->cap = cap;
    return 0;
}

/* How many trailing bytes could still grow into a stop string. */
static size_t holdback(const struct text_out *o) {
    size_t hold = 0;
    for (int s = 0; s < o->p->n_stop; s++) {
        const char *stop = o->p->stop[s];
        size_t n = strlen(stop);
        for (size_t k = n - 1; k > hold; k--)
            if (k <= o->len && !memcmp(o->text + o->len - k, stop, k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Adds a token's text; returns the callback's verdict (non-zero: cancel). */
static int text_token(struct text_out *o, struct gen_step *step, int last) {
    size_t before = o->len;
    if (o->tok) {
        size_t need = tok_decode_cap(o->tok, step->id) + 16;
        if (text_reserve(o, need) < 0) return -1;
        o->len += tok_decode_next(o->tok, &o->stream, step->id, o->text + o->len, need);
        if (last) o->len += tok_decode_end(&o->stream, o->text + o->len);
    }
    size_t visible = o->len;
    for (int s = 0; s < o->p->n_stop; s++) {
        size_t n = strlen(o->p->stop[s]);
        size_t from = before >= n ? before - n + 1 : 0;
        for (size_t at = from; at + n <= o->len; at++)
            if (!memcmp(o->text + at, o->p->stop[s], n)) {
                if (at < visible) visible = at;
                o->stopped = 1;
                break;
            }
    }
    if (o->stopped) o->len = visible;
    else if (!last) visible = o->len - holdback(o);
    step->text = o->text + o->emitted;
    step->text_len = visible > o->emitted ? visible - o->emitted : 0;
    o->emitted += step->text_len;
    return o->cb ? o->cb(o->cb_ctx, step) : 0;
}

/* At the end: the decoder's pending bytes (an unfinished character becomes
 * U+FFFD, as HF decodes it) and any held-back text go out as a last step
 * with id -1. */
static int text_finish(struct text_out *o) {
    if (o->stopped) return 0;
    if (o->tok) {
        if (text_reserve(o, 16) < 0) return -1;
        o->len += tok_decode_end(&o->stream, o->text + o->len);
    }
    if (o->len <= o->emitted) return 0;
    struct gen_step step = {.id = -1, .text = o->text + o->emitted, .text_len = o->len - o->emitted};
    o->emitted = o->len;
    return o->cb ? o->cb(o->cb_ctx, &step) : 0;
}

/* ---- greedy and sampling -------------------------------------------------- */

static int is_end(const struct cfg_tokens *t, int id) { return id == t->endofchunk || id == t->eos; }

static int run_sampling(struct fm_ctx *c, struct lm_seq *seq, const int *prompt, int n_prompt,
                        const struct gen_params *p, struct text_out *o, int *out_ids, int cap,
                        struct gen_result *res, struct fl_err *err) {
    const struct fm_model *m = c->model;
    const struct cfg_tokens *tk = &m->cfg.tokens;
    const int V = m->cfg.lm.vocab_size;
    const int banned[2] = {tk->media, tk->pad};
    float *logits = malloc((size_t)V * sizeof *logits);
    struct smp_state *smp = NULL;
    int rc = logits ? smp_init(V, &p->smp, &smp, err) : fl_err_set(err, FL_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < n_prompt; i++) smp_observe(smp, prompt[i], 1);
    if (rc == 0) rc = lm_forward(m->lm, seq, c->media, c->scratch, prompt, n_prompt, logits, 0, err);
    res->finish = GEN_FINISH_LENGTH;
    for (int i = 0; rc == 0 && i < p->max_new_tokens; i++) {
        struct gen_step step = {0};
        step.n_top = p->n_logprobs;
        step.id = smp_next(smp, logits, banned, 2, &step.logprob, p->n_logprobs, step.top_ids, step.top_logprobs);
        if (is_end(tk, step.id)) {
            res->finish = GEN_FINISH_STOP;
            break;
        }
        if (out_ids && res->n_generated < cap) out_ids[res->n_generated] = step.id;
        res->n_generated++;
        int last = i + 1 == p->max_new_tokens;
        if (text_token(o, &step, last)) {
            res->finish = GEN_FINISH_CANCEL;
            break;
        }
        if (o->stopped) {
            res->finish = GEN_FINISH_STOP;
            break;
        }
        if (!last) rc = lm_forward(m->lm, seq, c->media, c->scratch, &step.id, 1, logits, 0, err);
    }
    if (rc == 0 && res->finish != GEN_FINISH_CANCEL && text_finish(o)) res->finish = GEN_FINISH_CANCEL;
    smp_free(smp);
    free(logits);
    return rc;
}

/* ---- beam search ---------------------------------------------------------- */

struct hyp {
    float score;
    int len;  /* generated tokens */
    int *ids; /* [max_new_tokens] */
};

struct hyps {
    struct hyp *h; /* [B] */
    int n, B;
    float worst;
    float lp;
};

/* BeamHypotheses.add: seq_len counts the prompt (transformers 4.31). */
static void hyps_add(struct hyps *hs, const int *ids, int len, int seq_len, float sum_logprobs) {
    float score = sum_logprobs / powf((float)seq_len, hs->lp);
    if (hs->n == hs->B && !(score > hs->worst)) return;
    if (hs->n < hs->B) {
        struct hyp *h = &hs->h[hs->n++];
        h->score = score, h->len = len;
        memcpy(h->ids, ids, (size_t)len * sizeof *ids);
        hs->worst = hs->n == 1 ? score : fminf(score, hs->worst);
        return;
    }
    /* full: the new one enters, the lowest (first on ties) leaves; the list
     * keeps its order, the newcomer last */
    int low = 0;
    for (int i = 1; i < hs->n; i++)
        if (hs->h[i].score < hs->h[low].score) low = i;
    int *buf = hs->h[low].ids;
    memmove(&hs->h[low], &hs->h[low + 1], (size_t)(hs->n - 1 - low) * sizeof *hs->h);
    struct hyp *h = &hs->h[hs->n - 1];
    h->ids = buf, h->score = score, h->len = len;
    memcpy(h->ids, ids, (size_t)len * sizeof *ids);
    hs->worst = hs->h[0].score;
    for (int i = 1; i < hs->n; i++) hs->worst = fminf(hs->worst, hs->h[i].score);
}

static int hyps_done(const struct hyps *hs, float best_sum, int cur_len) {
    if (hs->n < hs->B) return 0;
    return hs->worst >= best_sum / powf((float)cur_len, hs->lp);
}

struct cand {
    float score;
    int beam, id;
};

static int run_beams(struct fm_ctx *c, const int *prompt, int n_prompt, const struct gen_params *p,
                     struct text_out *o, int *out_ids, int cap, int n_ctx, struct gen_result *res,
                     struct fl_err *err) {
    const struct fm_model *m = c->model;
    const struct cfg_tokens *tk = &m->cfg.tokens;
    const int V = m->cfg.lm.vocab_size, B = p->num_beams, T = p->max_new_tokens, K = 2 * B;
    struct lm_seq *cur[16] = {0}, *nxt[16] = {0};
    float *logits = malloc((size_t)B * V * sizeof *logits), score[16], new_score[16];
    int *toks = malloc((size_t)B * T * sizeof *toks), *new_toks = malloc((size_t)B * T * sizeof *toks);
    struct hyps hs = {.h = calloc((size_t)B, sizeof *hs.h), .B = B, .worst = 1e9f, .lp = p->length_penalty};
    struct cand *top = malloc((size_t)(K + 1) * sizeof *top);
    int rc = 0;
    if (!logits || !toks || !new_toks || !hs.h || !top) rc = fl_err_set(err, FL_ENOMEM, "out of memory for beam search");
    for (int b = 0; rc == 0 && b < B; b++) {
        if (!(hs.h[b].ids = malloc((size_t)T * sizeof(int)))) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        if (rc == 0) rc = lm_seq_init(m->lm, n_ctx, &cur[b], err);
        if (rc == 0) rc = lm_seq_init(m->lm, n_ctx, &nxt[b], err);
    }
    /* Prefill once; every beam starts from the same prompt and logits. */
    if (rc == 0) rc = lm_forward(m->lm, cur[0], c->media, c->scratch, prompt, n_prompt, logits, 0, err);
    for (int b = 1; rc == 0 && b < B; b++) {
        lm_seq_copy(cur[b], cur[0]);
        memcpy(logits + (size_t)b * V, logits, (size_t)V * sizeof *logits);
    }
    for (int b = 0; b < B; b++) score[b] = b ? -1e9f : 0.0f;
    int n_gen = 0, done = 0;
    while (rc == 0) {
        /* candidates: the best K of (beam, token) by running score + log-prob */
        int n_top = 0;
        for (int b = 0; b < B; b++) {
            float *lp = logits + (size_t)b * V;
            smp_log_softmax(lp, V, lp);
            lp[tk->media] = -INFINITY;
            lp[tk->pad] = -INFINITY;
            for (int v = 0; v < V; v++) {
                float s = lp[v] + score[b];
                if (n_top == K && !(s > top[K - 1].score)) continue;
                int j = n_top < K ? n_top++ : K - 1;
                while (j > 0 && top[j - 1].score < s) top[j] = top[j - 1], j--;
                top[j] = (struct cand){s, b, v};
            }
        }
        /* BeamSearchScorer.process */
        const int seq_len = n_prompt + n_gen; /* without the token being chosen */
        int j = 0, src[16], tok[16];
        for (int r = 0; r < n_top && j < B; r++) {
            if (is_end(tk, top[r].id)) {
                if (r >= B) continue;
                hyps_add(&hs, toks + (size_t)top[r].beam * T, n_gen, seq_len, top[r].score);
            } else {
                src[j] = top[r].beam, tok[j] = top[r].id, new_score[j] = top[r].score;
                j++;
            }
        }
        if (j < B) {
            rc = fl_err_set(err, FL_EINVAL, "beam search ran out of candidates (vocabulary too small for %d beams)", B);
            break;
        }
        done = done || hyps_done(&hs, top[0].score, seq_len + 1);
        for (int k = 0; k < B; k++) {
            memcpy(new_toks + (size_t)k * T, toks + (size_t)src[k] * T, (size_t)n_gen * sizeof *toks);
            new_toks[(size_t)k * T + n_gen] = tok[k];
        }
        memcpy(toks, new_toks, (size_t)B * T * sizeof *toks);
        memcpy(score, new_score, sizeof score);
        n_gen++;
        if (done || n_gen >= T) break;
        /* the next beams: copy the parent's cache, run the new token */
        for (int k = 0; k < B && rc == 0; k++) {
            lm_seq_copy(nxt[k], cur[src[k]]);
            rc = lm_forward(m->lm, nxt[k], c->media, c->scratch, &tok[k], 1, logits + (size_t)k * V, 0, err);
        }
        for (int k = 0; k < B; k++) {
            struct lm_seq *t = cur[k];
            cur[k] = nxt[k], nxt[k] = t;
        }
    }
    if (rc == 0) {
        if (!done)
            for (int b = 0; b < B; b++) hyps_add(&hs, toks + (size_t)b * T, n_gen, n_prompt + n_gen, score[b]);
        int best = 0; /* the highest score; the later entry on a tie */
        for (int i = 1; i < hs.n; i++)
            if (hs.h[i].score >= hs.h[best].score) best = i;
        const struct hyp *w = &hs.h[best];
        res->finish = w->len < T ? GEN_FINISH_STOP : GEN_FINISH_LENGTH;
        for (int i = 0; i < w->len; i++) {
            struct gen_step step = {.id = w->ids[i]};
            if (out_ids && res->n_generated < cap) out_ids[res->n_generated] = w->ids[i];
            res->n_generated++;
            if (text_token(o, &step, i + 1 == w->len)) {
                res->finish = GEN_FINISH_CANCEL;
                break;
            }
            if (o->stopped) {
                res->finish = GEN_FINISH_STOP;
                break;
            }
        }
        if (res->finish != GEN_FINISH_CANCEL && text_finish(o)) res->finish = GEN_FINISH_CANCEL;
    }
    for (int b = 0; b < B; b++) {
        lm_seq_free(cur[b]);
        lm_seq_free(nxt[b]);
        if (hs.h) free(hs.h[b].ids);
    }
    free(hs.h);
    free(top);
    free(logits);
    free(toks);
    free(new_toks);
    return rc;
}

int gen_run(struct fm_ctx *c, const int *prompt, int n_prompt, const struct gen_params *p, gen_callback cb,
            void *cb_ctx, int *out_ids, int cap, struct gen_result *res, struct fl_err *err) {
    const struct fm_model *m = c->model;
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    int rc = gen_check(p, err);
    if (rc < 0) return rc;
    if (n_prompt < 1) return fl_err_set(err, FL_EINVAL, "the prompt is empty");
    if (p->n_stop && !m->tok) return fl_err_set(err, FL_EINVAL, "stop strings need a tokenizer in the model file");
    const int max_ctx = m->cfg.lm.max_seq_len < c->n_ctx ? m->cfg.lm.max_seq_len : c->n_ctx;
    if ((long)n_prompt + p->max_new_tokens > max_ctx)
        return fl_err_set(err, FL_ELIMIT, "the prompt's %d tokens and max_new_tokens %d exceed the context of %d",
                          n_prompt, p->max_new_tokens, max_ctx);
    int media = 0;
    for (int i = 0; i < n_prompt; i++) media += prompt[i] == m->cfg.tokens.media;
    if (media != lm_media_count(c->media))
        return fl_err_set(err, FL_EINVAL, "the prompt has %d <image> markers but %d images were given", media,
                          lm_media_count(c->media));
    const int n_ctx = n_prompt + p->max_new_tokens;
    struct text_out o = {.tok = m->tok, .p = p, .cb = cb, .cb_ctx = cb_ctx};
    if (p->num_beams > 1) {
        rc = run_beams(c, prompt, n_prompt, p, &o, out_ids, cap, n_ctx, res, err);
    } else {
        struct lm_seq *seq = NULL;
        rc = lm_seq_init(m->lm, n_ctx, &seq, err);
        if (rc == 0) rc = run_sampling(c, seq, prompt, n_prompt, p, &o, out_ids, cap, res, err);
        lm_seq_free(seq);
    }
    free(o.text);
    return rc;
}
