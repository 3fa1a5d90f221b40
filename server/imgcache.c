/* imgcache.c - see imgcache.h.  A doubly linked LRU list searched linearly:
 * at a few MB per entry a 1 GB budget holds hundreds of entries, and a
 * request looks up a handful of keys, so a hash table would buy nothing. */
#include "imgcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../core/lru.h"

struct imgcache {
    pthread_mutex_t mu;
    size_t budget, bytes, entries;
    long long hits, misses, evictions;
    struct ic_entry *head, *tail;
};

int ic_init(size_t budget_bytes, struct imgcache **out, struct fl_err *err) {
    *out = NULL;
    struct imgcache *c = calloc(1, sizeof *c);
    if (!c) return fl_err_set(err, FL_ENOMEM, "out of memory for the image cache");
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget_bytes;
    *out = c;
    return 0;
}

void ic_free(struct imgcache *c) {
    if (!c) return;
    for (struct ic_entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e->data);
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void ic_hash(const void *data, size_t n, uint8_t key[32]) {
    unsigned int len = 32;
    EVP_Digest(data, n, key, &len, EVP_sha256(), NULL);
}

LRU_FUNCS(lru, struct imgcache, struct ic_entry)

static struct ic_entry *find(struct imgcache *c, const uint8_t key[32]) {
    for (struct ic_entry *e = c->head; e; e = e->next)
        if (!memcmp(e->key, key, 32)) return e;
    return NULL;
}

/* Drops unpinned entries, oldest first, until the bytes fit the budget. */
static void evict(struct imgcache *c) {
    for (struct ic_entry *e = c->tail, *p; e && c->bytes > c->budget; e = p) {
        p = e->prev;
        if (e->refs) continue;
        lru_unlink(c, e);
        c->bytes -= e->bytes;
        c->entries--;
        c->evictions++;
        free(e->data);
        free(e);
    }
}

static struct ic_entry *get(struct imgcache *c, const uint8_t key[32], int count) {
    pthread_mutex_lock(&c->mu);
    struct ic_entry *e = find(c, key);
    if (e) {
        e->refs++;
        lru_unlink(c, e);
        lru_push_front(c, e);
        c->hits += count;
    } else {
        c->misses += count;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

struct ic_entry *ic_get(struct imgcache *c, const uint8_t key[32]) {
    return get(c, key, 1);
}

struct ic_entry *ic_find(struct imgcache *c, const uint8_t key[32]) {
    return get(c, key, 0);
}

struct ic_entry *ic_put(struct imgcache *c, const uint8_t key[32], float *data, size_t bytes) {
    pthread_mutex_lock(&c->mu);
    struct ic_entry *e = find(c, key);
    if (e) {
        free(data);
        e->refs++;
        lru_unlink(c, e);
        lru_push_front(c, e);
    } else if ((e = calloc(1, sizeof *e))) {
        memcpy(e->key, key, 32);
        e->data = data;
        e->bytes = bytes;
        e->refs = 1;
        lru_push_front(c, e);
        c->bytes += bytes;
        c->entries++;
        evict(c);
    } else {
        free(data);
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void ic_unpin(struct imgcache *c, struct ic_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&c->mu);
    e->refs--;
    evict(c);
    pthread_mutex_unlock(&c->mu);
}

void ic_stats(struct imgcache *c, struct ic_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (struct ic_stats){c->hits, c->misses, c->evictions, c->bytes, c->entries, c->budget};
    pthread_mutex_unlock(&c->mu);
}
