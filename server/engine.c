/*
 * engine.c - see engine.h.
 *
 * Locks: e->mu guards the queue, the counters the HTTP side reads and the
 * stop flags; j->mu guards what a job publishes (state, choices, error,
 * version).  The engine thread alone touches the active list, the
 * sequences, the media and the model, so a step holds no lock while it
 * computes; it takes j->mu only to publish.  The order is e->mu before
 * j->mu, never the reverse.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clock.h"
#include "../core/log.h"
#include "../core/mat.h"

void eng_config_defaults(struct eng_config *c) {
    *c = (struct eng_config){.max_seqs = 16,
                             .queue_len = 64,
                             .step_rows = 256,
                             .image_batch = 8,
                             .cache_bytes = (size_t)1 << 30,
                             .prefix_bytes = (size_t)1 << 30,
                             .max_images = 16};
}

/* ---- jobs --------------------------------------------------------------- */

struct eng_job *eng_job_new(int n_prompt, int n_images, int n_choices) {
    struct eng_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->prompt = calloc((size_t)(n_prompt > 0 ? n_prompt : 1), sizeof *j->prompt);
    j->images = calloc((size_t)(n_images > 0 ? n_images : 1), sizeof *j->images);
    j->choices = calloc((size_t)(n_choices > 0 ? n_choices : 1), sizeof *j->choices);
    if (!j->prompt || !j->images || !j->choices) {
        free(j->prompt);
        free(j->images);
        free(j->choices);
        free(j);
        return NULL;
    }
    j->n_prompt = n_prompt;
    j->n_images = n_images;
    j->n_choices = n_choices;
    gen_defaults(&j->gp);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    return j;
}

int eng_job_set_stop(struct eng_job *j, const char *const *stop, int n) {
    if (n > GEN_MAX_STOP) return -1;
    for (int i = 0; i < n; i++) {
        if (!(j->stop_copy[i] = strdup(stop[i]))) return -1;
        j->gp.stop[i] = j->stop_copy[i];
    }
    j->gp.n_stop = n;
    return 0;
}

static void job_free(struct eng_job *j) {
    for (int i = 0; i < j->n_images; i++)
        free(j->images[i].pixels);
    for (int c = 0; c < j->n_choices; c++) {
        free(j->choices[c].text);
        free(j->choices[c].toks);
    }
    for (int i = 0; i < GEN_MAX_STOP; i++)
        free(j->stop_copy[i]);
    free(j->prompt);
    free(j->images);
    free(j->choices);
    free(j->seqs);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void eng_job_release(struct eng_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left == 0) job_free(j);
}

int eng_job_wait(struct eng_job *j, int seen, int timeout_ms) {
    pthread_mutex_lock(&j->mu);
    if (j->version == seen && j->state != ENG_DONE && j->state != ENG_FAILED) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    int v = j->version;
    pthread_mutex_unlock(&j->mu);
    return v;
}

void eng_job_cancel(struct eng_job *j) { atomic_store(&j->cancelled, 1); }

int eng_job_over(struct eng_job *j) {
    pthread_mutex_lock(&j->mu);
    int over = j->state == ENG_DONE || j->state == ENG_FAILED;
    pthread_mutex_unlock(&j->mu);
    return over;
}

void eng_job_wait_over(struct eng_job *j) {
    int v = -1;
    while (!eng_job_over(j))
        v = eng_job_wait(j, v, 1000);
}

/* Publishes a change (caller holds j->mu). */
static void bump(struct eng_job *j) {
    j->version++;
    pthread_cond_broadcast(&j->cv);
}

/* ---- the engine ------------------------------------------------------------ */

struct cb_ctx {
    struct eng *e;
    struct eng_job *j;
    int choice;
};

struct eng {
    const struct fm_model *m;
    struct eng_config cfg;
    struct fm_ctx *ctx; /* encode buffers and the LM scratch */
    struct imgcache *cache;
    struct prefix_cache *prefix;
    pthread_t thread;
    int thread_started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct eng_job *q_head, *q_tail;
    int n_queued, stopping, exiting;
    int active_jobs, active_seqs; /* copies for eng_stats */
    long long steps, image_encodes, prompt_tokens, generated_tokens, cached_tokens;

