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
    if (p->num_beams < 1 || p->num_beams > 16)
        return fl_err_set(err, FL_EINVAL, "num_beams must be in [1, 16]");
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
    while (cap < o->len + more + 1)
        cap *= 2;
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
    if (o->stopped)
        o->len = visible;
    else if (!last)
        visible = o->len - holdback(o);
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

/* ---- the generation state machine --------------------------------------- */

static int is_end(const struct cfg_tokens *t, int id) { return id == t->endofchunk || id == t->eos; }

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
    for (int i = 1; i < hs->n; i++)
        hs->worst = fminf(hs->worst, hs->h[i].score);
}

static int hyps_done(const struct hyps *hs, float best_sum, int cur_len) {
    if (hs->n < hs->B) return 0;
    return hs->worst >= best_sum / powf((float)cur_len, hs->lp);
}

struct cand {
    float score;
    int beam, id;
};

enum phase { PH_PREFILL, PH_DECODE, PH_DONE };

struct gen_seq {
    const struct fm_model *m;
    const struct lm_media *md;
    struct gen_params p;
    char *stop_buf; /* the stop strings, copied */
    int *prompt, n_prompt, prefilled;
    enum phase phase;
    int B; /* sequences: 1, or num_beams */
    struct lm_seq *cur[16], *nxt[16];
    float *logits;    /* [B][V] work buffer */
    int *gen, n_gen;  /* greedy / sampling: the generated ids; beams: the winner's at the end */
    int next_tok[16]; /* the tokens the next decode step runs, one per beam */
    /* sampling */
    struct smp_state *smp;
    /* beams */
    float score[16];
    int *toks, *new_toks; /* [B][max_new_tokens] */
    struct hyps hs;
    struct cand *top;
    int done;
    struct text_out o;
    struct gen_result res;
};

void gen_seq_free(struct gen_seq *g) {
    if (!g) return;
    for (int b = 0; b < 16; b++) {
        lm_seq_free(g->cur[b]);
        lm_seq_free(g->nxt[b]);
    }
    if (g->hs.h)
        for (int b = 0; b < g->B; b++)
            free(g->hs.h[b].ids);
    free(g->hs.h);
    free(g->top);
    free(g->toks);
    free(g->new_toks);
    free(g->logits);
    free(g->gen);
    free(g->prompt);
    free(g->stop_buf);
    smp_free(g->smp);
    free(g->o.text);
    free(g);
}

