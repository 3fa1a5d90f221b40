/*
 * http.h - `flamingo serve`'s transport: libmicrohttpd with one thread per
 * connection (a request blocks its own thread while the engine works, so a
 * slow client or a long stream costs a thread, never the engine), routing,
 * the body limit, the API key, request ids, the log line and metrics per
 * request, SSE streaming with keep-alive comments, and noticing a client
 * that went away (its job is cancelled; the engine frees it at the next
 * step).  The meaning of each request is api.c's.
 *
 * Start-up order: srv_start binds the port first (so that /health can say
 * 503 "loading" while the model loads), then srv_ready hands it the model
 * and starts the engine.  srv_stop: stop accepting, answer new requests on
 * open connections with 503, let the engine finish what is in flight for up
 * to drain_ms, then close.
 */
#ifndef FL_HTTP_H
#define FL_HTTP_H

#include "../core/err.h"
#include "../model/flamingo.h"
#include "api.h"
#include "engine.h"

struct srv_config {
    const char *host; /* "127.0.0.1" */
    int port;         /* 0: any free port (srv_port says which) */
    const char *api_key;
    const char *model_id;
    long created; /* /v1/models "created": the model file's mtime */
    int max_connections;
    int conn_timeout_s;         /* idle connection (and slow upload) limit */
    int keepalive_ms;           /* SSE comment interval while nothing else is sent */
    int max_connections_per_ip; /* 0: no limit */
    int body_timeout_s;         /* a request's whole upload (slowloris); 0: none */
    size_t max_buffered_bytes;  /* request bodies held at once, all connections together */
    int max_prepare;            /* requests parsed and decoded at once */
    struct api_limits lim;
    struct eng_config eng;
};

void srv_config_defaults(struct srv_config *c);

struct server;

int srv_start(const struct srv_config *c, struct server **out, struct fl_err *err);
int srv_port(const struct server *s);
/* The model is loaded: start the engine and serve.  m must outlive the server. */
int srv_ready(struct server *s, const struct fm_model *m, struct fl_err *err);
void srv_stop(struct server *s, int drain_ms);

#endif
