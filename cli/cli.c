/* cli.c - see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/flamingo.h"
#include "../model/generate.h"
#include "../model/tokenizer.h"
#include "../server/engine.h"

#include "../core/args.h"
#include "../core/file.h"
#include "../core/mat.h"
#include "../vision/preprocess.h"

const char *cli_cmd = "flamingo";

int cli_fail(const char *msg) {
    fprintf(stderr, "flamingo: %s: %s\n", cli_cmd, msg);
    return 1;
}

int cli_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "flamingo: %s: ", cli_cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see flamingo %s --help)\n", cli_cmd);
    return 2;
}

int cli_threads(const char *arg) {
    long n;
    if (args_int(arg, 1, 1024, &n) < 0)
        return cli_usage("--threads must be an integer in [1, 1024], not '%s'", arg);
    if (mat_init((int)n) < 0) return cli_fail("cannot start worker threads");
    return 0;
}

int cli_long(const char *name, const char *arg, long lo, long hi, long *out) {
    if (args_int(arg, lo, hi, out) == 0) return 0;
    fprintf(stderr, "flamingo: %s: %s must be an integer in [%ld, %ld], not '%s' (see flamingo %s --help)\n",
            cli_cmd, name, lo, hi, arg, cli_cmd);
    return 2;
}

int cli_float(const char *name, const char *arg, double lo, double hi, float *out) {
    char *end;
    double v = arg && *arg ? strtod(arg, &end) : 0;
    if (arg && *arg && !*end && v >= lo && v <= hi) {
        *out = (float)v;
        return 0;
    }
    fprintf(stderr, "flamingo: %s: %s must be a number in [%g, %g], not '%s' (see flamingo %s --help)\n",
            cli_cmd, name, lo, hi, arg ? arg : "", cli_cmd);
    return 2;
}

int cli_open_model(const char *path, struct st_file **f, struct fl_config *cfg, struct fl_err *err) {
    int rc = st_open(path, f, err);
    if (rc < 0) return rc;
    rc = cfg_parse(st_metadata(*f, "config"), cfg, err);
    if (rc < 0) {
        fl_err_prefix(err, "%s", path);
        st_close(*f);
        *f = NULL;
    }
    return rc;
}

int cli_load_image(const char *path, struct img *img, struct fl_err *err) {
    uint8_t *buf;
    size_t len;
    int rc = fl_read_file(path, IMG_DEFAULT_MAX_BYTES, &buf, &len, err);
    if (rc < 0) return rc;
    rc = img_decode(buf, len, NULL, img, err);
    free(buf);
    if (rc < 0) fl_err_prefix(err, "%s", path);
    return rc;
}

int cli_load_pixels(const char *const *paths, int n, const struct cfg_preprocess *pre, float **pixels,
                    struct fl_err *err) {
    const size_t per = (size_t)3 * pre->image_size * pre->image_size;
    *pixels = malloc((n ? (size_t)n : 1) * per * sizeof(float));
    if (!*pixels) return fl_err_set(err, FL_ENOMEM, "out of memory for %d images", n);
    for (int i = 0; i < n; i++) {
        struct img img;
        int rc = cli_load_image(paths[i], &img, err);
        if (rc == 0) {
            rc = pre_image(&img, pre, *pixels + i * per, err);
            if (rc < 0) fl_err_prefix(err, "%s", paths[i]);
            img_free(&img);
        }
        if (rc < 0) {
            free(*pixels);
            *pixels = NULL;
            return rc;
        }
    }
    return 0;
}

/* ---- generation flags --------------------------------------------------- */

const char cli_gen_help[] =
    "  -n, --max-tokens N        new tokens at most (32)\n"
    "  --temperature T           0 = greedy (default); > 0 samples\n"
    "  --top-k K, --top-p P, --min-p P\n"
    "  --repetition-penalty R    HF's, over prompt and output (1 = off)\n"
    "  --presence-penalty X, --frequency-penalty X   OpenAI's, over the output\n"
    "  --seed S                  sampling seed (default: the time)\n"
    "  --beams B                 beam search as HF generate (OpenFlamingo's eval: 3)\n"
    "  --length-penalty L        beam score / length^L (1)\n"
    "  --stop STR                end at this text (up to 8)\n";

