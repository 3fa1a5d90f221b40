/*
 * tokenizer.c - see tokenizer.h.
 *
 * Tables built at load time:
 *   vocab      open-addressing hash: token string -> id (and id -> string)
 *   merges     hash: (left id, right id) -> (rank, merged id)
 *   byte_id    the id of each byte's GPT-2 character (the BPE's starting symbols)
 *   added      the added tokens, longest first
 * BPE over one pre-tokenized word keeps its symbols in a linked list and the
 * candidate merges in a min-heap ordered by (rank, position), as HF's
 * implementation does, so a word of n bytes costs O(n log n) however long it
 * is (a 10,000-character run of one letter is one word).
 *
 * The GPT-2 pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * is matched by hand over code-point classes (letter, number, space, other);
 * \s is Unicode White_Space, letters and numbers are utf8proc's general
 * categories L* and N*.
 */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <utf8proc.h>

/* ---- hash maps ------------------------------------------------------------ */

struct str_slot {
    const char *s;
    uint32_t len;
    int32_t id;
};

struct pair_slot {
    uint64_t key; /* 0 = empty */
    int32_t rank, merged;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

struct added {
    char *content;
    size_t len;
    int id, lstrip, rstrip, normalized;
};

enum norm_kind { NORM_NONE, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD };

struct tok {
    struct str_slot *vocab; /* cap_vocab slots */
    uint32_t cap_vocab;
    char **piece; /* [n_ids] id -> string (NULL for holes) */
    int n_ids;
    struct pair_slot *merges;
    uint32_t cap_merges;
    int byte_id[256];
    char byte_chr[256][3]; /* UTF-8 of each byte's character */
    uint8_t byte_chr_len[256];
    int16_t cp_byte[324]; /* GPT-2 character code point -> byte, -1 if none */
    struct added *added;  /* longest first */
    int n_added;
    enum norm_kind norm;
    int add_prefix_space, use_regex, ignore_merges;
};

static int vocab_find(const struct tok *t, const char *s, size_t n) {
    uint32_t mask = t->cap_vocab - 1;
    for (uint32_t i = (uint32_t)hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        const struct str_slot *e = &t->vocab[i];
        if (!e->s) return -1;
        if (e->len == n && memcmp(e->s, s, n) == 0) return e->id;
    }
}

static int vocab_put(struct tok *t, const char *s, size_t n, int id) {
    uint32_t mask = t->cap_vocab - 1;
    for (uint32_t i = (uint32_t)hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        struct str_slot *e = &t->vocab[i];
        if (!e->s) {
            e->s = s, e->len = (uint32_t)n, e->id = id;
            return 0;
        }
        if (e->len == n && memcmp(e->s, s, n) == 0) return -1; /* duplicate */
    }
}

static const struct pair_slot *merge_find(const struct tok *t, int a, int b) {
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
    uint32_t mask = t->cap_merges - 1;
    for (uint32_t i = (uint32_t)mix64(key) & mask;; i = (i + 1) & mask) {
        const struct pair_slot *e = &t->merges[i];
        if (!e->key) return NULL;
        if (e->key == key) return e;
    }
}

static void merge_put(struct tok *t, int a, int b, int rank, int merged) {
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
    uint32_t mask = t->cap_merges - 1;
    for (uint32_t i = (uint32_t)mix64(key) & mask;; i = (i + 1) & mask) {
        struct pair_slot *e = &t->merges[i];
        if (e->key == key) return; /* a repeated merge keeps its first rank */
        if (!e->key) {
            *e = (struct pair_slot){key, rank, merged};
            return;
        }
    }
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* ---- loading -------------------------------------------------------------- */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68
 * to U+0100 onwards in byte order. */
static void byte_table(struct tok *t) {
    int n = 0;
    for (int i = 0; i < 324; i++)
        t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        int cp = printable ? b : 256 + n++;
        t->cp_byte[cp] = (int16_t)b;
        t->byte_chr_len[b] = (uint8_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)t->byte_chr[b]);
    }
}

