/*
 * cmd_caption.c - `flamingo caption [-m MODEL] PATH...`: batch captioning of
 * files and folders to JSON Lines, for collections of millions of images.
 *
 * The images go through the server's engine (server/engine.h): while this
 * thread reads, decodes and preprocesses the next images, the engine thread
 * encodes them in batches and decodes every caption in flight together
 * (continuous batching).  Lines come out in input order, one per image:
 *   {"path": "...", "caption": "...", "ms": 12.3}   or   {"path": "...", "error": "..."}
 * and each is flushed, so that a job killed halfway loses nothing written.
 * With --output FILE the lines are appended to FILE, and the paths already
 * there (captioned or failed) are skipped: running the same command again
 * resumes.  --shard i/N keeps every N-th image of the sorted list, starting
 * at i, so that N machines (e.g. a Kubernetes indexed Job) split a
 * collection without talking to each other.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "../core/args.h"
#include "../core/clock.h"
#include "../server/engine.h"
#include "../server/sbuf.h"
#include "cli.h"

#define CAP_MAX_FILES (1L << 26) /* 67 M paths per run */
#define CAP_MAX_DEPTH 64

struct paths {
    char **v;
    long n, cap;
};

static int paths_add(struct paths *p, const char *s) {
    if (p->n == CAP_MAX_FILES) return -1;
    if (p->n == p->cap) {
        long cap = p->cap ? 2 * p->cap : 1024;
        char **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n] = strdup(s))) return -1;
    p->n++;
    return 0;
}

static void paths_free(struct paths *p) {
    for (long i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Image files by extension (folders hold other files too; a file named on
 * the command line is always tried). */
static int image_name(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tga", ".ppm",
                                      ".pgm", ".pnm",  ".pbm", ".psd", ".hdr", ".jpe", ".jfif"};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

/* Walks a folder (symbolic links to folders are not followed: no cycles). */
static int walk(const char *dir, int depth, struct paths *out, struct fl_err *err) {
    if (depth > CAP_MAX_DEPTH) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0; /* unreadable: nothing to caption there */
    struct dirent *e;
    int rc = 0;
    char path[4096];
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .. and hidden files */
        int n = snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        if (n < 0 || (size_t)n >= sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) < 0) continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(path, depth + 1, out, err);
        else if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && image_name(e->d_name))
            if (paths_add(out, path) < 0)
                rc = fl_err_set(err, FL_ELIMIT, "too many files (or out of memory)");
    }
    closedir(d);
    return rc;
}

/* The paths an earlier run already wrote to the output file. */
static int load_done(const char *file, struct paths *done, struct fl_err *err) {
    FILE *f = fopen(file, "r");
    if (!f) return errno == ENOENT ? 0 : fl_err_set(err, FL_EIO, "%s: %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
        if (cJSON_IsString(p) && paths_add(done, p->valuestring) < 0)
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        cJSON_Delete(j); /* a line cut by a kill is not JSON: its image runs again */
    }
    free(line);
    fclose(f);
    if (rc == 0) qsort(done->v, (size_t)done->n, sizeof *done->v, cmp_str);
    return rc;
}

static int is_done(const struct paths *done, const char *p) {
    return done->n && bsearch(&p, done->v, (size_t)done->n, sizeof *done->v, cmp_str) != NULL;
}

/* ---- output ------------------------------------------------------------------ */

struct out {
    FILE *f;
    long written, failed, total;
    double t0;
    int tty;
};

static void put_line(struct out *o, const char *path, const char *caption, size_t len, const char *error,
                     double ms) {
    struct sbuf b = {0};
    sb_puts(&b, "{\"path\":");
    sb_json_str(&b, path, strlen(path));
    if (error) {
        sb_puts(&b, ",\"error\":");
        sb_json_str(&b, error, strlen(error));
        o->failed++;
    } else {
        sb_puts(&b, ",\"caption\":");
        sb_json_str(&b, caption, len);
        sb_printf(&b, ",\"ms\":%.1f", ms);
    }
    sb_puts(&b, "}\n");
    if (!b.failed) fwrite(b.p, 1, b.len, o->f);
    fflush(o->f);
    sb_free(&b);
    o->written++;
    if (o->tty) {
        double dt = fl_now() - o->t0, rate = dt > 0 ? o->written / dt : 0;
        double eta = rate > 0 ? (o->total - o->written) / rate : 0;
        int bar = o->total ? (int)(30 * o->written / o->total) : 30;
        fprintf(stderr, "\r[%.*s%*s] %ld/%ld images, %.2f images/s, ETA %d:%02d:%02d, %ld errors ", bar,
                "==============================", 30 - bar, "", o->written, o->total, rate, (int)(eta / 3600),
                (int)(eta / 60) % 60, (int)eta % 60, o->failed);
    }
}

