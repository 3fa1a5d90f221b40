/* http.c - see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "../core/clock.h"
#include "../core/log.h"
#include "../model/tokenizer.h"
#include "metrics.h"

/* The page at GET /, embedded at build time from server/web/index.html. */
extern const unsigned char flamingo_index_html[];
extern const size_t flamingo_index_html_len;

void srv_config_defaults(struct srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->model_id = "flamingo";
    c->max_connections = 256;
    c->conn_timeout_s = 60;
    c->keepalive_ms = 5000;
    c->body_timeout_s = 300;
    c->max_buffered_bytes = (size_t)1 << 30;
    c->max_prepare = 4;
    api_limits_defaults(&c->lim);
    eng_config_defaults(&c->eng);
}

struct server {
    struct srv_config cfg;
    struct MHD_Daemon *d;
    int port;
    pthread_rwlock_t lock; /* eng: NULL while loading and once stopping */
    struct eng *eng;
    struct api_ctx api;
    atomic_int stopping;
    atomic_int in_flight;   /* requests between their first byte and their log line */
    atomic_size_t buffered; /* body bytes held by all requests */
    sem_t prep;             /* request preparations (parsing, images) running at once */
    struct metrics *mx;
    uint8_t key_hash[32];
    int has_key;
    uint64_t id_base;
    atomic_ulong next_id;
};

enum route { R_NONE, R_WEB, R_HEALTH, R_METRICS, R_MODELS, R_CHAT, R_COMPLETIONS, R_CAPTION };

static const struct {
    const char *path, *method, *label;
    enum route route;
} routes[] = {
    {"/", "GET", "web", R_WEB},
    {"/health", "GET", "health", R_HEALTH},
    {"/metrics", "GET", "metrics", R_METRICS},
    {"/v1/models", "GET", "models", R_MODELS},
    {"/v1/chat/completions", "POST", "chat", R_CHAT},
    {"/v1/completions", "POST", "completions", R_COMPLETIONS},
    {"/v1/caption", "POST", "caption", R_CAPTION},
};

/* One HTTP request, from its first byte to the log line. */
struct request {
    struct server *s;
    double t0;
    char id[72];
    char method[16], path[96];
    const char *label;
    enum route route;
    struct sbuf body;
    int status, tokens, responded, streaming;
    /* an error found while the body streams in, answered once it has all
     * arrived (libmicrohttpd cannot answer in the middle of an upload) */
    int deferred;
    struct api_error deferred_err;
};

/* ---- responses -------------------------------------------------------------- */

static enum MHD_Result queue(struct request *q, struct MHD_Connection *c, int status, struct MHD_Response *r,
                             const char *ctype) {
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Request-Id", q->id);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    q->status = status;
    q->responded = 1;
    return ret;
}

static enum MHD_Result respond(struct request *q, struct MHD_Connection *c, int status, const char *ctype,
                               const struct sbuf *b) {
    if (b->failed) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b->len, b->len ? b->p : (void *)"", MHD_RESPMEM_MUST_COPY);
    return queue(q, c, status, r, ctype);
}

static enum MHD_Result respond_error(struct request *q, struct MHD_Connection *c, const struct api_error *e) {
    struct sbuf b = {0};
    api_error_json(e, &b);
    sb_puts(&b, "\n");
    struct MHD_Response *r =
        b.failed ? NULL : MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_COPY);
    sb_free(&b);
    if (!r) return MHD_NO;
    if (e->status == 429) MHD_add_response_header(r, "Retry-After", "1");
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (e->status == 405) {
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (routes[i].route == q->route) MHD_add_response_header(r, "Allow", routes[i].method);
    }
    return queue(q, c, e->status, r, "application/json");
}

static enum MHD_Result fail(struct request *q, struct MHD_Connection *c, int status, const char *type,
                            const char *code, const char *param, const char *msg) {
    struct api_error e;
    api_fail(&e, status, type, code, param, "%s", msg);
    return respond_error(q, c, &e);
}

