/*
 * st.h - the model file: a memory-mapped safetensors reader.
 *
 * A flamingo.c model is one .safetensors file (format: docs/FORMAT.md):
 *
 *   [u64 little-endian N][N bytes of JSON header][tensor bytes]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets}, offsets
 * relative to the first byte after the header, plus an optional
 * "__metadata__" object of string values (our config JSON and the
 * tokenizer.json text live there).
 *
 * The file is mapped read-only and never copied: tensor data pointers point
 * into the mapping and stay valid until st_close.  Everything in the header is
 * validated at open time, so later code can trust shapes, sizes and offsets:
 * header length and JSON value count capped, every tensor inside the file, byte
 * length equal to dtype size x shape product (overflow-checked), no two
 * tensors overlapping, no duplicate names, known dtypes only.  A hostile or
 * truncated file gives one error line naming the file and the problem.
 *
 * Thread-safety: an open st_file is immutable; any thread may read it.
 */
#ifndef FL_ST_H
#define FL_ST_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (64u << 20) /* 64 MiB: GPT-NeoX's tokenizer.json is ~2 MiB */
/* JSON values outside strings: a real header has about 10 per tensor (the
 * tokenizer is one string), while "0," costs the parser 64 bytes for 2 of
 * header, so this caps the parse at ~128 MB whatever the header holds. */
#define ST_MAX_HEADER_VALUES (2u << 20)

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_I8, ST_U8, ST_I32 };

struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    int64_t n_elems;
    size_t n_bytes;
    size_t offset;    /* from the start of the data section */
    const void *data; /* into the mapping; NULL only when n_bytes == 0 */
};

struct st_file;

/* Maps and validates path.  On success *out owns the mapping; free with
 * st_close.  On failure *out is NULL and err names path and the problem. */
int st_open(const char *path, struct st_file **out, struct fl_err *err);

/* Parses an in-memory image of a file (not copied; buf must outlive the
 * st_file).  name is used in error messages.  For tests and fuzzing. */
int st_open_memory(const void *buf, size_t len, const char *name, struct st_file **out,
                   struct fl_err *err);

void st_close(struct st_file *f);

const char *st_path(const struct st_file *f);
size_t st_file_size(const struct st_file *f);

/* Tensors in name order. */
int st_n_tensors(const struct st_file *f);
const struct st_tensor *st_tensor_at(const struct st_file *f, int i);
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* __metadata__ entries in key order; st_metadata returns NULL when absent. */
int st_n_metadata(const struct st_file *f);
void st_metadata_at(const struct st_file *f, int i, const char **key, const char **value);
const char *st_metadata(const struct st_file *f, const char *key);

size_t st_dtype_size(enum st_dtype dt);
const char *st_dtype_name(enum st_dtype dt);

/* Returns t's data as float* when it is F32 and 4-byte aligned (zero copy),
 * else NULL. */
const float *st_f32_view(const struct st_tensor *t);

/* Converts t (F32, F16 or BF16) into dst[t->n_elems].  Integer dtypes are an
 * error naming the tensor. */
int st_to_f32(const struct st_tensor *t, float *dst, struct fl_err *err);

/* Tells the kernel that t's bytes in the mapping will not be read again (after
 * they were converted into a copy), so that the pages it holds are given back
 * instead of staying resident beside the copy.  Only whole pages inside t are
 * released; a later read still works (it faults the page back in).  A no-op
 * for files opened from memory. */
void st_release(const struct st_file *f, const struct st_tensor *t);

/* Scalar conversions, exposed for kernels and tests. */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

#endif
