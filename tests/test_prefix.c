/*
 * test_prefix.c - the prompt-prefix cache (server/prefix.c) on its own:
 * which entry a prompt matches and how far (tokens, then the image behind
 * every <image> token), that the copied positions are the ones a full run
 * computes, that an entry which is a prefix of a newer one is dropped, that
 * the byte budget evicts the least recently used and that a budget of 0 or
 * an entry larger than the budget keeps nothing.  The engine's use of it
 * (generations from cached prefixes equal the reference) is in
 * test_engine.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/mat.h"
#include "../model/flamingo.h"
#include "../server/prefix.h"
#include "test.h"

static struct fm_model *M;
static struct lm_scratch *SC;
static struct lm_media *MD;

/* A sequence that ran ids[0 .. n), and a malloc'd copy of the ids. */
static struct lm_seq *run(const int *ids, int n, int extra, int **copy) {
    struct fl_err err = {0};
    struct lm_seq *s = NULL;
    CHECK_INT(lm_seq_init(M->lm, n + extra, &s, &err), 0);
    CHECK_INT(lm_forward(M->lm, s, MD, SC, ids, n, NULL, 0, &err), 0);
    *copy = malloc((size_t)n * sizeof **copy);
    memcpy(*copy, ids, (size_t)n * sizeof **copy);
    return s;
}

static void put(struct prefix_cache *c, const int *ids, int n, const uint8_t (*keys)[32], int n_keys) {
    int *copy = NULL;
    struct lm_seq *s = run(ids, n, 0, &copy);
    pc_put(c, s, copy, n, keys, n_keys);
}