    /* engine thread only */
    struct eng_job *active; /* admission order */
    float *pixels;          /* [image_batch][3][S][S] */
    float *logits;          /* [max_groups][V] */
    struct lm_group *groups;
    int *owner_job, *owner_seq; /* per group: index into the step's job list, choice */
    int max_groups;
    size_t kv_floats, lat_floats;
};

static void stat_add(struct eng *e, long long *field, long long n) {
    pthread_mutex_lock(&e->mu);
    *field += n;
    pthread_mutex_unlock(&e->mu);
}

static int on_token(void *ctx, const struct gen_step *st) {
    struct cb_ctx *cb = ctx;
    struct eng_job *j = cb->j;
    struct eng_choice *c = &j->choices[cb->choice];
    int ok = 1;
    pthread_mutex_lock(&j->mu);
    if (c->len + st->text_len > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + st->text_len)
            cap *= 2;
        char *t = realloc(c->text, cap);
        if (t)
            c->text = t, c->cap = cap;
        else
            ok = 0;
    }
    if (ok && st->id >= 0 && c->n_toks == c->cap_toks) {
        int cap = c->cap_toks ? 2 * c->cap_toks : 32;
        struct eng_token *t = realloc(c->toks, (size_t)cap * sizeof *t);
        if (t)
            c->toks = t, c->cap_toks = cap;
        else
            ok = 0;
    }
    if (ok) {
        size_t off = c->len;
        if (st->text_len) memcpy(c->text + c->len, st->text, st->text_len);
        c->len += st->text_len;
        if (st->id >= 0) {
            struct eng_token *t = &c->toks[c->n_toks++];
            t->id = st->id;
            t->logprob = st->logprob;
            t->n_top = st->n_top;
            memcpy(t->top_ids, st->top_ids, sizeof t->top_ids);
            memcpy(t->top_logprobs, st->top_logprobs, sizeof t->top_logprobs);
            t->text_off = off;
            t->text_len = st->text_len;
            t->t = fl_now();
            c->n_generated++;
        } else if (c->n_toks) { /* the final flush belongs to the last token */
            c->toks[c->n_toks - 1].text_len += st->text_len;
        }
        if (!j->t_first && st->id >= 0) j->t_first = fl_now();
        bump(j);
    }
    pthread_mutex_unlock(&j->mu);
    if (st->id >= 0) stat_add(cb->e, &cb->e->generated_tokens, 1);
    return ok ? atomic_load(&j->cancelled) : 1;
}

/* Ends a job: frees its sequences and media, unpins its images, publishes
 * the final state and drops the engine's reference. */
static void job_end(struct eng *e, struct eng_job *j, enum eng_state state, const char *error) {
    if (j->seqs)
        for (int c = 0; c < j->n_choices; c++) {
            gen_seq_free(j->seqs[c]);
            j->seqs[c] = NULL;
        }
    lm_media_free(j->media);
    j->media = NULL;
    for (int i = 0; i < j->n_images; i++) {
        ic_unpin(e->cache, j->images[i].entry);
        j->images[i].entry = NULL;
    }
    free(j->seqs);
    j->seqs = NULL;
    pthread_mutex_lock(&j->mu);
    j->state = state;
    j->t_done = fl_now();
    if (error) snprintf(j->error, sizeof j->error, "%s", error);
    for (int c = 0; c < j->n_choices; c++)
        j->choices[c].done = 1;
    bump(j);
    pthread_mutex_unlock(&j->mu);
    free(j->cbs);
    j->cbs = NULL;
    eng_job_release(j);
}

/* Sequences a job decodes at once. */
static int job_seqs(const struct eng_job *j) { return j->n_choices * j->gp.num_beams; }

