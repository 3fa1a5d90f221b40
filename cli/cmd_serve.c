/*
 * cmd_serve.c - `flamingo serve`: the HTTP server (server/http.h) over one
 * model.  Every flag also reads an environment variable (FLAMINGO_ and the
 * flag's name in capitals, '-' as '_'); a flag on the command line wins.
 * SIGTERM or SIGINT: stop accepting, finish what is in flight (up to
 * --drain-timeout), exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/args.h"
#include "../core/log.h"
#include "../core/mat.h"
#include "../model/flamingo.h"
#include "../server/http.h"
#include "cli.h"

static int g_sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t g_signals;

/* The first SIGTERM or SIGINT starts the drain; a second SIGINT (Ctrl-C
 * again) exits at once; a second SIGTERM changes nothing. */
static void on_signal(int sig) {
    if (g_signals++ && sig == SIGINT) _exit(130);
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(g_sig_pipe[1], &b, 1);
    (void)w;
}

enum opt_kind { O_STR, O_INT, O_BYTES, O_SECONDS };

struct opt {
    const char *name, *help;
    enum opt_kind kind;
    void *dst; /* const char **, int *, size_t * (O_BYTES) or double * (O_SECONDS) */
    long long lo, hi;
};

/* "123", "64K", "512M", "2G" (powers of 1024) */
static int parse_bytes(const char *s, long long lo, long long hi, size_t *out) {
    char *end;
    if (!*s) return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1ull << 30, end++;
    if (*end || end == s || (s[0] < '0' || s[0] > '9')) return -1;
    if (v > (unsigned long long)hi / mul) return -1;
    v *= mul;
    if ((long long)v < lo) return -1;
    *out = (size_t)v;
    return 0;
}

/* who: the flag ("--port") or the environment variable it came from */
static int set_opt(const struct opt *o, const char *val, const char *who) {
    long n;
    switch (o->kind) {
    case O_STR: *(const char **)o->dst = val; return 0;
    case O_INT:
        if (args_int(val, (long)o->lo, (long)o->hi, &n) == 0) {
            *(int *)o->dst = (int)n;
            return 0;
        }
        fprintf(stderr, "flamingo: serve: %s must be an integer in [%lld, %lld], not '%s'\n", who, o->lo,
                o->hi, val);
        return 2;
    case O_BYTES:
        if (parse_bytes(val, o->lo, o->hi, (size_t *)o->dst) == 0) return 0;
        fprintf(
            stderr,
            "flamingo: serve: %s must be a size in [%lld, %lld] bytes (suffix K, M or G allowed), not '%s'\n",
            who, o->lo, o->hi, val);
        return 2;
    case O_SECONDS:
        if (args_int(val, (long)o->lo, (long)o->hi, &n) == 0) {
            *(double *)o->dst = (double)n;
            return 0;
        }
        fprintf(stderr, "flamingo: serve: %s must be seconds in [%lld, %lld], not '%s'\n", who, o->lo, o->hi,
                val);
        return 2;
    }
    return 2;
}

