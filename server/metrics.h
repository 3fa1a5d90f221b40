/*
 * metrics.h - the server's Prometheus counters and histograms
 * (API.md "Operations"): requests by endpoint and status, tokens, image
 * encodes and cache hits, and latency histograms.  The gauges (queue depth,
 * active sequences) and the engine's own counters are read from the engine
 * when the page is rendered.  One mutex; everything is cheap.
 */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include "engine.h"
#include "sbuf.h"

enum mx_hist { MX_TTFT, MX_ITL, MX_E2E, MX_IMAGE, MX_N_HIST };

struct metrics;

struct metrics *mx_new(void);
void mx_free(struct metrics *m);
/* One finished request: endpoint ("chat", "completions", "caption", "models",
 * "health", "metrics", "web", "other") and its HTTP status. */
void mx_request(struct metrics *m, const char *endpoint, int status);
void mx_observe(struct metrics *m, enum mx_hist h, double seconds);
void mx_active(struct metrics *m, int delta); /* requests in flight */
/* The whole page, text format 0.0.4; eng may be NULL (still loading). */
void mx_render(struct metrics *m, struct eng *eng, struct sbuf *out);

#endif