/* ---- the pipeline ---------------------------------------------------------- */

struct pending {
    const char *path;
    struct eng_job *job; /* NULL: error already known */
    char error[FL_ERR_MSG_SIZE];
};

/* Waits for a job and writes its line. */
static void finish(struct out *o, struct pending *p) {
    if (!p->job) {
        put_line(o, p->path, NULL, 0, p->error, 0);
        return;
    }
    eng_job_wait_over(p->job);
    struct eng_job *j = p->job;
    if (j->state == ENG_DONE)
        put_line(o, p->path, j->choices[0].text ? j->choices[0].text : "", j->choices[0].len, NULL,
                 1000 * (j->t_done - j->t_submit));
    else
        put_line(o, p->path, NULL, 0, j->error[0] ? j->error : "the generation failed", 0);
    eng_job_release(j);
    p->job = NULL;
}

/* One image into a job (or an error message). */
static struct eng_job *prepare(const struct fm_model *m, struct eng *e, const int *ids, int n_ids,
                               const struct gen_params *gp, const char *const *stop, const char *path,
                               char *error) {
    struct fl_err err = {0};
    struct eng_job *j = eng_job_new(n_ids, 1, 1);
    int rc = j ? 0 : fl_err_set(&err, FL_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(j->prompt, ids, (size_t)n_ids * sizeof *ids);
        j->gp = *gp;
        if (eng_job_set_stop(j, stop, gp->n_stop) < 0) rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
    }
    if (rc == 0) rc = cli_job_image(m, e, path, &j->images[0], &j->cached_images, &err);
    if (rc < 0) {
        if (j && j->images[0].entry) eng_cache_unpin(e, j->images[0].entry), j->images[0].entry = NULL;
        eng_job_release(j);
        snprintf(error, FL_ERR_MSG_SIZE, "%s", err.msg);
        return NULL;
    }
    return j;
}

