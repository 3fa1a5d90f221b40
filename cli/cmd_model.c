/*
 * cmd_model.c - the language-side subcommands: run (generate an answer,
 * streamed), tokenize (text <-> ids as JSON) and logits (every position's
 * scores, for checking against other implementations).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "../core/file.h"
#include "../core/mat.h"
#include "../model/flamingo.h"
#include "../model/generate.h"
#include "../model/tokenizer.h"
#include "cli.h"

/* Opens the model, tokenizes the prompt, checks the <image> count, and
 * encodes the images into a new context. */
struct prepared {
    struct fm_model *m;
    struct fm_ctx *ctx;
    int *ids;
    int n_ids;
};

static void prepared_free(struct prepared *p) {
    fm_ctx_free(p->ctx);
    fm_close(p->m);
    free(p->ids);
}

static int prepare(const char *model, const char *const *images, int n_images, const char *prompt,
                   int extra_tokens, struct prepared *p, struct fl_err *err) {
    memset(p, 0, sizeof *p);
    int rc = fm_open(model, &p->m, err);
    if (rc < 0) return rc;
    if (!p->m->tok) return fl_err_set(err, FL_EFORMAT, "%s: the model file has no tokenizer", model);
    if ((rc = cli_prompt_ids(p->m, prompt, n_images, extra_tokens, &p->ids, &p->n_ids, err)) < 0) return rc;
    const int ctx_len = p->m->cfg.lm.max_seq_len;
    if ((rc = fm_ctx_init(p->m, n_images, 64, ctx_len, &p->ctx, err)) < 0) return rc;
    float *pixels = NULL;
    rc = cli_load_pixels(images, n_images, &p->m->cfg.preprocess, &pixels, err);
    if (rc == 0 && n_images) rc = fm_add_images(p->ctx, pixels, n_images, err);
    free(pixels);
    return rc;
}

/* ---- run ------------------------------------------------------------------ */

