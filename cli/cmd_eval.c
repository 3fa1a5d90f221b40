/*
 * cmd_eval.c - `flamingo eval --data eval.jsonl`: a model's accuracy on an
 * evaluation set, computed by the C engine (the same engine the server and
 * `caption` use, batched).  An item is one JSON line:
 *   {"type": "color", "shots": 0, "images": ["images/q0001.jpg"],
 *    "prompt": "<image>Question:What color is the star? Short answer:", "answer": "blue"}
 * (paths relative to the file's folder; "image" may stand for a single
 * image).  The score is exact match of the generated text, stripped of
 * surrounding whitespace, with "answer" - the rule of tools/train/evalset.py,
 * which writes the bundled model's held-out set (`make eval`).  Accuracy is
 * reported per type and number of shots, as a table or (--json) one object.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "../core/clock.h"
#include "../server/engine.h"
#include "cli.h"

#define EVAL_MAX_ITEMS  1000000
#define EVAL_MAX_GROUPS 64

struct item {
    char type[32];
    int shots;
    char **images;
    int n_images;
    char *prompt, *answer;
};

struct group {
    char type[32];
    int shots;
    long n, right;
};

static void item_free(struct item *it) {
    for (int i = 0; i < it->n_images; i++)
        free(it->images[i]);
    free(it->images);
    free(it->prompt);
    free(it->answer);
}

static char *join(const char *dir, const char *rel) {
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", rel[0] == '/' ? "" : dir, rel[0] == '/' ? "" : "/", rel);
    return p;
}

static int parse_item(const char *line, size_t len, const char *dir, struct item *it, struct fl_err *err) {
    memset(it, 0, sizeof *it);
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type"),
                *shots = cJSON_GetObjectItemCaseSensitive(j, "shots");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt"),
                *answer = cJSON_GetObjectItemCaseSensitive(j, "answer");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images"),
                *image = cJSON_GetObjectItemCaseSensitive(j, "image");
    int rc = 0;
    if (!cJSON_IsObject(j) || !cJSON_IsString(prompt) || !cJSON_IsString(answer))
        rc = fl_err_set(err, FL_EINVAL, "an item needs \"prompt\" and \"answer\" strings");
    else if (images && !cJSON_IsArray(images))
        rc = fl_err_set(err, FL_EINVAL, "\"images\" must be an array of paths");
    if (rc == 0) {
        snprintf(it->type, sizeof it->type, "%s", cJSON_IsString(type) ? type->valuestring : "all");
        it->shots = cJSON_IsNumber(shots) ? shots->valueint : 0;
        it->prompt = strdup(prompt->valuestring);
        it->answer = strdup(answer->valuestring);
        int n = images ? cJSON_GetArraySize(images) : cJSON_IsString(image) ? 1 : 0;
        it->images = calloc((size_t)(n ? n : 1), sizeof *it->images);
        if (!it->prompt || !it->answer || !it->images) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < n; i++) {
            const cJSON *p = images ? cJSON_GetArrayItem(images, i) : image;
            if (!cJSON_IsString(p))
                rc = fl_err_set(err, FL_EINVAL, "image paths must be strings");
            else if (!(it->images[it->n_images++] = join(dir, p->valuestring)))
                rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        }
    }
    cJSON_Delete(j);
    if (rc < 0) item_free(it);
    return rc;
}

/* The item's job: its prompt's tokens and its images (by the SHA-256 of
 * their bytes, so that the shots' images are encoded once). */
