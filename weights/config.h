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

/* OpenFlamingo's PerceiverResampler; its width is the vision width. */
struct cfg_perceiver {
    int depth;       /* 6 */
    int heads;       /* 8 */
    int dim_head;    /* 64 */
    int num_latents; /* 64 visual tokens per image */
    int ff_mult;     /* 4 */
};

enum cfg_family {
    CFG_FAMILY_MOSAIC_GPT, /* MPT-1B (MosaicGPT names) */
    CFG_FAMILY_MPT,        /* MPT-7B */
    CFG_FAMILY_GPT_NEOX,   /* RedPajama-INCITE-3B */
};

struct cfg_lm {
    enum cfg_family family;
    int d_model, n_layers, n_heads, mlp_dim;
    int vocab_size;  /* embedding rows */
    int max_seq_len; /* context limit */
    float ln_eps;
    int qk_ln;            /* MPT: LayerNorm over the full q and k */
    float alibi_bias_max; /* MPT */
    float rotary_pct;     /* GPT-NeoX */
    float rotary_base;
    int parallel_residual;
};

struct cfg_xattn {
    int every; /* a block before layer i when (i + 1) % every == 0 */
    int heads, dim_head, ff_mult;
};

struct cfg_tokens {
    int media, endofchunk, pad, eos;
};

struct fl_config {
    int has_vision;
    struct cfg_vision vision;
    struct cfg_preprocess preprocess;
    int has_lm; /* perceiver, lm, xattn and tokens: all or none */
    struct cfg_perceiver perceiver;
    struct cfg_lm lm;
    struct cfg_xattn xattn;
    struct cfg_tokens tokens;
};

/* Caps on what a config may ask for (a hostile file must not make us
 * allocate terabytes). */
#define CFG_MAX_IMAGE_SIZE 1024
#define CFG_MAX_WIDTH 8192
#define CFG_MAX_LAYERS 128
#define CFG_MAX_HEADS 128
#define CFG_MAX_VISION_TOKENS 4097 /* (S/P)^2 + 1; 448 px at patch 7 */
#define CFG_MAX_VOCAB (1 << 20)
#define CFG_MAX_SEQ_LEN 65536
#define CFG_MAX_LATENTS 1024

/* Defaults: ViT-L/14 with QuickGELU, open_clip preprocessing. */
void cfg_vision_default(struct cfg_vision *v);
void cfg_preprocess_default(struct cfg_preprocess *p);

/* Defaults of the language side: OpenFlamingo-3B (ViT-L/14, MPT-1B). */
void cfg_lm_defaults(struct fl_config *c);

/* Does decoder layer i carry a gated cross-attention block? */
int cfg_has_xattn(const struct cfg_xattn *x, int layer);

const char *cfg_family_name(enum cfg_family f);

/* Parses config JSON text.  A missing "vision" object leaves has_vision 0;
 * the language side needs "lm" (then "perceiver", "xattn", "tokens" take
 * their defaults) and sets has_lm, which also needs the vision tower.
 * Errors name the key: "config: vision.heads must divide vision.width". */
int cfg_parse(const char *json, struct fl_config *out, struct fl_err *err);

/* Number of vision tokens per image: (image_size / patch_size)^2 + 1. */
int cfg_vision_tokens(const struct cfg_vision *v);

#endif
