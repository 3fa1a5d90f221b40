/* api.c - see api.h. */
#include "api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "../core/clock.h"
#include "../model/tokenizer.h"
#include "../vision/img.h"
#include "../vision/preprocess.h"

#define API_MAX_STOP_BYTES 256

void api_limits_defaults(struct api_limits *l) {
    *l = (struct api_limits){
        .max_body_bytes = (size_t)64 << 20,
        .max_image_bytes = IMG_DEFAULT_MAX_BYTES,
        .max_image_pixels = IMG_DEFAULT_MAX_PIXELS,
        .max_image_side = IMG_DEFAULT_MAX_SIDE,
        .max_images = 16,
        .max_prompt_tokens = 0,
        .max_tokens = 512,
        .max_n = 16,
        .timeout_s = 600,
    };
}

/* ---- errors ----------------------------------------------------------------- */

int api_fail(struct api_error *e, int status, const char *type, const char *code, const char *param,
             const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* A 400 invalid_request_error naming param. */
#define BAD(e, code, param, ...) api_fail(e, 400, "invalid_request_error", code, param, __VA_ARGS__)

void api_error_json(const struct api_error *e, struct sbuf *o) {
    sb_puts(o, "{\"error\":{\"message\":");
    sb_json_str(o, e->message, strlen(e->message));
    sb_puts(o, ",\"type\":");
    sb_json_str(o, e->type, strlen(e->type));
    sb_puts(o, ",\"param\":");
    if (e->param[0])
        sb_json_str(o, e->param, strlen(e->param));
    else
        sb_puts(o, "null");
    sb_puts(o, ",\"code\":");
    if (e->code)
        sb_json_str(o, e->code, strlen(e->code));
    else
        sb_puts(o, "null");
    sb_puts(o, "}}");
}

/* ---- the template ----------------------------------------------------------- */

int api_template_load(const struct fm_model *m, struct api_template *t, struct fl_err *err) {
    snprintf(t->image, sizeof t->image, "<image>");
    snprintf(t->question, sizeof t->question, "Question:{text} Short answer:");
    snprintf(t->caption, sizeof t->caption, "Output:");
    snprintf(t->assistant, sizeof t->assistant, "{content}<|endofchunk|>");
    snprintf(t->system, sizeof t->system, "{content}");
    const char *json = m && m->file ? st_metadata(m->file, "chat_template") : NULL;
    if (!json) return 0;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fl_err_set(err, FL_EFORMAT, "metadata chat_template: not a JSON object");
    }
    struct {
        const char *key;
        char *dst;
        size_t cap;
    } keys[] = {{"image", t->image, sizeof t->image},
                {"question", t->question, sizeof t->question},
                {"caption", t->caption, sizeof t->caption},
                {"assistant", t->assistant, sizeof t->assistant},
                {"system", t->system, sizeof t->system}};
    int rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && rc == 0; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i].key);
        if (!v) continue;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= keys[i].cap)
            rc = fl_err_set(err, FL_EFORMAT, "metadata chat_template.%s: a string of at most %zu bytes",
                            keys[i].key, keys[i].cap - 1);
        else
            snprintf(keys[i].dst, keys[i].cap, "%s", v->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

/* Appends fmt with every `{name}` replaced by s[n]. */
static void render(struct sbuf *o, const char *fmt, const char *name, const char *s, size_t n) {
    size_t nl = strlen(name);
    for (const char *p = fmt; *p;) {
        if (*p == '{' && !strncmp(p + 1, name, nl) && p[1 + nl] == '}') {
            sb_put(o, s, n);
            p += nl + 2;
        } else {
            sb_put(o, p, 1);
            p++;
        }
    }
}

/* ---- base64 and images ------------------------------------------------------ */

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62; /* the URL-safe alphabet too */
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Strict base64: the standard or URL-safe alphabet, whitespace (line breaks
 * of MIME encoders) skipped, '=' padding only at the end, and the length a
 * multiple of 4 (a cut-off string is an error, not a shorter image).
 * Returns the decoded size, or -1 with *bad the offset of the fault. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t *bad) {
    uint32_t acc = 0;
    int have = 0, pad = 0;
    size_t w = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            chars++;
            if (pad > 2 || have < 2) return *bad = i, -1;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) return *bad = i, -1;
        acc = acc << 6 | (uint32_t)v;
        chars++;
        if (++have == 4) {
            out[w++] = (uint8_t)(acc >> 16);
            out[w++] = (uint8_t)(acc >> 8);
            out[w++] = (uint8_t)acc;
            have = 0;
            acc = 0;
        }
    }
    if (chars % 4) return *bad = n, -1;
    if (pad) { /* have is 2 or 3 here */
        acc <<= 6 * (4 - have);
        out[w++] = (uint8_t)(acc >> 16);
        if (have == 3) out[w++] = (uint8_t)(acc >> 8);
        if ((have == 2 && (acc & 0xffff)) || (have == 3 && (acc & 0xff))) return *bad = n, -1;
    }
    return (long)w;
}

struct image_ref {
    const char *s; /* the string as sent */
    char param[160];
};