static struct eng_job *make_job(const struct fm_model *m, struct eng *e, const struct item *it,
                                const struct gen_params *gp, struct fl_err *err) {
    int *ids = NULL, n_ids = 0;
    int rc = cli_prompt_ids(m, it->prompt, it->n_images, gp->max_new_tokens, &ids, &n_ids, err);
    struct eng_job *j = rc == 0 ? eng_job_new(n_ids, it->n_images, 1) : NULL;
    if (rc == 0 && !j) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(j->prompt, ids, (size_t)n_ids * sizeof *ids);
        j->gp = *gp;
    }
    for (int i = 0; rc == 0 && i < it->n_images; i++) {
        int cached = 0;
        rc = cli_job_image(m, e, it->images[i], &j->images[i], &cached, err);
        j->cached_images += cached;
    }
    free(ids);
    if (rc < 0 && j) {
        for (int i = 0; i < j->n_images; i++)
            if (j->images[i].entry) eng_cache_unpin(e, j->images[i].entry), j->images[i].entry = NULL;
        eng_job_release(j);
        j = NULL;
    }
    return j;
}

static int answer_matches(const char *text, size_t len, const char *want) {
    while (len && isspace((unsigned char)*text))
        text++, len--;
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    return strlen(want) == len && !memcmp(text, want, len);
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},
        {"batch", required_argument, 0, 'b'},
        {"limit", required_argument, 0, 'l'},
        {"show", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        CLI_GEN_OPTIONS,
        {0, 0, 0, 0},
    };
    const char *model = NULL, *data = NULL;
    long batch = 16, limit = EVAL_MAX_ITEMS, show = 0;
    int c, st, json = 0;
    struct gen_params gp;
    gen_defaults(&gp);
    gp.smp.seed = 1;
    while ((c = getopt_long(argc, argv, "m:d:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = 1; break;
        case 'b':
            if ((st = cli_long("--batch", optarg, 1, 256, &batch))) return st;
            break;
        case 'l':
            if ((st = cli_long("--limit", optarg, 1, EVAL_MAX_ITEMS, &limit))) return st;
            break;
        case 's':
            if ((st = cli_long("--show", optarg, 0, 1000, &show))) return st;
            break;
        case 't':
            if ((st = cli_threads(optarg))) return st;
            break;
        case 'h':
            printf("usage: flamingo eval [-m MODEL] --data EVAL.jsonl [options]\n"
                   "Accuracy (exact match, surrounding whitespace stripped) per type and shots of\n"
                   "the items in EVAL.jsonl (see tools/train/evalset.py; `make eval`), generated by\n"
                   "this engine, greedy by default.\n"
                   "  --json       one JSON object instead of the table\n"
                   "  --batch B    items decoded together (16)\n"
                   "  --limit N    only the first N items\n"
                   "  --show K     print the first K wrong answers (stderr; each with its query image)\n"
                   "%s"
                   "  -t, --threads N\n",
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
    if (!data) return cli_usage("%s", "--data EVAL.jsonl is required");
    struct fl_err err = {0};
    if (!model && !(model = cli_default_model(&err))) return cli_fail(err.msg);

    /* the items */
    char *dir = strdup(data);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = 0;
    else if (dir)
        strcpy(dir, ".");
    FILE *f = fopen(data, "r");
    if (!f) {
        free(dir);
        return cli_fail("cannot open the --data file");
    }
    struct item *items = NULL;
    long n = 0, cap = 0, line_no = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && n < limit && (len = getline(&line, &lcap, f)) > 0) {
        line_no++;
        if (len <= 1) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct item *v = realloc(items, (size_t)cap * sizeof *v);
            if (!v) {
                rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
                break;
            }
            items = v;
        }
        if ((rc = parse_item(line, (size_t)len, dir, &items[n], &err)) < 0)
            fl_err_prefix(&err, "%s line %ld", data, line_no);
        else
            n++;
    }
    free(line);
    fclose(f);
    free(dir);

    struct fm_model *m = NULL;
    struct eng *e = NULL;
    if (rc == 0) rc = fm_open(model, &m, &err);
    if (rc == 0 && !m->tok) rc = fl_err_set(&err, FL_EFORMAT, "%s: the model file has no tokenizer", model);
    if (rc == 0) rc = gen_check(&gp, &err);
    if (rc == 0) {
        struct eng_config ec;
        eng_config_defaults(&ec);
        ec.max_seqs = (int)batch * gp.num_beams;
        ec.queue_len = (int)(2 * batch);
        ec.cache_bytes = (size_t)256 << 20;
        ec.prefix_bytes = 0; /* every prompt runs whole: the figures do not depend on timing */
        rc = eng_start(m, &ec, &e, &err);
    }
    struct group groups[EVAL_MAX_GROUPS];
    int n_groups = 0;
    long right = 0, shown = 0;
    double t0 = fl_now();
    if (rc == 0) {
        const long window = 2 * batch;
        struct eng_job **ring = calloc((size_t)window, sizeof *ring);
        long head = 0, tail = 0;
        if (!ring) rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        while (rc == 0 && head < n) {
            while (rc == 0 && tail < n && tail - head < window) {
                struct eng_job *j = make_job(m, e, &items[tail], &gp, &err);
                if (!j || eng_submit(e, j, &err) < 0) {
                    eng_job_release(j);
                    fl_err_prefix(&err, "item %ld", tail + 1);
                    rc = -1;
                    break;
                }
                ring[tail % window] = j;
                tail++;
            }
            if (rc < 0) break;
            struct eng_job *j = ring[head % window];
            eng_job_wait_over(j);
            const struct item *it = &items[head];
            if (j->state != ENG_DONE) rc = fl_err_set(&err, FL_EINVAL, "item %ld: %s", head + 1, j->error);
            int ok = rc == 0 && answer_matches(j->choices[0].text ? j->choices[0].text : "",
                                               j->choices[0].len, it->answer);
            if (rc == 0 && !ok && shown < show) {
                shown++;
                fprintf(stderr, "wrong: %s (%d shots) %s: %.*s -> got \"%.*s\", want \"%s\"\n", it->type,
                        it->shots, it->n_images ? it->images[it->n_images - 1] : "(no image)",
                        (int)strlen(it->prompt) > 200 ? 200 : (int)strlen(it->prompt), it->prompt,
                        (int)j->choices[0].len, j->choices[0].text ? j->choices[0].text : "", it->answer);
            }
            int g = 0;
            while (g < n_groups && (strcmp(groups[g].type, it->type) || groups[g].shots != it->shots))
                g++;
            if (g == n_groups && n_groups < EVAL_MAX_GROUPS) {
                snprintf(groups[g].type, sizeof groups[g].type, "%s", it->type);
                groups[g].shots = it->shots;
                groups[g].n = groups[g].right = 0;
                n_groups++;
            }
            if (g < n_groups) groups[g].n++, groups[g].right += ok;
            right += ok;
            eng_job_release(j);
            ring[head % window] = NULL;
            head++;
        }
        for (long k = head; ring && k < tail; k++)
            eng_job_release(ring[k % window]);
        free(ring);
    }
    double secs = fl_now() - t0;
    eng_stop(e, 0);
    fm_close(m);
    for (long i = 0; i < n; i++)
        item_free(&items[i]);
    free(items);
    if (rc < 0) return cli_fail(err.msg);
    if (json) {
        printf("{\"items\":%ld,\"accuracy\":%.6f,\"seconds\":%.1f,\"groups\":[", n, n ? (double)right / n : 0,
               secs);
        for (int g = 0; g < n_groups; g++)
            printf("%s{\"type\":\"%s\",\"shots\":%d,\"items\":%ld,\"accuracy\":%.6f}", g ? "," : "",
                   groups[g].type, groups[g].shots, groups[g].n, (double)groups[g].right / groups[g].n);
        printf("]}\n");
    } else {
        printf("%-12s %5s %7s %9s\n", "type", "shots", "items", "accuracy");
        for (int g = 0; g < n_groups; g++)
            printf("%-12s %5d %7ld %8.1f%%\n", groups[g].type, groups[g].shots, groups[g].n,
                   100.0 * groups[g].right / groups[g].n);
        printf("%-12s %5s %7ld %8.1f%%   (%.1f s)\n", "all", "", n, n ? 100.0 * right / n : 0, secs);
    }
    return 0;
}
