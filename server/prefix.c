/*
 * prefix.c - see prefix.h.  Lookups scan the entries one by one and stop
 * at each one's first differing token: for a 3B model the budget holds a
 * few thousand positions, for the bundled model a few hundred thousand,
 * which is still far less work than running one token.
 */
#include "prefix.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../core/lru.h"

struct pc_entry {
    struct lm_seq *seq;
    int *tokens, n;
    uint8_t (*keys)[32];
    int n_keys;
    size_t bytes;
    struct pc_entry *prev, *next;
};

struct prefix_cache {
    const struct lm_model *m;
    int media;
    pthread_mutex_t mu; /* the fields below, for pc_stats */
    size_t budget, bytes, entries;
    long long hits, misses, evictions;
    struct pc_entry *head, *tail;
};

int pc_init(const struct lm_model *m, size_t budget_bytes, int media, struct prefix_cache **out,
            struct fl_err *err) {
    struct prefix_cache *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return fl_err_set(err, FL_ENOMEM, "out of memory for the prefix cache");
    c->m = m;
    c->media = media;
    c->budget = budget_bytes;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

static void entry_free(struct pc_entry *e) {
    lm_seq_free(e->seq);
    free(e->tokens);
    free(e->keys);
    free(e);
}

LRU_FUNCS(lru, struct prefix_cache, struct pc_entry)

/* Caller holds c->mu (both). */
static void take(struct prefix_cache *c, struct pc_entry *e) {
    lru_unlink(c, e);
    c->bytes -= e->bytes;
    c->entries--;
}

static void add(struct prefix_cache *c, struct pc_entry *e) {
    lru_push_front(c, e);
    c->bytes += e->bytes;
    c->entries++;
}

void pc_free(struct prefix_cache *c) {
    if (!c) return;
    for (struct pc_entry *e = c->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Positions of e reusable for tokens[0 .. n) with images keys[0 .. n_keys). */
static int common(const struct pc_entry *e, int media, const int *tokens, int n, const uint8_t (*keys)[32],
                  int n_keys) {
    int i = 0, img = 0;
    for (; i < n && i < e->n && tokens[i] == e->tokens[i]; i++) {
        if (tokens[i] != media) continue;
        if (img >= n_keys || img >= e->n_keys || memcmp(keys[img], e->keys[img], 32) != 0) break;
        img++;
    }
    return i;
}

static int count_media(const int *tokens, int n, int media) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += tokens[i] == media;
    return k;
}

void pc_put(struct prefix_cache *c, struct lm_seq *seq, int *tokens, int n, const uint8_t (*keys)[32],
            int n_keys) {
    struct pc_entry *e = calloc(1, sizeof *e);
    const int n_img = count_media(tokens, n, c->media);
    if (!e || n < 1 || n_img > n_keys || lm_seq_len(seq) < n || c->budget == 0) goto drop;
    /* a sequence sized for a long generation that stopped early: keep only
     * what it holds */
    if (lm_seq_capacity(seq) > n + n / 4 + 16) {
        struct lm_seq *small = NULL;
        struct fl_err err = {0};
        if (lm_seq_init(c->m, n, &small, &err) == 0) {
            lm_seq_copy(small, seq);
            lm_seq_free(seq);
            seq = small;
        }
    }
    e->keys = malloc((size_t)(n_img ? n_img : 1) * sizeof *e->keys);
    if (!e->keys || lm_seq_bytes(seq) > c->budget) goto drop;
    if (n_img) memcpy(e->keys, keys, (size_t)n_img * sizeof *e->keys);
    e->seq = seq, e->tokens = tokens, e->n = n, e->n_keys = n_img;
    e->bytes = lm_seq_bytes(seq) + (size_t)n * sizeof *tokens;

    struct pc_entry *gone = NULL; /* freed outside the lock */
    pthread_mutex_lock(&c->mu);
    for (struct pc_entry *o = c->head, *next; o; o = next) {
        next = o->next;
        const int k = common(o, c->media, tokens, n, keys, n_img);
        if (k == n && o->n >= n) { /* the new one adds nothing: keep the old, now most recent */
            lru_unlink(c, o);
            lru_push_front(c, o);
            pthread_mutex_unlock(&c->mu);
            entry_free(e);
            return;
        }
        if (k == o->n) { /* the old one is a prefix of the new one */
            take(c, o);
            o->next = gone;
            gone = o;
        }
    }
    add(c, e);
    while (c->bytes > c->budget && c->tail) {
        struct pc_entry *o = c->tail;
        take(c, o);
        o->next = gone;
        gone = o;
        c->evictions++;
    }
    pthread_mutex_unlock(&c->mu);
    while (gone) {
        struct pc_entry *next = gone->next;
        entry_free(gone);
        gone = next;
    }
    return;
drop:
    lm_seq_free(seq);
    free(tokens);
    if (e) free(e->keys);
    free(e);
}

int pc_match(struct prefix_cache *c, const int *prompt, int n, const uint8_t (*keys)[32], int n_keys,
             const struct lm_seq **seq) {
    *seq = NULL;
    pthread_mutex_lock(&c->mu);
    struct pc_entry *best = NULL;
    int best_n = 0;
    for (struct pc_entry *e = c->head; e; e = e->next) {
        const int k = common(e, c->media, prompt, n, keys, n_keys);
        if (k > best_n) best = e, best_n = k;
    }
    if (best) {
        lru_unlink(c, best);
        lru_push_front(c, best);
        *seq = best->seq;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return best_n;
}

void pc_stats(struct prefix_cache *c, struct pc_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (struct pc_stats){c->hits, c->misses, c->evictions, c->bytes, c->entries, c->budget};
    pthread_mutex_unlock(&c->mu);
}