/* One image string (data URI, or bare base64 where allowed) -> bytes. */
static int image_bytes(const struct api_ctx *a, const struct image_ref *im, int bare_ok, uint8_t **out,
                       size_t *len, struct api_error *e) {
    const char *s = im->s, *p = im->param;
    const char *data = NULL;
    if (!strncmp(s, "http://", 7) || !strncmp(s, "https://", 8))
        return BAD(e, "invalid_image_url", p,
                   "image URLs are not fetched by this server; send the image as a data URI "
                   "(data:image/jpeg;base64,...)");
    if (!strncmp(s, "data:", 5)) {
        const char *comma = strchr(s, ',');
        if (!comma) return BAD(e, "invalid_image_url", p, "a data URI needs a ',' before its data");
        if (strncmp(s + 5, "image/", 6))
            return BAD(e, "invalid_image_url", p, "the data URI's media type must be image/*");
        size_t hl = (size_t)(comma - s);
        if (hl < 7 || strncmp(comma - 7, ";base64", 7))
            return BAD(e, "invalid_image_url", p,
                       "only base64 data URIs are accepted (data:image/...;base64,...)");
        data = comma + 1;
    } else if (bare_ok) {
        data = s;
    } else {
        return BAD(e, "invalid_image_url", p, "expected a data URI (data:image/jpeg;base64,...)");
    }
    size_t n = strlen(data);
    if (n == 0) return BAD(e, "invalid_image", p, "the image is empty");
    if (n / 4 * 3 > a->lim.max_image_bytes + 3)
        return BAD(e, "image_too_large", p, "the image is over %zu bytes", a->lim.max_image_bytes);
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf) return api_fail(e, 503, "unavailable_error", NULL, p, "out of memory");
    size_t bad = 0;
    long w = b64_decode(data, n, buf, &bad);
    if (w < 0) {
        free(buf);
        if (bad >= n)
            return BAD(e, "invalid_base64", p, "the base64 data is truncated (length not a multiple of 4)");
        return BAD(e, "invalid_base64", p, "invalid base64 at offset %zu", bad + (size_t)(data - s));
    }
    if ((size_t)w > a->lim.max_image_bytes) {
        free(buf);
        return BAD(e, "image_too_large", p, "the image is over %zu bytes", a->lim.max_image_bytes);
    }
    *out = buf;
    *len = (size_t)w;
    return 0;
}

/* Bytes -> the job's image: its key, and its pixels unless the cache holds it. */
static int image_load(const struct api_ctx *a, const uint8_t *bytes, size_t len, const char *param,
                      const struct api_cache *cache, struct eng_job *j, int k, struct api_error *e) {
    struct eng_image *im = &j->images[k];
    ic_hash(bytes, len, im->key);
    if (cache && cache->get && (im->entry = cache->get(cache->ctx, im->key))) {
        j->cached_images++;
        return 0;
    }
    struct img_limits lim = {a->lim.max_image_bytes, a->lim.max_image_side, a->lim.max_image_pixels};
    struct img img = {0};
    struct fl_err err = {0};
    int rc = img_decode(bytes, len, &lim, &img, &err);
    if (rc == FL_ELIMIT) return BAD(e, "image_too_large", param, "%s", err.msg);
    if (rc == FL_ENOMEM) return api_fail(e, 503, "unavailable_error", NULL, param, "out of memory");
    if (rc < 0) return BAD(e, "invalid_image", param, "the image cannot be decoded: %s", err.msg);
    const int S = a->m->cfg.vision.image_size;
    im->pixels = malloc((size_t)3 * S * S * sizeof(float));
    if (!im->pixels)
        rc = FL_ENOMEM;
    else
        rc = pre_image(&img, &a->m->cfg.preprocess, im->pixels, &err);
    img_free(&img);
    if (rc == FL_ENOMEM) return api_fail(e, 503, "unavailable_error", NULL, param, "out of memory");
    if (rc < 0) return BAD(e, "invalid_image", param, "the image cannot be preprocessed: %s", err.msg);
    return 0;
}

/* ---- request fields --------------------------------------------------------- */

/* A field that is absent or JSON null counts as not given. */
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_int(const cJSON *obj, const char *key, long long lo, long long hi, long long *out,
                   struct api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || !(v->valuedouble >= (double)lo) ||
        !(v->valuedouble <= (double)hi))
        return BAD(e, "invalid_value", key, "%s must be an integer in [%lld, %lld]", key, lo, hi);
    *out = (long long)v->valuedouble;
    return 1;
}

static int get_float(const cJSON *obj, const char *key, double lo, double hi, int lo_open, float *out,
                     struct api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || (lo_open && d == lo))
        return BAD(e, "invalid_value", key, "%s must be a number in %c%g, %g]", key, lo_open ? '(' : '[', lo,
                   hi);
    *out = (float)d;
    return 1;
}

static int get_bool(const cJSON *obj, const char *key, int *out, struct api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return BAD(e, "invalid_type", key, "%s must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 1;
}

static uint64_t g_seed_counter;

/* Values in a JSON text, counted without parsing (commas and openings
 * outside strings): cJSON spends ~100 bytes per value, so a 60 MB array of
 * zeros would take gigabytes; requests have a few hundred values. */
#define API_MAX_JSON_VALUES 100000
static long json_values(const char *s, size_t n) {
    long count = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == ',' || ch == '[' || ch == '{' || ch == ':') {
            count++;
        }
    }
    return count;
}

/* A raw NUL byte, or the escape \u0000 (not an escaped backslash followed by
 * "u0000"). */
static int has_nul(const char *s, size_t n) {
    if (memchr(s, 0, n)) return 1;
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\' || s[i + 1] != 'u' || memcmp(s + i + 2, "0000", 4)) continue;
        size_t k = 0; /* backslashes just before: an odd count makes this one an escape */
        while (k < i && s[i - 1 - k] == '\\')
            k++;
        if (k % 2 == 0) return 1;
    }
    return 0;
}