/* ---- the client ---------------------------------------------------------------- */

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Did the client close its side?  (It sends nothing while it waits for an
 * answer, so readable-with-0-bytes or a hang-up means it went away.) */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return 1;
    char ch;
    ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- the engine's cache, for api.c ---------------------------------------------------- */

static struct ic_entry *cache_get(void *ctx, const uint8_t key[32]) { return eng_cache_get(ctx, key); }
static void cache_unpin(void *ctx, struct ic_entry *x) { eng_cache_unpin(ctx, x); }

/* ---- job metrics ---------------------------------------------------------------- */

static void observe_job(struct server *s, double t0, const struct api_req *r) {
    struct eng_job *j = r->job;
    pthread_mutex_lock(&j->mu);
    if (j->state == ENG_DONE) {
        if (j->t_first) mx_observe(s->mx, MX_TTFT, j->t_first - t0);
        for (int c = 0; c < j->n_choices; c++)
            for (int i = 1; i < j->choices[c].n_toks; i++)
                mx_observe(s->mx, MX_ITL, j->choices[c].toks[i].t - j->choices[c].toks[i - 1].t);
        if (j->cached_images < j->n_images) mx_observe(s->mx, MX_IMAGE, j->image_s);
    }
    pthread_mutex_unlock(&j->mu);
}

/* ---- streaming -------------------------------------------------------------------- */