int gen_seq_start(const struct fm_model *m, const struct lm_media *md, const int *prompt, int n_prompt,
                  const struct gen_params *p, gen_callback cb, void *cb_ctx, struct gen_seq **out,
                  struct fl_err *err) {
    *out = NULL;
    int rc = gen_check(p, err);
    if (rc < 0) return rc;
    if (n_prompt < 1) return fl_err_set(err, FL_EINVAL, "the prompt is empty");
    if (p->n_stop && !m->tok)
        return fl_err_set(err, FL_EINVAL, "stop strings need a tokenizer in the model file");
    const int max_ctx = m->cfg.lm.max_seq_len;
    if ((long)n_prompt + p->max_new_tokens > max_ctx)
        return fl_err_set(err, FL_ELIMIT,
                          "the prompt's %d tokens and max_new_tokens %d exceed the context of %d", n_prompt,
                          p->max_new_tokens, max_ctx);
    int media = 0;
    for (int i = 0; i < n_prompt; i++) {
        if (prompt[i] < 0 || prompt[i] >= m->cfg.lm.vocab_size)
            return fl_err_set(err, FL_EINVAL, "token id %d outside the vocabulary", prompt[i]);
        media += prompt[i] == m->cfg.tokens.media;
    }
    if (media != lm_media_count(md))
        return fl_err_set(err, FL_EINVAL, "the prompt has %d <image> markers but %d images were given", media,
                          lm_media_count(md));
    struct gen_seq *g = calloc(1, sizeof *g);
    if (!g) return fl_err_set(err, FL_ENOMEM, "out of memory for a generation");
    const int V = m->cfg.lm.vocab_size, T = p->max_new_tokens, n_ctx = n_prompt + T;
    g->m = m, g->md = md, g->p = *p, g->n_prompt = n_prompt;
    g->B = p->num_beams;
    g->res.n_prompt = n_prompt;
    size_t stop_bytes = 0;
    for (int i = 0; i < p->n_stop; i++)
        stop_bytes += strlen(p->stop[i]) + 1;
    g->stop_buf = malloc(stop_bytes + 1);
    g->prompt = malloc((size_t)n_prompt * sizeof *g->prompt);
    g->logits = malloc((size_t)g->B * V * sizeof *g->logits);
    g->gen = malloc((size_t)T * sizeof *g->gen);
    if (!g->stop_buf || !g->prompt || !g->logits || !g->gen) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
    if (rc == 0) {
        char *at = g->stop_buf;
        for (int i = 0; i < p->n_stop; i++) {
            size_t n = strlen(p->stop[i]) + 1;
            memcpy(at, p->stop[i], n);
            g->p.stop[i] = at;
            at += n;
        }
        memcpy(g->prompt, prompt, (size_t)n_prompt * sizeof *prompt);
    }
    for (int b = 0; rc == 0 && b < g->B; b++) {
        rc = lm_seq_init(m->lm, n_ctx, &g->cur[b], err);
        if (rc == 0 && g->B > 1) rc = lm_seq_init(m->lm, n_ctx, &g->nxt[b], err);
    }
    if (rc == 0 && g->B == 1) {
        rc = smp_init(V, &p->smp, &g->smp, err);
        for (int i = 0; rc == 0 && i < n_prompt; i++)
            smp_observe(g->smp, prompt[i], 1);
    }
    if (rc == 0 && g->B > 1) {
        const int K = 2 * g->B;
        g->toks = malloc((size_t)g->B * T * sizeof *g->toks);
        g->new_toks = malloc((size_t)g->B * T * sizeof *g->toks);
        g->hs = (struct hyps){
            .h = calloc((size_t)g->B, sizeof *g->hs.h), .B = g->B, .worst = 1e9f, .lp = p->length_penalty};
        g->top = malloc((size_t)(K + 1) * sizeof *g->top);
        if (!g->toks || !g->new_toks || !g->hs.h || !g->top) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        for (int b = 0; rc == 0 && b < g->B; b++)
            if (!(g->hs.h[b].ids = malloc((size_t)T * sizeof(int))))
                rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        for (int b = 0; b < g->B; b++)
            g->score[b] = b ? -1e9f : 0.0f;
    }
    g->o = (struct text_out){.tok = m->tok, .p = &g->p, .cb = cb, .cb_ctx = cb_ctx};
    if (rc < 0) {
        gen_seq_free(g);
        return rc;
    }
    g->res.finish = GEN_FINISH_LENGTH;
    *out = g;
    return 0;
}

int gen_seq_next(const struct gen_seq *g, int max_rows, struct lm_group *out, int cap) {
    if (g->phase == PH_DONE || max_rows < 1 || cap < 1) return 0;
    if (g->phase == PH_PREFILL) {
        int left = g->n_prompt - g->prefilled, n = left < max_rows ? left : max_rows;
        out[0] = (struct lm_group){g->cur[0], g->md, g->prompt + g->prefilled, n,
                                   n == left ? LM_LOGITS_LAST : LM_LOGITS_NONE};
        return 1;
    }
    int k = 0;
    for (int b = 0; b < g->B && k < cap && k < max_rows; b++)
        out[k++] = (struct lm_group){g->cur[b], g->md, &g->next_tok[b], 1, LM_LOGITS_LAST};
    return k;
}

int gen_seq_done(const struct gen_seq *g) { return g->phase == PH_DONE; }
int gen_seq_in_prompt(const struct gen_seq *g) { return g->phase == PH_PREFILL; }
int gen_seq_width(const struct gen_seq *g) { return g->B; }
const struct gen_result *gen_seq_result(const struct gen_seq *g) { return &g->res; }
const int *gen_seq_ids(const struct gen_seq *g, int *n) {
    *n = g->n_gen;
    return g->gen;
}

int gen_seq_reuse(struct gen_seq *g, const struct lm_seq *src, int n) {
    if (g->phase != PH_PREFILL || g->prefilled || lm_seq_len(g->cur[0])) return 0;
    if (n > g->n_prompt - 1) n = g->n_prompt - 1;
    if (n > lm_seq_len(src)) n = lm_seq_len(src);
    if (n <= 0) return 0;
    int images = 0;
    for (int i = 0; i < n; i++)
        images += g->prompt[i] == g->m->cfg.tokens.media;
    lm_seq_copy_prefix(g->cur[0], src, n, images);
    g->prefilled = n;
    return n;
}

struct lm_seq *gen_seq_detach_kv(struct gen_seq *g, int **tokens) {
    *tokens = NULL;
    if (g->B != 1 || !g->cur[0]) return NULL;
    const int len = lm_seq_len(g->cur[0]);
    if (len < 1 || len > g->n_prompt + g->n_gen) return NULL;
    int *t = malloc((size_t)len * sizeof *t);
    if (!t) return NULL;
    const int np = len < g->n_prompt ? len : g->n_prompt;
    memcpy(t, g->prompt, (size_t)np * sizeof *t);
    if (len > np) memcpy(t + np, g->gen, (size_t)(len - np) * sizeof *t);
    struct lm_seq *s = g->cur[0];
    g->cur[0] = NULL;
    *tokens = t;
    return s;
}