static void env_name(const char *flag, char *out, size_t cap) {
    size_t w = (size_t)snprintf(out, cap, "FLAMINGO_");
    for (const char *p = flag; *p && w + 1 < cap; p++)
        out[w++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[w] = 0;
}

int cmd_serve(int argc, char **argv) {
    struct srv_config cfg;
    srv_config_defaults(&cfg);
    const char *model = NULL;
    int threads = 0, drain_s = 30, quiet = 0;
    double timeout_s = cfg.lim.timeout_s;
    int max_pixels = (int)cfg.lim.max_image_pixels;
    const struct opt opts[] = {
        {"model", "the model file (the bundled weights/flamingo-tiny.safetensors)", O_STR, &model, 0, 0},
        {"host", "address to bind (127.0.0.1; 0.0.0.0 or :: to expose it)", O_STR, &cfg.host, 0, 0},
        {"port", "TCP port (8080; 0 = any free port)", O_INT, &cfg.port, 0, 65535},
        {"api-key", "require Authorization: Bearer KEY on /v1/*", O_STR, &cfg.api_key, 0, 0},
        {"model-name", "the model's id in the API (the file's name without .safetensors)", O_STR,
         &cfg.model_id, 0, 0},
        {"threads", "compute threads (all cores)", O_INT, &threads, 1, 1024},
        {"max-seqs", "sequences decoded together; n x num_beams of a request count (16)", O_INT,
         &cfg.eng.max_seqs, 1, 256},
        {"queue-len", "requests waiting beyond that; more get 429 (64)", O_INT, &cfg.eng.queue_len, 1,
         100000},
        {"step-rows", "rows of one forward pass: decode rows + prompt chunks (256)", O_INT,
         &cfg.eng.step_rows, 1, 8192},
        {"image-batch", "images encoded per step (8)", O_INT, &cfg.eng.image_batch, 1, 64},
        {"cache-bytes", "image cache budget (1G)", O_BYTES, &cfg.eng.cache_bytes, 0, 1LL << 40},
        {"prefix-cache-bytes", "prompt-prefix KV cache budget (1G; 0: off)", O_BYTES, &cfg.eng.prefix_bytes,
         0, 1LL << 40},
        {"max-body-bytes", "request body limit (64M)", O_BYTES, &cfg.lim.max_body_bytes, 1024, 1LL << 32},
        {"max-image-bytes", "one encoded image (32M)", O_BYTES, &cfg.lim.max_image_bytes, 1024, 1LL << 31},
        {"max-image-pixels", "width x height of one image (50000000)", O_INT, &max_pixels, 1, 2000000000},
        {"max-images", "images per request (16)", O_INT, &cfg.lim.max_images, 0, 256},
        {"max-prompt-tokens", "prompt tokens per request (0 = the model's context)", O_INT,
         &cfg.lim.max_prompt_tokens, 0, 1 << 20},
        {"max-tokens", "the most max_tokens a request may ask for, and its default (512)", O_INT,
         &cfg.lim.max_tokens, 1, 1 << 20},
        {"timeout", "seconds a request may take in all (600; 0 = none)", O_SECONDS, &timeout_s, 0, 86400},
        {"max-connections", "open connections (256)", O_INT, &cfg.max_connections, 1, 65536},
        {"max-connections-per-ip", "open connections from one address (0 = no limit)", O_INT,
         &cfg.max_connections_per_ip, 0, 65536},
        {"max-buffered-bytes", "request bodies held at once, all connections together (1G)", O_BYTES,
         &cfg.max_buffered_bytes, 1024, 1LL << 40},
        {"max-prepare", "requests parsed and their images decoded at once (4)", O_INT, &cfg.max_prepare, 1,
         1024},
        {"body-timeout", "seconds a request's upload may take in all (300; 0 = none)", O_INT,
         &cfg.body_timeout_s, 0, 86400},
        {"idle-timeout", "seconds a connection may stay silent (slow uploads, idle keep-alive) (60)", O_INT,
         &cfg.conn_timeout_s, 1, 86400},
        {"keepalive-ms", "SSE comment (: keep-alive) after this long without an event (5000)", O_INT,
         &cfg.keepalive_ms, 1, 60000},
        {"drain-timeout", "seconds SIGTERM waits for requests in flight (30)", O_INT, &drain_s, 0, 86400},
        {0, 0, 0, 0, 0, 0},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] - 1 };

    /* environment first, then the command line */
    for (int i = 0; i < N_OPTS; i++) {
        char env[64];
        env_name(opts[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && *v) {
            int st = set_opt(&opts[i], v, env);
            if (st) return st;
        }
    }
    struct option lo[N_OPTS + 4];
    for (int i = 0; i < N_OPTS; i++)
        lo[i] = (struct option){opts[i].name, required_argument, 0, 1000 + i};
    lo[N_OPTS] = (struct option){"quiet", no_argument, 0, 'q'};
    lo[N_OPTS + 1] = (struct option){"help", no_argument, 0, 'h'};
    lo[N_OPTS + 2] = (struct option){0, 0, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "m:t:qh", lo, NULL)) != -1) {
        int st = 0;
        if (c == 'm')
            model = optarg;
        else if (c == 't')
            st = set_opt(&opts[5], optarg, "--threads");
        else if (c == 'q')
            quiet = 1;
        else if (c >= 1000 && c < 1000 + N_OPTS) {
            char flag[64];
            snprintf(flag, sizeof flag, "--%s", opts[c - 1000].name);
            st = set_opt(&opts[c - 1000], optarg, flag);
        } else if (c == 'h') {
            printf("usage: flamingo serve [-m MODEL] [--host H] [--port P] [options]\n"
                   "The HTTP API (docs/API.md): /v1/chat/completions, /v1/completions, /v1/caption,\n"
                   "/v1/models, /health, /metrics, and a web page at /.  Every option also reads\n"
                   "the environment variable FLAMINGO_<NAME> (e.g. FLAMINGO_PORT=9000); a flag wins.\n");
            for (int i = 0; i < N_OPTS; i++) {
                char env[64];
                env_name(opts[i].name, env, sizeof env);
                printf("  --%-18s %s [%s]\n", opts[i].name, opts[i].help, env);
            }
            printf("  -m is --model, -t is --threads; -q, --quiet: no log line per request\n"
                   "SIGTERM or SIGINT stops accepting, finishes what is in flight, exits 0.\n");
            return 0;
        } else
            return 2;
        if (st) return st;
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    struct fl_err err = {0};
    if (!model && !(model = cli_default_model(&err))) return cli_fail(err.msg);
    cfg.lim.max_image_pixels = max_pixels;
    cfg.lim.timeout_s = timeout_s;
    cfg.lim.max_n = cfg.eng.max_seqs;
    /* a test aid, not a flag: slows every engine step so that tests can hold
     * a request in flight (a full queue, keep-alive comments) whatever the
     * machine's speed */
    const char *delay = getenv("FLAMINGO_DEBUG_STEP_MS");
    if (delay && *delay) {
        const struct opt o = {"debug-step-ms", "", O_INT, &cfg.eng.step_delay_ms, 0, 10000};
        int st = set_opt(&o, delay, "FLAMINGO_DEBUG_STEP_MS");
        if (st) return st;
    }

    /* the model's id: the file name without its folder and extension */
    char id[128];
    if (!strcmp(cfg.model_id, "flamingo")) {
        const char *base = strrchr(model, '/');
        base = base ? base + 1 : model;
        snprintf(id, sizeof id, "%s", base);
        char *dot = strstr(id, ".safetensors");
        if (dot && dot != id) *dot = 0;
        cfg.model_id = id;
    }
    struct stat stt;
    if (stat(model, &stt) == 0) cfg.created = (long)stt.st_mtime;

    /* SIGTERM/SIGINT: a handler (in whatever thread the kernel picks: OpenBLAS
     * starts threads of its own before main, so blocking the signals in ours
     * is not enough) writes the signal to a pipe that this thread reads */
    if (pipe(g_sig_pipe) < 0) return cli_fail("cannot create a pipe");
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (threads && mat_init(threads) < 0) return cli_fail("cannot start worker threads");
    if (!quiet && fl_log_get_level() < FL_LOG_INFO) fl_log_set_level(FL_LOG_INFO);

    struct server *s = NULL;
    if (srv_start(&cfg, &s, &err) < 0) return cli_fail(err.msg);
    const char *h = cfg.host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "flamingo: serve: loading %s; http://%s%s%s:%d/ answers 503 until it is ready\n", model,
            v6 ? "[" : "", h, v6 ? "]" : "", srv_port(s));
    struct fm_model *m = NULL;
    int rc = fm_open(model, &m, &err);
    if (rc == 0) rc = srv_ready(s, m, &err);
    if (rc < 0) {
        srv_stop(s, 0);
        fm_close(m);
        return cli_fail(err.msg);
    }
    fprintf(stderr, "flamingo: serve: model \"%s\", %d threads; listening on http://%s%s%s:%d/\n",
            cfg.model_id, mat_threads(), v6 ? "[" : "", h, v6 ? "]" : "", srv_port(s));
    fflush(stderr);
    unsigned char sig = 0;
    while (read(g_sig_pipe[0], &sig, 1) < 0 && errno == EINTR)
        ;
    fprintf(stderr, "flamingo: serve: %s: finishing the requests in flight (up to %d s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", drain_s);
    srv_stop(s, drain_s * 1000);
    fm_close(m);
    fprintf(stderr, "flamingo: serve: stopped\n");
    return 0;
}
