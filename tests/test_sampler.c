/*
 * test_sampler.c - the sampler's rules, one by one, on hand-made logits:
 * greedy (first maximum), banned tokens, the penalties' exact formulas,
 * top-k with ties, top-p and min-p boundaries, the reported
 * log-probabilities, seed reproducibility, and that sampling follows the
 * softmax (frequencies of 40,000 draws within 4 standard deviations).
 */
#include <stdlib.h>
#include <string.h>

#include "../model/sampler.h"
#include "test.h"

#define V 8

static struct smp_state *make(struct smp_params p) {
    struct smp_state *s = NULL;
    struct fl_err err = {0};
    CHECK_INT(smp_init(V, &p, &s, &err), 0);
    return s;
}

static int next(struct smp_state *s, const float *in, const int *banned, int n_banned, float *lp) {
    float l[V];
    memcpy(l, in, sizeof l);
    return smp_next(s, l, banned, n_banned, lp, 0, NULL, NULL);
}

int main(void) {
    const float base[V] = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f, 2.9f, -1.0f, 0.0f};
    struct smp_params p;
    smp_defaults(&p);
    struct fl_err err = {0};
    float lp;

    /* greedy: the first maximum; banned ids are never chosen */
    struct smp_state *s = make(p);
    CHECK_INT(next(s, base, NULL, 0, &lp), 1);
    int banned[] = {1, 3};
    CHECK_INT(next(s, base, banned, 2, &lp), 5);
    /* the reported log-probability is the model's, with the bans applied */
    double z = 0;
    for (int i = 0; i < V; i++)
        if (i != 1 && i != 3) z += exp(base[i]);
    CHECK_NEAR(lp, base[5] - log(z), 1e-5);
    smp_free(s);

    /* top logprobs, best first */
    s = make(p);
    float l[V], top_lp[3];
    int top[3];
    memcpy(l, base, sizeof l);
    smp_next(s, l, NULL, 0, &lp, 3, top, top_lp);
    CHECK(top[0] == 1 && top[1] == 3 && top[2] == 5);
    CHECK(top_lp[0] == top_lp[1] && top_lp[1] > top_lp[2]);
    smp_free(s);

    /* repetition penalty (HF): seen logits > 0 divided, < 0 multiplied */
    p.repetition_penalty = 2.0f;
    s = make(p);
    smp_observe(s, 1, 1);
    smp_observe(s, 2, 1);
    memcpy(l, base, sizeof l);
    int id = smp_next(s, l, NULL, 0, &lp, 0, NULL, NULL);
    CHECK_NEAR(l[1], 1.5, 0);
    CHECK_NEAR(l[2], -4.0, 0);
    CHECK_NEAR(l[3], 3.0, 0);
    CHECK_INT(id, 3);
    smp_free(s);

    /* presence and frequency (OpenAI): output tokens only */
    smp_defaults(&p);
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    s = make(p);
    smp_observe(s, 0, 1); /* a prompt token: not penalised */
    smp_observe(s, 1, 0);
    smp_observe(s, 1, 0);
    smp_observe(s, 3, 0);
    memcpy(l, base, sizeof l);
    id = smp_next(s, l, NULL, 0, &lp, 0, NULL, NULL);
    CHECK_NEAR(l[0], 1.0, 0);
    CHECK_NEAR(l[1], 3.0 - 0.5 - 0.5, 1e-6);
    CHECK_NEAR(l[3], 3.0 - 0.5 - 0.25, 1e-6);
    CHECK_INT(id, 5);
    smp_free(s);

    /* top_k 1, top_p tiny, min_p 1: all reduce to the maximum whatever the temperature */
    smp_defaults(&p);
    p.temperature = 5.0f;
    p.seed = 7;
    const float distinct[V] = {1.0f, 3.0f, -2.0f, 2.0f, 0.5f, 2.9f, -1.0f, 0.0f};
    struct smp_params variants[3] = {p, p, p};
    variants[0].top_k = 1;
    variants[1].top_p = 1e-6f;
    variants[2].min_p = 1.0f;
    for (int v = 0; v < 3; v++) {
        s = make(variants[v]);
        int all = 1;
        for (int i = 0; i < 200; i++) all &= next(s, distinct, NULL, 0, &lp) == 1;
        CHECK(all);
        smp_free(s);
    }
    /* top_k keeps ties with the k-th value: k = 1 over two equal maxima draws both */
    p.top_k = 1;
    s = make(p);
    int seen1 = 0, seen3 = 0;
    for (int i = 0; i < 400; i++) {
        int t = next(s, base, NULL, 0, &lp);
        seen1 += t == 1, seen3 += t == 3;
    }
    CHECK(seen1 > 100 && seen3 > 100 && seen1 + seen3 == 400);
    smp_free(s);

    /* top_p: HF's rule keeps the smallest head whose tail mass is > 1 - top_p.
     * probabilities 0.5, 0.3, 0.2 (ascending cumulative 0.2, 0.5, 1.0):
     * top_p 0.75 drops only the 0.2 token (0.2 <= 0.25) */
    const float three[V] = {logf(0.5f), logf(0.3f), logf(0.2f), -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    smp_defaults(&p);
    p.temperature = 1.0f;
    p.top_p = 0.75f;
    p.seed = 3;
    s = make(p);
    int count[V] = {0};
    for (int i = 0; i < 4000; i++) count[next(s, three, NULL, 0, &lp)]++;
    CHECK(count[2] == 0 && count[0] > 2000 && count[1] > 1000);
    smp_free(s);
    /* min_p 0.5: keeps p >= 0.25, i.e. 0.5 and 0.3 */
    smp_defaults(&p);
    p.temperature = 1.0f;
    p.min_p = 0.5f;
    s = make(p);
    memset(count, 0, sizeof count);
    for (int i = 0; i < 4000; i++) count[next(s, three, NULL, 0, &lp)]++;
    CHECK(count[2] == 0 && count[0] > 2000 && count[1] > 1000);
    smp_free(s);

    /* plain sampling follows the softmax: 40,000 draws at temperature 0.7 */
    smp_defaults(&p);
    p.temperature = 0.7f;
    p.seed = 12345;
    s = make(p);
    memset(count, 0, sizeof count);
    const int N = 40000;
    for (int i = 0; i < N; i++) count[next(s, base, NULL, 0, &lp)]++;
    double zt = 0;
    for (int i = 0; i < V; i++) zt += exp(base[i] / 0.7);
    int within = 1;
    for (int i = 0; i < V; i++) {
        double pi = exp(base[i] / 0.7) / zt, sd = sqrt(N * pi * (1 - pi));
        if (fabs(count[i] - N * pi) > 4 * sd + 1) {
            within = 0;
            fprintf(stderr, "token %d: %d draws, expected %.1f +- %.1f\n", i, count[i], N * pi, sd);
        }
    }
    CHECK(within);
    smp_free(s);

    /* the same seed, the same draws; another seed, other draws */
    int a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 99 : 42;
        s = make(p);
        for (int i = 0; i < 64; i++) (run == 0 ? a : run == 1 ? b : c)[i] = next(s, base, NULL, 0, &lp);
        smp_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);

    /* parameter checks name the field */
    smp_defaults(&p);
    p.top_p = 0;
    CHECK(smp_check(&p, &err) < 0 && strstr(err.msg, "top_p"));
    smp_defaults(&p);
    p.temperature = -1;
    CHECK(smp_check(&p, &err) < 0 && strstr(err.msg, "temperature"));
    smp_defaults(&p);
    p.repetition_penalty = 0;
    CHECK(smp_check(&p, &err) < 0 && strstr(err.msg, "repetition_penalty"));
    return TEST_END();
}
