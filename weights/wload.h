/*
 * wload.h - fetch named weight tensors as float32, checked against the
 * shape the network expects.
 *
 * Network builders (vision/clip.c, later model/) ask for "this name, this
 * shape"; the answer is a pointer straight into the mapped file when the
 * tensor is F32 and aligned (no copy), or a converted copy (F16/BF16) owned
 * by the loader.  A missing tensor or a shape mismatch is an error that
 * names the tensor and both shapes.  All copies are freed by wl_free.
 */
#ifndef FL_WLOAD_H
#define FL_WLOAD_H

#include <stdint.h>

#include "../core/wmat.h"
#include "st.h"

struct wl {
    const struct st_file *file;
    void **owned; /* converted copies */
    int n_owned, cap_owned;
    size_t owned_bytes;
};

void wl_init(struct wl *w, const struct st_file *file);
void wl_free(struct wl *w);

/* Returns 0 and sets *out to n_dims-D float data of exactly shape[], or an
 * error naming the tensor.  optional != 0: a missing tensor sets *out to NULL
 * and returns 0 (a present one must still match). */
int wl_get(struct wl *w, const char *name, int n_dims, const int64_t *shape, int optional,
           const float **out, struct fl_err *err);

/* Same with the name built printf-style (at most 255 characters). */
int wl_getf(struct wl *w, const float **out, int optional, struct fl_err *err, int n_dims,
            const int64_t *shape, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/*
 * A Linear layer's weight, kept in the type the file stores where a kernel
 * computes on it (core/wmat.h): F32 and BF16 in place (when aligned), q8_0
 * from an I8 tensor `name` plus its F16 scales `name` + "_scale", shaped
 * [shape[0], prod(shape[1:]) / 32] (FORMAT.md).  F16 becomes an F32 copy.
 * shape[] is checked as wl_get does; out->n = shape[0], out->k = the rest.
 */
int wl_get_w(struct wl *w, const char *name, int n_dims, const int64_t *shape, struct wmat *out,
             struct fl_err *err);
int wl_getf_w(struct wl *w, struct wmat *out, struct fl_err *err, int n_dims, const int64_t *shape,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
