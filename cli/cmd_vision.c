/*
 * cmd_vision.c - the vision-side subcommands: preprocess (the model's input
 * pixels), encode (the vision tower's tokens) and info (what a model file
 * holds).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/args.h"
#include "../core/file.h"
#include "../vision/clip.h"
#include "../vision/img.h"
#include "../vision/preprocess.h"
#include "../weights/config.h"
#include "../weights/st.h"
#include "cli.h"

/* ---- preprocess ---------------------------------------------------------- */

int cmd_preprocess(int argc, char **argv) {
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"model", required_argument, 0, 'm'}, {"kind", required_argument, 0, 'k'},
        {"size", required_argument, 0, 's'},  {"u8", no_argument, 0, 'u'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    const char *in = NULL, *out = NULL, *model = NULL, *kind = NULL;
    long size = 0;
    int u8 = 0, c;
    while ((c = getopt_long(argc, argv, "i:o:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'm': model = optarg; break;
        case 'k': kind = optarg; break;
        case 's':
            if (args_int(optarg, 1, CFG_MAX_IMAGE_SIZE, &size) < 0)
                return cli_usage("--size must be an integer in [1, 1024], not '%s'", optarg);
            break;
        case 'u': u8 = 1; break;
        case 'h':
            printf("usage: flamingo preprocess -i IMG -o OUT [-m MODEL] [--kind open_clip|idefics] [--size "
                   "N] [--u8]\n"
                   "Writes the model's input pixels: float32 [3][S][S] little-endian (CHW), or with\n"
                   "--u8 the RGB bytes [S][S][3] after resize and crop.  The preprocessing comes from\n"
                   "MODEL's config, else --kind (default open_clip) and --size (default 224).\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    if (!in || !out) return cli_usage("%s", "-i IMG and -o OUT are required");

    struct fl_err err = {0};
    struct fl_config cfg;
    cfg_parse("{}", &cfg, &err);
    if (model) {
        struct st_file *f = NULL;
        if (cli_open_model(model, &f, &cfg, &err) < 0) return cli_fail(err.msg);
        st_close(f);
    }
    if (kind) {
        if (strcmp(kind, "open_clip") == 0)
            cfg.preprocess.kind = CFG_PRE_OPEN_CLIP;
        else if (strcmp(kind, "idefics") == 0)
            cfg.preprocess.kind = CFG_PRE_IDEFICS;
        else
            return cli_usage("--kind must be open_clip or idefics, not '%s'", kind);
    }
    if (size) cfg.preprocess.image_size = (int)size;

    struct img img;
    if (cli_load_image(in, &img, &err) < 0) return cli_fail(err.msg);
    const int S = cfg.preprocess.image_size;
    int rc;
    if (u8) {
        uint8_t *rgb = malloc((size_t)S * S * 3);
        rc = rgb ? pre_rgb8(&img, &cfg.preprocess, rgb, &err) : fl_err_set(&err, FL_ENOMEM, "out of memory");
        if (rc == 0) rc = fl_write_file(out, rgb, (size_t)S * S * 3, &err);
        free(rgb);
    } else {
        float *px = malloc((size_t)3 * S * S * sizeof *px);
        rc = px ? pre_image(&img, &cfg.preprocess, px, &err) : fl_err_set(&err, FL_ENOMEM, "out of memory");
        if (rc == 0) rc = fl_write_file(out, px, (size_t)3 * S * S * sizeof *px, &err);
        free(px);
    }
    img_free(&img);
    return rc < 0 ? cli_fail(err.msg) : 0;
}

/* ---- encode -------------------------------------------------------------- */

int cmd_encode(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *out = NULL, *inputs[CLI_MAX_IMAGES];
    int n_in = 0, c;
    long batch = 8;
    while ((c = getopt_long(argc, argv, "m:i:o:t:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i':
            if (n_in == CLI_MAX_IMAGES) return cli_usage("at most %s images per call", "256");
            inputs[n_in++] = optarg;
            break;
        case 'o': out = optarg; break;
        case 't':
            if (cli_threads(optarg)) return 2;
            break;
        case 'b':
            if (args_int(optarg, 1, 64, &batch) < 0)
                return cli_usage("--batch must be an integer in [1, 64], not '%s'", optarg);
            break;
        case 'h':
            printf("usage: flamingo encode -m MODEL -i IMG [-i IMG...] -o OUT [-t THREADS] [--batch N]\n"
                   "Writes the vision tower's output tokens: float32 [n_images][tokens][width],\n"
                   "row-major little-endian (OpenFlamingo: 256 x 1024 per image).\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) return cli_usage("unexpected argument '%s'", argv[optind]);
    if (!model || !n_in || !out) return cli_usage("%s", "-m MODEL, -i IMG and -o OUT are required");

    struct fl_err err = {0};
    struct fl_config cfg;
    struct st_file *f = NULL;
    struct clip_model *m = NULL;
    struct clip_state *s = NULL;
    float *px = NULL, *tokens = NULL;
    int rc = cli_open_model(model, &f, &cfg, &err);
    if (rc == 0 && !cfg.has_vision)
        rc = fl_err_set(&err, FL_EFORMAT, "%s: the config has no vision tower", model);
    if (rc == 0) rc = clip_load(f, &cfg.vision, "vision_encoder.", &m, &err);
    if (rc == 0) rc = clip_state_init(m, n_in < batch ? n_in : (int)batch, &s, &err);
    const int S = cfg.preprocess.image_size;
    const size_t in_floats = (size_t)3 * S * S;
    size_t out_floats = 0;
    if (rc == 0) {
        out_floats = (size_t)clip_out_tokens(m) * cfg.vision.width;
        px = malloc(n_in * in_floats * sizeof *px);
        tokens = malloc(n_in * out_floats * sizeof *tokens);
        if (!px || !tokens) rc = fl_err_set(&err, FL_ENOMEM, "out of memory for %d images", n_in);
    }
    for (int i = 0; rc == 0 && i < n_in; i++) {
        struct img img;
        rc = cli_load_image(inputs[i], &img, &err);
        if (rc == 0) {
            rc = pre_image(&img, &cfg.preprocess, px + i * in_floats, &err);
            img_free(&img);
        }
    }
    if (rc == 0) {
        clip_encode(m, s, px, n_in, tokens);
        rc = fl_write_file(out, tokens, n_in * out_floats * sizeof *tokens, &err);
    }
    free(px);
    free(tokens);
    clip_state_free(s);
    clip_free(m);
    st_close(f);
    return rc < 0 ? cli_fail(err.msg) : 0;
}

/* ---- info ---------------------------------------------------------------- */

int cmd_info(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: flamingo info MODEL\nPrints the model file's config, metadata, tensor count, dtypes "
               "and parameters.\n");
        return 0;
    }
    if (argc != 2) return cli_usage("%s", "expects exactly one model file");
    struct fl_err err = {0};
    struct st_file *f = NULL;
    if (st_open(argv[1], &f, &err) < 0) return cli_fail(err.msg);
    struct fl_config cfg;
    const char *config = st_metadata(f, "config");
    int cfg_rc = cfg_parse(config, &cfg, &err);

    printf("file        %s\n", st_path(f));
    printf("size        %.1f MB (%zu bytes)\n", st_file_size(f) / 1e6, st_file_size(f));
    printf("metadata   ");
    for (int i = 0; i < st_n_metadata(f); i++) {
        const char *k, *v;
        st_metadata_at(f, i, &k, &v);
        printf(" %s (%zu bytes)", k, strlen(v));
    }
    printf("%s\n", st_n_metadata(f) ? "" : " (none)");

    int64_t by_dtype[ST_I32 + 1] = {0}, params = 0;
    int count_dtype[ST_I32 + 1] = {0};
    struct {
        char prefix[64];
        int64_t params;
        int tensors;
    } groups[32];
    int n_groups = 0;
    for (int i = 0; i < st_n_tensors(f); i++) {
        const struct st_tensor *t = st_tensor_at(f, i);
        by_dtype[t->dtype] += t->n_elems;
        count_dtype[t->dtype]++;
        /* q8_0 scales ("X_scale" beside an I8 "X") are part of X, not parameters */
        size_t nl = strlen(t->name);
        char base[256];
        const struct st_tensor *q = NULL;
        if (nl > 6 && nl - 6 < sizeof base && !strcmp(t->name + nl - 6, "_scale")) {
            snprintf(base, sizeof base, "%.*s", (int)(nl - 6), t->name);
            q = st_find(f, base);
        }
        if (q && q->dtype == ST_I8) continue;
        params += t->n_elems;
        char prefix[64];
        size_t plen = strcspn(t->name, ".");
        snprintf(prefix, sizeof prefix, "%.*s", (int)(plen < 63 ? plen : 63), t->name);
        int g = 0;
        while (g < n_groups && strcmp(groups[g].prefix, prefix))
            g++;
        if (g == n_groups && n_groups < 32) {
            memset(&groups[g], 0, sizeof groups[g]);
            memcpy(groups[g].prefix, prefix, sizeof prefix);
            n_groups++;
        }
        if (g < n_groups) {
            groups[g].params += t->n_elems;
            groups[g].tensors++;
        }
    }
    printf("tensors     %d\n", st_n_tensors(f));
    printf("parameters  %lld (%.1f M)\n", (long long)params, params / 1e6);
    for (int g = 0; g < n_groups; g++)
        printf("  %-24s %5d tensors %14lld parameters\n", groups[g].prefix, groups[g].tensors,
               (long long)groups[g].params);
    printf("dtypes     ");
    for (int d = 0; d <= ST_I32; d++)
        if (count_dtype[d])
            printf(" %s: %d tensors, %lld values;", st_dtype_name((enum st_dtype)d), count_dtype[d],
                   (long long)by_dtype[d]);
    printf("\n");
    if (config) {
        printf("config      %s\n", cfg_rc < 0 ? err.msg : "ok");
        if (cfg_rc == 0 && cfg.has_vision) {
            const struct cfg_vision *v = &cfg.vision;
            printf("vision      ViT %dx%d patch %d, width %d, %d layers, %d heads, mlp %d, %s, %d output "
                   "tokens%s\n",
                   v->image_size, v->image_size, v->patch_size, v->width, v->layers, v->heads, v->mlp_dim,
                   v->act == CFG_ACT_GELU ? "GELU" : "QuickGELU",
                   cfg_vision_tokens(v) - (v->keep_cls ? 0 : 1), v->ln_post ? " (ln_post)" : "");
        }
        if (cfg_rc == 0)
            printf("preprocess  %s, %d px\n",
                   cfg.preprocess.kind == CFG_PRE_IDEFICS ? "idefics" : "open_clip",
                   cfg.preprocess.image_size);
        printf("%s\n", config);
    } else {
        printf("config      (none: not a flamingo.c model file)\n");
    }
    st_close(f);
    return 0;
}
