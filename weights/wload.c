/* wload.c - see wload.h. */
#include "wload.h"

#include <stdarg.h>
#include <stdint.h>
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

static int check_shape(const struct wl *w, const struct st_tensor *t, const char *name, int n_dims,
                       const int64_t *shape, struct fl_err *err) {
    int same = t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = t->shape[i] == shape[i];
    if (same) return 0;
    char want[96], got[96];
    shape_str(want, sizeof want, n_dims, shape);
    shape_str(got, sizeof got, t->n_dims, t->shape);
    return fl_err_set(err, FL_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", st_path(w->file), name, got,
                      want);
}

int wl_get(struct wl *w, const char *name, int n_dims, const int64_t *shape, int optional,
           const float **out, struct fl_err *err) {
    *out = NULL;
    const struct st_tensor *t = st_find(w->file, name);
    if (!t) {
        if (optional) return 0;
        return fl_err_set(err, FL_EFORMAT, "%s: missing tensor '%s'", st_path(w->file), name);
    }
    if (check_shape(w, t, name, n_dims, shape, err) < 0) return -1;
    if (t->dtype == ST_I8)
        return fl_err_set(err, FL_EFORMAT, "%s: tensor '%s' is I8 (q8_0), which only Linear weights may be",
                          st_path(w->file), name);
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

int wl_get_w(struct wl *w, const char *name, int n_dims, const int64_t *shape, struct wmat *out,
             struct fl_err *err) {
    memset(out, 0, sizeof *out);
    int64_t k = 1;
    for (int i = 1; i < n_dims; i++)
        k *= shape[i];
    if (n_dims < 1 || shape[0] > INT32_MAX || k > INT32_MAX)
        return fl_err_set(err, FL_EFORMAT, "%s: '%s' is too large for a weight matrix", st_path(w->file), name);
    out->n = (int)shape[0];
    out->k = (int)k;
    const struct st_tensor *t = st_find(w->file, name);
    if (!t) return fl_err_set(err, FL_EFORMAT, "%s: missing tensor '%s'", st_path(w->file), name);
    if (check_shape(w, t, name, n_dims, shape, err) < 0) return -1;
    if (t->dtype == ST_BF16 && ((uintptr_t)t->data & 1) == 0) {
        out->type = WMAT_BF16;
        out->data = t->data;
        return 0;
    }
    if (t->dtype == ST_I8) {
        char sname[300];
        snprintf(sname, sizeof sname, "%s_scale", name);
        const struct st_tensor *s = st_find(w->file, sname);
        const int64_t sshape[2] = {shape[0], k / WMAT_Q8_BLOCK};
        if (k % WMAT_Q8_BLOCK)
            return fl_err_set(err, FL_EFORMAT, "%s: tensor '%s' is I8 (q8_0) with rows of %lld values, not a multiple of %d",
                              st_path(w->file), name, (long long)k, WMAT_Q8_BLOCK);
        if (!s)
            return fl_err_set(err, FL_EFORMAT, "%s: tensor '%s' is I8 (q8_0) but has no scales '%s'", st_path(w->file),
                              name, sname);
        if (s->dtype != ST_F16)
            return fl_err_set(err, FL_EFORMAT, "%s: q8_0 scales '%s' are %s, expected F16", st_path(w->file), sname,
                              st_dtype_name(s->dtype));
        if (check_shape(w, s, sname, 2, sshape, err) < 0) return -1;
        if (((uintptr_t)s->data & 1) != 0)
            return fl_err_set(err, FL_EFORMAT, "%s: q8_0 scales '%s' are not 2-byte aligned", st_path(w->file),
                              sname);
        out->type = WMAT_Q8_0;
        out->data = t->data;
        out->scale = s->data;
        return 0;
    }
    const float *f = NULL;
    if (wl_get(w, name, n_dims, shape, 0, &f, err) < 0) return -1;
    out->type = WMAT_F32;
    out->data = f;
    return 0;
}

int wl_getf_w(struct wl *w, struct wmat *out, struct fl_err *err, int n_dims, const int64_t *shape,
              const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return wl_get_w(w, name, n_dims, shape, out, err);
}