static int set_piece(struct tok *t, int id, const char *s, size_t n, struct fl_err *err) {
    if (id < 0 || id >= t->n_ids) return fl_err_set(err, FL_EFORMAT, "tokenizer: id %d out of range", id);
    if (t->piece[id]) return 0; /* an added token that is also in the vocabulary */
    if (!(t->piece[id] = malloc(n + 1))) return fl_err_set(err, FL_ENOMEM, "out of memory");
    memcpy(t->piece[id], s, n);
    t->piece[id][n] = 0;
    return 0;
}

static int cmp_added_len(const void *a, const void *b) {
    const struct added *x = a, *y = b;
    return (x->len < y->len) - (x->len > y->len);
}

static int parse_normalizer(struct tok *t, const cJSON *n, struct fl_err *err) {
    if (!n || cJSON_IsNull(n)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (!cJSON_IsString(type)) return fl_err_set(err, FL_EFORMAT, "tokenizer: normalizer without a type");
    static const char *const names[] = {"NFC", "NFD", "NFKC", "NFKD"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(type->valuestring, names[i])) {
            t->norm = (enum norm_kind)(NORM_NFC + i);
            return 0;
        }
    if (!strcmp(type->valuestring, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *it;
        if (cJSON_GetArraySize(list) > 1)
            return fl_err_set(err, FL_EUNSUPPORTED,
                              "tokenizer: normalizer sequences of more than one are not supported");
        cJSON_ArrayForEach(it, list) return parse_normalizer(t, it, err);
        return 0;
    }
    char pn[64];
    return fl_err_set(err, FL_EUNSUPPORTED, "tokenizer: normalizer '%s' is not supported",
                      fl_printable(type->valuestring, pn));
}

static int parse_pretokenizer(struct tok *t, const cJSON *p, struct fl_err *err) {
    const cJSON *type = p ? cJSON_GetObjectItemCaseSensitive(p, "type") : NULL;
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "ByteLevel"))
        return fl_err_set(err, FL_EUNSUPPORTED, "tokenizer: only the ByteLevel pre-tokenizer is supported");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
    const cJSON *rx = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
    t->add_prefix_space = cJSON_IsTrue(aps);
    t->use_regex = rx ? cJSON_IsTrue(rx) : 1;
    return 0;
}

static int parse_model(struct tok *t, const cJSON *model, struct fl_err *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE"))))
        return fl_err_set(err, FL_EUNSUPPORTED, "tokenizer: only BPE models are supported");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return fl_err_set(err, FL_EFORMAT, "tokenizer: model.vocab and model.merges are required");
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        char pn[64];
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= t->n_ids)
            return fl_err_set(err, FL_EFORMAT, "tokenizer: bad id for token '%s'",
                              fl_printable(it->string, pn));
        int id = (int)it->valuedouble;
        if (set_piece(t, id, it->string, strlen(it->string), err) < 0) return FL_ENOMEM;
        if (vocab_put(t, t->piece[id], strlen(t->piece[id]), id) < 0)
            return fl_err_set(err, FL_EFORMAT, "tokenizer: token '%s' appears twice",
                              fl_printable(it->string, pn));
    }
    t->cap_merges = pow2_at_least(2 * (uint64_t)cJSON_GetArraySize(merges) + 16);
    if (!(t->merges = calloc(t->cap_merges, sizeof *t->merges)))
        return fl_err_set(err, FL_ENOMEM, "out of memory");
    int rank = 0;
    char buf[1024];
    cJSON_ArrayForEach(it, merges) {
        const char *left, *right;
        size_t nl, nr;
        if (cJSON_IsString(it)) { /* "left right" */
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp) return fl_err_set(err, FL_EFORMAT, "tokenizer: merge %d has no space", rank);
            left = it->valuestring, nl = (size_t)(sp - left), right = sp + 1, nr = strlen(right);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) { /* ["left", "right"] */
            left = cJSON_GetArrayItem(it, 0)->valuestring, nl = strlen(left);
            right = cJSON_GetArrayItem(it, 1)->valuestring, nr = strlen(right);
        } else {
            return fl_err_set(err, FL_EFORMAT, "tokenizer: merge %d is neither \"a b\" nor [\"a\", \"b\"]",
                              rank);
        }
        if (nl + nr >= sizeof buf)
            return fl_err_set(err, FL_EFORMAT, "tokenizer: merge %d is too long", rank);
        memcpy(buf, left, nl);
        memcpy(buf + nl, right, nr);
        int a = vocab_find(t, left, nl), b = vocab_find(t, right, nr), m = vocab_find(t, buf, nl + nr);
        if (a < 0 || b < 0 || m < 0)
            return fl_err_set(err, FL_EFORMAT,
                              "tokenizer: merge %d uses a token that is not in the vocabulary", rank);
        merge_put(t, a, b, rank, m);
        rank++;
    }
    return 0;
}