int cmd_caption(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"output", required_argument, 0, 'o'},
        {"shard", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        CLI_GEN_OPTIONS,
        {0, 0, 0, 0},
    };
    const char *model = NULL, *prompt = "<image>Output:", *output = NULL;
    long shard_i = 0, shard_n = 1, batch = 16;
    int c, st, quiet = 0;
    struct gen_params gp;
    gen_defaults(&gp);
    gp.smp.seed = (uint64_t)time(NULL);
    while ((c = getopt_long(argc, argv, "m:p:o:n:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'o': output = optarg; break;
        case 'q': quiet = 1; break;
        case 's': {
            const char *slash = strchr(optarg, '/');
            char a[32];
            size_t la = slash ? (size_t)(slash - optarg) : 0;
            if (!slash || la >= sizeof a) return cli_usage("--shard takes i/N, e.g. 0/4, not '%s'", optarg);
            memcpy(a, optarg, la);
            a[la] = 0;
            if (args_int(slash + 1, 1, 1 << 20, &shard_n) < 0 || args_int(a, 0, shard_n - 1, &shard_i) < 0)
                return cli_usage("--shard takes i/N with 0 <= i < N, not '%s'", optarg);
            break;
        }
        case 'b':
            if ((st = cli_long("--batch", optarg, 1, 256, &batch))) return st;
            break;
        case 't':
            if ((st = cli_threads(optarg))) return st;
            break;
        case 'h':
            printf("usage: flamingo caption [-m MODEL] [options] PATH...\n"
                   "Captions every image in the files and folders given (folders recursively, by\n"
                   "extension), in batches, and writes one JSON line per image, in sorted order:\n"
                   "  {\"path\": ..., \"caption\": ..., \"ms\": ...} or {\"path\": ..., \"error\": ...}\n"
                   "  -m, --model MODEL   the bundled model by default\n"
                   "  -p, --prompt P      the prompt, with one <image> (\"<image>Output:\")\n"
                   "  -o, --output FILE   append to FILE, skipping the images already in it (resume)\n"
                   "  --shard i/N         only every N-th image of the sorted list, from the i-th\n"
                   "  --batch B           captions decoded together (16)\n"
                   "  -q, --quiet         no progress bar (it shows on a terminal only)\n"
                   "%s"
                   "  -t, --threads N\n"
                   "A file that cannot be read or decoded gets an error line; the run goes on and\n"
                   "exits 0.\n",
                   cli_gen_help);
            return 0;
        default:
            if ((st = cli_gen_option(c, optarg, &gp)) >= 0) {
                if (st) return st;
                break;
            }
            return 2;
        }
    }
    if (optind >= argc) return cli_usage("%s", "give at least one file or folder");
    struct fl_err err = {0};
    if (!model && !(model = cli_default_model(&err))) return cli_fail(err.msg);
    if (gp.n_logprobs) return cli_usage("%s", "no logprobs here");

    /* the list: sorted, sharded, minus what the output already has */
    struct paths all = {0}, done = {0};
    int rc = 0;
    for (int i = optind; rc == 0 && i < argc; i++) {
        struct stat stt;
        if (stat(argv[i], &stt) == 0 && S_ISDIR(stt.st_mode))
            rc = walk(argv[i], 0, &all, &err);
        else if (paths_add(&all, argv[i]) < 0)
            rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
    }
    if (rc == 0 && output) rc = load_done(output, &done, &err);
    struct paths todo = {0};
    if (rc == 0) {
        qsort(all.v, (size_t)all.n, sizeof *all.v, cmp_str);
        for (long i = 0; rc == 0 && i < all.n; i++) {
            if (i > 0 && !strcmp(all.v[i], all.v[i - 1])) continue; /* named twice */
            if (i % shard_n != shard_i || is_done(&done, all.v[i])) continue;
            if (paths_add(&todo, all.v[i]) < 0) rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        }
    }
    paths_free(&all);
    paths_free(&done);

    /* the model, the prompt, the engine */
    struct fm_model *m = NULL;
    struct eng *e = NULL;
    int *ids = NULL, n_ids = 0;
    if (rc == 0) rc = fm_open(model, &m, &err);
    if (rc == 0 && !m->tok) rc = fl_err_set(&err, FL_EFORMAT, "%s: the model file has no tokenizer", model);
    if (rc == 0 && (rc = cli_prompt_ids(m, prompt, 1, gp.max_new_tokens, &ids, &n_ids, &err)) == FL_EINVAL)
        fl_err_prefix(&err, "the prompt needs exactly one <image> marker");
    if (rc == 0) rc = gen_check(&gp, &err);
    if (rc == 0) {
        struct eng_config ec;
        eng_config_defaults(&ec);
        ec.max_seqs = (int)batch * gp.num_beams;
        ec.image_batch = (int)(batch < 8 ? batch : 8);
        ec.queue_len = (int)(2 * batch); /* the window below */
        ec.cache_bytes = 0;              /* each image once */
        ec.prefix_bytes = 0;             /* no two prompts share more than their text */
        rc = eng_start(m, &ec, &e, &err);
    }
    FILE *f = stdout;
    if (rc == 0 && output) {
        f = fopen(output, "a+");
        if (!f)
            rc = fl_err_set(&err, FL_EIO, "%s: %s", output, strerror(errno));
        else if (fseek(f, -1, SEEK_END) == 0 && fgetc(f) != '\n')
            fputc('\n', f); /* a line cut by a kill ends here */
        if (f) fseek(f, 0, SEEK_END);
    }
    if (rc == 0) {
        struct out o = {f, 0, 0, todo.n, fl_now(), !quiet && isatty(2)};
        /* a window of jobs in flight, lines written in order */
        const long window = 2 * batch;
        struct pending *ring = calloc((size_t)window, sizeof *ring);
        long head = 0, tail = 0; /* written up to head, submitted up to tail */
        const char *stops[GEN_MAX_STOP];
        for (int i = 0; i < gp.n_stop; i++)
            stops[i] = gp.stop[i];
        while (ring && head < todo.n) {
            while (tail < todo.n && tail - head < window) {
                struct pending *p = &ring[tail % window];
                p->path = todo.v[tail];
                p->job = prepare(m, e, ids, n_ids, &gp, stops, p->path, p->error);
                /* the queue holds the whole window: never full here */
                if (p->job && eng_submit(e, p->job, &err) < 0) {
                    snprintf(p->error, sizeof p->error, "%s", err.msg);
                    eng_job_release(p->job);
                    p->job = NULL;
                }
                tail++;
            }
            finish(&o, &ring[head % window]);
            head++;
        }
        if (o.tty && todo.n) fprintf(stderr, "\n");
        if (!quiet)
            fprintf(stderr, "flamingo: caption: %ld images, %ld errors, %.1f s\n", o.written, o.failed,
                    fl_now() - o.t0);
        free(ring);
        if (!ring) rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
    }
    if (f && f != stdout) fclose(f);
    eng_stop(e, 0);
    fm_close(m);
    free(ids);
    paths_free(&todo);
    return rc < 0 ? cli_fail(err.msg) : 0;
}
