/*
 * stw.h - build a safetensors file image in memory (the C writer).
 *
 * For synthetic models (flamingo bench --synthetic) and tests: declare the
 * tensors, finish once to get one buffer with the header laid out exactly
 * as weights/stfile.py lays it out (largest elements first, data section
 * 64-byte aligned), then fill each tensor's bytes in place.  The result can
 * be opened with st_open_memory or written to disk.
 */
#ifndef FL_STW_H
#define FL_STW_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

struct stw;

struct stw *stw_new(void);
void stw_free(struct stw *w);

/* Declares a tensor; returns its index (>= 0) or a negative error. */
int stw_add(struct stw *w, const char *name, enum st_dtype dtype, int n_dims, const int64_t *shape,
            struct fl_err *err);
int stw_add_meta(struct stw *w, const char *key, const char *value, struct fl_err *err);

/* Lays out header and data; *buf (free with free()) holds the whole file,
 * tensor bytes zeroed.  After this, stw_data gives each tensor's bytes. */
int stw_finish(struct stw *w, uint8_t **buf, size_t *len, struct fl_err *err);
void *stw_data(const struct stw *w, int index);

#endif
