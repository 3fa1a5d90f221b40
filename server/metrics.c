/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_MAX_SERIES 64
#define MX_BUCKETS    14

static const double bucket_le[MX_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60,   120};

static const char *const hist_name[MX_N_HIST] = {
    "flamingo_time_to_first_token_seconds",
    "flamingo_inter_token_latency_seconds",
    "flamingo_request_duration_seconds",
    "flamingo_image_encode_seconds",
};
static const char *const hist_help[MX_N_HIST] = {
    "Time from the request's arrival to its first generated token.",
    "Time between consecutive generated tokens of a sequence.",
    "Time from the request's arrival to the end of its response.",
    "Time a request spent in image-encode steps (requests with new images only).",
};

struct series {
    char endpoint[16];
    int status;
    long long count;
};

struct hist {
    long long counts[MX_BUCKETS]; /* per bucket, not cumulative */
    long long count;
    double sum;
};

struct metrics {
    pthread_mutex_t mu;
    struct series req[MX_MAX_SERIES];
    int n_req;
    struct hist h[MX_N_HIST];
    int active;
};

struct metrics *mx_new(void) {
    struct metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void mx_free(struct metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void mx_request(struct metrics *m, const char *endpoint, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_req && (m->req[i].status != status || strcmp(m->req[i].endpoint, endpoint)))
        i++;
    if (i == m->n_req && i < MX_MAX_SERIES) {
        snprintf(m->req[i].endpoint, sizeof m->req[i].endpoint, "%s", endpoint);
        m->req[i].status = status;
        m->n_req++;
    }
    if (i < MX_MAX_SERIES) m->req[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void mx_observe(struct metrics *m, enum mx_hist h, double seconds) {
    pthread_mutex_lock(&m->mu);
    struct hist *x = &m->h[h];
    int b = 0;
    while (b < MX_BUCKETS && seconds > bucket_le[b])
        b++;
    if (b < MX_BUCKETS) x->counts[b]++;
    x->count++;
    x->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void mx_active(struct metrics *m, int delta) {
    pthread_mutex_lock(&m->mu);
    m->active += delta;
    pthread_mutex_unlock(&m->mu);
}

static void counter(struct sbuf *o, const char *name, const char *help, long long v) {
    sb_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name, v);
}

static void gauge(struct sbuf *o, const char *name, const char *help, double v) {
    sb_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

void mx_render(struct metrics *m, struct eng *eng, struct sbuf *o) {
    struct eng_stats st = {0};
    if (eng) eng_stats(eng, &st);
    pthread_mutex_lock(&m->mu);
    sb_puts(o, "# HELP flamingo_requests_total HTTP requests answered, by endpoint and status.\n"
               "# TYPE flamingo_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++)
        sb_printf(o, "flamingo_requests_total{endpoint=\"%s\",status=\"%d\"} %lld\n", m->req[i].endpoint,
                  m->req[i].status, m->req[i].count);
    gauge(o, "flamingo_requests_in_flight", "Requests being answered now.", m->active);
    for (int h = 0; h < MX_N_HIST; h++) {
        const struct hist *x = &m->h[h];
        sb_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", hist_name[h], hist_help[h], hist_name[h]);
        long long cum = 0;
        for (int b = 0; b < MX_BUCKETS; b++) {
            cum += x->counts[b];
            sb_printf(o, "%s_bucket{le=\"%g\"} %lld\n", hist_name[h], bucket_le[b], cum);
        }
        sb_printf(o, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.9g\n%s_count %lld\n", hist_name[h], x->count,
                  hist_name[h], x->sum, hist_name[h], x->count);
    }
    pthread_mutex_unlock(&m->mu);
    gauge(o, "flamingo_queue_depth", "Requests waiting for the engine.", st.queued);
    gauge(o, "flamingo_active_requests", "Requests the engine is working on.", st.active_jobs);
    gauge(o, "flamingo_active_sequences", "Sequences decoding (choices x beams).", st.active_seqs);
    counter(o, "flamingo_engine_steps_total", "Forward passes of the engine.", st.steps);
    counter(o, "flamingo_prompt_tokens_total", "Prompt tokens run through the model.", st.prompt_tokens);
    counter(o, "flamingo_generated_tokens_total", "Tokens generated.", st.generated_tokens);
    counter(o, "flamingo_prompt_tokens_cached_total",
            "Prompt tokens taken from the prefix cache instead of being run.", st.cached_tokens);
    counter(o, "flamingo_prefix_cache_hits_total", "Requests that reused a cached prompt prefix.",
            st.prefix.hits);
    counter(o, "flamingo_prefix_cache_misses_total", "Requests that found no cached prompt prefix.",
            st.prefix.misses);
    counter(o, "flamingo_prefix_cache_evictions_total", "Prefixes evicted from the prefix cache.",
            st.prefix.evictions);
    gauge(o, "flamingo_prefix_cache_bytes", "Bytes held by the prefix cache.", (double)st.prefix.bytes);
    gauge(o, "flamingo_prefix_cache_entries", "Sequences held by the prefix cache.",
          (double)st.prefix.entries);
    counter(o, "flamingo_image_encodes_total", "Images run through the vision tower and the Perceiver.",
            st.image_encodes);
    counter(o, "flamingo_image_cache_hits_total", "Images found in the image cache.", st.cache.hits);
    counter(o, "flamingo_image_cache_misses_total", "Images not in the image cache.", st.cache.misses);
    counter(o, "flamingo_image_cache_evictions_total", "Images evicted from the image cache.",
            st.cache.evictions);
    gauge(o, "flamingo_image_cache_bytes", "Bytes held by the image cache.", (double)st.cache.bytes);
    gauge(o, "flamingo_image_cache_entries", "Images held by the image cache.", (double)st.cache.entries);
    gauge(o, "flamingo_image_cache_budget_bytes", "The image cache's byte budget.", (double)st.cache.budget);
}
