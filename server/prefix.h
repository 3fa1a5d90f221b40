/*
 * prefix.h - the prompt-prefix cache: the KV caches of finished
 * generations, kept so that a request that starts with the same tokens and
 * the same images (a second question about a photo, the next turn of a
 * chat, the same few-shot examples) runs only what is new.
 *
 * An entry is a sequence's keys and values for its first n positions, the
 * n tokens they hold and the keys (SHA-256, as in imgcache.h) of the
 * images its <image> tokens stand for.  A position can be reused when every
 * token up to it is the same and every <image> token up to it stands for
 * the same image: the LM's keys and values at a position depend on nothing
 * else.  Entries that are a prefix of a newer one are dropped; beyond the
 * byte budget the least recently used go.  A budget of 0 keeps nothing.
 *
 * Unlike the image cache, an entry is used only while pc_match's caller
 * copies from it, so there is no pinning: pc_match and the copy run on the
 * engine thread, which is also the only one that puts.  The mutex is for
 * pc_stats, which the metrics read from the HTTP threads.
 */
#ifndef FL_PREFIX_H
#define FL_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"
#include "../model/lm.h"

struct prefix_cache;

/* media: the <image> token id; m: the model whose sequences it holds (it
 * compacts an entry whose capacity is well above its length). */
int pc_init(const struct lm_model *m, size_t budget_bytes, int media, struct prefix_cache **out,
            struct fl_err *err);
void pc_free(struct prefix_cache *c);

/* Takes seq and tokens (malloc'd; seq's positions hold tokens[0 .. n))
 * whatever happens; keys: the images of the <image> tokens among them, in
 * order (n_keys of them at least; copied). */
void pc_put(struct prefix_cache *c, struct lm_seq *seq, int *tokens, int n, const uint8_t (*keys)[32],
            int n_keys);

/* The entry sharing the longest prefix with prompt[0 .. n) whose images are
 * keys[], and that prefix's length (0 and NULL when none shares a token).
 * The sequence stays valid until the next pc_put or pc_free. */
int pc_match(struct prefix_cache *c, const int *prompt, int n, const uint8_t (*keys)[32], int n_keys,
             const struct lm_seq **seq);

struct pc_stats {
    long long hits, misses, evictions;
    size_t bytes, entries, budget;
};
void pc_stats(struct prefix_cache *c, struct pc_stats *out);

#endif