int main(void) {
    struct fl_err err = {0};
    mat_init(1);
    CHECK_INT(fm_open("tests/fixtures/of_mpt.safetensors", &M, &err), 0);
    if (!M) return TEST_END();
    CHECK_INT(lm_scratch_init(M->lm, 64, 256, &SC, &err), 0);
    CHECK_INT(lm_media_init(M->lm, 4, &MD, &err), 0);
    const int media = M->cfg.tokens.media;
    /* two images' latents, so that prompts with <image> run */
    const size_t lat = (size_t)M->cfg.perceiver.num_latents * M->cfg.vision.width;
    float *latents = malloc(lat * sizeof *latents);
    for (int i = 0; i < 2; i++) {
        for (size_t t = 0; t < lat; t++)
            latents[t] = sinf((float)(t + 977 * i));
        CHECK_INT(lm_media_add(M->lm, MD, latents, &err), 0);
    }
    free(latents);
    uint8_t keys[2][32] = {{1}, {2}}, other[2][32] = {{1}, {3}};

    struct prefix_cache *c = NULL;
    CHECK_INT(pc_init(M->lm, (size_t)1 << 30, media, &c, &err), 0);
    const struct lm_seq *got = NULL;
    const int a[] = {media, 5, 6, 7, 8, 9, 10, 11};
    CHECK_INT(pc_match(c, a, 8, keys, 2, &got), 0); /* empty */
    CHECK(got == NULL);
    put(c, a, 6, keys, 2);
    /* the same tokens and image: all 6 positions; a longer prompt too */
    CHECK_INT(pc_match(c, a, 8, keys, 2, &got), 6);
    CHECK(got != NULL);
    /* the copied positions are a full run's: continue from them and compare */
    if (got) {
        struct lm_seq *s1 = NULL, *s2 = NULL;
        int *ids = NULL;
        const int V = M->cfg.lm.vocab_size;
        float *l1 = malloc((size_t)V * sizeof *l1), *l2 = malloc((size_t)V * sizeof *l2);
        CHECK_INT(lm_seq_init(M->lm, 16, &s1, &err), 0);
        lm_seq_copy_prefix(s1, got, 6, 1);
        CHECK_INT(lm_forward(M->lm, s1, MD, SC, a + 6, 2, l1, 0, &err), 0);
        s2 = run(a, 7, 1, &ids);
        CHECK_INT(lm_forward(M->lm, s2, MD, SC, a + 7, 1, l2, 0, &err), 0);
        float worst = 0;
        for (int v = 0; v < V; v++)
            worst = fmaxf(worst, fabsf(l1[v] - l2[v]));
        CHECK(worst < 1e-4f);
        lm_seq_free(s1);
        lm_seq_free(s2);
        free(ids);
        free(l1);
        free(l2);
    }
    /* another image behind the <image> at 0: nothing; other tokens after 3: 3 */
    CHECK_INT(pc_match(c, a, 8, other + 1, 1, &got), 0);
    const int b[] = {media, 5, 6, 99, 8};
    CHECK_INT(pc_match(c, b, 5, keys, 2, &got), 3);
    /* a prompt with a second image: the second key must match too */
    const int d[] = {media, 5, 6, 7, 8, 9, media, 12, 13};
    put(c, d, 9, keys, 2);
    CHECK_INT(pc_match(c, d, 9, keys, 2, &got), 9);
    CHECK_INT(pc_match(c, d, 9, other, 2, &got), 6); /* up to the second <image> */
    /* d extends a: a's entry was dropped */
    struct pc_stats st;
    pc_stats(c, &st);
    CHECK_INT((int)st.entries, 1);
    /* a shorter prompt that d covers adds nothing */
    put(c, a, 4, keys, 2);
    pc_stats(c, &st);
    CHECK_INT((int)st.entries, 1);
    const size_t one = st.bytes;
    pc_free(c);

    /* a budget of two entries of that size: the least recently used goes */
    CHECK_INT(pc_init(M->lm, 2 * one + one / 2, media, &c, &err), 0);
    const int e1[] = {20, 21, 22, 23, 24, 25, 26, 27, 28}, e2[] = {30, 31, 32, 33, 34, 35, 36, 37, 38},
              e3[] = {40, 41, 42, 43, 44, 45, 46, 47, 48};
    put(c, e1, 9, keys, 0);
    put(c, e2, 9, keys, 0);
    CHECK_INT(pc_match(c, e1, 9, keys, 0, &got), 9); /* e1 is now the most recent */
    put(c, e3, 9, keys, 0);                          /* evicts e2 */
    pc_stats(c, &st);
    CHECK_INT((int)st.entries, 2);
    CHECK_INT((int)st.evictions, 1);
    CHECK(st.bytes <= st.budget);
    CHECK_INT(pc_match(c, e2, 9, keys, 0, &got), 0);
    CHECK_INT(pc_match(c, e1, 9, keys, 0, &got), 9);
    CHECK_INT(pc_match(c, e3, 9, keys, 0, &got), 9);
    /* a sequence with room for 200 more positions is cut to its 9 before it
     * counts (uncut it would be over the budget and dropped) */
    const int e4[] = {50, 51, 52, 53, 54, 55, 56, 57, 58};
    int *copy = NULL;
    struct lm_seq *big = run(e4, 9, 200, &copy);
    CHECK(lm_seq_bytes(big) > st.budget);
    pc_put(c, big, copy, 9, keys, 0);
    CHECK_INT(pc_match(c, e4, 9, keys, 0, &got), 9);
    pc_stats(c, &st);
    CHECK(st.bytes <= st.budget);
    pc_free(c);

    /* budget 0 keeps nothing; so does an entry larger than the budget */
    CHECK_INT(pc_init(M->lm, 0, media, &c, &err), 0);
    put(c, e1, 9, keys, 0);
    pc_stats(c, &st);
    CHECK_INT((int)st.entries, 0);
    pc_free(c);
    CHECK_INT(pc_init(M->lm, one / 4, media, &c, &err), 0);
    put(c, e1, 9, keys, 0);
    pc_stats(c, &st);
    CHECK_INT((int)st.entries, 0);
    CHECK_INT((int)st.bytes, 0);
    pc_free(c);

    lm_media_free(MD);
    lm_scratch_free(SC);
    fm_close(M);
    mat_shutdown();
    return TEST_END();
}
