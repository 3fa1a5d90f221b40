/*
 * engine.h - the one thread that runs the model for every request, with
 * continuous batching (DESIGN.md "Threads").
 *
 * HTTP threads parse and validate a request, decode and preprocess its
 * images, tokenize its prompt, and hand the engine a job (eng_submit) through
 * a bounded queue.  Each step of the engine thread:
 *   1. admits queued jobs while the sequences in flight allow (--max-seqs);
 *   2. encodes at most one batch of pending images (ViT + Perceiver + every
 *      cross-attention block's keys and values), looking each up in the
 *      image cache first; a job starts when all its images are ready;
 *   3. runs one forward pass over all running sequences: one new token for
 *      each decoding sequence (a GEMM over the batch), plus prompt chunks of
 *      starting ones, up to the step's row budget;
 *   4. hands each sequence its logits (sampling, beam search, stop strings:
 *      model/generate.h) and publishes the new tokens to the job.
 * Sequences join and leave at token boundaries.  A job's image work delays
 * the others by at most one image batch.
 *
 * The HTTP side reads a job's progress under the job's lock (eng_job_wait
 * returns when something changed), and may cancel it at any time (a
 * client that went away): the engine frees its sequences at the next step.
 */
#ifndef FL_ENGINE_H
#define FL_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"
#include "../model/flamingo.h"
#include "../model/generate.h"
#include "imgcache.h"
#include "prefix.h"

struct eng_config {
    int max_seqs;       /* sequences decoding at once (a job with n choices x beams takes that many) */
    int queue_len;      /* jobs waiting for admission; beyond: eng_submit says busy */
    int step_rows;      /* rows of one forward pass (decode rows + prompt chunks) */
    int image_batch;    /* images per encode step */
    size_t cache_bytes; /* image cache budget */
    size_t prefix_bytes; /* prompt-prefix cache budget (prefix.h) */
    int max_images;     /* per job */
    int step_delay_ms;  /* test aid: sleep this long after each step with work (0) */
};

void eng_config_defaults(struct eng_config *c);

/* One image of a job: its SHA-256 and, unless the cache already held it when
 * the job was made, its preprocessed pixels [3][S][S] (malloc'd; the job
 * frees them). */
struct eng_image {
    uint8_t key[32];
    float *pixels;
    struct ic_entry *entry; /* pinned cache entry once known */
    int looked_up;          /* asked the cache before (hits and misses count once per image) */
};

struct eng_token {
    int id;
    float logprob;
    int n_top;
    int top_ids[GEN_MAX_LOGPROBS];
    float top_logprobs[GEN_MAX_LOGPROBS];
    size_t text_off, text_len; /* the visible text this token released, in the choice's text */
    double t;                  /* fl_now() when it was published */
};

struct eng_choice {
    char *text; /* visible text so far (not NUL-terminated) */
    size_t len, cap;
    struct eng_token *toks;
    int n_toks, cap_toks;
    int done;
    enum gen_finish finish;
    int n_generated;
};

enum eng_state { ENG_QUEUED, ENG_IMAGES, ENG_RUNNING, ENG_DONE, ENG_FAILED };

struct eng_job {
    /* Filled by the submitter (eng_job_new, then these fields). */
    int *prompt;
    int n_prompt;
    struct eng_image *images;
    int n_images;
    struct gen_params gp; /* stop strings point into the job's own copies (eng_job_set_stop) */
    int n_choices;

    /* Shared with the engine: read under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum eng_state state;
    struct eng_choice *choices;
    char error[FL_ERR_MSG_SIZE];
    int version; /* bumped on every change */
    atomic_int cancelled;
    /* timings: fl_now() seconds, 0 until reached */
    double t_submit, t_images, t_first, t_done;
    double image_s; /* encode steps this job's images took part in */
    int cached_images;
    int cached_tokens; /* prompt positions taken from the prefix cache (choice 0's) */

    /* Engine-private. */
    int refs;
    char *stop_copy[GEN_MAX_STOP];
    struct lm_media *media;
    struct gen_seq **seqs; /* [n_choices], NULL until the images are ready, then NULL once a choice ends */
    void *cbs;             /* the callbacks' contexts */
    int seqs_left;
    struct eng_job *next; /* queue / active list */
};

/* A job for n_choices generations of the prompt; free with eng_job_release. */
struct eng_job *eng_job_new(int n_prompt, int n_images, int n_choices);
/* Copies the stop strings into the job and points gp at the copies. */
int eng_job_set_stop(struct eng_job *j, const char *const *stop, int n);
/* Drops the caller's reference (the engine holds its own while it works). */
void eng_job_release(struct eng_job *j);
/* Waits until the job's version differs from seen or timeout_ms passes
 * (locks and unlocks mu); returns the current version. */
int eng_job_wait(struct eng_job *j, int seen, int timeout_ms);
void eng_job_cancel(struct eng_job *j);
/* Has the job ended (DONE or FAILED)?  (Locks mu.) */
int eng_job_over(struct eng_job *j);
/* Blocks until it has. */
void eng_job_wait_over(struct eng_job *j);

struct eng;

struct eng_stats {
    int queued, active_jobs, active_seqs;
    long long steps, image_encodes, prompt_tokens, generated_tokens, cached_tokens;
    struct ic_stats cache;
    struct pc_stats prefix;
};

/* Starts the engine thread over model m (which must outlive the engine). */
int eng_start(const struct fm_model *m, const struct eng_config *cfg, struct eng **out, struct fl_err *err);
/* Hands the job to the engine.  FL_ELIMIT: the queue is full; FL_EUNSUPPORTED:
 * the engine is stopping.  On success the engine holds a reference. */
int eng_submit(struct eng *e, struct eng_job *j, struct fl_err *err);
/* Looks up an image in the cache: a pinned entry, or NULL. */
struct ic_entry *eng_cache_get(struct eng *e, const uint8_t key[32]);
/* Unpins an entry that eng_cache_get returned (for a job never submitted). */
void eng_cache_unpin(struct eng *e, struct ic_entry *entry);
void eng_stats(struct eng *e, struct eng_stats *out);
/* Stops accepting jobs, lets those in flight finish for up to drain_ms,
 * cancels the rest, joins the thread and frees everything. */
void eng_stop(struct eng *e, int drain_ms);

#endif
