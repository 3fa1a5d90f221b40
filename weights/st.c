/*
 * st.c - safetensors reader (see st.h for the contract).
 *
 * Validation happens once, in parse(), in this order: header length (cap and
 * inside the file), JSON well-formedness with nothing but whitespace after
 * the object, one entry per tensor with a known dtype, a shape of at most
 * ST_MAX_DIMS non-negative integers, data_offsets [begin, end] with
 * begin <= end <= data size, end - begin == elements x dtype size, names
 * unique, and no two non-empty tensors sharing a byte.  The cJSON tree is
 * kept for the lifetime of the file: names and metadata point into it.
 */
#include "st.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

struct st_meta {
    const char *key;
    const char *value;
};

struct st_file {
    char *path;
    const uint8_t *base; /* whole file */
    size_t size;
    int mapped; /* base came from mmap and must be unmapped */
    cJSON *root;
    struct st_tensor *tensors; /* sorted by name */
    int n_tensors;
    struct st_meta *meta; /* sorted by key */
    int n_meta;
};

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I8] = {"I8", 1},   [ST_U8] = {"U8", 1},   [ST_I32] = {"I32", 4},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

size_t st_dtype_size(enum st_dtype dt) { return dtype_info[dt].size; }
const char *st_dtype_name(enum st_dtype dt) { return dtype_info[dt].name; }

/* A JSON number that is an integer in [0, 2^53]: exactly representable. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

static int parse_tensor(const cJSON *item, struct st_tensor *t, size_t data_size,
                        struct fl_err *err) {
    char pn[64];
    const char *name = fl_printable(item->string, pn);
    if (!cJSON_IsObject(item))
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': entry is not a JSON object", name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dtype))
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': missing or non-string dtype", name);
    int dt = -1;
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(dtype->valuestring, dtype_info[i].name) == 0) dt = i;
    if (dt < 0) {
        char pd[64];
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': unknown dtype '%s'", name,
                          fl_printable(dtype->valuestring, pd));
    }

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(shape))
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': missing or non-array shape", name);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > ST_MAX_DIMS)
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': %d dimensions (at most %d)", name,
                          n_dims, ST_MAX_DIMS);
    uint64_t n_elems = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (!json_uint(dim, &v))
            return fl_err_set(err, FL_EFORMAT, "tensor '%s': shape[%d] is not a non-negative integer",
                              name, d);
        if (v != 0 && n_elems > UINT64_MAX / v)
            return fl_err_set(err, FL_EFORMAT, "tensor '%s': shape product overflows", name);
        n_elems *= v;
        t->shape[d++] = (int64_t)v;
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return fl_err_set(err, FL_EFORMAT,
                          "tensor '%s': data_offsets must be two non-negative integers", name);
    if (begin > end)
        return fl_err_set(err, FL_EFORMAT, "tensor '%s': data_offsets [%llu, %llu] are reversed",
                          name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return fl_err_set(err, FL_EFORMAT,
                          "tensor '%s': data ends at byte %llu but the data section has %zu bytes "
                          "(truncated file?)",
                          name, (unsigned long long)end, data_size);
    uint64_t want;
    if (n_elems > UINT64_MAX / dtype_info[dt].size ||
        (want = n_elems * dtype_info[dt].size) != end - begin)
        return fl_err_set(err, FL_EFORMAT,
                          "tensor '%s': %llu bytes in the file but %s x shape needs %llu", name,
                          (unsigned long long)(end - begin), dtype_info[dt].name,
                          (unsigned long long)(n_elems * dtype_info[dt].size));

    t->name = item->string;
    t->dtype = (enum st_dtype)dt;
    t->n_dims = n_dims;
    t->n_elems = (int64_t)n_elems;
    t->n_bytes = (size_t)want;
    t->offset = (size_t)begin;
    return 0;
}

static int parse_metadata(struct st_file *f, const cJSON *obj, struct fl_err *err) {
    if (!cJSON_IsObject(obj))
        return fl_err_set(err, FL_EFORMAT, "__metadata__ is not a JSON object");
    int n = cJSON_GetArraySize(obj);
    f->meta = calloc(n ? (size_t)n : 1, sizeof *f->meta);
    if (!f->meta) return fl_err_set(err, FL_ENOMEM, "out of memory reading __metadata__");
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        char pk[64];
        if (!cJSON_IsString(it))
            return fl_err_set(err, FL_EFORMAT, "__metadata__ value '%s' is not a string",
                              fl_printable(it->string, pk));
        f->meta[f->n_meta].key = it->string;
        f->meta[f->n_meta].value = it->valuestring;
        f->n_meta++;
    }
    qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta_key);
    for (int i = 1; i < f->n_meta; i++) {
        char pk[64];
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return fl_err_set(err, FL_EFORMAT, "duplicate __metadata__ key '%s'",
                              fl_printable(f->meta[i].key, pk));
    }
    return 0;
}

/* Counts JSON value separators and openers outside strings. */
static size_t count_json_values(const char *p, size_t n) {
    size_t count = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ',' || c == '[' || c == '{' || c == ':') {
            count++;
        }
    }
    return count;
}

