/* config.c - see config.h.  Every value read is range-checked here; nothing
 * downstream re-validates. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <cJSON.h>

void cfg_vision_default(struct cfg_vision *v) {
    *v = (struct cfg_vision){
        .image_size = 224, .patch_size = 14, .width = 1024, .layers = 24, .heads = 16,
        .mlp_dim = 4096, .act = CFG_ACT_QUICK_GELU, .ln_eps = 1e-5f, .keep_cls = 0, .ln_post = 0,
    };
}

void cfg_preprocess_default(struct cfg_preprocess *p) {
    /* open_clip constants.py OPENAI_DATASET_MEAN / _STD */
    *p = (struct cfg_preprocess){
        .kind = CFG_PRE_OPEN_CLIP,
        .image_size = 224,
        .mean = {0.48145466f, 0.4578275f, 0.40821073f},
        .std = {0.26862954f, 0.26130258f, 0.27577711f},
    };
}

void cfg_lm_defaults(struct fl_config *c) {
    c->perceiver = (struct cfg_perceiver){.depth = 6, .heads = 8, .dim_head = 64, .num_latents = 64, .ff_mult = 4};
    c->lm = (struct cfg_lm){
        .family = CFG_FAMILY_MOSAIC_GPT, .d_model = 2048, .n_layers = 24, .n_heads = 16, .mlp_dim = 8192,
        .vocab_size = 50280, .max_seq_len = 2048, .ln_eps = 1e-5f, .qk_ln = 1, .alibi_bias_max = 8.0f,
        .rotary_pct = 1.0f, .rotary_base = 10000.0f, .parallel_residual = 0,
    };
    c->xattn = (struct cfg_xattn){.every = 1, .heads = 8, .dim_head = 64, .ff_mult = 4};
    c->tokens = (struct cfg_tokens){.media = 50278, .endofchunk = 50277, .pad = 50279, .eos = 0};
}

int cfg_has_xattn(const struct cfg_xattn *x, int layer) { return (layer + 1) % x->every == 0; }

const char *cfg_family_name(enum cfg_family f) {
    static const char *names[] = {"mosaic_gpt", "mpt", "gpt_neox"};
    return names[f];
}

int cfg_vision_tokens(const struct cfg_vision *v) {
    int g = v->image_size / v->patch_size;
    return g * g + 1;
}

/* Reads obj.key as an integer in [lo, hi] into *dst; absent keeps *dst. */
static int get_int(const cJSON *obj, const char *section, const char *key, int lo, int hi, int *dst,
                   struct fl_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(v >= lo && v <= hi) || v != (double)(int)v)
        return fl_err_set(err, FL_EFORMAT, "config: %s.%s must be an integer in [%d, %d]", section,
                          key, lo, hi);
    *dst = (int)v;
    return 0;
}

static int get_float(const cJSON *obj, const char *section, const char *key, double lo, double hi,
                     float *dst, struct fl_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(v >= lo && v <= hi))
        return fl_err_set(err, FL_EFORMAT, "config: %s.%s must be a number in [%g, %g]", section,
                          key, lo, hi);
    *dst = (float)v;
    return 0;
}

static int get_bool(const cJSON *obj, const char *section, const char *key, int *dst,
                    struct fl_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (!cJSON_IsBool(it))
        return fl_err_set(err, FL_EFORMAT, "config: %s.%s must be true or false", section, key);
    *dst = cJSON_IsTrue(it);
    return 0;
}

/* Reads obj.key as one of names[0..n); absent keeps *dst. */
static int get_enum(const cJSON *obj, const char *section, const char *key, const char *const *names,
                    int n, int *dst, struct fl_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return 0;
    if (cJSON_IsString(it))
        for (int i = 0; i < n; i++)
            if (strcmp(it->valuestring, names[i]) == 0) {
                *dst = i;
                return 0;
            }
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return fl_err_set(err, FL_EFORMAT, "config: %s.%s must be one of: %s", section, key, list);
}