static int max_id(const cJSON *root) {
    int mx = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL, *it;
    cJSON_ArrayForEach(it, vocab) if (cJSON_IsNumber(it) && it->valuedouble > mx &&
                                      it->valuedouble < (1 << 22)) mx = (int)it->valuedouble;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > mx && id->valuedouble < (1 << 22))
            mx = (int)id->valuedouble;
    }
    return mx;
}

int tok_load(const char *json, size_t len, struct tok **out, struct fl_err *err) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fl_err_set(err, FL_EFORMAT, "tokenizer: not a JSON object");
    }
    struct tok *t = calloc(1, sizeof *t);
    int rc = 0;
    if (!t) {
        cJSON_Delete(root);
        return fl_err_set(err, FL_ENOMEM, "out of memory");
    }
    byte_table(t);
    t->n_ids = max_id(root) + 1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    t->cap_vocab = pow2_at_least(2 * ((uint64_t)cJSON_GetArraySize(vocab) + 64));
    t->vocab = calloc(t->cap_vocab, sizeof *t->vocab);
    t->piece = calloc((size_t)(t->n_ids > 0 ? t->n_ids : 1), sizeof *t->piece);
    if (!t->vocab || !t->piece) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
    if (rc == 0) rc = parse_model(t, model, err);
    if (rc == 0 && t->n_ids <= 0) rc = fl_err_set(err, FL_EFORMAT, "tokenizer: empty vocabulary");
    if (rc == 0) rc = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
    if (rc == 0) rc = parse_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
    for (int b = 0; rc == 0 && b < 256; b++)
        if ((t->byte_id[b] = vocab_find(t, t->byte_chr[b], t->byte_chr_len[b])) < 0)
            rc =
                fl_err_set(err, FL_EFORMAT, "tokenizer: byte 0x%02x has no token (not a byte-level BPE?)", b);

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *it;
    if (rc == 0 && added) {
        t->added = calloc((size_t)cJSON_GetArraySize(added) + 1, sizeof *t->added);
        if (!t->added) rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        cJSON_ArrayForEach(it, added) {
            if (rc < 0) break;
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            if (!cJSON_IsString(c) || !c->valuestring[0] || !cJSON_IsNumber(id)) {
                rc = fl_err_set(err, FL_EFORMAT, "tokenizer: an added token lacks content or id");
                break;
            }
            struct added *a = &t->added[t->n_added++];
            a->len = strlen(c->valuestring);
            a->content = strdup(c->valuestring);
            a->id = (int)id->valuedouble;
            a->lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "lstrip"));
            a->rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "rstrip"));
            a->normalized = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "normalized"));
            if (!a->content)
                rc = fl_err_set(err, FL_ENOMEM, "out of memory");
            else
                rc = set_piece(t, a->id, a->content, a->len, err);
            if (rc == 0 && vocab_find(t, a->content, a->len) < 0 &&
                vocab_put(t, t->piece[a->id], a->len, a->id) < 0)
                rc = fl_err_set(err, FL_EFORMAT, "tokenizer: added token clash");
        }
        if (rc == 0) qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added_len);
    }
    cJSON_Delete(root);
    if (rc < 0) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tok_free(struct tok *t) {
    if (!t) return;
    for (int i = 0; i < t->n_ids; i++)
        free(t->piece[i]);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->piece);
    free(t->vocab);
    free(t->merges);
    free(t->added);
    free(t);
}

int tok_vocab_size(const struct tok *t) { return t->n_ids; }

int tok_id(const struct tok *t, const char *token) { return vocab_find(t, token, strlen(token)); }

const char *tok_piece(const struct tok *t, int id) {
    return id >= 0 && id < t->n_ids && t->piece[id] ? t->piece[id] : "";
}

