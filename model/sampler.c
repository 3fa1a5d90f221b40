/*
 * sampler.c - see sampler.h.  The random stream is xoshiro256** seeded
 * through splitmix64, so a request's seed reproduces its samples on any
 * machine (not PyTorch's samples: a different generator).
 */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct smp_state {
    struct smp_params p;
    int vocab;
    uint64_t rng[4];
    int *count;     /* [vocab] output occurrences */
    uint8_t *seen;  /* [vocab] in the prompt or the output */
    float *lp;      /* [vocab] the model's log-probabilities of the step */
    float *work;    /* [vocab] */
    int *order;     /* [vocab] */
};

void smp_defaults(struct smp_params *p) {
    *p = (struct smp_params){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                             .repetition_penalty = 1.0f, .presence_penalty = 0.0f, .frequency_penalty = 0.0f,
                             .seed = 0};
}

int smp_check(const struct smp_params *p, struct fl_err *err) {
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return fl_err_set(err, FL_EINVAL, "temperature must be in [0, 100]");
    if (p->top_k < 0) return fl_err_set(err, FL_EINVAL, "top_k must be >= 0");
    if (!(p->top_p > 0 && p->top_p <= 1)) return fl_err_set(err, FL_EINVAL, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0 && p->min_p <= 1)) return fl_err_set(err, FL_EINVAL, "min_p must be in [0, 1]");
    if (!(p->repetition_penalty > 0 && p->repetition_penalty <= 100))
        return fl_err_set(err, FL_EINVAL, "repetition_penalty must be in (0, 100]");
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
        return fl_err_set(err, FL_EINVAL, "presence_penalty must be in [-2, 2]");
    if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return fl_err_set(err, FL_EINVAL, "frequency_penalty must be in [-2, 2]");
    return 0;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return r;
}

int smp_init(int vocab, const struct smp_params *p, struct smp_state **out, struct fl_err *err) {
    *out = NULL;
    struct smp_state *s = calloc(1, sizeof *s);
    if (!s) return fl_err_set(err, FL_ENOMEM, "out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->count = calloc((size_t)vocab, sizeof *s->count);
    s->seen = calloc((size_t)vocab, 1);
    s->lp = malloc((size_t)vocab * sizeof *s->lp);
    s->work = malloc((size_t)vocab * sizeof *s->work);
    s->order = malloc((size_t)vocab * sizeof *s->order);
    if (!s->count || !s->seen || !s->lp || !s->work || !s->order) {
        smp_free(s);
        return fl_err_set(err, FL_ENOMEM, "out of memory for the sampler");
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&x);
    *out = s;
    return 0;
}

void smp_free(struct smp_state *s) {
    if (!s) return;
    free(s->count);
    free(s->seen);
    free(s->lp);
    free(s->work);
    free(s->order);
    free(s);
}

void smp_observe(struct smp_state *s, int id, int prompt) {
    if (id < 0 || id >= s->vocab) return;
    s->seen[id] = 1;
    if (!prompt) s->count[id]++;
}

void smp_log_softmax(const float *logits, int n, float *out) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    float lse = (float)(mx + log(sum));
    for (int i = 0; i < n; i++) out[i] = logits[i] - lse;
}

/* qsort has no context argument: the keys of the current sort, per thread. */
static _Thread_local const float *t_sort_keys;

static int by_value_desc(const void *a, const void *b) {
    float x = t_sort_keys[*(const int *)a], y = t_sort_keys[*(const int *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int *)a - *(const int *)b; /* lower id first, as torch's sort on ties (mostly) */
}

/* The top n ids of v by value (n small), descending. */
static void top_n(const float *v, int vocab, int n, int *ids) {
    int k = 0;
    for (int i = 0; i < vocab; i++) {
        if (k < n) {
            int j = k++;
            while (j > 0 && v[ids[j - 1]] < v[i]) ids[j] = ids[j - 1], j--;
            ids[j] = i;
        } else if (v[i] > v[ids[n - 1]]) {
            int j = n - 1;
            while (j > 0 && v[ids[j - 1]] < v[i]) ids[j] = ids[j - 1], j--;
            ids[j] = i;
        }
    }
}

int smp_next(struct smp_state *s, float *logits, const int *banned, int n_banned, float *logprob,
             int n_top, int *top_ids, float *top_lp) {
    const int V = s->vocab;
    const struct smp_params *p = &s->p;
    for (int i = 0; i < n_banned; i++)
        if (banned[i] >= 0 && banned[i] < V) logits[banned[i]] = -INFINITY;
    smp_log_softmax(logits, V, s->lp); /* reported: the model's distribution */
    if (n_top > 20) n_top = 20;
    if (n_top > 0) {
        top_n(s->lp, V, n_top, top_ids);
        for (int i = 0; i < n_top; i++) top_lp[i] = s->lp[top_ids[i]];
    }
    if (p->repetition_penalty != 1.0f)
        for (int i = 0; i < V; i++)
            if (s->seen[i]) logits[i] = logits[i] > 0 ? logits[i] / p->repetition_penalty : logits[i] * p->repetition_penalty;
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)
        for (int i = 0; i < V; i++)
            if (s->count[i]) logits[i] -= p->presence_penalty + p->frequency_penalty * (float)s->count[i];

    int pick = 0;
    if (p->temperature == 0.0f) {
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[pick]) pick = i;
    } else {
        for (int i = 0; i < V; i++) logits[i] /= p->temperature;
        int n = 0; /* candidates: finite logits, sorted descending */
        for (int i = 0; i < V; i++)
            if (logits[i] > -INFINITY) s->order[n++] = i;
        t_sort_keys = logits;
        qsort(s->order, (size_t)n, sizeof *s->order, by_value_desc);
        if (p->top_k > 0 && p->top_k < n) { /* keep ties with the k-th value */
            float kth = logits[s->order[p->top_k - 1]];
            int keep = p->top_k;
            while (keep < n && logits[s->order[keep]] >= kth) keep++;
            n = keep;
        }
        float mx = n ? logits[s->order[0]] : 0;
        double total = 0;
        for (int i = 0; i < n; i++) total += (s->work[i] = (float)exp((double)logits[s->order[i]] - mx));
        if (p->top_p < 1.0f && n > 1) {
            /* HF: in ascending order, drop while the cumulative mass <= 1 - top_p */
            double cum = 0, limit = 1.0 - p->top_p;
            int drop_from = n;
            for (int i = n - 1; i > 0; i--) {
                cum += s->work[i] / total;
                if (cum <= limit) drop_from = i;
                else break;
            }
            n = drop_from;
        }
        if (p->min_p > 0.0f && n > 1) { /* s->work[0] is the largest */
            float floor_v = p->min_p * s->work[0];
            int keep = 1;
            while (keep < n && s->work[keep] >= floor_v) keep++;
            n = keep;
        }
        total = 0;
        for (int i = 0; i < n; i++) total += s->work[i];
        double u = (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0) * total, acc = 0;
        pick = s->order[n - 1];
        for (int i = 0; i < n; i++) {
            acc += s->work[i];
            if (u < acc) {
                pick = s->order[i];
                break;
            }
        }
    }
    *logprob = s->lp[pick];
    smp_observe(s, pick, 0);
    return pick;
}