static int parse_vision(const cJSON *o, struct cfg_vision *v, struct fl_err *err) {
    static const char *const acts[] = {"quick_gelu", "gelu"};
    static const char *const outputs[] = {"patch_tokens", "all_tokens"};
    const char *s = "vision";
    int act = v->act, out = v->keep_cls, rc;
    if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: vision must be an object");
    if ((rc = get_int(o, s, "image_size", 1, CFG_MAX_IMAGE_SIZE, &v->image_size, err)) < 0 ||
        (rc = get_int(o, s, "patch_size", 1, CFG_MAX_IMAGE_SIZE, &v->patch_size, err)) < 0 ||
        (rc = get_int(o, s, "width", 1, CFG_MAX_WIDTH, &v->width, err)) < 0 ||
        (rc = get_int(o, s, "layers", 1, CFG_MAX_LAYERS, &v->layers, err)) < 0 ||
        (rc = get_int(o, s, "heads", 1, CFG_MAX_HEADS, &v->heads, err)) < 0 ||
        (rc = get_int(o, s, "mlp_dim", 1, 8 * CFG_MAX_WIDTH, &v->mlp_dim, err)) < 0 ||
        (rc = get_enum(o, s, "act", acts, 2, &act, err)) < 0 ||
        (rc = get_float(o, s, "ln_eps", 1e-12, 1e-1, &v->ln_eps, err)) < 0 ||
        (rc = get_enum(o, s, "output", outputs, 2, &out, err)) < 0 ||
        (rc = get_bool(o, s, "ln_post", &v->ln_post, err)) < 0)
        return rc;
    v->act = (enum cfg_act)act;
    v->keep_cls = out;
    if (v->image_size % v->patch_size)
        return fl_err_set(err, FL_EFORMAT, "config: vision.patch_size %d does not divide image_size %d",
                          v->patch_size, v->image_size);
    if (cfg_vision_tokens(v) > CFG_MAX_VISION_TOKENS)
        return fl_err_set(err, FL_EFORMAT, "config: vision has %d tokens per image (image_size / patch_size)^2 + 1; at most %d",
                          cfg_vision_tokens(v), CFG_MAX_VISION_TOKENS);
    if (v->width % v->heads)
        return fl_err_set(err, FL_EFORMAT, "config: vision.heads %d does not divide width %d",
                          v->heads, v->width);
    return 0;
}

static int parse_preprocess(const cJSON *o, struct cfg_preprocess *p, struct fl_err *err) {
    static const char *const kinds[] = {"open_clip", "idefics"};
    const char *s = "preprocess";
    int kind = p->kind, rc;
    if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: preprocess must be an object");
    if ((rc = get_enum(o, s, "kind", kinds, 2, &kind, err)) < 0 ||
        (rc = get_int(o, s, "image_size", 1, CFG_MAX_IMAGE_SIZE, &p->image_size, err)) < 0)
        return rc;
    p->kind = (enum cfg_preprocess_kind)kind;
    const char *keys[2] = {"mean", "std"};
    float *dst[2] = {p->mean, p->std};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (!a) continue;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
            return fl_err_set(err, FL_EFORMAT, "config: preprocess.%s must be 3 numbers", keys[k]);
        for (int c = 0; c < 3; c++) {
            const cJSON *it = cJSON_GetArrayItem(a, c);
            double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
            if (!(v > -10 && v < 10) || (k == 1 && !(v > 1e-6)))
                return fl_err_set(err, FL_EFORMAT, "config: preprocess.%s[%d] is out of range",
                                  keys[k], c);
            dst[k][c] = (float)v;
        }
    }
    return 0;
}