/* ---- encoding ------------------------------------------------------------- */

struct out_ids {
    int *ids;
    int cap, n;
};

static void emit(struct out_ids *o, int id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

struct heap_item {
    int32_t rank, pos;
};

static int item_less(struct heap_item a, struct heap_item b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(struct heap_item *h, int *n, struct heap_item v) {
    int i = (*n)++;
    while (i > 0 && item_less(v, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static struct heap_item heap_pop(struct heap_item *h, int *n) {
    struct heap_item top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(h[c + 1], h[c])) c++;
        if (!item_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* Work space for BPE over words of up to n bytes. */
struct bpe_ws {
    int32_t *id, *prev, *next;
    struct heap_item *heap;
    size_t cap;
};

static int ws_reserve(struct bpe_ws *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t c = n < 64 ? 64 : n;
    int32_t *a = realloc(w->id, c * sizeof *a), *b, *d;
    if (!a) return -1;
    w->id = a;
    if (!(b = realloc(w->prev, c * sizeof *b))) return -1;
    w->prev = b;
    if (!(d = realloc(w->next, c * sizeof *d))) return -1;
    w->next = d;
    struct heap_item *h = realloc(w->heap, 2 * c * sizeof *h);
    if (!h) return -1;
    w->heap = h;
    w->cap = c;
    return 0;
}

static void push_pair(const struct tok *t, struct bpe_ws *w, int *n_heap, int pos) {
    int nx = w->next[pos];
    if (nx < 0) return;
    const struct pair_slot *m = merge_find(t, w->id[pos], w->id[nx]);
    if (m) heap_push(w->heap, n_heap, (struct heap_item){m->rank, pos});
}

/* BPE of one pre-token (raw bytes). */
static int bpe_word(const struct tok *t, struct bpe_ws *w, const uint8_t *s, size_t n, struct out_ids *o) {
    if (t->ignore_merges) {
        char buf[1024];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 2 < sizeof buf; i++) {
            memcpy(buf + k, t->byte_chr[s[i]], t->byte_chr_len[s[i]]);
            k += t->byte_chr_len[s[i]];
        }
        int id = k < sizeof buf - 2 ? vocab_find(t, buf, k) : -1;
        if (id >= 0) {
            emit(o, id);
            return 0;
        }
    }
    if (ws_reserve(w, n) < 0) return -1;
    int n_heap = 0;
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_id[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, w, &n_heap, (int)i);
    while (n_heap > 0) {
        struct heap_item it = heap_pop(w->heap, &n_heap);
        int pos = it.pos, nx = w->next[pos];
        if (w->id[pos] < 0 || nx < 0) continue; /* stale: merged away */
        const struct pair_slot *m = merge_find(t, w->id[pos], w->id[nx]);
        if (!m || m->rank != it.rank) continue; /* stale: the pair changed */
        w->id[pos] = m->merged;
        w->id[nx] = -1; /* dead */
        w->next[pos] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = pos;
        if (w->prev[pos] >= 0) push_pair(t, w, &n_heap, w->prev[pos]);
        push_pair(t, w, &n_heap, pos);
    }
    for (int i = 0; i >= 0 && (size_t)i < n; i = w->next[i])
        emit(o, w->id[i]);
    return 0;
}

enum cls { C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

/* Unicode White_Space (what \s matches in the tokenizers library's regex). */
static int is_white_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

static enum cls classify(int32_t c) {
    if (is_white_space(c)) return C_SPACE;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return C_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return C_NUMBER;
    default: return C_OTHER;
    }
}

/* Splits s[n] (valid UTF-8) by the GPT-2 pattern and runs BPE on each piece. */
static int pretokenize(const struct tok *t, struct bpe_ws *w, const uint8_t *s, size_t n, struct out_ids *o) {
    if (!t->use_regex) return n ? bpe_word(t, w, s, n, o) : 0;
    /* code points: byte offset and class, with a sentinel at the end */
    size_t cap = n + 1, m = 0;
    size_t *off = malloc(cap * sizeof *off);
    uint8_t *cl = malloc(cap);
    int rc = 0;
    if (!off || !cl) {
        free(off);
        free(cl);
        return -1;
    }
    for (size_t i = 0; i < n;) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
        off[m] = i;
        cl[m++] = (uint8_t)classify(c);
        i += (size_t)k;
    }
    off[m] = n;
    size_t i = 0;
    while (i < m && rc == 0) {
        size_t j = i;
        /* 's 't 're 've 'm 'll 'd */
        if (s[off[i]] == '\'' && i + 1 < m) {
            const uint8_t *p = s + off[i] + 1;
            size_t rest = n - off[i] - 1;
            size_t len = 0;
            if (rest >= 1 && (p[0] == 's' || p[0] == 't' || p[0] == 'm' || p[0] == 'd')) len = 1;
            if (rest >= 2 && ((p[0] == 'r' && p[1] == 'e') || (p[0] == 'v' && p[1] == 'e') ||
                              (p[0] == 'l' && p[1] == 'l')))
                len = 2;
            if (len) {
                rc = bpe_word(t, w, s + off[i], len + 1, o);
                i += len + 1;
                continue;
            }
        }
        /* optional space, then a run of letters, numbers or "other" */
        size_t k = i;
        if (s[off[k]] == ' ' && k + 1 < m && cl[k + 1] != C_SPACE) k++;
        if (cl[k] != C_SPACE) {
            enum cls want = (enum cls)cl[k];
            j = k;
            while (j < m && cl[j] == want)
                j++;
            rc = bpe_word(t, w, s + off[i], off[j] - off[i], o);
            i = j;
            continue;
        }
        /* whitespace: the run, minus its last character when a non-space follows */
        j = i;
        while (j < m && cl[j] == C_SPACE)
            j++;
        if (j < m && j - i >= 2) j--;
        rc = bpe_word(t, w, s + off[i], off[j] - off[i], o);
        i = j;
    }
    free(off);
    free(cl);
    return rc;
}

/* Normalises (when asked) and pre-tokenizes one segment between added tokens. */
static int encode_segment(const struct tok *t, struct bpe_ws *w, const uint8_t *s, size_t n,
                          struct out_ids *o) {
    uint8_t *norm = NULL;
    if (t->norm != NORM_NONE && n) {
        int opts = UTF8PROC_STABLE;
        if (t->norm == NORM_NFC || t->norm == NORM_NFKC)
            opts |= UTF8PROC_COMPOSE;
        else
            opts |= UTF8PROC_DECOMPOSE;
        if (t->norm == NORM_NFKC || t->norm == NORM_NFKD) opts |= UTF8PROC_COMPAT;
        utf8proc_ssize_t k = utf8proc_map(s, (utf8proc_ssize_t)n, &norm, (utf8proc_option_t)opts);
        if (k < 0) return -1;
        s = norm;
        n = (size_t)k;
    }
    int rc = 0;
    if (t->add_prefix_space && n && s[0] != ' ') {
        uint8_t *p = malloc(n + 1);
        if (!p)
            rc = -1;
        else {
            p[0] = ' ';
            memcpy(p + 1, s, n);
            rc = pretokenize(t, w, p, n + 1, o);
            free(p);
        }
    } else {
        rc = pretokenize(t, w, s, n, o);
    }
    free(norm);
    return rc;
}

static int is_ascii_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

int tok_encode(const struct tok *t, const char *text, size_t len, int *ids, int cap, int *n_ids,
               struct fl_err *err) {
    const uint8_t *s = (const uint8_t *)text;
    *n_ids = 0;
    for (size_t i = 0; i < len;) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &c);
        if (k < 0) return fl_err_set(err, FL_EINVAL, "invalid UTF-8 at byte %zu", i);
        i += (size_t)k;
    }
    struct out_ids o = {ids, cap, 0};
    struct bpe_ws w = {0};
    int rc = 0;
    size_t seg = 0, i = 0;
    while (i <= len && rc == 0) {
        const struct added *hit = NULL;
        if (i < len)
            for (int a = 0; a < t->n_added; a++)
                if (t->added[a].len <= len - i && !memcmp(s + i, t->added[a].content, t->added[a].len)) {
                    hit = &t->added[a];
                    break; /* longest first */
                }
        if (!hit && i < len) {
            i++;
            continue;
        }
        size_t end = i;
        if (hit && hit->lstrip)
            while (end > seg && is_ascii_space(s[end - 1]))
                end--;
        if (end > seg && encode_segment(t, &w, s + seg, end - seg, &o) < 0)
            rc = fl_err_set(err, FL_ENOMEM, "out of memory tokenizing");
        if (!hit) break;
        emit(&o, hit->id);
        i += hit->len;
        if (hit->rstrip)
            while (i < len && is_ascii_space(s[i]))
                i++;
        seg = i;
    }
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    *n_ids = o.n;
    if (rc == 0 && o.n > cap)
        return fl_err_set(err, FL_ELIMIT, "text needs %d tokens; room for %d", o.n, cap);
    return rc;
}

/* ---- decoding ------------------------------------------------------------- */

size_t tok_decode_cap(const struct tok *t, int id) { return strlen(tok_piece(t, id)) + 16; }

/* Length of a valid UTF-8 sequence starting with byte c, or 0 if c cannot
 * start one. */
static int utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd";

/* Feeds one byte; writes complete characters (or U+FFFD for invalid ones). */
static size_t feed(struct tok_stream *st, uint8_t b, char *out) {
    size_t w = 0;
    for (;;) {
        if (st->n_pending == 0) {
            int need = utf8_len(b);
            if (need == 1) {
                out[w++] = (char)b;
                return w;
            }
            if (need == 0) {
                memcpy(out + w, REPLACEMENT, 3);
                return w + 3;
            }
            st->pending[st->n_pending++] = b;
            return w;
        }
        /* continuation byte?  (also the stricter second-byte ranges) */
        uint8_t lead = st->pending[0];
        int ok = (b & 0xc0) == 0x80;
        if (ok && st->n_pending == 1) {
            if (lead == 0xe0)
                ok = b >= 0xa0;
            else if (lead == 0xed)
                ok = b <= 0x9f;
            else if (lead == 0xf0)
                ok = b >= 0x90;
            else if (lead == 0xf4)
                ok = b <= 0x8f;
        }
        if (!ok) { /* the pending prefix is invalid: one U+FFFD, then retry b */
            memcpy(out + w, REPLACEMENT, 3);
            w += 3;
            st->n_pending = 0;
            continue;
        }
        st->pending[st->n_pending++] = b;
        if (st->n_pending == utf8_len(lead)) {
            memcpy(out + w, st->pending, (size_t)st->n_pending);
            w += (size_t)st->n_pending;
            st->n_pending = 0;
        }
        return w;
    }
}

/* A token's raw bytes: byte-level characters mapped back to bytes; a token
 * with any other character (an added token like "<image>" is plain ASCII and
 * maps) is taken as its own UTF-8, as HF's ByteLevel decoder does. */
size_t tok_token_bytes(const struct tok *t, int id, uint8_t *out, size_t cap) {
    if (id < 0 || id >= t->n_ids || !t->piece[id]) return 0;
    const uint8_t *p = (const uint8_t *)t->piece[id];
    size_t n = strlen(t->piece[id]), nb = 0;
    int all_mapped = 1;
    for (size_t i = 0; i < n && all_mapped;) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &c);
        if (k < 0 || c < 0 || c >= 324 || t->cp_byte[c] < 0 || nb == cap)
            all_mapped = 0;
        else
            out[nb++] = (uint8_t)t->cp_byte[c], i += (size_t)k;
    }
    if (all_mapped) return nb;
    if (n > cap) n = cap;
    memcpy(out, p, n);
    return n;
}

size_t tok_decode_next(const struct tok *t, struct tok_stream *st, int id, char *out, size_t cap) {
    uint8_t bytes[1024];
    size_t ns = tok_token_bytes(t, id, bytes, sizeof bytes), w = 0;
    char tmp[8];
    for (size_t i = 0; i < ns; i++) {
        size_t k = feed(st, bytes[i], tmp);
        if (w + k > cap) break;
        memcpy(out + w, tmp, k);
        w += k;
    }
    return w;
}

size_t tok_decode_end(struct tok_stream *st, char *out) {
    if (!st->n_pending) return 0;
    st->n_pending = 0;
    memcpy(out, REPLACEMENT, 3);
    return 3;
}