/* The fields every generating endpoint shares. */
static int parse_gen(const struct api_ctx *a, const cJSON *root, enum api_kind kind, struct api_req *r,
                     int *n, int *max_tokens, const char **stop, int *n_stop, struct gen_params *gp,
                     struct api_error *e) {
    long long v;
    int rc;
    gen_defaults(gp);
    gp->smp.temperature = 0; /* greedy unless asked: docs/API.md */
    *max_tokens = 0;
    if ((rc = get_int(root, "max_tokens", 1, a->lim.max_tokens, &v, e)) < 0) return rc;
    if (rc) *max_tokens = (int)v;
    if (kind == API_CHAT) {
        if ((rc = get_int(root, "max_completion_tokens", 1, a->lim.max_tokens, &v, e)) < 0) return rc;
        if (rc) *max_tokens = (int)v;
    }
    if (get_float(root, "temperature", 0, 2, 0, &gp->smp.temperature, e) < 0) return -1;
    if (get_float(root, "top_p", 0, 1, 1, &gp->smp.top_p, e) < 0) return -1;
    if (get_float(root, "min_p", 0, 1, 0, &gp->smp.min_p, e) < 0) return -1;
    if (get_float(root, "repetition_penalty", 0, 100, 1, &gp->smp.repetition_penalty, e) < 0) return -1;
    if (get_float(root, "presence_penalty", -2, 2, 0, &gp->smp.presence_penalty, e) < 0) return -1;
    if (get_float(root, "frequency_penalty", -2, 2, 0, &gp->smp.frequency_penalty, e) < 0) return -1;
    if (get_float(root, "length_penalty", -10, 10, 0, &gp->length_penalty, e) < 0) return -1;
    if ((rc = get_int(root, "top_k", -1, 1 << 30, &v, e)) < 0) return rc;
    if (rc) gp->smp.top_k = v < 0 ? 0 : (int)v;
    if ((rc = get_int(root, "seed", -(1LL << 53), 1LL << 53, &v, e)) < 0) return rc;
    if (rc)
        gp->smp.seed = (uint64_t)v;
    else /* a different stream per request */
        gp->smp.seed =
            (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull + __atomic_add_fetch(&g_seed_counter, 1, 0);
    *n = 1;
    if ((rc = get_int(root, "n", 1, a->lim.max_n, &v, e)) < 0) return rc;
    if (rc) *n = (int)v;
    if ((rc = get_int(root, "num_beams", 1, 16, &v, e)) < 0) return rc;
    if (rc) gp->num_beams = (int)v;
    if (gp->num_beams > 1 && gp->smp.temperature > 0)
        return BAD(e, "invalid_value", "num_beams",
                   "beam search is deterministic: use temperature 0 with num_beams");
    if ((long)*n * gp->num_beams > a->lim.max_n)
        return BAD(e, "invalid_value", *n > 1 ? "n" : "num_beams",
                   "n x num_beams = %d sequences; this server runs at most %d per request",
                   *n * gp->num_beams, a->lim.max_n);
    /* logprobs: chat has a boolean and top_logprobs, completions an integer */
    if (kind == API_CHAT) {
        int lp = 0;
        if (get_bool(root, "logprobs", &lp, e) < 0) return -1;
        if ((rc = get_int(root, "top_logprobs", 0, GEN_MAX_LOGPROBS, &v, e)) < 0) return rc;
        if (rc && !lp)
            return BAD(e, "invalid_value", "top_logprobs", "top_logprobs needs \"logprobs\": true");
        r->logprobs = lp;
        gp->n_logprobs = rc ? (int)v : 0;
    } else {
        if ((rc = get_int(root, "logprobs", 0, GEN_MAX_LOGPROBS, &v, e)) < 0) return rc;
        r->logprobs = rc;
        gp->n_logprobs = rc ? (int)v : 0;
    }
    if (r->logprobs && gp->num_beams > 1)
        return BAD(e, "invalid_value", "logprobs", "logprobs are not reported with beam search");
    /* stop: a string or an array of strings */
    *n_stop = 0;
    const cJSON *st = field(root, "stop");
    if (st && cJSON_IsString(st)) {
        if (!st->valuestring[0] || strlen(st->valuestring) > API_MAX_STOP_BYTES)
            return BAD(e, "invalid_value", "stop", "stop strings must be 1 to %d bytes", API_MAX_STOP_BYTES);
        stop[(*n_stop)++] = st->valuestring;
    } else if (st && cJSON_IsArray(st)) {
        const cJSON *it;
        int i = 0;
        cJSON_ArrayForEach(it, st) {
            char p[32];
            snprintf(p, sizeof p, "stop[%d]", i++);
            if (*n_stop == GEN_MAX_STOP)
                return BAD(e, "invalid_value", "stop", "at most %d stop strings", GEN_MAX_STOP);
            if (!cJSON_IsString(it)) return BAD(e, "invalid_type", p, "%s must be a string", p);
            if (!it->valuestring[0] || strlen(it->valuestring) > API_MAX_STOP_BYTES)
                return BAD(e, "invalid_value", p, "stop strings must be 1 to %d bytes", API_MAX_STOP_BYTES);
            stop[(*n_stop)++] = it->valuestring;
        }
    } else if (st) {
        return BAD(e, "invalid_type", "stop", "stop must be a string or an array of strings");
    }
    if ((rc = get_bool(root, "stream", &r->stream, e)) < 0) return rc;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return BAD(e, "invalid_type", "stream_options", "stream_options must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return -1;
        }
    }
    struct fl_err err = {0};
    gp->max_new_tokens = 1;        /* checked with the prompt */
    if (gen_check(gp, &err) < 0) { /* ranges above are at least as strict: a bug if reached */
        return BAD(e, "invalid_value", NULL, "%s", err.msg);
    }
    return 0;
}

/* ---- rendering a chat into a Flamingo prompt ------------------------------------ */

/* A message's text: a string, or the text parts of an array (joined by
 * newlines); images appended to imgs (when allowed). */