/* Greedy / sampling: one token from logits; the text and the callback. */
static int sample_step(struct gen_seq *g, float *logits) {
    const struct cfg_tokens *tk = &g->m->cfg.tokens;
    const int banned[2] = {tk->media, tk->pad};
    struct gen_step step = {0};
    step.n_top = g->p.n_logprobs;
    step.id =
        smp_next(g->smp, logits, banned, 2, &step.logprob, g->p.n_logprobs, step.top_ids, step.top_logprobs);
    if (is_end(tk, step.id)) {
        g->res.finish = GEN_FINISH_STOP;
        return 1;
    }
    g->gen[g->n_gen++] = step.id;
    g->res.n_generated++;
    const int last = g->n_gen == g->p.max_new_tokens;
    if (text_token(&g->o, &step, last)) {
        g->res.finish = GEN_FINISH_CANCEL;
        return 1;
    }
    if (g->o.stopped) {
        g->res.finish = GEN_FINISH_STOP;
        return 1;
    }
    if (last) return 1; /* finish stays LENGTH */
    g->next_tok[0] = step.id;
    return 0;
}

/* Beam search: one BeamSearchScorer step over the beams' logits [B][V]. */
static int beam_step(struct gen_seq *g, float *logits, struct fl_err *err) {
    const struct cfg_tokens *tk = &g->m->cfg.tokens;
    const int V = g->m->cfg.lm.vocab_size, B = g->B, T = g->p.max_new_tokens, K = 2 * B;
    struct cand *top = g->top;
    int n_top = 0;
    for (int b = 0; b < B; b++) {
        float *lp = logits + (size_t)b * V;
        smp_log_softmax(lp, V, lp);
        lp[tk->media] = -INFINITY;
        lp[tk->pad] = -INFINITY;
        for (int v = 0; v < V; v++) {
            float s = lp[v] + g->score[b];
            if (n_top == K && !(s > top[K - 1].score)) continue;
            int j = n_top < K ? n_top++ : K - 1;
            while (j > 0 && top[j - 1].score < s)
                top[j] = top[j - 1], j--;
            top[j] = (struct cand){s, b, v};
        }
    }
    const int seq_len = g->n_prompt + g->n_gen; /* without the token being chosen */
    int j = 0, src[16];
    float new_score[16];
    for (int r = 0; r < n_top && j < B; r++) {
        if (is_end(tk, top[r].id)) {
            if (r >= B) continue;
            hyps_add(&g->hs, g->toks + (size_t)top[r].beam * T, g->n_gen, seq_len, top[r].score);
        } else {
            src[j] = top[r].beam, g->next_tok[j] = top[r].id, new_score[j] = top[r].score;
            j++;
        }
    }
    if (j < B)
        return fl_err_set(err, FL_EINVAL,
                          "beam search ran out of candidates (vocabulary too small for %d beams)", B);
    g->done = g->done || hyps_done(&g->hs, top[0].score, seq_len + 1);
    for (int k = 0; k < B; k++) {
        memcpy(g->new_toks + (size_t)k * T, g->toks + (size_t)src[k] * T, (size_t)g->n_gen * sizeof *g->toks);
        g->new_toks[(size_t)k * T + g->n_gen] = g->next_tok[k];
    }
    memcpy(g->toks, g->new_toks, (size_t)B * T * sizeof *g->toks);
    memcpy(g->score, new_score, sizeof new_score);
    g->n_gen++;
    if (g->done || g->n_gen >= T) return 1;
    /* the next beams: copies of their parents' caches; the next pass runs their new tokens */
    for (int k = 0; k < B; k++)
        lm_seq_copy(g->nxt[k], g->cur[src[k]]);
    for (int k = 0; k < B; k++) {
        struct lm_seq *t = g->cur[k];
        g->cur[k] = g->nxt[k], g->nxt[k] = t;
    }
    return 0;
}