static int parse_lm_side(const cJSON *root, struct fl_config *c, struct fl_err *err) {
    static const char *const families[] = {"mosaic_gpt", "mpt", "gpt_neox"};
    const cJSON *o;
    int rc, fam = c->lm.family;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "perceiver"))) {
        struct cfg_perceiver *p = &c->perceiver;
        const char *s = "perceiver";
        if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: perceiver must be an object");
        if ((rc = get_int(o, s, "depth", 1, CFG_MAX_LAYERS, &p->depth, err)) < 0 ||
            (rc = get_int(o, s, "heads", 1, CFG_MAX_HEADS, &p->heads, err)) < 0 ||
            (rc = get_int(o, s, "dim_head", 1, 1024, &p->dim_head, err)) < 0 ||
            (rc = get_int(o, s, "num_latents", 1, CFG_MAX_LATENTS, &p->num_latents, err)) < 0 ||
            (rc = get_int(o, s, "ff_mult", 1, 16, &p->ff_mult, err)) < 0)
            return rc;
    }
    o = cJSON_GetObjectItemCaseSensitive(root, "lm");
    struct cfg_lm *l = &c->lm;
    const char *s = "lm";
    if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: lm must be an object");
    if ((rc = get_enum(o, s, "family", families, 3, &fam, err)) < 0 ||
        (rc = get_int(o, s, "d_model", 1, CFG_MAX_WIDTH, &l->d_model, err)) < 0 ||
        (rc = get_int(o, s, "n_layers", 1, CFG_MAX_LAYERS, &l->n_layers, err)) < 0 ||
        (rc = get_int(o, s, "n_heads", 1, CFG_MAX_HEADS, &l->n_heads, err)) < 0 ||
        (rc = get_int(o, s, "mlp_dim", 1, 8 * CFG_MAX_WIDTH, &l->mlp_dim, err)) < 0 ||
        (rc = get_int(o, s, "vocab_size", 1, CFG_MAX_VOCAB, &l->vocab_size, err)) < 0 ||
        (rc = get_int(o, s, "max_seq_len", 1, CFG_MAX_SEQ_LEN, &l->max_seq_len, err)) < 0 ||
        (rc = get_float(o, s, "ln_eps", 1e-12, 1e-1, &l->ln_eps, err)) < 0 ||
        (rc = get_bool(o, s, "qk_ln", &l->qk_ln, err)) < 0 ||
        (rc = get_float(o, s, "alibi_bias_max", 0, 64, &l->alibi_bias_max, err)) < 0 ||
        (rc = get_float(o, s, "rotary_pct", 0, 1, &l->rotary_pct, err)) < 0 ||
        (rc = get_float(o, s, "rotary_base", 1, 1e9, &l->rotary_base, err)) < 0 ||
        (rc = get_bool(o, s, "parallel_residual", &l->parallel_residual, err)) < 0)
        return rc;
    l->family = (enum cfg_family)fam;
    if (l->d_model % l->n_heads)
        return fl_err_set(err, FL_EFORMAT, "config: lm.n_heads %d does not divide d_model %d", l->n_heads,
                          l->d_model);
    if (l->family == CFG_FAMILY_GPT_NEOX && ((int)(l->rotary_pct * (l->d_model / l->n_heads)) % 2))
        return fl_err_set(err, FL_EFORMAT, "config: lm.rotary_pct must give an even number of rotary dimensions");
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "xattn"))) {
        struct cfg_xattn *x = &c->xattn;
        if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: xattn must be an object");
        if ((rc = get_int(o, "xattn", "every", 1, CFG_MAX_LAYERS, &x->every, err)) < 0 ||
            (rc = get_int(o, "xattn", "heads", 1, CFG_MAX_HEADS, &x->heads, err)) < 0 ||
            (rc = get_int(o, "xattn", "dim_head", 1, 1024, &x->dim_head, err)) < 0 ||
            (rc = get_int(o, "xattn", "ff_mult", 1, 16, &x->ff_mult, err)) < 0)
            return rc;
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "tokens"))) {
        struct cfg_tokens *t = &c->tokens;
        if (!cJSON_IsObject(o)) return fl_err_set(err, FL_EFORMAT, "config: tokens must be an object");
        if ((rc = get_int(o, "tokens", "media", 0, l->vocab_size - 1, &t->media, err)) < 0 ||
            (rc = get_int(o, "tokens", "endofchunk", 0, l->vocab_size - 1, &t->endofchunk, err)) < 0 ||
            (rc = get_int(o, "tokens", "pad", 0, l->vocab_size - 1, &t->pad, err)) < 0 ||
            (rc = get_int(o, "tokens", "eos", 0, l->vocab_size - 1, &t->eos, err)) < 0)
            return rc;
    }
    const struct cfg_tokens *t = &c->tokens;
    if (t->media >= l->vocab_size || t->endofchunk >= l->vocab_size || t->pad >= l->vocab_size ||
        t->eos >= l->vocab_size)
        return fl_err_set(err, FL_EFORMAT, "config: a special token id is outside lm.vocab_size %d", l->vocab_size);
    if (!c->has_vision) return fl_err_set(err, FL_EFORMAT, "config: a language model needs a vision section");
    c->has_lm = 1;
    return 0;
}

int cfg_parse(const char *json, struct fl_config *out, struct fl_err *err) {
    memset(out, 0, sizeof *out);
    cfg_vision_default(&out->vision);
    cfg_preprocess_default(&out->preprocess);
    cfg_lm_defaults(out);
    if (!json) return fl_err_set(err, FL_EFORMAT, "no config in the model file's metadata");
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fl_err_set(err, FL_EFORMAT, "config is not a JSON object");
    }
    int rc = 0;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format_version");
    if (fmt && (!cJSON_IsNumber(fmt) || fmt->valuedouble != 1))
        rc = fl_err_set(err, FL_EUNSUPPORTED,
                        "config: format_version %g is not supported (this build reads 1)",
                        cJSON_IsNumber(fmt) ? fmt->valuedouble : -1.0);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vision");
    if (rc == 0 && v) {
        out->has_vision = 1;
        rc = parse_vision(v, &out->vision, err);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "preprocess");
    if (rc == 0 && out->has_vision) out->preprocess.image_size = out->vision.image_size;
    if (rc == 0 && p) rc = parse_preprocess(p, &out->preprocess, err);
    if (rc == 0 && out->has_vision && out->preprocess.image_size != out->vision.image_size)
        rc = fl_err_set(err, FL_EFORMAT, "config: preprocess.image_size %d differs from vision.image_size %d",
                        out->preprocess.image_size, out->vision.image_size);
    if (rc == 0 && cJSON_GetObjectItemCaseSensitive(root, "lm")) rc = parse_lm_side(root, out, err);
    cJSON_Delete(root);
    return rc;
}
