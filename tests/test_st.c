/*
 * test_st.c - the safetensors reader against files written by the Python
 * writer (weights/stfile.py, fixture made by `make golden`), and against a
 * catalogue of broken and hostile files, each of which must give one clean
 * error line naming the file (and nothing under ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../weights/st.h"
#include "../weights/stw.h"
#include "test.h"

#define FIXTURE "tests/fixtures/st_basic.safetensors"

static void check_basic(void) {
    struct fl_err err = {0};
    struct st_file *f = NULL;
    int rc = st_open(FIXTURE, &f, &err);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_STR(st_metadata(f, "format"), "flamingo.c test");
    CHECK_STR(st_metadata(f, "unicode"), "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\xa6\xa9");
    CHECK(st_metadata(f, "absent") == NULL);
    CHECK_INT(st_n_metadata(f), 2);

    const struct st_tensor *a = st_find(f, "a.f32");
    CHECK(a != NULL);
    if (a) {
        CHECK_INT(a->dtype, ST_F32);
        CHECK_INT(a->n_dims, 2);
        CHECK_INT(a->shape[0], 2);
        CHECK_INT(a->shape[1], 3);
        const float *v = st_f32_view(a);
        CHECK(v != NULL);
        for (int i = 0; v && i < 6; i++) CHECK_NEAR(v[i], i * 0.5 - 1.0, 0.0);
    }
    const struct st_tensor *s = st_find(f, "scalar");
    CHECK(s && s->n_dims == 0 && s->n_elems == 1);
    if (s) {
        int32_t v;
        memcpy(&v, s->data, 4);
        CHECK_INT(v, -123456789);
        CHECK_INT(s->dtype, ST_I32);
    }
    const struct st_tensor *z = st_find(f, "empty");
    CHECK(z && z->n_elems == 0 && z->n_bytes == 0 && z->shape[0] == 0 && z->shape[1] == 7);
    const struct st_tensor *i8 = st_find(f, "i8");
    CHECK(i8 && i8->dtype == ST_I8 && i8->n_elems == 256);
    for (int i = 0; i8 && i < 256; i++) CHECK_INT(((const int8_t *)i8->data)[i], (int8_t)(i - 128));
    const struct st_tensor *u8 = st_find(f, "u8");
    CHECK(u8 && u8->dtype == ST_U8 && u8->n_elems == 3);
    if (u8) CHECK_INT(((const uint8_t *)u8->data)[2], 255);

    /* Every F16 and BF16 bit pattern against numpy's conversion. */
    const char *pairs[][2] = {{"f16_all", "f16_all_as_f32"}, {"bf16_all", "bf16_all_as_f32"}};
    for (int p = 0; p < 2; p++) {
        const struct st_tensor *h = st_find(f, pairs[p][0]);
        const struct st_tensor *ref = st_find(f, pairs[p][1]);
        CHECK(h && ref && h->n_elems == 65536 && ref->n_elems == 65536);
        if (!h || !ref) continue;
        CHECK_INT(h->dtype, p == 0 ? ST_F16 : ST_BF16);
        float *got = malloc(65536 * sizeof *got);
        CHECK_INT(st_to_f32(h, got, &err), 0);
        const float *want = st_f32_view(ref);
        int bad = 0;
        for (int i = 0; i < 65536; i++) {
            uint32_t gb, wb;
            memcpy(&gb, &got[i], 4);
            memcpy(&wb, &want[i], 4);
            if (isnan(want[i]) ? !isnan(got[i]) : gb != wb) {
                if (bad++ < 5)
                    fprintf(stderr, "%s[%d]: got %08x want %08x\n", pairs[p][0], i, gb, wb);
            }
        }
        CHECK_INT(bad, 0);
        free(got);
    }

    /* st_to_f32 refuses integer tensors with the tensor's name. */
    if (i8) {
        float tmp[256];
        CHECK(st_to_f32(i8, tmp, &err) < 0);
        CHECK(strstr(err.msg, "i8") != NULL);
    }
    /* Tensors come back in name order, all found by name. */
    for (int i = 0; i < st_n_tensors(f); i++) {
        const struct st_tensor *t = st_tensor_at(f, i);
        CHECK(st_find(f, t->name) == t);
        if (i) CHECK(strcmp(st_tensor_at(f, i - 1)->name, t->name) < 0);
        if (t->n_bytes) CHECK(((uintptr_t)t->data % st_dtype_size(t->dtype)) == 0);
    }
    st_close(f);
}

/* Builds [u64 len][header][data] in memory. */
static size_t build(uint8_t *buf, size_t cap, uint64_t claimed_len, const char *hdr,
                    size_t data_len) {
    size_t h = strlen(hdr);
    if (8 + h + data_len > cap) abort();
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(claimed_len >> (8 * i));
    memcpy(buf + 8, hdr, h);
    memset(buf + 8 + h, 0x3c, data_len);
    return 8 + h + data_len;
}

