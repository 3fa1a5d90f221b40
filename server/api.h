/*
 * api.h - the meaning of the HTTP API (../shared/docs/API.md), apart from
 * the transport: a request body in, a prepared engine job (or an error
 * envelope with the offending field's path) out; a job's progress in, the
 * response JSON or the SSE events out.  http.c moves bytes; this file knows
 * the OpenAI shapes, the chat-to-Flamingo template, the images and the
 * limits.  docs/API.md in this repo lists every choice made here.
 *
 * Threads: api_prepare runs on the HTTP thread of the request (JSON parsing,
 * base64, image decoding and preprocessing, tokenization), so the engine
 * thread only ever runs the model.
 */
#ifndef FL_API_H
#define FL_API_H

#include <stddef.h>
#include <stdint.h>

#include "../model/flamingo.h"
#include "engine.h"
#include "sbuf.h"

struct cJSON;

struct api_limits {
    size_t max_body_bytes;  /* request body (http.c enforces it) */
    size_t max_image_bytes; /* one encoded image */
    int64_t max_image_pixels;
    int max_image_side;
    int max_images;        /* per request */
    int max_prompt_tokens; /* 0: the model's context */
    int max_tokens;        /* the most a request may ask for (and the default, context allowing) */
    int max_n;             /* choices x beams per request (the engine's --max-seqs) */
    double timeout_s;      /* a request's whole life; 0: none */
};

void api_limits_defaults(struct api_limits *l);

/* The chat-to-Flamingo template (API.md "Chat to Flamingo prompt"); a model
 * file may override any part in its metadata "chat_template" (a JSON
 * object with these keys). */
struct api_template {
    char image[64];      /* an image part */
    char question[256];  /* a user text; {text} is replaced */
    char caption[256];   /* a user message with images and no text */
    char assistant[256]; /* {content} is replaced */
    char system[256];    /* {content} is replaced */
};

/* What every request shares: set up once at start, then read-only. */
struct api_ctx {
    const struct fm_model *m;
    const char *model_id;
    long created; /* for /v1/models: the model file's mtime */
    struct api_limits lim;
    struct api_template tmpl;
    int max_token_bytes; /* the longest token's bytes: a longer prompt is refused before tokenizing */
};

/* Fills tmpl with the defaults and the model file's overrides (errors name
 * the metadata key). */
int api_template_load(const struct fm_model *m, struct api_template *tmpl, struct fl_err *err);

enum api_kind { API_CHAT, API_COMPLETIONS, API_CAPTION };

struct api_error {
    int status;
    const char *type; /* "invalid_request_error", ... */
    const char *code; /* NULL: null */
    char param[160];  /* "": null */
    char message[FL_ERR_MSG_SIZE + 64];
};

/* Sets e and returns -1, so that parsers can `return api_fail(...)`. */
int api_fail(struct api_error *e, int status, const char *type, const char *code, const char *param,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The error envelope {"error": {...}} (no trailing newline). */
void api_error_json(const struct api_error *e, struct sbuf *out);

/* A parsed request: the job for the engine and how to answer. */
struct api_req {
    enum api_kind kind;
    int stream, include_usage;
    int logprobs; /* report logprobs (chat: "logprobs": true; completions: "logprobs": k) */
    int n_images;
    int latent_tokens; /* usage.prompt_tokens counts each image as this many tokens */
    long created;
    char id[96];
    struct eng_job *job; /* owned until submitted (then the caller releases its reference) */
};

/* The engine's image cache as api_prepare sees it: get pins an entry (or
 * returns NULL), unpin releases it.  get may be NULL (no cache). */
struct api_cache {
    struct ic_entry *(*get)(void *ctx, const uint8_t key[32]);
    void (*unpin)(void *ctx, struct ic_entry *entry);
    void *ctx;
};

/* Parses and validates a request and prepares its job: JSON body (or, for
 * a caption, raw image bytes with `query` holding the URL's arguments as a
 * JSON object).  On error: e is filled and r holds nothing. */
int api_prepare(const struct api_ctx *a, enum api_kind kind, const char *body, size_t len, int raw_image,
                const struct cJSON *query, const struct api_cache *cache, const char *request_id,
                struct api_req *r, struct api_error *e);
/* Drops the request's job: unpins its images first unless the engine took
 * the job (submitted: the engine unpins them itself). */
void api_req_free(struct api_req *r, const struct api_cache *cache, int submitted);

/* The whole response of a finished job (DONE), non-streaming. */
void api_response_json(const struct api_ctx *a, const struct api_req *r, struct sbuf *out);
/* The error of a failed job: 503 when the server stopped, else 500. */
void api_job_error(const struct api_req *r, struct api_error *e);

/* Streaming: the events since the last call. */
struct api_stream {
    int started, finished;
    int *sent_toks; /* per choice */
    size_t *sent_text;
    int *ended; /* finish_reason sent */
};
int api_stream_init(struct api_stream *s, int n_choices);
void api_stream_free(struct api_stream *s);
/* Appends to out every event that the job's progress allows (the caller
 * holds no lock); after the last event ("data: [DONE]") sets s->finished. */
void api_stream_step(const struct api_ctx *a, const struct api_req *r, struct api_stream *s,
                     struct sbuf *out);
/* An error after streaming began: the error event and [DONE]. */
void api_stream_error(const struct api_error *e, struct api_stream *s, struct sbuf *out);

/* Tokens of a finished or failed job's choices (for the log line). */
int api_generated_tokens(const struct api_req *r);

/* GET /v1/models */
void api_models_json(const struct api_ctx *a, struct sbuf *out);

#endif