struct stream {
    struct server *s;
    struct request *q; /* valid while MHD reads the stream (not in stream_free) */
    struct api_req r;
    struct api_stream st;
    struct sbuf out;
    size_t off;
    int seen, fd;
    double t0, deadline, last_write;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct stream *x = cls;
    struct server *s = x->s;
    while (x->off == x->out.len) {
        if (x->st.finished) {
            x->q->tokens = api_generated_tokens(&x->r);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        x->out.len = 0;
        x->off = 0;
        api_stream_step(&s->api, &x->r, &x->st, &x->out);
        if (!x->st.finished && eng_job_over(x->r.job)) {
            pthread_mutex_lock(&x->r.job->mu);
            int failed = x->r.job->state == ENG_FAILED;
            pthread_mutex_unlock(&x->r.job->mu);
            if (failed) {
                struct api_error e;
                api_job_error(&x->r, &e);
                api_stream_error(&e, &x->st, &x->out);
            }
        }
        if (x->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (x->out.len) break;
        double now = fl_now();
        if (client_gone(x->fd)) {
            eng_job_cancel(x->r.job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (x->deadline && now > x->deadline) {
            eng_job_cancel(x->r.job);
            struct api_error e;
            api_fail(&e, 503, "unavailable_error", "timeout", NULL,
                     "the request ran past the server's timeout");
            api_stream_error(&e, &x->st, &x->out);
            break;
        }
        if (now - x->last_write >= s->cfg.keepalive_ms / 1000.0) {
            sb_puts(&x->out, ": keep-alive\n\n");
            break;
        }
        x->seen = eng_job_wait(x->r.job, x->seen, s->cfg.keepalive_ms < 100 ? s->cfg.keepalive_ms : 100);
    }
    size_t n = x->out.len - x->off < max ? x->out.len - x->off : max;
    memcpy(buf, x->out.p + x->off, n);
    x->off += n;
    x->last_write = fl_now();
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    struct stream *x = cls;
    eng_job_cancel(x->r.job); /* no-op when it ended; frees the sequence when the client left */
    observe_job(x->s, x->t0, &x->r);
    api_req_free(&x->r, NULL, 1);
    api_stream_free(&x->st);
    sb_free(&x->out);
    free(x);
}

static void release_body(struct server *s, struct request *q) {
    atomic_fetch_sub(&s->buffered, q->body.cap);
    sb_free(&q->body);
}

/* ---- the generating endpoints ------------------------------------------------------ */

/* The URL's arguments as a JSON object (numbers and booleans typed). */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    cJSON *obj = cls;
    if (!key || cJSON_GetObjectItemCaseSensitive(obj, key)) return MHD_YES;
    const char *v = value ? value : "";
    char *end = NULL;
    double d = strtod(v, &end);
    if (*v && end && !*end)
        cJSON_AddNumberToObject(obj, key, d);
    else if (!strcmp(v, "true") || !strcmp(v, "false"))
        cJSON_AddBoolToObject(obj, key, !strcmp(v, "true"));
    else
        cJSON_AddStringToObject(obj, key, v);
    return MHD_YES;
}

static enum MHD_Result generate(struct request *q, struct MHD_Connection *c) {
    struct server *s = q->s;
    enum api_kind kind = q->route == R_CHAT          ? API_CHAT
                         : q->route == R_COMPLETIONS ? API_COMPLETIONS
                                                     : API_CAPTION;
    int raw = 0;
    if (kind == API_CAPTION) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        raw = ct && (!strncasecmp(ct, "image/", 6) || !strncasecmp(ct, "application/octet-stream", 24));
    }
    cJSON *query = raw ? cJSON_CreateObject() : NULL;
    if (query) MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, query);
    struct api_req r;
    struct api_error e;
    struct fl_err err = {0};
    if (atomic_load(&s->stopping)) {
        cJSON_Delete(query);
        return fail(q, c, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
    }
    /* parsing, base64 and image decoding take memory and CPU: a few at a time */
    while (sem_wait(&s->prep) < 0 && errno == EINTR)
        ;
    pthread_rwlock_rdlock(&s->lock);
    if (!s->eng) {
        pthread_rwlock_unlock(&s->lock);
        sem_post(&s->prep);
        cJSON_Delete(query);
        return fail(q, c, 503, "unavailable_error", NULL, NULL,
                    atomic_load(&s->stopping) ? "the server is shutting down" : "the model is still loading");
    }
    struct api_cache cache = {cache_get, cache_unpin, s->eng};
    int rc = api_prepare(&s->api, kind, q->body.p ? q->body.p : "", q->body.len, raw, query, &cache, q->id,
                         &r, &e);
    cJSON_Delete(query);
    release_body(s, q); /* the job holds what it needs */
    if (rc == 0) {
        rc = eng_submit(s->eng, r.job, &err);
        if (rc < 0) {
            if (rc == FL_ELIMIT)
                api_fail(&e, 429, "rate_limit_error", "overloaded", NULL, "%s; retry shortly", err.msg);
            else if (rc == FL_EINVAL)
                api_fail(&e, 400, "invalid_request_error", "invalid_value", "n", "%s", err.msg);
            else
                api_fail(&e, 503, "unavailable_error", NULL, NULL, "%s", err.msg);
            api_req_free(&r, &cache, 0);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    sem_post(&s->prep);
    if (rc < 0) return respond_error(q, c, &e);
    const double deadline = s->cfg.lim.timeout_s > 0 ? q->t0 + s->cfg.lim.timeout_s : 0;
    const int fd = conn_fd(c);

    if (r.stream) {
        struct stream *x = calloc(1, sizeof *x);
        if (!x || api_stream_init(&x->st, r.job->n_choices) < 0) {
            if (x) api_stream_free(&x->st);
            free(x);
            eng_job_cancel(r.job);
            api_req_free(&r, NULL, 1);
            return fail(q, c, 503, "unavailable_error", NULL, NULL, "out of memory");
        }
        *x = (struct stream){.s = s,
                             .q = q,
                             .r = r,
                             .st = x->st,
                             .fd = fd,
                             .t0 = q->t0,
                             .deadline = deadline,
                             .last_write = fl_now(),
                             .seen = -1};
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, x, stream_free);
        if (!resp) {
            stream_free(x);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        q->streaming = 1;
        return queue(q, c, 200, resp, "text/event-stream");
    }

    /* not streaming: wait for the end, watching the client and the clock */
    int seen = -1, gone = 0, late = 0;
    while (!eng_job_over(r.job)) {
        if (client_gone(fd)) {
            gone = 1;
            break;
        }
        if (deadline && fl_now() > deadline) {
            late = 1;
            break;
        }
        seen = eng_job_wait(r.job, seen, 100);
    }
    enum MHD_Result ret;
    if (gone || late) {
        eng_job_cancel(r.job);
        if (gone) {
            q->status = 499; /* nginx's "client closed request", for the log only */
            ret = MHD_NO;
        } else {
            ret = fail(q, c, 503, "unavailable_error", "timeout", NULL,
                       "the request ran past the server's timeout");
        }
    } else {
        pthread_mutex_lock(&r.job->mu);
        int ok = r.job->state == ENG_DONE;
        pthread_mutex_unlock(&r.job->mu);
        if (ok) {
            struct sbuf b = {0};
            api_response_json(&s->api, &r, &b);
            sb_puts(&b, "\n");
            ret = respond(q, c, 200, "application/json", &b);
            sb_free(&b);
        } else {
            api_job_error(&r, &e);
            ret = respond_error(q, c, &e);
        }
    }
    q->tokens = api_generated_tokens(&r);
    observe_job(s, q->t0, &r);
    api_req_free(&r, NULL, 1);
    return ret;
}

/* ---- the other endpoints -------------------------------------------------------------- */

static enum MHD_Result simple(struct request *q, struct MHD_Connection *c) {
    struct server *s = q->s;
    struct sbuf b = {0};
    enum MHD_Result ret;
    if (q->route == R_WEB) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            flamingo_index_html_len, (void *)flamingo_index_html, MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; img-src 'self' data: blob:; style-src 'unsafe-inline'; "
                                "script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
        return queue(q, c, 200, r, "text/html; charset=utf-8");
    }
    pthread_rwlock_rdlock(&s->lock);
    struct eng *e = s->eng;
    if (q->route == R_METRICS) {
        mx_render(s->mx, e, &b);
        pthread_rwlock_unlock(&s->lock);
        ret = respond(q, c, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    } else if (!e) {
        pthread_rwlock_unlock(&s->lock);
        ret = fail(q, c, 503, "unavailable_error", NULL, NULL,
                   atomic_load(&s->stopping) ? "the server is shutting down" : "the model is still loading");
    } else if (q->route == R_HEALTH) {
        pthread_rwlock_unlock(&s->lock);
        sb_puts(&b, "{\"status\":\"ok\"}\n");
        ret = respond(q, c, 200, "application/json", &b);
    } else {
        api_models_json(&s->api, &b);
        pthread_rwlock_unlock(&s->lock);
        sb_puts(&b, "\n");
        ret = respond(q, c, 200, "application/json", &b);
    }
    sb_free(&b);
    return ret;
}

/* ---- the access handler ---------------------------------------------------------------- */

static int id_char_ok(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '_' || ch == '.' || ch == ':';
}

static void set_request_id(struct server *s, struct request *q, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = h ? strlen(h) : 0;
    int ok = n > 0 && n < sizeof q->id;
    for (size_t i = 0; ok && i < n; i++)
        ok = id_char_ok(h[i]);
    if (ok) {
        memcpy(q->id, h, n + 1);
        return;
    }
    unsigned long k = atomic_fetch_add(&s->next_id, 1);
    snprintf(q->id, sizeof q->id, "%016llx", (unsigned long long)(s->id_base + k * 0x9e3779b97f4a7c15ull));
}

static int authorized(struct server *s, struct MHD_Connection *c) {
    if (!s->has_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    uint8_t got[32];
    ic_hash(h + 7, strlen(h + 7),
            got); /* equal-length digests: the compare takes the same time for any key */
    return CRYPTO_memcmp(got, s->key_hash, 32) == 0;
}

/* A browser sends Origin with a cross-site POST; a page of another site must
 * not drive this server (with no API key, any page could start generations
 * or, through DNS rebinding, read them).  No Origin (curl, SDKs): fine. */
static int same_origin(struct MHD_Connection *c) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin) return 1;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *p = strstr(origin, "://");
    if (!host || !p) return 0;
    return !strcasecmp(p + 3, host);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)version;
    struct server *s = cls;
    struct request *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        *con_cls = q;
        q->s = s;
        q->t0 = fl_now();
        q->label = "other";
        char shown[64];
        snprintf(q->method, sizeof q->method, "%s", fl_printable(method, shown));
        snprintf(q->path, sizeof q->path, "%s", fl_printable(url, shown));
        set_request_id(s, q, c);
        int path_known = 0;
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
            if (strcmp(url, routes[i].path)) continue;
            path_known = 1;
            q->route = routes[i].route;
            if (!strcmp(method, routes[i].method) ||
                (!strcmp(routes[i].method, "GET") && !strcmp(method, "HEAD")))
                q->label = routes[i].label;
            else
                q->route = R_NONE;
        }
        if (!path_known) return fail(q, c, 404, "not_found_error", NULL, NULL, "no such endpoint");
        if (q->route == R_NONE) {
            for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
                if (!strcmp(url, routes[i].path)) q->route = routes[i].route;
            struct api_error e;
            api_fail(&e, 405, "not_found_error", NULL, NULL, "%s is not allowed here", q->method);
            enum MHD_Result ret = respond_error(q, c, &e);
            q->route = R_NONE;
            return ret;
        }
        if (!same_origin(c))
            return fail(q, c, 403, "permission_error", "cross_origin", NULL,
                        "requests from another web site's pages are refused (Origin differs from Host)");
        if (!strncmp(url, "/v1/", 4) && !authorized(s, c))
            return fail(q, c, 401, "authentication_error", NULL, NULL,
                        "a valid API key is required (Authorization: Bearer KEY)");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.lim.max_body_bytes) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is over %zu bytes", s->cfg.lim.max_body_bytes);
            return fail(q, c, 413, "invalid_request_error", "body_too_large", NULL, msg);
        }
        return MHD_YES;
    }
    if (q->responded) { /* an early answer (401, 413...): the rest of the body is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (s->cfg.body_timeout_s > 0 && fl_now() - q->t0 > s->cfg.body_timeout_s) {
            q->status = 408; /* a body trickling in: close (for the log only) */
            release_body(s, q);
            return MHD_NO;
        }
        if (q->deferred) return MHD_YES; /* dropped, answered at the end */
        size_t old_cap = q->body.cap;
        if (q->body.len + n > s->cfg.lim.max_body_bytes) {
            api_fail(&q->deferred_err, 413, "invalid_request_error", "body_too_large", NULL,
                     "the body is over %zu bytes", s->cfg.lim.max_body_bytes);
        } else if (atomic_load(&s->buffered) + n > s->cfg.max_buffered_bytes) {
            api_fail(&q->deferred_err, 429, "rate_limit_error", "overloaded", NULL,
                     "the server is receiving too many large requests; retry shortly");
        } else {
            sb_put(&q->body, upload, n);
            atomic_fetch_add(&s->buffered, q->body.cap - old_cap);
            if (!q->body.failed) return MHD_YES;
            api_fail(&q->deferred_err, 503, "unavailable_error", NULL, NULL, "out of memory");
        }
        q->deferred = 1;
        release_body(s, q);
        return MHD_YES;
    }
    if (q->deferred) return respond_error(q, c, &q->deferred_err);
    switch (q->route) {
    case R_CHAT:
    case R_COMPLETIONS:
    case R_CAPTION: return generate(q, c);
    default: return simple(q, c);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)c;
    struct server *s = cls;
    struct request *q = *con_cls;
    if (!q) { /* the URI was logged (on_uri) but no handler ran */
        mx_active(s->mx, -1);
        atomic_fetch_sub(&s->in_flight, 1);
        return;
    }
    *con_cls = NULL;
    double ms = (fl_now() - q->t0) * 1000;
    int status = q->status ? q->status : 499;
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400) status = 499;
    mx_request(s->mx, q->label, status);
    if (q->route == R_CHAT || q->route == R_COMPLETIONS || q->route == R_CAPTION)
        mx_observe(s->mx, MX_E2E, ms / 1000);
    mx_active(s->mx, -1);
    atomic_fetch_sub(&s->in_flight, 1);
    fl_log(FL_LOG_INFO, "%s %s %d %d tokens %.1f ms id=%s%s", q->method, q->path, status, q->tokens, ms,
           q->id, why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    release_body(s, q);
    free(q);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)uri;
    (void)c;
    struct server *s = cls;
    atomic_fetch_add(&s->in_flight, 1);
    mx_active(s->mx, 1);
    return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    fl_log(FL_LOG_DEBUG, "libmicrohttpd: %s", line);
}

