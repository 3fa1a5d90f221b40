/*
 * config.h - the model's configuration, read from the "config" JSON in the
 * model file's __metadata__ (docs/FORMAT.md describes every key).
 *
 * One struct per component, filled and validated here, so that the modules
 * that build networks (vision/clip.c, later model/) receive plain numbers
 * they can trust: every size positive and within a cap, every divisibility
 * the code relies on checked, unknown enum strings rejected.  Keys missing
 * from the JSON take the defaults of the real model the component comes from
 * (open_clip ViT-L/14 for "vision", open_clip's transform for "preprocess").
 */
#ifndef FL_CONFIG_H
#define FL_CONFIG_H

#include "../core/err.h"

enum cfg_act { CFG_ACT_QUICK_GELU, CFG_ACT_GELU };

/* The CLIP vision transformer (open_clip VisionTransformer). */
struct cfg_vision {
    int image_size;   /* 224 */
    int patch_size;   /* 14 */
    int width;        /* 1024 */
    int layers;       /* 24 */
    int heads;        /* 16 (head width 64) */
    int mlp_dim;      /* 4096 */
    enum cfg_act act; /* QuickGELU for the OpenAI weights */
    float ln_eps;     /* 1e-5 */
    int keep_cls;     /* 0: OpenFlamingo's 256 patch tokens; 1: IDEFICS's 257 */
    int ln_post;      /* 1: apply ln_post to the output tokens (open_clip >= 2.23) */
};

enum cfg_preprocess_kind {
    CFG_PRE_OPEN_CLIP, /* shorter side -> size, centre crop, alpha dropped */
    CFG_PRE_IDEFICS,   /* alpha composited on white, direct resize to size x size */
};

struct cfg_preprocess {
    enum cfg_preprocess_kind kind;
    int image_size;
    float mean[3];
    float std[3];
};

struct fl_config {
    int has_vision;
    struct cfg_vision vision;
    struct cfg_preprocess preprocess;
};

/* Caps on what a config may ask for (a hostile file must not make us
 * allocate terabytes). */
#define CFG_MAX_IMAGE_SIZE 1024
#define CFG_MAX_WIDTH 8192
#define CFG_MAX_LAYERS 128
#define CFG_MAX_HEADS 128
#define CFG_MAX_VISION_TOKENS 4097 /* (S/P)^2 + 1; 448 px at patch 7 */

/* Defaults: ViT-L/14 with QuickGELU, open_clip preprocessing. */
void cfg_vision_default(struct cfg_vision *v);
void cfg_preprocess_default(struct cfg_preprocess *p);

/* Parses config JSON text.  A missing "vision" object leaves has_vision 0.
 * Errors name the key: "config: vision.heads must divide vision.width". */
int cfg_parse(const char *json, struct fl_config *out, struct fl_err *err);

/* Number of vision tokens per image: (image_size / patch_size)^2 + 1. */
int cfg_vision_tokens(const struct cfg_vision *v);

#endif