static void expect_error(const char *label, const uint8_t *buf, size_t len, const char *needle) {
    struct fl_err err = {0};
    struct st_file *f = (struct st_file *)1;
    int rc = st_open_memory(buf, len, "bad.safetensors", &f, &err);
    int ok = rc < 0 && f == NULL && strstr(err.msg, "bad.safetensors") == err.msg &&
             strchr(err.msg, '\n') == NULL && (!needle || strstr(err.msg, needle));
    if (!ok) fprintf(stderr, "case '%s': rc=%d msg='%s' (wanted '%s')\n", label, rc, err.msg,
                     needle ? needle : "");
    CHECK(ok);
    st_close(rc < 0 ? NULL : f);
}

static void check_broken(void) {
    static uint8_t buf[1 << 16];
    size_t n;
#define HDR(s) n = build(buf, sizeof buf, strlen(s), s, 64)
    expect_error("empty", buf, 0, "too small");
    expect_error("5 bytes", (const uint8_t *)"\x05\0\0\0\0", 5, "too small");

    n = build(buf, sizeof buf, 1000, "{}", 0);
    expect_error("header past EOF", buf, n, "past the end");
    n = build(buf, sizeof buf, 100000000ull, "{}", 0);
    expect_error("100 MB header claim", buf, n, "cap");
    n = build(buf, sizeof buf, UINT64_MAX, "{}", 0);
    expect_error("2^64-1 header claim", buf, n, "cap");

    HDR("this is not json");
    expect_error("non-JSON", buf, n, "not valid JSON");
    HDR("[1,2,3]");
    expect_error("array header", buf, n, "not a JSON object");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x");
    expect_error("trailing bytes", buf, n, "trailing");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}");
    expect_error("unterminated", buf, n, "not valid JSON");

    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[0,128]}}");
    expect_error("offsets past EOF", buf, n, "truncated");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[60,76]}}");
    expect_error("end past EOF", buf, n, "data section has 64");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}");
    expect_error("overlap", buf, n, "overlap");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}");
    expect_error("wrong byte length", buf, n, "needs 12");
    HDR("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}");
    expect_error("unknown dtype", buf, n, "unknown dtype 'F64'");
    HDR("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}");
    expect_error("numeric dtype", buf, n, "dtype");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}");
    expect_error("negative dim", buf, n, "shape[0]");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}");
    expect_error("fractional dim", buf, n, "shape[0]");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}");
    expect_error("too many dims", buf, n, "dimensions");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}");
    expect_error("shape overflow", buf, n, "overflow");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}");
    expect_error("reversed offsets", buf, n, "reversed");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}");
    expect_error("one offset", buf, n, "data_offsets");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}");
    expect_error("no offsets", buf, n, "data_offsets");
    HDR("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}");
    expect_error("no shape", buf, n, "shape");
    HDR("{\"a\":[1,2]}");
    expect_error("entry not object", buf, n, "not a JSON object");
    HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}");
    expect_error("duplicate name", buf, n, "duplicate tensor name 'a'");
    HDR("{\"__metadata__\":{\"k\":1}}");
    expect_error("metadata non-string", buf, n, "not a string");
    HDR("{\"__metadata__\":[\"k\"]}");
    expect_error("metadata not object", buf, n, "__metadata__");
    HDR("{\"x\\ny\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    expect_error("newline in name stays one line", buf, n, "x?y");
#undef HDR

    /* Nesting bombs and huge strings are bounded by cJSON's nesting limit and
     * the header cap. */
    char *deep = malloc(40000);
    memset(deep, '[', 20000);
    memset(deep + 20000, ']', 19999);
    deep[39999] = 0;
    uint8_t *big = malloc(50000);
    n = build(big, 50000, strlen(deep), deep, 0);
    expect_error("nesting bomb", big, n, "JSON");
    free(deep);
    free(big);

    /* A good header followed by an empty file is fine for zero tensors. */
    n = build(buf, sizeof buf, 2, "{}", 0);
    struct fl_err err = {0};
    struct st_file *f = NULL;
    CHECK_INT(st_open_memory(buf, n, "ok.safetensors", &f, &err), 0);
    CHECK(f && st_n_tensors(f) == 0 && st_n_metadata(f) == 0);
    st_close(f);
}

/* Every truncation of the real fixture, and random byte flips in its header:
 * each must be an error or a valid parse, never a crash. */
