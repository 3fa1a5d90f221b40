/* wload.c - see wload.h. */
#include "wload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wl_init(struct wl *w, const struct st_file *file) {
    memset(w, 0, sizeof *w);
    w->file = file;
}

void wl_free(struct wl *w) {
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    memset(w, 0, sizeof *w);
}

static void shape_str(char *buf, size_t cap, int n_dims, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (int i = 0; i < n_dims && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
}

int wl_get(struct wl *w, const char *name, int n_dims, const int64_t *shape, int optional,
           const float **out, struct fl_err *err) {
    *out = NULL;
    const struct st_tensor *t = st_find(w->file, name);
    if (!t) {
        if (optional) return 0;
        return fl_err_set(err, FL_EFORMAT, "%s: missing tensor '%s'", st_path(w->file), name);
    }
    int same = t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[96], got[96];
        shape_str(want, sizeof want, n_dims, shape);
        shape_str(got, sizeof got, t->n_dims, t->shape);
        return fl_err_set(err, FL_EFORMAT, "%s: tensor '%s' has shape %s, expected %s",
                          st_path(w->file), name, got, want);
    }
    const float *view = st_f32_view(t);
    if (view || t->n_elems == 0) {
        *out = view;
        return 0;
    }
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? 2 * w->cap_owned : 64;
        void **p = realloc(w->owned, (size_t)cap * sizeof *p);
        if (!p) return fl_err_set(err, FL_ENOMEM, "out of memory loading '%s'", name);
        w->owned = p;
        w->cap_owned = cap;
    }
    float *copy = malloc((size_t)t->n_elems * sizeof *copy);
    if (!copy)
        return fl_err_set(err, FL_ENOMEM, "out of memory converting '%s' to f32 (%lld values)", name,
                          (long long)t->n_elems);
    int rc = st_to_f32(t, copy, err);
    if (rc < 0) {
        free(copy);
        fl_err_prefix(err, "%s", st_path(w->file));
        return rc;
    }
    st_release(w->file, t); /* the copy replaces the mapped bytes: do not keep both resident */
    w->owned[w->n_owned++] = copy;
    w->owned_bytes += (size_t)t->n_elems * sizeof *copy;
    *out = copy;
    return 0;
}

int wl_getf(struct wl *w, const float **out, int optional, struct fl_err *err, int n_dims,
            const int64_t *shape, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return wl_get(w, name, n_dims, shape, optional, out, err);
}
