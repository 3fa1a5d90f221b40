/*
 * test_clip.c - the C vision transformer against the PyTorch reference
 * (tests/reference/clip_ref.py) on the committed golden fixtures: two small
 * random towers (QuickGELU / patch tokens / F32, and GELU / all tokens /
 * ln_post / conv bias / F16+BF16 storage), three images each, encoded at
 * several batch sizes.  Tolerance: max |ours - ref| <= 1e-4 x max |ref|.
 * Also: the loader's errors name the tensor that is missing or misshapen.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/mat.h"
#include "../vision/clip.h"
#include "../weights/config.h"
#include "../weights/st.h"
#include "../weights/stw.h"
#include "test.h"

static void check_model(const char *name) {
    char path[256], io_path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", name);
    snprintf(io_path, sizeof io_path, "tests/fixtures/%s.io.safetensors", name);
    struct fl_err err = {0};
    struct st_file *f = NULL, *io = NULL;
    struct fl_config cfg;
    CHECK_INT(st_open(path, &f, &err), 0);
    CHECK_INT(st_open(io_path, &io, &err), 0);
    if (!f || !io) {
        fprintf(stderr, "%s\n", err.msg);
        st_close(f);
        st_close(io);
        return;
    }
    CHECK_INT(cfg_parse(st_metadata(f, "config"), &cfg, &err), 0);
    CHECK(cfg.has_vision);
    const struct st_tensor *pixels = st_find(io, "pixels"), *tokens = st_find(io, "tokens");
    CHECK(pixels && tokens);
    const float *px = st_f32_view(pixels), *want = st_f32_view(tokens);
    const int n = (int)pixels->shape[0];

    struct clip_model *m = NULL;
    CHECK_INT(clip_load(f, &cfg.vision, "vision_encoder.", &m, &err), 0);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT(tokens->shape[1], clip_out_tokens(m));
    CHECK_INT(tokens->shape[2], cfg.vision.width);
    float max_ref = 0;
    for (int64_t i = 0; i < tokens->n_elems; i++) max_ref = fmaxf(max_ref, fabsf(want[i]));
    CHECK(max_ref > 0.5f); /* the fixture is not degenerate */

    float *got = malloc((size_t)tokens->n_elems * sizeof *got);
    const int batches[] = {1, 2, 3, 8};
    for (int b = 0; b < 4; b++) {
        struct clip_state *s = NULL;
        CHECK_INT(clip_state_init(m, batches[b], &s, &err), 0);
        memset(got, 0xff, (size_t)tokens->n_elems * sizeof *got); /* NaNs */
        clip_encode(m, s, px, n, got);
        double max_diff = 0;
        for (int64_t i = 0; i < tokens->n_elems; i++) {
            double d = fabs((double)got[i] - want[i]);
            if (!(d <= max_diff)) max_diff = isnan(d) ? INFINITY : d;
        }
        fprintf(stderr, "%s batch %d: max |diff| %.3g (max |ref| %.3g, ratio %.2g)\n", name,
                batches[b], max_diff, max_ref, max_diff / max_ref);
        CHECK(max_diff <= 1e-4 * max_ref);
        clip_state_free(s);
    }
    free(got);
    clip_free(m);

    /* A config that disagrees with the file: the error names the tensor. */
    struct cfg_vision wrong = cfg.vision;
    wrong.layers += 1;
    CHECK(clip_load(f, &wrong, "vision_encoder.", &m, &err) < 0 && m == NULL);
    CHECK(strstr(err.msg, "missing tensor 'vision_encoder.transformer.resblocks.") != NULL);
    wrong = cfg.vision;
    wrong.mlp_dim *= 2;
    CHECK(clip_load(f, &wrong, "vision_encoder.", &m, &err) < 0 && m == NULL);
    CHECK(strstr(err.msg, "c_fc.weight' has shape [") != NULL && strstr(err.msg, "expected [") != NULL);
    CHECK(strstr(err.msg, path) == err.msg);
    st_close(f);
    st_close(io);
}

/* An integer tensor where a float one belongs is a named error. */
static void check_wrong_dtype(void) {
    struct cfg_vision v = {.image_size = 4, .patch_size = 2, .width = 4, .layers = 0, .heads = 1,
                           .mlp_dim = 8, .ln_eps = 1e-5f};
    struct stw *w = stw_new();
    struct fl_err err = {0};
    const int64_t conv[] = {4, 3, 2, 2}, vec[] = {4}, pos[] = {5, 4};
    stw_add(w, "vision_encoder.conv1.weight", ST_I8, 4, conv, &err);
    stw_add(w, "vision_encoder.class_embedding", ST_F32, 1, vec, &err);
    stw_add(w, "vision_encoder.positional_embedding", ST_F32, 2, pos, &err);
    stw_add(w, "vision_encoder.ln_pre.weight", ST_F32, 1, vec, &err);
    stw_add(w, "vision_encoder.ln_pre.bias", ST_F32, 1, vec, &err);
    uint8_t *buf;
    size_t len;
    CHECK_INT(stw_finish(w, &buf, &len, &err), 0);
    stw_free(w);
    struct st_file *f = NULL;
    CHECK_INT(st_open_memory(buf, len, "int8.safetensors", &f, &err), 0);
    struct clip_model *m = NULL;
    CHECK(clip_load(f, &v, "vision_encoder.", &m, &err) < 0 && m == NULL);
    CHECK(strstr(err.msg, "conv1.weight' is I8") != NULL);
    st_close(f);
    free(buf);
}

int main(void) {
    mat_init(2);
    check_model("clip_quickgelu");
    check_model("clip_gelu");
    check_wrong_dtype();
    return TEST_END();
}