/* ---- start and stop ------------------------------------------------------------------ */

int srv_start(const struct srv_config *cfg, struct server **out, struct fl_err *err) {
    *out = NULL;
    struct server *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory");
    s->cfg = *cfg;
    s->mx = mx_new();
    /* writers first: a stream of requests must not keep srv_stop waiting */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    sem_init(&s->prep, 0, (unsigned)(cfg->max_prepare > 0 ? cfg->max_prepare : 1));
    /* a stream must write before libmicrohttpd's idle timeout would close it */
    if (s->cfg.keepalive_ms > s->cfg.conn_timeout_s * 500) s->cfg.keepalive_ms = s->cfg.conn_timeout_s * 500;
    if (cfg->api_key && cfg->api_key[0]) {
        ic_hash(cfg->api_key, strlen(cfg->api_key), s->key_hash);
        s->has_key = 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_base = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV},
                    *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        mx_free(s->mx);
        free(s);
        return fl_err_set(err, FL_EINVAL, "--host %s: %s", cfg->host, gai_strerror(gai));
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri,
                            s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout_s,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        mx_free(s->mx);
        free(s);
        return fl_err_set(err, FL_EIO, "cannot listen on %s:%d (in use, or not an address of this machine)",
                          cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return 0;
}

int srv_port(const struct server *s) { return s->port; }

int srv_ready(struct server *s, const struct fm_model *m, struct fl_err *err) {
    if (!m->tok) return fl_err_set(err, FL_EFORMAT, "the model file has no tokenizer");
    struct api_ctx api = {.m = m, .model_id = s->cfg.model_id, .lim = s->cfg.lim};
    api.created = s->cfg.created ? s->cfg.created : (long)time(NULL);
    int rc = api_template_load(m, &api.tmpl, err);
    uint8_t piece[1024];
    for (int id = 0; id < tok_vocab_size(m->tok); id++) {
        int n = (int)tok_token_bytes(m->tok, id, piece, sizeof piece);
        if (n > api.max_token_bytes) api.max_token_bytes = n;
    }
    if (rc < 0) return rc;
    struct eng_config ec = s->cfg.eng;
    ec.max_images = api.lim.max_images;
    if (api.lim.max_n > ec.max_seqs) api.lim.max_n = ec.max_seqs;
    struct eng *e = NULL;
    if ((rc = eng_start(m, &ec, &e, err)) < 0) return rc;
    pthread_rwlock_wrlock(&s->lock);
    s->api = api;
    s->eng = e;
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

void srv_stop(struct server *s, int drain_ms) {
    if (!s) return;
    atomic_store(&s->stopping, 1);
    MHD_socket ls = MHD_quiesce_daemon(s->d); /* no new connections */
    if (ls != MHD_INVALID_SOCKET) close(ls);
    pthread_rwlock_wrlock(&s->lock);
    struct eng *e = s->eng;
    s->eng = NULL; /* new requests on open connections: 503 */
    pthread_rwlock_unlock(&s->lock);
    double until = fl_now() + drain_ms / 1000.0 + 5;
    eng_stop(e, drain_ms); /* in-flight jobs finish (or fail when the drain runs out) */
    /* their answers go out before the connections close (idle keep-alive
     * connections hold no request) */
    while (atomic_load(&s->in_flight) > 0 && fl_now() < until)
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    MHD_stop_daemon(s->d); /* connection threads end */
    pthread_rwlock_destroy(&s->lock);
    sem_destroy(&s->prep);
    mx_free(s->mx);
    free(s);
}