/* The end of a beam search: the best hypothesis, streamed through the text. */
static void beam_finish(struct gen_seq *g) {
    const int B = g->B, T = g->p.max_new_tokens, n_gen = g->n_gen;
    if (!g->done)
        for (int b = 0; b < B; b++)
            hyps_add(&g->hs, g->toks + (size_t)b * T, n_gen, g->n_prompt + n_gen, g->score[b]);
    int best = 0; /* the highest score; the later entry on a tie */
    for (int i = 1; i < g->hs.n; i++)
        if (g->hs.h[i].score >= g->hs.h[best].score) best = i;
    const struct hyp *w = &g->hs.h[best];
    g->res.finish = w->len < T ? GEN_FINISH_STOP : GEN_FINISH_LENGTH;
    g->n_gen = 0;
    for (int i = 0; i < w->len; i++) {
        struct gen_step step = {.id = w->ids[i]};
        g->gen[g->n_gen++] = w->ids[i];
        g->res.n_generated++;
        if (text_token(&g->o, &step, i + 1 == w->len)) {
            g->res.finish = GEN_FINISH_CANCEL;
            return;
        }
        if (g->o.stopped) {
            g->res.finish = GEN_FINISH_STOP;
            return;
        }
    }
}

int gen_seq_advance(struct gen_seq *g, const float *logits, struct fl_err *err) {
    const size_t V = (size_t)g->m->cfg.lm.vocab_size;
    if (g->phase == PH_DONE) return 1;
    int over;
    if (g->phase == PH_PREFILL) {
        g->prefilled = lm_seq_len(g->cur[0]);
        if (g->prefilled < g->n_prompt) return 0; /* more of the prompt to run */
        g->phase = PH_DECODE;
        for (int b = 0; b < g->B; b++) {
            if (b) lm_seq_copy(g->cur[b], g->cur[0]); /* every beam starts from the prompt */
            memcpy(g->logits + b * V, logits, V * sizeof *logits);
        }
    } else {
        memcpy(g->logits, logits, (size_t)g->B * V * sizeof *logits);
    }
    if (g->B == 1) {
        over = sample_step(g, g->logits);
    } else {
        over = beam_step(g, g->logits, err);
        if (over == 1) beam_finish(g);
    }
    if (over == 0) return 0;
    g->phase = PH_DONE;
    if (over < 0) return over;
    if (g->res.finish != GEN_FINISH_CANCEL && text_finish(&g->o)) g->res.finish = GEN_FINISH_CANCEL;
    return 1;
}

/* Runs the groups through the LM, as many passes as the scratch needs. */
static int run_groups(struct fm_ctx *c, const struct lm_group *groups, int n, float *logits,
                      struct fl_err *err) {
    const size_t V = (size_t)c->model->cfg.lm.vocab_size;
    const int max_rows = lm_scratch_max_tokens(c->scratch);
    for (int i = 0; i < n;) {
        int k = 0, rows = 0;
        while (i + k < n && rows + groups[i + k].n <= max_rows)
            rows += groups[i + k++].n;
        if (k == 0) k = 1; /* cannot happen: gen_seq_next keeps groups within max_rows */
        int rc = lm_forward_batch(c->model->lm, groups + i, k, c->scratch, logits, err);
        if (rc < 0) return rc;
        for (int j = 0; j < k; j++)
            logits += groups[i + j].logits != LM_LOGITS_NONE ? V : 0;
        i += k;
    }
    return 0;
}

int gen_run(struct fm_ctx *c, const int *prompt, int n_prompt, const struct gen_params *p, gen_callback cb,
            void *cb_ctx, int *out_ids, int cap, struct gen_result *res, struct fl_err *err) {
    const struct fm_model *m = c->model;
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    if ((long)n_prompt + p->max_new_tokens > c->n_ctx && c->n_ctx < m->cfg.lm.max_seq_len)
        return fl_err_set(err, FL_ELIMIT,
                          "the prompt's %d tokens and max_new_tokens %d exceed the context of %d", n_prompt,
                          p->max_new_tokens, c->n_ctx);
    struct gen_seq *g = NULL;
    int rc = gen_seq_start(m, c->media, prompt, n_prompt, p, cb, cb_ctx, &g, err);
    if (rc < 0) return rc;
    float *logits = malloc((size_t)p->num_beams * m->cfg.lm.vocab_size * sizeof *logits);
    if (!logits) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
    struct lm_group groups[16];
    while (rc == 0) {
        int n = gen_seq_next(g, lm_scratch_max_tokens(c->scratch), groups, 16);
        if (n == 0) break;
        rc = run_groups(c, groups, n, logits, err);
        if (rc == 0) rc = gen_seq_advance(g, logits, err);
        if (rc == 1) {
            rc = 0;
            break;
        }
    }
    if (rc == 0) {
        *res = g->res;
        if (out_ids) memcpy(out_ids, g->gen, (size_t)(g->n_gen < cap ? g->n_gen : cap) * sizeof *out_ids);
    }
    free(logits);
    gen_seq_free(g);
    return rc;
}