static int print_step(void *ctx, const struct gen_step *step) {
    (void)ctx;
    if (step->text_len) {
        fwrite(step->text, 1, step->text_len, stdout);
        fflush(stdout);
    }
    return ferror(stdout) ? 1 : 0;
}

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"image", required_argument, 0, 'i'},
        {"prompt", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        CLI_GEN_OPTIONS,
        {0, 0, 0, 0},
    };
    const char *model = NULL, *prompt = NULL, *images[CLI_MAX_IMAGES];
    int n_images = 0, c, st;
    struct gen_params gp;
    gen_defaults(&gp);
    gp.smp.seed = (uint64_t)time(NULL);
    while ((c = getopt_long(argc, argv, "m:i:p:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i':
            if (n_images == CLI_MAX_IMAGES) return cli_usage("at most %s images", "256");
            images[n_images++] = optarg;
            break;
        case 'p': prompt = optarg; break;
        case 't':
            if ((st = cli_threads(optarg))) return st;
            break;
        case 'h':
            printf("usage: flamingo run [-m MODEL] [-i IMG ...] -p PROMPT [options]\n"
                   "Generates the answer and streams it to stdout.  The prompt is OpenFlamingo's\n"
                   "interleaved format: one <image> marker per -i image, in order, e.g.\n"
                   "  -i cat.jpg -p '<image>Question:What animal is this? Short answer:'\n"
                   "%s"
                   "  -t, --threads N\n"
                   "Generation ends at <|endofchunk|>, the end-of-text token, a stop string or -n.\n",
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
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    if (!prompt) return cli_usage("%s", "-p PROMPT is required");
    struct fl_err err = {0};
    if (!model && !(model = cli_default_model(&err))) return cli_fail(err.msg);
    struct prepared p;
    int rc = prepare(model, images, n_images, prompt, gp.max_new_tokens, &p, &err);
    struct gen_result res;
    if (rc == 0) rc = gen_run(p.ctx, p.ids, p.n_ids, &gp, print_step, NULL, NULL, 0, &res, &err);
    if (rc == 0) {
        printf("\n");
        fflush(stdout);
    }
    prepared_free(&p);
    return rc < 0 ? cli_fail(err.msg) : 0;
}

/* ---- logits --------------------------------------------------------------- */

int cmd_logits(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"image", required_argument, 0, 'i'},
        {"prompt", required_argument, 0, 'p'},
        {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *prompt = NULL, *out = NULL, *images[CLI_MAX_IMAGES];
    int n_images = 0, c, st;
    while ((c = getopt_long(argc, argv, "m:i:p:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i':
            if (n_images == CLI_MAX_IMAGES) return cli_usage("at most %s images", "256");
            images[n_images++] = optarg;
            break;
        case 'p': prompt = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if ((st = cli_threads(optarg))) return st;
            break;
        case 'h':
            printf("usage: flamingo logits -m MODEL [-i IMG ...] -p PROMPT -o OUT\n"
                   "Writes the logits of every prompt position: float32 [tokens][vocabulary],\n"
                   "row-major little-endian (no sampling, no banned tokens).\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    if (!model || !prompt || !out) return cli_usage("%s", "-m MODEL, -p PROMPT and -o OUT are required");
    struct fl_err err = {0};
    struct prepared p;
    int rc = prepare(model, images, n_images, prompt, 0, &p, &err);
    float *logits = NULL;
    struct lm_seq *seq = NULL;
    if (rc == 0) {
        size_t V = (size_t)p.m->cfg.lm.vocab_size;
        logits = malloc((size_t)p.n_ids * V * sizeof *logits);
        rc =
            logits ? lm_seq_init(p.m->lm, p.n_ids, &seq, &err) : fl_err_set(&err, FL_ENOMEM, "out of memory");
        if (rc == 0)
            rc = lm_forward(p.m->lm, seq, p.ctx->media, p.ctx->scratch, p.ids, p.n_ids, logits, 1, &err);
        if (rc == 0) rc = fl_write_file(out, logits, (size_t)p.n_ids * V * sizeof *logits, &err);
    }
    lm_seq_free(seq);
    free(logits);
    prepared_free(&p);
    return rc < 0 ? cli_fail(err.msg) : 0;
}

/* ---- tokenize ------------------------------------------------------------- */

static int load_tokenizer(const char *model, const char *file, struct tok **t, struct st_file **f,
                          struct fl_err *err) {
    if (file) {
        uint8_t *buf;
        size_t len;
        int rc = fl_read_file(file, 64u << 20, &buf, &len, err);
        if (rc < 0) return rc;
        rc = tok_load((const char *)buf, len, t, err);
        free(buf);
        if (rc < 0) fl_err_prefix(err, "%s", file);
        return rc;
    }
    int rc = st_open(model, f, err);
    if (rc < 0) return rc;
    const char *json = st_metadata(*f, "tokenizer");
    if (!json) return fl_err_set(err, FL_EFORMAT, "%s: the model file has no tokenizer", model);
    rc = tok_load(json, strlen(json), t, err);
    if (rc < 0) fl_err_prefix(err, "%s", model);
    return rc;
}

/* One input (a string, or a JSON array of ids with --decode) -> one line. */
static int tokenize_one(const struct tok *t, const char *text, size_t len, int decode, struct fl_err *err) {
    if (!decode) {
        int cap = (int)len + 8, n = 0;
        int *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) return fl_err_set(err, FL_ENOMEM, "out of memory");
        int rc = tok_encode(t, text, len, ids, cap, &n, err);
        if (rc == 0) {
            putchar('[');
            for (int i = 0; i < n; i++)
                printf(i ? ",%d" : "%d", ids[i]);
            printf("]\n");
        }
        free(ids);
        return rc;
    }
    cJSON *arr = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return fl_err_set(err, FL_EINVAL, "--decode expects a JSON array of token ids");
    }
    size_t cap = 16, w = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= tok_vocab_size(t) ||
            it->valuedouble != (int)it->valuedouble) {
            cJSON_Delete(arr);
            return fl_err_set(err, FL_EINVAL, "token ids must be integers in [0, %d)", tok_vocab_size(t));
        }
        cap += tok_decode_cap(t, (int)it->valuedouble);
    }
    char *buf = malloc(cap);
    struct tok_stream stream = {0};
    cJSON_ArrayForEach(it, arr) w += tok_decode_next(t, &stream, (int)it->valuedouble, buf + w, cap - w);
    w += tok_decode_end(&stream, buf + w);
    cJSON_Delete(arr);
    /* cJSON strings stop at NUL: write the JSON string by hand */
    putchar('"');
    for (size_t i = 0; i < w; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    printf("\"\n");
    free(buf);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"tokenizer", required_argument, 0, 'k'},
        {"prompt", required_argument, 0, 'p'}, {"decode", no_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    const char *model = NULL, *file = NULL, *prompt = NULL;
    int decode = 0, c;
    while ((c = getopt_long(argc, argv, "m:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': file = optarg; break;
        case 'p': prompt = optarg; break;
        case 'd': decode = 1; break;
        case 'h':
            printf("usage: flamingo tokenize (-m MODEL | --tokenizer tokenizer.json) [-p TEXT] [--decode]\n"
                   "Prints the ids of TEXT as a JSON array.  Without -p, reads one JSON string per line\n"
                   "on stdin and writes one JSON array per line.  --decode does the reverse: JSON arrays\n"
                   "of ids in (-p or stdin), JSON strings out.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    if (!model == !file) return cli_usage("%s", "give exactly one of -m MODEL and --tokenizer FILE");
    struct fl_err err = {0};
    struct tok *t = NULL;
    struct st_file *f = NULL;
    int rc = load_tokenizer(model, file, &t, &f, &err);
    if (rc == 0 && prompt) {
        rc = tokenize_one(t, prompt, strlen(prompt), decode, &err);
    } else if (rc == 0) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long line_no = 0;
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
            line_no++;
            if (n > CLI_MAX_PROMPT_BYTES) {
                rc = fl_err_set(&err, FL_ELIMIT, "stdin line %ld is over %d bytes", line_no,
                                CLI_MAX_PROMPT_BYTES);
                break;
            }
            if (decode) {
                rc = tokenize_one(t, line, (size_t)n, 1, &err);
            } else {
                cJSON *s = cJSON_ParseWithLength(line, (size_t)n);
                if (!cJSON_IsString(s))
                    rc = fl_err_set(&err, FL_EINVAL, "stdin line %ld is not a JSON string", line_no);
                else
                    rc = tokenize_one(t, s->valuestring, strlen(s->valuestring), 0, &err);
                cJSON_Delete(s);
            }
            if (rc < 0) fl_err_prefix(&err, "stdin line %ld", line_no);
        }
        free(line);
    }
    tok_free(t);
    st_close(f);
    return rc < 0 ? cli_fail(err.msg) : 0;
}