int cli_gen_option(int c, const char *arg, struct gen_params *gp) {
    long v;
    int st = 0;
    switch (c) {
    case 'n':
        if ((st = cli_long("--max-tokens", arg, 1, 65536, &v)) == 0) gp->max_new_tokens = (int)v;
        return st;
    case 0x100: return cli_float("--temperature", arg, 0, 100, &gp->smp.temperature);
    case 0x101:
        if ((st = cli_long("--top-k", arg, 0, 1 << 20, &v)) == 0) gp->smp.top_k = (int)v;
        return st;
    case 0x102: return cli_float("--top-p", arg, 1e-6, 1, &gp->smp.top_p);
    case 0x103: return cli_float("--min-p", arg, 0, 1, &gp->smp.min_p);
    case 0x104: return cli_float("--repetition-penalty", arg, 1e-3, 100, &gp->smp.repetition_penalty);
    case 0x105: return cli_float("--presence-penalty", arg, -2, 2, &gp->smp.presence_penalty);
    case 0x106: return cli_float("--frequency-penalty", arg, -2, 2, &gp->smp.frequency_penalty);
    case 0x107:
        if ((st = cli_long("--seed", arg, 0, 0x7fffffffffffffffL, &v)) == 0) gp->smp.seed = (uint64_t)v;
        return st;
    case 0x108:
        if ((st = cli_long("--beams", arg, 1, 16, &v)) == 0) gp->num_beams = (int)v;
        return st;
    case 0x109: return cli_float("--length-penalty", arg, -10, 10, &gp->length_penalty);
    case 0x10a:
        if (gp->n_stop == GEN_MAX_STOP) return cli_usage("at most %s --stop strings", "8");
        gp->stop[gp->n_stop++] = arg;
        return 0;
    default: return -1;
    }
}

/* ---- the default model ------------------------------------------------------ */

const char *cli_default_model(struct fl_err *err) {
    static char path[4096];
    const char *env = getenv("FLAMINGO_MODEL");
    if (env && *env) return env;
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = 0;
            snprintf(path, sizeof path, "%s/weights/flamingo-tiny.safetensors", exe);
            if (access(path, R_OK) == 0) return path;
        }
    }
    fl_err_set(err, FL_EINVAL,
               "no model: give -m MODEL (the bundled weights/flamingo-tiny.safetensors is not there)");
    return NULL;
}

/* ---- prompts and job images (run, caption, eval) ------------------------------ */

int cli_prompt_ids(const struct fm_model *m, const char *prompt, int n_images, int extra_tokens, int **ids,
                   int *n_ids, struct fl_err *err) {
    *ids = NULL;
    *n_ids = 0;
    size_t len = strlen(prompt);
    if (len > CLI_MAX_PROMPT_BYTES)
        return fl_err_set(err, FL_ELIMIT, "the prompt is over %d bytes", CLI_MAX_PROMPT_BYTES);
    int cap = (int)len + 8;
    if (!(*ids = malloc((size_t)cap * sizeof **ids))) return fl_err_set(err, FL_ENOMEM, "out of memory");
    int rc = tok_encode(m->tok, prompt, len, *ids, cap, n_ids, err);
    if (rc < 0) return rc;
    if (*n_ids == 0) return fl_err_set(err, FL_EINVAL, "the prompt is empty");
    int markers = 0;
    for (int i = 0; i < *n_ids; i++)
        markers += (*ids)[i] == m->cfg.tokens.media;
    if (markers != n_images)
        return fl_err_set(err, FL_EINVAL, "the prompt has %d <image> markers but %d images were given",
                          markers, n_images);
    const int ctx_len = m->cfg.lm.max_seq_len;
    if ((long)*n_ids + extra_tokens > ctx_len)
        return fl_err_set(err, FL_ELIMIT, "the prompt's %d tokens%s exceed the model's context of %d tokens",
                          *n_ids, extra_tokens ? " and -n" : "", ctx_len);
    return 0;
}

int cli_job_image(const struct fm_model *m, struct eng *e, const char *path, struct eng_image *im,
                  int *cached, struct fl_err *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    struct img img = {0};
    *cached = 0;
    int rc = fl_read_file(path, IMG_DEFAULT_MAX_BYTES, &buf, &len, err);
    if (rc == 0) {
        ic_hash(buf, len, im->key);
        if ((im->entry = eng_cache_get(e, im->key))) {
            free(buf);
            *cached = 1;
            return 0;
        }
        rc = img_decode(buf, len, NULL, &img, err);
    }
    free(buf);
    if (rc == 0) {
        const int S = m->cfg.vision.image_size;
        im->pixels = malloc((size_t)3 * S * S * sizeof(float));
        rc = im->pixels ? pre_image(&img, &m->cfg.preprocess, im->pixels, err)
                        : fl_err_set(err, FL_ENOMEM, "out of memory");
    }
    img_free(&img);
    if (rc < 0) fl_err_prefix(err, "%s", path);
    return rc;
}