static int parse(struct st_file *f, struct fl_err *err) {
    if (f->size < 8)
        return fl_err_set(err, FL_EFORMAT, "%zu bytes is too small for a safetensors header",
                          f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen > ST_MAX_HEADER)
        return fl_err_set(err, FL_ELIMIT, "header length %llu exceeds the %u MiB cap",
                          (unsigned long long)hlen, ST_MAX_HEADER >> 20);
    if (hlen > f->size - 8)
        return fl_err_set(err, FL_EFORMAT,
                          "header length %llu runs past the end of the %zu-byte file (truncated?)",
                          (unsigned long long)hlen, f->size);
    if (hlen < 2) return fl_err_set(err, FL_EFORMAT, "header of %llu bytes is not a JSON object",
                                    (unsigned long long)hlen);

    const char *hdr = (const char *)f->base + 8;
    const char *end = NULL;
    size_t values = count_json_values(hdr, (size_t)hlen);
    if (values > ST_MAX_HEADER_VALUES)
        return fl_err_set(err, FL_ELIMIT, "header holds over %zu JSON values; the cap is %u", values,
                          ST_MAX_HEADER_VALUES);
    f->root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!f->root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return fl_err_set(err, FL_EFORMAT, "header is not valid JSON (near byte %zu)", at);
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return fl_err_set(err, FL_EFORMAT, "header has trailing bytes after the JSON object");
    if (!cJSON_IsObject(f->root)) return fl_err_set(err, FL_EFORMAT, "header is not a JSON object");

    size_t data_size = f->size - 8 - (size_t)hlen;
    const uint8_t *data = f->base + 8 + hlen;
    int n = cJSON_GetArraySize(f->root);
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    if (!f->tensors) return fl_err_set(err, FL_ENOMEM, "out of memory for %d tensor entries", n);

    const cJSON *item;
    int rc;
    cJSON_ArrayForEach(item, f->root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (f->meta) return fl_err_set(err, FL_EFORMAT, "duplicate __metadata__");
            if ((rc = parse_metadata(f, item, err)) < 0) return rc;
            continue;
        }
        struct st_tensor *t = &f->tensors[f->n_tensors];
        if ((rc = parse_tensor(item, t, data_size, err)) < 0) return rc;
        t->data = t->n_bytes ? data + t->offset : NULL;
        f->n_tensors++;
    }

    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < f->n_tensors; i++) {
        char pn[64];
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return fl_err_set(err, FL_EFORMAT, "duplicate tensor name '%s'",
                              fl_printable(f->tensors[i].name, pn));
    }

    /* Overlap check over the non-empty tensors, in offset order. */
    const struct st_tensor **by_off = malloc((f->n_tensors ? (size_t)f->n_tensors : 1) * sizeof *by_off);
    if (!by_off) return fl_err_set(err, FL_ENOMEM, "out of memory checking tensor offsets");
    int m = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].n_bytes) by_off[m++] = &f->tensors[i];
    qsort(by_off, (size_t)m, sizeof *by_off, cmp_tensor_offset);
    rc = 0;
    for (int i = 1; i < m && rc == 0; i++) {
        const struct st_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->n_bytes > b->offset) {
            char pa[64], pb[64];
            rc = fl_err_set(err, FL_EFORMAT, "tensors '%s' and '%s' overlap (bytes %zu..%zu and %zu..%zu)",
                            fl_printable(a->name, pa), fl_printable(b->name, pb), a->offset,
                            a->offset + a->n_bytes, b->offset, b->offset + b->n_bytes);
        }
    }
    free(by_off);
    return rc;
}

