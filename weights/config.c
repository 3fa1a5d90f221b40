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

int cfg_parse(const char *json, struct fl_config *out, struct fl_err *err) {
    memset(out, 0, sizeof *out);
    cfg_vision_default(&out->vision);
    cfg_preprocess_default(&out->preprocess);
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
    cJSON_Delete(root);
    return rc;
}
