/*
 * test_synth.c - bench/synth.c's models with random weights: the f32 model
 * that holds what bf16 or q8_0 store (synth_lm_rounded, bench --quality's
 * "storage's own cost") must hold exactly the values of the typed model of
 * the same seed, tensor by tensor, and the plain f32 model the values they
 * were rounded from.  Were the two drawn differently, --quality would
 * compare unrelated models.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../bench/synth.h"
#include "../weights/st.h"
#include "test.h"

static const char *CONFIG =
    "{\"vision\": {\"image_size\": 28, \"patch_size\": 7, \"width\": 64, \"layers\": 1, \"heads\": 2, "
    "\"mlp_dim\": 64}, \"perceiver\": {\"depth\": 1, \"heads\": 2, \"dim_head\": 32, \"num_latents\": 8, "
    "\"ff_mult\": 2}, \"lm\": {\"family\": \"mosaic_gpt\", \"d_model\": 64, \"n_layers\": 2, \"n_heads\": 2, "
    "\"mlp_dim\": 96, \"vocab_size\": 100, \"max_seq_len\": 64}, \"xattn\": {\"every\": 1, \"heads\": 2, "
    "\"dim_head\": 32, \"ff_mult\": 2}, \"tokens\": {\"media\": 97, \"endofchunk\": 96, \"pad\": 99, "
    "\"eos\": 98}}";

static struct st_file *open_synth(const struct fl_config *c, enum wmat_type type, enum wmat_type round_as,
                                  uint8_t **buf) {
    struct fl_err err = {0};
    size_t len = 0;
    struct st_file *f = NULL;
    CHECK(synth_lm_rounded(c, 5, type, round_as, buf, &len, &err) == 0);
    if (*buf) CHECK(st_open_memory(*buf, len, "synth", &f, &err) == 0);
    return f;
}

/* The values of the tensor called name, as f32 (q8_0: int8 times the
 * row's f16 block scale); NULL when it is not there. */
static float *values(const struct st_file *f, const char *name, size_t *n) {
    const struct st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    *n = (size_t)t->n_elems;
    float *v = malloc(*n * sizeof *v);
    if (!v) return NULL;
    if (t->dtype != ST_I8) {
        struct fl_err err = {0};
        CHECK(st_to_f32(t, v, &err) == 0);
        return v;
    }
    char sname[200];
    snprintf(sname, sizeof sname, "%s_scale", name);
    const struct st_tensor *s = st_find(f, sname);
    CHECK(s != NULL && s->dtype == ST_F16);
    if (!s) {
        free(v);
        return NULL;
    }
    const int8_t *q = t->data;
    const uint16_t *sc = s->data;
    for (size_t i = 0; i < *n; i++)
        v[i] = st_f16_to_f32(sc[i / WMAT_Q8_BLOCK]) * (float)q[i];
    return v;
}

static void check_type(const struct fl_config *c, enum wmat_type type) {
    uint8_t *b0 = NULL, *b1 = NULL, *b2 = NULL;
    struct st_file *plain = open_synth(c, WMAT_F32, WMAT_F32, &b0);
    struct st_file *typed = open_synth(c, type, WMAT_F32, &b1);
    struct st_file *held = open_synth(c, WMAT_F32, type, &b2);
    if (plain && typed && held) {
        CHECK(st_n_tensors(held) == st_n_tensors(plain));
        int n_typed = 0, same = 1, moved = 0, far = 0;
        for (int i = 0; i < st_n_tensors(held); i++) {
            const struct st_tensor *h = st_tensor_at(held, i);
            CHECK(h->dtype == ST_F32);
            const struct st_tensor *t = st_find(typed, h->name);
            CHECK(t != NULL);
            if (!t) continue;
            n_typed += t->dtype != ST_F32;
            size_t n = 0, n0 = 0;
            float *want = values(typed, h->name, &n), *orig = values(plain, h->name, &n0);
            const float *got = st_f32_view(h);
            CHECK(want && orig && got && n == n0);
            if (want && orig && got) {
                double amax = 0;
                for (size_t j = 0; j < n; j++)
                    amax = fabs(orig[j]) > amax ? fabs(orig[j]) : amax;
                for (size_t j = 0; j < n; j++) {
                    same &= memcmp(&got[j], &want[j], sizeof got[j]) == 0;
                    moved += got[j] != orig[j];
                    /* rounded, not redrawn: bf16 within 2^-8 of the value, q8_0 within
                     * half a step of its block's largest (at most amax / 254) */
                    far +=
                        fabs(got[j] - orig[j]) > (type == WMAT_BF16 ? ldexp(fabs(orig[j]), -8) : amax / 250);
                }
            }
            st_release(held, h);
            free(want), free(orig);
        }
        CHECK(n_typed > 0); /* the typed file has typed tensors to compare */
        CHECK(same);
        CHECK(moved > 0); /* and the rounding changed something */
        CHECK(far == 0);
    }
    st_close(plain), st_close(typed), st_close(held);
    free(b0), free(b1), free(b2);
}

int main(void) {
    struct fl_config c;
    struct fl_err err = {0};
    CHECK(cfg_parse(CONFIG, &c, &err) == 0);
    check_type(&c, WMAT_BF16);
    check_type(&c, WMAT_Q8_0);
    return TEST_END();
}