static int finish_open(struct st_file *f, const char *name, struct st_file **out,
                       struct fl_err *err) {
    int rc = parse(f, err);
    if (rc < 0) {
        fl_err_prefix(err, "%s", name);
        st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int st_open_memory(const void *buf, size_t len, const char *name, struct st_file **out,
                   struct fl_err *err) {
    *out = NULL;
    struct st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        free(f);
        return fl_err_set(err, FL_ENOMEM, "%s: out of memory", name);
    }
    f->base = buf;
    f->size = len;
    return finish_open(f, name, out, err);
}

int st_open(const char *path, struct st_file **out, struct fl_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fl_err_set(err, FL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fl_err_set(err, FL_EIO, "%s: not a regular file", path);
    }
    struct st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return fl_err_set(err, FL_ENOMEM, "%s: out of memory", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(f->path);
            free(f);
            return fl_err_set(err, FL_EIO, "%s: cannot map: %s", path, strerror(e));
        }
        f->base = p;
        f->mapped = 1;
    }
    close(fd);
    return finish_open(f, path, out, err);
}

void st_close(struct st_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    cJSON_Delete(f->root);
    free(f->tensors);
    free(f->meta);
    free(f->path);
    free(f);
}

const char *st_path(const struct st_file *f) { return f->path; }
size_t st_file_size(const struct st_file *f) { return f->size; }
int st_n_tensors(const struct st_file *f) { return f->n_tensors; }

const struct st_tensor *st_tensor_at(const struct st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    struct st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof key, cmp_tensor_name);
}

int st_n_metadata(const struct st_file *f) { return f->n_meta; }

void st_metadata_at(const struct st_file *f, int i, const char **key, const char **value) {
    *key = f->meta[i].key;
    *value = f->meta[i].value;
}

const char *st_metadata(const struct st_file *f, const char *key) {
    struct st_meta k = {.key = key};
    const struct st_meta *m = f->n_meta ? bsearch(&k, f->meta, (size_t)f->n_meta, sizeof k, cmp_meta_key) : NULL;
    return m ? m->value : NULL;
}

const float *st_f32_view(const struct st_tensor *t) {
    if (t->dtype != ST_F32 || ((uintptr_t)t->data & 3u)) return NULL;
    return t->data;
}

void st_release(const struct st_file *f, const struct st_tensor *t) {
    if (!f->mapped || !t->data || t->n_bytes == 0) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + page - 1) / page * page;
    uintptr_t hi = ((uintptr_t)t->data + t->n_bytes) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: renormalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_to_f32(const struct st_tensor *t, float *dst, struct fl_err *err) {
    const uint8_t *src = t->data;
    size_t n = (size_t)t->n_elems;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, src, n * 4);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t v = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = t->dtype == ST_F16 ? st_f16_to_f32(v) : st_bf16_to_f32(v);
        }
        return 0;
    default: {
        char pn[64];
        return fl_err_set(err, FL_EFORMAT, "tensor '%s' is %s; a float tensor is needed",
                          fl_printable(t->name, pn), st_dtype_name(t->dtype));
    }
    }
}