/* Moves queued jobs to the active list while the sequences allow (FIFO). */
static void admit(struct eng *e) {
    pthread_mutex_lock(&e->mu);
    while (e->q_head) {
        struct eng_job *j = e->q_head;
        if (!atomic_load(&j->cancelled) && e->active_seqs + job_seqs(j) > e->cfg.max_seqs && e->active_jobs)
            break;
        e->q_head = j->next;
        if (!e->q_head) e->q_tail = NULL;
        e->n_queued--;
        j->next = NULL;
        e->active_jobs++;
        e->active_seqs += job_seqs(j);
        /* append to the active list (engine-thread only, but cheap to do here) */
        struct eng_job **at = &e->active;
        while (*at)
            at = &(*at)->next;
        *at = j;
        pthread_mutex_lock(&j->mu);
        j->state = ENG_IMAGES;
        bump(j);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Takes j off the active list and ends it. */
static void retire(struct eng *e, struct eng_job *j, enum eng_state state, const char *error) {
    struct eng_job **at = &e->active;
    while (*at && *at != j)
        at = &(*at)->next;
    if (*at) *at = j->next;
    j->next = NULL;
    pthread_mutex_lock(&e->mu);
    e->active_jobs--;
    e->active_seqs -= job_seqs(j);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    job_end(e, j, state, error);
}

/* The images' keys of a job, in order, for the prefix cache (malloc'd). */
static uint8_t (*job_keys(const struct eng_job *j))[32] {
    uint8_t(*k)[32] = malloc((size_t)(j->n_images ? j->n_images : 1) * sizeof *k);
    for (int i = 0; k && i < j->n_images; i++)
        memcpy(k[i], j->images[i].key, 32);
    return k;
}

/* Starts every choice of a new job where the prefix cache allows. */
static void reuse_prefix(struct eng *e, struct eng_job *j) {
    const struct lm_seq *src = NULL;
    uint8_t(*keys)[32] = job_keys(j);
    const int n =
        keys ? pc_match(e->prefix, j->prompt, j->n_prompt, (const uint8_t(*)[32])keys, j->n_images, &src) : 0;
    free(keys);
    if (!src) return;
    for (int c = 0; c < j->n_choices; c++) {
        const int got = gen_seq_reuse(j->seqs[c], src, n);
        if (c == 0) j->cached_tokens = got;
        stat_add(e, &e->cached_tokens, got);
    }
}

/* A choice that ended well leaves its KV cache to the prefix cache. */
static void keep_prefix(struct eng *e, struct eng_job *j, struct gen_seq *g) {
    int *tokens = NULL;
    uint8_t(*keys)[32] = job_keys(j);
    struct lm_seq *s = keys ? gen_seq_detach_kv(g, &tokens) : NULL;
    if (s) pc_put(e->prefix, s, tokens, lm_seq_len(s), (const uint8_t(*)[32])keys, j->n_images);
    free(keys);
}

/* Images ready: the job's media and its generations. */
static void start_job(struct eng *e, struct eng_job *j) {
    struct fl_err err = {0};
    const struct fm_model *m = e->m;
    int rc = lm_media_init_ref(m->lm, j->n_images, &j->media, &err);
    for (int i = 0; rc == 0 && i < j->n_images; i++)
        rc = lm_media_add_ref(m->lm, j->media, j->images[i].entry->data + e->lat_floats, &err);
    j->seqs = calloc((size_t)j->n_choices, sizeof *j->seqs);
    struct cb_ctx *cbs = calloc((size_t)j->n_choices, sizeof *cbs);
    j->cbs = cbs;
    if (rc == 0 && (!j->seqs || !cbs)) rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
    for (int c = 0; rc == 0 && c < j->n_choices; c++) {
        struct gen_params gp = j->gp;
        gp.smp.seed += (uint64_t)c; /* each choice its own random stream */
        cbs[c] = (struct cb_ctx){e, j, c};
        rc = gen_seq_start(m, j->media, j->prompt, j->n_prompt, &gp, on_token, &cbs[c], &j->seqs[c], &err);
    }
    if (rc == 0) reuse_prefix(e, j);
    if (rc < 0) {
        retire(e, j, ENG_FAILED, err.msg);
        return;
    }
    j->seqs_left = j->n_choices;
    pthread_mutex_lock(&j->mu);
    j->state = ENG_RUNNING;
    j->t_images = fl_now();
    bump(j);
    pthread_mutex_unlock(&j->mu);
}

static int all_ready(const struct eng_job *j) {
    for (int i = 0; i < j->n_images; i++)
        if (!j->images[i].entry) return 0;
    return 1;
}

/* One image step: cache lookups for every waiting image, then at most one
 * batch of encodes.  Jobs whose images are all ready start. */
static void image_step(struct eng *e) {
    const struct fm_model *m = e->m;
    const int S = m->cfg.vision.image_size, L = m->cfg.perceiver.num_latents, W = m->cfg.vision.width;
    const size_t px = (size_t)3 * S * S;
    struct eng_job *who[64];
    int which[64], n = 0;
    for (struct eng_job *j = e->active, *next; j; j = next) {
        next = j->next;
        if (j->seqs) continue; /* already running */
        for (int i = 0; i < j->n_images; i++) {
            struct eng_image *im = &j->images[i];
            if (im->entry) continue;
            im->entry = im->looked_up ? ic_find(e->cache, im->key) : ic_get(e->cache, im->key);
            im->looked_up = 1;
            if (im->entry) {
                free(im->pixels);
                im->pixels = NULL;
                j->cached_images++;
                continue;
            }
            int dup = 0;
            for (int k = 0; k < n && !dup; k++)
                dup = !memcmp(who[k]->images[which[k]].key, im->key, 32);
            if (!dup && n < e->cfg.image_batch && im->pixels) {
                who[n] = j, which[n] = i;
                memcpy(e->pixels + (size_t)n * px, im->pixels, px * sizeof(float));
                n++;
            }
        }
    }
    if (n) {
        double t0 = fl_now();
        clip_encode(m->clip, e->ctx->clip, e->pixels, n, e->ctx->tokens);
        perc_forward(m->perc, e->ctx->perc, e->ctx->tokens, n, e->ctx->latents);
        for (int k = 0; k < n; k++) {
            float *data = malloc((e->lat_floats + e->kv_floats) * sizeof *data);
            struct eng_image *im = &who[k]->images[which[k]];
            if (!data) continue; /* tried again next step */
            memcpy(data, e->ctx->latents + (size_t)k * L * W, e->lat_floats * sizeof *data);
            lm_media_kv(m->lm, data, data + e->lat_floats);
            im->entry = ic_put(e->cache, im->key, data, (e->lat_floats + e->kv_floats) * sizeof *data);
            if (im->entry) {
                free(im->pixels);
                im->pixels = NULL;
            }
        }
        double dt = fl_now() - t0;
        for (int k = 0; k < n; k++)
            if (k == 0 || who[k] != who[k - 1]) who[k]->image_s += dt;
        stat_add(e, &e->image_encodes, n);
    }
    for (struct eng_job *j = e->active, *next; j; j = next) {
        next = j->next;
        if (!j->seqs && all_ready(j)) start_job(e, j);
    }
}

/* One forward pass over every running sequence: decode rows first, then
 * prompt chunks in admission order with the rows left. */
static void lm_step(struct eng *e) {
    struct fl_err err = {0};
    const size_t V = (size_t)e->m->cfg.lm.vocab_size;
    struct eng_job *jobs[512];
    int n_jobs = 0, n_groups = 0, rows = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (struct eng_job *j = e->active; j; j = j->next) {
            if (!j->seqs) continue;
            int ji = -1;
            for (int k = 0; k < n_jobs; k++)
                if (jobs[k] == j) ji = k;
            for (int c = 0; c < j->n_choices; c++) {
                struct gen_seq *g = j->seqs[c];
                if (!g || gen_seq_done(g) || gen_seq_in_prompt(g) != pass) continue;
                int budget = e->cfg.step_rows - rows, width = pass ? 1 : gen_seq_width(g);
                if (budget < width || n_groups + width > e->max_groups) continue;
                if (ji < 0) {
                    if (n_jobs == 512) continue;
                    ji = n_jobs;
                    jobs[n_jobs++] = j;
                }
                int k = gen_seq_next(g, budget, e->groups + n_groups, e->max_groups - n_groups);
                for (int q = 0; q < k; q++) {
                    e->owner_job[n_groups + q] = ji;
                    e->owner_seq[n_groups + q] = c;
                    rows += e->groups[n_groups + q].n;
                    if (pass) stat_add(e, &e->prompt_tokens, e->groups[n_groups + q].n);
                }
                n_groups += k;
            }
        }
    }
    if (!n_groups) return;
    int rc = lm_forward_batch(e->m->lm, e->groups, n_groups, e->ctx->scratch, e->logits, &err);
    stat_add(e, &e->steps, 1);
    /* hand each sequence its logits rows */
    const float *lg = e->logits;
    for (int q = 0; q < n_groups;) {
        struct eng_job *j = jobs[e->owner_job[q]];
        const int c = e->owner_seq[q];
        int k = 1;
        while (q + k < n_groups && e->owner_job[q + k] == e->owner_job[q] && e->owner_seq[q + k] == c)
            k++;
        int rows_out = 0;
        for (int i = 0; i < k; i++)
            rows_out += e->groups[q + i].logits != LM_LOGITS_NONE;
        struct gen_seq *g = j->seqs ? j->seqs[c] : NULL;
        if (g && rc == 0) {
            int r = gen_seq_advance(g, rows_out ? lg : NULL, &err);
            if (r != 0) {
                pthread_mutex_lock(&j->mu);
                struct eng_choice *ch = &j->choices[c];
                ch->done = 1;
                ch->finish = gen_seq_result(g)->finish;
                if (r < 0) snprintf(j->error, sizeof j->error, "%s", err.msg);
                bump(j);
                pthread_mutex_unlock(&j->mu);
                if (r > 0 && gen_seq_result(g)->finish != GEN_FINISH_CANCEL) keep_prefix(e, j, g);
                gen_seq_free(g);
                j->seqs[c] = NULL;
                j->seqs_left--;
                if (r < 0) j->seqs_left = -1000; /* the whole job fails */
            }
        }
        lg += (size_t)rows_out * V;
        q += k;
    }
    if (rc < 0) fl_log(FL_LOG_ERROR, "engine: forward pass failed: %s", err.msg);
    for (int k = 0; k < n_jobs; k++) {
        struct eng_job *j = jobs[k];
        if (rc < 0)
            retire(e, j, ENG_FAILED, err.msg);
        else if (j->seqs_left < 0)
            retire(e, j, ENG_FAILED, j->error);
        else if (j->seqs_left == 0)
            retire(e, j, ENG_DONE, NULL);
    }
}

/* Cancelled jobs (the client went away) leave at the start of a step. */
static void reap(struct eng *e) {
    for (struct eng_job *j = e->active, *next; j; j = next) {
        next = j->next;
        if (atomic_load(&j->cancelled)) retire(e, j, ENG_FAILED, "cancelled");
    }
}

static void *engine_main(void *arg) {
    struct eng *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->exiting && !e->q_head && !e->active)
            pthread_cond_wait(&e->cv, &e->mu);
        int exiting = e->exiting;
        pthread_mutex_unlock(&e->mu);
        if (exiting) break;
        admit(e);
        reap(e);
        image_step(e);
        lm_step(e);
        if (e->cfg.step_delay_ms > 0 && e->active) {
            struct timespec ts = {e->cfg.step_delay_ms / 1000,
                                  (long)(e->cfg.step_delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* what is left when the drain ran out */
    while (e->active)
        retire(e, e->active, ENG_FAILED, "the server is shutting down");
    pthread_mutex_lock(&e->mu);
    struct eng_job *q = e->q_head;
    e->q_head = e->q_tail = NULL;
    e->n_queued = 0;
    pthread_mutex_unlock(&e->mu);
    while (q) {
        struct eng_job *next = q->next;
        job_end(e, q, ENG_FAILED, "the server is shutting down");
        q = next;
    }
    return NULL;
}

int eng_start(const struct fm_model *m, const struct eng_config *cfg, struct eng **out, struct fl_err *err) {
    *out = NULL;
    struct eng *e = calloc(1, sizeof *e);
    if (!e) return fl_err_set(err, FL_ENOMEM, "out of memory for the engine");
    e->m = m;
    e->cfg = *cfg;
    if (e->cfg.image_batch < 1) e->cfg.image_batch = 1;
    if (e->cfg.image_batch > 64) e->cfg.image_batch = 64;
    if (e->cfg.step_rows < e->cfg.max_seqs) e->cfg.step_rows = e->cfg.max_seqs;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    const int S = m->cfg.vision.image_size, V = m->cfg.lm.vocab_size;
    e->lat_floats = (size_t)m->cfg.perceiver.num_latents * m->cfg.vision.width;
    e->kv_floats = lm_media_kv_floats(m->lm);
    e->max_groups = 2 * e->cfg.max_seqs + 16;
    int rc = fm_ctx_init(m, e->cfg.image_batch, e->cfg.step_rows, m->cfg.lm.max_seq_len, &e->ctx, err);
    if (rc == 0) rc = ic_init(e->cfg.cache_bytes, &e->cache, err);
    if (rc == 0) rc = pc_init(m->lm, e->cfg.prefix_bytes, m->cfg.tokens.media, &e->prefix, err);
    if (rc == 0) {
        e->pixels = malloc((size_t)e->cfg.image_batch * 3 * S * S * sizeof *e->pixels);
        e->logits = malloc((size_t)e->max_groups * V * sizeof *e->logits);
        e->groups = malloc((size_t)e->max_groups * sizeof *e->groups);
        e->owner_job = malloc((size_t)e->max_groups * sizeof *e->owner_job);
        e->owner_seq = malloc((size_t)e->max_groups * sizeof *e->owner_seq);
        if (!e->pixels || !e->logits || !e->groups || !e->owner_job || !e->owner_seq)
            rc = fl_err_set(err, FL_ENOMEM, "out of memory for the engine");
    }
    if (rc == 0) {
        if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
            rc = fl_err_set(err, FL_ENOMEM, "cannot start the engine thread");
        else
            e->thread_started = 1;
    }
    if (rc < 0) {
        eng_stop(e, 0);
        return rc;
    }
    *out = e;
    return 0;
}

int eng_submit(struct eng *e, struct eng_job *j, struct fl_err *err) {
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (e->stopping)
        rc = fl_err_set(err, FL_EUNSUPPORTED, "the server is shutting down");
    else if (job_seqs(j) > e->cfg.max_seqs)
        rc = fl_err_set(err, FL_EINVAL, "n x num_beams = %d sequences; this server runs at most %d at once",
                        job_seqs(j), e->cfg.max_seqs);
    else if (e->n_queued >= e->cfg.queue_len)
        rc = fl_err_set(err, FL_ELIMIT, "the queue is full (%d requests waiting)", e->n_queued);
    if (rc == 0) {
        pthread_mutex_lock(&j->mu);
        j->refs++;
        j->state = ENG_QUEUED;
        j->t_submit = fl_now();
        pthread_mutex_unlock(&j->mu);
        j->next = NULL;
        if (e->q_tail)
            e->q_tail->next = j;
        else
            e->q_head = j;
        e->q_tail = j;
        e->n_queued++;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

struct ic_entry *eng_cache_get(struct eng *e, const uint8_t key[32]) {
    return ic_get(e->cache, key);
}

void eng_cache_unpin(struct eng *e, struct ic_entry *entry) { ic_unpin(e->cache, entry); }

void eng_stats(struct eng *e, struct eng_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = (struct eng_stats){.queued = e->n_queued,
                              .active_jobs = e->active_jobs,
                              .active_seqs = e->active_seqs,
                              .steps = e->steps,
                              .image_encodes = e->image_encodes,
                              .prompt_tokens = e->prompt_tokens,
                              .generated_tokens = e->generated_tokens,
                              .cached_tokens = e->cached_tokens};
    pthread_mutex_unlock(&e->mu);
    ic_stats(e->cache, &out->cache);
    pc_stats(e->prefix, &out->prefix);
}

void eng_stop(struct eng *e, int drain_ms) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    double until = fl_now() + drain_ms / 1000.0;
    while (e->thread_started && (e->q_head || e->active_jobs) && fl_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
    e->exiting = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) pthread_join(e->thread, NULL);
    fm_ctx_free(e->ctx);
    ic_free(e->cache);
    pc_free(e->prefix);
    free(e->pixels);
    free(e->logits);
    free(e->groups);
    free(e->owner_job);
    free(e->owner_seq);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