static void check_truncations_and_flips(void) {
    FILE *fp = fopen(FIXTURE, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len);
    CHECK(fread(buf, 1, (size_t)len, fp) == (size_t)len);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];

    int errors = 0, tried = 0, step = 1;
    for (long cut = 0; cut < len; cut += step) {
        tried++;
        struct fl_err err = {0};
        struct st_file *f = NULL;
        /* Copy so that ASan sees reads past the cut. */
        uint8_t *part = malloc(cut ? (size_t)cut : 1);
        memcpy(part, buf, (size_t)cut);
        if (st_open_memory(part, (size_t)cut, "cut.safetensors", &f, &err) < 0) errors++;
        st_close(f);
        free(part);
        if (cut > (long)hlen + 16) step = 997;
    }
    /* Every cut loses bytes that the header or the last tensor needs. */
    CHECK_INT(errors, tried);

    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint8_t *copy = malloc((size_t)len);
    int parsed = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(copy, buf, (size_t)len);
        int flips = 1 + trial % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = 8 + (size_t)(rng % hlen);
            copy[at] = (uint8_t)(rng >> 40);
        }
        struct fl_err err = {0};
        struct st_file *f = NULL;
        if (st_open_memory(copy, (size_t)len, "flip.safetensors", &f, &err) == 0) {
            parsed++;
            /* Whatever parsed must be self-consistent. */
            for (int i = 0; i < st_n_tensors(f); i++) {
                const struct st_tensor *t = st_tensor_at(f, i);
                CHECK(t->offset + t->n_bytes <= (size_t)len - 8 - hlen);
            }
        } else {
            CHECK(strchr(err.msg, '\n') == NULL && strstr(err.msg, "flip.safetensors"));
        }
        st_close(f);
    }
    fprintf(stderr, "byte flips: %d of 3000 still parse\n", parsed);
    free(copy);
    free(buf);
}

static void check_open_errors(void) {
    struct fl_err err = {0};
    struct st_file *f = NULL;
    CHECK(st_open("/nonexistent/model.safetensors", &f, &err) == FL_EIO && f == NULL);
    CHECK(strstr(err.msg, "/nonexistent/model.safetensors: cannot open") == err.msg);
    CHECK(st_open("tests", &f, &err) == FL_EIO && f == NULL);
    CHECK(strstr(err.msg, "not a regular file") != NULL);
    char path[] = "/tmp/fl_st_emptyXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
        CHECK(st_open(path, &f, &err) == FL_EFORMAT && f == NULL);
        CHECK(strstr(err.msg, path) == err.msg);
        unlink(path);
    }
    st_close(NULL); /* no-op */
}

/* The C writer: a file with metadata and mixed dtypes reads back intact,
 * every tensor aligned to its element size. */
static void check_writer(void) {
    struct fl_err err = {0};
    struct stw *w = stw_new();
    const int64_t s3[] = {3}, s22[] = {2, 2}, s0[] = {0};
    int a = stw_add(w, "b.i8", ST_I8, 1, s3, &err);
    int b = stw_add(w, "a.f32", ST_F32, 2, s22, &err);
    int c = stw_add(w, "c.bf16", ST_BF16, 1, s3, &err);
    int d = stw_add(w, "empty", ST_F32, 1, s0, &err);
    CHECK(a == 0 && b == 1 && c == 2 && d == 3);
    CHECK_INT(stw_add_meta(w, "config", "{\"quote\": \"\\\"\", \"tab\": \"\\t\"}", &err), 0);
    CHECK_INT(stw_add_meta(w, "note", "line one\nline two", &err), 0);
    uint8_t *buf;
    size_t len;
    CHECK_INT(stw_finish(w, &buf, &len, &err), 0);
    const float vals[4] = {1.5f, -2.0f, 0.25f, 1e-30f};
    memcpy(stw_data(w, b), vals, sizeof vals);
    memcpy(stw_data(w, a), "\x01\xff\x7f", 3);
    memcpy(stw_data(w, c), "\x80\x3f\x00\x40\x80\xbf", 6); /* 1, 2, -1 */
    stw_free(w);
    struct st_file *f = NULL;
    CHECK_INT(st_open_memory(buf, len, "written.safetensors", &f, &err), 0);
    if (f) {
        CHECK_STR(st_metadata(f, "config"), "{\"quote\": \"\\\"\", \"tab\": \"\\t\"}");
        CHECK_STR(st_metadata(f, "note"), "line one\nline two");
        const struct st_tensor *t = st_find(f, "a.f32");
        const float *v = t ? st_f32_view(t) : NULL;
        CHECK(v && v[0] == 1.5f && v[3] == 1e-30f);
        t = st_find(f, "c.bf16");
        float got[3];
        CHECK(t && st_to_f32(t, got, &err) == 0 && got[0] == 1.0f && got[1] == 2.0f && got[2] == -1.0f);
        t = st_find(f, "b.i8");
        CHECK(t && ((const int8_t *)t->data)[1] == -1);
        CHECK(st_find(f, "empty") && st_find(f, "empty")->n_bytes == 0);
        for (int i = 0; i < st_n_tensors(f); i++) {
            const struct st_tensor *u = st_tensor_at(f, i);
            if (u->n_bytes) CHECK(((uintptr_t)u->data % st_dtype_size(u->dtype)) == 0);
        }
        uint64_t hlen = 0; /* our writers start the data section on 64 bytes */
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
        CHECK_INT((8 + hlen) % 64, 0);
    }
    st_close(f);
    free(buf);
}

int main(void) {
    check_basic();
    check_writer();
    check_broken();
    check_truncations_and_flips();
    check_open_errors();
    return TEST_END();
}
