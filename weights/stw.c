/* stw.c - see stw.h.  The header is written with cJSON; offsets are decided
 * before the JSON is printed, so the header length is known only after
 * printing, and the data section start is then rounded up with spaces. */
#include "stw.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

struct stw_tensor {
    char *name;
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    size_t n_bytes, offset;
    int index; /* position in declaration order */
};

struct stw {
    struct stw_tensor *t;
    int n, cap;
    cJSON *meta;
    uint8_t *data; /* into the finished buffer */
};

struct stw *stw_new(void) { return calloc(1, sizeof(struct stw)); }

void stw_free(struct stw *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}

int stw_add(struct stw *w, const char *name, enum st_dtype dtype, int n_dims, const int64_t *shape,
            struct fl_err *err) {
    if (n_dims < 0 || n_dims > ST_MAX_DIMS)
        return fl_err_set(err, FL_EINVAL, "tensor '%s': %d dimensions", name, n_dims);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        struct stw_tensor *p = realloc(w->t, (size_t)cap * sizeof *p);
        if (!p) return fl_err_set(err, FL_ENOMEM, "out of memory");
        w->t = p;
        w->cap = cap;
    }
    struct stw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return fl_err_set(err, FL_ENOMEM, "out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->index = w->n;
    size_t elems = 1;
    for (int i = 0; i < n_dims; i++) {
        t->shape[i] = shape[i];
        elems *= (size_t)shape[i];
    }
    t->n_bytes = elems * st_dtype_size(dtype);
    return w->n++;
}

int stw_add_meta(struct stw *w, const char *key, const char *value, struct fl_err *err) {
    if (!w->meta && !(w->meta = cJSON_CreateObject())) return fl_err_set(err, FL_ENOMEM, "out of memory");
    if (!cJSON_AddStringToObject(w->meta, key, value)) return fl_err_set(err, FL_ENOMEM, "out of memory");
    return 0;
}

static int by_size_then_name(const void *a, const void *b) {
    const struct stw_tensor *x = a, *y = b;
    size_t sx = st_dtype_size(x->dtype), sy = st_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

int stw_finish(struct stw *w, uint8_t **buf, size_t *len, struct fl_err *err) {
    *buf = NULL;
    *len = 0;
    /* Indices returned by stw_add must stay valid: lay out a sorted copy. */
    struct stw_tensor *sorted = malloc((size_t)(w->n ? w->n : 1) * sizeof *sorted);
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;
    int rc = 0;
    if (!sorted || !root) {
        rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(sorted, w->t, (size_t)w->n * sizeof *sorted);
    qsort(sorted, (size_t)w->n, sizeof *sorted, by_size_then_name);
    size_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        sorted[i].offset = w->t[sorted[i].index].offset = offset;
        offset += sorted[i].n_bytes;
    }
    if (w->meta) {
        cJSON *copy = cJSON_Duplicate(w->meta, 1);
        if (!copy || !cJSON_AddItemToObject(root, "__metadata__", copy)) {
            cJSON_Delete(copy);
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
            goto done;
        }
    }
    for (int i = 0; i < w->n; i++) {
        const struct stw_tensor *t = &sorted[i];
        size_t off = t->offset;
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!e || !shape || !offs || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype))) {
            rc = fl_err_set(err, FL_ENOMEM, "out of memory");
            goto done;
        }
        for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->n_bytes)));
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        rc = fl_err_set(err, FL_ENOMEM, "out of memory");
        goto done;
    }
    size_t hlen = strlen(json);
    hlen += (64 - (8 + hlen) % 64) % 64;
    size_t total = 8 + hlen + offset;
    uint8_t *out = calloc(1, total);
    if (!out) {
        rc = fl_err_set(err, FL_ENOMEM, "out of memory for a %zu-byte model image", total);
        goto done;
    }
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memset(out + 8, ' ', hlen);
    memcpy(out + 8, json, strlen(json));
    w->data = out + 8 + hlen;
    *buf = out;
    *len = total;
done:
    cJSON_Delete(root);
    cJSON_free(json);
    free(sorted);
    return rc;
}

void *stw_data(const struct stw *w, int index) { return w->data + w->t[index].offset; }
