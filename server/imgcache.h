/*
 * imgcache.h - what the engine keeps of every image it encoded: the
 * Perceiver latents and every cross-attention block's keys and values,
 * under the SHA-256 of the image's bytes, so that a second request with the
 * same picture encodes nothing.
 *
 * Entries are reference-counted: a request pins the entries of its images
 * (ic_get / ic_put) and unpins them when it ends; eviction (least recently
 * used first) only takes unpinned entries, until the bytes held fit the
 * budget.  A budget of 0 keeps nothing beyond the requests that use it.
 * All functions are thread-safe (one mutex).
 */
#ifndef FL_IMGCACHE_H
#define FL_IMGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

struct ic_entry {
    uint8_t key[32];
    float *data; /* owned: the caller's layout (latents + keys and values) */
    size_t bytes;
    int refs;
    struct ic_entry *prev, *next; /* LRU list, most recent first */
};

struct imgcache;

int ic_init(size_t budget_bytes, struct imgcache **out, struct fl_err *err);
void ic_free(struct imgcache *c);

/* SHA-256 of n bytes. */
void ic_hash(const void *data, size_t n, uint8_t key[32]);

/* The entry for key, pinned, or NULL (counts a hit or a miss). */
struct ic_entry *ic_get(struct imgcache *c, const uint8_t key[32]);
/* The same, counting nothing (a lookup repeated while an image waits). */
struct ic_entry *ic_find(struct imgcache *c, const uint8_t key[32]);
/* Adds data (malloc'd, bytes long; the cache takes it) under key and returns
 * it pinned.  If key is already there (another request encoded the same
 * image meanwhile), data is freed and the existing entry is returned. */
struct ic_entry *ic_put(struct imgcache *c, const uint8_t key[32], float *data, size_t bytes);
void ic_unpin(struct imgcache *c, struct ic_entry *e);

struct ic_stats {
    long long hits, misses, evictions;
    size_t bytes, entries, budget;
};
void ic_stats(struct imgcache *c, struct ic_stats *out);

#endif