static int message_parts(const struct api_ctx *a, const cJSON *content, int mi, int images_ok,
                         struct sbuf *text, struct image_ref *imgs, int *n_imgs, struct api_error *e) {
    char p[160];
    snprintf(p, sizeof p, "messages[%d].content", mi);
    if (!content) return 0;
    if (cJSON_IsString(content)) {
        sb_puts(text, content->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(content))
        return BAD(e, "invalid_type", p, "%s must be a string or an array of content parts", p);
    const cJSON *part;
    int k = 0, texts = 0;
    cJSON_ArrayForEach(part, content) {
        char pp[96];
        snprintf(pp, sizeof pp, "messages[%d].content[%d]", mi, k++);
        if (!cJSON_IsObject(part)) return BAD(e, "invalid_type", pp, "%s must be an object", pp);
        const cJSON *type = field(part, "type");
        char q[128];
        snprintf(q, sizeof q, "%s.type", pp);
        if (!cJSON_IsString(type)) return BAD(e, "invalid_type", q, "%s must be a string", q);
        if (!strcmp(type->valuestring, "text")) {
            const cJSON *t = field(part, "text");
            snprintf(q, sizeof q, "%s.text", pp);
            if (!cJSON_IsString(t)) return BAD(e, "invalid_type", q, "%s must be a string", q);
            if (texts++) sb_puts(text, "\n");
            sb_puts(text, t->valuestring);
        } else if (!strcmp(type->valuestring, "image_url")) {
            if (!images_ok) return BAD(e, "invalid_value", q, "only user messages may hold images");
            const cJSON *iu = field(part, "image_url");
            const cJSON *url = cJSON_IsObject(iu) ? field(iu, "url") : iu;
            snprintf(q, sizeof q, "%s.image_url%s", pp, cJSON_IsObject(iu) ? ".url" : "");
            if (!cJSON_IsString(url)) return BAD(e, "invalid_type", q, "%s must be a string", q);
            if (*n_imgs >= a->lim.max_images)
                return BAD(e, "too_many_images", q, "at most %d images per request", a->lim.max_images);
            imgs[*n_imgs].s = url->valuestring;
            snprintf(imgs[*n_imgs].param, sizeof imgs[*n_imgs].param, "%s", q);
            (*n_imgs)++;
        } else {
            char shown[64];
            return BAD(e, "invalid_value", q, "content part type \"%s\" is not supported (text, image_url)",
                       fl_printable(type->valuestring, shown));
        }
    }
    return 0;
}

static int render_chat(const struct api_ctx *a, const cJSON *root, struct sbuf *prompt,
                       struct image_ref *imgs, int *n_imgs, struct api_error *e) {
    const struct api_template *t = &a->tmpl;
    const cJSON *msgs = field(root, "messages");
    if (!msgs) return BAD(e, "missing_field", "messages", "messages is required");
    if (!cJSON_IsArray(msgs)) return BAD(e, "invalid_type", "messages", "messages must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return BAD(e, "invalid_value", "messages", "messages must not be empty");
    const cJSON *msg;
    int mi = 0, rc = 0;
    const char *last_role = "";
    cJSON_ArrayForEach(msg, msgs) {
        char p[64];
        snprintf(p, sizeof p, "messages[%d]", mi);
        if (!cJSON_IsObject(msg)) return BAD(e, "invalid_type", p, "%s must be an object", p);
        const cJSON *role = field(msg, "role");
        snprintf(p, sizeof p, "messages[%d].role", mi);
        if (!cJSON_IsString(role)) return BAD(e, "invalid_type", p, "%s must be a string", p);
        const char *r = role->valuestring;
        const cJSON *content = field(msg, "content");
        struct sbuf text = {0};
        int before = *n_imgs;
        if (!strcmp(r, "user")) {
            rc = message_parts(a, content, mi, 1, &text, imgs, n_imgs, e);
            if (rc == 0 && !text.len && *n_imgs == before) {
                snprintf(p, sizeof p, "messages[%d].content", mi);
                rc = BAD(e, "invalid_value", p, "a user message needs text or an image");
            }
            if (rc == 0) {
                /* images first, then the question: OpenAI clients often put the text part first */
                for (int i = before; i < *n_imgs; i++)
                    sb_puts(prompt, t->image);
                if (text.len)
                    render(prompt, t->question, "text", text.p, text.len);
                else
                    sb_puts(prompt, t->caption);
            }
        } else if (!strcmp(r, "assistant")) {
            rc = message_parts(a, content, mi, 0, &text, imgs, n_imgs, e);
            if (rc == 0) render(prompt, t->assistant, "content", text.p ? text.p : "", text.len);
        } else if (!strcmp(r, "system") || !strcmp(r, "developer")) {
            rc = message_parts(a, content, mi, 0, &text, imgs, n_imgs, e);
            if (rc == 0) render(prompt, t->system, "content", text.p ? text.p : "", text.len);
        } else {
            char shown[64];
            rc = BAD(e, "invalid_value", p, "role \"%s\" is not supported (system, user, assistant)",
                     fl_printable(r, shown));
        }
        sb_free(&text);
        if (rc < 0) return rc;
        last_role = r;
        mi++;
    }
    if (strcmp(last_role, "user"))
        return BAD(e, "invalid_value", "messages",
                   "the last message must be the user's (the model answers it)");
    return 0;
}

/* ---- prepare ---------------------------------------------------------------- */

static void new_id(struct api_req *r, const char *prefix, const char *request_id) {
    snprintf(r->id, sizeof r->id, "%s-%s", prefix, request_id);
}

int api_prepare(const struct api_ctx *a, enum api_kind kind, const char *body, size_t len, int raw_image,
                const struct cJSON *query, const struct api_cache *cache, const char *request_id,
                struct api_req *r, struct api_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->created = (long)time(NULL);
    r->latent_tokens = a->m->cfg.perceiver.num_latents;
    new_id(r, kind == API_CHAT ? "chatcmpl" : kind == API_COMPLETIONS ? "cmpl" : "caption", request_id);
    cJSON *root = NULL;
    const cJSON *args = query;
    if (!raw_image) {
        if (json_values(body, len) > API_MAX_JSON_VALUES)
            return BAD(e, "invalid_json", NULL, "the body has over %d JSON values", API_MAX_JSON_VALUES);
        const char *at = NULL; /* cJSON_GetErrorPtr is a global: not for threads */
        root = cJSON_ParseWithLengthOpts(body, len, &at, 0);
        if (!root) {
            size_t off = at && at >= body && at <= body + len ? (size_t)(at - body) : 0;
            return BAD(e, "invalid_json", NULL, "the body is not valid JSON (near byte %zu)", off);
        }
        while (at && at < body + len && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r'))
            at++;
        if (!at || at != body + len) {
            cJSON_Delete(root);
            return BAD(e, "invalid_json", NULL, "the body has more after its JSON value (near byte %zu)",
                       at ? (size_t)(at - body) : 0);
        }
        /* C strings end at NUL: a NUL inside a JSON string would cut the text silently */
        if (has_nul(body, len)) {
            cJSON_Delete(root);
            return BAD(e, "invalid_json", NULL, "NUL characters (\\u0000) are not accepted in strings");
        }
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return BAD(e, "invalid_json", NULL, "the body must be a JSON object");
        }
        args = root;
    }
    struct sbuf prompt = {0};
    struct image_ref imgs[256];
    int n_imgs = 0, n = 1, max_tokens = 0, n_stop = 0, rc = 0;
    const char *stop[GEN_MAX_STOP];
    struct gen_params gp;
    const char *pparam = kind == API_CHAT ? "messages" : "prompt";
    int max_images = a->lim.max_images < 256 ? a->lim.max_images : 256;

    /* the model field */
    const cJSON *model = field(args, "model");
    if (model && (!cJSON_IsString(model) || strcmp(model->valuestring, a->model_id))) {
        char shown[64];
        rc = api_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                      "the model \"%s\" is not served here (this server has \"%s\")",
                      cJSON_IsString(model) ? fl_printable(model->valuestring, shown) : "?", a->model_id);
    }
    if (rc == 0) rc = parse_gen(a, args, kind, r, &n, &max_tokens, stop, &n_stop, &gp, e);
    if (rc == 0 && kind == API_CAPTION) r->stream = 0; /* one caption: no stream */
    /* the prompt and the image strings */
    if (rc == 0 && kind == API_CHAT) {
        rc = render_chat(a, args, &prompt, imgs, &n_imgs, e);
    } else if (rc == 0 && kind == API_COMPLETIONS) {
        const cJSON *p = field(args, "prompt");
        if (p && cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
        if (!p)
            rc = BAD(e, "missing_field", "prompt", "prompt is required");
        else if (cJSON_IsArray(p))
            rc = BAD(e, "invalid_value", "prompt", "one prompt per request");
        else if (!cJSON_IsString(p))
            rc = BAD(e, "invalid_type", "prompt", "prompt must be a string");
        else if (!p->valuestring[0])
            rc = BAD(e, "invalid_value", "prompt", "prompt must not be empty");
        else
            sb_puts(&prompt, p->valuestring);
        const cJSON *im = field(args, "images"), *it;
        if (rc == 0 && im && !cJSON_IsArray(im))
            rc = BAD(e, "invalid_type", "images", "images must be an array of data URIs or base64 strings");
        if (rc == 0 && im) {
            int k = 0;
            cJSON_ArrayForEach(it, im) {
                char q[32];
                snprintf(q, sizeof q, "images[%d]", k++);
                if (!cJSON_IsString(it)) {
                    rc = BAD(e, "invalid_type", q, "%s must be a string", q);
                    break;
                }
                if (n_imgs >= max_images) {
                    rc = BAD(e, "too_many_images", "images", "at most %d images per request", max_images);
                    break;
                }
                imgs[n_imgs].s = it->valuestring;
                snprintf(imgs[n_imgs].param, sizeof imgs[n_imgs].param, "%s", q);
                n_imgs++;
            }
        }
    } else if (rc == 0) { /* caption */
        const cJSON *p = field(args, "prompt");
        pparam = "prompt";
        if (p && !cJSON_IsString(p)) rc = BAD(e, "invalid_type", "prompt", "prompt must be a string");
        const char *text = p && rc == 0 ? p->valuestring : a->tmpl.caption;
        if (!strstr(text, a->tmpl.image)) sb_puts(&prompt, a->tmpl.image);
        sb_puts(&prompt, text);
        if (rc == 0 && raw_image) {
            imgs[n_imgs++] = (struct image_ref){NULL, "body"};
        } else if (rc == 0) {
            const cJSON *im = field(args, "image");
            if (!im)
                rc = BAD(e, "missing_field", "image", "image is required (a data URI or base64)");
            else if (!cJSON_IsString(im))
                rc = BAD(e, "invalid_type", "image", "image must be a string");
            else
                imgs[n_imgs++] = (struct image_ref){im->valuestring, "image"};
        }
    }
    if (rc == 0 && prompt.failed) rc = api_fail(e, 503, "unavailable_error", NULL, NULL, "out of memory");

    /* tokens, and the counts that need them */
    const struct tok *tok = a->m->tok;
    int *ids = NULL, n_ids = 0;
    const int ctx = a->m->cfg.lm.max_seq_len;
    const int max_prompt =
        a->lim.max_prompt_tokens > 0 && a->lim.max_prompt_tokens < ctx ? a->lim.max_prompt_tokens : ctx;
    if (rc == 0 && a->max_token_bytes > 0 && prompt.len > (size_t)max_prompt * (size_t)a->max_token_bytes)
        rc = BAD(e, "context_length_exceeded", pparam,
                 "the prompt is over %d tokens; this server takes at most %d", max_prompt, max_prompt);
    if (rc == 0) {
        int cap = (int)(prompt.len < (size_t)4 * max_prompt ? prompt.len : (size_t)4 * max_prompt) + 8;
        ids = malloc((size_t)cap * sizeof *ids);
        struct fl_err err = {0};
        int t = ids ? tok_encode(tok, prompt.p, prompt.len, ids, cap, &n_ids, &err) : FL_ENOMEM;
        if (t == FL_ENOMEM)
            rc = api_fail(e, 503, "unavailable_error", NULL, NULL, "out of memory");
        else if (t == FL_ELIMIT || n_ids > max_prompt)
            rc = BAD(e, "context_length_exceeded", pparam,
                     "the prompt is %s%d tokens; this server takes at most %d", t == FL_ELIMIT ? "over " : "",
                     t == FL_ELIMIT ? max_prompt : n_ids, max_prompt);
        else if (t < 0)
            rc = BAD(e, "invalid_value", pparam, "the prompt cannot be tokenized: %s", err.msg);
        else if (n_ids == 0)
            rc = BAD(e, "invalid_value", pparam, "the prompt is empty");
    }
    if (rc == 0) {
        int markers = 0;
        for (int i = 0; i < n_ids; i++)
            markers += ids[i] == a->m->cfg.tokens.media;
        if (markers != n_imgs)
            rc = BAD(e, "image_count_mismatch", kind == API_COMPLETIONS ? "images" : pparam,
                     "the prompt has %d <image> markers but the request has %d images", markers, n_imgs);
    }
    if (rc == 0 && n_imgs > max_images)
        rc = BAD(e, "too_many_images", kind == API_CHAT ? "messages" : "images",
                 "at most %d images per request", max_images);
    if (rc == 0) {
        if (max_tokens && (long)n_ids + max_tokens > ctx)
            rc = BAD(e, "context_length_exceeded",
                     kind == API_CHAT && field(args, "max_completion_tokens") ? "max_completion_tokens"
                                                                              : "max_tokens",
                     "the prompt's %d tokens and max_tokens %d exceed the model's context of %d tokens",
                     n_ids, max_tokens, ctx);
        else if (!max_tokens && n_ids >= ctx)
            rc = BAD(e, "context_length_exceeded", pparam,
                     "the prompt's %d tokens leave no room in the model's context of %d tokens", n_ids, ctx);
        else if (!max_tokens)
            max_tokens = a->lim.max_tokens < ctx - n_ids ? a->lim.max_tokens : ctx - n_ids;
    }
    /* the job, then the images (the expensive part, last) */
    struct eng_job *j = NULL;
    if (rc == 0) {
        j = eng_job_new(n_ids, n_imgs, n);
        if (!j) rc = api_fail(e, 503, "unavailable_error", NULL, NULL, "out of memory");
    }
    if (rc == 0) {
        memcpy(j->prompt, ids, (size_t)n_ids * sizeof *ids);
        j->gp = gp;
        j->gp.max_new_tokens = max_tokens;
        if (eng_job_set_stop(j, stop, n_stop) < 0)
            rc = api_fail(e, 503, "unavailable_error", NULL, NULL, "out of memory");
    }
    for (int i = 0; rc == 0 && i < n_imgs; i++) {
        if (!imgs[i].s) { /* the raw body of a caption */
            if (len == 0)
                rc = BAD(e, "invalid_image", "body", "the body is empty: send the image's bytes");
            else if (len > a->lim.max_image_bytes)
                rc = BAD(e, "image_too_large", "body", "the image is over %zu bytes", a->lim.max_image_bytes);
            else
                rc = image_load(a, (const uint8_t *)body, len, "body", cache, j, i, e);
            continue;
        }
        uint8_t *bytes = NULL;
        size_t nb = 0;
        rc = image_bytes(a, &imgs[i], kind != API_CHAT, &bytes, &nb, e);
        if (rc == 0) rc = image_load(a, bytes, nb, imgs[i].param, cache, j, i, e);
        free(bytes);
    }
    free(ids);
    sb_free(&prompt);
    cJSON_Delete(root);
    r->job = j;
    if (rc < 0) {
        api_req_free(r, cache, 0);
        return -1;
    }
    r->n_images = n_imgs;
    return 0;
}

void api_req_free(struct api_req *r, const struct api_cache *cache, int submitted) {
    struct eng_job *j = r->job;
    if (!j) return;
    if (!submitted)
        for (int i = 0; i < j->n_images; i++)
            if (j->images[i].entry) {
                if (cache && cache->unpin) cache->unpin(cache->ctx, j->images[i].entry);
                j->images[i].entry = NULL;
            }
    eng_job_release(j);
    r->job = NULL;
}

/* ---- responses -------------------------------------------------------------- */

static const char *finish_name(enum gen_finish f) { return f == GEN_FINISH_LENGTH ? "length" : "stop"; }

/* A token's text as a JSON string (alone: a cut character shows as U+FFFD). */
static void token_text(struct sbuf *o, const struct tok *t, int id) {
    char buf[1100];
    struct tok_stream st = {0};
    size_t n = tok_decode_next(t, &st, id, buf, sizeof buf - 16);
    n += tok_decode_end(&st, buf + n);
    sb_json_str(o, buf, n);
}

static void token_bytes(struct sbuf *o, const struct tok *t, int id) {
    uint8_t b[1024];
    size_t n = tok_token_bytes(t, id, b, sizeof b);
    sb_puts(o, "[");
    for (size_t i = 0; i < n; i++)
        sb_printf(o, i ? ",%u" : "%u", b[i]);
    sb_puts(o, "]");
}

/* Chat logprobs of tokens [from, to): {"content": [...]} */
static void chat_logprobs(struct sbuf *o, const struct tok *t, const struct eng_choice *c, int from, int to) {
    sb_puts(o, "{\"content\":[");
    for (int i = from; i < to; i++) {
        const struct eng_token *k = &c->toks[i];
        sb_puts(o, i > from ? ",{\"token\":" : "{\"token\":");
        token_text(o, t, k->id);
        sb_puts(o, ",\"logprob\":");
        sb_json_float(o, k->logprob);
        sb_puts(o, ",\"bytes\":");
        token_bytes(o, t, k->id);
        sb_puts(o, ",\"top_logprobs\":[");
        for (int q = 0; q < k->n_top; q++) {
            sb_puts(o, q ? ",{\"token\":" : "{\"token\":");
            token_text(o, t, k->top_ids[q]);
            sb_puts(o, ",\"logprob\":");
            sb_json_float(o, k->top_logprobs[q]);
            sb_puts(o, ",\"bytes\":");
            token_bytes(o, t, k->top_ids[q]);
            sb_puts(o, "}");
        }
        sb_puts(o, "]}");
    }
    sb_puts(o, "]}");
}

/* Completions (legacy) logprobs of tokens [from, to); offsets count from
 * the start of the choice's text. */
static void completion_logprobs(struct sbuf *o, const struct tok *t, const struct eng_choice *c, int from,
                                int to) {
    sb_puts(o, "{\"tokens\":[");
    for (int i = from; i < to; i++) {
        if (i > from) sb_puts(o, ",");
        token_text(o, t, c->toks[i].id);
    }
    sb_puts(o, "],\"token_logprobs\":[");
    for (int i = from; i < to; i++) {
        if (i > from) sb_puts(o, ",");
        sb_json_float(o, c->toks[i].logprob);
    }
    sb_puts(o, "],\"top_logprobs\":[");
    for (int i = from; i < to; i++) {
        const struct eng_token *k = &c->toks[i];
        sb_puts(o, i > from ? ",{" : "{");
        for (int q = 0; q < k->n_top; q++) {
            if (q) sb_puts(o, ",");
            token_text(o, t, k->top_ids[q]);
            sb_puts(o, ":");
            sb_json_float(o, k->top_logprobs[q]);
        }
        sb_puts(o, "}");
    }
    sb_puts(o, "],\"text_offset\":[");
    for (int i = from; i < to; i++)
        sb_printf(o, i > from ? ",%zu" : "%zu", c->toks[i].text_off);
    sb_puts(o, "]}");
}

static void usage_json(const struct api_req *r, struct sbuf *o) {
    const struct eng_job *j = r->job;
    long prompt = (long)j->n_prompt + (long)r->latent_tokens * r->n_images, gen = 0;
    for (int c = 0; c < j->n_choices; c++)
        gen += j->choices[c].n_generated;
    sb_printf(o,
              "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld,"
              "\"prompt_tokens_details\":{\"cached_tokens\":%d}}",
              prompt, gen, prompt + gen, j->cached_tokens);
}

/* The timings extension (caller holds j->mu). */
static void timings_json(const struct api_req *r, struct sbuf *o) {
    const struct eng_job *j = r->job;
    int gen = 0;
    for (int c = 0; c < j->n_choices; c++)
        gen += j->choices[c].n_generated;
    double prompt_s = j->t_first && j->t_images ? j->t_first - j->t_images : 0;
    double decode_s = j->t_done && j->t_first ? j->t_done - j->t_first : 0;
    double queue_s = j->t_submit && j->t_images ? j->t_images - j->t_submit - j->image_s : 0;
    sb_puts(o, "{\"queue_ms\":");
    sb_json_float(o, 1000 * (queue_s > 0 ? queue_s : 0));
    sb_puts(o, ",\"image_encode_ms\":");
    sb_json_float(o, 1000 * j->image_s);
    sb_puts(o, ",\"prompt_ms\":");
    sb_json_float(o, 1000 * prompt_s);
    sb_puts(o, ",\"decode_ms\":");
    sb_json_float(o, 1000 * decode_s);
    sb_puts(o, ",\"prompt_tokens_per_s\":");
    sb_json_float(o, prompt_s > 0 ? j->n_prompt / prompt_s : 0);
    sb_puts(o, ",\"decode_tokens_per_s\":");
    sb_json_float(o, decode_s > 0 && gen > j->n_choices ? (gen - j->n_choices) / decode_s : 0);
    sb_printf(o, ",\"cached_images\":%d,\"cached_tokens\":%d}", j->cached_images, j->cached_tokens);
}

static void head_json(const struct api_ctx *a, const struct api_req *r, const char *object, struct sbuf *o) {
    sb_puts(o, "{\"id\":");
    sb_json_str(o, r->id, strlen(r->id));
    sb_printf(o, ",\"object\":\"%s\",\"created\":%ld,\"model\":", object, r->created);
    sb_json_str(o, a->model_id, strlen(a->model_id));
}

void api_response_json(const struct api_ctx *a, const struct api_req *r, struct sbuf *o) {
    struct eng_job *j = r->job;
    const struct tok *t = a->m->tok;
    pthread_mutex_lock(&j->mu);
    if (r->kind == API_CAPTION) {
        head_json(a, r, "caption", o);
        sb_puts(o, ",\"caption\":");
        sb_json_str(o, j->choices[0].text, j->choices[0].len);
        sb_printf(o, ",\"finish_reason\":\"%s\"", finish_name(j->choices[0].finish));
    } else {
        head_json(a, r, r->kind == API_CHAT ? "chat.completion" : "text_completion", o);
        sb_puts(o, ",\"choices\":[");
        for (int c = 0; c < j->n_choices; c++) {
            const struct eng_choice *ch = &j->choices[c];
            sb_printf(o, "%s{\"index\":%d,", c ? "," : "", c);
            if (r->kind == API_CHAT) {
                sb_puts(o, "\"message\":{\"role\":\"assistant\",\"content\":");
                sb_json_str(o, ch->text, ch->len);
                sb_puts(o, "},\"logprobs\":");
                if (r->logprobs)
                    chat_logprobs(o, t, ch, 0, ch->n_toks);
                else
                    sb_puts(o, "null");
            } else {
                sb_puts(o, "\"text\":");
                sb_json_str(o, ch->text, ch->len);
                sb_puts(o, ",\"logprobs\":");
                if (r->logprobs)
                    completion_logprobs(o, t, ch, 0, ch->n_toks);
                else
                    sb_puts(o, "null");
            }
            sb_printf(o, ",\"finish_reason\":\"%s\"}", finish_name(ch->finish));
        }
        sb_puts(o, "]");
    }
    sb_puts(o, ",\"usage\":");
    usage_json(r, o);
    sb_puts(o, ",\"timings\":");
    timings_json(r, o);
    sb_puts(o, "}");
    pthread_mutex_unlock(&j->mu);
}

void api_job_error(const struct api_req *r, struct api_error *e) {
    struct eng_job *j = r->job;
    pthread_mutex_lock(&j->mu);
    char msg[FL_ERR_MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", j->error[0] ? j->error : "the generation failed");
    pthread_mutex_unlock(&j->mu);
    if (strstr(msg, "shutting down"))
        api_fail(e, 503, "unavailable_error", NULL, NULL, "%s", msg);
    else if (!strcmp(msg, "timeout"))
        api_fail(e, 503, "unavailable_error", "timeout", NULL, "the request ran past the server's timeout");
    else
        api_fail(e, 500, "server_error", NULL, NULL, "%s", msg);
}

int api_generated_tokens(const struct api_req *r) {
    if (!r->job) return 0;
    pthread_mutex_lock(&r->job->mu);
    int n = 0;
    for (int c = 0; c < r->job->n_choices; c++)
        n += r->job->choices[c].n_generated;
    pthread_mutex_unlock(&r->job->mu);
    return n;
}

/* ---- streaming ---------------------------------------------------------------- */

int api_stream_init(struct api_stream *s, int n) {
    memset(s, 0, sizeof *s);
    s->sent_toks = calloc((size_t)n, sizeof *s->sent_toks);
    s->sent_text = calloc((size_t)n, sizeof *s->sent_text);
    s->ended = calloc((size_t)n, sizeof *s->ended);
    return s->sent_toks && s->sent_text && s->ended ? 0 : -1;
}

void api_stream_free(struct api_stream *s) {
    free(s->sent_toks);
    free(s->sent_text);
    free(s->ended);
    memset(s, 0, sizeof *s);
}

/* "data: {head,"choices":[{"index":c,' */
static void chunk_open(const struct api_ctx *a, const struct api_req *r, int c, struct sbuf *o) {
    sb_puts(o, "data: ");
    head_json(a, r, r->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", o);
    sb_printf(o, ",\"choices\":[{\"index\":%d,", c);
}

static void chunk_close(const struct api_req *r, struct sbuf *o) {
    sb_puts(o, "}]");
    if (r->include_usage) sb_puts(o, ",\"usage\":null");
    sb_puts(o, "}\n\n");
}

void api_stream_step(const struct api_ctx *a, const struct api_req *r, struct api_stream *s, struct sbuf *o) {
    struct eng_job *j = r->job;
    const struct tok *t = a->m->tok;
    if (s->finished) return;
    pthread_mutex_lock(&j->mu);
    if (!s->started) {
        s->started = 1;
        if (r->kind == API_CHAT)
            for (int c = 0; c < j->n_choices; c++) {
                chunk_open(a, r, c, o);
                sb_puts(o, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_"
                           "reason\":null");
                chunk_close(r, o);
            }
    }
    for (int c = 0; c < j->n_choices; c++) {
        const struct eng_choice *ch = &j->choices[c];
        if (s->ended[c]) continue;
        /* a failed job ends without finish_reason (the error event follows) */
        if (j->state == ENG_FAILED) continue;
        int to = ch->n_toks;
        size_t len = ch->len;
        if (to > s->sent_toks[c] || len > s->sent_text[c]) {
            chunk_open(a, r, c, o);
            if (r->kind == API_CHAT)
                sb_puts(o, "\"delta\":{\"content\":");
            else
                sb_puts(o, "\"text\":");
            sb_json_str(o, ch->text + s->sent_text[c], len - s->sent_text[c]);
            if (r->kind == API_CHAT) sb_puts(o, "}");
            sb_puts(o, ",\"logprobs\":");
            if (r->logprobs && to > s->sent_toks[c]) {
                if (r->kind == API_CHAT)
                    chat_logprobs(o, t, ch, s->sent_toks[c], to);
                else
                    completion_logprobs(o, t, ch, s->sent_toks[c], to);
            } else {
                sb_puts(o, "null");
            }
            sb_puts(o, ",\"finish_reason\":null");
            chunk_close(r, o);
            s->sent_toks[c] = to;
            s->sent_text[c] = len;
        }
        if (ch->done && j->state == ENG_DONE) {
            chunk_open(a, r, c, o);
            sb_puts(o, r->kind == API_CHAT ? "\"delta\":{}" : "\"text\":\"\"");
            sb_printf(o, ",\"logprobs\":null,\"finish_reason\":\"%s\"", finish_name(ch->finish));
            chunk_close(r, o);
            s->ended[c] = 1;
        }
    }
    if (j->state == ENG_DONE) {
        if (r->include_usage) {
            sb_puts(o, "data: ");
            head_json(a, r, r->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", o);
            sb_puts(o, ",\"choices\":[],\"usage\":");
            usage_json(r, o);
            sb_puts(o, ",\"timings\":");
            timings_json(r, o);
            sb_puts(o, "}\n\n");
        }
        sb_puts(o, "data: [DONE]\n\n");
        s->finished = 1;
    }
    pthread_mutex_unlock(&j->mu);
}

void api_stream_error(const struct api_error *e, struct api_stream *s, struct sbuf *o) {
    sb_puts(o, "data: ");
    api_error_json(e, o);
    sb_puts(o, "\n\ndata: [DONE]\n\n");
    s->finished = 1;
}

void api_models_json(const struct api_ctx *a, struct sbuf *o) {
    const struct fl_config *c = &a->m->cfg;
    sb_puts(o, "{\"object\":\"list\",\"data\":[{\"id\":");
    sb_json_str(o, a->model_id, strlen(a->model_id));
    sb_printf(o,
              ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"flamingo.c\",\"meta\":{\"family\":\"%s\","
              "\"context_length\":%d,\"vocab_size\":%d,\"image_size\":%d,\"latents_per_image\":%d,"
              "\"max_tokens\":%d,\"max_images\":%d}}]}",
              a->created, cfg_family_name(c->lm.family), c->lm.max_seq_len, c->lm.vocab_size,
              c->vision.image_size, c->perceiver.num_latents, a->lim.max_tokens, a->lim.max_images);
}
